//! Ctrl-C at every point of a build: kiln exits 130 at once, the daemon
//! records the build as ended (its build history shows no running job),
//! and no output, whole or partial, is left behind.
//!
//! The build ids come from kiln's own last lines ("the daemon at … ended
//! build ID"); each is then looked up independently in the daemon's history.

use std::path::Path;
use std::time::{Duration, Instant};

use kiln_llb::ExecOptions;

use crate::build::{build_args, sample_module};
use crate::common::*;

/// What an interrupted kiln printed.
struct Interrupted {
    stderr: String,
}

/// Runs kiln with `args`, sends SIGINT once its stderr shows `ready` (at
/// once when empty), and checks it exits 130 within 10 s saying `cancelled`.
async fn interrupt_when(args: &[String], ready: &str) -> Interrupted {
    use tokio::io::AsyncReadExt;
    let mut cmd = kiln();
    cmd.args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let pid = child.id().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut buf = [0u8; 8192];
    while !seen.contains(ready) {
        assert!(Instant::now() < deadline, "never saw {ready:?}:\n{seen}");
        let n = tokio::time::timeout(Duration::from_secs(120), stderr.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "kiln exited before {ready:?}:\n{seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    let t0 = Instant::now();
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap_or_else(|_| panic!("kiln still runs 10 s after SIGINT:\n{seen}"))
        .unwrap();
    let mut rest = String::new();
    let _ = stderr.read_to_string(&mut rest).await;
    seen.push_str(&rest);
    assert_eq!(status.code(), Some(130), "exit code after SIGINT:\n{seen}");
    assert!(
        t0.elapsed() < Duration::from_secs(8),
        "kiln took {:?} to exit",
        t0.elapsed()
    );
    assert!(rest.contains("cancelled"), "{seen}");
    assert!(!seen.contains("still lists build"), "{seen}");
    Interrupted { stderr: seen }
}

impl Interrupted {
    /// The builds kiln says the daemon ended.
    fn ended(&self) -> Vec<String> {
        self.stderr
            .lines()
            .filter_map(|l| {
                l.split_once(" ended build ")
                    .map(|(_, r)| r.trim().to_string())
            })
            .collect()
    }

    /// Checks, in the daemon's own history, that every build kiln
    /// cancelled exists and is no longer running; `started` demands at
    /// least one (the interrupt came after the solve began).
    async fn assert_daemon_ended(&self, started: bool) {
        let ended = self.ended();
        if started {
            assert!(
                !ended.is_empty(),
                "kiln named no ended build:\n{}",
                self.stderr
            );
        }
        let client = daemon().client().await;
        for r in &ended {
            let record = client
                .build_record(r)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("the daemon has no record of build {r}"));
            assert!(!record.running, "build {r} still runs: {record:?}");
        }
        // Nothing of ours left among the running builds.
        let active = client.active_builds().await.unwrap();
        for a in active {
            assert!(!ended.contains(&a.build_ref), "{a:?} still active");
        }
    }
}

/// No file but `keep` in `dir`: neither the output nor a temporary one.
pub(crate) fn assert_nothing_written(dir: &Path, keep: &[&str]) {
    let left: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !keep.contains(&n.as_str()))
        .collect();
    assert!(
        left.is_empty(),
        "left behind in {}: {left:?}",
        dir.display()
    );
}

/// A module whose source is big (a 3 GiB sparse file): its sync takes
/// long enough to interrupt.
pub(crate) fn big_module(root: &Path, m: &str) -> std::path::PathBuf {
    let dir = sample_module(root, m);
    let f = std::fs::File::create(dir.join("big.bin")).unwrap();
    f.set_len(3 << 30).unwrap();
    dir
}

/// The output kiln build writes on every daemon: an OCI tarball where the
/// daemon has tarball exporters, else the image store.
pub(crate) fn build_output(out_dir: &Path, m: &str) -> Vec<String> {
    if daemon().kind == kiln_test_support::DaemonKind::DockerClassic {
        vec!["-t".into(), format!("kiln-test/cancel:{m}")]
    } else {
        vec![
            "-o".into(),
            format!("type=oci,dest={}", out_dir.join("out.tar").display()),
        ]
    }
}

