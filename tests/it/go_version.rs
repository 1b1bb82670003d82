//! `kiln go-version` against a local HTTP server serving recorded release
//! lists and a local git repository: no daemon, no real network.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::common::*;

pub(crate) const TOOLCHAINS: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/crates/kiln-build/testdata/toolchain-list.txt"
));
const GODEV: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/crates/kiln-build/testdata/godev.json"
));
pub(crate) const LIST_PATH: &str = "/golang.org/toolchain/@v/list";
const GODEV_PATH: &str = "/dl/?mode=json&include=all";

/// A minimal HTTP/1.1 server: exact path (with query) → body, else 404.
pub(crate) struct Server {
    pub(crate) base: String,
    hits: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    pub(crate) async fn start(routes: &[(&str, &[u8])]) -> Server {
        let routes: HashMap<String, Vec<u8>> = routes
            .iter()
            .map(|(p, b)| (p.to_string(), b.to_vec()))
            .collect();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let hits = Arc::new(Mutex::new(Vec::new()));
        let seen = hits.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let routes = routes.clone();
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&buf).into_owned();
                    let path = head.split(' ').nth(1).unwrap_or("").to_owned();
                    seen.lock().expect("lock").push(path.clone());
                    let (status, body) = match routes.get(&path) {
                        Some(body) => (200, body.clone()),
                        None => (404, b"not found".to_vec()),
                    };
                    let head = format!(
                        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = conn.write_all(head.as_bytes()).await;
                    let _ = conn.write_all(&body).await;
                });
            }
        });
        Server { base, hits, task }
    }

    fn hits(&self) -> usize {
        self.hits.lock().expect("lock").len()
    }

    /// Stops listening: later connections are refused.
    async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// A base URL where nothing listens.
async fn dead_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    drop(listener);
    url
}

/// A temporary module directory and cache directory.
struct Module {
    root: tempfile::TempDir,
}

impl Module {
    fn new(go_mod: &str) -> Module {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(root.path().join("app")).expect("mkdir");
        std::fs::write(root.path().join("app/go.mod"), go_mod).expect("write go.mod");
        Module { root }
    }

    fn dir(&self) -> String {
        self.root.path().join("app").display().to_string()
    }

    fn cache(&self) -> PathBuf {
        self.root.path().join("cache")
    }

    /// `kiln` with the Go environment cleared and the cache in the tempdir.
    fn kiln(&self, env: &[(&str, &str)]) -> tokio::process::Command {
        let mut c = kiln();
        for var in [
            "GOPROXY",
            "GONOPROXY",
            "GOPRIVATE",
            "KILN_GODEV_URL",
            "KILN_GO_GIT_URL",
        ] {
            c.env_remove(var);
        }
        c.env("XDG_CACHE_HOME", self.cache()).env("GOENV", "off");
        for (k, v) in env {
            c.env(k, v);
        }
        c
    }
}

#[tokio::test]
async fn proxy_picks_the_newest_patch_then_answers_from_the_cache() {
    let server = Server::start(&[(LIST_PATH, TOOLCHAINS)]).await;
    let m = Module::new("module example.com/app\r\n\r\ngo 1.24.1 // min\r\n\r\nrequire (\r\n\tgolang.org/x/text v0.14.0\r\n)\r\n");
    let base = server.base.clone();
    let env = [("GOPROXY", base.as_str())];

    let r = run(m.kiln(&env), &["go-version", &m.dir()]).await;
    r.success();
    assert_eq!(r.stdout, "1.24.7\n");
    assert_eq!(server.hits(), 1);
    let cached: Vec<_> = std::fs::read_dir(m.cache().join("kiln"))
        .expect("cache dir")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        cached.len() == 1 && cached[0].starts_with("go-versions-"),
        "{cached:?}"
    );

    // The server is gone: the day-old cache still answers, without a warning.
    server.stop().await;
    let r = run(m.kiln(&env), &["go-version", &m.dir(), "--format", "json"]).await;
    r.success();
    let v = r.json();
    assert_eq!(v["version"], "1.24.7");
    assert_eq!(v["cached"], true);
    assert!(r.stderr.is_empty(), "{}", r.stderr);

    // --refresh cannot reach it either: the cached list, with a warning.
    let r = run(m.kiln(&env), &["go-version", &m.dir(), "--refresh"]).await;
    r.success();
    assert_eq!(r.stdout, "1.24.7\n");
    assert!(
        r.stderr
            .starts_with("warning: cannot list Go releases from"),
        "{}",
        r.stderr
    );
}

