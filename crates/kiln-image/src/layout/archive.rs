//! Renaming the one image of a docker-archive.

use std::io::{Read, Write};

use super::LayoutError;
use crate::ImageRef;

/// Copies a docker-archive (which the Engine writes as an OCI layout plus
/// `manifest.json`) naming its one image `name`: `RepoTags` in
/// `manifest.json`, the name annotations in `index.json`, and `repositories`.
/// Without a name the image is left unnamed.
///
/// # Errors
/// A malformed archive or a failed write.
pub fn rename_archive<R: Read, W: Write>(
    input: R,
    output: W,
    name: Option<&ImageRef>,
) -> Result<(), LayoutError> {
    let not_tar = |e| LayoutError::io("the saved image is not a tar archive", e);
    let mut archive = tar::Archive::new(input);
    let mut builder = tar::Builder::new(output);
    builder.mode(tar::HeaderMode::Complete);
    for entry in archive.entries().map_err(not_tar)? {
        let mut entry = entry.map_err(not_tar)?;
        let path = entry.path().map_err(not_tar)?.to_string_lossy().to_string();
        let mut header = entry.header().clone();
        let rewritten = match path.trim_start_matches("./") {
            "manifest.json" | "index.json" | "repositories" => {
                let mut data = Vec::new();
                entry
                    .read_to_end(&mut data)
                    .map_err(|e| LayoutError::io(format!("cannot read {path}"), e))?;
                Some(rewrite_json(&path, &data, name)?)
            }
            _ => None,
        };
        match rewritten {
            Some(Some(data)) => {
                header.set_size(data.len() as u64);
                header.set_cksum();
                builder.append(&header, data.as_slice())
            }
            Some(None) => continue, // dropped (`repositories` without a name)
            None => builder.append(&header, &mut entry),
        }
        .map_err(|e| LayoutError::io(format!("cannot write {path}"), e))?;
    }
    builder
        .finish()
        .map_err(|e| LayoutError::io("cannot finish the archive", e))?;
    Ok(())
}

