//! Joining OCI layout tarballs exported by several daemons into one.
//!
//! Each fanned-out endpoint exports its platforms with the `oci` exporter.
//! A first pass over every tarball reads `index.json` and the small JSON
//! blobs (indexes, manifests, configs); the platform manifests found there
//! are joined into one OCI index in the order asked for. A second pass
//! streams the blobs that index reaches (each once, checked against its
//! digest while it is copied) into one layout tarball, so memory stays
//! small whatever the layers weigh. The output is deterministic (zero
//! mtimes, fixed order) and is written to a temporary file beside the
//! destination; [`Merged::commit`] moves it into place.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::Digest as _;

use super::LayoutError;
use crate::manifest::{oci_index, Descriptor, Manifest};
use crate::{media_type, Digest, ImageRef, Platform};

/// JSON documents (indexes, manifests, configs) are read into memory in
/// the first pass; BuildKit caps manifests at 4 MiB.
const MAX_JSON_BLOB: u64 = 4 * 1024 * 1024;

/// One exported tarball and the platforms it was built for.
#[derive(Clone, Debug)]
pub struct Part {
    pub tar: PathBuf,
    pub platforms: Vec<Platform>,
}

/// A merged layout, written but not yet in place.
#[derive(Debug)]
pub struct Merged {
    pub digest: Digest,
    tmp: tempfile::NamedTempFile,
    dest: PathBuf,
}

impl Merged {
    /// Moves the tarball into place (mode 0644, like other exports).
    ///
    /// # Errors
    /// [`LayoutError::Io`] when the file cannot be moved.
    pub fn commit(self) -> Result<(), LayoutError> {
        use std::os::unix::fs::PermissionsExt;
        let dest = self.dest;
        let what = || format!("cannot write {}", dest.display());
        std::fs::set_permissions(self.tmp.path(), std::fs::Permissions::from_mode(0o644))
            .map_err(|e| LayoutError::io(what(), e))?;
        self.tmp
            .persist(&dest)
            .map_err(|e| LayoutError::io(what(), e.error))?;
        Ok(())
    }
}

/// The directory a destination file goes in; it must exist.
///
/// # Errors
/// [`LayoutError::Io`] when it does not.
pub fn check_dest(dest: &Path) -> Result<(), LayoutError> {
    let dir = parent(dest);
    if !dir.is_dir() {
        return Err(LayoutError::io(
            format!("cannot write {}", dest.display()),
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{} is not a directory", dir.display()),
            ),
        ));
    }
    Ok(())
}

