//! Naming the image in a docker-archive.
//!
//! The Docker Engine's `GET /images/get` (`docker save`) writes a
//! docker-archive that is also an OCI layout: `index.json` and `blobs/`,
//! plus `manifest.json` (`[{"Config", "RepoTags", "Layers"}]`) and
//! `repositories` (`{"repo": {"tag": "<image id>"}}`). Each of the three
//! names the image; the rest is copied as it is.

use std::io::{Read, Write};

use serde_json::{Map, Value};

use super::{ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, INDEX_FILE};
use crate::error::ArchiveError;
use crate::reference::ImageRef;

const MANIFEST_FILE: &str = "manifest.json";
const REPOSITORIES_FILE: &str = "repositories";

/// Copies the docker-archive `input` to `output`, naming its image `name`:
/// `RepoTags` in `manifest.json` (the short name and tag, as
/// `docker save` writes it), the name annotations in `index.json`
/// ([`ANNOTATION_IMAGE_NAME`], [`ANNOTATION_REF_NAME`]) and
/// `repositories`. Without a name the image is left unnamed: `RepoTags` is
/// `null`, the annotations and `repositories` are dropped. Every other
/// entry, headers included, is copied unchanged.
///
/// The documents are rewritten as `serde_json` maps (keys sorted) so that
/// fields kiln does not know survive.
///
/// ```
/// use kiln_image::layout::rename_docker_archive;
/// use kiln_image::ImageRef;
///
/// # let mut saved = tar::Builder::new(Vec::new());
/// # let manifest = br#"[{"Config":"blobs/sha256/cc","RepoTags":["tmp:latest"],"Layers":[]}]"#;
/// # let mut h = tar::Header::new_gnu();
/// # h.set_size(manifest.len() as u64);
/// # h.set_cksum();
/// # saved.append_data(&mut h, "manifest.json", &manifest[..])?;
/// # let saved = saved.into_inner()?;
/// // `saved` is what `docker save` wrote.
/// let name = ImageRef::parse("127.0.0.1:5000/app:v1")?;
/// let mut renamed = Vec::new();
/// rename_docker_archive(saved.as_slice(), &mut renamed, Some(&name))?;
/// # let text = String::from_utf8_lossy(&renamed);
/// # assert!(text.contains(r#""RepoTags":["127.0.0.1:5000/app:v1"]"#));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`ArchiveError::Tar`] when `input` is not a tar archive,
/// [`ArchiveError::EntryPath`] and [`ArchiveError::ReadEntry`] for an
/// entry that cannot be read, [`ArchiveError::Malformed`] for a
/// `manifest.json` or `index.json` of the wrong shape, and
/// [`ArchiveError::Write`] or [`ArchiveError::Finish`] when `output`
/// cannot be written.
pub fn rename_docker_archive<R: Read, W: Write>(
    input: R,
    output: W,
    name: Option<&ImageRef>,
) -> Result<(), ArchiveError> {
    let mut archive = tar::Archive::new(input);
    let mut builder = tar::Builder::new(output);
    builder.mode(tar::HeaderMode::Complete);
    for entry in archive
        .entries()
        .map_err(|source| ArchiveError::Tar { source })?
    {
        let mut entry = entry.map_err(|source| ArchiveError::Tar { source })?;
        let path = entry
            .path()
            .map_err(|source| ArchiveError::EntryPath { source })?
            .to_string_lossy()
            .to_string();
        let mut header = entry.header().clone();
        let rewritten = match path.trim_start_matches("./") {
            MANIFEST_FILE | INDEX_FILE | REPOSITORIES_FILE => {
                let mut data = Vec::new();
                entry
                    .read_to_end(&mut data)
                    .map_err(|source| ArchiveError::ReadEntry {
                        entry: path.clone(),
                        source,
                    })?;
                Some(rewrite(&path, &data, name)?)
            }
            _ => None,
        };
        match rewritten {
            Some(Some(data)) => {
                header.set_size(data.len() as u64);
                header.set_cksum();
                builder.append(&header, data.as_slice())
            }
            // Dropped (`repositories` without a name).
            Some(None) => continue,
            None => builder.append(&header, &mut entry),
        }
        .map_err(|source| ArchiveError::Write {
            entry: path.clone(),
            source,
        })?;
    }
    builder
        .finish()
        .map_err(|source| ArchiveError::Finish { source })?;
    Ok(())
}

