//! The crate graph of `../shared/STYLE.md`, checked: every workspace crate
//! depends (normal dependencies) only on the workspace crates the graph
//! allows, the CLI on no wire or session crate, and kiln-llb pulls in no
//! HTTP client or async runtime. `cargo tree` resolves each crate as it is
//! built on its own (its features, its dependencies), offline.

#![allow(clippy::unwrap_used)] // a failure here is a test failure

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// What each workspace crate may depend on among the workspace's crates.
const ALLOWED: &[(&str, &[&str])] = &[
    ("kiln", &["kiln-build", "kiln-client", "kiln-image"]),
    (
        "kiln-build",
        &["kiln-client", "kiln-go", "kiln-llb", "kiln-image"],
    ),
    (
        "kiln-client",
        &["kiln-llb", "kiln-session", "kiln-proto", "kiln-image"],
    ),
    ("kiln-go", &["kiln-llb", "kiln-image"]),
    ("kiln-llb", &["kiln-proto", "kiln-image"]),
    ("kiln-session", &["kiln-proto"]),
    ("kiln-image", &[]),
    ("kiln-proto", &[]),
];

/// Crates that must not appear anywhere below a workspace crate built on
/// its own: the LLB builder has no async runtime and no network (kiln-proto
/// without its `grpc` feature, kiln-image without `registry`).
const FORBIDDEN_BELOW: &[(&str, &[&str])] =
    &[("kiln-llb", &["tokio", "reqwest", "hyper", "tonic"])];

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    c
}

/// The direct normal dependencies of `krate` (depth 1).
fn direct(krate: &str) -> BTreeSet<String> {
    tree(krate, &["--depth", "1"])
        .into_iter()
        .filter(|n| n != krate)
        .collect()
}

/// Every crate in `krate`'s normal dependency tree, by name.
fn tree(krate: &str, extra: &[&str]) -> BTreeSet<String> {
    let out = cargo()
        .args([
            "tree",
            "--offline",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
            "-p",
            krate,
        ])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo tree -p {krate}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[test]
fn workspace_edges_are_the_allowed_ones() {
    let workspace: BTreeSet<&str> = ALLOWED.iter().map(|(k, _)| *k).collect();
    let mut wrong: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (krate, allowed) in ALLOWED {
        for dep in direct(krate) {
            if workspace.contains(dep.as_str()) && !allowed.contains(&dep.as_str()) {
                wrong.entry(krate).or_default().push(dep);
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "edges the graph in ../shared/STYLE.md does not allow: {wrong:?}"
    );
}

#[test]
fn the_cli_uses_no_wire_or_session_crate_directly() {
    let deps = direct("kiln");
    for banned in [
        "tonic",
        "prost",
        "kiln-proto",
        "kiln-session",
        "kiln-llb",
        "kiln-go",
    ] {
        assert!(
            !deps.contains(banned),
            "the CLI depends on {banned}: {deps:?}"
        );
    }
}

#[test]
fn layers_below_pull_in_no_forbidden_crate() {
    for (krate, banned) in FORBIDDEN_BELOW {
        let all = tree(krate, &[]);
        let found: Vec<&&str> = banned.iter().filter(|b| all.contains(**b)).collect();
        assert!(found.is_empty(), "{krate} pulls in {found:?}");
    }
}
