//! kiln's build as a library: a Go module and options in; a plan per
//! platform (images resolved to digests, the LLB, the lock entries); the
//! build solved on one or several BuildKit daemons, with progress events;
//! the image exported where the user asked. The `kiln` CLI only parses
//! arguments into these types and renders what comes back.
//!
//! kiln-go holds the pure rules; the I/O they need lives here:
//! [`go_mod::read_dir`] reads a module's `go.mod`, and [`go_release`] lists
//! Go releases (module proxy, go.dev, git tags), caches the list and picks
//! the release to build with.

pub mod attest;
pub mod build;
pub mod cache_dir;
pub mod config;
pub mod error;
pub mod go_cache;
pub mod go_mod;
pub mod go_release;
pub mod imagetools;
pub mod lock;
pub mod metadata;
pub mod outputs;
pub mod registry;
pub mod session;
pub mod solve;
pub mod spec;
pub mod stall;

/// Writes `bytes` to `path` whole or not at all: a temporary file beside
/// it, renamed over it at the end (no reader ever sees half a file).
pub(crate) fn write_atomic(path: &std::path::Path, bytes: &[u8]) -> Result<(), BuildError> {
    use std::io::Write as _;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .map_err(|e| BuildError::file("create a file in", dir, e))?;
    tmp.write_all(bytes)
        .map_err(|e| BuildError::file("write", tmp.path(), e))?;
    // A temporary file is the owner's only (0600); what kiln writes is
    // read by other users and tools as any file the user writes (0644).
    {
        use std::os::unix::fs::PermissionsExt as _;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(|e| BuildError::file("write", tmp.path(), e))?;
    }
    tmp.persist(path)
        .map_err(|e| BuildError::file("write", path, e.error))?;
    Ok(())
}

/// Options of a local directory the session serves.
pub use kiln_client::kiln_session::SyncDirOptions;
/// The Go recipe and version rules.
pub use kiln_go as go;
/// The LLB builder kiln's graphs are made with (definitions, dumps).
pub use kiln_llb as llb;

pub use config::KilnToml;
pub use error::{BuildError, GoReleaseError};
pub use lock::{Inputs as LockInputs, Lock, LockedImage};
