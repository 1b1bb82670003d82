//! Layout tarballs for the tests of this module.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use crate::digest::Digest;
use crate::manifest::Descriptor;
use crate::media_type;

/// The files of a layout, and the descriptor `index.json` names.
pub(crate) struct LayoutFiles {
    pub(crate) files: Vec<(String, Vec<u8>)>,
    pub(crate) root: Descriptor,
}

impl LayoutFiles {
    /// Points `index.json` at another document.
    pub(crate) fn set_index_json(&mut self, digest: &Digest, media_type: &str, size: usize) {
        for (p, data) in &mut self.files {
            if p == "index.json" {
                *data = index_json(digest, media_type, size);
            }
        }
    }
}

/// Adds `data` as a blob.
pub(crate) fn blob(files: &mut Vec<(String, Vec<u8>)>, data: Vec<u8>) -> Digest {
    let d = Digest::sha256_of(&data);
    files.push((format!("blobs/sha256/{}", d.hex()), data));
    d
}

fn index_json(digest: &Digest, media_type: &str, size: usize) -> Vec<u8> {
    format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{media_type}","digest":"{digest}","size":{size}}}]}}"#
    )
    .into_bytes()
}

/// A layout with one single-platform (`linux/<arch>`) image whose only
/// layer is `layer` (bytes, not a real tar: nothing here looks inside),
/// plus an unreferenced blob.
pub(crate) fn layout_files(layer: &[u8], arch: &str) -> LayoutFiles {
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
    files.push((
        "index.json".into(),
        index_json(&m, media_type::OCI_MANIFEST, manifest.len()),
    ));
    files.push((
        "oci-layout".into(),
        br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
    ));
    LayoutFiles {
        files,
        root: Descriptor {
            media_type: media_type::OCI_MANIFEST.into(),
            digest: m,
            size: manifest.len() as u64,
            platform: None,
        },
    }
}

/// An OCI index of `linux/<arch>` manifests.
pub(crate) fn index_of(entries: &[(Descriptor, &str)]) -> Vec<u8> {
    let manifests: Vec<String> = entries
        .iter()
        .map(|(d, arch)| {
            format!(
                r#"{{"mediaType":"{}","digest":"{}","size":{},"platform":{{"architecture":"{arch}","os":"linux"}}}}"#,
                d.media_type, d.digest, d.size
            )
        })
        .collect();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{}]}}"#,
        media_type::OCI_INDEX,
        manifests.join(",")
    )
    .into_bytes()
}

/// Writes `files` as a tarball (with a directory entry, as containerd's
/// exporter writes them).
pub(crate) fn write_tar(path: &Path, files: &[(String, Vec<u8>)]) {
    let mut b = tar::Builder::new(std::fs::File::create(path).expect("create"));
    let mut dir = tar::Header::new_ustar();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_size(0);
    dir.set_mode(0o755);
    b.append_data(&mut dir, "blobs/sha256/", std::io::empty())
        .expect("dir");
    for (p, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, p, data.as_slice()).expect("append");
    }
    b.finish().expect("finish");
}

/// Writes `files` and then one entry named `name` (written as is, so it
/// may be absolute or hold `..`) of type `kind` linking to `link`.
pub(crate) fn write_tar_with(
    path: &Path,
    files: &[(String, Vec<u8>)],
    name: &str,
    kind: tar::EntryType,
    link: &str,
) {
    let mut b = tar::Builder::new(std::fs::File::create(path).expect("create"));
    for (p, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, p, data.as_slice()).expect("append");
    }
    let mut h = tar::Header::new_old();
    h.set_entry_type(kind);
    h.set_size(0);
    h.set_mode(0o644);
    let old = h.as_old_mut();
    old.name[..name.len()].copy_from_slice(name.as_bytes());
    old.linkname[..link.len()].copy_from_slice(link.as_bytes());
    h.set_cksum();
    b.append(&h, std::io::empty()).expect("append raw");
    b.finish().expect("finish");
}

/// A tarball's regular files by path.
pub(crate) fn entries(tar_path: &Path) -> BTreeMap<String, Vec<u8>> {
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

/// How many temporary files a merge left in `dir`.
pub(crate) fn leftovers(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .expect("ls")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(".kiln-oci-"))
        .count()
}
