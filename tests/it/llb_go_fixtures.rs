//! Definitions written by BuildKit's Go client (`crates/kiln-proto/tests/
//! fixtures/go-llb`, v0.29's `llb.WriteTo`) on every daemon: solved as
//! written, and, failing, a clean error after which the daemon still builds.
//!
//! Go gives every op but the terminal one a `Source.locations` entry with an
//! empty `Locations` message. A client that drops empty map values (prost
//! does) leaves buildkitd v0.29 a nil pointer that it dereferences when a
//! step fails (`wrapError` in `solver/llbsolver`), killing every build on
//! the daemon. kiln forwards a file's bytes untouched, and writes map
//! entries whole when it encodes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kiln_llb::{pb, Definition, Digest};
use kiln_proto::prost::Message;

use crate::common::*;

fn fixture(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("crates/kiln-proto/tests/fixtures/go-llb")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The Go definition `name` with `edit` applied to its ops, re-keyed by the
/// new digests and encoded by kiln-proto (Go's encoding: re-encoding the
/// fixtures gives Go's bytes, see kiln-proto's tests).
fn edited(name: &str, edit: impl Fn(&mut pb::Op)) -> Vec<u8> {
    let mut def = pb::Definition::decode(fixture(name).as_slice()).unwrap();
    let mut renamed: BTreeMap<String, String> = BTreeMap::new();
    for bytes in &mut def.def {
        let old = Digest::sha256_of(bytes).to_string();
        let mut op = pb::Op::decode(bytes.as_slice()).unwrap();
        for input in &mut op.inputs {
            if let Some(new) = renamed.get(&input.digest) {
                input.digest.clone_from(new);
            }
        }
        edit(&mut op);
        *bytes = kiln_proto::wire::encode_op(&op);
        renamed.insert(old, Digest::sha256_of(bytes).to_string());
    }
    let rename = |k: String| renamed.get(&k).cloned().unwrap_or(k);
    def.metadata = std::mem::take(&mut def.metadata)
        .into_iter()
        .map(|(k, v)| (rename(k), v))
        .collect();
    let src = def.source.as_mut().expect("Go writes a source map");
    src.locations = std::mem::take(&mut src.locations)
        .into_iter()
        .map(|(k, v)| (rename(k), v))
        .collect();
    assert!(
        src.locations.values().any(|l| l.locations.is_empty()),
        "the empty Locations entries that crash a careless client are there"
    );
    Definition::from_pb(def).to_bytes()
}

async fn solve_file(dir: &Path, name: &str, bytes: &[u8], extra: &[&str]) -> Run {
    let f = dir.join(name);
    std::fs::write(&f, bytes).unwrap();
    let mut args = vec!["solve", "-f", f.to_str().unwrap(), "--progress", "plain"];
    args.extend_from_slice(extra);
    kiln_d(&args).await
}

/// Solves the Go-written `image_run` as it is (no export: the step runs).
async fn image_run_succeeds(dir: &Path, why: &str) {
    let r = solve_file(dir, "image_run.pb", &fixture("image_run.pb"), &[]).await;
    r.success();
    assert!(
        r.stderr.contains("echo hi > /out.txt"),
        "{why}: the Go step ran:\n{}",
        r.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn go_written_definitions_solve_as_written() {
    let tmp = tempfile::tempdir().unwrap();
    image_run_succeeds(tmp.path(), "image_run").await;
    // Cache mounts, LOCKED sharing, from Go.
    let r = solve_file(
        tmp.path(),
        "run_cache_locked.pb",
        &fixture("run_cache_locked.pb"),
        &[],
    )
    .await;
    r.success();
    // A local source with include/exclude patterns and a copy.
    let ctx = tmp.path().join("ctx");
    std::fs::create_dir_all(ctx.join("vendor")).unwrap();
    std::fs::write(ctx.join("main.go"), "package main\n").unwrap();
    std::fs::write(ctx.join("go.mod"), "module x\n").unwrap();
    std::fs::write(ctx.join("README"), "not included\n").unwrap();
    std::fs::write(ctx.join("vendor/v.go"), "excluded\n").unwrap();
    let out = tmp.path().join("out");
    let r = solve_file(
        tmp.path(),
        "local_copy_include.pb",
        &fixture("local_copy_include.pb"),
        &[
            "--local",
            &format!("context={}", ctx.display()),
            "-o",
            &format!("type=local,dest={}", out.display()),
        ],
    )
    .await;
    r.success();
    let mut got: Vec<String> = std::fs::read_dir(out.join("src"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    got.sort();
    assert_eq!(got, ["go.mod", "main.go"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_go_definition_is_a_clean_error_and_the_daemon_keeps_building() {
    let tmp = tempfile::tempdir().unwrap();
    let m = unique();
    // The image is not in the registry.
    let missing = format!("docker-image://127.0.0.1:5000/library/nope-{m}:missing");
    let no_image = edited("image_run.canonical.pb", |op| {
        if let Some(pb::op::Op::Source(s)) = &mut op.op {
            s.identifier.clone_from(&missing);
        }
    });
    let r = solve_file(tmp.path(), "no-image.pb", &no_image, &[]).await;
    r.failure();
    assert!(r.stderr.contains(&format!("nope-{m}")), "{}", r.stderr);
    assert!(r.stderr.contains("error:"), "{}", r.stderr);
    image_run_succeeds(tmp.path(), "after a missing image").await;

    // A required secret the session does not have.
    let no_secret = edited("image_run.canonical.pb", |op| {
        if let Some(pb::op::Op::Exec(e)) = &mut op.op {
            if let Some(meta) = &mut e.meta {
                meta.args = vec![
                    "sh".into(),
                    "-c".into(),
                    format!("echo {m}; cat /run/secrets/token"),
                ];
            }
            e.mounts.push(pb::Mount {
                input: -1,
                dest: "/run/secrets/token".into(),
                output: -1,
                mount_type: pb::MountType::Secret as i32,
                secret_opt: Some(pb::SecretOpt {
                    id: format!("token-{m}"),
                    mode: 0o400,
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
    });
    let r = solve_file(tmp.path(), "no-secret.pb", &no_secret, &[]).await;
    r.failure();
    assert!(
        r.stderr.contains(&format!("token-{m}")),
        "names the secret:\n{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(&format!("echo {m}")),
        "names the step:\n{}",
        r.stderr
    );
    image_run_succeeds(tmp.path(), "after a missing secret").await;

    // And the same failure again, through the file's own bytes: kiln sends
    // exactly them.
    let r = solve_file(tmp.path(), "no-secret-again.pb", &no_secret, &[]).await;
    r.failure();
    image_run_succeeds(tmp.path(), "after a second failure").await;
}
