//! ssh-agent forwarding to a fake agent socket.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use kiln_proto::moby::sshforward::v1::ssh_client::SshClient;
use kiln_proto::moby::sshforward::v1::{BytesMessage, CheckAgentRequest};
use kiln_session::{Session, SshAgents, SshSpec};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::support::{connect, with_metadata};

const CANNED: &[u8] = b"\x0c\x00\x00\x00\x00"; // IDENTITIES_ANSWER, no keys

/// A fake agent answering every request with `CANNED`, counting requests.
fn fake_agent(listener: UnixListener, seen: Arc<AtomicUsize>) {
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                loop {
                    let Ok(len) = conn.read_u32().await else {
                        return;
                    };
                    let mut req = vec![0u8; len as usize];
                    if conn.read_exact(&mut req).await.is_err() {
                        return;
                    }
                    seen.fetch_add(1, Ordering::SeqCst);
                    let _ = conn.write_u32(CANNED.len() as u32).await;
                    let _ = conn.write_all(CANNED).await;
                }
            });
        }
    });
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_read_only_requests_to_the_socket() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("agent.sock");
    let seen = Arc::new(AtomicUsize::new(0));
    fake_agent(UnixListener::bind(&sock).expect("bind"), seen.clone());

    let mut agents = SshAgents::new();
    let spec = SshSpec {
        id: "gh".into(),
        paths: vec![sock.clone()],
    };
    agents.add(spec).expect("add agent");
    let session = Session::builder().ssh(agents).build().expect("session");
    let mut client = SshClient::new(connect(&session).await);

    client
        .check_agent(CheckAgentRequest {
            id: "gh".to_owned(),
        })
        .await
        .expect("known agent");
    let err = client
        .check_agent(CheckAgentRequest::default())
        .await
        .expect_err("no default agent");
    assert_eq!(err.code(), tonic::Code::NotFound);

    let (tx, rx) = mpsc::channel(4);
    let request = with_metadata(
        tonic::Request::new(ReceiverStream::new(rx)),
        &[("buildkit.ssh.id", "gh")],
    );
    let mut stream = client
        .forward_agent(request)
        .await
        .expect("forward")
        .into_inner();

    // A list request split across two frames reaches the agent.
    let list = frame(&[11]);
    tx.send(BytesMessage {
        data: list[..2].to_vec(),
    })
    .await
    .expect("send");
    tx.send(BytesMessage {
        data: list[2..].to_vec(),
    })
    .await
    .expect("send");
    let answer = stream.message().await.expect("answer").expect("message");
    assert_eq!(answer.data, frame(CANNED));

    // Adding a key is refused without asking the agent.
    let mut add = vec![17u8];
    add.extend_from_slice(b"\x00\x00\x00\x0bssh-ed25519");
    tx.send(BytesMessage { data: frame(&add) })
        .await
        .expect("send");
    let answer = stream.message().await.expect("answer").expect("message");
    assert_eq!(answer.data, frame(&[5]));
    assert_eq!(seen.load(Ordering::SeqCst), 1);

    drop(tx);
    assert!(stream.message().await.expect("clean end").is_none());
}

#[test]
fn missing_socket_is_an_error() {
    let mut agents = SshAgents::new();
    let spec = SshSpec {
        id: "x".into(),
        paths: vec!["/definitely/not/a/socket".into()],
    };
    let err = agents.add(spec).expect_err("missing");
    assert!(
        err.to_string().contains("/definitely/not/a/socket"),
        "{err}"
    );
}

