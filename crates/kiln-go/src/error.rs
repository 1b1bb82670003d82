//! Typed errors for parsing `go.mod`, Go versions and builder-image
//! templates, and for picking a builder image.
//!
//! Every variant carries what a user needs to act on it: the path, the line
//! or the image involved, and (in its message) what to do next. Messages
//! name kiln's `--go` flag because pinning is always the way out. Errors of
//! reading files and listing releases are kiln-build's (`GoReleaseError`).

use std::path::PathBuf;

use thiserror::Error;

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

/// Everything that can go wrong parsing `go.mod`, a version or a builder-image
/// template, and picking a builder image.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
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
