//! `--cache-to` / `--cache-from` (the CI runners issue): a build on this
//! row's daemon exports its layer cache to the registry; a fresh buildkitd
//! (a new CI runner: empty state, its own root) imports it and runs neither
//! `go mod download` nor `go build` again.

use std::path::Path;
use std::time::Duration;

use crate::build::{build_args, sample_module};
use crate::common::*;
use crate::session_common::Background;

/// A buildkitd of its own (root, socket and config in `dir`), like a CI
/// runner's: nothing cached.
pub(crate) async fn fresh_buildkitd(dir: &Path) -> (String, Background) {
    let h = harness();
    let bin = h.dir.join("bin/buildkitd");
    assert!(
        bin.is_file(),
        "{} missing: the harness installs it from ../shared/buildkit (./scripts/harness.sh up)",
        bin.display()
    );
    let sock = dir.join("bk.sock");
    let config = dir.join("buildkitd.toml");
    std::fs::write(
        &config,
        format!(
            "root = \"{root}\"\n[grpc]\n  address = [\"unix://{sock}\"]\n[worker.oci]\n  enabled = true\n  binary = \"/usr/sbin/runc\"\n[worker.containerd]\n  enabled = false\n[registry.\"{reg}\"]\n  http = true\n",
            root = dir.join("root").display(),
            sock = sock.display(),
            reg = h.registry
        ),
    )
    .unwrap();
    let mut cmd = tokio::process::Command::new(bin);
    cmd.arg("--config").arg(&config);
    let bg = Background::spawn("buildkitd (fresh runner)", cmd, &dir.join("bk.log"));
    let addr = format!("unix://{}", sock.display());
    for _ in 0..100 {
        if sock.exists() && kiln_at(&addr, &["info"]).await.code == Some(0) {
            return (addr, bg);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "the fresh buildkitd did not answer on {addr}: {}",
        std::fs::read_to_string(dir.join("bk.log")).unwrap_or_default()
    );
}

/// The names of the steps a rawjson stream reports as run (not cached).
pub(crate) fn ran(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .flat_map(|v| v["vertexes"].as_array().cloned().unwrap_or_default())
        .filter(|v| v["completed"].is_number() && v["cached"] != true)
        .filter_map(|v| v["name"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn registry_cache_makes_a_fresh_runner_skip_go_build() {
    let h = harness();
    let tmp = tempfile::tempdir().unwrap();
    let m = unique();
    let dir = sample_module(tmp.path(), &m);
    let cache = format!("{}/kiln-test/cache:{m}", h.registry);
    let to = format!("type=registry,ref={cache},mode=max");
    let from = format!("type=registry,ref={cache}");
    if daemon().kind == kiln_test_support::DaemonKind::DockerClassic {
        // Its BuildKit has the inline cache exporter only: refused up front.
        let args = build_args(&dir, &["--cache-to", &to]);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = run(kiln(), &refs).await;
        r.failure();
        assert!(
            r.stderr.contains("--cache-to type=registry") && r.stderr.contains("type=inline"),
            "{}",
            r.stderr
        );
        return;
    }
    // Runner 1: this row's daemon builds and exports.
    let args = build_args(&dir, &["--cache-to", &to, "--progress", "rawjson"]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let first = run(kiln(), &refs).await;
    first.success();
    assert!(
        ran(&first.stderr).iter().any(|n| n.contains("go build")),
        "the first build compiles"
    );

    // Runner 2: an empty buildkitd imports the cache.
    a_fresh_runner_skips_the_go_steps(&dir, &from).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_cache_specs_name_the_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = sample_module(tmp.path(), &unique());
    for (flag, spec, says) in [
        ("--cache-to", "type=floppy", "floppy"),
        ("--cache-to", "type=registry", "ref"),
        ("--cache-from", "type=registry,mode=max", "ref"),
        ("--cache-to", "type=registry,ref=r/x,mode=most", "mode"),
        ("--cache-to", "type=local", "dest"),
        (
            "--cache-from",
            "type=local,src=/nonexistent/kiln-cache",
            "/nonexistent/kiln-cache",
        ),
    ] {
        let args = build_args(&dir, &[flag, spec, "--print-llb"]);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = run(kiln(), &refs).await;
        r.failure();
        assert!(
            r.stderr.contains(flag) && r.stderr.contains(says),
            "{flag} {spec}: {}",
            r.stderr
        );
    }
}

/// A registry that cannot take the cache export: the failure names the
/// `--cache-to` and the remedy; with `ignore-error=true` the build passes
/// and says nothing was exported.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_cache_export_names_the_flag_unless_ignored() {
    if daemon().kind == kiln_test_support::DaemonKind::DockerClassic {
        // No registry cache exporter there (refused up front, tested above).
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = sample_module(tmp.path(), &unique());
    // Nothing listens on port 9 (discard): the export cannot connect.
    let to = "type=registry,ref=127.0.0.1:9/kiln-test/cache,mode=max";
    let args = build_args(&dir, &["--cache-to", to]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = run(kiln(), &refs).await;
    r.failure();
    assert!(
        r.stderr.contains("--cache-to type=registry")
            && r.stderr.contains("127.0.0.1:9 cannot be reached")
            && r.stderr.contains("ignore-error=true"),
        "{}",
        r.stderr
    );
    let ignored = format!("{to},ignore-error=true");
    let args = build_args(&dir, &["--cache-to", &ignored, "--progress", "plain"]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = run(kiln(), &refs).await;
    r.success();
    assert!(r.stderr.contains("no cache was exported"), "{}", r.stderr);
}

/// A fresh, empty buildkitd (a new CI runner) builds `dir` with
/// `--cache-from FROM` and runs neither `go mod download` nor `go build`.
async fn a_fresh_runner_skips_the_go_steps(dir: &Path, from: &str) {
    let bk_dir = tempfile::tempdir().unwrap();
    let (addr, _bk) = fresh_buildkitd(bk_dir.path()).await;
    let r = on_fresh_runner(&addr, dir, &["--cache-from", from, "--progress", "rawjson"]).await;
    r.success();
    let ran = ran(&r.stderr);
    assert!(
        !ran.iter()
            .any(|n| n.contains("go build") || n.contains("go mod download")),
        "the fresh runner ran {ran:?}"
    );
}

/// Runs `kiln build` of `dir` on the fresh runner at `addr` with `extra`.
async fn on_fresh_runner(addr: &str, dir: &Path, extra: &[&str]) -> Run {
    let args = build_args(dir, extra);
    // The row's daemon address is replaced by the fresh runner's.
    let at = args.iter().position(|a| a == "build").unwrap();
    let mut full = vec!["--addr".to_string(), addr.to_string()];
    full.extend(args[at..].iter().cloned());
    let refs: Vec<&str> = full.iter().map(String::as_str).collect();
    run(kiln(), &refs).await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_inline_cache_image_is_a_cache_source() {
    let h = harness();
    let tmp = tempfile::tempdir().unwrap();
    let m = unique();
    let dir = sample_module(tmp.path(), &m);
    let name = format!("{}/kiln-test/inline:{m}", h.registry);
    let args = build_args(&dir, &["-t", &name, "--push", "--cache-to", "type=inline"]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    run(kiln(), &refs).await.success();
    if daemon().kind.is_docker() {
        let _ = docker(&["image", "rm", &name]);
    }
    a_fresh_runner_skips_the_go_steps(&dir, &name).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn local_cache_directory_makes_a_fresh_runner_skip_go_build() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = sample_module(tmp.path(), &unique());
    let cache = tmp.path().join("ci-cache");
    let to = format!("type=local,dest={},mode=max", cache.display());
    let args = build_args(&dir, &["--cache-to", &to]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = run(kiln(), &refs).await;
    if daemon().kind == kiln_test_support::DaemonKind::DockerClassic {
        r.failure();
        assert!(r.stderr.contains("type=inline"), "{}", r.stderr);
        return;
    }
    r.success();
    // An OCI layout with the cache manifest tagged latest, like buildx's.
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(cache.join("index.json")).unwrap()).unwrap();
    let latest = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == "latest")
        .expect("a manifest tagged latest");
    let digest = latest["digest"].as_str().unwrap();
    let blob = cache
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    assert!(blob.is_file(), "{} missing", blob.display());
    assert!(!cache.join("ingest").exists(), "no leftover ingest files");

    let from = format!("type=local,src={}", cache.display());
    a_fresh_runner_skips_the_go_steps(&dir, &from).await;
}

/// The Go cache's bad inputs: a missing or corrupt source is a note and a
/// normal build; an unreachable `--go-cache-to` registry fails before the
/// build unless `ignore-error=true`; a bad spec names the flag.
#[tokio::test(flavor = "multi_thread")]
async fn go_cache_sources_never_fail_a_build_and_bad_destinations_are_named() {
    let h = harness();
    let tmp = tempfile::tempdir().unwrap();
    let dir = sample_module(tmp.path(), &unique());
    let build = |extra: Vec<String>| {
        let dir = dir.clone();
        async move {
            let args = build_args(&dir, &extra.iter().map(String::as_str).collect::<Vec<_>>());
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            run(kiln(), &refs).await
        }
    };
    // Missing: a directory that is not there, a tag the registry lacks.
    let missing = tmp.path().join("no-such-cache");
    let r = build(vec![
        "--go-cache-from".into(),
        format!("type=local,src={}", missing.display()),
        "--go-cache-from".into(),
        format!(
            "type=registry,ref={}/kiln-test/no-go-cache:{}",
            h.registry,
            unique()
        ),
    ])
    .await;
    r.success();
    assert_eq!(
        r.stderr.matches("building without it").count(),
        2,
        "{}",
        r.stderr
    );
    // Corrupt: a stamp that is not a time, junk instead of a cache.
    let corrupt = tmp.path().join("corrupt");
    let plat = corrupt.join("linux-amd64");
    std::fs::create_dir_all(plat.join("gocache/zz")).unwrap();
    std::fs::write(plat.join("kiln-go-cache"), "not a time").unwrap();
    // Unique junk: an import seen before would leave the fill step cached
    // (and silent).
    std::fs::write(plat.join("gocache/zz/junk"), format!("junk {}", unique())).unwrap();
    let r = build(vec![
        "--go-cache-from".into(),
        format!("type=local,src={}", corrupt.display()),
        "--progress".into(),
        "plain".into(),
    ])
    .await;
    r.success();
    assert!(
        r.stderr.contains("has no stamp: building without it"),
        "{}",
        r.stderr
    );

    // An unreachable destination: refused before anything is built.
    let to = "type=registry,ref=127.0.0.1:9/kiln-test/go-cache";
    let r = build(vec!["--go-cache-to".into(), to.into()]).await;
    r.failure();
    if daemon().kind == kiln_test_support::DaemonKind::DockerClassic {
        assert!(r.stderr.contains("type=local"), "{}", r.stderr);
    } else {
        assert!(
            r.stderr.contains("--go-cache-to") && r.stderr.contains("cannot be reached"),
            "{}",
            r.stderr
        );
        assert!(!r.stderr.contains("go build"), "built first: {}", r.stderr);
        let r = build(vec![
            "--go-cache-to".into(),
            format!("{to},ignore-error=true"),
        ])
        .await;
        r.success();
        assert!(
            r.stderr.contains("ignore-error=true let the build pass"),
            "{}",
            r.stderr
        );
    }
    // Specs that do not parse name the flag.
    for (flag, spec) in [
        ("--go-cache-to", "type=floppy"),
        ("--go-cache-from", "type=local"),
    ] {
        let r = build(vec![flag.into(), spec.into()]).await;
        r.failure();
        assert!(r.stderr.contains(flag), "{flag} {spec}: {}", r.stderr);
    }
}
