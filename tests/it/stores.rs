//! `-o type=podman` and `-o type=containerd`: kiln loads the build into
//! podman (its REST API socket) and containerd (its gRPC socket) itself,
//! every platform kept, then podman and `ctr` run it.

use std::path::Path;

use crate::build::{kiln_build, sample_module};
use crate::common::*;
use crate::containerd::ctr_output as ctr;

fn classic() -> bool {
    daemon().kind == kiln_test_support::DaemonKind::DockerClassic
}

/// The platforms a build asks for: two, except on Docker's classic image
/// store, which holds one platform per image (a two-platform load is
/// refused there, see `outputs.rs`' unit tests).
fn platforms() -> &'static str {
    if classic() {
        "linux/amd64"
    } else {
        "linux/amd64,linux/arm64"
    }
}

fn cmd(program: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"))
}

/// `out`'s stdout; fails naming `what` and its output unless it succeeded.
pub(crate) fn ok(out: &std::process::Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// kiln's temporary files (`.kiln-*`) left in `dir`.
pub(crate) fn kiln_leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".kiln"))
        .collect()
}

/// Whether `f` is gzip (its magic bytes).
pub(crate) fn is_gzip(f: &Path) -> bool {
    std::fs::read(f).unwrap().starts_with(&[0x1f, 0x8b])
}

fn podman(socket: &Path, args: &[&str]) -> std::process::Output {
    let url = format!("unix://{}", socket.display());
    let mut all = vec!["--url", url.as_str()];
    all.extend_from_slice(args);
    cmd("podman", &all)
}

/// The first "done when": `kiln build --platform
/// linux/amd64,linux/arm64 -o type=podman -t app`, then `podman manifest
/// inspect app` lists both platforms and `podman run` prints the app's
/// output.
#[tokio::test(flavor = "multi_thread")]
async fn a_two_platform_build_loads_into_podman_as_a_manifest_list() {
    let Some(socket) = harness_socket("KILN_TEST_PODMAN", "podman's API service") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let m = unique();
    let dir = sample_module(tmp.path(), &format!("podman-{m}"));
    let name = format!("app-{m}");
    let r = kiln_build(
        &dir,
        &[
            "--platform",
            platforms(),
            "-o",
            &format!("type=podman,address=unix://{}", socket.display()),
            "-t",
            &name,
        ],
    )
    .await;
    r.success();
    assert!(r.stderr.contains("loaded "), "{}", r.stderr);
    // The load is a step of the progress, which ends.
    let step = format!(
        "loading docker.io/library/{name}:latest into podman (unix://{})",
        socket.display()
    );
    let number = r
        .stderr
        .lines()
        .find_map(|l| l.strip_suffix(step.as_str()))
        .unwrap_or_else(|| panic!("no step {step:?}:\n{}", r.stderr))
        .trim()
        .to_string();
    assert!(
        r.stderr.contains(&format!("{number} DONE ")),
        "{number} never ended:\n{}",
        r.stderr
    );
    if classic() {
        let inspect = ok(
            &podman(&socket, &["image", "inspect", &name]),
            "podman image inspect",
        );
        assert!(inspect.contains("amd64"), "{inspect}");
    } else {
        let list = ok(
            &podman(&socket, &["manifest", "inspect", &name]),
            "podman manifest inspect",
        );
        let v: serde_json::Value = serde_json::from_str(&list).unwrap();
        let mut archs: Vec<String> = v["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                format!(
                    "{}/{}",
                    e["platform"]["os"].as_str().unwrap_or(""),
                    e["platform"]["architecture"].as_str().unwrap_or("")
                )
            })
            .collect();
        archs.sort();
        assert_eq!(archs, ["linux/amd64", "linux/arm64"], "{list}");
    }
    let run = ok(
        &podman(
            &socket,
            &[
                "run",
                "--rm",
                "--platform",
                "linux/amd64",
                "--network",
                "none",
                "--ulimit",
                "nofile=16384:16384",
                "--ulimit",
                "nproc=16384:16384",
                &name,
            ],
        ),
        "podman run",
    );
    assert!(run.contains(&format!("greetings, podman-{m}")), "{run}");
}

