//! Typed errors for reading `go.mod` and resolving a Go version.
//!
//! Every variant carries what a user needs to act on it: the path, the URL
//! or the image involved, and (in its message) what to do next. Messages
//! name kiln's `--go` flag because pinning is always the way out.

use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

use crate::version::{GoMinor, GoVersion, SourceKind};

/// A string that is not a Go version.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "invalid Go version {input:?}: expected a version such as 1.24.3, 1.24, 1.25rc1 or go1.24.3"
)]
pub struct VersionError {
    pub(crate) input: String,
}

impl VersionError {
    /// The text that failed to parse.
    pub fn input(&self) -> &str {
        &self.input
    }
}

/// Why a `go`, `toolchain` or block line in `go.mod` is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GoModProblem {
    /// `go` or `toolchain` without exactly one argument.
    Arguments,
    /// A second `go` or `toolchain` line.
    Repeated,
    /// A quoted string that does not end on its line.
    UnterminatedQuote,
}

impl std::fmt::Display for GoModProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            GoModProblem::Arguments => "expects exactly one version",
            GoModProblem::Repeated => "is repeated",
            GoModProblem::UnterminatedQuote => "has an unterminated quoted string",
        })
    }
}

/// Why the builder-image template cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TemplateProblem {
    /// No `{go}` placeholder, so every version would name the same image.
    MissingGo,
    /// A `{…}` other than `{go}` and `{distro}`, or an unbalanced brace.
    UnknownPlaceholder,
}

impl std::fmt::Display for TemplateProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TemplateProblem::MissingGo => "it has no {go} placeholder",
            TemplateProblem::UnknownPlaceholder => {
                "only the placeholders {go} and {distro} are known"
            }
        })
    }
}

/// Why listing Go releases from one source failed.
#[derive(Debug, Error)]
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
#[derive(Debug, Error)]
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

/// Everything that can go wrong reading `go.mod` and resolving a version.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// `DIR/go.mod` does not exist.
    #[error("no go.mod in {dir}: run kiln in a Go module (or name its directory), or pin the Go version with --go")]
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
    /// `go.mod` has no `go` line.
    #[error("{path} has no go directive: add one (e.g. `go mod edit -go=1.24`) or pin the Go version with --go")]
    GoDirectiveMissing {
        /// The file.
        path: PathBuf,
    },
    /// A `go` or `toolchain` line is malformed.
    #[error("{path}:{line}: {directive} line {problem}")]
    GoModSyntax {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// `go` or `toolchain`.
        directive: &'static str,
        /// What is wrong.
        problem: GoModProblem,
    },
    /// A `go` or `toolchain` line names something that is not a version.
    #[error("{path}:{line}: {source}")]
    GoModVersion {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The parse error.
        #[source]
        source: VersionError,
    },
    /// A version given by the user (e.g. `--go`) is not a Go version.
    #[error(transparent)]
    Version(#[from] VersionError),
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
    /// The builder-image template is unusable.
    #[error("builder image template {template:?} is not usable: {problem}")]
    Template {
        /// The template.
        template: String,
        /// What is wrong.
        problem: TemplateProblem,
    },
    /// The template expands to an invalid image reference.
    #[error("builder image {reference:?} is not a valid reference: {source}")]
    ImageRef {
        /// The expanded reference.
        reference: String,
        /// The parse error.
        #[source]
        source: kiln_image::ReferenceError,
    },
    /// The image-existence probe failed.
    #[error("cannot check whether {image} exists: {source}")]
    Probe {
        /// The image that was checked.
        image: String,
        /// The probe's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// None of the probed builder images exists.
    #[error("no builder image exists for the newest Go releases (tried {}); check the image template or pin the Go version with --go", tried.join(", "))]
    NoBuilderImage {
        /// The images tried, newest first.
        tried: Vec<String>,
    },
}
