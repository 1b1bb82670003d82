//! Which Go release to build with: lists every Go release from a source,
//! caches the list for a day, and applies kiln-go's pure rules to it (the
//! newest stable patch of go.mod's minor line, `go 1.24.1` → `1.24.7`, like
//! the `golatestpatchver` tool, with a builder-image fallback).
//!
//! This is the I/O half of `kiln go-version` and `kiln build --go auto`; the
//! rules themselves ([`kiln_go::version::patch_candidates`],
//! [`kiln_go::version::first_published`]) do none.
//!
//! Sources ([`SourceKind`]):
//! - **proxy** (default): `$GOPROXY/golang.org/toolchain/@v/list`, walking
//!   GOPROXY as the go command does and refusing it when GONOPROXY or
//!   GOPRIVATE covers `golang.org/toolchain`;
//! - **godev**: `https://go.dev/dl/?mode=json&include=all` (`KILN_GODEV_URL`);
//! - **git**: `git ls-remote --tags https://go.googlesource.com/go 'go*'`
//!   (`KILN_GO_GIT_URL`).
//!
//! The [`Resolver`] never prints: a stale cache used offline or a cache that
//! could not be written is a warning in [`Resolution::warnings`], a
//! builder-image fallback a note in [`Resolution::notes`]. Errors are
//! [`GoReleaseError`]s.
//!
//! ```no_run
//! use kiln_build::go_release::{Cache, Resolver, Source, SourceKind};
//!
//! # async fn example() -> Result<(), kiln_build::BuildError> {
//! let go_mod = kiln_build::go_mod::read_dir(".".as_ref())?;
//! let resolver = Resolver::new(Source::from_env(SourceKind::Proxy)?)?.cache(Cache::from_env());
//! let resolution = resolver.resolve(&go_mod).await?;
//! assert!(resolution.version >= go_mod.go);
//! for warning in &resolution.warnings {
//!     tracing::warn!("{warning}");
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Offline, a `file://` GOPROXY answers the same way (this one runs):
//!
//! ```
//! use kiln_build::go_release::{Resolver, Source, SourceKind};
//! use kiln_go::GoMod;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let proxy = tempfile::tempdir()?;
//! let list = proxy.path().join("golang.org/toolchain/@v");
//! std::fs::create_dir_all(&list)?;
//! std::fs::write(
//!     list.join("list"),
//!     "v0.0.1-go1.24.7.linux-amd64\nv0.0.1-go1.24.6.linux-amd64\nv0.0.1-go1.25rc1.linux-amd64\n",
//! )?;
//! let goproxy = format!("file://{}", proxy.path().display());
//! let source = Source::from_vars(SourceKind::Proxy, |name| {
//!     (name == "GOPROXY").then(|| goproxy.clone())
//! })?;
//!
//! let go_mod = GoMod::parse("module example.com/app\ngo 1.24.1\n", "go.mod".as_ref())?;
//! let runtime = tokio::runtime::Builder::new_current_thread().build()?;
//! let resolution = runtime.block_on(Resolver::new(source)?.resolve(&go_mod))?;
//! assert_eq!(resolution.version.to_string(), "1.24.7");
//! assert_eq!(resolution.candidates.len(), 2);
//! # Ok(())
//! # }
//! ```

mod query;
pub use query::{go_version, GoVersionQuery};
mod cache;
mod fetch;
mod source;

use std::time::{Duration, SystemTime};

use kiln_go::version::{first_published, newest_pre_release, patch_candidates, ImageTagProbe};
use kiln_go::{GoMod, GoVersion};
use serde::Serialize;

pub use cache::{Cache, DEFAULT_MAX_AGE};
pub use fetch::{CONNECT_TIMEOUT, REQUEST_TIMEOUT};
pub use source::{
    ProxyEntry, ProxyList, Source, SourceKind, DEFAULT_GIT_URL, DEFAULT_GODEV_URL, DEFAULT_GOPROXY,
    GIT_URL_ENV, GODEV_URL_ENV, TOOLCHAIN_MODULE,
};

pub use crate::error::{CacheError, FetchError, GoReleaseError, HttpError};

/// A fresh cached list without a release go.mod needs is re-fetched once it
/// is older than this (a go.mod may name a release newer than the cache).
const RECHECK_AFTER: Duration = Duration::from_secs(10 * 60);

/// Every Go version a source lists, newest first.
#[derive(Clone, Debug)]
pub struct VersionList {
    /// Releases and pre-releases, newest first, without duplicates.
    pub versions: Vec<GoVersion>,
    /// The source asked.
    pub source: SourceKind,
    /// The URL (or repository) that answered.
    pub url: String,
    /// When the source answered.
    pub fetched_at: SystemTime,
    /// Whether this came from the cache rather than the source just now.
    pub cached: bool,
    /// Problems that did not stop the listing (a stale cache used offline, a
    /// cache that could not be written).
    pub warnings: Vec<String>,
}

