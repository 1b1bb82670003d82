//! A hostile daemon's packet streams fed to [`receive_dir`]: each is refused
//! with an error naming what was wrong, nothing lands outside `dest`, no
//! temporary file stays behind, and memory stays bounded.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use futures::stream;
use kiln_proto::fsutil::types::packet::PacketType;
use kiln_proto::fsutil::types::{Packet, Stat};
use tokio::sync::mpsc;
use tonic::Status;

use super::*;
use crate::filesync::{MODE_DIR, MODE_SYMLINK};

/// `tmp/dest` (where the export goes) and `tmp/outside`, its sibling, which
/// must stay empty.
struct Fixture {
    _tmp: tempfile::TempDir,
    dest: PathBuf,
    outside: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dest = tmp.path().join("dest");
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&dest).expect("mkdir dest");
        std::fs::create_dir(&outside).expect("mkdir outside");
        Self {
            _tmp: tmp,
            dest,
            outside,
        }
    }

    /// Runs `receive_dir` on a fixed list of packets (the stream then ends).
    async fn receive(&self, packets: Vec<Packet>, options: ReceiveOptions) -> Result<()> {
        self.receive_stream(stream::iter(packets.into_iter().map(Ok)), options)
            .await
    }

    async fn receive_stream<S>(&self, inbound: S, options: ReceiveOptions) -> Result<()>
    where
        S: futures::Stream<Item = Result<Packet, Status>> + Unpin + Send + 'static,
    {
        let (tx, mut rx) = mpsc::channel(1024);
        // Drain what kiln sends (REQ, FIN) so it never blocks on us.
        let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
        let r = receive_dir(&self.dest, inbound, tx, options).await;
        drain.await.expect("drain");
        r
    }

    /// Asserts that `outside` is still empty and that `dest` holds exactly
    /// `expected` (relative paths, sorted; no temporary files).
    #[track_caller]
    fn assert_contained(&self, expected: &[&str]) {
        assert_eq!(tree(&self.outside), Vec::<String>::new(), "outside written");
        assert_eq!(tree(&self.dest), expected, "dest content");
    }
}

/// Every entry below `dir`, relative, sorted (symlinks listed, not followed).
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("readdir") {
            let e = e.expect("entry");
            let rel = e
                .path()
                .strip_prefix(dir)
                .expect("below dir")
                .to_string_lossy()
                .into_owned();
            if e.file_type().expect("type").is_dir() {
                stack.push(e.path());
            }
            out.push(rel);
        }
    }
    out.sort();
    out
}

fn stat(path: &str, mode: u32, size: i64) -> Packet {
    Packet {
        r#type: PacketType::PacketStat as i32,
        stat: Some(Stat {
            path: path.to_owned(),
            mode,
            size,
            ..Stat::default()
        }),
        ..Packet::default()
    }
}

fn file(path: &str, size: i64) -> Packet {
    stat(path, 0o644, size)
}

fn dir(path: &str) -> Packet {
    stat(path, MODE_DIR | 0o755, 0)
}

fn symlink(path: &str, target: &str) -> Packet {
    let mut p = stat(path, MODE_SYMLINK | 0o777, 0);
    if let Some(s) = p.stat.as_mut() {
        s.linkname = target.to_owned();
    }
    p
}

fn hardlink(path: &str, target: &str) -> Packet {
    let mut p = file(path, 0);
    if let Some(s) = p.stat.as_mut() {
        s.linkname = target.to_owned();
    }
    p
}

fn end_listing() -> Packet {
    Packet {
        r#type: PacketType::PacketStat as i32,
        ..Packet::default()
    }
}

fn data(id: u32, bytes: &[u8]) -> Packet {
    Packet {
        r#type: PacketType::PacketData as i32,
        id,
        data: bytes.to_vec(),
        ..Packet::default()
    }
}

fn fin() -> Packet {
    Packet {
        r#type: PacketType::PacketFin as i32,
        ..Packet::default()
    }
}

fn opts() -> ReceiveOptions {
    ReceiveOptions::default()
}