#[tokio::test]
async fn json_output_shape() {
    let server = Server::start(&[(LIST_PATH, TOOLCHAINS)]).await;
    let m = Module::new("module m\n\ngo 1.24.1\n");
    let r = run(
        m.kiln(&[("GOPROXY", &format!("{},direct", server.base))]),
        &["go-version", &m.dir(), "--format", "json"],
    )
    .await;
    r.success();
    let v = r.json();
    assert_eq!(v["version"], "1.24.7");
    assert_eq!(v["go_mod"], "1.24.1");
    assert_eq!(v["toolchain"], serde_json::Value::Null);
    assert_eq!(v["source"], "proxy");
    assert_eq!(v["source_url"], format!("{}{LIST_PATH}", server.base));
    assert_eq!(
        v["candidates"],
        serde_json::json!(["1.24.7", "1.24.6", "1.24.5", "1.24.4", "1.24.3", "1.24.2", "1.24.1"])
    );
    assert_eq!(v["cached"], false);
    assert_eq!(v["notes"], serde_json::json!([]));
    assert_eq!(v["warnings"], serde_json::json!([]));
}

#[tokio::test]
async fn toolchain_line_newer_than_the_list() {
    let server = Server::start(&[(LIST_PATH, TOOLCHAINS)]).await;
    let m = Module::new("module m\ngo 1.24.1\ntoolchain go1.24.9\n");
    let r = run(
        m.kiln(&[("GOPROXY", &server.base)]),
        &["go-version", &m.dir()],
    )
    .await;
    r.success();
    assert_eq!(r.stdout, "1.24.9\n");
    assert!(
        r.stderr
            .contains("note: go.mod's toolchain go1.24.9 is newer"),
        "{}",
        r.stderr
    );
}

#[tokio::test]
async fn godev_source() {
    let server = Server::start(&[(GODEV_PATH, GODEV)]).await;
    let m = Module::new("module m\ngo 1.20\n");
    let url = format!("{}{GODEV_PATH}", server.base);
    let r = run(
        m.kiln(&[("KILN_GODEV_URL", &url)]),
        &[
            "go-version",
            &m.dir(),
            "--go-source",
            "godev",
            "--format",
            "json",
        ],
    )
    .await;
    r.success();
    let v = r.json();
    assert_eq!(v["version"], "1.20.14");
    assert_eq!(v["source"], "godev");
    assert_eq!(v["source_url"], url);
    assert_eq!(v["candidates"].as_array().map(Vec::len), Some(15));
}

#[tokio::test]
async fn git_source_against_a_local_bare_repository() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let bare = git_repo_with_tags(
        tmp.path(),
        &[
            "go1.24.1",
            "go1.24.2",
            "go1.24rc2",
            "go1.25rc1",
            "go1.23.9",
            "weekly.2012-03-27",
            "release.r60",
        ],
    );
    let m = Module::new("module m\ngo 1.24\n");
    let url = bare.display().to_string();
    let r = run(
        m.kiln(&[("KILN_GO_GIT_URL", &url)]),
        &[
            "go-version",
            &m.dir(),
            "--go-source",
            "git",
            "--format",
            "json",
        ],
    )
    .await;
    r.success();
    let v = r.json();
    assert_eq!(v["version"], "1.24.2");
    assert_eq!(v["source"], "git");
    assert_eq!(v["source_url"], url);
    assert_eq!(v["candidates"], serde_json::json!(["1.24.2", "1.24.1"]));

    // 1.25 has only a release candidate.
    let m = Module::new("module m\ngo 1.25\n");
    let r = run(
        m.kiln(&[("KILN_GO_GIT_URL", &url)]),
        &["go-version", &m.dir(), "--go-source", "git"],
    )
    .await;
    r.failure();
    assert!(
        r.stderr.contains("no stable Go 1.25 release")
            && r.stderr.contains("newest pre-release: 1.25rc1"),
        "{}",
        r.stderr
    );
}

#[tokio::test]
async fn offline_without_a_cache_says_to_pin() {
    let dead = dead_url().await;
    let m = Module::new("module m\ngo 1.24.1\n");
    let r = run(m.kiln(&[("GOPROXY", &dead)]), &["go-version", &m.dir()]).await;
    r.failure();
    assert!(r.stderr.starts_with("error: "), "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!("{dead}{LIST_PATH}")),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("--go"), "{}", r.stderr);
    assert!(r.stdout.is_empty());
}

#[tokio::test]
async fn pinned_versions_need_no_network_and_are_validated() {
    let m = Module::new("module m\ngo 1.24.1\n");
    let dead = dead_url().await;
    let r = run(
        m.kiln(&[("GOPROXY", &dead)]),
        &["go-version", &m.dir(), "--go", "1.24.3"],
    )
    .await;
    r.success();
    assert_eq!(r.stdout, "1.24.3\n");

    // No go.mod needed either.
    let empty = tempfile::tempdir().expect("tempdir");
    let dir = empty.path().display().to_string();
    let r = run(m.kiln(&[]), &["go-version", &dir, "--go", "go1.25rc1"]).await;
    r.success();
    assert_eq!(r.stdout, "1.25rc1\n");

    let r = run(m.kiln(&[]), &["go-version", &m.dir(), "--go", "1.24.x"]).await;
    r.failure();
    assert!(
        r.stderr.contains("--go") && r.stderr.contains("\"1.24.x\""),
        "{}",
        r.stderr
    );
}

/// A module directory, extra environment and the expected error text.
type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);

