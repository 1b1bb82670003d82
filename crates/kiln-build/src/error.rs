//! kiln-build's errors: each says what was wrong (the flag, file, image,
//! platform, URL or step) and carries its cause.
//!
//! [`BuildError`] is a build's error. Listing Go releases has its own kinds,
//! re-exported by [`crate::go_release`]: [`GoReleaseError`] (what
//! [`Resolver`](crate::go_release::Resolver) returns), [`FetchError`] (why one
//! source failed), [`HttpError`] (the transport, opaque) and [`CacheError`]
//! (a cache file that could not be used: a warning, never a failure).

use std::path::PathBuf;
use std::time::Duration;

use kiln_go::version::{GoMinor, GoVersion};
use kiln_image::Platform;

use crate::go_release::SourceKind;

/// Why a build (or a lock, or a solve) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The daemon stopped answering mid-build: it health-checks the session
    /// every 5 seconds, and nothing came for `silent`.
    #[error("the daemon at {address} stopped answering: no sign of life for {}s while the build ran (BuildKit checks on the session every 5 s). Is the daemon stopped or overloaded, or the network path to it down? The build was cancelled; --stall-timeout SECONDS (0: wait forever) sets the limit", silent.as_secs())]
    Stalled {
        /// The daemon's address.
        address: String,
        /// How long it was silent.
        silent: Duration,
    },
    /// A value the user gave (a flag, a kiln.toml entry) that kiln cannot use.
    #[error("{what}: {reason}")]
    Invalid {
        /// The flag or setting, e.g. `--platform linux/sparc`.
        what: String,
        /// Why, and what to do instead.
        reason: String,
    },
    /// A spec (`-o`, `--secret`, …) that does not parse.
    #[error(transparent)]
    Spec(#[from] crate::spec::SpecError),
    /// A file kiln must read or write.
    #[error("cannot {action} {path}: {source}")]
    File {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `kiln.toml` does not parse.
    #[error("{} is not a valid kiln.toml (see `kiln init` for a commented example): {source}", path.display())]
    Config {
        path: PathBuf,
        #[source]
        source: Box<toml::de::Error>,
    },
    /// `kiln.lock` does not parse, or disagrees with the build.
    #[error("{}: {reason}", path.display())]
    Lock { path: PathBuf, reason: String },
    /// `DIR/go.mod` does not exist.
    #[error("no go.mod in {dir}: kiln builds Go modules; run it in a module's root (where go.mod is) or name that directory")]
    GoModNotFound {
        /// The directory that was searched.
        dir: PathBuf,
    },
    /// `go.mod` exists but cannot be read.
    #[error("cannot read {path}: {source}")]
    GoModRead {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// `go.mod` is malformed, or a Go version or builder-image template is
    /// not usable.
    #[error(transparent)]
    Go(Box<kiln_go::Error>),
    /// No Go release could be listed, or none fits go.mod.
    #[error(transparent)]
    GoRelease(Box<GoReleaseError>),
    /// The recipe refused the options for a platform.
    #[error("cannot plan the build for {platform}: {source}")]
    Plan {
        platform: Box<Platform>,
        #[source]
        source: Box<kiln_go::RecipeError>,
    },
    /// Marshaling the build graph failed.
    #[error("cannot marshal the build graph for {platform}: {source}")]
    Marshal {
        platform: Box<Platform>,
        #[source]
        source: Box<kiln_llb::LlbError>,
    },
    /// An image could not be resolved through the daemon or the registry.
    #[error("cannot resolve the {role} image {image} for {platform}: {source}")]
    Resolve {
        role: &'static str,
        image: String,
        platform: Box<Platform>,
        #[source]
        source: Box<BuildError>,
    },
    /// The daemon failed a call or the build (a step failed): rendered
    /// with the failing step by the caller.
    #[error(transparent)]
    Daemon(Box<kiln_client::Error>),
    /// The daemon reported the build as successful, but kiln refused or
    /// lost part of the export it sent (a path leaving `dest`, a broken
    /// stream): a hostile or broken daemon cannot make that look like a
    /// success.
    #[error("the daemon reported success, but kiln's side of the export failed: {0}")]
    Export(Box<kiln_client::kiln_session::Error>),
    /// A registry call of kiln's own (fan-out join, lock digests).
    #[error(transparent)]
    Registry(Box<kiln_image::RegistryError>),
    /// A Docker Engine API call (classic image store outputs).
    #[error(transparent)]
    Engine(Box<kiln_client::EngineError>),
    /// Loading the built image into podman or containerd failed; nothing
    /// was left half-loaded there.
    #[error("the image was built, but loading it into {store} failed: {reason}")]
    Load { store: String, reason: String },
    /// What the daemon cannot produce, with the remedy.
    #[error("{address} is a {daemon}: {reason}")]
    Unsupported {
        address: String,
        daemon: String,
        reason: String,
    },
    /// The build failed after some outputs were written: they are named so
    /// the user knows what changed.
    #[error("{source}")]
    Partial {
        /// What was written, e.g. `the image app:1 in the daemon's image store`.
        written: Vec<String>,
        #[source]
        source: Box<BuildError>,
    },
    /// A push failed, and the registries named, asked by kiln with the
    /// same credentials, refuse to take a push from them.
    #[error("{source}")]
    PushRefused {
        registries: Vec<String>,
        #[source]
        source: Box<BuildError>,
    },
    /// A `--cache-to` export failed: its registry refused the push or could
    /// not be reached (asked after the failure).
    #[error("{source}")]
    CacheExport {
        /// The flag and spec, e.g. `--cache-to type=registry,ref=r/app:cache`.
        flag: String,
        /// What the registry answered.
        why: String,
        #[source]
        source: Box<BuildError>,
    },
    /// A received output could not be put in place after the build.
    #[error("the build succeeded, but its output could not be put in place: {0}")]
    Output(Box<kiln_client::kiln_session::Error>),
    /// A fanned-out endpoint cannot be reached (its platforms named).
    #[error("cannot reach the builder for {platforms}: {source}")]
    Unreachable {
        platforms: String,
        #[source]
        source: Box<BuildError>,
    },
    /// A fanned-out endpoint failed (its platforms named).
    #[error("the builder for {platforms} ({address}) failed: {source}")]
    Endpoint {
        platforms: String,
        address: String,
        #[source]
        source: Box<BuildError>,
    },
}

macro_rules! boxed_from {
    ($($t:ty => $v:ident),* $(,)?) => {$(
        impl From<$t> for BuildError {
            fn from(e: $t) -> Self {
                BuildError::$v(Box::new(e))
            }
        }
    )*};
}
boxed_from!(
    kiln_go::Error => Go,
    GoReleaseError => GoRelease,
    kiln_client::Error => Daemon,
    kiln_image::RegistryError => Registry,
    kiln_client::EngineError => Engine,
    kiln_client::kiln_session::Error => Output,
);

impl BuildError {
    /// An unusable value: `what` names the flag or setting.
    pub fn invalid(what: impl Into<String>, reason: impl Into<String>) -> BuildError {
        BuildError::Invalid {
            what: what.into(),
            reason: reason.into(),
        }
    }

    /// A file operation that failed.
    pub fn file(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> BuildError {
        BuildError::File {
            action,
            path: path.into(),
            source,
        }
    }

    /// The daemon error inside, if this failure is the daemon's (for a
    /// report with the failing step).
    #[must_use]
    pub fn daemon(&self) -> Option<&kiln_client::Error> {
        match self {
            BuildError::Daemon(e) => Some(e),
            BuildError::Resolve { source, .. }
            | BuildError::Partial { source, .. }
            | BuildError::PushRefused { source, .. }
            | BuildError::CacheExport { source, .. }
            | BuildError::Endpoint { source, .. }
            | BuildError::Unreachable { source, .. } => source.daemon(),
            _ => None,
        }
    }
}

impl BuildError {
    /// The daemon's own failure of the build (a step, an exporter), not
    /// wrapped in planning context: what a failure report renders with
    /// the failing step.
    #[must_use]
    pub fn failed_step(&self) -> Option<&kiln_client::Error> {
        match self {
            BuildError::Daemon(e) => Some(e),
            BuildError::Partial { source, .. }
            | BuildError::PushRefused { source, .. }
            | BuildError::CacheExport { source, .. }
            | BuildError::Endpoint { source, .. } => source.failed_step(),
            _ => None,
        }
    }

    /// In a fanned-out build, the endpoint that failed: its platforms and
    /// address (for the line under a failed step's report).
    #[must_use]
    pub fn endpoint(&self) -> Option<(&str, &str)> {
        match self {
            BuildError::Endpoint {
                platforms, address, ..
            } => Some((platforms, address)),
            BuildError::Partial { source, .. }
            | BuildError::PushRefused { source, .. }
            | BuildError::CacheExport { source, .. } => source.endpoint(),
            _ => None,
        }
    }

    /// What the build wrote before it failed (see [`BuildError::Partial`]).
    #[must_use]
    pub fn written(&self) -> &[String] {
        match self {
            BuildError::Partial { written, .. } => written,
            BuildError::PushRefused { source, .. } | BuildError::CacheExport { source, .. } => {
                source.written()
            }
            _ => &[],
        }
    }

    /// What to do about it, when kiln knows.
    #[must_use]
    pub fn hint(&self) -> Option<String> {
        match self {
            BuildError::PushRefused { registries, .. } => {
                let config = std::env::var("DOCKER_CONFIG").map_or_else(
                    |_| "~/.docker/config.json".to_string(),
                    |d| format!("{d}/config.json"),
                );
                Some(format!(
                    "{} refused the credentials kiln offered from {config}: log in again (`docker login {}`) or fix that entry",
                    registries.join(", "),
                    registries.first().map_or("REGISTRY", String::as_str)
                ))
            }
            BuildError::CacheExport { flag, why, .. } => Some(format!(
                "{flag}: {why}; fix it, or add ignore-error=true to the spec to build without exporting the cache"
            )),
            BuildError::Daemon(d) => d.hint(),
            BuildError::Resolve { source, .. }
            | BuildError::Partial { source, .. }
            | BuildError::Endpoint { source, .. }
            | BuildError::Unreachable { source, .. } => source.hint(),
            _ => None,
        }
    }
}

/// Why the Go release to build with could not be chosen: the source is
/// misconfigured or unreachable (with nothing cached), or lists no release
/// that fits. Messages end with what to do, usually `--go` (pin a version).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GoReleaseError {
    /// An unknown `--go-source` name.
    #[error("unknown Go version source {input:?}: expected proxy, godev or git")]
    UnknownSource {
        /// What was given.
        input: String,
    },
    /// GOPROXY is `off` before any usable proxy.
    #[error("GOPROXY={goproxy:?} disables the module proxy: use --go-source godev or git, or pin the Go version with --go")]
    ProxyOff {
        /// The GOPROXY value.
        goproxy: String,
    },
    /// GOPROXY lists only `direct`, which kiln does not implement.
    #[error("GOPROXY={goproxy:?} names no proxy kiln can ask (kiln does not fetch `direct`): set GOPROXY to a proxy URL, use --go-source godev or git, or pin the Go version with --go")]
    NoProxy {
        /// The GOPROXY value.
        goproxy: String,
    },
    /// A GOPROXY entry is not a URL.
    #[error(
        "GOPROXY entry {entry:?} is not a proxy URL (expected https://…, http://… or file://…)"
    )]
    InvalidProxy {
        /// The entry.
        entry: String,
    },
    /// GONOPROXY/GOPRIVATE says golang.org/toolchain must not go through a proxy.
    #[error("{variable} pattern {pattern:?} matches golang.org/toolchain, so the module proxy must not be used for it: use --go-source godev or git, or pin the Go version with --go")]
    ProxyExcluded {
        /// `GONOPROXY` or `GOPRIVATE`.
        variable: &'static str,
        /// The pattern that matched.
        pattern: String,
    },
    /// The HTTP client could not be built (e.g. no TLS roots).
    #[error("cannot set up the HTTP client: {0}")]
    HttpClient(#[source] HttpError),
    /// The source failed and no cached list exists.
    #[error("cannot list Go releases from {url}: {source}; there is no cached list to fall back on, so pin the Go version with --go (e.g. --go 1.24.3)")]
    Unavailable {
        /// Which source was asked.
        kind: SourceKind,
        /// The URL (or repository) that failed.
        url: String,
        /// Why.
        #[source]
        source: FetchError,
    },
    /// The source lists no stable release of the minor line go.mod asks for.
    #[error("{url} lists no stable Go {minor} release at or above {minimum}{}; pin the Go version with --go, or try --refresh", newest_pre_release.as_ref().map(|v| format!(" (newest pre-release: {v})")).unwrap_or_default())]
    NoStableRelease {
        /// The minor line.
        minor: GoMinor,
        /// The lowest acceptable version (the go directive).
        minimum: GoVersion,
        /// Where the list came from.
        url: String,
        /// The newest beta/rc of that line, if the source lists one.
        newest_pre_release: Option<GoVersion>,
    },
    /// A rule of kiln-go refused: the builder-image template is unusable,
    /// the probe failed or no probed builder image exists.
    #[error(transparent)]
    Go(#[from] kiln_go::Error),
}

/// Why listing Go releases from one source failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The request failed before an answer (DNS, connect, TLS, timeout).
    #[error("{0}")]
    Http(#[source] HttpError),
    /// The server answered with an error status.
    #[error("HTTP status {status}")]
    Status {
        /// The status code, e.g. 404.
        status: u16,
    },
    /// The answer is larger than kiln is willing to read.
    #[error("the answer is larger than {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The go.dev answer is not the expected JSON.
    #[error("the answer is not the expected JSON: {0}")]
    Json(#[source] serde_json::Error),
    /// A `file://` GOPROXY entry could not be read.
    #[error("cannot read {path}: {source}")]
    File {
        /// The file that was read.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The `git` program could not be started.
    #[error("cannot run {program}: {source} (is git installed?)")]
    GitSpawn {
        /// The program that was run.
        program: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// `git ls-remote` failed.
    #[error("git ls-remote exited with {status}: {stderr}")]
    Git {
        /// Its exit status.
        status: std::process::ExitStatus,
        /// The last lines it wrote to stderr.
        stderr: String,
    },
    /// The source did not answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The answer holds no Go version at all.
    #[error("the answer lists no Go version")]
    Empty,
}

impl FetchError {
    /// Whether this is the answer the go command falls through on when the
    /// next GOPROXY entry follows a comma: 404 Not Found or 410 Gone.
    pub fn is_not_found(&self) -> bool {
        matches!(self, FetchError::Status { status: 404 | 410 })
            || matches!(self, FetchError::File { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

/// An HTTP transport error. Opaque on purpose: its message names the cause
/// (e.g. "connection refused") and `source()` leads to the details.
#[derive(Debug)]
pub struct HttpError(pub(crate) reqwest::Error);

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_timeout() {
            return f.write_str("the request timed out");
        }
        // reqwest's own message is generic ("error sending request for
        // url"); the innermost cause ("connection refused") is what a user
        // can act on.
        write!(f, "{}", self.0)?;
        let mut innermost = None;
        let mut next = std::error::Error::source(&self.0);
        while let Some(cause) = next {
            innermost = Some(cause);
            next = cause.source();
        }
        if let Some(cause) = innermost {
            write!(f, ": {cause}")?;
        }
        Ok(())
    }
}

impl std::error::Error for HttpError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// Why a version cache file could not be used. These never fail a
/// resolution: they become warnings.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// Reading, writing or renaming the file failed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// `read`, `write` or `create`.
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a cache kiln wrote.
    #[error("ignoring {path}: not a kiln version cache ({source})")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
}
