//! One platform's image of a layout as a single-image OCI archive: what
//! podman's `images/load` keeps whole (given an index of several platforms
//! it keeps only the host's, containers/podman#22882).

use std::collections::BTreeSet;
use std::io::{self, Write};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::digest::Digest;
use crate::error::LayoutError;
use crate::layout::{
    blob_path, Layout, ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, INDEX_FILE, OCI_LAYOUT_CONTENT,
    OCI_LAYOUT_FILE,
};
use crate::manifest::{platform_json, Descriptor};
use crate::media_type;
use crate::platform::Platform;

/// One platform's image: its manifest's descriptor and platform, and every
/// blob the archive must hold (manifest, config, layers).
#[derive(Clone, Debug)]
pub(crate) struct PlatformImage {
    pub(crate) descriptor: Descriptor,
    /// The descriptor's platform.
    pub(crate) platform: Platform,
    pub(crate) blobs: BTreeSet<Digest>,
}

impl PlatformImage {
    /// Reads `descriptor`'s manifest from `layout`.
    ///
    /// # Errors
    /// [`LayoutError::MissingBlob`] and [`LayoutError::Manifest`] for a
    /// manifest that is absent or unreadable (an index where an image
    /// manifest should be has no config: also `MissingBlob`, naming it).
    pub(crate) fn read(layout: &Layout, descriptor: &Descriptor) -> Result<Self, LayoutError> {
        let manifest = layout.manifest(descriptor)?;
        let config = manifest.config().ok_or_else(|| LayoutError::MissingBlob {
            tar: layout.path().to_path_buf(),
            digest: descriptor.digest.clone(),
        })?;
        let mut blobs: BTreeSet<Digest> = manifest.layers().into_iter().map(|l| l.digest).collect();
        blobs.insert(descriptor.digest.clone());
        blobs.insert(config.digest.clone());
        for d in &blobs {
            if !layout.contains(d) {
                return Err(LayoutError::MissingBlob {
                    tar: layout.path().to_path_buf(),
                    digest: d.clone(),
                });
            }
        }
        Ok(PlatformImage {
            descriptor: descriptor.clone(),
            // `Layout::images` gives every image its platform.
            platform: descriptor
                .platform
                .clone()
                .unwrap_or_else(|| Platform::new("unknown", "unknown")),
            blobs,
        })
    }

    /// The archive's `index.json`: this image alone, with its platform,
    /// named `name` (the annotations podman reads a name from: containerd's
    /// and the OCI one, both with the whole name).
    pub(crate) fn index_json(&self, name: &str) -> Vec<u8> {
        let entry = serde_json::json!({
            "mediaType": self.descriptor.media_type,
            "digest": self.descriptor.digest.to_string(),
            "size": self.descriptor.size,
            "platform": platform_json(&self.platform),
            "annotations": {
                ANNOTATION_IMAGE_NAME: name,
                ANNOTATION_REF_NAME: name,
            },
        });
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_type::OCI_INDEX,
            "manifests": [entry],
        });
        index.to_string().into_bytes()
    }

    /// Writes this image's OCI archive, named `name`, to `out`:
    /// `oci-layout`, `index.json`, then its blobs in the layout's order, each
    /// checked against its digest. Blocking: it reads the layout tarball.
    ///
    /// # Errors
    /// The errors of [`Layout::for_each_blob`], [`LayoutError::ReadEntry`]
    /// when `out` fails, and [`LayoutError::MissingBlob`] for a blob the
    /// layout turned out not to hold.
    pub(crate) fn write<W: Write>(
        &self,
        layout: &Layout,
        name: &str,
        out: W,
    ) -> Result<(), LayoutError> {
        let tar_path = layout.path().to_path_buf();
        let failed = |entry: &str, source: io::Error| LayoutError::ReadEntry {
            tar: tar_path.clone(),
            entry: entry.to_string(),
            source,
        };
        let mut tar = tar::Builder::new(out);
        let add = |tar: &mut tar::Builder<W>, name: &str, size: u64, data: &mut dyn io::Read| {
            let mut h = tar::Header::new_ustar();
            h.set_size(size);
            h.set_mode(0o444);
            h.set_entry_type(tar::EntryType::Regular);
            tar.append_data(&mut h, name, data)
                .map_err(|e| failed(name, e))
        };
        add(
            &mut tar,
            OCI_LAYOUT_FILE,
            OCI_LAYOUT_CONTENT.len() as u64,
            &mut &OCI_LAYOUT_CONTENT[..],
        )?;
        let index = self.index_json(name);
        add(
            &mut tar,
            INDEX_FILE,
            index.len() as u64,
            &mut index.as_slice(),
        )?;
        let mut written = BTreeSet::new();
        layout.for_each_blob(|digest, size, data| {
            if !self.blobs.contains(digest) || written.contains(digest) {
                return Ok(());
            }
            add(&mut tar, &blob_path(digest), size, data)?;
            written.insert(digest.clone());
            Ok(())
        })?;
        if let Some(missing) = self.blobs.difference(&written).next() {
            return Err(LayoutError::MissingBlob {
                tar: layout.path().to_path_buf(),
                digest: missing.clone(),
            });
        }
        tar.into_inner()
            .and_then(|mut w| w.flush())
            .map_err(|e| failed("the end of the archive", e))
    }
}

/// Chunks written to it go into a channel: a tarball written on a blocking
/// thread becomes a request body.
pub(crate) struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
    stop: super::Stop,
}

/// How much is sent at a time.
const CHUNK: usize = 256 * 1024;

impl ChannelWriter {
    /// A writer into `tx` that fails once `stop` is set (the load was
    /// cancelled: the archive is cut off).
    pub(crate) fn new(tx: mpsc::Sender<io::Result<Bytes>>, stop: super::Stop) -> Self {
        ChannelWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
            stop,
        }
    }

    fn send(&mut self) -> io::Result<()> {
        if self.stop.is_set() {
            return Err(io::Error::new(
                io::ErrorKind::Interrupted,
                "the load was cancelled",
            ));
        }
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "podman stopped reading"))
    }

    /// Ends the body with an error: the request is cut off, so podman never
    /// takes a partial archive for a whole one.
    pub(crate) fn abort(self) {
        let _ = self
            .tx
            .blocking_send(Err(io::Error::other("the archive could not be written")));
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}
