//! `--metadata-file` and `--iidfile`: what a build produced, in the JSON
//! `docker buildx build --metadata-file` writes, so CI steps written for
//! buildx read kiln's the same way.
//!
//! The exporters' own keys come through as BuildKit reports them
//! (`containerimage.digest`, `containerimage.config.digest`, `image.name`;
//! values that are base64-encoded JSON, like `containerimage.descriptor`,
//! decoded as buildx does). kiln's own facts sit under `kiln.`: the Go
//! release, the pinned builder and base images, and in a fanned-out build
//! each platform's manifest digest.
//!
//! ```
//! use kiln_build::metadata::Metadata;
//! let mut m = Metadata::default();
//! m.insert("containerimage.digest", "sha256:ab".into());
//! assert_eq!(m.image_id().as_deref(), Some("sha256:ab"));
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use kiln_client::kiln_proto::attrs::response;
use serde_json::{json, Value};

use crate::build::{Built, Joined, Plan};
use crate::error::BuildError;

/// The metadata of one build, key by key.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metadata(BTreeMap<String, Value>);

impl Metadata {
    /// Sets `key`.
    pub fn insert(&mut self, key: &str, value: Value) {
        self.0.insert(key.to_string(), value);
    }

    /// A key's value.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    /// The keys and values.
    #[must_use]
    pub fn as_map(&self) -> &BTreeMap<String, Value> {
        &self.0
    }

    /// What a build on one daemon reported, with kiln's facts.
    #[must_use]
    pub fn of_build(built: &Built) -> Metadata {
        let mut m = Metadata::default();
        for (k, v) in &built.exporter_response {
            m.insert(k, decode(v));
        }
        // An Engine push (classic image store) reports the registry's
        // digest, which the exporter did not know.
        if let Some(d) = &built.digest {
            m.insert(response::IMAGE_DIGEST, Value::String(d.clone()));
        }
        if let Some(desc) = &built.descriptor {
            m.insert(response::IMAGE_DESCRIPTOR, descriptor(desc));
        }
        m.kiln(&built.plan);
        m
    }

    /// What a fanned-out build joined, with kiln's facts.
    #[must_use]
    pub fn of_fanout(joined: &Joined, plan: Option<&Plan>) -> Metadata {
        let mut m = Metadata::default();
        if let Some(d) = &joined.digest {
            m.insert(response::IMAGE_DIGEST, Value::String(d.to_string()));
        }
        if let Some(desc) = &joined.descriptor {
            m.insert(response::IMAGE_DESCRIPTOR, descriptor(desc));
        }
        if !joined.names.is_empty() {
            m.insert(response::IMAGE_NAME, Value::String(joined.names.join(",")));
        }
        let platforms: serde_json::Map<String, Value> = joined
            .platform_digests
            .iter()
            .map(|(p, d)| (p.to_string(), Value::String(d.to_string())))
            .collect();
        if !platforms.is_empty() {
            m.insert("kiln.platforms", Value::Object(platforms));
        }
        if let Some(plan) = plan {
            m.kiln(plan);
        }
        m
    }

    fn kiln(&mut self, plan: &Plan) {
        self.insert("kiln.go-version", Value::String(plan.go_version.clone()));
        let image = |(r, d): &(kiln_image::ImageRef, Option<kiln_image::Digest>)| json!({"name": r.to_string(), "digest": d.as_ref().map(ToString::to_string)});
        self.insert("kiln.builder-image", image(&plan.builder));
        self.insert("kiln.base-image", image(&plan.base));
    }

    /// The image ID `--iidfile` holds: the config digest (what `docker
    /// images` shows) when the exporter reported one, else the image's
    /// manifest or index digest.
    #[must_use]
    pub fn image_id(&self) -> Option<String> {
        [response::IMAGE_CONFIG_DIGEST, response::IMAGE_DIGEST]
            .iter()
            .find_map(|k| self.get(k).and_then(Value::as_str).map(str::to_string))
    }

    /// Writes the JSON to `path` atomically (a temporary file beside it,
    /// renamed): a reader never sees half a file.
    ///
    /// # Errors
    /// [`BuildError::File`] when the directory cannot be written.
    pub fn write(&self, path: &Path) -> Result<(), BuildError> {
        let text = serde_json::to_string_pretty(&self.0)
            .map_err(|e| BuildError::invalid("--metadata-file", e.to_string()))?;
        crate::write_atomic(path, text.as_bytes())
    }

    /// Writes [`Metadata::image_id`] to `path` atomically.
    ///
    /// # Errors
    /// [`BuildError::Invalid`] when the build reported no image (no image
    /// output), [`BuildError::File`] when `path` cannot be written.
    pub fn write_iid(&self, path: &Path) -> Result<(), BuildError> {
        let id = self.image_id().ok_or_else(|| {
            BuildError::invalid(
                format!("--iidfile {}", path.display()),
                "the build exported no image (give -t NAME, --push or -o type=image|oci|docker)",
            )
        })?;
        crate::write_atomic(path, id.as_bytes())
    }
}

/// A value as buildx writes it: base64 of a JSON object decoded to the
/// object, anything else a string.
fn decode(v: &str) -> Value {
    base64::engine::general_purpose::STANDARD
        .decode(v)
        .ok()
        .and_then(|raw| serde_json::from_slice::<Value>(&raw).ok())
        .filter(Value::is_object)
        .unwrap_or_else(|| Value::String(v.to_string()))
}

fn descriptor(d: &kiln_image::manifest::Descriptor) -> Value {
    json!({"mediaType": d.media_type, "digest": d.digest.to_string(), "size": d.size})
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn base64_json_values_are_decoded_like_buildx() {
        let desc = r#"{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:ab","size":3}"#;
        let b64 = base64::engine::general_purpose::STANDARD.encode(desc);
        assert_eq!(decode(&b64)["size"], 3);
        // A digest is a string even though it is not base64 of JSON.
        assert_eq!(decode("sha256:ab"), Value::String("sha256:ab".into()));
        // base64 of a non-object stays the string it was.
        let n = base64::engine::general_purpose::STANDARD.encode("12");
        assert_eq!(decode(&n), Value::String(n.clone()));
    }

    #[test]
    fn iid_prefers_the_config_digest_and_files_are_whole() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = Metadata::default();
        let iid = dir.path().join("iid");
        let err = m.write_iid(&iid).unwrap_err();
        assert!(err.to_string().contains("exported no image"), "{err}");
        assert!(!iid.exists(), "no partial output");
        m.insert(response::IMAGE_DIGEST, "sha256:index".into());
        assert_eq!(m.image_id().as_deref(), Some("sha256:index"));
        m.insert(response::IMAGE_CONFIG_DIGEST, "sha256:config".into());
        m.write_iid(&iid).unwrap();
        assert_eq!(std::fs::read_to_string(&iid).unwrap(), "sha256:config");
        let file = dir.path().join("meta.json");
        m.write(&file).unwrap();
        let back: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(back["containerimage.digest"], "sha256:index");
        let bad = dir.path().join("missing/dir/meta.json");
        assert!(m.write(&bad).is_err());
    }
}
