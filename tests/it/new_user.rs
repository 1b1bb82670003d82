//! What a new user runs into (issue: tried as a new user would): names and
//! times of what kiln writes, machine-readable progress, the default
//! daemon, and one clear error for each common mistake.

use std::path::Path;

use crate::build::{kiln_build, sample_module};
use crate::common::*;

/// One entry of a tar file.
fn tar_entry(tar: &Path, entry: &str) -> Vec<u8> {
    let out = std::process::Command::new("tar")
        .arg("-xOf")
        .arg(tar)
        .arg(entry)
        .output()
        .unwrap();
    assert!(out.status.success(), "tar -xOf {} {entry}", tar.display());
    out.stdout
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tarball_is_named_after_t_and_created_now() {
    let tmp = tempfile::tempdir().unwrap();
    let m = unique();
    // Not a git checkout, no SOURCE_DATE_EPOCH.
    let dir = sample_module(tmp.path(), &m);
    let tar = tmp.path().join("app.tar");
    let name = format!("kiln-test/named:{m}");
    let dest = format!("type=docker,dest={}", tar.display());
    let mut cmd = kiln();
    cmd.env_remove("SOURCE_DATE_EPOCH");
    let args = crate::build::build_args(&dir, &["-t", &name, "-o", &dest]);
    let r = run_owned(cmd, &args).await;
    r.success();
    let manifest: serde_json::Value =
        serde_json::from_slice(&tar_entry(&tar, "manifest.json")).unwrap();
    let tags = manifest[0]["RepoTags"].to_string();
    assert!(tags.contains(&format!("kiln-test/named:{m}")), "{manifest}");
    let config: serde_json::Value =
        serde_json::from_slice(&tar_entry(&tar, manifest[0]["Config"].as_str().unwrap())).unwrap();
    let created = config["created"].as_str().unwrap_or_default();
    assert!(
        !created.is_empty() && !created.starts_with("1970"),
        "created now, not at the epoch: {created:?}"
    );
    if daemon().kind.is_docker() {
        let _ = docker(&["image", "rm", &name]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rawjson_build_writes_only_json_lines_and_a_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = sample_module(tmp.path(), &unique());
    let oci = tmp.path().join("o.tar");
    let r = kiln_build(
        &dir,
        &[
            "-o",
            &format!("type=oci,dest={}", oci.display()),
            "--progress",
            "rawjson",
        ],
    )
    .await;
    r.success();
    let lines: Vec<&str> = r.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty());
    for l in &lines {
        assert!(
            serde_json::from_str::<serde_json::Value>(l).is_ok(),
            "a line that is not JSON on stderr: {l:?}\n{}",
            r.stderr
        );
    }
    let last: serde_json::Value = serde_json::from_str(lines[lines.len() - 1]).unwrap();
    assert_eq!(last["summary"]["module"], "svc", "{last}");
    assert_eq!(last["summary"]["go_version"], "1.24.4", "{last}");
    assert!(last["summary"]["platforms"].is_array(), "{last}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_users_docker_is_the_default_daemon() {
    // A laptop that runs Docker: no --addr, no BUILDKIT_HOST, only DOCKER_HOST.
    let d = daemon();
    if !d.supports(Need::DockerEngine) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let m = unique();
    let dir = sample_module(tmp.path(), &m);
    let name = format!("kiln-test/default:{m}");
    let args = crate::build::build_args(&dir, &["-t", &name]);
    // build_args starts with the daemon's --addr: drop it.
    let args: Vec<String> = args.into_iter().skip(2).collect();
    let mut cmd = kiln();
    cmd.env("DOCKER_HOST", d.docker_host());
    let r = run_owned(cmd, &args).await;
    r.success();
    let out = docker(&["run", "--rm", &name]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("greetings, {m}")),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = docker(&["image", "rm", &name]);
}

#[tokio::test(flavor = "multi_thread")]
async fn common_mistakes_get_one_clear_error_each() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = sample_module(tmp.path(), &unique());
    let d = dir.to_str().unwrap();

    // BUILDKIT_HOST that is not an address: the variable is named.
    let mut cmd = kiln();
    cmd.env("BUILDKIT_HOST", "my-buildkit:1234");
    let r = run(cmd, &["info"]).await;
    r.failure();
    assert!(r.stderr.contains("BUILDKIT_HOST"), "{}", r.stderr);
    assert!(r.stderr.contains("hint:"), "{}", r.stderr);

    // Not a Go module.
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let r = kiln_d(&["build", empty.to_str().unwrap()]).await;
    r.failure();
    assert!(
        r.stderr.contains("no go.mod") && r.stderr.contains("module's root"),
        "{}",
        r.stderr
    );

    // A tag with upper case letters.
    let r = kiln_d(&["build", d, "-t", "Team/App:1"]).await;
    r.failure();
    assert!(
        r.stderr.contains("-t") && r.stderr.contains("lowercase"),
        "{}",
        r.stderr
    );

    // cgo for a platform the daemon cannot run: no C cross compiler.
    let r = kiln_build(&dir, &["--cgo", "--platform", "linux/arm64"]).await;
    r.failure();
    assert!(
        r.stderr.contains("cgo") && r.stderr.contains("linux/arm64"),
        "{}",
        r.stderr
    );
    assert_eq!(
        r.stderr.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "{}",
        r.stderr
    );

    // A socket this user may not use: what to do is named.
    if let Some(sock) = daemon().docker_sock.clone().or(daemon().grpc_sock.clone()) {
        let scheme = if daemon().kind.is_docker() {
            "docker"
        } else {
            "unix"
        };
        let out = tokio::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_kiln"))
            .arg("--addr")
            .arg(format!("{scheme}://{}", sock.display()))
            .arg("info")
            .env("NO_COLOR", "1")
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("permission denied") && stderr.contains("group"),
            "{stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_push_says_what_it_left_in_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let m = unique();
    let dir = sample_module(tmp.path(), &m);
    // A registry address nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let name = format!("127.0.0.1:{port}/kiln-test/unpushed:{m}");
    let r = kiln_build(&dir, &["-t", &name, "--push"]).await;
    r.failure();
    let said = r
        .stderr
        .contains(&format!("had already written the image {name}"));
    if daemon().kind.is_docker() {
        // The image (or moby) exporter stores before the push: say so.
        assert!(said, "{}", r.stderr);
        let _ = docker(&["image", "rm", &name]);
    } else {
        // buildkitd has no store a user sees: nothing to say.
        assert!(!said, "{}", r.stderr);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_literal_builder_image_names_its_go_release() {
    let h = harness();
    let tmp = tempfile::tempdir().unwrap();
    let m = unique();
    let dir = sample_module(tmp.path(), &m);
    let d = dir.to_str().unwrap();
    let oci = tmp.path().join("o.tar");
    let o = format!("type=oci,dest={}", oci.display());
    // No {go}: the image's GOLANG_VERSION is the release (1.24.4 in the fixture).
    let base = [
        "build",
        d,
        "--builder-image",
        &h.go_image,
        "--base-image",
        &h.static_image,
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        daemon_args(&base.iter().chain(extra).copied().collect::<Vec<_>>())
    };
    let r = run_owned(kiln(), &with(&["-o", &o, "--progress", "plain"])).await;
    r.success();
    assert!(
        r.stderr
            .contains(&format!("built svc with Go {}", crate::build::go_version())),
        "{}",
        r.stderr
    );
    // --go that disagrees: both named.
    let r = run_owned(kiln(), &with(&["--go", "1.24.9"])).await;
    r.failure();
    assert!(
        r.stderr.contains("--go 1.24.9") && r.stderr.contains("has Go 1.24.4"),
        "{}",
        r.stderr
    );
    // go.mod's toolchain that disagrees.
    let gomod = std::fs::read_to_string(dir.join("go.mod")).unwrap();
    std::fs::write(dir.join("go.mod"), format!("{gomod}\ntoolchain go1.24.9\n")).unwrap();
    let r = run_owned(kiln(), &with(&[])).await;
    r.failure();
    assert!(
        r.stderr.contains("toolchain go1.24.9") && r.stderr.contains("has Go 1.24.4"),
        "{}",
        r.stderr
    );
}

/// A push the registry refuses (a stale password in Docker's config): the
/// report's hint says so, from kiln asking the registry itself, never from
/// the daemon's error text.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_push_says_to_log_in_again() {
    use crate::session_auth::{docker_config, start_registry};
    let tmp = tempfile::tempdir().unwrap();
    let password = format!("pw-{}", unique());
    let reg = start_registry(tmp.path(), &password).await;
    let stale = format!("stale-{}", unique());
    let config = docker_config(&tmp.path().join("docker-config"), &reg.addr, &stale);
    let m = unique();
    let dir = sample_module(tmp.path(), &m);
    let name = format!("{}/kiln-test/refused:{m}", reg.addr);
    let args = crate::build::build_args(&dir, &["-t", &name, "--push"]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut cmd = kiln();
    cmd.env("DOCKER_CONFIG", &config);
    let r = run(cmd, &refs).await;
    r.failure();
    assert!(
        r.stderr.contains("hint:")
            && r.stderr.contains("refused the credentials")
            && r.stderr.contains(&format!("docker login {}", reg.addr)),
        "{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains(&stale),
        "the password leaked:\n{}",
        r.stderr
    );
    if daemon().kind.is_docker() {
        let _ = docker(&["image", "rm", &name]);
    }
}

/// A base image without the target platform, and one that does not exist:
/// each named, with the platforms it has, from the registry's answer.
#[tokio::test(flavor = "multi_thread")]
async fn a_base_image_without_the_platform_or_at_all_is_named() {
    let h = harness();
    let tmp = tempfile::tempdir().unwrap();
    let dir = sample_module(tmp.path(), &unique());
    let r = kiln_build(&dir, &["--platform", "linux/s390x", "--print-llb"]).await;
    r.failure();
    assert!(
        r.stderr.contains(&h.static_image)
            && r.stderr.contains("has no linux/s390x variant")
            && r.stderr.contains("linux/amd64"),
        "{}",
        r.stderr
    );
    let missing = format!("{}/kiln-fixtures/absent-{}:latest", h.registry, unique());
    let mut args = crate::build::build_args(&dir, &["--print-llb"]);
    let at = args.iter().position(|a| a == "--base-image").unwrap();
    args[at + 1] = missing.clone();
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = run(kiln(), &refs).await;
    r.failure();
    assert!(
        r.stderr.contains(&missing) && r.stderr.contains("no such image or tag"),
        "{}",
        r.stderr
    );
}