fn parent(dest: &Path) -> &Path {
    dest.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// A blob entry's digest, from its path in the layout.
fn blob_digest(path: &str) -> Option<Digest> {
    let hex = path
        .trim_start_matches("./")
        .strip_prefix("blobs/sha256/")?;
    format!("sha256:{hex}").parse().ok()
}

/// A tar entry's path, refused when it could leave the layout.
fn entry_path(tar: &Path, entry: &tar::Entry<'_, std::fs::File>) -> Result<String, LayoutError> {
    let raw = entry
        .path()
        .map_err(|e| LayoutError::io(format!("reading {}", tar.display()), e))?;
    let p = raw.to_string_lossy().trim_start_matches("./").to_string();
    if p.starts_with('/') || p.split('/').any(|c| c == "..") {
        return Err(LayoutError::UnsafeEntry {
            tar: tar.to_path_buf(),
            entry: p,
        });
    }
    Ok(p)
}

/// First pass over one part: its JSON blobs into `docs` (checked), and its
/// platform manifests.
fn read_part(
    part: &Part,
    docs: &mut BTreeMap<Digest, Vec<u8>>,
) -> Result<Vec<Descriptor>, LayoutError> {
    let name = part.tar.display().to_string();
    let io = |what: String| move |e| LayoutError::io(what, e);
    let malformed = |entry: &str, reason: String| LayoutError::Malformed {
        entry: format!("{entry} in {name}"),
        reason,
    };
    let file = std::fs::File::open(&part.tar).map_err(io(format!("cannot open {name}")))?;
    let mut archive = tar::Archive::new(file);
    let mut index_json: Option<Vec<u8>> = None;
    for entry in archive
        .entries()
        .map_err(io(format!("{name} is not a tar file")))?
    {
        let mut entry = entry.map_err(io(format!("reading {name}")))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry_path(&part.tar, &entry)?;
        let digest = blob_digest(&path);
        let wanted = path == "index.json" || (digest.is_some() && entry.size() <= MAX_JSON_BLOB);
        if !wanted {
            continue;
        }
        let mut data = Vec::new();
        entry
            .read_to_end(&mut data)
            .map_err(io(format!("reading {path} in {name}")))?;
        match digest {
            None => index_json = Some(data),
            Some(d) if data.first() == Some(&b'{') => {
                let actual = d.recompute(&data);
                if actual != d {
                    return Err(LayoutError::BadBlob {
                        tar: part.tar.clone(),
                        digest: d.to_string(),
                        actual: actual.hex().to_string(),
                    });
                }
                docs.insert(d, data);
            }
            Some(_) => {} // a small layer: copied in the second pass
        }
    }
    let index_json =
        index_json.ok_or_else(|| malformed("index.json", "missing: not an OCI layout".into()))?;
    let top = Manifest::parse(Some(media_type::OCI_INDEX), &index_json)
        .map_err(|e| malformed("index.json", e.to_string()))?;
    let Some(root) = top.entries().into_iter().next() else {
        return Err(malformed("index.json", "it lists no image".into()));
    };
    let root_doc = docs
        .get(&root.digest)
        .ok_or_else(|| LayoutError::MissingBlob {
            tar: part.tar.clone(),
            digest: root.digest.to_string(),
        })?;
    let root_manifest = Manifest::parse(Some(&root.media_type), root_doc)
        .map_err(|e| malformed(root.digest.as_ref(), e.to_string()))?;
    if root_manifest.is_index() {
        return Ok(root_manifest
            .platforms()
            .into_iter()
            .map(|(p, d)| Descriptor {
                platform: Some(p),
                ..d
            })
            .collect());
    }
    let [only] = part.platforms.as_slice() else {
        return Err(malformed(
            "index.json",
            "one image manifest for several platforms".into(),
        ));
    };
    Ok(vec![Descriptor {
        platform: Some(only.clone()),
        ..root
    }])
}

/// Reads through `inner`, hashing what it reads.
struct Hashing<R> {
    inner: R,
    hasher: sha2::Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
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

/// Merges `parts` into one OCI layout tarball for `dest` whose index lists
/// `order`'s platforms in that order; `name` (if any) is recorded as the
/// image's ref name like BuildKit's `oci` exporter does. Nothing is at
/// `dest` until [`Merged::commit`].
///
/// # Errors
/// [`LayoutError`]: a part that is not an OCI layout, a blob that is
/// missing or does not match its digest, a platform no part holds, an
/// unsafe tar entry, or a failed write.
pub fn merge(
    parts: &[Part],
    order: &[Platform],
    name: Option<&ImageRef>,
    dest: &Path,
) -> Result<Merged, LayoutError> {
    let io = |what: String| move |e| LayoutError::io(what, e);
    let mut docs: BTreeMap<Digest, Vec<u8>> = BTreeMap::new();
    let mut found: Vec<Descriptor> = Vec::new();
    for p in parts {
        found.extend(read_part(p, &mut docs)?);
    }
    let mut entries = Vec::new();
    for t in order {
        let d = found
            .iter()
            .find(|d| d.platform.as_ref() == Some(t))
            .ok_or_else(|| LayoutError::MissingPlatform {
                platform: t.to_string(),
            })?;
        entries.push(d.clone());
    }
    // What the joined index reaches: each manifest, its config and layers.
    let mut reachable: BTreeSet<Digest> = BTreeSet::new();
    for e in &entries {
        reachable.insert(e.digest.clone());
        let doc = docs
            .get(&e.digest)
            .ok_or_else(|| LayoutError::MissingBlob {
                tar: PathBuf::from("the builders' exports"),
                digest: e.digest.to_string(),
            })?;
        let m =
            Manifest::parse(Some(&e.media_type), doc).map_err(|err| LayoutError::Malformed {
                entry: format!("manifest {}", e.digest),
                reason: err.to_string(),
            })?;
        reachable.extend(m.config().map(|c| c.digest));
        reachable.extend(m.layers().into_iter().map(|l| l.digest));
    }
    let index = oci_index(&entries).map_err(|e| LayoutError::Malformed {
        entry: "the joined index".into(),
        reason: e.to_string(),
    })?;
    let index_digest = Digest::sha256_of(&index);

    let mut descriptor = serde_json::json!({
        "mediaType": media_type::OCI_INDEX,
        "digest": index_digest.to_string(),
        "size": index.len(),
    });
    if let Some(n) = name {
        descriptor["annotations"] = serde_json::json!({
            "io.containerd.image.name": n.to_string(),
            "org.opencontainers.image.ref.name": n.tag().unwrap_or("latest"),
        });
    }
    let top = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_INDEX,
        "manifests": [descriptor],
    }))
    .map_err(|e| LayoutError::Malformed {
        entry: "index.json".into(),
        reason: e.to_string(),
    })?;

    let dir = parent(dest);
    let mut tmp = tempfile::Builder::new()
        .prefix(".kiln-oci-")
        .tempfile_in(dir)
        .map_err(io(format!(
            "cannot create a temporary file in {}",
            dir.display()
        )))?;
    let mut written: BTreeSet<Digest> = BTreeSet::new();
    {
        let mut out = tar::Builder::new(tmp.as_file_mut());
        let w = || format!("cannot write {}", dest.display());
        let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
        out.append_data(&mut header(layout.len() as u64), "oci-layout", &layout[..])
            .map_err(io(w()))?;
        out.append_data(&mut header(top.len() as u64), "index.json", top.as_slice())
            .map_err(io(w()))?;
        let path = |d: &Digest| format!("blobs/sha256/{}", d.hex());
        out.append_data(
            &mut header(index.len() as u64),
            path(&index_digest),
            index.as_slice(),
        )
        .map_err(io(w()))?;
        written.insert(index_digest.clone());
        for part in parts {
            let name = part.tar.display().to_string();
            let file = std::fs::File::open(&part.tar).map_err(io(format!("cannot open {name}")))?;
            let mut archive = tar::Archive::new(file);
            for entry in archive.entries().map_err(io(format!("reading {name}")))? {
                let entry = entry.map_err(io(format!("reading {name}")))?;
                if !entry.header().entry_type().is_file() {
                    continue;
                }
                let p = entry_path(&part.tar, &entry)?;
                let Some(d) = blob_digest(&p) else { continue };
                if !reachable.contains(&d) || written.contains(&d) {
                    continue;
                }
                let size = entry.size();
                let mut hashing = Hashing {
                    inner: entry,
                    hasher: sha2::Sha256::new(),
                };
                out.append_data(&mut header(size), path(&d), &mut hashing)
                    .map_err(io(format!("copying {p} from {name}")))?;
                let actual = hex::encode(hashing.hasher.finalize());
                if actual != d.hex() {
                    return Err(LayoutError::BadBlob {
                        tar: part.tar.clone(),
                        digest: d.to_string(),
                        actual,
                    });
                }
                written.insert(d);
            }
        }
        out.finish()
            .map_err(io(format!("cannot write {}", dest.display())))?;
    }
    if let Some(missing) = reachable.iter().find(|d| !written.contains(d)) {
        return Err(LayoutError::MissingBlob {
            tar: PathBuf::from("the builders' exports"),
            digest: missing.to_string(),
        });
    }
    let w = format!("cannot write {}", dest.display());
    tmp.as_file_mut().flush().map_err(io(w.clone()))?;
    tmp.as_file().sync_all().map_err(io(w))?;
    Ok(Merged {
        digest: index_digest,
        tmp,
        dest: dest.to_path_buf(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn blob(files: &mut Vec<(String, Vec<u8>)>, data: Vec<u8>) -> Digest {
        let d = Digest::sha256_of(&data);
        files.push((format!("blobs/sha256/{}", d.hex()), data));
        d
    }

    fn write_tar(path: &Path, files: &[(String, Vec<u8>)]) {
        let mut b = tar::Builder::new(std::fs::File::create(path).expect("create"));
        for (p, data) in files {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, p, data.as_slice()).expect("append");
        }
        b.finish().expect("finish");
    }

    /// The files of a layout with one single-platform image whose only
    /// layer is `layer` (bytes, not a real tar: merging never looks inside),
    /// plus an unreferenced blob.
    fn part_files(layer: &[u8], arch: &str) -> Vec<(String, Vec<u8>)> {
        let mut files = Vec::new();
        let l = blob(&mut files, layer.to_vec());
        blob(&mut files, format!("unreferenced {arch}").into_bytes());
        let config = format!(
            r#"{{"architecture":"{arch}","os":"linux","rootfs":{{"type":"layers","diff_ids":["{l}"]}}}}"#
        );
        let c = blob(&mut files, config.clone().into_bytes());
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{c}","size":{}}},"layers":[{{"mediaType":"{}","digest":"{l}","size":{}}}]}}"#,
            media_type::OCI_MANIFEST,
            media_type::OCI_CONFIG,
            config.len(),
            media_type::OCI_LAYER_TAR,
            layer.len()
        );
        let m = blob(&mut files, manifest.clone().into_bytes());
        let index = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{}","digest":"{m}","size":{}}}]}}"#,
            media_type::OCI_MANIFEST,
            manifest.len()
        );
        files.push(("index.json".into(), index.into_bytes()));
        files.push((
            "oci-layout".into(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        ));
        files
    }

    fn part(dir: &Path, name: &str, layer: &[u8], arch: &str) -> PathBuf {
        let path = dir.join(name);
        write_tar(&path, &part_files(layer, arch));
        path
    }

    fn entries(tar_path: &Path) -> BTreeMap<String, Vec<u8>> {
        let mut a = tar::Archive::new(std::fs::File::open(tar_path).expect("open"));
        let mut out = BTreeMap::new();
        for e in a.entries().expect("entries") {
            let mut e = e.expect("entry");
            let p = e.path().expect("path").to_string_lossy().to_string();
            let mut d = Vec::new();
            e.read_to_end(&mut d).expect("read");
            out.insert(p, d);
        }
        out
    }

    fn leftovers(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .expect("ls")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with(".kiln-oci-"))
            .count()
    }

    #[test]
    fn merges_parts_into_one_index_in_order() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().expect("tmp");
        // A layer bigger than what the first pass keeps in memory.
        let big = vec![7u8; (MAX_JSON_BLOB + 10) as usize];
        let amd = part(tmp.path(), "amd.tar", &big, "amd64");
        let arm = part(tmp.path(), "arm.tar", b"arm-layer", "arm64");
        let parts = [
            Part {
                tar: arm,
                platforms: vec![Platform::linux_arm64()],
            },
            Part {
                tar: amd,
                platforms: vec![Platform::linux_amd64()],
            },
        ];
        let order = [Platform::linux_amd64(), Platform::linux_arm64()];
        let name = ImageRef::parse("example.com/app:v1").expect("ref");
        let out = tmp.path().join("out.tar");
        let merged = merge(&parts, &order, Some(&name), &out).expect("merge");
        assert!(!out.exists(), "nothing in place before commit");
        let d = merged.digest.clone();
        merged.commit().expect("commit");
        let again = tmp.path().join("again.tar");
        let m2 = merge(&parts, &order, Some(&name), &again).expect("again");
        assert_eq!(m2.digest, d);
        m2.commit().expect("commit");
        assert_eq!(
            std::fs::read(&out).expect("r"),
            std::fs::read(&again).expect("r")
        );
        let mode = std::fs::metadata(&out).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);

        let files = entries(&out);
        let top: serde_json::Value = serde_json::from_slice(&files["index.json"]).expect("json");
        assert_eq!(top["manifests"][0]["digest"], d.to_string());
        assert_eq!(
            top["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
            "v1"
        );
        let index =
            Manifest::parse(None, &files[&format!("blobs/sha256/{}", d.hex())]).expect("index");
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
        assert_eq!(
            files[&format!("blobs/sha256/{}", Digest::sha256_of(&big).hex())].len(),
            big.len()
        );
        assert_eq!(leftovers(tmp.path()), 0);
    }

    #[test]
    fn a_missing_platform_or_corrupt_blob_fails_without_output() {
        let tmp = tempfile::tempdir().expect("tmp");
        let amd = part(tmp.path(), "amd.tar", b"layer", "amd64");
        let parts = [Part {
            tar: amd,
            platforms: vec![Platform::linux_amd64()],
        }];
        let out = tmp.path().join("out.tar");
        let e = merge(&parts, &[Platform::linux_arm64()], None, &out)
            .expect_err("no arm64")
            .to_string();
        assert!(e.contains("no manifest for linux/arm64"), "{e}");

        // Corrupt the layer (not a JSON blob: caught while it is copied).
        let mut files = part_files(b"layer", "amd64");
        let layer = format!("blobs/sha256/{}", Digest::sha256_of(b"layer").hex());
        for (p, data) in &mut files {
            if *p == layer {
                data[0] ^= 1;
            }
        }
        let bad = tmp.path().join("bad.tar");
        write_tar(&bad, &files);
        let e = merge(
            &[Part {
                tar: bad,
                platforms: vec![Platform::linux_amd64()],
            }],
            &[Platform::linux_amd64()],
            None,
            &out,
        )
        .expect_err("corrupt")
        .to_string();
        assert!(e.contains("does not match its content"), "{e}");
        assert!(!out.exists());
        assert_eq!(leftovers(tmp.path()), 0);
        assert!(check_dest(&tmp.path().join("no/such/dir/x.tar")).is_err());
        assert!(check_dest(&out).is_ok());
    }
}
