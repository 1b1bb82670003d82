//! OCI image layouts as tarballs: reading them, merging several into one,
//! and renaming the image in a docker-archive.
//!
//! An [OCI image layout] is an `oci-layout` marker, an `index.json` and the
//! content-addressed `blobs/<algorithm>/<hex>`. BuildKit's `oci` exporter
//! writes one as a tarball, and so does the Docker Engine's `docker save`
//! (a docker-archive: the same layout plus `manifest.json` and
//! `repositories`).
//!
//! - [`Layout::open`] reads a layout tarball's `index.json` and its JSON
//!   documents (indexes, manifests, configs, each checked against its
//!   digest) without holding its layers in memory; [`Layout::image`] picks
//!   the manifest and config for a platform.
//! - [`merge`] joins layouts built for different platforms (say, on
//!   different daemons) into one tarball whose index lists the platforms in
//!   the order asked for. It is deterministic (fixed entry order, zero
//!   mtimes: the same inputs give the same bytes), keeps only the blobs the
//!   new index reaches, streams every blob through its digest check, and
//!   writes a temporary file beside the destination that
//!   [`Merged::commit`] moves into place.
//! - [`rename_docker_archive`] copies a docker-archive, naming its image
//!   (or leaving it unnamed).
//!
//! Tarballs are never unpacked, and entries that have no place in a layout
//! (links, devices, absolute paths, paths with `..`) are refused
//! ([`EntryProblem`]). Everything here is blocking I/O: async callers run
//! it on a blocking thread. Errors are [`LayoutError`] and [`ArchiveError`].
//!
//! [OCI image layout]: https://github.com/opencontainers/image-spec/blob/main/image-layout.md

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Component, Path};

use crate::digest::{Digest, Hasher};
pub use crate::error::{ArchiveError, EntryProblem, LayoutError};

mod archive;
mod merge;
mod read;
#[cfg(test)]
pub(crate) mod testing;

pub use archive::rename_docker_archive;
pub use merge::{check_destination, merge, Merged, Part};
pub use read::{Layout, LayoutImage};

/// The layout's marker file.
pub const OCI_LAYOUT_FILE: &str = "oci-layout";
/// The layout's top index.
pub const INDEX_FILE: &str = "index.json";
/// The content of [`OCI_LAYOUT_FILE`] kiln writes.
pub const OCI_LAYOUT_CONTENT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
/// The annotation naming the image in full (`docker.io/library/app:v1`),
/// as containerd and BuildKit's `oci` exporter write it.
pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
/// The OCI annotation naming the image's tag in a layout (`v1`).
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// JSON documents (indexes, manifests, configs) are held in memory; larger
/// blobs are layers. BuildKit caps manifests at 4 MiB.
pub(crate) const MAX_JSON_BLOB: u64 = 4 * 1024 * 1024;

/// The path of `digest`'s blob in a layout: `blobs/sha256/<hex>`.
pub fn blob_path(digest: &Digest) -> String {
    format!("blobs/{}/{}", digest.algorithm(), digest.hex())
}

/// The digest a layout path names, if it is a blob's path
/// (`blobs/<algorithm>/<hex>`, with or without a leading `./`).
pub fn blob_digest(path: &str) -> Option<Digest> {
    let rest = path.trim_start_matches("./").strip_prefix("blobs/")?;
    let (algorithm, hex) = rest.split_once('/')?;
    Digest::parse(&format!("{algorithm}:{hex}")).ok()
}

/// Calls `f` with each regular file of the layout tarball at `tar`, at its
/// normalised path (`./` and empty components dropped). Directories and
/// pax headers are skipped; links, devices, absolute paths and `..` are
/// refused.
pub(crate) fn for_each_file<F>(tar: &Path, mut f: F) -> Result<(), LayoutError>
where
    F: FnMut(&str, &mut tar::Entry<'_, BufReader<File>>) -> Result<(), LayoutError>,
{
    let file = File::open(tar).map_err(|source| LayoutError::Open {
        path: tar.to_path_buf(),
        source,
    })?;
    let mut archive = tar::Archive::new(BufReader::new(file));
    let broken = |source| LayoutError::Tar {
        tar: tar.to_path_buf(),
        source,
    };
    for entry in archive.entries().map_err(broken)? {
        let mut entry = entry.map_err(broken)?;
        if let Some(path) = checked_path(tar, &entry)? {
            f(&path, &mut entry)?;
        }
    }
    Ok(())
}

/// A regular file's normalised path; `None` for what a layout may hold but
/// kiln skips (directories, pax headers).
fn checked_path<R: Read>(
    tar: &Path,
    entry: &tar::Entry<'_, R>,
) -> Result<Option<String>, LayoutError> {
    let raw = entry.path().map_err(|source| LayoutError::Tar {
        tar: tar.to_path_buf(),
        source,
    })?;
    let refuse = |problem| LayoutError::UnsafeEntry {
        tar: tar.to_path_buf(),
        entry: raw.to_string_lossy().into_owned(),
        problem,
    };
    let mut parts = Vec::new();
    for c in raw.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_string_lossy()),
            Component::CurDir => {}
            Component::ParentDir => return Err(refuse(EntryProblem::ParentDir)),
            Component::RootDir | Component::Prefix(_) => {
                return Err(refuse(EntryProblem::Absolute))
            }
        }
    }
    let target = || {
        entry
            .link_name()
            .ok()
            .flatten()
            .map(|t| t.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    use tar::EntryType as T;
    match entry.header().entry_type() {
        T::Regular | T::Continuous => Ok(Some(parts.join("/"))),
        T::Directory | T::XGlobalHeader | T::XHeader | T::GNULongName | T::GNULongLink => Ok(None),
        T::Symlink => Err(refuse(EntryProblem::Symlink { target: target() })),
        T::Link => Err(refuse(EntryProblem::HardLink { target: target() })),
        other => Err(refuse(EntryProblem::Unsupported {
            kind: format!("{other:?}"),
        })),
    }
}

/// Reads through `inner`, hashing what it reads with `expected`'s
/// algorithm, so a blob is checked while it is copied.
pub(crate) struct Verifying<R> {
    inner: R,
    hasher: Hasher,
}

impl<R: Read> Verifying<R> {
    pub(crate) fn new(inner: R, expected: &Digest) -> Self {
        Verifying {
            inner,
            hasher: expected.hasher(),
        }
    }

    /// The digest of what was read.
    pub(crate) fn finish(self) -> Digest {
        self.hasher.finish()
    }
}

impl<R: Read> Read for Verifying<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_stay_small() {
        // clippy's result_large_err threshold: every fallible function here
        // returns a `LayoutError`.
        assert!(std::mem::size_of::<LayoutError>() <= 128);
        assert!(std::mem::size_of::<ArchiveError>() <= 128);
    }

    #[test]
    fn blob_paths_and_digests() {
        let d = Digest::sha256_of(b"x");
        assert_eq!(blob_path(&d), format!("blobs/sha256/{}", d.hex()));
        assert_eq!(blob_digest(&blob_path(&d)), Some(d.clone()));
        assert_eq!(blob_digest(&format!("./{}", blob_path(&d))), Some(d));
        assert_eq!(blob_digest("blobs/sha256/abc"), None);
        assert_eq!(blob_digest("index.json"), None);
        assert_eq!(blob_digest("blobs/sha256"), None);
    }
}
