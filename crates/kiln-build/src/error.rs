//! kiln-build's errors: each says what was wrong (the flag, file, image,
//! platform or step) and carries its cause.

use std::path::PathBuf;

use kiln_image::Platform;

/// Why a build (or a lock, or a solve) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
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
    #[error("cannot {action} {}: {source}", path.display())]
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
    /// The Go module cannot be read, or no Go version fits.
    #[error(transparent)]
    Go(Box<kiln_go::Error>),
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
    /// A registry call of kiln's own (fan-out join, lock digests).
    #[error(transparent)]
    Registry(Box<kiln_image::RegistryError>),
    /// A Docker Engine API call (classic image store outputs).
    #[error(transparent)]
    Engine(Box<kiln_client::EngineError>),
    /// What the daemon cannot produce, with the remedy.
    #[error("{address} is a {daemon}: {reason}")]
    Unsupported {
        address: String,
        daemon: String,
        reason: String,
    },
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
    kiln_client::Error => Daemon,
    kiln_image::RegistryError => Registry,
    kiln_client::EngineError => Engine,
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
            | BuildError::Endpoint { source, .. }
            | BuildError::Unreachable { source, .. } => source.daemon(),
            _ => None,
        }
    }
}