#[tokio::test]
async fn bad_modules_and_settings_are_one_clear_error() {
    let empty = tempfile::tempdir().expect("tempdir");
    let m = Module::new("module m\n");
    let dir = empty.path().display().to_string();
    let mdir = m.dir();
    let good = Module::new("module m\ngo 1.24\n");
    let gdir = good.dir();
    let cases: [Case<'_>; 5] = [
        (dir.as_str(), vec![], "no go.mod in"),
        (&mdir, vec![], "has no go directive"),
        (&gdir, vec![("GOPROXY", "off")], "GOPROXY=\"off\""),
        (&gdir, vec![("GOPROXY", "direct")], "names no proxy"),
        (
            &gdir,
            vec![("GOPRIVATE", "golang.org")],
            "matches golang.org/toolchain",
        ),
    ];
    for (dir, env, expected) in cases {
        let r = run(m.kiln(&env), &["go-version", dir]).await;
        r.failure();
        assert!(
            r.stderr.starts_with("error: ") && r.stderr.contains(expected),
            "{env:?}: {}",
            r.stderr
        );
    }
    // A bad version in go.mod names the file and line.
    let bad = Module::new("module m\n\ngo 1.x\n");
    let r = run(bad.kiln(&[]), &["go-version", &bad.dir()]).await;
    r.failure();
    assert!(r.stderr.contains("go.mod:3:"), "{}", r.stderr);
}

/// A bare repository with annotated tags, pushed from a temporary clone.
pub(crate) fn git_repo_with_tags(dir: &Path, tags: &[&str]) -> PathBuf {
    // An empty global config of our own: the user's settings must not
    // matter, and /dev/null is not always a device in CI sandboxes.
    let config = dir.join("gitconfig-empty");
    std::fs::write(&config, "").expect("write an empty git config");
    let git = |cwd: &Path, args: &[&str]| {
        let out = std::process::Command::new("git")
            .args([
                "-c",
                "user.name=kiln",
                "-c",
                "user.email=kiln@example.invalid",
            ])
            .args(args)
            .current_dir(cwd)
            .env("GIT_CONFIG_GLOBAL", &config)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()
            .expect("git must be installed for the git source test");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let bare = dir.join("go.git");
    let work = dir.join("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    git(dir, &["init", "-q", "--bare", &bare.display().to_string()]);
    git(&work, &["init", "-q"]);
    git(&work, &["commit", "-q", "--allow-empty", "-m", "release"]);
    for tag in tags {
        git(&work, &["tag", "-a", "-m", tag, tag]);
    }
    git(
        &work,
        &["push", "-q", "--tags", &bare.display().to_string()],
    );
    bare
}

/// Tags the Go fixture image as `tag` in the harness registry (same manifest).
pub fn tag_go_fixture(tag: &str) {
    let h = harness();
    let (_, rest) = h.go_image.split_once('/').expect("registry/repo:tag");
    let (repo, src_tag) = rest.rsplit_once(':').expect("repo:tag");
    let accept = "application/vnd.oci.image.index.v1+json";
    let url = |t: &str| format!("http://{}/v2/{repo}/manifests/{t}", h.registry);
    let get = std::process::Command::new("curl")
        .args(["-sf", "-H", &format!("Accept: {accept}"), &url(src_tag)])
        .output()
        .expect("curl");
    assert!(get.status.success(), "GET {}", url(src_tag));
    let tmp = tempfile::NamedTempFile::new().expect("temp");
    std::fs::write(tmp.path(), &get.stdout).expect("write");
    let put = std::process::Command::new("curl")
        .args([
            "-sf",
            "-X",
            "PUT",
            "-H",
            &format!("Content-Type: {accept}"),
            "--data-binary",
        ])
        .arg(format!("@{}", tmp.path().display()))
        .arg(url(tag))
        .output()
        .expect("curl");
    assert!(
        put.status.success(),
        "PUT {}: {}",
        url(tag),
        String::from_utf8_lossy(&put.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn builder_image_fallback_through_the_daemon() {
    // The list's newest 1.24 patch is 1.24.7; only 1.24.5 has a builder image.
    tag_go_fixture("1.24.5-bookworm");
    let h = harness();
    let server = Server::start(&[(LIST_PATH, TOOLCHAINS)]).await;
    let m = Module::new("module example.com/app\n\ngo 1.24.1\n");
    let template = format!("{}/kiln-fixtures/golang:{{go}}-{{distro}}", h.registry);
    let r = run(
        m.kiln(&[("GOPROXY", server.base.as_str())]),
        &daemon_args(&[
            "go-version",
            &m.dir(),
            "--builder-image",
            &template,
            "--format",
            "json",
        ])
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>(),
    )
    .await;
    r.success();
    let v = r.json();
    assert_eq!(v["version"], "1.24.5", "{v}");
    let notes = v["notes"].to_string();
    assert!(
        notes.contains("1.24.7") && notes.contains("not published"),
        "{notes}"
    );
}
