//! Every LLB source kind solved against the real daemon: scratch, image
//! (digest pin, resolve modes), local (include/exclude/follow paths), git
//! (from a local `git daemon`) and http (from a local python http.server).
//!
//! Not covered: oci-layout sources. They need the client session to serve
//! a content store (`moby.buildkit.v1.content`), which kiln's session does
//! not implement, so the daemon cannot read a client-side layout.

use std::path::Path;

use kiln_llb::{
    Copy, Digest, GitOptions, HttpOptions, ImageOptions, LocalOptions, Mkfile, ResolveMode,
};

use crate::common::*;
use crate::llb_util::*;
use crate::session_common::{free_port, host, Background};

fn static_image() -> String {
    harness().static_image.clone()
}

/// The static fixture's index digest, as the registry reports it.
fn static_index_digest() -> Digest {
    let h = harness();
    let (repo, tag) = h
        .static_image
        .strip_prefix(&format!("{}/", h.registry))
        .expect("static image in the harness registry")
        .rsplit_once(':')
        .expect("a tag");
    let headers = host(std::process::Command::new("curl").args([
        "-sfI",
        "-H",
        "Accept: application/vnd.oci.image.index.v1+json",
        &format!("http://{}/v2/{repo}/manifests/{tag}", h.registry),
    ]));
    let line = headers
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("docker-content-digest:"))
        .unwrap_or_else(|| panic!("no Docker-Content-Digest in\n{headers}"));
    line.split_once(':')
        .unwrap()
        .1
        .trim()
        .parse()
        .expect("digest")
}

#[tokio::test(flavor = "multi_thread")]
async fn llb_scratch_holds_only_what_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let marker = unique();
    let st = kiln_llb::scratch().mkfile(Mkfile::new("/only", 0o644, marker.clone()));
    let s = solve_ok(tmp.path(), "scratch", &st, &[]).await;
    assert_eq!(s.entries(), vec!["only"]);
    assert_eq!(s.read("only"), marker);
}

#[tokio::test(flavor = "multi_thread")]
async fn llb_image_source_by_tag_digest_and_resolve_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let digest = static_index_digest();
    let images = [
        ("tag", kiln_llb::image(&static_image()).unwrap()),
        (
            "pinned",
            kiln_llb::image_with(&static_image(), ImageOptions::new().digest(digest.clone()))
                .unwrap(),
        ),
        (
            "pull",
            kiln_llb::image_with(
                &static_image(),
                ImageOptions::new().resolve_mode(ResolveMode::Pull),
            )
            .unwrap(),
        ),
        (
            "default",
            kiln_llb::image_with(
                &static_image(),
                ImageOptions::new().resolve_mode(ResolveMode::Default),
            )
            .unwrap(),
        ),
    ];
    for (name, img) in &images {
        let st = kiln_llb::scratch()
            .copy(Copy::new(img, "/etc/passwd", "/passwd"))
            .mkfile(Mkfile::new("/marker", 0o644, unique()));
        let s = solve_ok(tmp.path(), name, &st, &[]).await;
        assert_eq!(s.entries(), vec!["marker", "passwd"], "{name}");
        let passwd = s.read("passwd");
        assert!(
            passwd.contains("nonroot:x:65532:65532"),
            "{name}: the fixture's /etc/passwd, got {passwd}"
        );
    }
    // The pin is what the daemon pulls: a digest the registry does not
    // have fails, naming it.
    let bogus = Digest::sha256_of(unique().as_bytes());
    let st = kiln_llb::scratch().copy(Copy::new(
        kiln_llb::image_with(&static_image(), ImageOptions::new().digest(bogus.clone())).unwrap(),
        "/etc/passwd",
        "/passwd",
    ));
    let s = solve_in(tmp.path(), "bogus", &st, &[]).await;
    s.run.failure();
    assert!(
        s.run.stderr.contains(bogus.hex()),
        "the error names the missing digest:\n{}",
        s.run.stderr
    );
    assert!(!s.out.join("passwd").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn llb_local_include_exclude_and_follow_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    let marker = unique();
    tree(
        &ctx,
        &[
            ("a.txt", marker.as_str()),
            ("b.md", "b"),
            ("sub/c.txt", "c"),
            ("sub/skip.txt", "skip"),
            ("sub/deep/d.txt", "d"),
            ("real/target.txt", "target"),
            ("real/other.txt", "other"),
        ],
    );
    std::os::unix::fs::symlink("real/target.txt", ctx.join("link")).unwrap();
    let local_arg = format!("ctx={}", ctx.display());

    // include + exclude: exactly the matching files.
    let src = kiln_llb::local_with(
        "ctx",
        LocalOptions::new()
            .include_patterns(["*.txt", "sub"])
            .exclude_patterns(["sub/skip.txt"])
            .unique_id(unique()),
    );
    let st = kiln_llb::scratch().copy(Copy::new(&src, "/", "/").dir_contents_only());
    let s = solve_ok(tmp.path(), "incl", &st, &["--local", &local_arg]).await;
    assert_eq!(
        s.entries(),
        vec!["a.txt", "sub", "sub/c.txt", "sub/deep", "sub/deep/d.txt"],
        "{}",
        s.run.stderr
    );
    assert_eq!(s.read("a.txt"), marker);

    // follow paths: the symlink and what it points to, nothing else.
    let src = kiln_llb::local_with(
        "ctx",
        LocalOptions::new()
            .follow_paths(["link"])
            .unique_id(unique()),
    );
    let st = kiln_llb::scratch().copy(Copy::new(&src, "/", "/").dir_contents_only());
    let s = solve_ok(tmp.path(), "follow", &st, &["--local", &local_arg]).await;
    assert_eq!(
        s.entries(),
        vec!["link", "real", "real/target.txt"],
        "{}",
        s.run.stderr
    );
    assert_eq!(
        std::fs::read_link(s.out.join("link")).unwrap(),
        Path::new("real/target.txt")
    );
    assert_eq!(s.read("link"), "target");
}