/// Fails the test if an endless stream is not cut off within 30 s.
async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(std::time::Duration::from_secs(30), f)
        .await
        .expect("an endless stream must be cut off, not followed forever")
}

/// Asserts `path` was refused for `reason` (the check meant to catch it,
/// not another layer).
#[track_caller]
fn assert_refused(r: &Result<()>, path: &str, reason: &str) {
    match r {
        Err(
            e @ Error::UnsafePath {
                path: p,
                reason: why,
            },
        ) => {
            assert_eq!(p, path, "{e}");
            assert_eq!(*why, reason, "{e}");
            assert!(e.to_string().contains(path), "message names the path: {e}");
        }
        other => panic!("{path:?} should be refused as unsafe, got {other:?}"),
    }
}

#[track_caller]
fn assert_protocol(r: &Result<()>, needle: &str) {
    match r {
        Err(e @ Error::PacketProtocol { .. }) => {
            assert!(
                e.to_string().contains(needle),
                "{e:?} should mention {needle:?}"
            )
        }
        other => panic!("expected a protocol error mentioning {needle:?}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_dot_and_absolute_paths_are_refused() {
    for (bad, reason) in [
        ("../x", "'..' component"),
        ("a/../../x", "'..' component"),
        ("../outside/x", "'..' component"),
        ("a/./b", "'.' component"),
        ("a//b", "empty path component"),
        (".", "'.' component"),
    ] {
        let f = Fixture::new();
        let r = f
            .receive(vec![dir("a"), file(bad, 1), end_listing()], opts())
            .await;
        assert_refused(&r, bad, reason);
        f.assert_contained(&["a"]);
    }
    // `..` itself as a directory, then a file below it: without the check
    // the file would land beside dest.
    let f = Fixture::new();
    let r = f
        .receive(
            vec![
                dir(".."),
                file("../escape", 5),
                end_listing(),
                data(1, b"pwned"),
                data(1, b""),
                fin(),
            ],
            opts(),
        )
        .await;
    assert_refused(&r, "..", "'..' component");
    f.assert_contained(&[]);
    assert!(!f.dest.join("../escape").exists());
    // An absolute path naming the sibling directory itself.
    let f = Fixture::new();
    let abs = format!("{}/x", f.outside.display());
    let r = f.receive(vec![file(&abs, 1), end_listing()], opts()).await;
    assert_refused(&r, &abs, "absolute path");
    f.assert_contained(&[]);
    let f = Fixture::new();
    let r = f.receive(vec![dir("/etc/x"), end_listing()], opts()).await;
    assert_refused(&r, "/etc/x", "absolute path");
    f.assert_contained(&[]);
    // Longer than PATH_MAX: refused before anything is kept.
    let f = Fixture::new();
    let long = "a".repeat(MAX_PATH + 1);
    let r = f.receive(vec![dir(&long), end_listing()], opts()).await;
    assert_refused(&r, &long, "longer than 4096 bytes");
    f.assert_contained(&[]);
    let f = Fixture::new();
    let r = f
        .receive(vec![symlink("s", &long), end_listing()], opts())
        .await;
    assert_refused(&r, "s", "link target longer than 4096 bytes");
    f.assert_contained(&[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_written_through_a_sent_symlink() {
    for target in ["/tmp/outside", "../outside", "..", "../.."] {
        let f = Fixture::new();
        let target = if target == "/tmp/outside" {
            f.outside.display().to_string()
        } else {
            target.to_owned()
        };
        let r = f
            .receive(
                vec![
                    symlink("link", &target),
                    file("link/file", 2),
                    end_listing(),
                    data(1, b"hi"),
                    data(1, b""),
                    fin(),
                ],
                opts(),
            )
            .await;
        assert_refused(
            &r,
            "link/file",
            "its parent directory was not sent before it",
        );
        // The symlink itself is created as sent; nothing went through it.
        f.assert_contained(&["link"]);
        let made = std::fs::read_link(f.dest.join("link")).expect("symlink");
        assert_eq!(made, Path::new(&target));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symlinks_already_in_dest_are_replaced_not_followed() {
    let f = Fixture::new();
    std::os::unix::fs::symlink(&f.outside, f.dest.join("sub")).expect("symlink");
    std::os::unix::fs::symlink(f.outside.join("victim"), f.dest.join("top")).expect("symlink");
    let r = f
        .receive(
            vec![
                dir("sub"),
                file("sub/file", 2),
                file("top", 3),
                end_listing(),
                data(1, b"hi"),
                data(1, b""),
                data(2, b"top"),
                data(2, b""),
                fin(),
            ],
            opts(),
        )
        .await;
    r.expect("a real directory and file replace the symlinks");
    f.assert_contained(&["sub", "sub/file", "top"]);
    assert!(std::fs::symlink_metadata(f.dest.join("sub"))
        .expect("sub")
        .is_dir());
    assert_eq!(std::fs::read(f.dest.join("top")).expect("top"), b"top");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hardlinks_must_name_a_file_received_before() {
    let never = "hardlink to a file not received before it";
    for (target, refused, reason) in [
        ("../outside/x", "../outside/x", "'..' component"),
        ("/etc/passwd", "/etc/passwd", "absolute path"),
        // A symlink received before, and a file never received.
        ("a", "hard", never),
        ("zz", "hard", never),
    ] {
        let f = Fixture::new();
        let r = f
            .receive(
                vec![
                    symlink("a", "/etc/passwd"),
                    hardlink("hard", target),
                    end_listing(),
                    fin(),
                ],
                opts(),
            )
            .await;
        assert_refused(&r, refused, reason);
        f.assert_contained(&["a"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_nobody_requested_is_refused() {
    // A directory's id, an id never listed, and a file not yet requested
    // (one file open at a time: the second is still queued).
    for (id, expect) in [(0, vec!["d"]), (99, vec!["d"]), (2, vec!["d"])] {
        let f = Fixture::new();
        let options = ReceiveOptions {
            max_open: 1,
            ..opts()
        };
        let r = f
            .receive(
                vec![
                    dir("d"),
                    file("d/f1", 1),
                    file("d/f2", 1),
                    end_listing(),
                    data(id, b"x"),
                ],
                options,
            )
            .await;
        assert_protocol(&r, &format!("DATA for entry {id}"));
        f.assert_contained(&expect);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_beyond_the_declared_size_is_refused() {
    let f = Fixture::new();
    let r = f
        .receive(
            vec![file("f", 3), end_listing(), data(0, b"abc"), data(0, b"d")],
            opts(),
        )
        .await;
    assert_protocol(&r, "\"f\" exceeds the 3 bytes");
    // No partial file, no temporary file.
    f.assert_contained(&[]);
    // A negative size declares nothing.
    let f = Fixture::new();
    let r = f
        .receive(vec![file("f", -5), end_listing(), data(0, b"a")], opts())
        .await;
    assert_protocol(&r, "exceeds the 0 bytes");
    f.assert_contained(&[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_declared_size_is_neither_preallocated_nor_buffered() {
    let f = Fixture::new();
    let r = f
        .receive(
            vec![
                file("big", i64::MAX),
                end_listing(),
                data(0, b"abc"),
                data(0, b""),
                fin(),
            ],
            opts(),
        )
        .await;
    r.expect("a short file is written as sent");
    f.assert_contained(&["big"]);
    let meta = std::fs::metadata(f.dest.join("big")).expect("big");
    assert_eq!(meta.len(), 3);
    assert!(meta.blocks() * 512 <= 64 * 1024, "{} blocks", meta.blocks());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_data_without_fin_stops_at_the_declared_size() {
    let f = Fixture::new();
    let head = stream::iter([file("f", 1 << 20), end_listing()].map(Ok));
    // 1 MiB declared, then 64 KiB chunks "forever" (the test's guard stops
    // at 64 MiB, so a receiver that follows it fails here, not the disk).
    let chunk = vec![7u8; 64 * 1024];
    let mut sent = 0;
    let endless = stream::repeat_with(move || {
        sent += 1;
        if sent > 1024 {
            Err(Status::aborted("test guard: 64 MiB sent"))
        } else {
            Ok(data(0, &chunk))
        }
    });
    let r = bounded(f.receive_stream(head.chain(endless), opts())).await;
    assert_protocol(&r, "exceeds the 1048576 bytes");
    f.assert_contained(&[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_listing_is_cut_off_at_the_metadata_limit() {
    let f = Fixture::new();
    // Directories "forever" (the test's guard stops at 20000).
    let mut n = 0u64;
    let endless = stream::repeat_with(move || {
        n += 1;
        if n > 20_000 {
            Err(Status::aborted("test guard: 20000 entries sent"))
        } else {
            Ok(dir(&format!("d{n:012}")))
        }
    });
    let options = ReceiveOptions {
        max_metadata: 64 * 1024,
        ..opts()
    };
    let r = bounded(f.receive_stream(endless, options)).await;
    match r {
        Err(e @ Error::ExportTooLarge { limit: 65536, .. }) => {
            assert!(e.to_string().contains("65536"), "{e}")
        }
        other => panic!("expected ExportTooLarge, got {other:?}"),
    }
    // About 64 KiB / (2 × 13 + 128) bytes per directory.
    let made = tree(&f.dest).len();
    assert!((300..=500).contains(&made), "{made} directories");
    assert_eq!(tree(&f.outside), Vec::<String>::new());
}

#[test]
fn kept_entries_carry_no_xattrs() {
    let f = Fixture::new();
    let mut rx = Receiver::new(f.dest.canonicalize().expect("dest"), opts());
    let mut big = Stat {
        path: "d".into(),
        mode: MODE_DIR | 0o755,
        ..Stat::default()
    };
    big.xattrs.insert("user.x".into(), vec![0u8; 4 << 20]);
    rx.stat(big.clone()).expect("dir");
    big.path = "d/f".into();
    big.mode = 0o644;
    rx.stat(big).expect("file");
    assert!(rx.dir_meta.iter().all(|(_, s)| s.xattrs.is_empty()));
    assert!(rx.queue.iter().all(|p| p.stat.xattrs.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_out_of_order_are_refused() {
    let f = Fixture::new();
    let r = f
        .receive(vec![dir("b"), dir("a"), end_listing()], opts())
        .await;
    assert_protocol(&r, "changes out of order: \"a\" after \"b\"");
    f.assert_contained(&["b"]);
    // A child before its parent.
    let f = Fixture::new();
    let r = f
        .receive(vec![file("a/x", 1), dir("a"), end_listing()], opts())
        .await;
    assert_refused(&r, "a/x", "its parent directory was not sent before it");
    f.assert_contained(&[]);
    // The same path twice (a symlink, then a directory of that name).
    let f = Fixture::new();
    let r = f
        .receive(vec![symlink("s", ".."), dir("s"), end_listing()], opts())
        .await;
    assert_protocol(&r, "out of order");
    f.assert_contained(&["s"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_err_packet_or_an_early_end_fails_and_leaves_no_partial_file() {
    let f = Fixture::new();
    let err = Packet {
        r#type: PacketType::PacketErr as i32,
        data: b"disk on fire".to_vec(),
        ..Packet::default()
    };
    let r = f
        .receive(
            vec![file("f", 10), end_listing(), data(0, b"part"), err],
            opts(),
        )
        .await;
    match &r {
        Err(e @ Error::Remote { .. }) => assert!(e.to_string().contains("disk on fire"), "{e}"),
        other => panic!("expected Remote, got {other:?}"),
    }
    f.assert_contained(&[]);

    let f = Fixture::new();
    let r = f
        .receive(vec![file("f", 10), end_listing(), data(0, b"part")], opts())
        .await;
    assert_protocol(&r, "stream ended before FIN");
    f.assert_contained(&[]);

    let f = Fixture::new();
    let failing = stream::iter([
        Ok(file("f", 10)),
        Ok(end_listing()),
        Ok(data(0, b"part")),
        Err(Status::unavailable("connection reset")),
    ]);
    let r = f.receive_stream(failing, opts()).await;
    assert!(matches!(r, Err(Error::Stream(_))), "{r:?}");
    f.assert_contained(&[]);
}
