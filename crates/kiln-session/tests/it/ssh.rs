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
    let spec: SshSpec = format!("gh={}", sock.display()).parse().expect("spec");
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
    let spec: SshSpec = "x=/definitely/not/a/socket".parse().expect("spec");
    let err = agents.add(spec).expect_err("missing");
    assert!(
        err.to_string().contains("/definitely/not/a/socket"),
        "{err}"
    );
}
