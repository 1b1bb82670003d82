//! Typed errors for parsing digests, image references and platforms.
//!
//! Every variant carries the input that failed, so a caller can report it
//! without keeping it around. All errors are `Clone` so that lazily-failing
//! builders (such as `kiln-llb`'s states) can hold on to them.

use thiserror::Error;

/// A string that is not a valid content digest (`algorithm:hex`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DigestError {
    /// No `algorithm:` prefix, or nothing after it.
    #[error("invalid digest {input:?}: expected \"algorithm:hex\"")]
    Format { input: String },
    /// The algorithm is syntactically fine but not one kiln can verify.
    #[error("invalid digest {input:?}: unsupported algorithm {algorithm:?}")]
    UnsupportedAlgorithm { input: String, algorithm: String },
    /// The hex part has the wrong length for its algorithm.
    #[error("invalid digest {input:?}: {algorithm} needs {expected} hex characters, got {actual}")]
    InvalidLength {
        input: String,
        algorithm: String,
        expected: usize,
        actual: usize,
    },
    /// The encoded part is not lowercase hexadecimal.
    #[error("invalid digest {input:?}: encoded part must be lowercase hex")]
    InvalidEncoding { input: String },
}

/// A string that is not a valid Docker image reference.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ReferenceError {
    /// The empty string.
    #[error("invalid reference: repository name must have at least one component")]
    Empty,
    /// A bare 64-character hex string, which Docker reserves for image ids.
    #[error("invalid repository name ({input}), cannot specify 64-byte hexadecimal strings")]
    IdentifierOnly { input: String },
    /// The repository part contains uppercase letters.
    #[error("invalid reference format: repository name ({input}) must be lowercase")]
    Uppercase { input: String },
    /// The reference does not follow `name[:tag][@digest]`.
    #[error("invalid reference format: {input:?}")]
    InvalidFormat { input: String },
    /// The repository path is longer than 255 characters.
    #[error("invalid reference {input:?}: repository name must not be more than 255 characters (got {len})")]
    NameTooLong { input: String, len: usize },
    /// A tag given to [`crate::ImageRef::with_tag`] is not valid.
    #[error("invalid tag format: {tag:?}")]
    InvalidTag { tag: String },
    /// The digest part of the reference is not a valid digest.
    #[error("invalid reference {input:?}: {source}")]
    Digest {
        input: String,
        #[source]
        source: DigestError,
    },
}

/// A string that is not a valid platform specifier (`os[/arch[/variant]]`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PlatformError {
    /// The empty string.
    #[error("invalid platform: empty specifier")]
    Empty,
    /// Wildcards such as `linux/*` are not supported (as in containerd).
    #[error("invalid platform {input:?}: wildcards are not supported")]
    Wildcard { input: String },
    /// The OS component (with its optional `(version+features)`) is malformed.
    #[error("invalid platform {input:?}: {component:?} is not a valid OS component")]
    InvalidOs { input: String, component: String },
    /// An architecture or variant component has characters outside `[A-Za-z0-9_.-]`.
    #[error("invalid platform {input:?}: {component:?} is not a valid component")]
    InvalidComponent { input: String, component: String },
    /// Only one component was given. containerd would fill the other one in
    /// from the host; kiln never uses host-derived defaults, so it refuses.
    #[error(
        "invalid platform {input:?}: both OS and architecture are required (e.g. linux/amd64)"
    )]
    Incomplete { input: String },
    /// More than three `/`-separated components.
    #[error("invalid platform {input:?}: expected os/arch[/variant]")]
    TooManyComponents { input: String },
}

/// Any error of this crate, for callers that do not care which parser failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Digest(#[from] DigestError),
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error(transparent)]
    Platform(#[from] PlatformError),
}
