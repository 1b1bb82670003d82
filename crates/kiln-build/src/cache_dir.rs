//! `type=local` cache directories: OCI layouts whose `index.json` names the
//! cache manifest by tag (`latest` unless `tag=` says otherwise), as
//! BuildKit's Go client keeps them, so a directory written by kiln is read
//! by `buildctl`/buildx and the other way round. The daemon writes the blobs
//! through the session; the client records the manifest once the build
//! succeeded.
//!
//! ```
//! let dir = tempfile::tempdir()?;
//! let desc = r#"{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":0}"#;
//! kiln_build::cache_dir::record(dir.path(), desc, "latest")?;
//! let d = kiln_build::cache_dir::tagged(dir.path(), "latest")?;
//! assert_eq!(d.to_string(), "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::Path;

use kiln_image::Digest;
use serde_json::{json, Value};

use crate::error::BuildError;

/// The annotation `index.json` names a manifest's tag with.
const REF_NAME: &str = "org.opencontainers.image.ref.name";

fn index(dir: &Path) -> Result<Value, BuildError> {
    let path = dir.join("index.json");
    match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| {
            BuildError::invalid(
                format!("the cache directory {}", dir.display()),
                format!("its index.json is not JSON: {e}"),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Ok(json!({"schemaVersion": 2, "manifests": []}))
        }
        Err(e) => Err(BuildError::file("read", path, e)),
    }
}

/// The digest of the cache manifest tagged `tag` in `dir`.
///
/// # Errors
/// [`BuildError::Invalid`] naming `--cache-from` when `dir` has no such tag
/// (or no index.json), or its digest is not one.
pub fn tagged(dir: &Path, tag: &str) -> Result<Digest, BuildError> {
    let what = || format!("--cache-from type=local,src={}", dir.display());
    let idx = index(dir)?;
    let found = idx["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["annotations"][REF_NAME] == tag)
        .and_then(|m| m["digest"].as_str())
        .ok_or_else(|| {
            BuildError::invalid(
                what(),
                format!("its index.json tags no cache {tag:?}: export one with --cache-to type=local,dest={}", dir.display()),
            )
        })?;
    found
        .parse()
        .map_err(|e| BuildError::invalid(what(), format!("{found:?} is not a digest: {e}")))
}

/// Records the exported cache manifest (`descriptor`, the JSON BuildKit
/// reports as `cache.manifest`) under `tag` in `dir`'s index.json, replacing
/// the entry the tag named before; writes the `oci-layout` marker.
///
/// # Errors
/// [`BuildError::Invalid`] for a descriptor that is not JSON,
/// [`BuildError::File`] when `dir` cannot be written.
pub fn record(dir: &Path, descriptor: &str, tag: &str) -> Result<(), BuildError> {
    let what = || format!("--cache-to type=local,dest={}", dir.display());
    let mut desc: Value = serde_json::from_str(descriptor).map_err(|e| {
        BuildError::invalid(
            what(),
            format!("the daemon's cache manifest is not JSON: {e}"),
        )
    })?;
    desc["annotations"][REF_NAME] = Value::String(tag.to_string());
    let mut idx = index(dir)?;
    let mut manifests: Vec<Value> = idx["manifests"].as_array().cloned().unwrap_or_default();
    manifests.retain(|m| m["annotations"][REF_NAME] != tag);
    manifests.push(desc);
    idx["manifests"] = Value::Array(manifests);
    std::fs::create_dir_all(dir).map_err(|e| BuildError::file("create", dir, e))?;
    crate::write_atomic(
        &dir.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    let text = serde_json::to_vec(&idx).map_err(|e| BuildError::invalid(what(), e.to_string()))?;
    crate::write_atomic(&dir.join("index.json"), &text)?;
    // The session's leftover ingest directory, when empty.
    let _ = std::fs::remove_dir(dir.join("ingest"));
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn desc(d: &str) -> String {
        format!(
            r#"{{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"{d}","size":12}}"#
        )
    }

    #[test]
    fn a_tag_is_replaced_and_other_tags_kept() {
        let dir = tempfile::tempdir().unwrap();
        let err = tagged(dir.path(), "latest").unwrap_err().to_string();
        assert!(
            err.contains("--cache-from") && err.contains("--cache-to type=local"),
            "{err}"
        );
        record(dir.path(), &desc(A), "latest").unwrap();
        record(dir.path(), &desc(A), "main").unwrap();
        record(dir.path(), &desc(B), "latest").unwrap();
        assert_eq!(tagged(dir.path(), "latest").unwrap().to_string(), B);
        assert_eq!(tagged(dir.path(), "main").unwrap().to_string(), A);
        let idx: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("index.json")).unwrap()).unwrap();
        assert_eq!(idx["manifests"].as_array().unwrap().len(), 2);
        assert!(dir.path().join("oci-layout").is_file());
        assert!(record(dir.path(), "not json", "latest").is_err());
    }
}
