//! Joining layout tarballs built for different platforms into one.
//!
//! A first pass reads each tarball's `index.json` and JSON documents
//! ([`Layout::open`]); the platform manifests found there are joined into
//! one OCI index in the order asked for. A second pass streams the blobs
//! that index reaches (each once, checked against its digest while it is
//! copied) into one layout tarball, so memory stays small whatever the
//! layers weigh.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{
    blob_path, for_each_file, Layout, Verifying, ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME,
    INDEX_FILE, OCI_LAYOUT_CONTENT, OCI_LAYOUT_FILE,
};
use crate::digest::Digest;
use crate::error::LayoutError;
use crate::manifest::{oci_index, Descriptor};
use crate::media_type;
use crate::platform::Platform;
use crate::reference::ImageRef;

/// One layout tarball to merge and the platforms it was built for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    /// The tarball.
    pub tar: PathBuf,
    /// The platforms built into it. A tarball holding a single image
    /// manifest (no index) must list exactly one: its manifest does not say
    /// its platform.
    pub platforms: Vec<Platform>,
}

/// A merged layout, written to a temporary file beside its destination but
/// not yet in place. Dropping it removes the temporary file.
#[derive(Debug)]
pub struct Merged {
    digest: Digest,
    tmp: tempfile::NamedTempFile,
    dest: PathBuf,
}

impl Merged {
    /// The digest of the joined index (what a registry would report).
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// Where [`Merged::commit`] puts the tarball.
    pub fn destination(&self) -> &Path {
        &self.dest
    }

    /// Moves the tarball into place (mode 0644, like other exports).
    ///
    /// # Errors
    /// [`LayoutError::Write`] when it cannot be moved there.
    pub fn commit(self) -> Result<(), LayoutError> {
        use std::os::unix::fs::PermissionsExt;
        let dest = self.dest;
        let failed = |source| LayoutError::Write {
            path: dest.clone(),
            source,
        };
        std::fs::set_permissions(self.tmp.path(), std::fs::Permissions::from_mode(0o644))
            .map_err(failed)?;
        self.tmp.persist(&dest).map_err(|e| failed(e.error))?;
        Ok(())
    }
}

/// Checks that `dest`'s directory exists, so a merge can write beside it;
/// worth doing before anything is built.
///
/// # Errors
/// [`LayoutError::NotADirectory`] when it does not.
pub fn check_destination(dest: &Path) -> Result<(), LayoutError> {
    let dir = parent(dest);
    if !dir.is_dir() {
        return Err(LayoutError::NotADirectory {
            dest: dest.to_path_buf(),
            dir: dir.to_path_buf(),
        });
    }
    Ok(())
}

fn parent(dest: &Path) -> &Path {
    dest.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// `index.json` of the merged layout. Fields in key order: the bytes are
/// those of a `serde_json` map.
#[derive(Serialize)]
struct TopIndex<'a> {
    manifests: [TopEntry<'a>; 1],
    #[serde(rename = "mediaType")]
    media_type: &'static str,
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
}

#[derive(Serialize)]
struct TopEntry<'a> {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<&'static str, String>,
    digest: &'a Digest,
    #[serde(rename = "mediaType")]
    media_type: &'static str,
    size: u64,
}

fn header(size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_entry_type(tar::EntryType::Regular);
    h
}

/// The platform manifests `part` holds.
fn platform_manifests(part: &Part, layout: &Layout) -> Result<Vec<Descriptor>, LayoutError> {
    let (root, manifest) = layout.root()?;
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
    let [only] = part.platforms.as_slice() else {
        return Err(LayoutError::SeveralPlatforms {
            tar: part.tar.clone(),
            platforms: part.platforms.clone(),
        });
    };
    Ok(vec![Descriptor {
        platform: Some(only.clone()),
        ..root
    }])
}