/// The same with containerd: `ctr images ls` lists every platform and
/// `ctr run` runs the amd64 one (ctr unpacks it).
#[tokio::test(flavor = "multi_thread")]
async fn a_two_platform_build_loads_into_containerd_with_every_platform() {
    let Some(socket) = harness_socket("KILN_TEST_CONTAINERD", "containerd") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let m = unique();
    let dir = sample_module(tmp.path(), &format!("containerd-{m}"));
    let name = format!("kiln-test/app-{m}:1");
    let r = kiln_build(
        &dir,
        &[
            "--platform",
            platforms(),
            "-o",
            &format!(
                "type=containerd,address={},namespace=k8s.io",
                socket.display()
            ),
            "-t",
            &name,
        ],
    )
    .await;
    r.success();
    let full = format!("docker.io/{name}");
    let ls = ok(&ctr(&socket, "k8s.io", &["images", "ls"]), "ctr images ls");
    let line = ls
        .lines()
        .find(|l| l.starts_with(&full))
        .unwrap_or_else(|| panic!("{full} is not listed:\n{ls}"));
    assert!(line.contains("linux/amd64"), "{line}");
    if !classic() {
        assert!(line.contains("linux/arm64"), "{line}");
    }
    let id = format!("kiln-{m}");
    let run = ok(
        &ctr(
            &socket,
            "k8s.io",
            &["run", "--rm", "--platform", "linux/amd64", &full, &id],
        ),
        "ctr run",
    );
    assert!(run.contains(&format!("greetings, containerd-{m}")), "{run}");
}

/// No socket: refused before anything is built, naming the socket and how
/// to start the store; a namespace containerd lacks: refused before
/// building, naming it, and never created.
#[tokio::test(flavor = "multi_thread")]
async fn a_missing_socket_or_namespace_is_a_clear_error_and_loads_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let m = unique();
    let dir = sample_module(tmp.path(), &format!("stores-err-{m}"));
    let missing = tmp.path().join("no.sock");
    for (kind, hint) in [
        ("podman", "podman system service"),
        ("containerd", "start containerd"),
    ] {
        let r = kiln_build(
            &dir,
            &[
                "-o",
                &format!("type={kind},address={},name=app-{m}", missing.display()),
            ],
        )
        .await;
        r.failure();
        for want in [missing.display().to_string().as_str(), hint, "address="] {
            assert!(r.stderr.contains(want), "{kind}: {want}: {}", r.stderr);
        }
        assert!(
            !r.stderr.contains("go build"),
            "{kind}: refused before building: {}",
            r.stderr
        );
    }
    let Some(socket) = harness_socket("KILN_TEST_CONTAINERD", "containerd") else {
        return;
    };
    let ns = format!("nope-{m}");
    let r = kiln_build(
        &dir,
        &[
            "-o",
            &format!(
                "type=containerd,address={},namespace={ns},name=app-{m}",
                socket.display()
            ),
        ],
    )
    .await;
    r.failure();
    assert!(
        r.stderr.contains(&ns) && r.stderr.contains("namespace"),
        "{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("go build"),
        "refused before building: {}",
        r.stderr
    );
    let spaces = ok(
        &ctr(&socket, "default", &["namespaces", "ls"]),
        "ctr namespaces ls",
    );
    assert!(
        !spaces.contains(&ns),
        "kiln created the namespace: {spaces}"
    );
}

/// Fanned out (`--builder linux/arm64=…`, a second endpoint): the joined
/// layout is loaded into containerd with both platforms, and a `.tar.gz`
/// OCI output is the same join, gzip. The classic store cannot be an
/// endpoint of a fan-out (refused, tested in build.rs).
#[tokio::test(flavor = "multi_thread")]
async fn a_fanned_out_build_loads_into_containerd_and_gzips_its_tarball() {
    if classic() {
        eprintln!("the classic image store cannot be a fan-out endpoint");
        return;
    }
    let Some(socket) = harness_socket("KILN_TEST_CONTAINERD", "containerd") else {
        return;
    };
    let relay = Relay::for_daemon(RelayOptions::default()).await;
    let tmp = tempfile::tempdir().unwrap();
    let m = unique();
    let dir = sample_module(tmp.path(), &format!("fan-{m}"));
    let name = format!("kiln-test/fan-{m}:1");
    let gz = tmp.path().join("joined.tar.gz");
    let arm = format!("linux/arm64={}", crate::build::second_endpoint(&relay));
    let r = kiln_build(
        &dir,
        &[
            "--platform",
            "linux/amd64,linux/arm64",
            "--builder",
            &arm,
            "-t",
            &name,
            "-o",
            &format!(
                "type=containerd,address={},namespace=k8s.io",
                socket.display()
            ),
            "-o",
            &format!("type=oci,dest={}", gz.display()),
            "--progress",
            "plain",
        ],
    )
    .await;
    r.success();
    assert!(is_gzip(&gz), "a .tar.gz is gzip");
    assert_eq!(kiln_leftovers(tmp.path()), Vec::<String>::new());
    let full = format!("docker.io/{name}");
    let ls = ok(&ctr(&socket, "k8s.io", &["images", "ls"]), "ctr images ls");
    let line = ls
        .lines()
        .find(|l| l.starts_with(&full))
        .unwrap_or_else(|| panic!("{full} is not listed:\n{ls}"));
    assert!(
        line.contains("linux/amd64") && line.contains("linux/arm64"),
        "{line}"
    );
    // The digest kiln printed is the index containerd holds.
    let digest = r.stdout.trim();
    assert!(line.contains(digest), "{digest} vs {line}");
}
