//! The resolver against real servers: a local HTTP server serving recorded
//! answers, a local git repository, and the file system for the cache.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use kiln_go::version::{DEFAULT_IMAGE_TEMPLATE, MAX_IMAGE_PROBES};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

const TOOLCHAINS: &[u8] = include_bytes!("../../testdata/toolchain-list.txt");
const GODEV: &[u8] = include_bytes!("../../testdata/godev.json");
const LIST_PATH: &str = "/golang.org/toolchain/@v/list";

/// A minimal HTTP/1.1 server: exact path (with query) → status and body;
/// anything else is 404. It records each request line and User-Agent.
struct Server {
    base: String,
    requests: Arc<Mutex<Vec<(String, String)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(routes: &[(&str, u16, &[u8])]) -> Server {
        let routes: HashMap<String, (u16, Vec<u8>)> = routes
            .iter()
            .map(|(p, s, b)| (p.to_string(), (*s, b.to_vec())))
            .collect();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else {
                    return;
                };
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
                    let agent = head
                        .lines()
                        .find_map(|l| {
                            l.strip_prefix("user-agent: ")
                                .or(l.strip_prefix("User-Agent: "))
                        })
                        .unwrap_or("")
                        .to_owned();
                    seen.lock().unwrap().push((path.clone(), agent));
                    let (status, body) = routes
                        .get(&path)
                        .cloned()
                        .unwrap_or((404, b"not found".to_vec()));
                    let head = format!(
                        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = conn.write_all(head.as_bytes()).await;
                    let _ = conn.write_all(&body).await;
                });
            }
        });
        Server {
            base,
            requests,
            task,
        }
    }

    fn hits(&self) -> usize {
        self.requests.lock().unwrap().len()
    }

    fn paths(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.0.clone())
            .collect()
    }

    /// Stops accepting; later connections are refused.
    async fn stop(self) -> String {
        self.task.abort();
        let _ = self.task.await;
        self.base
    }
}

/// A base URL where nothing listens.
async fn dead_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

fn proxy(goproxy: &str) -> Source {
    Source::from_vars(SourceKind::Proxy, |k| {
        (k == "GOPROXY").then(|| goproxy.to_owned())
    })
    .unwrap()
}

fn go_mod(text: &str) -> GoMod {
    GoMod::parse(text, Path::new("go.mod")).unwrap()
}

fn resolver(source: Source, cache: &Path) -> Resolver {
    Resolver::new(source)
        .unwrap()
        .cache(Some(Cache::new(cache)))
}

#[tokio::test]
async fn proxy_answer_is_cached_for_a_day() {
    let server = Server::start(&[(LIST_PATH, 200, TOOLCHAINS)]).await;
    let dir = tempfile::tempdir().unwrap();
    let r = resolver(proxy(&server.base), dir.path());

    let first = r.resolve(&go_mod("module m\ngo 1.24.1\n")).await.unwrap();
    assert_eq!(first.version.to_string(), "1.24.7");
    assert_eq!(first.source, Some(SourceKind::Proxy));
    assert_eq!(
        first.source_url.as_deref(),
        Some(format!("{}{LIST_PATH}", server.base).as_str())
    );
    assert!(!first.cached);
    assert!(first.warnings.is_empty(), "{:?}", first.warnings);
    assert_eq!(first.candidates.len(), 7);
    assert_eq!(server.hits(), 1);
    assert_eq!(
        server.requests.lock().unwrap()[0].1,
        concat!("kiln/", env!("CARGO_PKG_VERSION"))
    );

    let second = r.resolve(&go_mod("module m\ngo 1.22\n")).await.unwrap();
    assert_eq!(second.version.to_string(), "1.22.12");
    assert!(second.cached);
    assert_eq!(server.hits(), 1, "a fresh cache is not re-fetched");

    let refreshed = r.clone().refresh(true).list().await.unwrap();
    assert!(!refreshed.cached);
    assert_eq!(server.hits(), 2, "--refresh asks again");
}

