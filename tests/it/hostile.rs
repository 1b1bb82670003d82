//! A hostile daemon: `kiln solve` against a fake BuildKit daemon on a unix
//! socket (kiln-test-support's `fake_daemon`) that answers the export with
//! paths leaving `dest`, a symlink to write through, or a tar stream cut off
//! midway. kiln must fail with an error naming the refused path, write
//! nothing outside `dest`, and leave no partial tar file.
//!
//! These tests need no real daemon. There is no helper that pins a test to
//! one row of the matrix, so they run on every row: they are cheap (a few
//! kiln runs against an in-process fake) and each uses its own temporary
//! directory and socket, so rows running at once never collide.

use std::path::Path;

use kiln_proto::fsutil::types::packet::PacketType;
use kiln_proto::fsutil::types::{Packet, Stat};
use kiln_session::filesync::{MODE_DIR, MODE_SYMLINK};
use kiln_test_support::fake_daemon::{Code, FakeDaemon, HostileExport, Status};

use crate::common::*;

fn stat(path: &str, mode: u32, size: i64, linkname: &str) -> Packet {
    Packet {
        r#type: PacketType::PacketStat as i32,
        stat: Some(Stat {
            path: path.to_owned(),
            mode,
            size,
            linkname: linkname.to_owned(),
            ..Stat::default()
        }),
        ..Packet::default()
    }
}

fn packet(kind: PacketType, id: u32, data: &[u8]) -> Packet {
    Packet {
        r#type: kind as i32,
        id,
        data: data.to_vec(),
        ..Packet::default()
    }
}

/// A directory `a` with a good file, then `bad` (a file of 5 bytes), with
/// DATA for every file and FIN, all sent at once.
fn listing_with(bad: Packet) -> Vec<Packet> {
    vec![
        stat("a", MODE_DIR | 0o755, 0, ""),
        stat("a/ok", 0o644, 2, ""),
        bad,
        packet(PacketType::PacketStat, 0, b""),
        packet(PacketType::PacketData, 1, b"ok"),
        packet(PacketType::PacketData, 1, b""),
        packet(PacketType::PacketData, 2, b"pwned"),
        packet(PacketType::PacketData, 2, b""),
        packet(PacketType::PacketFin, 0, b""),
    ]
}

/// Every entry below `dir`, relative, sorted (symlinks not followed).
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
            out.push(
                e.path()
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            );
        }
    }
    out.sort();
    out
}

/// Runs `kiln solve -o OUTPUT` (with `{out}` replaced by `tmp/out`) against
/// a fake daemon sending `export`; returns the temporary directory, kiln's
/// run, and what kiln answered the fake daemon's export call.
async fn solve_against(
    export: HostileExport,
    output: &str,
) -> (tempfile::TempDir, Run, Option<Result<(), Status>>) {
    solve_with(export, output, false).await
}

/// [`solve_against`], with a daemon that reports success if `lie`.
async fn solve_with(
    export: HostileExport,
    output: &str,
    lie: bool,
) -> (tempfile::TempDir, Run, Option<Result<(), Status>>) {
    let tmp = tempfile::tempdir().unwrap();
    let def = write_llb(tmp.path(), "def.llb", &kiln_llb::image("alpine").unwrap());
    let sock = tmp.path().join("fake.sock");
    let fake = if lie {
        FakeDaemon::start_lying(&sock, export).await
    } else {
        FakeDaemon::start(&sock, export).await
    };
    let out = tmp.path().join("out");
    let output = output.replace("{out}", &out.display().to_string());
    let run = kiln_at(
        &fake.address(),
        &[
            "solve",
            "-f",
            def.to_str().unwrap(),
            "--progress",
            "plain",
            "-o",
            &output,
        ],
    )
    .await;
    let answered = fake.export_result();
    drop(fake);
    (tmp, run, answered)
}