/// The new contents of a naming file; `None` drops it.
fn rewrite_json(
    path: &str,
    data: &[u8],
    name: Option<&ImageRef>,
) -> Result<Option<Vec<u8>>, LayoutError> {
    let bad = |reason: &str| LayoutError::Malformed {
        entry: path.to_string(),
        reason: reason.to_string(),
    };
    let json = |e: serde_json::Error| bad(&e.to_string());
    let full = name
        .as_ref()
        .map(|n| format!("{}:{}", n.familiar_name(), n.tag().unwrap_or("latest")));
    match path.trim_start_matches("./") {
        "manifest.json" => {
            let mut v: serde_json::Value = serde_json::from_slice(data).map_err(json)?;
            for m in v.as_array_mut().ok_or_else(|| bad("not a list"))? {
                m["RepoTags"] = match &full {
                    Some(f) => serde_json::json!([f]),
                    None => serde_json::Value::Null,
                };
            }
            Ok(Some(serde_json::to_vec(&v).map_err(json)?))
        }
        "index.json" => {
            let mut v: serde_json::Value = serde_json::from_slice(data).map_err(json)?;
            let manifests = v["manifests"]
                .as_array_mut()
                .ok_or_else(|| bad("no manifests list"))?;
            for m in manifests {
                let ann = m
                    .as_object_mut()
                    .ok_or_else(|| bad("a manifest is not an object"))?
                    .entry("annotations")
                    .or_insert_with(|| serde_json::json!({}));
                let Some(ann) = ann.as_object_mut() else {
                    return Err(bad("annotations are not an object"));
                };
                ann.remove("io.containerd.image.name");
                ann.remove("org.opencontainers.image.ref.name");
                if let (Some(f), Some(n)) = (&full, &name) {
                    ann.insert("io.containerd.image.name".into(), f.clone().into());
                    ann.insert(
                        "org.opencontainers.image.ref.name".into(),
                        n.tag().unwrap_or("latest").into(),
                    );
                }
                if ann.is_empty() {
                    if let Some(o) = m.as_object_mut() {
                        o.remove("annotations");
                    }
                }
            }
            Ok(Some(serde_json::to_vec(&v).map_err(json)?))
        }
        _ => {
            // `repositories`: {"repo": {"tag": "<image id>"}}
            let (Some(n), Ok(v)) = (&name, serde_json::from_slice::<serde_json::Value>(data))
            else {
                return Ok(None);
            };
            let id = v
                .as_object()
                .and_then(|o| o.values().next())
                .and_then(|t| t.as_object())
                .and_then(|t| t.values().next())
                .cloned();
            let Some(id) = id else { return Ok(None) };
            let mut tags = serde_json::Map::new();
            tags.insert(n.tag().unwrap_or("latest").to_string(), id);
            let mut repos = serde_json::Map::new();
            repos.insert(n.familiar_name(), serde_json::Value::Object(tags));
            Ok(Some(
                serde_json::to_vec(&serde_json::Value::Object(repos)).map_err(json)?,
            ))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A docker-archive like the Engine's `docker save` (OCI layout + manifest.json).
    fn saved(name: &str) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut add = |path: &str, data: &[u8]| {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, path, data).unwrap();
        };
        add("blobs/sha256/aa", b"layer");
        add(
            "index.json",
            format!(r#"{{"schemaVersion":2,"manifests":[{{"digest":"sha256:bb","size":1,"annotations":{{"io.containerd.image.name":"docker.io/{name}","org.opencontainers.image.ref.name":"latest"}}}}]}}"#).as_bytes(),
        );
        add(
            "manifest.json",
            format!(r#"[{{"Config":"blobs/sha256/cc","RepoTags":["{name}"],"Layers":["blobs/sha256/aa"]}}]"#).as_bytes(),
        );
        add(
            "repositories",
            format!(r#"{{"{name}":{{"latest":"cc"}}}}"#).as_bytes(),
        );
        b.into_inner().unwrap()
    }

    fn entries(tar_bytes: &[u8]) -> std::collections::BTreeMap<String, String> {
        let mut a = tar::Archive::new(tar_bytes);
        a.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let p = e.path().unwrap().to_string_lossy().to_string();
                let mut s = String::new();
                e.read_to_string(&mut s).unwrap();
                (p, s)
            })
            .collect()
    }

    #[test]
    fn saved_archives_are_renamed_or_unnamed() {
        let input = saved("kiln-export/tmp");
        let mut named = Vec::new();
        rename_archive(
            input.as_slice(),
            &mut named,
            Some(&ImageRef::parse("127.0.0.1:5000/app:v1").unwrap()),
        )
        .unwrap();
        let e = entries(&named);
        assert_eq!(
            e["blobs/sha256/aa"], "layer",
            "blobs are copied as they are"
        );
        assert!(
            e["manifest.json"].contains(r#""RepoTags":["127.0.0.1:5000/app:v1"]"#),
            "{}",
            e["manifest.json"]
        );
        assert!(e["index.json"].contains(r#""io.containerd.image.name":"127.0.0.1:5000/app:v1""#));
        assert!(e["index.json"].contains(r#""org.opencontainers.image.ref.name":"v1""#));
        assert_eq!(e["repositories"], r#"{"127.0.0.1:5000/app":{"v1":"cc"}}"#);
        assert!(!e.values().any(|v| v.contains("kiln-export")));

        let mut unnamed = Vec::new();
        rename_archive(input.as_slice(), &mut unnamed, None).unwrap();
        let e = entries(&unnamed);
        assert!(!e.contains_key("repositories"));
        assert!(e["manifest.json"].contains(r#""RepoTags":null"#));
        assert!(
            !e["index.json"].contains("annotations"),
            "{}",
            e["index.json"]
        );
    }

    #[test]
    fn a_broken_archive_is_an_error() {
        let mut out = Vec::new();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_cksum();
        b.append_data(&mut h, "manifest.json", &b"{{{"[..]).unwrap();
        let bad = b.into_inner().unwrap();
        let e = rename_archive(
            bad.as_slice(),
            &mut out,
            Some(&ImageRef::parse("a:b").unwrap()),
        )
        .unwrap_err();
        assert!(e.to_string().contains("manifest.json is malformed"), "{e}");
    }
}
