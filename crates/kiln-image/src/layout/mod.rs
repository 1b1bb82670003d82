//! OCI image layouts and the tarballs they travel in: renaming the image in
//! a docker-archive (which the Docker Engine writes as an OCI layout plus
//! `manifest.json`), and merging per-platform layout tarballs into one
//! index ([`merge`]).

mod archive;
pub mod merge;

pub use archive::rename_archive;

use std::path::PathBuf;

/// Why a layout or archive cannot be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LayoutError {
    /// Reading or writing the tarball failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A file of the layout that is not what the spec says.
    #[error("the layout's {entry} is malformed: {reason}")]
    Malformed { entry: String, reason: String },
    /// A name that is not an image reference.
    #[error(transparent)]
    Reference(#[from] crate::ReferenceError),
    /// A blob the index reaches is missing.
    #[error("{tar} has no blob {digest}")]
    MissingBlob { tar: PathBuf, digest: String },
    /// A blob whose bytes do not hash to its name.
    #[error("{tar}: blob {digest} does not match its content (sha256:{actual})")]
    BadBlob {
        tar: PathBuf,
        digest: String,
        actual: String,
    },
    /// A tar entry with an unsafe path (absolute, `..`, a link).
    #[error("{tar}: entry {entry:?} is not a plain file inside the layout")]
    UnsafeEntry { tar: PathBuf, entry: String },
    /// A platform none of the tarballs holds.
    #[error("no manifest for {platform} in the builders' layouts")]
    MissingPlatform { platform: String },
}

impl LayoutError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> LayoutError {
        LayoutError::Io {
            what: what.into(),
            source,
        }
    }
}
