//! File send, with the test playing the daemon's exporters.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use kiln_proto::fsutil::types::packet::PacketType;
use kiln_proto::fsutil::types::{Packet, Stat};
use kiln_proto::moby::filesync::packet::file_send_client::FileSendClient as PacketSendClient;
use kiln_proto::moby::filesync::v1::file_send_client::FileSendClient;
use kiln_proto::moby::filesync::v1::BytesMessage;
use kiln_session::filesync::{MODE_DIR, MODE_SETUID, MODE_SYMLINK};
use kiln_session::{ExportTarget, Session};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use crate::support::{connect, with_metadata};

fn frames(chunks: &[&[u8]]) -> Vec<BytesMessage> {
    chunks
        .iter()
        .map(|c| BytesMessage { data: c.to_vec() })
        .collect()
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("readdir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_bytes_land_in_file_by_exporter_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tar = dir.path().join("image.tar");
    let oci = dir.path().join("oci.tar");
    let session = Session::builder()
        .export(0, ExportTarget::file(&tar))
        .export(1, ExportTarget::file(&oci))
        .build()
        .expect("session");
    let mut client = FileSendClient::new(connect(&session).await);

    let request = with_metadata(
        tonic::Request::new(tokio_stream::iter(frames(&[b"second ", b"exporter"]))),
        &[
            ("buildkit-attachable-exporter-id", "1"),
            ("containerd-lease", "x"),
        ],
    );
    let mut stream = client.diff_copy(request).await.expect("call").into_inner();
    // The daemon waits for the end of our stream: no message, status OK.
    assert!(stream.message().await.expect("ok status").is_none());
    // Received whole, but in place only once the build succeeded.
    assert!(!oci.exists());
    assert_eq!(
        session.outputs().commit().await.expect("commit"),
        std::slice::from_ref(&oci)
    );
    assert_eq!(std::fs::read(&oci).expect("read"), b"second exporter");
    assert!(!tar.exists());

    let big: Vec<u8> = (0..5_000_000u32).map(|i| (i % 253) as u8).collect();
    let chunks: Vec<&[u8]> = big.chunks(3 * 1024 * 1024).collect();
    let request = with_metadata(
        tonic::Request::new(tokio_stream::iter(frames(&chunks))),
        &[("buildkit-attachable-exporter-id", "0")],
    );
    let mut stream = client.diff_copy(request).await.expect("call").into_inner();
    assert!(stream.message().await.expect("ok status").is_none());
    session.outputs().commit().await.expect("commit");
    assert!(std::fs::read(&tar).expect("read") == big);
    assert_eq!(
        entries(dir.path()),
        ["image.tar", "oci.tar"],
        "no temporary files left"
    );

    let request = with_metadata(
        tonic::Request::new(tokio_stream::iter(frames(&[b"x"]))),
        &[("buildkit-attachable-exporter-id", "7")],
    );
    let err = match client.diff_copy(request).await {
        Ok(resp) => resp
            .into_inner()
            .message()
            .await
            .expect_err("unknown exporter"),
        Err(e) => e,
    };
    assert_eq!(err.code(), tonic::Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_transfer_leaves_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out.tar");
    let session = Session::builder()
        .export(0, ExportTarget::file(&out))
        .build()
        .expect("session");
    let (daemon_io, session_io) = tokio::io::duplex(64 * 1024);
    let serving = tokio::spawn({
        let session = session.clone();
        async move { session.serve(session_io).await }
    });
    let channel = crate::support::channel_over(daemon_io).await;
    let (tx, rx) = mpsc::channel(4);
    let call = tokio::spawn(async move {
        let mut client = FileSendClient::new(channel);
        // No exporter id: the only target is used.
        let mut stream = client
            .diff_copy(ReceiverStream::new(rx))
            .await
            .expect("call")
            .into_inner();
        let _ = stream.message().await;
    });
    tx.send(BytesMessage {
        data: b"partial".to_vec(),
    })
    .await
    .expect("send");
    // Wait until the temporary file exists, then lose the connection
    // mid-stream (ending the request stream cleanly would be a success).
    wait_for(|| entries(dir.path()).len() == 1).await;
    serving.abort();
    wait_for(|| entries(dir.path()).is_empty()).await;
    assert!(!out.exists());
    call.abort();
    drop(tx);
}

async fn wait_for(mut cond: impl FnMut() -> bool) {
    for _ in 0..200 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("condition not reached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writer_target_gets_bytes() {
    let (w, mut r) = tokio::io::duplex(1024);
    let session = Session::builder()
        .export(0, ExportTarget::writer(w))
        .build()
        .expect("session");
    let mut client = FileSendClient::new(connect(&session).await);
    let request = tonic::Request::new(tokio_stream::iter(frames(&[b"to ", b"stdout"])));
    let mut stream = client.diff_copy(request).await.expect("call").into_inner();
    assert!(stream.message().await.expect("ok").is_none());
    let mut got = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut r, &mut got)
        .await
        .expect("read");
    assert_eq!(got, b"to stdout");
}

// ---- local exporter: the fsutil packet protocol, daemon as sender ----

struct Entry {
    stat: Stat,
    content: Option<&'static [u8]>,
}

fn dir(path: &str) -> Entry {
    Entry {
        stat: Stat {
            path: path.to_owned(),
            mode: MODE_DIR | 0o755,
            mod_time: 1_600_000_000_000_000_000,
            ..Stat::default()
        },
        content: None,
    }
}

fn file(path: &str, mode: u32, content: &'static [u8]) -> Entry {
    Entry {
        stat: Stat {
            path: path.to_owned(),
            mode,
            size: content.len() as i64,
            mod_time: 1_600_000_000_000_000_000,
            ..Stat::default()
        },
        content: Some(content),
    }
}

fn symlink(path: &str, target: &str) -> Entry {
    Entry {
        stat: Stat {
            path: path.to_owned(),
            mode: MODE_SYMLINK | 0o777,
            linkname: target.to_owned(),
            ..Stat::default()
        },
        content: None,
    }
}

fn hardlink(path: &str, target: &str) -> Entry {
    Entry {
        stat: Stat {
            path: path.to_owned(),
            mode: 0o644,
            linkname: target.to_owned(),
            ..Stat::default()
        },
        content: None,
    }
}

/// Plays fsutil's sender: STATs, then DATA for each REQ, FIN for FIN.
async fn send_tree(channel: Channel, entries: Vec<Entry>) -> Result<(), tonic::Status> {
    let mut client = PacketSendClient::new(channel);
    let (tx, rx) = mpsc::channel(64);
    let request = with_metadata(
        tonic::Request::new(ReceiverStream::new(rx)),
        &[("buildkit-attachable-exporter-id", "0")],
    );
    let mut stream = client.diff_copy(request).await?.into_inner();
    for e in &entries {
        let p = Packet {
            r#type: PacketType::PacketStat as i32,
            stat: Some(e.stat.clone()),
            ..Packet::default()
        };
        if tx.send(p).await.is_err() {
            break;
        }
    }
    let _ = tx
        .send(Packet {
            r#type: PacketType::PacketStat as i32,
            ..Packet::default()
        })
        .await;
    while let Some(p) = stream.message().await? {
        match PacketType::try_from(p.r#type) {
            Ok(PacketType::PacketReq) => {
                let content = entries[p.id as usize]
                    .content
                    .expect("REQ for a regular file");
                for chunk in content.chunks(3) {
                    let data = Packet {
                        r#type: PacketType::PacketData as i32,
                        id: p.id,
                        data: chunk.to_vec(),
                        ..Packet::default()
                    };
                    if tx.send(data).await.is_err() {
                        break;
                    }
                }
                let eof = Packet {
                    r#type: PacketType::PacketData as i32,
                    id: p.id,
                    ..Packet::default()
                };
                let _ = tx.send(eof).await;
            }
            Ok(PacketType::PacketFin) => {
                tx.send(Packet {
                    r#type: PacketType::PacketFin as i32,
                    ..Packet::default()
                })
                .await
                .expect("send FIN");
            }
            other => panic!("unexpected packet {other:?}"),
        }
    }
    Ok(())
}

fn dir_session(dest: &Path) -> Session {
    Session::builder()
        .export(0, ExportTarget::directory(dest))
        .build()
        .expect("session")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_export_is_written() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dest = tmp.path().join("out");
    let session = dir_session(&dest);
    send_tree(
        connect(&session).await,
        vec![
            dir("bin"),
            file("bin/app", 0o755 | MODE_SETUID, b"ELF binary"),
            dir("empty"),
            dir("etc"),
            file("etc/config.json", 0o600, b"{}"),
            hardlink("etc/config2.json", "etc/config.json"),
            symlink("etc/link", "/etc/passwd"),
            file("ünï.txt", 0o644, b"unicode name"),
        ],
    )
    .await
    .expect("export");
    // Staged inside dest until the build succeeded.
    assert!(!dest.join("bin").exists());
    session.outputs().commit().await.expect("commit");
    assert_eq!(
        std::fs::read(dest.join("bin/app")).expect("read"),
        b"ELF binary"
    );
    let mode = std::fs::metadata(dest.join("bin/app"))
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o755, "setuid is dropped");
    assert_eq!(
        std::fs::read(dest.join("etc/config2.json")).expect("read"),
        b"{}"
    );
    assert_eq!(
        std::fs::read_link(dest.join("etc/link")).expect("readlink"),
        Path::new("/etc/passwd")
    );
    assert!(dest.join("empty").is_dir());
    assert_eq!(
        std::fs::read(dest.join("ünï.txt")).expect("read"),
        b"unicode name"
    );
    let mtime = std::fs::metadata(dest.join("bin"))
        .expect("meta")
        .modified()
        .expect("mtime");
    assert_eq!(
        mtime
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after epoch")
            .as_secs(),
        1_600_000_000
    );
    assert_eq!(
        entries(&dest.join("etc")),
        ["config.json", "config2.json", "link"]
    );
}

async fn refused(entries: Vec<Entry>) -> (tempfile::TempDir, tonic::Status) {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(tmp.path().join("outside")).expect("mkdir");
    let session = dir_session(&tmp.path().join("dest"));
    let err = send_tree(connect(&session).await, entries)
        .await
        .expect_err("hostile stream must be refused");
    (tmp, err)
}

fn assert_outside_untouched(tmp: &Path) {
    assert!(
        entries(&tmp.join("outside")).is_empty(),
        "something was written outside"
    );
    assert_eq!(entries(tmp), ["dest", "outside"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_paths_are_refused() {
    let (tmp, err) = refused(vec![file("/abs.txt", 0o644, b"x")]).await;
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err}");
    assert!(err.message().contains("absolute path"), "{err}");
    assert_outside_untouched(tmp.path());

    let (tmp, err) = refused(vec![file("../outside/evil", 0o644, b"x")]).await;
    assert!(err.message().contains("'..'"), "{err}");
    assert_outside_untouched(tmp.path());

    // A symlink may be created, but never written through.
    let outside = tempfile::tempdir().expect("tempdir");
    let (tmp, err) = refused(vec![
        symlink("escape", outside.path().to_str().expect("utf8")),
        file("escape/evil", 0o644, b"x"),
    ])
    .await;
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err}");
    assert!(
        entries(outside.path()).is_empty(),
        "wrote through a symlink"
    );
    assert_outside_untouched(tmp.path());

    let (tmp, err) = refused(vec![symlink("escape", "../outside"), dir("escape/sub")]).await;
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err}");
    assert_outside_untouched(tmp.path());

    let (tmp, err) = refused(vec![hardlink("steal", "../outside/x")]).await;
    assert!(err.message().contains("'..'"), "{err}");
    assert_outside_untouched(tmp.path());

    let (tmp, err) = refused(vec![dir("b"), dir("a")]).await;
    assert!(err.message().contains("out of order"), "{err}");
    assert_outside_untouched(tmp.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_replaces_planted_symlink_without_following() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dest = tmp.path().join("dest");
    let victim = tmp.path().join("victim.txt");
    std::fs::write(&victim, "original").expect("write");
    std::fs::create_dir(&dest).expect("mkdir");
    std::os::unix::fs::symlink(&victim, dest.join("target.txt")).expect("plant");
    let session = dir_session(&dest);
    send_tree(
        connect(&session).await,
        vec![file("target.txt", 0o644, b"exported")],
    )
    .await
    .expect("export");
    session.outputs().commit().await.expect("commit");
    assert_eq!(std::fs::read(&victim).expect("read"), b"original");
    let meta = std::fs::symlink_metadata(dest.join("target.txt")).expect("lstat");
    assert!(meta.is_file(), "the symlink was replaced by the file");
    assert_eq!(
        std::fs::read(dest.join("target.txt")).expect("read"),
        b"exported"
    );
}