/// Merges `parts` into one OCI layout tarball for `dest` whose index lists
/// `order`'s platforms in that order (the first image found for each);
/// `name` (if any) is recorded as the image's name like BuildKit's `oci`
/// exporter does. Nothing is at `dest` until [`Merged::commit`].
///
/// The output holds `oci-layout`, `index.json`, the joined index and the
/// blobs it reaches, each once, in a fixed order with zero mtimes: the
/// same parts give the same bytes, and the joined index's digest depends
/// only on the manifests and `order`.
///
/// # Errors
/// The errors of [`Layout::open`] and [`Layout::root`] for each part;
/// [`LayoutError::SeveralPlatforms`] for a single-manifest part not built
/// for exactly one platform; [`LayoutError::NoPlatform`] when no part has
/// an image for a platform of `order`; [`LayoutError::MissingManifest`],
/// [`LayoutError::Manifest`] and [`LayoutError::BlobNotFound`] when what
/// the index reaches is missing or unreadable;
/// [`LayoutError::DigestMismatch`] for a blob whose bytes do not match its
/// digest; [`LayoutError::TempFile`], [`LayoutError::Copy`] and
/// [`LayoutError::Write`] when the output cannot be written.
pub fn merge(
    parts: &[Part],
    order: &[Platform],
    name: Option<&ImageRef>,
    dest: &Path,
) -> Result<Merged, LayoutError> {
    let mut layouts = Vec::with_capacity(parts.len());
    let mut found: Vec<Descriptor> = Vec::new();
    for part in parts {
        let layout = Layout::open(&part.tar)?;
        found.extend(platform_manifests(part, &layout)?);
        layouts.push(layout);
    }
    let mut entries = Vec::with_capacity(order.len());
    for t in order {
        let d = found
            .iter()
            .find(|d| d.platform.as_ref() == Some(t))
            .ok_or_else(|| LayoutError::NoPlatform {
                platform: Box::new(t.clone()),
            })?;
        entries.push(d.clone());
    }
    // What the joined index reaches: each manifest, its config and layers.
    let mut reachable: BTreeSet<Digest> = BTreeSet::new();
    for (t, e) in order.iter().zip(&entries) {
        reachable.insert(e.digest.clone());
        let layout = layouts
            .iter()
            .find(|l| l.document(&e.digest).is_some())
            .ok_or_else(|| LayoutError::MissingManifest {
                platform: Box::new(t.clone()),
                digest: e.digest.clone(),
            })?;
        let m = layout.manifest(e)?;
        reachable.extend(m.config().map(|c| c.digest));
        reachable.extend(m.layers().into_iter().map(|l| l.digest));
    }
    if let Some(missing) = reachable
        .iter()
        .find(|d| !layouts.iter().any(|l| l.contains(d)))
    {
        return Err(LayoutError::BlobNotFound {
            digest: missing.clone(),
        });
    }
    let index = oci_index(&entries).map_err(|source| LayoutError::Index {
        source: Box::new(source),
    })?;
    let index_digest = Digest::sha256_of(&index);
    let mut annotations = BTreeMap::new();
    if let Some(n) = name {
        annotations.insert(ANNOTATION_IMAGE_NAME, n.to_string());
        annotations.insert(ANNOTATION_REF_NAME, n.tag().unwrap_or("latest").to_string());
    }
    let top = serde_json::to_vec(&TopIndex {
        manifests: [TopEntry {
            annotations,
            digest: &index_digest,
            media_type: media_type::OCI_INDEX,
            size: index.len() as u64,
        }],
        media_type: media_type::OCI_INDEX,
        schema_version: 2,
    })
    .map_err(|source| LayoutError::Encode {
        document: INDEX_FILE,
        source,
    })?;

    let dir = parent(dest);
    let mut tmp = tempfile::Builder::new()
        .prefix(".kiln-oci-")
        .tempfile_in(dir)
        .map_err(|source| LayoutError::TempFile {
            dir: dir.to_path_buf(),
            source,
        })?;
    let write_error = |source| LayoutError::Write {
        path: dest.to_path_buf(),
        source,
    };
    let mut written: BTreeSet<Digest> = BTreeSet::new();
    {
        let mut out = tar::Builder::new(tmp.as_file_mut());
        out.append_data(
            &mut header(OCI_LAYOUT_CONTENT.len() as u64),
            OCI_LAYOUT_FILE,
            OCI_LAYOUT_CONTENT,
        )
        .map_err(write_error)?;
        out.append_data(&mut header(top.len() as u64), INDEX_FILE, top.as_slice())
            .map_err(write_error)?;
        out.append_data(
            &mut header(index.len() as u64),
            blob_path(&index_digest),
            index.as_slice(),
        )
        .map_err(write_error)?;
        written.insert(index_digest.clone());
        for part in parts {
            for_each_file(&part.tar, |path, entry| {
                let Some(d) = super::blob_digest(path) else {
                    return Ok(());
                };
                if !reachable.contains(&d) || written.contains(&d) {
                    return Ok(());
                }
                let size = entry.size();
                let mut verifying = Verifying::new(&mut *entry, &d);
                out.append_data(&mut header(size), blob_path(&d), &mut verifying)
                    .map_err(|source| LayoutError::Copy {
                        tar: part.tar.clone(),
                        entry: path.to_string(),
                        source,
                    })?;
                let actual = verifying.finish();
                if actual != d {
                    return Err(LayoutError::DigestMismatch {
                        tar: part.tar.clone(),
                        entry: path.to_string(),
                        expected: d,
                        actual,
                    });
                }
                written.insert(d);
                Ok(())
            })?;
        }
        out.finish().map_err(write_error)?;
    }
    // Checked before writing; the tarballs could have changed since.
    if let Some(missing) = reachable.iter().find(|d| !written.contains(d)) {
        return Err(LayoutError::BlobNotFound {
            digest: missing.clone(),
        });
    }
    tmp.as_file_mut().flush().map_err(write_error)?;
    tmp.as_file().sync_all().map_err(write_error)?;
    Ok(Merged {
        digest: index_digest,
        tmp,
        dest: dest.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::testing::{entries, layout_files, leftovers, write_tar, write_tar_with};
    use crate::layout::{EntryProblem, MAX_JSON_BLOB};
    use crate::manifest::Manifest;

    fn part(dir: &Path, name: &str, layer: &[u8], arch: &str) -> Part {
        let tar = dir.join(name);
        write_tar(&tar, &layout_files(layer, arch).files);
        Part {
            tar,
            platforms: vec![format!("linux/{arch}").parse().expect("platform")],
        }
    }

    fn corrupt(files: &mut [(String, Vec<u8>)], digest: &Digest) {
        let path = blob_path(digest);
        for (p, data) in files {
            if *p == path {
                data[0] ^= 1;
            }
        }
    }

    #[test]
    fn merges_two_layouts_into_one_index_in_order() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().expect("tmp");
        // A layer bigger than what the first pass keeps in memory.
        let big = vec![7u8; (MAX_JSON_BLOB + 10) as usize];
        let amd = part(tmp.path(), "amd.tar", &big, "amd64");
        let arm = part(tmp.path(), "arm.tar", b"arm-layer", "arm64");
        let parts = [arm, amd];
        let order = [Platform::linux_amd64(), Platform::linux_arm64()];
        let name = ImageRef::parse("example.com/app:v1").expect("ref");
        let out = tmp.path().join("out.tar");
        let merged = merge(&parts, &order, Some(&name), &out).expect("merge");
        assert!(!out.exists(), "nothing in place before commit");
        assert_eq!(merged.destination(), out);
        let d = merged.digest().clone();
        merged.commit().expect("commit");

        // Same parts, same bytes.
        let again = tmp.path().join("again.tar");
        let m2 = merge(&parts, &order, Some(&name), &again).expect("again");
        assert_eq!(m2.digest(), &d);
        m2.commit().expect("commit");
        assert_eq!(
            std::fs::read(&out).expect("r"),
            std::fs::read(&again).expect("r")
        );
        // The parts' order changes where blobs sit, not the index.
        let swapped = tmp.path().join("swapped.tar");
        let parts_swapped = [parts[1].clone(), parts[0].clone()];
        let m3 = merge(&parts_swapped, &order, Some(&name), &swapped).expect("swapped");
        assert_eq!(m3.digest(), &d);
        drop(m3);
        assert!(!swapped.exists(), "dropped, not committed");

        let mode = std::fs::metadata(&out).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);

        let files = entries(&out);
        let names: Vec<&str> = files.keys().map(String::as_str).collect();
        assert!(names.contains(&"oci-layout") && names.contains(&"index.json"));
        // index.json: the bytes kiln wrote before this module existed (a
        // serde_json map, keys sorted).
        let old = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_type::OCI_INDEX,
            "manifests": [{
                "mediaType": media_type::OCI_INDEX,
                "digest": d.to_string(),
                "size": files[&blob_path(&d)].len(),
                "annotations": {
                    "io.containerd.image.name": "example.com/app:v1",
                    "org.opencontainers.image.ref.name": "v1",
                },
            }],
        });
        assert_eq!(
            files["index.json"],
            serde_json::to_vec(&old).expect("json"),
            "{}",
            String::from_utf8_lossy(&files["index.json"])
        );
        let index = Manifest::parse(None, &files[&blob_path(&d)]).expect("index");
        let plats: Vec<String> = index
            .platforms()
            .iter()
            .map(|(p, _)| p.to_string())
            .collect();
        assert_eq!(plats, ["linux/amd64", "linux/arm64"]);
        // Exactly the reachable blobs: 2 × (manifest, config, layer) + index.
        let blobs: Vec<&String> = files.keys().filter(|k| k.starts_with("blobs/")).collect();
        assert_eq!(blobs.len(), 7, "{blobs:?}");
        assert!(files.values().all(|v| !v.starts_with(b"unreferenced")));
        assert_eq!(files[&blob_path(&Digest::sha256_of(&big))].len(), big.len());
        // What was merged reads back as a layout.
        let layout = Layout::open(&out).expect("open merged");
        let arm = layout.image(&Platform::linux_arm64()).expect("arm64");
        assert_eq!(arm.config.architecture().to_string(), "arm64");
        assert_eq!(leftovers(tmp.path()), 0);
    }

    #[test]
    fn without_a_name_index_json_has_no_annotations() {
        let tmp = tempfile::tempdir().expect("tmp");
        let amd = part(tmp.path(), "amd.tar", b"layer", "amd64");
        let out = tmp.path().join("out.tar");
        let m = merge(&[amd], &[Platform::linux_amd64()], None, &out).expect("merge");
        let d = m.digest().clone();
        m.commit().expect("commit");
        let files = entries(&out);
        let old = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_type::OCI_INDEX,
            "manifests": [{
                "mediaType": media_type::OCI_INDEX,
                "digest": d.to_string(),
                "size": files[&blob_path(&d)].len(),
            }],
        });
        assert_eq!(files["index.json"], serde_json::to_vec(&old).expect("json"));
    }

    #[test]
    fn a_missing_platform_is_refused() {
        let tmp = tempfile::tempdir().expect("tmp");
        let amd = part(tmp.path(), "amd.tar", b"layer", "amd64");
        let out = tmp.path().join("out.tar");
        let e = merge(&[amd], &[Platform::linux_arm64()], None, &out).expect_err("no arm64");
        assert!(matches!(e, LayoutError::NoPlatform { .. }), "{e:?}");
        assert!(e.to_string().contains("no linux/arm64 image"), "{e}");
        assert!(!out.exists());
        assert_eq!(leftovers(tmp.path()), 0);
    }

    #[test]
    fn one_manifest_for_several_platforms_is_refused() {
        let tmp = tempfile::tempdir().expect("tmp");
        let mut amd = part(tmp.path(), "amd.tar", b"layer", "amd64");
        amd.platforms.push(Platform::linux_arm64());
        let out = tmp.path().join("out.tar");
        let e = merge(&[amd], &[Platform::linux_amd64()], None, &out).expect_err("ambiguous");
        assert!(matches!(e, LayoutError::SeveralPlatforms { .. }), "{e:?}");
    }

    #[test]
    fn a_blob_that_does_not_match_its_digest_is_refused() {
        let tmp = tempfile::tempdir().expect("tmp");
        let out = tmp.path().join("out.tar");
        let amd64 = [Platform::linux_amd64()];
        let layout = layout_files(b"layer", "amd64");
        let manifest = Manifest::parse(
            None,
            &layout
                .files
                .iter()
                .find(|(p, _)| *p == blob_path(&layout.root.digest))
                .expect("manifest")
                .1,
        )
        .expect("parse");
        let config = manifest.config().expect("config").digest;
        // A layer (not JSON: caught while it is copied), then a config
        // (JSON: caught while the layout is read).
        for (what, digest) in [("layer", Digest::sha256_of(b"layer")), ("config", config)] {
            let mut files = layout_files(b"layer", "amd64").files;
            corrupt(&mut files, &digest);
            let bad = tmp.path().join("bad.tar");
            write_tar(&bad, &files);
            let part = Part {
                tar: bad,
                platforms: amd64.to_vec(),
            };
            let e = merge(&[part], &amd64, None, &out).expect_err(what);
            let LayoutError::DigestMismatch {
                expected,
                actual,
                entry,
                ..
            } = &e
            else {
                panic!("{what}: {e:?}");
            };
            assert_eq!(expected, &digest, "{what}");
            assert_ne!(actual, &digest, "{what}");
            assert_eq!(entry, &blob_path(&digest), "{what}");
            assert!(e.to_string().contains("does not match its digest"), "{e}");
            assert!(!out.exists(), "{what}");
            assert_eq!(leftovers(tmp.path()), 0, "{what}");
        }
    }

    #[test]
    fn a_missing_blob_is_refused() {
        let tmp = tempfile::tempdir().expect("tmp");
        let out = tmp.path().join("out.tar");
        let amd64 = [Platform::linux_amd64()];
        let layer = blob_path(&Digest::sha256_of(b"layer"));
        let mut files = layout_files(b"layer", "amd64").files;
        files.retain(|(p, _)| *p != layer);
        let tar = tmp.path().join("no-layer.tar");
        write_tar(&tar, &files);
        let part = Part {
            tar,
            platforms: amd64.to_vec(),
        };
        let e = merge(&[part], &amd64, None, &out).expect_err("no layer");
        assert!(
            matches!(&e, LayoutError::BlobNotFound { digest } if *digest == Digest::sha256_of(b"layer")),
            "{e:?}"
        );
        // The manifest itself missing.
        let l = layout_files(b"layer", "amd64");
        let manifest = blob_path(&l.root.digest);
        let mut files = l.files;
        files.retain(|(p, _)| *p != manifest);
        let tar = tmp.path().join("no-manifest.tar");
        write_tar(&tar, &files);
        let part = Part {
            tar,
            platforms: amd64.to_vec(),
        };
        let e = merge(&[part], &amd64, None, &out).expect_err("no manifest");
        assert!(matches!(e, LayoutError::MissingBlob { .. }), "{e:?}");
        assert!(!out.exists());
        assert_eq!(leftovers(tmp.path()), 0);
    }

    #[test]
    fn links_parent_dirs_and_absolute_paths_are_refused() {
        let tmp = tempfile::tempdir().expect("tmp");
        let out = tmp.path().join("out.tar");
        let amd64 = [Platform::linux_amd64()];
        let layer = blob_path(&Digest::sha256_of(b"layer"));
        let cases = [
            (
                "symlink",
                "blobs/sha256/link",
                tar::EntryType::Symlink,
                "/etc/passwd",
            ),
            (
                "hard link",
                "blobs/sha256/hard",
                tar::EntryType::Link,
                "oci-layout",
            ),
            ("parent", "../outside", tar::EntryType::Regular, ""),
            (
                "nested parent",
                "blobs/../../outside",
                tar::EntryType::Regular,
                "",
            ),
            ("absolute", "/etc/cron.d/x", tar::EntryType::Regular, ""),
            ("fifo", "blobs/fifo", tar::EntryType::Fifo, ""),
        ];
        for (what, name, kind, link) in cases {
            // The layer is replaced by the odd entry, as an attacker would.
            let mut files = layout_files(b"layer", "amd64").files;
            files.retain(|(p, _)| *p != layer);
            let tar = tmp.path().join("odd.tar");
            write_tar_with(&tar, &files, name, kind, link);
            let part = Part {
                tar,
                platforms: amd64.to_vec(),
            };
            let e = merge(&[part], &amd64, None, &out).expect_err(what);
            let LayoutError::UnsafeEntry { entry, problem, .. } = &e else {
                panic!("{what}: {e:?}");
            };
            assert_eq!(entry, name, "{what}");
            let expected = match what {
                "symlink" => EntryProblem::Symlink {
                    target: link.into(),
                },
                "hard link" => EntryProblem::HardLink {
                    target: link.into(),
                },
                "absolute" => EntryProblem::Absolute,
                "fifo" => EntryProblem::Unsupported {
                    kind: "Fifo".into(),
                },
                _ => EntryProblem::ParentDir,
            };
            assert_eq!(problem, &expected, "{what}: {e}");
            assert!(!out.exists());
        }
        assert_eq!(leftovers(tmp.path()), 0);
    }

    #[test]
    fn the_destination_directory_must_exist() {
        let tmp = tempfile::tempdir().expect("tmp");
        let e = check_destination(&tmp.path().join("no/such/dir/x.tar")).expect_err("no dir");
        assert!(e.to_string().contains("is not a directory"), "{e}");
        assert!(check_destination(&tmp.path().join("x.tar")).is_ok());
        assert!(
            check_destination(Path::new("x.tar")).is_ok(),
            "the working directory"
        );
        let amd = part(tmp.path(), "amd.tar", b"layer", "amd64");
        let e = merge(
            &[amd],
            &[Platform::linux_amd64()],
            None,
            &tmp.path().join("no/x.tar"),
        )
        .expect_err("no dir");
        assert!(matches!(e, LayoutError::TempFile { .. }), "{e:?}");
    }
}
