//! The daemon's vertex digests are kiln's op digests.
//!
//! BuildKit re-marshals every op it loads with Go's protobuf (the `op`
//! oneof after `inputs`, `platform` and `constraints`) and digests those
//! bytes; kiln writes ops in that order and with the platform and
//! constraints Go's `client/llb` sets, so every vertex of the Status stream
//! names an op kiln sent — for every op kind, source kind, mount type and
//! file action, including ops whose attribute maps have several keys.

use std::collections::BTreeSet;
use std::path::Path;

use kiln_llb::{
    CacheSharing, Chown, Copy, Digest, ExecOptions, FileAction, GitOptions, HttpOptions,
    LocalOptions, Mkdir, Mkfile, Mount, NetMode, Rm, SecretMount, SshMount, Symlink,
};

use crate::common::*;
use crate::llb_sources::{git, http_server, serve_repo};
use crate::llb_util::tree;

/// The op digests `kiln llb` lists for a Definition, without the terminal
/// op (the last one, which only names the result and is never a vertex).
async fn kiln_digests(def: &Path) -> BTreeSet<String> {
    let r = run(kiln(), &["llb", "-f", def.to_str().unwrap()]).await;
    r.success();
    let dump = r.json();
    let mut ops: Vec<String> = dump["ops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["digest"].as_str().unwrap().to_string())
        .collect();
    let terminal = ops.pop().unwrap();
    assert_ne!(dump["head"]["digest"], terminal.as_str());
    ops.into_iter().collect()
}

/// Every vertex of a `--progress rawjson` stream as (digest, name),
/// leaving out the exporter's own vertex ("exporting to …"), whose digest
/// the daemon makes up.
fn status_vertexes(stderr: &str) -> BTreeSet<(String, String)> {
    let vertexes: BTreeSet<(String, String)> = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .flat_map(|v| v["vertexes"].as_array().cloned().unwrap_or_default())
        .map(|v| {
            (
                v["digest"].as_str().unwrap_or_default().to_string(),
                v["name"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert!(
        vertexes.iter().any(|(_, n)| n.starts_with("exporting to")),
        "the exporter's vertex is there to be left out: {vertexes:?}"
    );
    vertexes
        .into_iter()
        .filter(|(_, n)| !n.starts_with("exporting to"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn status_vertex_digests_are_kiln_op_digests() {
    let tmp = tempfile::tempdir().unwrap();
    let m = unique();

    // Sources: a local directory (several attrs), an http file with
    // checksum, name and mode, a git repository served by `git daemon`.
    let ctx = tmp.path().join("ctx");
    tree(
        &ctx,
        &[("a.txt", m.as_str()), ("b.md", "b"), ("skip.txt", "skip")],
    );
    let local = kiln_llb::local_with(
        &format!("ctx-{m}"),
        LocalOptions::new()
            .include_patterns(["*.txt", "*.md"])
            .exclude_patterns(["skip*"])
            .shared_key_hint("digests"),
    );
    let srv = tmp.path().join("srv");
    let body = format!("#!/bin/sh\necho {m}\n");
    tree(&srv, &[("tool.sh", body.as_str())]);
    let (_http, http_port) = http_server(&srv, &tmp.path().join("http.log")).await;
    let http = kiln_llb::http_with(
        &format!("http://127.0.0.1:{http_port}/tool.sh"),
        HttpOptions::new()
            .filename("tool")
            .chmod(0o755)
            .chown(1000, 1000)
            .checksum(Digest::sha256_of(body.as_bytes())),
    );
    let work = tmp.path().join("work");
    tree(&work, &[("README", m.as_str())]);
    git(&work, &["init", "-q", "-b", "main"]);
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "main"]);
    let (_git, repo_url) = serve_repo(tmp.path(), &work).await;
    let repo = kiln_llb::git_with(&repo_url, "main", GitOptions::new().keep_git_dir());

    // Every file action, chained in one op, and a copy with patterns.
    let files = kiln_llb::scratch().file(
        FileAction::from(
            Mkdir::new("/d/e", 0o750)
                .parents(true)
                .owner(Chown::ids(1, 2)),
        )
        .mkfile(Mkfile::new("/d/f", 0o640, m.clone()))
        .symlink(Symlink::new("/d/f", "/d/link"))
        .rm(Rm::new("/nothing-*").allow_not_found().allow_wildcard()),
    );
    let copied = kiln_llb::scratch().copy(
        Copy::new(&local, "/", "/ctx")
            .include_patterns(["*.txt"])
            .create_dest_path()
            .owner(Chown::ids(7, 8)),
    );

    // An exec with every mount type and most options.
    let exec = go_image()
        .run(
            ExecOptions::shell(format!(
                "# {m}\ncat /in/d/f > /out/f; echo x > /cache/x; echo t > /tmp/t; \
                 test -e /run/s || echo no-secret > /out/s; ls /ro > /out/ro"
            ))
            .env("KILN_DIGEST", m.as_str())
            .dir("/work")
            .user("0:0")
            .hostname("digests")
            .network(NetMode::None)
            .valid_exit_codes([0, 3])
            .mount(Mount::bind("/in", &files).readonly())
            .mount(Mount::bind("/ro", &copied).selector("/ctx").readonly())
            .mount(Mount::cache("/cache", format!("digests-{m}")).sharing(CacheSharing::Locked))
            .mount(Mount::tmpfs("/tmp").size(1 << 20))
            .mount(Mount::scratch("/out"))
            .secret(SecretMount::file("absent", "/run/s").optional())
            .secret(SecretMount::env("absent-env", "KILN_ABSENT").optional())
            .ssh(SshMount::new().optional()),
        )
        .get_mount("/out");

    // Merge and diff on top, where the daemon has them (Docker's classic
    // store disables both): else one more exec reads every branch.
    let (st, kinds) = if daemon().kind == kiln_test_support::DaemonKind::DockerClassic {
        let all = go_image()
            .run(
                ExecOptions::shell(format!("# {m}\ncp /x/f /x/s /x/ro /out/"))
                    .mount(Mount::bind("/x", &exec).readonly())
                    .mount(Mount::bind("/h", &http).readonly())
                    .mount(Mount::bind("/g", &repo).readonly())
                    .mount(Mount::scratch("/out")),
            )
            .get_mount("/out");
        (all, 8)
    } else {
        let merged = kiln_llb::merge(&[files.clone(), copied, http, repo, exec]);
        (kiln_llb::diff(&files, &merged), 9)
    };

    let def = write_llb(tmp.path(), "all.llb", &st);
    let ours = kiln_digests(&def).await;
    assert!(
        ours.len() >= kinds,
        "the graph covers every op kind: {ours:?}"
    );

    let local_arg = format!("ctx-{m}={}", ctx.display());
    let out = tmp.path().join("out");
    let dest = format!("type=local,dest={}", out.display());
    let r = kiln_d(&[
        "solve",
        "-f",
        def.to_str().unwrap(),
        "--local",
        &local_arg,
        "--progress",
        "rawjson",
        "-o",
        &dest,
    ])
    .await;
    r.success();
    let vertexes = status_vertexes(&r.stderr);
    let theirs: BTreeSet<String> = vertexes.iter().map(|(d, _)| d.clone()).collect();
    let dump = run(kiln(), &["llb", "-f", def.to_str().unwrap()])
        .await
        .stdout;
    // Every op kiln sent is a vertex under kiln's digest…
    let missing: Vec<_> = ours.difference(&theirs).collect();
    assert!(
        missing.is_empty(),
        "kiln ops the daemon reported under another digest: {missing:?}\n{dump}\n{}",
        r.stderr
    );
    // …and no op of ours shows up a second time under a digest kiln did not
    // send. (The stream may carry other builds' vertices: the solver shares
    // progress between jobs whose steps it merged, e.g. the same image.)
    let our_names: BTreeSet<&String> = vertexes
        .iter()
        .filter(|(d, _)| ours.contains(d))
        .map(|(_, n)| n)
        .collect();
    let renamed: Vec<_> = vertexes
        .iter()
        .filter(|(d, n)| !ours.contains(d) && our_names.contains(n))
        .collect();
    assert!(
        renamed.is_empty(),
        "ops of ours under a foreign digest: {renamed:?}\n{dump}\n{}",
        r.stderr
    );
    // The graph really ran: the exec read the chained file op's file.
    let read =
        |rel: &str| std::fs::read_to_string(out.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    assert_eq!(read("f"), m);
    assert_eq!(read("s"), "no-secret\n");
    assert_eq!(read("ro"), "a.txt\n");
}
