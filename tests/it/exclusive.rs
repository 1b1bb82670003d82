//! Tests that need the row's daemon to themselves: they prune its whole
//! build cache, which would take other tests' cache records (and their
//! "cached" assertions) away mid-run. `./scripts/test.sh` runs them after
//! every row's suite has finished, one row at a time, with
//! `KILN_TEST_EXCLUSIVE=1` and the filter `exclusive::`; in the main run
//! they say so and return.

use crate::build::{build_args, sample_module};
use crate::common::*;

/// Whether this is the exclusive phase.
fn exclusive() -> bool {
    if std::env::var("KILN_TEST_EXCLUSIVE").is_ok_and(|v| v == "1") {
        return true;
    }
    eprintln!(
        "runs in ./scripts/test.sh's exclusive phase (KILN_TEST_EXCLUSIVE=1 cargo test --test it exclusive::): it prunes the daemon"
    );
    false
}

/// The names of the steps a rawjson stream reports as run (not cached).
fn ran(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .flat_map(|v| v["vertexes"].as_array().cloned().unwrap_or_default())
        .filter(|v| v["completed"].is_number() && v["cached"] != true)
        .filter_map(|v| v["name"].as_str().map(str::to_string))
        .collect()
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
        kiln_d(&["prune", "--all"]).await.success();
        let du = kiln_d(&["du", "--format", "json"]).await;
        du.success();
        let records: serde_json::Value = serde_json::from_str(&du.stdout).unwrap();
        let in_use = records["records"]
            .as_array()
            .map_or(0, |r| r.iter().filter(|x| x["in_use"] == false).count());
        assert_eq!(
            in_use, 0,
            "{kind}: records left after prune --all: {records:#}"
        );

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
