//! Typed errors of [`plan`](super::plan): each names the option (as spelled
//! in `kiln.toml`) and the value that is wrong.

use kiln_image::ConfigError;
use kiln_llb::LlbError;
use thiserror::Error;

use crate::error::VersionError;

/// Why a main package path is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MainProblem {
    /// An empty string.
    Empty,
    /// `/abs/path`: mains are relative to the module directory.
    Absolute,
    /// `../x`: outside the module directory (the build context).
    Escapes,
    /// `./...`: a pattern names any number of binaries.
    Pattern,
    /// A backslash, a control character or white space.
    Characters,
}

impl std::fmt::Display for MainProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MainProblem::Empty => "it is empty",
            MainProblem::Absolute => "it is absolute; name it relative to the module directory",
            MainProblem::Escapes => "it leaves the module directory",
            MainProblem::Pattern => "`...` patterns are not supported; list each main package",
            MainProblem::Characters => {
                "it contains a backslash, white space or a control character"
            }
        })
    }
}

/// Which image a config error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageRole {
    /// The Go builder image.
    Builder,
    /// The final-stage base image.
    Base,
}

impl std::fmt::Display for ImageRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ImageRole::Builder => "builder",
            ImageRole::Base => "base",
        })
    }
}

/// Why a recipe cannot be planned. Field names are those of
/// [`GoBuildOptions`](super::GoBuildOptions) in `kiln.toml` spelling.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RecipeError {
    /// A required string is empty.
    #[error("{field} must not be empty")]
    Empty {
        /// The field.
        field: &'static str,
    },
    /// `mains` lists nothing.
    #[error("mains is empty: name at least one main package (e.g. \".\" or \"./cmd/app\")")]
    NoMains,
    /// A main package path is unusable.
    #[error("main package {main:?}: {problem}")]
    InvalidMain {
        /// The entry of `mains`.
        main: String,
        /// What is wrong.
        problem: MainProblem,
    },
    /// The binary name derived from a main is not a file name.
    #[error("main package {main:?} gives the binary name {name:?}, which is not a plain file name (letters, digits, '.', '_', '-'); for \".\" set module-name")]
    InvalidBinaryName {
        /// The entry of `mains`.
        main: String,
        /// The name derived from it.
        name: String,
    },
    /// Two mains give the same binary name.
    #[error("main packages {first:?} and {second:?} both build a binary named {name:?}")]
    DuplicateBinary {
        /// The binary name.
        name: String,
        /// The first main with that name.
        first: String,
        /// The second one.
        second: String,
    },
    /// The image or build platform is not Linux.
    #[error("{field} {platform}: kiln builds Linux images only")]
    UnsupportedOs {
        /// `target` or `build-platform`.
        field: &'static str,
        /// The platform.
        platform: String,
    },
    /// Go has no such `GOARCH` (or `GOARM`/`GOAMD64`/… value) for Linux.
    #[error("{field} {platform}: Go cannot build for this architecture{}", variant.as_ref().map(|v| format!(" variant {v}")).unwrap_or_default())]
    UnsupportedArch {
        /// `target` or `build-platform`.
        field: &'static str,
        /// The platform.
        platform: String,
        /// The unsupported variant, when the architecture itself is fine.
        variant: Option<String>,
    },
    /// cgo was asked for while cross-compiling.
    #[error("cgo = true needs a C compiler for {target}, but the builder runs on {build}; kiln sets up no C cross compiler: build on a {target} daemon or drop cgo")]
    CgoCrossCompile {
        /// The target platform.
        target: String,
        /// The build platform.
        build: String,
    },
    /// The Go version is not a version.
    #[error("go-version: {0}")]
    GoVersion(#[source] VersionError),
    /// An image config cannot be read.
    #[error("the {role} image config of {reference} is not an image config: {source}")]
    ImageConfig {
        /// Which image.
        role: ImageRole,
        /// Its reference.
        reference: String,
        /// The parse error.
        #[source]
        source: ConfigError,
    },
    /// The builder config cannot be applied to the builder state.
    #[error("the builder image config of {reference} cannot be applied: {source}")]
    BuilderEnv {
        /// The builder reference.
        reference: String,
        /// The LLB error (boxed: it is large and rare).
        #[source]
        source: Box<LlbError>,
    },
    /// The base image is not pinned to a digest.
    #[error("the base image {reference} is not pinned to a digest: resolve it to its index digest first, so the image is reproducible")]
    BaseNotPinned {
        /// The reference.
        reference: String,
    },
    /// The final image config cannot be encoded.
    #[error("cannot encode the image config: {0}")]
    ConfigEncode(#[source] ConfigError),
    /// An id, name or value of a list option is malformed.
    #[error("{field} entry {value:?} is not valid: {expected}")]
    Invalid {
        /// The option.
        field: &'static str,
        /// The entry.
        value: String,
        /// What a valid entry looks like.
        expected: &'static str,
    },
    /// A list option names the same thing twice.
    #[error("{field} lists {value:?} twice")]
    Duplicate {
        /// The option.
        field: &'static str,
        /// The repeated entry.
        value: String,
    },
    /// `git-ssh-hosts` is set but no SSH agent is forwarded.
    #[error(
        "git-ssh-hosts ({hosts}) needs an SSH agent: add ssh = [\"default\"] (or --ssh default)"
    )]
    SshHostsWithoutAgent {
        /// The hosts, comma-separated.
        hosts: String,
    },
    /// A `known_hosts` line cannot be parsed.
    #[error("known-hosts line {line:?} is malformed: {reason}")]
    KnownHostsSyntax {
        /// The line.
        line: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A `known_hosts` line is for none of the SSH hosts.
    #[error("known-hosts line {line:?} matches none of git-ssh-hosts ({hosts}); pass only the lines of those hosts")]
    KnownHostsUnmatched {
        /// The line.
        line: String,
        /// The hosts, comma-separated.
        hosts: String,
    },
    /// An SSH host has no `known_hosts` line, so ssh would refuse it.
    #[error("git-ssh-hosts entry {host:?} has no known-hosts line (looked for {lookup:?}): check the host's key and add it (`ssh-keyscan {host} >> ~/.ssh/known_hosts`, or `ssh-keygen -F {lookup}` to look), or name a known_hosts file with --known-hosts")]
    KnownHostsMissing {
        /// The host as given.
        host: String,
        /// The name looked up in known_hosts (`host` or `[host]:port`).
        lookup: String,
    },
}