/// The new contents of the naming document at `path`; `None` drops it.
fn rewrite(
    path: &str,
    data: &[u8],
    name: Option<&ImageRef>,
) -> Result<Option<Vec<u8>>, ArchiveError> {
    let malformed = |source| ArchiveError::Malformed {
        entry: path.to_string(),
        source,
    };
    // What `docker save` puts in `RepoTags`: the short name and the tag.
    let full = name.map(|n| format!("{}:{}", n.familiar_name(), tag(n)));
    match path.trim_start_matches("./") {
        MANIFEST_FILE => {
            let mut images: Vec<Map<String, Value>> =
                serde_json::from_slice(data).map_err(malformed)?;
            for image in &mut images {
                let tags = match &full {
                    Some(f) => Value::Array(vec![f.clone().into()]),
                    None => Value::Null,
                };
                image.insert("RepoTags".into(), tags);
            }
            encode(path, &images).map(Some)
        }
        INDEX_FILE => {
            let mut index: Map<String, Value> = serde_json::from_slice(data).map_err(malformed)?;
            let mut manifests: Vec<Map<String, Value>> =
                serde_json::from_value(index.remove("manifests").unwrap_or(Value::Null))
                    .map_err(malformed)?;
            for m in &mut manifests {
                let mut annotations: Map<String, Value> = match m.remove("annotations") {
                    Some(a) => serde_json::from_value(a).map_err(malformed)?,
                    None => Map::new(),
                };
                annotations.remove(ANNOTATION_IMAGE_NAME);
                annotations.remove(ANNOTATION_REF_NAME);
                if let (Some(f), Some(n)) = (&full, name) {
                    annotations.insert(ANNOTATION_IMAGE_NAME.into(), f.clone().into());
                    annotations.insert(ANNOTATION_REF_NAME.into(), tag(n).into());
                }
                if !annotations.is_empty() {
                    m.insert("annotations".into(), Value::Object(annotations));
                }
            }
            index.insert(
                "manifests".into(),
                Value::Array(manifests.into_iter().map(Value::Object).collect()),
            );
            encode(path, &index).map(Some)
        }
        _ => {
            // `repositories`: {"repo": {"tag": "<image id>"}}, kept only
            // with a name and an image id to point it at.
            let (Some(n), Ok(v)) = (name, serde_json::from_slice::<Value>(data)) else {
                return Ok(None);
            };
            let id = v
                .as_object()
                .and_then(|o| o.values().next())
                .and_then(|t| t.as_object())
                .and_then(|t| t.values().next())
                .cloned();
            let Some(id) = id else { return Ok(None) };
            let mut tags = Map::new();
            tags.insert(tag(n).to_string(), id);
            let mut repos = Map::new();
            repos.insert(n.familiar_name(), Value::Object(tags));
            encode(path, &repos).map(Some)
        }
    }
}

fn encode<T: serde::Serialize>(path: &str, value: &T) -> Result<Vec<u8>, ArchiveError> {
    serde_json::to_vec(value).map_err(|source| ArchiveError::Encode {
        entry: path.to_string(),
        source,
    })
}

