//! Running the `kiln` binary from tests.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

pub use kiln_test_support::{daemon, harness, Need, Relay, RelayOptions};

/// The result of one `kiln` run.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    #[track_caller]
    pub fn success(&self) -> &Self {
        assert_eq!(
            self.code,
            Some(0),
            "kiln failed\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn failure(&self) -> &Self {
        assert_eq!(
            self.code,
            Some(1),
            "kiln should have failed with exit 1\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        assert!(
            !self.stderr.contains("panicked") && !self.stderr.contains("RUST_BACKTRACE"),
            "kiln panicked:\n{}",
            self.stderr
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

/// A `kiln` command with a clean environment for address selection.
pub fn kiln() -> tokio::process::Command {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_kiln"));
    c.env_remove("BUILDKIT_HOST")
        .env_remove("DOCKER_HOST")
        .env("NO_COLOR", "1")
        .kill_on_drop(true);
    c
}

/// [`kiln`] already pointed at this run's daemon (`--addr` and TLS flags).
pub fn kiln_on() -> tokio::process::Command {
    let mut c = kiln();
    c.args(daemon().kiln_args());
    c
}

/// Runs `kiln ARGS…` to completion (at most five minutes: a hang guard, not
/// a speed check; a cold cross-compile on a loaded 2-core runner takes minutes).
pub async fn run(mut cmd: tokio::process::Command, args: &[&str]) -> Run {
    cmd.args(args);
    let start = Instant::now();
    let out: Output = tokio::time::timeout(Duration::from_secs(300), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("kiln {args:?} did not finish within 300 s"))
        .expect("kiln runs");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: start.elapsed(),
    }
}

/// `kiln` against this run's daemon: `kiln --addr ADDR [TLS flags] ARGS…`.
pub async fn kiln_d(args: &[&str]) -> Run {
    run_owned(kiln(), &daemon_args(args)).await
}

/// This run's daemon's `--addr` and TLS flags followed by `args`.
pub fn daemon_args(args: &[&str]) -> Vec<String> {
    let mut all = daemon().kiln_args();
    all.extend(args.iter().map(|s| (*s).to_string()));
    all
}

/// [`run`] with owned arguments.
pub async fn run_owned(cmd: tokio::process::Command, args: &[String]) -> Run {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    run(cmd, &refs).await
}

/// The Docker CLI: on this run's Docker Engine, or, when the run targets a
/// standalone buildkitd, on the harness's Docker Engine (to run images that
/// buildkitd pushed to the registry).
pub fn docker(args: &[&str]) -> std::process::Output {
    let d = daemon();
    let host = if d.kind.is_docker() {
        d.docker_host()
    } else {
        format!("unix://{}", harness().docker_sock.display())
    };
    std::process::Command::new("docker")
        .env("DOCKER_HOST", host)
        .args(args)
        .output()
        .expect("docker CLI")
}

/// `kiln --addr ADDR ARGS…`.
pub async fn kiln_at(addr: &str, args: &[&str]) -> Run {
    let mut all = vec!["--addr", addr];
    all.extend_from_slice(args);
    run(kiln(), &all).await
}

/// Asserts `kiln info --format json` output describes the harness's daemon.
#[track_caller]
pub fn assert_info(run: &Run, addr: &str) {
    run.success();
    let v = run.json();
    assert_eq!(v["address"], addr, "{v}");
    let workers = v["workers"].as_array().expect("workers array");
    assert!(!workers.is_empty(), "no workers: {v}");
    let platforms = workers[0]["platforms"].as_array().expect("platforms");
    assert!(
        platforms.iter().any(|p| p == "linux/amd64"),
        "linux/amd64 missing from {platforms:?}"
    );
    // Docker's classic-store worker has only a host-gateway label.
    assert!(
        workers[0]["labels"]
            .as_object()
            .is_some_and(|l| !l.is_empty()),
        "worker labels missing: {v}"
    );
    assert_eq!(
        v["daemon"]["kind"],
        if addr.starts_with("docker://") {
            "docker-engine"
        } else {
            "buildkitd"
        },
        "{v}"
    );
}

/// Writes an executable shell script.
pub fn script(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// The daemon's platform (the harness's dockerd runs linux/amd64).
pub fn amd64() -> kiln_llb::Platform {
    kiln_llb::Platform::parse("linux/amd64").expect("platform")
}

/// Marshals `state` for linux/amd64 and writes the Definition to `dir/name`.
pub fn write_llb(dir: &Path, name: &str, state: &kiln_llb::State) -> std::path::PathBuf {
    let def = state
        .marshal(&kiln_llb::Constraints::new(amd64()))
        .expect("marshal");
    let p = dir.join(name);
    std::fs::write(&p, def.to_bytes()).expect("write definition");
    p
}

/// The Go fixture image as an LLB state (it has a shell and coreutils).
pub fn go_image() -> kiln_llb::State {
    kiln_llb::image(&harness().go_image).expect("image ref")
}

/// Lists a tar file's entries (`tar -tf`).
pub fn tar_list(path: &Path) -> Vec<String> {
    let out = std::process::Command::new("tar")
        .arg("-tf")
        .arg(path)
        .output()
        .expect("tar");
    assert!(
        out.status.success(),
        "tar -tf {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim_start_matches("./").to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// A unique marker so a test's steps never hit another test's cache.
pub fn unique() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Writes an executable shell script with a bash shebang.
pub fn script_file(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("#!/bin/bash\n{body}\n")).expect("write script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// Every file under `dir`, concatenated (to search for a value).
pub fn all_bytes(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                out.extend(std::fs::read(e.path()).unwrap());
            }
        }
    }
    out
}

/// Calls `f` with every file under `dir` (recursively, in a stable order)
/// that `keep` accepts, gzip and zstd files decompressed: a compressed
/// layer would hide the bytes a test searches for.
pub fn each_plain_file(dir: &Path, keep: impl Fn(&Path) -> bool, mut f: impl FnMut(&Path, &[u8])) {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&d)
            .unwrap_or_else(|e| panic!("read {}: {e}", d.display()))
            .map(|e| e.unwrap())
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let (path, t) = (e.path(), e.file_type().unwrap());
            if t.is_dir() {
                stack.push(path);
            } else if t.is_file() && keep(&path) {
                let raw = std::fs::read(&path).unwrap();
                let tool = if raw.starts_with(&[0x1f, 0x8b]) {
                    Some("gzip")
                } else if raw.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
                    Some("zstd")
                } else {
                    None
                };
                match tool {
                    Some(tool) => {
                        let out = std::process::Command::new(tool)
                            .arg("-dc")
                            .arg(&path)
                            .output()
                            .unwrap_or_else(|e| panic!("{tool}: {e}"));
                        assert!(out.status.success(), "{tool} -dc {}", path.display());
                        f(&path, &out.stdout);
                    }
                    None => f(&path, &raw),
                }
            }
        }
    }
}

/// Unpacks a tar file into `into` (created).
pub fn untar(tar: &Path, into: &Path) {
    std::fs::create_dir_all(into).unwrap();
    let out = std::process::Command::new("tar")
        .arg("-xf")
        .arg(tar)
        .arg("-C")
        .arg(into)
        .output()
        .expect("tar");
    assert!(
        out.status.success(),
        "tar -xf {}: {}",
        tar.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The socket of a store the harness runs beside the daemons (podman's
/// API, containerd) from `var`; `None` (the test returns) when run by hand
/// without it, after saying how to start it. In CI its absence fails.
pub fn harness_socket(var: &str, what: &str) -> Option<std::path::PathBuf> {
    match harness().var(var) {
        Some(s) if !s.is_empty() => Some(std::path::PathBuf::from(s)),
        _ => {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
            assert!(
                !ci,
                "{var} is not set: the harness did not start {what} (./scripts/harness.sh up, then eval \"$(./scripts/harness.sh env)\")"
            );
            eprintln!(
                "skipped: {var} is not set; start {what} with ./scripts/harness.sh up and eval \"$(./scripts/harness.sh env)\""
            );
            None
        }
    }
}