/// The answer: which Go to build with, and why.
#[derive(Clone, Debug, Serialize)]
pub struct Resolution {
    /// The version to build with.
    pub version: GoVersion,
    /// The go directive, if a go.mod was read.
    pub go_mod: Option<GoVersion>,
    /// The toolchain line, if any.
    pub toolchain: Option<GoVersion>,
    /// The source asked; `None` when the version was pinned.
    pub source: Option<SourceKind>,
    /// The URL that answered; `None` when pinned.
    pub source_url: Option<String>,
    /// The acceptable releases, newest first.
    pub candidates: Vec<GoVersion>,
    /// Whether the list came from the cache.
    pub cached: bool,
    /// The builder image checked, when resolved with one.
    pub image: Option<String>,
    /// How the answer was reached (toolchain line used, image fallback).
    pub notes: Vec<String>,
    /// Problems that did not stop the resolution.
    pub warnings: Vec<String>,
}

impl Resolution {
    /// The answer for `--go VERSION`: that version, as is. A go.mod, when
    /// given, is reported alongside and warned about if it asks for more.
    pub fn pinned(version: GoVersion, go_mod: Option<&GoMod>) -> Self {
        let mut warnings = Vec::new();
        if let Some(m) = go_mod {
            if m.go > version {
                warnings.push(format!(
                    "{} requires go {} or later, newer than the pinned {version}",
                    m.path.display(),
                    m.go
                ));
            }
        }
        Resolution {
            candidates: vec![version.clone()],
            version,
            go_mod: go_mod.map(|m| m.go.clone()),
            toolchain: go_mod.and_then(|m| m.toolchain.clone()),
            source: None,
            source_url: None,
            cached: false,
            image: None,
            notes: Vec::new(),
            warnings,
        }
    }
}

/// Lists Go releases from one source (through the cache) and picks from them.
#[derive(Clone, Debug)]
pub struct Resolver {
    source: Source,
    cache: Option<Cache>,
    refresh: bool,
    http: reqwest::Client,
}

impl Resolver {
    /// A resolver for `source`, without a cache. The HTTP client has a 10 s
    /// connect timeout, a 30 s total timeout and the User-Agent `kiln/VERSION`.
    ///
    /// # Errors
    /// [`GoReleaseError::HttpClient`] if the HTTP client cannot be built.
    pub fn new(source: Source) -> Result<Self, GoReleaseError> {
        Ok(Resolver {
            source,
            cache: None,
            refresh: false,
            http: fetch::http_client()?,
        })
    }

    /// Uses `cache` (or none).
    pub fn cache(mut self, cache: Option<Cache>) -> Self {
        self.cache = cache;
        self
    }

    /// Asks the source even when the cached list is fresh (`--refresh`).
    pub fn refresh(mut self, refresh: bool) -> Self {
        self.refresh = refresh;
        self
    }

    /// The configured source.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// Every version the source lists: from the cache while it is fresh,
    /// else from the source (and then cached). When the source fails, a
    /// cached list of any age is used with a warning.
    ///
    /// # Errors
    /// [`GoReleaseError::Unavailable`] when the source fails and nothing is
    /// cached; [`GoReleaseError::ProxyOff`] when GOPROXY falls through to `off`.
    pub async fn list(&self) -> Result<VersionList, GoReleaseError> {
        self.list_with(self.refresh).await
    }

    async fn list_with(&self, refresh: bool) -> Result<VersionList, GoReleaseError> {
        let now = SystemTime::now();
        let mut warnings = Vec::new();
        let cached = match &self.cache {
            Some(cache) => cache.load(&self.source).unwrap_or_else(|e| {
                warnings.push(e.to_string());
                None
            }),
            None => None,
        };
        let max_age = self.cache.as_ref().map_or(Duration::ZERO, Cache::max_age);
        if let Some(entry) = cached.as_ref().filter(|_| !refresh) {
            if entry.age(now).is_some_and(|age| age < max_age) {
                tracing::debug!(path = %entry.path.display(), "using the cached Go release list");
                return Ok(VersionList {
                    versions: entry.versions.clone(),
                    source: self.source.kind(),
                    url: entry.url.clone(),
                    fetched_at: entry.fetched_at,
                    cached: true,
                    warnings,
                });
            }
        }
        match (fetch::fetch(&self.source, &self.http).await, cached) {
            (Ok(fetched), _) => {
                if let Some(cache) = &self.cache {
                    if let Err(e) = cache.store(&self.source, &fetched.url, &fetched.versions, now)
                    {
                        warnings.push(format!("cannot cache the Go release list: {e}"));
                    }
                }
                Ok(VersionList {
                    versions: fetched.versions,
                    source: self.source.kind(),
                    url: fetched.url,
                    fetched_at: now,
                    cached: false,
                    warnings,
                })
            }
            (Err(GoReleaseError::Unavailable { url, source, .. }), Some(entry)) => {
                warnings.push(stale_warning(&url, &source, &entry, now));
                Ok(VersionList {
                    versions: entry.versions,
                    source: self.source.kind(),
                    url: entry.url,
                    fetched_at: entry.fetched_at,
                    cached: true,
                    warnings,
                })
            }
            (Err(e), _) => Err(e),
        }
    }