/// Bridges a unix socket to `ForwardAgent` calls, as the daemon does for
/// `RUN --mount=type=ssh`.
fn bridge(listener: UnixListener, channel: tonic::transport::Channel, id: &'static str) {
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            let mut client = SshClient::new(channel.clone());
            tokio::spawn(async move {
                let (tx, rx) = mpsc::channel(4);
                let request = with_metadata(
                    tonic::Request::new(ReceiverStream::new(rx)),
                    &[("buildkit.ssh.id", id)],
                );
                let Ok(resp) = client.forward_agent(request).await else {
                    return;
                };
                let mut inbound = resp.into_inner();
                let (mut read, mut write) = conn.into_split();
                let up = async move {
                    let mut buf = vec![0u8; 32 * 1024];
                    while let Ok(n) = read.read(&mut buf).await {
                        if n == 0
                            || tx
                                .send(BytesMessage {
                                    data: buf[..n].to_vec(),
                                })
                                .await
                                .is_err()
                        {
                            break;
                        }
                    }
                };
                let down = async move {
                    while let Ok(Some(msg)) = inbound.message().await {
                        if write.write_all(&msg.data).await.is_err() {
                            break;
                        }
                    }
                };
                tokio::join!(up, down);
            });
        }
    });
}

async fn run(cmd: &mut tokio::process::Command) -> std::process::Output {
    let out = cmd.output().await.expect("run ssh tool");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_files_are_served_by_an_in_process_agent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kinds = [("ed25519", "256"), ("ecdsa", "256"), ("rsa", "2048")];
    let mut paths = Vec::new();
    for (kind, bits) in kinds {
        let path = dir.path().join(format!("id_{kind}"));
        run(tokio::process::Command::new("ssh-keygen")
            .args(["-q", "-t", kind, "-b", bits, "-N", "", "-C"])
            .arg(format!("test-{kind}"))
            .arg("-f")
            .arg(&path))
        .await;
        paths.push(path.display().to_string());
    }
    let mut agents = SshAgents::new();
    agents
        .add(SshSpec {
            id: "keys".into(),
            paths: paths.iter().map(std::path::PathBuf::from).collect(),
        })
        .expect("load keys");
    let session = Session::builder().ssh(agents).build().expect("session");
    let sock = dir.path().join("agent.sock");
    bridge(
        UnixListener::bind(&sock).expect("bind"),
        connect(&session).await,
        "keys",
    );

    let listed = run(tokio::process::Command::new("ssh-add")
        .arg("-L")
        .env("SSH_AUTH_SOCK", &sock))
    .await;
    let listed = String::from_utf8_lossy(&listed.stdout);
    for path in &paths {
        let public = std::fs::read_to_string(format!("{path}.pub")).expect("pub");
        let key: Vec<&str> = public.split_whitespace().take(2).collect();
        assert!(
            listed.contains(&key.join(" ")),
            "{path} not listed in {listed}"
        );
    }

    let message = dir.path().join("message");
    std::fs::write(&message, "signed through the session").expect("write");
    for path in &paths {
        run(tokio::process::Command::new("ssh-keygen")
            .args(["-Y", "sign", "-n", "file", "-f"])
            .arg(format!("{path}.pub"))
            .arg(&message)
            .env("SSH_AUTH_SOCK", &sock))
        .await;
        let sig = dir.path().join("message.sig");
        let check = tokio::process::Command::new("ssh-keygen")
            .args(["-Y", "check-novalidate", "-n", "file", "-s"])
            .arg(&sig)
            .stdin(std::fs::File::open(&message).expect("open"))
            .output()
            .await
            .expect("verify");
        assert!(
            check.status.success(),
            "{path}: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        std::fs::remove_file(&sig).expect("rm sig");
    }

    // Read-only: removing keys through the forwarded agent is refused.
    let removed = tokio::process::Command::new("ssh-add")
        .arg("-D")
        .env("SSH_AUTH_SOCK", &sock)
        .output()
        .await
        .expect("ssh-add -D");
    assert!(!removed.status.success());
}

#[test]
fn encrypted_keys_are_refused_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("id_locked");
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "passphrase", "-f"])
        .arg(&path)
        .status()
        .expect("ssh-keygen");
    assert!(status.success());
    let mut agents = SshAgents::new();
    let err = agents
        .add(SshSpec {
            id: "locked".into(),
            paths: vec![path.clone()],
        })
        .expect_err("encrypted");
    assert!(err.to_string().contains("passphrase-protected"), "{err}");
}