#[tokio::test]
async fn offline_without_cache_says_to_pin() {
    let dir = tempfile::tempdir().unwrap();
    let url = dead_url().await;
    let err = resolver(proxy(&url), dir.path())
        .resolve(&go_mod("go 1.24.1"))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            GoReleaseError::Unavailable {
                kind: SourceKind::Proxy,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(msg.contains(&format!("{url}{LIST_PATH}")), "{msg}");
    assert!(msg.contains("--go"), "{msg}");
    assert!(
        msg.to_lowercase().contains("refused"),
        "names the cause: {msg}"
    );
}

#[tokio::test]
async fn offline_with_a_stale_cache_uses_it_and_warns() {
    let dir = tempfile::tempdir().unwrap();
    let url = dead_url().await;
    let source = proxy(&url);
    let cache = Cache::new(dir.path());
    let two_days_ago = SystemTime::now() - Duration::from_secs(2 * 86_400 + 60);
    let listed: Vec<GoVersion> = ["1.24.5", "1.24.4"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    cache
        .store(&source, "http://recorded/list", &listed, two_days_ago)
        .unwrap();

    let r = Resolver::new(source).unwrap().cache(Some(cache.clone()));
    let res = r.resolve(&go_mod("go 1.24.1")).await.unwrap();
    assert_eq!(res.version.to_string(), "1.24.5");
    assert!(res.cached);
    assert_eq!(res.source_url.as_deref(), Some("http://recorded/list"));
    assert_eq!(res.warnings.len(), 1, "{:?}", res.warnings);
    let w = &res.warnings[0];
    assert!(
        w.contains(&url) && w.contains("2d0h ago") && w.contains("go-versions-"),
        "{w}"
    );

    // --refresh offline falls back the same way.
    let res = r.refresh(true).resolve(&go_mod("go 1.24.1")).await.unwrap();
    assert_eq!(res.version.to_string(), "1.24.5");
    assert_eq!(res.warnings.len(), 1);
}

#[tokio::test]
async fn a_fresh_cache_without_the_needed_line_is_refreshed_once() {
    let dir = tempfile::tempdir().unwrap();
    let body = b"v0.0.1-go1.26.0.linux-amd64\nv0.0.1-go1.25.3.linux-amd64\n";
    let server = Server::start(&[(LIST_PATH, 200, body)]).await;
    let source = proxy(&server.base);
    let cache = Cache::new(dir.path());
    let old: Vec<GoVersion> = vec!["1.25.3".parse().unwrap()];
    let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
    cache.store(&source, "u", &old, an_hour_ago).unwrap();

    let r = Resolver::new(source).unwrap().cache(Some(cache));
    let res = r.resolve(&go_mod("go 1.26.0")).await.unwrap();
    assert_eq!(res.version.to_string(), "1.26.0");
    assert!(!res.cached);
    assert_eq!(server.hits(), 1);

    // Still nothing after refreshing: a clear error, naming the pre-release.
    let err = r.resolve(&go_mod("go 1.27")).await.unwrap_err();
    assert!(
        matches!(err, GoReleaseError::NoStableRelease { .. }),
        "{err:?}"
    );
    assert_eq!(
        server.hits(),
        1,
        "the fresh list just fetched is not fetched again"
    );
}

#[tokio::test]
async fn no_stable_release_names_the_newest_pre_release() {
    let dir = tempfile::tempdir().unwrap();
    let body = b"v0.0.1-go1.26rc1.linux-amd64\nv0.0.1-go1.26rc2.darwin-arm64\nv0.0.1-go1.25.3.linux-amd64\n";
    let server = Server::start(&[(LIST_PATH, 200, body)]).await;
    let err = resolver(proxy(&server.base), dir.path())
        .resolve(&go_mod("go 1.26"))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("no stable Go 1.26 release at or above 1.26"),
        "{msg}"
    );
    assert!(
        msg.contains("newest pre-release: 1.26rc2") && msg.contains("--go"),
        "{msg}"
    );
}

#[tokio::test]
async fn goproxy_falls_through_like_the_go_command() {
    let dir = tempfile::tempdir().unwrap();
    let good = Server::start(&[(LIST_PATH, 200, TOOLCHAINS)]).await;
    let gone = Server::start(&[(LIST_PATH, 410, b"gone")]).await;
    let broken = Server::start(&[(LIST_PATH, 500, b"oops")]).await;
    let dead = dead_url().await;

    // 404 and 410 fall through after a comma; `direct` is skipped.
    let goproxy = format!(
        "{}/nothing-here,{},direct,{}",
        good.base, gone.base, good.base
    );
    let list = resolver(proxy(&goproxy), dir.path()).list().await.unwrap();
    assert_eq!(list.url, format!("{}{LIST_PATH}", good.base));
    assert_eq!(
        good.paths(),
        [format!("/nothing-here{LIST_PATH}"), LIST_PATH.to_owned()]
    );

    // Other errors stop after a comma...
    let goproxy = format!("{},{}", broken.base, good.base);
    let err = resolver(proxy(&goproxy), dir.path())
        .list()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("HTTP status 500"), "{err}");
    let err = resolver(proxy(&format!("{dead},{}", good.base)), dir.path())
        .list()
        .await
        .unwrap_err();
    assert!(matches!(err, GoReleaseError::Unavailable { .. }), "{err:?}");

    // ...but fall through after a pipe.
    let goproxy = format!("{}|{dead}|{}", broken.base, good.base);
    let list = resolver(proxy(&goproxy), dir.path()).list().await.unwrap();
    assert_eq!(list.versions[0].to_string(), "1.25.1");

    // `off` reached after a 404 is an error that says so.
    let goproxy = format!("{},off,{}", gone.base, good.base);
    let err = resolver(proxy(&goproxy), dir.path())
        .list()
        .await
        .unwrap_err();
    assert!(matches!(err, GoReleaseError::ProxyOff { .. }), "{err:?}");

    // Every entry 404: the last one is reported.
    let goproxy = format!("{}/a,{}", good.base, gone.base);
    let err = resolver(proxy(&goproxy), dir.path())
        .list()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("HTTP status 410"), "{err}");
}