/// kiln refused `path` itself (the status it sent the daemon says so) and
/// said so to the user; nothing but `out/` and the test's own files exist:
/// not even the entries the daemon sent before the refused one (an export
/// is staged and reaches `out/` only when the build succeeded).
#[track_caller]
fn assert_refused(tmp: &Path, run: &Run, answered: Option<Result<(), Status>>, path: &str) {
    run.failure();
    let quoted = format!("refused path {path:?}");
    assert!(
        run.stderr.contains(&quoted),
        "stderr should name {quoted}:\n{}",
        run.stderr
    );
    let status = answered
        .expect("kiln was called back")
        .expect_err("kiln refused the export");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains(&quoted), "{status:?}");
    let expected = vec!["def.llb".to_string(), "fake.sock".into(), "out".into()];
    assert_eq!(tree(tmp), expected, "written outside out/ or left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dot_dot_path_is_refused_and_nothing_leaves_dest() {
    // `..` as a directory, then a file below it: it would land beside out/.
    let packets = vec![
        stat("..", MODE_DIR | 0o755, 0, ""),
        stat("../escape", 0o644, 5, ""),
        packet(PacketType::PacketStat, 0, b""),
        packet(PacketType::PacketData, 1, b"pwned"),
        packet(PacketType::PacketData, 1, b""),
        packet(PacketType::PacketFin, 0, b""),
    ];
    let (tmp, run, answered) =
        solve_against(HostileExport::Packets(packets), "type=local,dest={out}").await;
    assert_refused(tmp.path(), &run, answered, "..");
    // And below a real directory.
    let bad = "a/../../escape";
    let (tmp, run, answered) = solve_against(
        HostileExport::Packets(listing_with(stat(bad, 0o644, 5, ""))),
        "type=local,dest={out}",
    )
    .await;
    assert_refused(tmp.path(), &run, answered, bad);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_export_fails_even_when_the_daemon_reports_success() {
    let bad = "../escape";
    let mut packets = listing_with(stat("b", 0o644, 2, ""));
    packets.insert(0, stat(bad, 0o644, 5, ""));
    let (tmp, run, answered) = solve_with(
        HostileExport::Packets(packets),
        "type=local,dest={out}",
        true,
    )
    .await;
    assert_refused(tmp.path(), &run, answered, bad);
    assert!(
        run.stderr
            .contains("the daemon reported success, but kiln's side of the export failed"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absolute_path_is_refused() {
    let tmp_probe = tempfile::tempdir().unwrap();
    let target = tmp_probe.path().join("abs-escape");
    let bad = target.to_str().unwrap().to_owned();
    // Absolute paths sort before `a`: send it first.
    let mut packets = listing_with(stat("b", 0o644, 2, ""));
    packets.insert(0, stat(&bad, 0o644, 5, ""));
    let (tmp, run, answered) =
        solve_against(HostileExport::Packets(packets), "type=local,dest={out}").await;
    assert_refused(tmp.path(), &run, answered, &bad);
    assert!(!target.exists(), "{} written", target.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_written_through_a_symlink_the_daemon_sent() {
    // `link -> ..` (the test's directory), then `link/escape`.
    let packets = vec![
        stat("link", MODE_SYMLINK | 0o777, 0, ".."),
        stat("link/escape", 0o644, 5, ""),
        packet(PacketType::PacketStat, 0, b""),
        packet(PacketType::PacketData, 1, b"pwned"),
        packet(PacketType::PacketData, 1, b""),
        packet(PacketType::PacketFin, 0, b""),
    ];
    let (tmp, run, answered) =
        solve_against(HostileExport::Packets(packets), "type=local,dest={out}").await;
    // The symlink itself is made as sent (it is content); nothing went through it.
    assert_refused(tmp.path(), &run, answered, "link/escape");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tar_export_cut_off_midway_leaves_no_file() {
    let (tmp, run, answered) = solve_against(
        HostileExport::FramesThenReset(vec![b"the first half of a tar".to_vec(); 4]),
        "type=tar,dest={out}.tar",
    )
    .await;
    run.failure();
    assert!(
        run.stderr.contains("exporter died mid-stream"),
        "{}",
        run.stderr
    );
    assert!(answered.is_some(), "kiln was called back");
    // kiln had created its temporary file (the frames arrived before the
    // reset); neither it nor out.tar is left.
    assert_eq!(tree(tmp.path()), ["def.llb", "fake.sock"]);
}
