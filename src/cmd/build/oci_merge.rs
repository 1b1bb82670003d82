//! Joining OCI layout tarballs exported by several daemons into one.
//!
//! Each fanned-out endpoint exports its platforms with the `oci` exporter;
//! this reads every tarball's blobs and its top manifest (an index of
//! platform manifests, or one image manifest whose platform the caller
//! knows), writes one OCI index of all platform manifests in the order
//! asked for, and writes a single layout tarball holding every blob once.
//! The output is deterministic (sorted entries, zero mtimes) and appears
//! only when complete (temporary file, then rename).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use kiln_image::manifest::{oci_index, Descriptor, Manifest};
use kiln_image::{media_type, Digest, ImageRef, Platform};

/// One exported tarball and the platforms it was built for.
pub struct Part {
    pub tar: PathBuf,
    pub platforms: Vec<Platform>,
}

/// Reads `part`'s blobs into `blobs` (checked against their digests) and
/// returns its platform manifests.
fn read_part(
    part: &Part,
    blobs: &mut BTreeMap<String, Vec<u8>>,
) -> anyhow::Result<Vec<Descriptor>> {
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
        let path = entry
            .path()
            .with_context(|| format!("reading {name}"))?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        let mut data = Vec::new();
        entry
            .read_to_end(&mut data)
            .with_context(|| format!("reading {path} in {name}"))?;
        if path == "index.json" {
            index_json = Some(data);
        } else if let Some(hex) = path.strip_prefix("blobs/sha256/") {
            let digest: Digest = format!("sha256:{hex}")
                .parse()
                .with_context(|| format!("{name}: bad blob name {path}"))?;
            if digest.recompute(&data) != digest {
                bail!("{name}: blob {path} does not match its digest");
            }
            blobs.insert(digest.to_string(), data);
        }
    }
    let index_json =
        index_json.with_context(|| format!("{name} has no index.json: not an OCI layout"))?;
    let top = Manifest::parse(Some(media_type::OCI_INDEX), &index_json)
        .with_context(|| format!("{name}: index.json"))?;
    let Some(root) = top.entries().into_iter().next() else {
        bail!("{name}: index.json lists no image");
    };
    let root_bytes = blobs
        .get(&root.digest.to_string())
        .with_context(|| format!("{name}: blob {} is missing", root.digest))?;
    let root_manifest = Manifest::parse(Some(&root.media_type), root_bytes)
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