#[tokio::test]
async fn file_goproxy() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("goproxy");
    std::fs::create_dir_all(root.join("golang.org/toolchain/@v")).unwrap();
    std::fs::write(root.join("golang.org/toolchain/@v/list"), TOOLCHAINS).unwrap();
    let goproxy = format!(
        "file://{}/missing,file://{}",
        dir.path().display(),
        root.display()
    );
    let res = Resolver::new(proxy(&goproxy))
        .unwrap()
        .resolve(&go_mod("go 1.23.0"))
        .await
        .unwrap();
    assert_eq!(res.version.to_string(), "1.23.12");
}

#[tokio::test]
async fn godev_source() {
    let path = "/dl/?mode=json&include=all";
    let server = Server::start(&[(path, 200, GODEV)]).await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("{}{path}", server.base);
    let source = Source::from_vars(SourceKind::Godev, |k| {
        (k == GODEV_URL_ENV).then(|| url.clone())
    })
    .unwrap();
    let r = resolver(source, dir.path());
    let res = r.resolve(&go_mod("go 1.20")).await.unwrap();
    assert_eq!(res.version.to_string(), "1.20.14");
    assert_eq!(res.source, Some(SourceKind::Godev));
    assert_eq!(res.source_url.as_deref(), Some(url.as_str()));
    let res = r
        .resolve(&go_mod("go 1.24.1\ntoolchain go1.24.3"))
        .await
        .unwrap();
    assert_eq!(res.version.to_string(), "1.24.7");
    assert!(res.cached);

    let bad = Server::start(&[(path, 200, b"<html>maintenance</html>")]).await;
    let url = format!("{}{path}", bad.base);
    let source = Source::from_vars(SourceKind::Godev, |k| {
        (k == GODEV_URL_ENV).then(|| url.clone())
    })
    .unwrap();
    let err = Resolver::new(source).unwrap().list().await.unwrap_err();
    assert!(err.to_string().contains("not the expected JSON"), "{err}");
    let _ = server.stop().await;
}

/// Creates a bare repository with the given tags (through a clone, as a
/// release manager would push them).
pub(crate) fn git_repo_with_tags(dir: &Path, tags: &[&str]) -> std::path::PathBuf {
    // An empty global config of our own: the user's settings must not
    // matter, and /dev/null is not always a device in CI sandboxes.
    let config = dir.join("gitconfig-empty");
    std::fs::write(&config, "").expect("write an empty git config");
    let git = |cwd: &Path, args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(cwd)
            .env("GIT_CONFIG_GLOBAL", &config)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()
            .expect("git must be installed to test the git source");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let bare = dir.join("go.git");
    let work = dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    git(dir, &["init", "--bare", "-q", bare.to_str().unwrap()]);
    git(&work, &["init", "-q"]);
    git(
        &work,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.invalid",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "x",
        ],
    );
    for tag in tags {
        git(
            &work,
            &[
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@example.invalid",
                "tag",
                "-a",
                "-m",
                tag,
                tag,
            ],
        );
    }
    git(&work, &["push", "-q", "--tags", bare.to_str().unwrap()]);
    bare
}

