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

use anyhow::{bail, Context};
use kiln_image::manifest::{oci_index, Descriptor, Manifest};
use kiln_image::{media_type, Digest, ImageRef, Platform};
use sha2::Digest as _;

/// JSON documents (indexes, manifests, configs) are read into memory in
/// the first pass; BuildKit caps manifests at 4 MiB.
const MAX_JSON_BLOB: u64 = 4 * 1024 * 1024;

/// One exported tarball and the platforms it was built for.
pub struct Part {
    pub tar: PathBuf,
    pub platforms: Vec<Platform>,
}

/// A merged layout, written but not yet in place.
pub struct Merged {
    pub digest: Digest,
    tmp: tempfile::NamedTempFile,
    dest: PathBuf,
}

impl Merged {
    /// Moves the tarball into place (mode 0644, like other exports).
    pub fn commit(self) -> anyhow::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let dest = self.dest;
        std::fs::set_permissions(self.tmp.path(), std::fs::Permissions::from_mode(0o644))
            .with_context(|| format!("cannot write {}", dest.display()))?;
        self.tmp
            .persist(&dest)
            .with_context(|| format!("cannot write {}", dest.display()))?;
        Ok(())
    }
}

/// The directory a destination file goes in; it must exist.
pub fn check_dest(dest: &Path) -> anyhow::Result<()> {
    let dir = parent(dest);
    if !dir.is_dir() {
        bail!(
            "cannot write {}: {} is not a directory",
            dest.display(),
            dir.display()
        );
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

fn entry_path(entry: &tar::Entry<'_, std::fs::File>) -> anyhow::Result<String> {
    Ok(entry
        .path()?
        .to_string_lossy()
        .trim_start_matches("./")
        .to_string())
}

/// First pass over one part: its JSON blobs into `docs` (checked), and its
/// platform manifests.
fn read_part(part: &Part, docs: &mut BTreeMap<Digest, Vec<u8>>) -> anyhow::Result<Vec<Descriptor>> {
    let name = part.tar.display().to_string();
    let file = std::fs::File::open(&part.tar).with_context(|| format!("cannot open {name}"))?;
    let mut archive = tar::Archive::new(file);
    let mut index_json: Option<Vec<u8>> = None;
    for entry in archive
        .entries()
        .with_context(|| format!("{name} is not a tar file"))?
    {
        let mut entry = entry.with_context(|| format!("reading {name}"))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry_path(&entry).with_context(|| format!("reading {name}"))?;
        let digest = blob_digest(&path);
        let wanted = path == "index.json" || (digest.is_some() && entry.size() <= MAX_JSON_BLOB);
        if !wanted {
            continue;
        }
        let mut data = Vec::new();
        entry
            .read_to_end(&mut data)
            .with_context(|| format!("reading {path} in {name}"))?;
        match digest {
            None => index_json = Some(data),
            Some(d) if data.first() == Some(&b'{') => {
                if d.recompute(&data) != d {
                    bail!("{name}: blob {path} does not match its digest");
                }
                docs.insert(d, data);
            }
            Some(_) => {} // a small layer: copied in the second pass
        }
    }
    let index_json =
        index_json.with_context(|| format!("{name} has no index.json: not an OCI layout"))?;
    let top = Manifest::parse(Some(media_type::OCI_INDEX), &index_json)
        .with_context(|| format!("{name}: index.json"))?;
    let Some(root) = top.entries().into_iter().next() else {
        bail!("{name}: index.json lists no image");
    };
    let root_doc = docs
        .get(&root.digest)
        .with_context(|| format!("{name}: blob {} is missing", root.digest))?;
    let root_manifest = Manifest::parse(Some(&root.media_type), root_doc)
        .with_context(|| format!("{name}: {}", root.digest))?;
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
        bail!("{name}: one image manifest for several platforms");
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
pub fn merge(
    parts: &[Part],
    order: &[Platform],
    name: Option<&ImageRef>,
    dest: &Path,
) -> anyhow::Result<Merged> {
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
            .with_context(|| format!("no {t} image among the builders' exports"))?;
        entries.push(d.clone());
    }
    // What the joined index reaches: each manifest, its config and layers.
    let mut reachable: BTreeSet<Digest> = BTreeSet::new();
    for e in &entries {
        reachable.insert(e.digest.clone());
        let doc = docs.get(&e.digest).with_context(|| {
            format!(
                "the {} manifest {} is missing",
                e.platform
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                e.digest
            )
        })?;
        let m = Manifest::parse(Some(&e.media_type), doc)
            .with_context(|| format!("manifest {}", e.digest))?;
        reachable.extend(m.config().map(|c| c.digest));
        reachable.extend(m.layers().into_iter().map(|l| l.digest));
    }
    let index = oci_index(&entries).context("cannot write the image index")?;
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
    .context("cannot write index.json")?;

    let dir = parent(dest);
    let mut tmp = tempfile::Builder::new()
        .prefix(".kiln-oci-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    let mut written: BTreeSet<Digest> = BTreeSet::new();
    {
        let mut out = tar::Builder::new(tmp.as_file_mut());
        let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
        out.append_data(&mut header(layout.len() as u64), "oci-layout", &layout[..])?;
        out.append_data(&mut header(top.len() as u64), "index.json", top.as_slice())?;
        let path = |d: &Digest| format!("blobs/sha256/{}", d.hex());
        out.append_data(
            &mut header(index.len() as u64),
            path(&index_digest),
            index.as_slice(),
        )?;
        written.insert(index_digest.clone());
        for part in parts {
            let name = part.tar.display().to_string();
            let file =
                std::fs::File::open(&part.tar).with_context(|| format!("cannot open {name}"))?;
            let mut archive = tar::Archive::new(file);
            for entry in archive
                .entries()
                .with_context(|| format!("reading {name}"))?
            {
                let entry = entry.with_context(|| format!("reading {name}"))?;
                if !entry.header().entry_type().is_file() {
                    continue;
                }
                let p = entry_path(&entry).with_context(|| format!("reading {name}"))?;
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
                    .with_context(|| format!("copying {p} from {name}"))?;
                if hex::encode(hashing.hasher.finalize()) != d.hex() {
                    bail!("{name}: blob {p} does not match its digest");
                }
                written.insert(d);
            }
        }
        out.finish()
            .with_context(|| format!("cannot write {}", dest.display()))?;
    }
    if let Some(missing) = reachable.iter().find(|d| !written.contains(d)) {
        bail!("blob {missing} is in no builder's export");
    }
    tmp.as_file_mut().flush()?;
    tmp.as_file().sync_all()?;
    Ok(Merged {
        digest: index_digest,
        tmp,
        dest: dest.to_path_buf(),
    })
}

#[cfg(test)]
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
            .err()
            .expect("no arm64")
            .to_string();
        assert!(e.contains("no linux/arm64 image"), "{e}");

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
        .err()
        .expect("corrupt")
        .to_string();
        assert!(e.contains("does not match its digest"), "{e}");
        assert!(!out.exists());
        assert_eq!(leftovers(tmp.path()), 0);
        assert!(check_dest(&tmp.path().join("no/such/dir/x.tar")).is_err());
        assert!(check_dest(&out).is_ok());
    }
}