/// Merges `parts` into one OCI layout tarball at `dest` whose index lists
/// `order`'s platforms in that order; `name` (if any) is recorded as the
/// image's ref name like BuildKit's `oci` exporter does. Returns the
/// digest of the merged index.
pub fn merge(
    parts: &[Part],
    order: &[Platform],
    name: Option<&ImageRef>,
    dest: &Path,
) -> anyhow::Result<Digest> {
    let mut blobs: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut found: Vec<Descriptor> = Vec::new();
    for p in parts {
        found.extend(read_part(p, &mut blobs)?);
    }
    let mut entries = Vec::new();
    for t in order {
        let d = found
            .iter()
            .find(|d| d.platform.as_ref() == Some(t))
            .with_context(|| format!("no {t} image among the builders' exports"))?;
        entries.push(d.clone());
    }
    let index = oci_index(&entries).context("cannot write the image index")?;
    let index_digest = Digest::sha256_of(&index);
    blobs.insert(index_digest.to_string(), index.clone());

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

    let dir = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".kiln-oci-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    {
        let mut b = tar::Builder::new(tmp.as_file_mut());
        let mut add = |path: &str, data: &[u8]| -> std::io::Result<()> {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(0);
            h.set_uid(0);
            h.set_gid(0);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, path, data)
        };
        add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        add("index.json", &top)?;
        for (digest, data) in &blobs {
            let hex = digest.trim_start_matches("sha256:");
            add(&format!("blobs/sha256/{hex}"), data)?;
        }
        b.finish()
            .with_context(|| format!("cannot write {}", dest.display()))?;
    }
    tmp.as_file_mut().flush()?;
    tmp.as_file().sync_all()?;
    tmp.persist(dest)
        .with_context(|| format!("cannot write {}", dest.display()))?;
    Ok(index_digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(blobs: &mut Vec<(String, Vec<u8>)>, data: Vec<u8>) -> Digest {
        let d = Digest::sha256_of(&data);
        blobs.push((format!("blobs/sha256/{}", d.hex()), data));
        d
    }

    /// A layout tarball with one single-platform image whose only layer is
    /// `layer` (bytes, not a real tar: merging never looks inside).
    fn part(dir: &Path, name: &str, layer: &[u8], arch: &str) -> PathBuf {
        let mut files = Vec::new();
        let l = blob(&mut files, layer.to_vec());
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
        let path = dir.join(name);
        let mut b = tar::Builder::new(std::fs::File::create(&path).expect("create"));
        for (p, data) in files {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, p, data.as_slice()).expect("append");
        }
        b.finish().expect("finish");
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

    #[test]
    fn merges_parts_into_one_index_in_order() {
        let tmp = tempfile::tempdir().expect("tmp");
        let amd = part(tmp.path(), "amd.tar", b"shared-layer", "amd64");
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
        let d = merge(&parts, &order, Some(&name), &out).expect("merge");
        let again = tmp.path().join("again.tar");
        assert_eq!(
            merge(&parts, &order, Some(&name), &again).expect("again"),
            d
        );
        assert_eq!(
            std::fs::read(&out).expect("r"),
            std::fs::read(&again).expect("r")
        );

        let files = entries(&out);
        let top: serde_json::Value = serde_json::from_slice(&files["index.json"]).expect("json");
        assert_eq!(top["manifests"][0]["digest"], d.to_string());
        assert_eq!(
            top["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
            "v1"
        );
        let index =
            Manifest::parse(None, &files[&format!("blobs/sha256/{}", d.hex())]).expect("idx");
        let plats: Vec<String> = index
            .platforms()
            .iter()
            .map(|(p, _)| p.to_string())
            .collect();
        assert_eq!(plats, ["linux/amd64", "linux/arm64"]);
        // Every blob the index reaches is in the tarball, once.
        for (_, m) in index.platforms() {
            assert!(files.contains_key(&format!("blobs/sha256/{}", m.digest.hex())));
        }
        assert!(files.contains_key("oci-layout"));
        // No temporary file left beside the output.
        let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
            .expect("ls")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with(".kiln-oci-"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn a_missing_platform_or_corrupt_blob_fails_without_output() {
        let tmp = tempfile::tempdir().expect("tmp");
        let amd = part(tmp.path(), "amd.tar", b"layer", "amd64");
        let parts = [Part {
            tar: amd.clone(),
            platforms: vec![Platform::linux_amd64()],
        }];
        let out = tmp.path().join("out.tar");
        let e = merge(&parts, &[Platform::linux_arm64()], None, &out)
            .expect_err("no arm64")
            .to_string();
        assert!(e.contains("no linux/arm64 image"), "{e}");
        assert!(!out.exists());

        // Flip a byte of a blob: caught by its digest.
        let mut files = entries(&amd);
        let key = files
            .keys()
            .find(|k| k.starts_with("blobs/"))
            .cloned()
            .expect("a blob");
        if let Some(b) = files.get_mut(&key) {
            b[0] ^= 1;
        }
        let bad = tmp.path().join("bad.tar");
        let mut b = tar::Builder::new(std::fs::File::create(&bad).expect("create"));
        for (p, data) in &files {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, p, data.as_slice()).expect("append");
        }
        b.finish().expect("finish");
        drop(b);
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
        assert!(e.contains("does not match its digest"), "{e}");
        assert!(!out.exists());
    }
}
