//! File sync, with the test playing the daemon (the fsutil receiver).

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use kiln_proto::fsutil::types::packet::PacketType;
use kiln_proto::fsutil::types::{Packet, Stat};
use kiln_proto::moby::filesync::v1::file_sync_client::FileSyncClient;
use kiln_session::filesync::{MODE_DIR, MODE_SYMLINK};
use kiln_session::{Session, SyncDirOptions};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use crate::support::{connect, with_metadata};

struct Synced {
    stats: Vec<Stat>,
    data: BTreeMap<u32, Vec<u8>>,
    max_chunk: usize,
}

impl Synced {
    fn paths(&self) -> Vec<&str> {
        self.stats.iter().map(|s| s.path.as_str()).collect()
    }

    fn id(&self, path: &str) -> u32 {
        self.stats
            .iter()
            .position(|s| s.path == path)
            .unwrap_or_else(|| panic!("{path} not listed")) as u32
    }

    fn stat(&self, path: &str) -> &Stat {
        &self.stats[self.id(path) as usize]
    }
}

fn packet(kind: PacketType, id: u32) -> Packet {
    Packet {
        r#type: kind as i32,
        id,
        ..Packet::default()
    }
}

/// Runs one DiffCopy as the daemon would: read the listing, request the
/// files `pick` chooses, then FIN.
async fn sync(
    channel: Channel,
    md: &[(&'static str, &str)],
    pick: impl Fn(&[Stat]) -> Vec<u32>,
) -> Result<Synced, tonic::Status> {
    let mut client = FileSyncClient::new(channel).max_decoding_message_size(64 << 20);
    let (tx, rx) = mpsc::channel(16);
    let request = with_metadata(tonic::Request::new(ReceiverStream::new(rx)), md);
    let mut stream = client.diff_copy(request).await?.into_inner();
    let mut stats = Vec::new();
    loop {
        let p = stream
            .message()
            .await?
            .expect("listing ends with an empty STAT");
        assert_eq!(p.r#type, PacketType::PacketStat as i32, "{p:?}");
        match p.stat {
            Some(stat) => stats.push(stat),
            None => break,
        }
    }
    let ids = pick(&stats);
    for id in &ids {
        tx.send(packet(PacketType::PacketReq, *id))
            .await
            .expect("send REQ");
    }
    let mut data: BTreeMap<u32, Vec<u8>> = BTreeMap::new();
    let mut max_chunk = 0;
    let mut done = 0;
    while done < ids.len() {
        let p = stream.message().await?.expect("DATA");
        assert_eq!(p.r#type, PacketType::PacketData as i32);
        if p.data.is_empty() {
            done += 1;
            data.entry(p.id).or_default();
        } else {
            max_chunk = max_chunk.max(p.data.len());
            data.entry(p.id).or_default().extend_from_slice(&p.data);
        }
    }
    tx.send(packet(PacketType::PacketFin, 0))
        .await
        .expect("send FIN");
    let fin = stream.message().await?.expect("FIN answer");
    assert_eq!(fin.r#type, PacketType::PacketFin as i32);
    assert!(stream.message().await?.is_none(), "stream ends after FIN");
    Ok(Synced {
        stats,
        data,
        max_chunk,
    })
}

fn write(root: &Path, rel: &str, content: &str, mode: u32) {
    let path = root.join(rel);
    std::fs::write(&path, content).expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn session_for(root: &Path, options: SyncDirOptions) -> Session {
    Session::builder()
        .sync_dir("context", root, options)
        .build()
        .expect("session")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_tree_in_order_with_go_modes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    std::fs::create_dir_all(root.join("a/b/c")).expect("mkdir");
    std::fs::create_dir(root.join("empty")).expect("mkdir");
    std::fs::set_permissions(root.join("a"), std::fs::Permissions::from_mode(0o750))
        .expect("chmod");
    write(root, "a/b/c/deep.txt", "deep", 0o644);
    write(root, "exec.sh", "#!/bin/sh\necho hi\n", 0o755);
    write(root, "plain.txt", "plain\n", 0o644);
    write(root, "ünï cödé.txt", "unicode", 0o600);
    write(root, "hard1", "shared inode", 0o644);
    std::fs::hard_link(root.join("hard1"), root.join("hard2")).expect("hardlink");
    std::os::unix::fs::symlink("plain.txt", root.join("link")).expect("symlink");

    let session = session_for(root, SyncDirOptions::default());
    let synced = sync(
        connect(&session).await,
        &[("dir-name", "context")],
        |stats| {
            ["exec.sh", "ünï cödé.txt", "a/b/c/deep.txt"]
                .iter()
                .map(|p| stats.iter().position(|s| s.path == *p).expect("listed") as u32)
                .collect()
        },
    )
    .await
    .expect("sync");

    assert_eq!(
        synced.paths(),
        [
            "a",
            "a/b",
            "a/b/c",
            "a/b/c/deep.txt",
            "empty",
            "exec.sh",
            "hard1",
            "hard2",
            "link",
            "plain.txt",
            "ünï cödé.txt"
        ]
    );
    assert_eq!(synced.stat("a").mode, MODE_DIR | 0o750);
    assert_eq!(synced.stat("a").size, 0);
    assert_eq!(synced.stat("empty").mode & MODE_DIR, MODE_DIR);
    assert_eq!(synced.stat("exec.sh").mode, 0o755);
    assert_eq!(synced.stat("plain.txt").mode, 0o644);
    assert_eq!(synced.stat("plain.txt").size, 6);
    assert_eq!(synced.stat("ünï cödé.txt").mode, 0o600);
    let link = synced.stat("link");
    assert_eq!(link.mode, MODE_SYMLINK | 0o777);
    assert_eq!(link.linkname, "plain.txt");
    assert_eq!(synced.stat("hard1").linkname, "");
    assert_eq!(synced.stat("hard2").linkname, "hard1");
    let meta = std::fs::metadata(root.join("exec.sh")).expect("meta");
    let exec = synced.stat("exec.sh");
    assert_eq!(
        exec.mod_time,
        meta.mtime() * 1_000_000_000 + meta.mtime_nsec()
    );
    assert_eq!((exec.uid, exec.gid), (meta.uid(), meta.gid()));

    assert_eq!(synced.data[&synced.id("exec.sh")], b"#!/bin/sh\necho hi\n");
    assert_eq!(synced.data[&synced.id("ünï cödé.txt")], b"unicode");
    assert_eq!(synced.data[&synced.id("a/b/c/deep.txt")], b"deep");
    assert_eq!(synced.data.len(), 3);
}

fn pattern_tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    for d in [
        "src/sub",
        "docs/keep",
        "docs/drop",
        "node_modules/pkg",
        "ünï",
    ] {
        std::fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    for f in [
        "src/main.go",
        "src/sub/x.go",
        "src/sub/x_test.go",
        "docs/keep/k.md",
        "docs/drop/d.md",
        "node_modules/pkg/i.js",
        "app.log",
        "keep.log",
        "Dockerfile",
        "ünï/ä.txt",
    ] {
        write(root, f, f, 0o644);
    }
    dir
}

async fn listed(session: &Session, md: &[(&'static str, &str)]) -> Vec<String> {
    let synced = sync(connect(session).await, md, |_| Vec::new())
        .await
        .expect("sync");
    synced.paths().into_iter().map(str::to_owned).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn include_exclude_and_exceptions() {
    let dir = pattern_tree();
    let session = session_for(dir.path(), SyncDirOptions::default());
    let got = listed(
        &session,
        &[
            ("dir-name", "context"),
            ("exclude-patterns", "docs"),
            ("exclude-patterns", "!docs/keep"),
            ("exclude-patterns", "node_modules"),
            ("exclude-patterns", "**/*_test.go"),
            ("exclude-patterns", "*.log"),
            ("exclude-patterns", "!keep.log"),
        ],
    )
    .await;
    assert_eq!(
        got,
        [
            "Dockerfile",
            "docs",
            "docs/keep",
            "docs/keep/k.md",
            "keep.log",
            "src",
            "src/main.go",
            "src/sub",
            "src/sub/x.go",
            "ünï",
            "ünï/ä.txt"
        ]
    );

    let got = listed(
        &session,
        &[
            ("dir-name", "context"),
            ("include-patterns", "src"),
            ("include-patterns", "Dockerfile"),
            ("exclude-patterns", "src/sub"),
        ],
    )
    .await;
    assert_eq!(got, ["Dockerfile", "src", "src/main.go"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encoded_non_ascii_patterns_and_follow_paths() {
    let dir = pattern_tree();
    std::os::unix::fs::symlink("ünï/ä.txt", dir.path().join("alias")).expect("symlink");
    let session = session_for(dir.path(), SyncDirOptions::default());
    // BuildKit URL-escapes non-ASCII values and marks them.
    let got = listed(
        &session,
        &[
            ("dir-name", "context"),
            ("include-patterns", "%C3%BCn%C3%AF"),
            ("include-patterns-encoded", "1"),
        ],
    )
    .await;
    assert_eq!(got, ["ünï", "ünï/ä.txt"]);

    // followpaths: the symlink and what it points to are both sent.
    let got = listed(
        &session,
        &[
            ("dir-name", "context"),
            ("include-patterns", "Dockerfile"),
            ("followpaths", "alias"),
        ],
    )
    .await;
    assert_eq!(got, ["Dockerfile", "alias", "ünï", "ünï/ä.txt"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dockerignore_option_merges_patterns() {
    let dir = pattern_tree();
    std::fs::write(
        dir.path().join(".dockerignore"),
        "# build junk\n*.log\n!keep.log\nnode_modules\n/docs\n",
    )
    .expect("write");
    let with = session_for(
        dir.path(),
        SyncDirOptions::default()
            .dockerignore(true)
            .exclude(["src/sub"]),
    );
    let got = listed(&with, &[("dir-name", "context")]).await;
    assert_eq!(
        got,
        [
            ".dockerignore",
            "Dockerfile",
            "keep.log",
            "src",
            "src/main.go",
            "ünï",
            "ünï/ä.txt"
        ]
    );
    let without = session_for(dir.path(), SyncDirOptions::default());
    assert!(listed(&without, &[("dir-name", "context")])
        .await
        .contains(&"app.log".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_file_is_chunked_and_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let size = 20 * 1024 * 1024 + 123;
    let content: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.path().join("big.bin"), &content).expect("write");
    // A sparse file: mostly holes, read back as zeros.
    let sparse = std::fs::File::create(dir.path().join("sparse.bin")).expect("create");
    sparse.set_len(3 * 1024 * 1024).expect("set_len");
    drop(sparse);
    let session = session_for(dir.path(), SyncDirOptions::default());
    let before = session.sync_stats();
    let synced = sync(connect(&session).await, &[("dir-name", "context")], |_| {
        vec![0, 1]
    })
    .await
    .expect("sync");
    assert!(
        synced.max_chunk <= 32 * 1024,
        "chunk of {} bytes",
        synced.max_chunk
    );
    assert_eq!(synced.data[&0].len(), size);
    assert!(synced.data[&0] == content, "content differs");
    assert_eq!(synced.data[&1], vec![0u8; 3 * 1024 * 1024]);
    let sent = session.sync_stats() - before;
    assert_eq!(sent.calls, 1);
    assert_eq!(sent.entries, 2);
    assert_eq!(sent.files, 2);
    assert_eq!(sent.bytes, (size + 3 * 1024 * 1024) as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resync_counts_only_requested_bytes() {
    let dir = pattern_tree();
    let session = session_for(dir.path(), SyncDirOptions::default());
    let all_files = |stats: &[Stat]| -> Vec<u32> {
        (0..stats.len() as u32)
            .filter(|i| stats[*i as usize].mode & MODE_DIR == 0)
            .collect()
    };
    sync(
        connect(&session).await,
        &[("dir-name", "context")],
        all_files,
    )
    .await
    .expect("first sync");
    write(dir.path(), "src/main.go", "package main // edited\n", 0o644);
    let before = session.sync_stats();
    // The daemon compares the listing with its copy and asks for the edited file only.
    let synced = sync(
        connect(&session).await,
        &[("dir-name", "context")],
        |stats| {
            vec![stats
                .iter()
                .position(|s| s.path == "src/main.go")
                .expect("listed") as u32]
        },
    )
    .await
    .expect("second sync");
    let sent = session.sync_stats() - before;
    assert_eq!(sent.files, 1);
    assert_eq!(sent.bytes, "package main // edited\n".len() as u64);
    assert_eq!(synced.data.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_dir_and_bad_requests_fail() {
    let dir = pattern_tree();
    let session = session_for(dir.path(), SyncDirOptions::default());
    let err = sync(
        connect(&session).await,
        &[("dir-name", "secret-stuff")],
        |_| Vec::new(),
    )
    .await
    .err()
    .expect("unknown dir");
    assert_eq!(err.code(), tonic::Code::NotFound);

    // Asking for a directory's content (or any id never offered) ends the call.
    let mut client = FileSyncClient::new(connect(&session).await);
    let (tx, rx) = mpsc::channel(4);
    let request = with_metadata(
        tonic::Request::new(ReceiverStream::new(rx)),
        &[("dir-name", "context")],
    );
    let mut stream = client.diff_copy(request).await.expect("call").into_inner();
    tx.send(packet(PacketType::PacketReq, 100_000))
        .await
        .expect("send");
    let err = loop {
        match stream.message().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("stream ended without error"),
            Err(e) => break e,
        }
    };
    assert!(err.message().contains("invalid file id"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xattrs_are_sent_when_the_file_system_has_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "tagged", "x", 0o644);
    let supported = rustix::fs::setxattr(
        dir.path().join("tagged"),
        "user.kiln.test",
        b"value",
        rustix::fs::XattrFlags::empty(),
    )
    .is_ok();
    let session = session_for(dir.path(), SyncDirOptions::default());
    let synced = sync(connect(&session).await, &[("dir-name", "context")], |_| {
        Vec::new()
    })
    .await
    .expect("sync");
    let xattrs = &synced.stat("tagged").xattrs;
    if supported {
        assert_eq!(
            xattrs.get("user.kiln.test").map(Vec::as_slice),
            Some(&b"value"[..])
        );
    } else {
        assert!(!xattrs.contains_key("user.kiln.test"));
    }
}
