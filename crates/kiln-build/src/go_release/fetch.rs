//! Asking a source for every Go version it knows, and parsing its answer.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use kiln_go::GoVersion;
use serde::Deserialize;

use super::source::{toolchain_list_url, ProxyEntry, ProxyList, Source};
use crate::error::{FetchError, GoReleaseError, HttpError};

/// Connect timeout for every request.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Total timeout for one request (or one `git ls-remote`).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest answer kiln reads (go.dev's full list is a few megabytes).
const MAX_BODY: usize = 64 << 20;

/// A source's answer: every version it lists (releases and pre-releases,
/// newest first, without duplicates) and the URL that gave it.
#[derive(Debug)]
pub(crate) struct Fetched {
    pub versions: Vec<GoVersion>,
    pub url: String,
}

/// The HTTP client kiln uses for version lists.
pub(crate) fn http_client() -> Result<reqwest::Client, GoReleaseError> {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .user_agent(concat!("kiln/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| GoReleaseError::HttpClient(HttpError(e)))
}

/// Lists the versions `source` knows.
///
/// # Errors
/// [`GoReleaseError::Unavailable`] with the URL that failed, or
/// [`GoReleaseError::ProxyOff`] when GOPROXY falls through to `off`.
pub(crate) async fn fetch(
    source: &Source,
    http: &reqwest::Client,
) -> Result<Fetched, GoReleaseError> {
    match source {
        Source::Proxy(list) => fetch_proxy(list, http).await,
        Source::Godev { url } => {
            let body = get(http, url)
                .await
                .map_err(|e| unavailable(source, url, e))?;
            let versions = parse_godev(&body).map_err(|e| unavailable(source, url, e))?;
            non_empty(source, url, versions)
        }
        Source::Git { url, program } => {
            let out = ls_remote(program, url)
                .await
                .map_err(|e| unavailable(source, url, e))?;
            non_empty(source, url, parse_ls_remote(&out))
        }
    }
}

fn unavailable(source: &Source, url: &str, source_err: FetchError) -> GoReleaseError {
    GoReleaseError::Unavailable {
        kind: source.kind(),
        url: url.to_owned(),
        source: source_err,
    }
}

fn non_empty(
    source: &Source,
    url: &str,
    versions: Vec<GoVersion>,
) -> Result<Fetched, GoReleaseError> {
    if versions.is_empty() {
        return Err(unavailable(source, url, FetchError::Empty));
    }
    Ok(Fetched {
        versions,
        url: url.to_owned(),
    })
}

/// Walks GOPROXY like the go command: after `,` only 404/410 falls through,
/// after `|` any error does; `direct` is skipped, `off` stops.
async fn fetch_proxy(list: &ProxyList, http: &reqwest::Client) -> Result<Fetched, GoReleaseError> {
    let source = Source::Proxy(list.clone());
    let mut last: Option<(String, FetchError)> = None;
    for entry in list.entries() {
        let (base, fall_back_on_error) = match entry {
            ProxyEntry::Url {
                url,
                fall_back_on_error,
            } => (url, *fall_back_on_error),
            ProxyEntry::Direct => {
                tracing::debug!("GOPROXY: skipping `direct` (kiln asks proxies only)");
                continue;
            }
            ProxyEntry::Off => {
                return Err(GoReleaseError::ProxyOff {
                    goproxy: list.as_str().to_owned(),
                })
            }
        };
        let url = toolchain_list_url(base);
        let result = match base.strip_prefix("file://") {
            Some(path) => read_file(&toolchain_list_url(path)),
            None => get(http, &url).await,
        };
        match result.and_then(|body| {
            let versions = parse_toolchain_list(&body);
            if versions.is_empty() {
                Err(FetchError::Empty)
            } else {
                Ok(versions)
            }
        }) {
            Ok(versions) => return Ok(Fetched { versions, url }),
            Err(e) if fall_back_on_error || e.is_not_found() => {
                tracing::debug!(%url, error = %e, "GOPROXY: trying the next entry");
                last = Some((url, e));
            }
            Err(e) => return Err(unavailable(&source, &url, e)),
        }
    }
    // Every URL fell through (ProxyList::parse guarantees there was one).
    let (url, err) = last.unwrap_or_else(|| (source.display_url(), FetchError::Empty));
    Err(unavailable(&source, &url, err))
}

fn read_file(path: &str) -> Result<Vec<u8>, FetchError> {
    std::fs::read(path).map_err(|source| FetchError::File {
        path: PathBuf::from(path),
        source,
    })
}

/// GETs `url`; non-2xx statuses are errors.
async fn get(http: &reqwest::Client, url: &str) -> Result<Vec<u8>, FetchError> {
    tracing::debug!(%url, "fetching the Go release list");
    let mut response = http.get(url).send().await.map_err(http_error)?;
    let status = response.status();
    if !status.is_success() {
        return Err(FetchError::Status {
            status: status.as_u16(),
        });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(http_error)? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(FetchError::TooLarge { limit: MAX_BODY });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The URL is already in every message that carries a [`FetchError`].
fn http_error(e: reqwest::Error) -> FetchError {
    FetchError::Http(HttpError(e.without_url()))
}

async fn ls_remote(program: &PathBuf, url: &str) -> Result<Vec<u8>, FetchError> {
    tracing::debug!(%url, "git ls-remote --tags");
    let child = tokio::process::Command::new(program)
        .args(["ls-remote", "--tags", "--", url, "go*"])
        // Never stop to ask for credentials.
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| FetchError::GitSpawn {
            program: program.clone(),
            source,
        })?;
    let out = tokio::time::timeout(REQUEST_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| FetchError::Timeout(REQUEST_TIMEOUT))?
        .map_err(|source| FetchError::GitSpawn {
            program: program.clone(),
            source,
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(3).collect();
        return Err(FetchError::Git {
            status: out.status,
            stderr: tail.into_iter().rev().collect::<Vec<_>>().join(" / "),
        });
    }
    Ok(out.stdout)
}

/// Sorts newest first and drops duplicates (`1.20` and `1.20.0` are one).
fn newest_first(mut versions: Vec<GoVersion>) -> Vec<GoVersion> {
    versions.sort_by(|a, b| b.cmp(a));
    versions.dedup();
    versions
}

/// Parses the proxy's `golang.org/toolchain/@v/list`: one module version per
/// line, `v0.0.1-go1.24.3.linux-amd64`, one per release and platform.
/// Lines that are not toolchain versions are skipped.
pub(crate) fn parse_toolchain_list(body: &[u8]) -> Vec<GoVersion> {
    let text = String::from_utf8_lossy(body);
    let versions = text.lines().filter_map(|line| {
        let line = line.trim();
        let (_, rest) = line.split_once("-go")?;
        // `1.24.3.linux-amd64`: the platform is after the last dot and has
        // a dash; the version is everything before.
        let (version, platform) = rest.rsplit_once('.')?;
        if !platform.contains('-') {
            return None;
        }
        match GoVersion::parse(version) {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::debug!(%line, error = %e, "skipping toolchain list line");
                None
            }
        }
    });
    newest_first(versions.collect())
}

#[derive(Deserialize)]
struct GodevRelease {
    version: String,
    #[serde(default)]
    stable: bool,
}

/// Parses go.dev's JSON list. A release counts only if go.dev marks it
/// `stable` *and* its name is a release (not a beta or rc); pre-releases are
/// kept (unmarked) so that errors can mention them.
pub(crate) fn parse_godev(body: &[u8]) -> Result<Vec<GoVersion>, FetchError> {
    let releases: Vec<GodevRelease> = serde_json::from_slice(body).map_err(FetchError::Json)?;
    let versions = releases.into_iter().filter_map(|r| {
        let v = GoVersion::parse(&r.version).ok()?;
        (r.stable || !v.is_release()).then_some(v)
    });
    Ok(newest_first(versions.collect()))
}

/// Parses `git ls-remote --tags` output: `<sha>\trefs/tags/go1.24.3`.
/// Peeled `^{}` lines and tags that are not Go versions (`weekly.*`,
/// `release.r60`) are skipped.
pub(crate) fn parse_ls_remote(out: &[u8]) -> Vec<GoVersion> {
    let text = String::from_utf8_lossy(out);
    let versions = text.lines().filter_map(|line| {
        let (_, name) = line.split_once('\t')?;
        let tag = name.trim().strip_prefix("refs/tags/")?;
        if tag.ends_with("^{}") {
            return None;
        }
        GoVersion::parse(tag.strip_prefix("go")?).ok()
    });
    newest_first(versions.collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn names(v: &[GoVersion]) -> Vec<String> {
        v.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn toolchain_list_lines() {
        let body = b"v0.0.1-go1.21rc2.darwin-arm64\nv0.0.1-go1.24.3.linux-amd64\r\n\
                     v0.0.1-go1.24.3.windows-arm64\n\nv0.0.1-go1.21.0.linux-386\n\
                     garbage\nv0.0.1-go1.x.linux-amd64\nv0.0.1-go1.24.4\n";
        assert_eq!(
            names(&parse_toolchain_list(body)),
            ["1.24.3", "1.21.0", "1.21rc2"]
        );
    }

    #[test]
    fn recorded_toolchain_list() {
        let list = parse_toolchain_list(include_bytes!("../../testdata/toolchain-list.txt"));
        assert_eq!(list[0].to_string(), "1.25.1");
        assert!(list.iter().any(|v| v.to_string() == "1.21rc2"));
        assert!(
            list.windows(2).all(|w| w[0] > w[1]),
            "sorted, no duplicates"
        );
    }

    #[test]
    fn recorded_godev_list() {
        let list = parse_godev(include_bytes!("../../testdata/godev.json")).unwrap();
        assert_eq!(list[0].to_string(), "1.25.1");
        let all = names(&list);
        for v in ["1.24.7", "1.25rc3", "1.20", "1.9", "1.9beta1", "1.21.0"] {
            assert!(all.iter().any(|a| a == v), "{v} missing from {all:?}");
        }
    }

    #[test]
    fn godev_trusts_the_stable_flag_for_releases() {
        let body = br#"[{"version":"go1.24.3","stable":true,"files":[]},
                        {"version":"go1.24.4","stable":false,"files":[]},
                        {"version":"go1.25rc1","stable":false,"files":[]},
                        {"version":"not-a-version","stable":true}]"#;
        assert_eq!(names(&parse_godev(body).unwrap()), ["1.25rc1", "1.24.3"]);
        assert!(matches!(parse_godev(b"<html>"), Err(FetchError::Json(_))));
    }

    #[test]
    fn ls_remote_lines() {
        let out = b"1111111111111111111111111111111111111111\trefs/tags/go1.24.1\n\
                    2222222222222222222222222222222222222222\trefs/tags/go1.24.1^{}\n\
                    3333333333333333333333333333333333333333\trefs/tags/go1.25rc1\n\
                    4444444444444444444444444444444444444444\trefs/tags/weekly.2012-03-27\n\
                    5555555555555555555555555555555555555555\trefs/tags/release.r60\n\
                    6666666666666666666666666666666666666666\trefs/tags/go1.9beta1\n\
                    7777777777777777777777777777777777777777\trefs/tags/go1.20\n\
                    8888888888888888888888888888888888888888\trefs/tags/gofmt-fix\n\
                    9999999999999999999999999999999999999999\trefs/heads/master\n";
        assert_eq!(
            names(&parse_ls_remote(out)),
            ["1.25rc1", "1.24.1", "1.20", "1.9beta1"]
        );
    }

    #[test]
    fn recorded_ls_remote() {
        let list = parse_ls_remote(include_bytes!("../../testdata/git-ls-remote.txt"));
        assert_eq!(list[0].to_string(), "1.25.1");
        assert_eq!(list.last().unwrap().to_string(), "1");
    }
}