/// Ctrl-C while kiln plans (images resolving, before or as the solve starts).
#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_while_planning() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let m = unique();
    let dir = sample_module(tmp.path(), &m);
    let mut extra = build_output(&out, &m);
    extra.extend(["--progress".into(), "plain".into()]);
    let refs: Vec<&str> = extra.iter().map(String::as_str).collect();
    let i = interrupt_when(&build_args(&dir, &refs), "resolve image config").await;
    i.assert_daemon_ended(false).await;
    assert_nothing_written(&out, &[]);
}

/// Ctrl-C while the module's source is still being sent.
#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_while_the_context_syncs() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let m = unique();
    let dir = big_module(tmp.path(), &m);
    let mut extra = build_output(&out, &m);
    extra.extend(["--progress".into(), "plain".into()]);
    let refs: Vec<&str> = extra.iter().map(String::as_str).collect();
    let i = interrupt_when(&build_args(&dir, &refs), "load module source").await;
    i.assert_daemon_ended(true).await;
    assert_nothing_written(&out, &[]);
}

/// Ctrl-C while a step runs: the step's process is gone soon after.
#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_while_a_step_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let m = unique();
    let st = go_image()
        .run(
            ExecOptions::shell(format!("echo sleeping-{m}; sleep 120"))
                .custom_name(format!("[test 1/1] sleep {m}")),
        )
        .root();
    let def = write_llb(tmp.path(), "d.llb", &st);
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let mut args = daemon().kiln_args();
    args.extend(
        [
            "solve",
            "-f",
            def.to_str().unwrap(),
            "--progress",
            "plain",
            "-o",
            &format!("type=local,dest={}", out.display()),
        ]
        .map(String::from),
    );
    let i = interrupt_when(&args, &format!("sleeping-{m}")).await;
    i.assert_daemon_ended(true).await;
    assert_nothing_written(&out, &[]);
    // The daemon ended the step's process too.
    let gone = async {
        loop {
            let ps = std::process::Command::new("pgrep")
                .args(["-f", &format!("sleeping-{m}")])
                .output()
                .unwrap();
            if ps.stdout.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(15), gone)
        .await
        .expect("the step's process still runs on the daemon 15 s after cancellation");
}

/// Ctrl-C while the daemon sends the result, as a tarball and as a
/// directory: no partial output, no temporary file or directory. Run in
/// the exclusive phase (`exclusive::ctrl_c_while_the_result_is_sent`): it
/// writes hundreds of MiB and times kiln's exit, which four rows writing at
/// once on a 2-core machine stretch past any fair bound.
pub(crate) async fn ctrl_c_while_the_result_is_sent() {
    for (kind, ready) in [("tar", "sending tarball"), ("local", "copying files")] {
        let tmp = tempfile::tempdir().unwrap();
        let m = unique();
        // A 512 MiB (sparse) file to export: sending it takes a moment (four
        // rows write it at once).
        let st = go_image()
            .run(
                ExecOptions::shell(format!("truncate -s 512M /big-{m} && echo made-{m}"))
                    .custom_name(format!("[test 1/1] make a big file {m}")),
            )
            .root();
        let def = write_llb(tmp.path(), "d.llb", &st);
        let out = tmp.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let dest = out.join("result");
        let mut args = daemon().kiln_args();
        args.extend(
            [
                "solve",
                "-f",
                def.to_str().unwrap(),
                "--progress",
                "plain",
                "-o",
                &format!("type={kind},dest={}", dest.display()),
            ]
            .map(String::from),
        );
        // The step is done and the export has begun.
        let i = interrupt_when(&args, ready).await;
        i.assert_daemon_ended(true).await;
        if kind == "local" {
            // The destination directory may exist (kiln creates it), empty.
            if dest.exists() {
                assert_nothing_written(&dest, &[]);
                std::fs::remove_dir(&dest).unwrap();
            }
        }
        assert_nothing_written(&out, &[]);
    }
}
