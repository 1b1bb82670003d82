//! Tests that need the row's daemon to themselves: they prune its whole
//! build cache, which would take other tests' cache records (and their
//! "cached" assertions) away mid-run. `./scripts/test.sh` runs them after
//! every row's suite has finished, one row at a time and one test at a time, with
//! `KILN_TEST_EXCLUSIVE=1` and the filter `exclusive::`; in the main run
//! they say so and return.

use crate::build::{build_args, sample_module};
use crate::cache_export::ran;
use crate::common::*;

/// Whether this is the exclusive phase.
fn exclusive() -> bool {
    if std::env::var("KILN_TEST_EXCLUSIVE").is_ok_and(|v| v == "1") {
        return true;
    }
    eprintln!(
        "runs in ./scripts/test.sh's exclusive phase (KILN_TEST_EXCLUSIVE=1 cargo test --test it exclusive:: -- --test-threads=1): it prunes the daemon"
    );
    false
}

/// Seconds since the Unix epoch: a test's start, for [`prune_all`].
fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// `kiln prune --all` until the daemon lists no cache record the test
/// made (created at or after `since`) and nothing unused: a record the
/// last build still held (its history, a closing session) is in use for a
/// moment after the build returns, and a prune skips it. A record in use
/// since before the test (the daemon holds it for something else: on a
/// slow CI machine Docker's daemon once held two for minutes) cannot be
/// this test's build, whose module is unique; it is named in the log.
async fn prune_all(since: i64) {
    let mut left = Vec::new();
    for _ in 0..120 {
        kiln_d(&["prune", "--all"]).await.success();
        let du = kiln_d(&["du", "--format", "json"]).await;
        du.success();
        let records: serde_json::Value = serde_json::from_str(&du.stdout).unwrap();
        left = records["records"].as_array().cloned().unwrap_or_default();
        let ours = |r: &serde_json::Value| {
            !r["in_use"].as_bool().unwrap_or(false)
                || r["created_at"].as_i64().is_none_or(|t| t + 1 >= since)
        };
        if !left.iter().any(ours) {
            if !left.is_empty() {
                eprintln!(
                    "records in use since before the test, kept by the daemon: {:#}",
                    serde_json::Value::Array(left)
                );
            }
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    panic!(
        "records left after 30 s of prune --all: {:#}",
        serde_json::Value::Array(left)
    );
}

async fn build(dir: &std::path::Path, extra: &[&str]) -> Run {
    let args = build_args(dir, extra);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    run(kiln(), &refs).await
}

/// The CI runners issue: export the layer cache, prune the daemon
/// completely, build again from the cache: neither `go mod download` nor
/// `go build` runs. Through the registry (mode=max), a local directory and
/// an inline-cache image; Docker's classic store has the inline exporter
/// only.
#[tokio::test(flavor = "multi_thread")]
async fn a_pruned_daemon_builds_from_its_exported_cache() {
    if !exclusive() {
        return;
    }
    let since = now();
    let h = harness();
    let tmp = tempfile::tempdir().unwrap();
    let classic = daemon().kind == kiln_test_support::DaemonKind::DockerClassic;
    let kinds: &[&str] = if classic {
        &["inline"]
    } else {
        &["registry", "local", "inline"]
    };
    for kind in kinds {
        let m = unique();
        let dir = sample_module(&tmp.path().join(kind), &m);
        let name = format!("{}/kiln-test/pruned-{kind}:{m}", h.registry);
        let local = tmp.path().join(format!("cache-{kind}"));
        let (to, from, mut export_extra): (String, String, Vec<&str>) = match *kind {
            "registry" => (
                format!("type=registry,ref={name}-cache,mode=max"),
                format!("type=registry,ref={name}-cache"),
                vec![],
            ),
            "local" => (
                format!("type=local,dest={},mode=max", local.display()),
                format!("type=local,src={}", local.display()),
                vec![],
            ),
            _ => (
                "type=inline".into(),
                name.clone(),
                vec!["-t", &name, "--push"],
            ),
        };
        export_extra.extend(["--cache-to", &to, "--progress", "rawjson"]);
        let first = build(&dir, &export_extra).await;
        first.success();
        assert!(
            ran(&first.stderr).iter().any(|n| n.contains("go build")),
            "{kind}: the first build compiles"
        );
        if daemon().kind.is_docker() {
            let _ = docker(&["image", "rm", &name]);
        }
        // Everything goes: no record is left to reuse.
        prune_all(since).await;

        let again = build(&dir, &["--cache-from", &from, "--progress", "rawjson"]).await;
        again.success();
        let ran = ran(&again.stderr);
        assert!(
            !ran.iter()
                .any(|n| n.contains("go build") || n.contains("go mod download")),
            "{kind}: the pruned daemon ran {ran:?}"
        );
    }
}

/// Each step's log text, whole (the stream cuts it anywhere), by step name.
fn step_logs(stderr: &str) -> std::collections::BTreeMap<String, String> {
    let events: Vec<serde_json::Value> = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .collect();
    let mut names = std::collections::BTreeMap::new();
    for v in events
        .iter()
        .flat_map(|e| e["vertexes"].as_array().cloned().unwrap_or_default())
    {
        if let (Some(d), Some(n)) = (v["digest"].as_str(), v["name"].as_str()) {
            names.insert(d.to_string(), n.to_string());
        }
    }
    let mut out: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
    for l in events
        .iter()
        .flat_map(|e| e["logs"].as_array().cloned().unwrap_or_default())
    {
        let (Some(d), Some(data)) = (l["vertex"].as_str(), l["data"].as_str()) else {
            continue;
        };
        let name = names.get(d).cloned().unwrap_or_else(|| d.to_string());
        out.entry(name).or_default().push_str(data);
    }
    out
}

/// The Go packages `go build -v` (GOFLAGS from a GOENV file) compiled.
fn compiled(stderr: &str) -> Vec<String> {
    let mut out: Vec<String> = step_logs(stderr)
        .into_iter()
        .filter(|(name, _)| name.contains("go build"))
        .flat_map(|(_, text)| {
            text.lines()
                .map(|l| l.trim().to_string())
                .collect::<Vec<_>>()
        })
        .filter(|l| !l.is_empty() && !l.contains(' '))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The Go issue: on a pruned daemon (a fresh runner), a build of a
/// one-file edit with `--go-cache-from` compiles only the edited package
/// and what imports it; the image is the one a cold build makes; the
/// exported cache holds no secret.
#[tokio::test(flavor = "multi_thread")]
async fn a_pruned_daemon_with_the_go_cache_compiles_only_the_edit() {
    if !exclusive() {
        return;
    }
    let since = now();
    let h = harness();
    let tmp = tempfile::tempdir().unwrap();
    let m = unique();
    let dir = sample_module(tmp.path(), &m);
    let canary = format!("go-cache-canary-{m}");
    let netrc = tmp.path().join("netrc");
    std::fs::write(
        &netrc,
        format!("machine example.org login me password {canary}\n"),
    )
    .unwrap();
    // GOFLAGS=-v: go build names each package it compiles (cached ones not).
    let goenv = tmp.path().join("goenv");
    std::fs::write(
        &goenv,
        format!("GOFLAGS=-v\nGOPROXY=https://me:{canary}@proxy.invalid\n"),
    )
    .unwrap();
    let classic = daemon().kind == kiln_test_support::DaemonKind::DockerClassic;
    let local = tmp.path().join("go-cache");
    let reg = format!("{}/kiln-test/go-cache-{m}:gc", h.registry);
    let mut to = vec![format!("type=local,dest={},modules=true", local.display())];
    if !classic {
        to.push(format!("type=registry,ref={reg}"));
    }
    let rootfs = |name: &str| tmp.path().join(format!("rootfs-{name}"));
    let build_with = |extra: Vec<String>| {
        let dir = dir.clone();
        let (netrc, goenv) = (netrc.clone(), goenv.clone());
        async move {
            let mut args = build_args(
                &dir,
                &[
                    "--source-date-epoch",
                    "1700000000",
                    "--netrc",
                    netrc.to_str().unwrap(),
                    "--goenv",
                    "--progress",
                    "rawjson",
                ],
            );
            args.extend(extra);
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            let mut c = kiln();
            c.env("GOENV", &goenv);
            let r = run(c, &refs).await;
            r.success();
            r
        }
    };
    // Runner 1: builds and exports its Go cache.
    let mut extra = Vec::new();
    for t in &to {
        extra.extend(["--go-cache-to".to_string(), t.clone()]);
    }
    let first = build_with(extra).await;
    assert!(first.stderr.contains("exported"), "{}", first.stderr);
    let exported = local.join("linux-amd64");
    assert!(exported.join("kiln-go-cache").is_file());
    // modules=true: the module cache's part too (empty here: the module is vendored).
    assert!(exported.join("gomodcache").is_dir());
    let blobs = crate::common::all_bytes(&exported);
    assert!(
        !blobs.windows(canary.len()).any(|w| w == canary.as_bytes()),
        "a secret is in the exported Go cache"
    );

    // The edit, on a pruned daemon (a fresh runner), for each source.
    std::fs::write(
        dir.join("internal/greet/greet.go"),
        "package greet\n\n// Greet greets.\nfunc Greet(s string) string { return \"hello, \" + s }\n",
    )
    .unwrap();
    let mut froms = vec![format!("type=local,src={}", local.display())];
    if !classic {
        froms.push(format!("type=registry,ref={reg}"));
    }
    let mut binaries = Vec::new();
    for (i, from) in froms.iter().enumerate() {
        prune_all(since).await;
        let out = rootfs(&format!("warm-{i}"));
        let r = build_with(vec![
            "--go-cache-from".into(),
            from.clone(),
            "-o".into(),
            format!("type=local,dest={}", out.display()),
        ])
        .await;
        let built = compiled(&r.stderr);
        assert!(
            !built.is_empty()
                && built
                    .iter()
                    .all(|p| p == "example.com/svc" || p == "example.com/svc/internal/greet"),
            "{from}: go build compiled {built:?}; logs: {:#?}",
            step_logs(&r.stderr)
        );
        assert!(r.stderr.contains("filled from the import"), "{from}");
        binaries.push(std::fs::read(out.join("app/bin")).unwrap());
    }
    // Without the Go cache, a fresh daemon compiles everything, into the
    // same binary.
    prune_all(since).await;
    let cold_dir = rootfs("cold");
    let cold = build_with(vec![
        "-o".into(),
        format!("type=local,dest={}", cold_dir.display()),
    ])
    .await;
    let all = compiled(&cold.stderr);
    assert!(
        all.iter().any(|p| p == "fmt" || p == "runtime"),
        "cold: {all:?}"
    );
    let cold_bin = std::fs::read(cold_dir.join("app/bin")).unwrap();
    for b in &binaries {
        assert!(b == &cold_bin, "the binary differs from a cold build's");
    }
}

/// Ctrl-C while the result is sent (see `cancel.rs`): it needs the
/// machine's disk to itself, not the daemon's cache.
#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_while_the_result_is_sent() {
    if !exclusive() {
        return;
    }
    crate::cancel::ctrl_c_while_the_result_is_sent().await;
}