    /// The newest stable patch of `go_mod`'s minor line (see
    /// [`patch_candidates`] for the `toolchain` rule). A cached list more
    /// than ten minutes old that has no suitable release is re-fetched once
    /// before giving up.
    ///
    /// # Errors
    /// The errors of [`Resolver::list`], and [`GoReleaseError::NoStableRelease`]
    /// when the line has no release at or above the go directive.
    pub async fn resolve(&self, go_mod: &GoMod) -> Result<Resolution, GoReleaseError> {
        let mut list = self.list().await?;
        let mut picked = patch_candidates(&go_mod.go, go_mod.toolchain.as_ref(), &list.versions);
        let age = SystemTime::now()
            .duration_since(list.fetched_at)
            .unwrap_or(Duration::MAX);
        if picked.versions.is_empty()
            && list.cached
            && list.warnings.is_empty()
            && age > RECHECK_AFTER
        {
            // A list cached before the release go.mod asks for came out.
            tracing::debug!("no suitable release in the cached list; asking the source");
            list = self.list_with(true).await?;
            picked = patch_candidates(&go_mod.go, go_mod.toolchain.as_ref(), &list.versions);
        }
        let Some(version) = picked.versions.first().cloned() else {
            return Err(GoReleaseError::NoStableRelease {
                minor: go_mod.go.minor_line(),
                minimum: go_mod.go.clone(),
                url: list.url,
                newest_pre_release: newest_pre_release(&go_mod.go, &list.versions),
            });
        };
        Ok(Resolution {
            version,
            go_mod: Some(go_mod.go.clone()),
            toolchain: go_mod.toolchain.clone(),
            source: Some(list.source),
            source_url: Some(list.url),
            candidates: picked.versions,
            cached: list.cached,
            image: None,
            notes: picked.notes,
            warnings: list.warnings,
        })
    }

    /// Like [`Resolver::resolve`], then checks that the builder image of the
    /// chosen version exists (`template` as in
    /// [`kiln_go::version::builder_image`]) and falls back to the newest
    /// candidate whose image does, probing at most
    /// [`kiln_go::version::MAX_IMAGE_PROBES`] images (see
    /// [`first_published`]). A fallback is reported in `notes`
    /// (`golang:1.24.5-bookworm is not published yet; using 1.24.4`).
    ///
    /// # Errors
    /// The errors of [`Resolver::resolve`]; [`GoReleaseError::Go`] with
    /// [`kiln_go::Error::Template`] or [`kiln_go::Error::ImageRef`] for an
    /// unusable template, [`kiln_go::Error::Probe`] if the probe fails and
    /// [`kiln_go::Error::NoBuilderImage`] if no probed image exists.
    pub async fn resolve_with_image<P: ImageTagProbe>(
        &self,
        go_mod: &GoMod,
        template: &str,
        distro: &str,
        probe: &P,
    ) -> Result<Resolution, GoReleaseError> {
        let mut resolution = self.resolve(go_mod).await?;
        let (version, image, note) =
            first_published(&resolution.candidates, template, distro, probe).await?;
        resolution.version = version;
        resolution.image = Some(image.to_string());
        resolution.notes.extend(note);
        Ok(resolution)
    }
}

fn stale_warning(url: &str, err: &FetchError, entry: &cache::Entry, now: SystemTime) -> String {
    let age = entry.age(now).map_or_else(
        || "at an unknown time".to_owned(),
        |a| format!("{} ago", human_age(a)),
    );
    format!(
        "cannot list Go releases from {url} ({err}); using the list cached {age} in {}",
        entry.path.display()
    )
}

/// `3d4h`, `5h12m`, `42m`, `10s`.
fn human_age(age: Duration) -> String {
    let s = age.as_secs();
    let (d, h, m) = (s / 86_400, s / 3_600 % 24, s / 60 % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h{m}m"),
        (d, h, _) => format!("{d}d{h}h"),
    }
}

#[cfg(test)]
mod recorded_tests;
#[cfg(test)]
mod tests;