#[tokio::test]
async fn git_source_against_a_local_repository() {
    let dir = tempfile::tempdir().unwrap();
    let bare = git_repo_with_tags(
        dir.path(),
        &[
            "go1.24.1",
            "go1.24.2",
            "go1.24rc1",
            "go1.25rc1",
            "go1.20",
            "weekly.2012-03-27",
            "release.r60",
        ],
    );
    let url = bare.display().to_string();
    let source =
        Source::from_vars(SourceKind::Git, |k| (k == GIT_URL_ENV).then(|| url.clone())).unwrap();
    let r = resolver(source, &dir.path().join("cache"));
    let list = r.list().await.unwrap();
    let names: Vec<String> = list.versions.iter().map(ToString::to_string).collect();
    assert_eq!(names, ["1.25rc1", "1.24.2", "1.24.1", "1.24rc1", "1.20"]);
    assert_eq!(list.url, url);
    let res = r.resolve(&go_mod("go 1.24")).await.unwrap();
    assert_eq!(res.version.to_string(), "1.24.2");

    let missing = dir.path().join("nope.git").display().to_string();
    let source = Source::from_vars(SourceKind::Git, |k| {
        (k == GIT_URL_ENV).then(|| missing.clone())
    })
    .unwrap();
    let err = Resolver::new(source).unwrap().list().await.unwrap_err();
    assert!(
        matches!(
            &err,
            GoReleaseError::Unavailable {
                source: FetchError::Git { .. },
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("git ls-remote exited"), "{err}");
}

#[derive(Debug, thiserror::Error)]
#[error("unreachable")]
struct Never;

/// Publishes images only up to a given patch.
struct PublishedUpTo(u32);

impl ImageTagProbe for PublishedUpTo {
    type Error = Never;
    async fn exists(&self, image: &kiln_image::ImageRef) -> Result<bool, Never> {
        let tag = image.tag().unwrap_or_default();
        let patch: u32 = tag
            .split('-')
            .next()
            .and_then(|v| v.rsplit('.').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or(u32::MAX);
        Ok(patch <= self.0)
    }
}

#[tokio::test]
async fn builder_image_fallback_through_the_resolver() {
    let server = Server::start(&[(LIST_PATH, 200, TOOLCHAINS)]).await;
    let dir = tempfile::tempdir().unwrap();
    let r = resolver(proxy(&server.base), dir.path());
    let m = go_mod("go 1.24.1");

    let res = r
        .resolve_with_image(&m, DEFAULT_IMAGE_TEMPLATE, "bookworm", &PublishedUpTo(99))
        .await
        .unwrap();
    assert_eq!(res.version.to_string(), "1.24.7");
    assert_eq!(
        res.image.as_deref(),
        Some("docker.io/library/golang:1.24.7-bookworm")
    );
    assert!(res.notes.is_empty());

    let res = r
        .resolve_with_image(&m, DEFAULT_IMAGE_TEMPLATE, "bookworm", &PublishedUpTo(6))
        .await
        .unwrap();
    assert_eq!(res.version.to_string(), "1.24.6");
    assert_eq!(
        res.notes,
        ["golang:1.24.7-bookworm is not published yet; using 1.24.6"]
    );

    let err = r
        .resolve_with_image(&m, DEFAULT_IMAGE_TEMPLATE, "bookworm", &PublishedUpTo(1))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, GoReleaseError::Go(kiln_go::Error::NoBuilderImage { tried }) if tried.len() == MAX_IMAGE_PROBES),
        "{err:?}"
    );
}

/// `--go VERSION`; parsing it into a `GoSpec` is tested in kiln-go.
#[test]
fn pinned_resolutions() {
    let m = go_mod("go 1.24.5\ntoolchain go1.24.6");
    let res = Resolution::pinned("1.24.3".parse().unwrap(), Some(&m));
    assert_eq!(res.version.to_string(), "1.24.3");
    assert_eq!(res.source, None);
    assert!(
        res.warnings[0].contains("requires go 1.24.5"),
        "{:?}",
        res.warnings
    );
    let json = serde_json::to_value(&res).unwrap();
    assert_eq!(json["version"], "1.24.3");
    assert_eq!(json["go_mod"], "1.24.5");
    assert_eq!(json["toolchain"], "1.24.6");
    assert_eq!(json["source"], serde_json::Value::Null);
    assert!(Resolution::pinned("1.25.0".parse().unwrap(), Some(&m))
        .warnings
        .is_empty());
}

#[test]
fn ages() {
    assert_eq!(human_age(Duration::from_secs(42)), "42s");
    assert_eq!(human_age(Duration::from_secs(42 * 60)), "42m");
    assert_eq!(human_age(Duration::from_secs(5 * 3600 + 120)), "5h2m");
    assert_eq!(
        human_age(Duration::from_secs(3 * 86_400 + 4 * 3600)),
        "3d4h"
    );
}