fn tag(name: &ImageRef) -> &str {
    name.tag().unwrap_or("latest")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// A docker-archive like the Engine's `docker save` (OCI layout +
    /// manifest.json + repositories).
    fn saved(name: &str) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut add = |path: &str, data: &[u8]| {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(1_700_000_000);
            h.set_cksum();
            b.append_data(&mut h, path, data).expect("append");
        };
        add("blobs/sha256/aa", b"layer");
        add(
            "index.json",
            format!(r#"{{"schemaVersion":2,"manifests":[{{"digest":"sha256:bb","size":1,"annotations":{{"io.containerd.image.name":"docker.io/{name}","org.opencontainers.image.ref.name":"latest"}}}}]}}"#).as_bytes(),
        );
        add(
            "manifest.json",
            format!(r#"[{{"Config":"blobs/sha256/cc","RepoTags":["{name}"],"Layers":["blobs/sha256/aa"],"LayerSources":{{}}}}]"#).as_bytes(),
        );
        add(
            "repositories",
            format!(r#"{{"{name}":{{"latest":"cc"}}}}"#).as_bytes(),
        );
        b.into_inner().expect("tar")
    }

    fn entries(tar_bytes: &[u8]) -> BTreeMap<String, (tar::Header, String)> {
        let mut a = tar::Archive::new(tar_bytes);
        a.entries()
            .expect("entries")
            .map(|e| {
                let mut e = e.expect("entry");
                let p = e.path().expect("path").to_string_lossy().to_string();
                let h = e.header().clone();
                let mut s = String::new();
                e.read_to_string(&mut s).expect("read");
                (p, (h, s))
            })
            .collect()
    }

    fn text(e: &BTreeMap<String, (tar::Header, String)>, path: &str) -> String {
        e[path].1.clone()
    }

    #[test]
    fn renames_a_docker_archive() {
        let input = saved("kiln-export/tmp");
        let name = ImageRef::parse("127.0.0.1:5000/app:v1").expect("ref");
        let mut named = Vec::new();
        rename_docker_archive(input.as_slice(), &mut named, Some(&name)).expect("rename");
        let e = entries(&named);
        let before = entries(&input);
        assert_eq!(
            text(&e, "blobs/sha256/aa"),
            "layer",
            "blobs are copied as they are"
        );
        assert_eq!(
            e["blobs/sha256/aa"].0.as_bytes()[..],
            before["blobs/sha256/aa"].0.as_bytes()[..],
            "headers too"
        );
        assert_eq!(e["manifest.json"].0.mtime().expect("mtime"), 1_700_000_000);
        assert_eq!(
            text(&e, "manifest.json"),
            r#"[{"Config":"blobs/sha256/cc","LayerSources":{},"Layers":["blobs/sha256/aa"],"RepoTags":["127.0.0.1:5000/app:v1"]}]"#,
            "unknown fields survive, keys sorted"
        );
        assert_eq!(
            text(&e, "index.json"),
            r#"{"manifests":[{"annotations":{"io.containerd.image.name":"127.0.0.1:5000/app:v1","org.opencontainers.image.ref.name":"v1"},"digest":"sha256:bb","size":1}],"schemaVersion":2}"#
        );
        assert_eq!(
            text(&e, "repositories"),
            r#"{"127.0.0.1:5000/app":{"v1":"cc"}}"#
        );
        assert!(!e.values().any(|(_, v)| v.contains("kiln-export")));

        // A Docker Hub name is written short; no tag means latest.
        let hub = ImageRef::parse("app").expect("ref");
        let mut out = Vec::new();
        rename_docker_archive(input.as_slice(), &mut out, Some(&hub)).expect("rename");
        let e = entries(&out);
        assert!(text(&e, "manifest.json").contains(r#""RepoTags":["app:latest"]"#));
        assert_eq!(text(&e, "repositories"), r#"{"app":{"latest":"cc"}}"#);
    }

    #[test]
    fn unnames_a_docker_archive() {
        let input = saved("kiln-export/tmp");
        let mut unnamed = Vec::new();
        rename_docker_archive(input.as_slice(), &mut unnamed, None).expect("unname");
        let e = entries(&unnamed);
        assert!(!e.contains_key("repositories"));
        assert!(text(&e, "manifest.json").contains(r#""RepoTags":null"#));
        assert!(
            !text(&e, "index.json").contains("annotations"),
            "{}",
            text(&e, "index.json")
        );
        assert_eq!(text(&e, "blobs/sha256/aa"), "layer");
    }

    fn archive_with(path: &str, data: &[u8]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append_data(&mut h, path, data).expect("append");
        b.into_inner().expect("tar")
    }

    #[test]
    fn a_malformed_naming_document_is_refused() {
        let name = ImageRef::parse("a:b").expect("ref");
        for (path, data) in [
            ("manifest.json", &b"{{{"[..]),
            ("manifest.json", br#"{"RepoTags":[]}"#),
            ("manifest.json", b"[1]"),
            ("index.json", br#"{"schemaVersion":2}"#),
            ("index.json", br#"{"manifests":[{"annotations":null}]}"#),
            ("index.json", b"[]"),
        ] {
            let bad = archive_with(path, data);
            let e = rename_docker_archive(bad.as_slice(), Vec::new(), Some(&name)).expect_err(path);
            assert!(
                matches!(&e, ArchiveError::Malformed { entry, .. } if entry == path),
                "{path}: {e:?}"
            );
            assert!(e.to_string().contains(&format!("malformed {path}")), "{e}");
        }
        // An unreadable `repositories` is dropped, not refused: the other
        // two documents name the image.
        let odd = archive_with("repositories", b"not json");
        let mut out = Vec::new();
        rename_docker_archive(odd.as_slice(), &mut out, Some(&name)).expect("dropped");
        assert!(entries(&out).is_empty());
    }

    #[test]
    fn what_is_not_a_tar_archive_is_refused() {
        let e = rename_docker_archive(&[1u8; 700][..], Vec::new(), None).expect_err("not tar");
        assert!(matches!(e, ArchiveError::Tar { .. }), "{e:?}");
    }
}
