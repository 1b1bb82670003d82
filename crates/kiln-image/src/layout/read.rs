//! Reading a layout tarball: its index, manifests and configs.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use oci_spec::image::ImageConfiguration;

use super::{blob_digest, for_each_file, INDEX_FILE, MAX_JSON_BLOB};
use crate::config::{config_platform, parse_config};
use crate::digest::Digest;
use crate::error::LayoutError;
use crate::manifest::{Descriptor, Manifest};
use crate::matcher::PlatformMatcher;
use crate::media_type;
use crate::platform::Platform;

/// An OCI image layout tarball, read: its `index.json` and the JSON
/// documents among its blobs (indexes, manifests, configs), each checked
/// against its digest. Layers are not read into memory; which blobs the
/// tarball holds is recorded.
#[derive(Clone, Debug)]
pub struct Layout {
    tar: PathBuf,
    index: Manifest,
    documents: BTreeMap<Digest, Vec<u8>>,
    blobs: BTreeMap<Digest, u64>,
}

/// One platform's image in a layout: its manifest and config.
#[derive(Clone, Debug)]
pub struct LayoutImage {
    /// The manifest's descriptor, with the image's platform.
    pub descriptor: Descriptor,
    /// The image manifest.
    pub manifest: Manifest,
    /// The manifest's config descriptor.
    pub config_descriptor: Descriptor,
    /// The image config.
    pub config: ImageConfiguration,
}

impl Layout {
    /// Reads the layout tarball at `tar`.
    ///
    /// # Errors
    /// [`LayoutError::Open`] and [`LayoutError::Tar`] for a file that cannot
    /// be read as a tar archive, [`LayoutError::UnsafeEntry`] for a link,
    /// device, absolute path or `..` in it, [`LayoutError::ReadEntry`] for
    /// an entry that breaks off, [`LayoutError::DigestMismatch`] for a JSON
    /// blob whose bytes do not match its digest, [`LayoutError::NotLayout`]
    /// without `index.json`, and [`LayoutError::IndexJson`] when that is not
    /// an OCI index.
    pub fn open(tar: impl AsRef<Path>) -> Result<Layout, LayoutError> {
        let tar = tar.as_ref();
        let mut index_json: Option<Vec<u8>> = None;
        let mut documents = BTreeMap::new();
        let mut blobs = BTreeMap::new();
        for_each_file(tar, |path, entry| {
            let digest = blob_digest(path);
            if let Some(d) = &digest {
                blobs.insert(d.clone(), entry.size());
            }
            let wanted = path == INDEX_FILE || (digest.is_some() && entry.size() <= MAX_JSON_BLOB);
            if !wanted {
                return Ok(());
            }
            let mut data = Vec::new();
            entry
                .read_to_end(&mut data)
                .map_err(|source| LayoutError::ReadEntry {
                    tar: tar.to_path_buf(),
                    entry: path.to_string(),
                    source,
                })?;
            match digest {
                None => index_json = Some(data),
                Some(d) if data.first() == Some(&b'{') => {
                    let actual = d.recompute(&data);
                    if actual != d {
                        return Err(LayoutError::DigestMismatch {
                            tar: tar.to_path_buf(),
                            entry: path.to_string(),
                            expected: d,
                            actual,
                        });
                    }
                    documents.insert(d, data);
                }
                // A small layer: checked when it is copied.
                Some(_) => {}
            }
            Ok(())
        })?;
        let index_json = index_json.ok_or_else(|| LayoutError::NotLayout {
            tar: tar.to_path_buf(),
        })?;
        let index =
            Manifest::parse(Some(media_type::OCI_INDEX), &index_json).map_err(|source| {
                LayoutError::IndexJson {
                    tar: tar.to_path_buf(),
                    source: Box::new(source),
                }
            })?;
        Ok(Layout {
            tar: tar.to_path_buf(),
            index,
            documents,
            blobs,
        })
    }

    /// The tarball's path.
    pub fn path(&self) -> &Path {
        &self.tar
    }

    /// The layout's `index.json`.
    pub fn index(&self) -> &Manifest {
        &self.index
    }

    /// Calls `f` with each blob the tarball holds, in the tarball's order,
    /// with its size and a reader of its bytes; the bytes are checked
    /// against the digest once `f` has read them all (a loader streaming
    /// layers into a store: containerd's content service, podman's API).
    /// Whatever `f` leaves unread is read and checked too.
    ///
    /// # Errors
    /// `f`'s error, [`LayoutError::ReadEntry`] for an entry that breaks
    /// off and [`LayoutError::DigestMismatch`] for bytes that do not match.
    pub fn for_each_blob<F>(&self, mut f: F) -> Result<(), LayoutError>
    where
        F: FnMut(&Digest, u64, &mut dyn Read) -> Result<(), LayoutError>,
    {
        let tar = self.tar.clone();
        for_each_file(&self.tar, |path, entry| {
            let Some(digest) = blob_digest(path) else {
                return Ok(());
            };
            let size = entry.size();
            let mut verifying = super::Verifying::new(entry, &digest);
            f(&digest, size, &mut verifying)?;
            std::io::copy(&mut verifying, &mut std::io::sink()).map_err(|source| {
                LayoutError::ReadEntry {
                    tar: tar.clone(),
                    entry: path.to_string(),
                    source,
                }
            })?;
            let actual = verifying.finish();
            if actual != digest {
                return Err(LayoutError::DigestMismatch {
                    tar: tar.clone(),
                    entry: path.to_string(),
                    expected: digest,
                    actual,
                });
            }
            Ok(())
        })
    }