/// A `git daemon` serving `base` on a free port of 127.0.0.1.
async fn git_daemon(base: &Path, log: &Path) -> (Background, u16) {
    let port = free_port();
    let mut cmd = tokio::process::Command::new("git");
    cmd.arg("daemon")
        .arg("--export-all")
        .arg(format!("--base-path={}", base.display()))
        .arg(format!("--port={port}"))
        .arg("--listen=127.0.0.1")
        .arg("--reuseaddr")
        .arg(base);
    let mut bg = Background::spawn("git daemon", cmd, log);
    bg.wait_for_port(&format!("127.0.0.1:{port}")).await;
    (bg, port)
}

/// Serves a bare clone of the repository at `work` with `git daemon`
/// (files under `root/srv`); returns the daemon and the repository's
/// `git://` URL.
pub(crate) async fn serve_repo(root: &Path, work: &Path) -> (Background, String) {
    let base = root.join("srv");
    std::fs::create_dir_all(&base).unwrap();
    git(
        root,
        &[
            "clone",
            "-q",
            "--bare",
            work.to_str().unwrap(),
            "srv/repo.git",
        ],
    );
    let (daemon, port) = git_daemon(&base, &root.join("git-daemon.log")).await;
    (daemon, format!("git://127.0.0.1:{port}/repo.git"))
}

pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
    host(
        std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "kiln")
            .env("GIT_AUTHOR_EMAIL", "kiln@example.com")
            .env("GIT_COMMITTER_NAME", "kiln")
            .env("GIT_COMMITTER_EMAIL", "kiln@example.com")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", dir),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn llb_git_source_ref_subdir_and_keep_git_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    let marker = unique();
    tree(
        &work,
        &[
            ("README", &format!("main {marker}\n")),
            ("sub/inner.txt", "inner on main\n"),
        ],
    );
    git(&work, &["init", "-q", "-b", "main"]);
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "main"]);
    let main_sha = git(&work, &["rev-parse", "HEAD"]).trim().to_string();
    git(&work, &["checkout", "-q", "-b", "feature"]);
    tree(
        &work,
        &[
            ("feature.txt", "only on feature\n"),
            ("sub/inner.txt", "inner on feature\n"),
        ],
    );
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "feature"]);
    let feature_sha = git(&work, &["rev-parse", "HEAD"]).trim().to_string();
    let (daemon, url) = serve_repo(tmp.path(), &work).await;

    // A branch: its tree, without .git.
    let s = solve_ok(tmp.path(), "feature", &kiln_llb::git(&url, "feature"), &[]).await;
    assert_eq!(
        s.entries(),
        vec!["README", "feature.txt", "sub", "sub/inner.txt"],
        "{}\n{}",
        s.run.stderr,
        daemon.log()
    );
    assert_eq!(s.read("sub/inner.txt"), "inner on feature\n");

    // Another ref (main) with a subdir: only that directory, at the root.
    let s = solve_ok(
        tmp.path(),
        "main-sub",
        &kiln_llb::git_with(&url, "main", GitOptions::new().subdir("sub")),
        &[],
    )
    .await;
    assert_eq!(s.entries(), vec!["inner.txt"], "{}", s.run.stderr);
    assert_eq!(s.read("inner.txt"), "inner on main\n");

    // The fragment form of a subdir (`ref:dir`) and a commit sha as ref.
    let s = solve_ok(
        tmp.path(),
        "sha-sub",
        &kiln_llb::git(&url, &format!("{feature_sha}:sub")),
        &[],
    )
    .await;
    assert_eq!(s.read("inner.txt"), "inner on feature\n");

    // keep_git_dir: a .git whose HEAD is the requested commit.
    let s = solve_ok(
        tmp.path(),
        "keep",
        &kiln_llb::git_with(&url, "main", GitOptions::new().keep_git_dir()),
        &[],
    )
    .await;
    assert!(s.out.join(".git").is_dir(), "{:?}", s.entries());
    assert!(!s.out.join("feature.txt").exists());
    assert_eq!(git(&s.out, &["rev-parse", "HEAD"]).trim(), main_sha);
    assert_eq!(s.read("README"), format!("main {marker}\n"));
}

/// A python http.server serving `dir` on a free port of 127.0.0.1.
pub(crate) async fn http_server(dir: &Path, log: &Path) -> (Background, u16) {
    let port = free_port();
    let mut cmd = tokio::process::Command::new("python3");
    cmd.args(["-m", "http.server", "--bind", "127.0.0.1"])
        .arg(port.to_string())
        .arg("--directory")
        .arg(dir);
    let mut bg = Background::spawn("http.server", cmd, log);
    bg.wait_for_port(&format!("127.0.0.1:{port}")).await;
    (bg, port)
}

#[tokio::test(flavor = "multi_thread")]
async fn llb_http_source_filename_mode_and_checksum() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = tmp.path().join("srv");
    let name = format!("tool-{}.sh", unique());
    let body = format!("#!/bin/sh\necho {}\n", unique());
    tree(&srv, &[(name.as_str(), body.as_str())]);
    let (server, port) = http_server(&srv, &tmp.path().join("http.log")).await;
    let url = format!("http://127.0.0.1:{port}/{name}");

    // Defaults: the URL's basename, mode 0600.
    let s = solve_ok(tmp.path(), "plain", &kiln_llb::http(&url), &[]).await;
    assert_eq!(s.entries(), vec![name.clone()], "{}", server.log());
    assert_eq!(s.read(&name), body);
    assert_eq!(s.mode(&name), 0o600);

    // Filename, mode and the right checksum.
    let good = Digest::sha256_of(body.as_bytes());
    let st = kiln_llb::http_with(
        &url,
        HttpOptions::new()
            .filename("tool")
            .chmod(0o755)
            .checksum(good),
    );
    let s = solve_ok(tmp.path(), "named", &st, &[]).await;
    assert_eq!(s.entries(), vec!["tool"]);
    assert_eq!(s.read("tool"), body);
    assert_eq!(s.mode("tool"), 0o755);

    // A wrong checksum: a clear failure and nothing exported.
    let bad = Digest::sha256_of(b"something else");
    let st = kiln_llb::http_with(&url, HttpOptions::new().checksum(bad.clone()));
    let s = solve_in(tmp.path(), "bad", &st, &[]).await;
    s.run.failure();
    let e = &s.run.stderr;
    assert!(e.contains("digest mismatch"), "{e}");
    assert!(e.contains(bad.hex()), "names the expected digest: {e}");
    assert!(!s.out.join(&name).exists());
}