    /// Whether the tarball holds the blob `digest`.
    pub fn contains(&self, digest: &Digest) -> bool {
        self.blobs.contains_key(digest)
    }

    /// The blobs the tarball holds, with their sizes, in digest order.
    pub fn blobs(&self) -> impl Iterator<Item = (&Digest, u64)> {
        self.blobs.iter().map(|(d, s)| (d, *s))
    }

    /// The bytes of the JSON document (index, manifest or config) `digest`,
    /// if the tarball holds it.
    pub fn document(&self, digest: &Digest) -> Option<&[u8]> {
        self.documents.get(digest).map(Vec::as_slice)
    }

    /// The manifest or index `descriptor` points at.
    ///
    /// # Errors
    /// [`LayoutError::MissingBlob`] when the layout does not hold it, and
    /// [`LayoutError::Manifest`] when it cannot be read.
    pub fn manifest(&self, descriptor: &Descriptor) -> Result<Manifest, LayoutError> {
        let doc = self
            .document(&descriptor.digest)
            .ok_or_else(|| self.missing(descriptor))?;
        Manifest::parse(Some(&descriptor.media_type), doc).map_err(|source| LayoutError::Manifest {
            tar: self.tar.clone(),
            digest: descriptor.digest.clone(),
            source: Box::new(source),
        })
    }

    /// The image `index.json` names (its first entry, as BuildKit's `oci`
    /// exporter and `docker save` write one) and its document: an index of
    /// platform manifests or a single image manifest.
    ///
    /// # Errors
    /// [`LayoutError::EmptyIndex`] when `index.json` lists nothing, and the
    /// errors of [`Layout::manifest`].
    pub fn root(&self) -> Result<(Descriptor, Manifest), LayoutError> {
        let root =
            self.index
                .entries()
                .into_iter()
                .next()
                .ok_or_else(|| LayoutError::EmptyIndex {
                    tar: self.tar.clone(),
                })?;
        let manifest = self.manifest(&root)?;
        Ok((root, manifest))
    }

    /// The root image's platform manifests, in order, each with its
    /// platform. An index's entries say theirs (attestations left out); a
    /// single manifest's comes from `index.json`, else from its config.
    ///
    /// # Errors
    /// The errors of [`Layout::root`], and for a single manifest those of
    /// reading its config ([`LayoutError::MissingBlob`],
    /// [`LayoutError::Config`]).
    pub fn images(&self) -> Result<Vec<Descriptor>, LayoutError> {
        let (root, manifest) = self.root()?;
        if manifest.is_index() {
            return Ok(manifest
                .platforms()
                .into_iter()
                .map(|(p, d)| Descriptor {
                    platform: Some(p),
                    ..d
                })
                .collect());
        }
        let platform = match root.platform.clone() {
            Some(p) => p,
            None => match self.config_of(&manifest)? {
                Some((_, config)) => config_platform(&config),
                None => return Ok(Vec::new()),
            },
        };
        Ok(vec![Descriptor {
            platform: Some(platform),
            ..root
        }])
    }

    /// The image for `platform` (chosen like BuildKit does, see
    /// [`Manifest::platform_manifest`]) with its manifest and config.
    ///
    /// # Errors
    /// [`LayoutError::NoImage`] when no image matches, and the errors of
    /// [`Layout::images`], [`Layout::manifest`] and of reading the config.
    pub fn image(&self, platform: &Platform) -> Result<LayoutImage, LayoutError> {
        let matcher = PlatformMatcher::only(platform);
        let descriptor = self
            .images()?
            .into_iter()
            .filter_map(|d| Some((matcher.rank(d.platform.as_ref()?)?, d)))
            // min_by_key keeps the first of equal keys.
            .min_by_key(|(rank, _)| *rank)
            .map(|(_, d)| d);
        let no_image = || LayoutError::NoImage {
            tar: self.tar.clone(),
            platform: Box::new(platform.clone()),
        };
        let descriptor = descriptor.ok_or_else(no_image)?;
        let manifest = self.manifest(&descriptor)?;
        let (config_descriptor, config) = self.config_of(&manifest)?.ok_or_else(no_image)?;
        Ok(LayoutImage {
            descriptor,
            manifest,
            config_descriptor,
            config,
        })
    }

    /// An image manifest's config; `None` for an index.
    fn config_of(
        &self,
        manifest: &Manifest,
    ) -> Result<Option<(Descriptor, ImageConfiguration)>, LayoutError> {
        let Some(descriptor) = manifest.config() else {
            return Ok(None);
        };
        let doc = self
            .document(&descriptor.digest)
            .ok_or_else(|| self.missing(&descriptor))?;
        let config = parse_config(doc).map_err(|source| LayoutError::Config {
            tar: self.tar.clone(),
            digest: descriptor.digest.clone(),
            source,
        })?;
        Ok(Some((descriptor, config)))
    }

    fn missing(&self, descriptor: &Descriptor) -> LayoutError {
        LayoutError::MissingBlob {
            tar: self.tar.clone(),
            digest: descriptor.digest.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::testing::{blob, index_of, layout_files, write_tar};

    #[test]
    fn reads_index_manifests_and_config_by_platform() {
        let tmp = tempfile::tempdir().expect("tmp");
        // A multi-platform layout: index.json → index → two manifests.
        let mut files = layout_files(b"amd-layer", "amd64");
        let amd = files.root.clone();
        let arm_files = layout_files(b"arm-layer", "arm64");
        files.files.extend(
            arm_files
                .files
                .iter()
                .filter(|(p, _)| p.starts_with("blobs/"))
                .cloned(),
        );
        let index = index_of(&[(amd.clone(), "amd64"), (arm_files.root.clone(), "arm64")]);
        let index_digest = blob(&mut files.files, index.clone());
        files.set_index_json(&index_digest, crate::media_type::OCI_INDEX, index.len());
        let multi = tmp.path().join("multi.tar");
        write_tar(&multi, &files.files);

        let layout = Layout::open(&multi).expect("open");
        assert_eq!(layout.path(), multi);
        assert_eq!(layout.index().entries().len(), 1);
        let (root, root_manifest) = layout.root().expect("root");
        assert_eq!(root.digest, index_digest);
        assert!(root_manifest.is_index());
        let plats: Vec<String> = layout
            .images()
            .expect("images")
            .iter()
            .filter_map(|d| Some(d.platform.as_ref()?.to_string()))
            .collect();
        assert_eq!(plats, ["linux/amd64", "linux/arm64"]);

        let arm = layout.image(&Platform::linux_arm64()).expect("arm64");
        assert_eq!(arm.descriptor.digest, arm_files.root.digest);
        assert_eq!(arm.config.architecture().to_string(), "arm64");
        assert_eq!(
            arm.manifest.layers()[0].digest,
            Digest::sha256_of(b"arm-layer")
        );
        assert!(layout.contains(&arm.config_descriptor.digest));
        assert!(layout.document(&arm.config_descriptor.digest).is_some());
        // Layers are known but not held.
        assert!(layout.contains(&Digest::sha256_of(b"arm-layer")));
        assert!(layout.document(&Digest::sha256_of(b"arm-layer")).is_none());
        let e = layout.image(&"linux/s390x".parse().expect("platform"));
        assert!(matches!(e, Err(LayoutError::NoImage { .. })), "{e:?}");

        // A single-platform layout: index.json → manifest; the platform
        // comes from the config.
        let single = tmp.path().join("single.tar");
        write_tar(&single, &layout_files(b"layer", "arm64").files);
        let layout = Layout::open(&single).expect("open");
        let images = layout.images().expect("images");
        assert_eq!(images.len(), 1);
        assert_eq!(images[0].platform, Some(Platform::linux_arm64()));
        let img = layout.image(&Platform::linux_arm64()).expect("arm64");
        assert_eq!(img.config.os().to_string(), "linux");
        assert!(matches!(
            layout.image(&Platform::linux_amd64()),
            Err(LayoutError::NoImage { .. })
        ));
    }

    #[test]
    fn what_is_not_a_readable_layout_is_refused() {
        let tmp = tempfile::tempdir().expect("tmp");
        let path = tmp.path().join("x.tar");

        let mut files = layout_files(b"layer", "amd64").files;
        files.retain(|(p, _)| p != "index.json");
        write_tar(&path, &files);
        let e = Layout::open(&path).expect_err("no index.json");
        assert!(matches!(e, LayoutError::NotLayout { .. }), "{e:?}");
        assert!(e.to_string().contains("not an OCI layout"), "{e}");

        write_tar(&path, &[("index.json".into(), b"[]".to_vec())]);
        let e = Layout::open(&path).expect_err("bad index.json");
        assert!(matches!(e, LayoutError::IndexJson { .. }), "{e:?}");

        write_tar(
            &path,
            &[(
                "index.json".into(),
                br#"{"schemaVersion":2,"manifests":[]}"#.to_vec(),
            )],
        );
        let layout = Layout::open(&path).expect("empty index");
        assert!(matches!(layout.root(), Err(LayoutError::EmptyIndex { .. })));

        std::fs::write(&path, b"not a tar file, but long enough to fail").expect("write");
        let e = Layout::open(&path).expect_err("not a tar");
        assert!(matches!(e, LayoutError::Tar { .. }), "{e:?}");
        let e = Layout::open(tmp.path().join("absent.tar")).expect_err("absent");
        assert!(matches!(e, LayoutError::Open { .. }), "{e:?}");
    }
}
