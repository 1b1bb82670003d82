//! Media types of the OCI image spec and of Docker's image manifest v2,
//! schema 2, as registries and BuildKit send them.
//!
//! The two families describe the same shapes: an index (Docker: manifest
//! list) points at per-platform manifests, a manifest points at one config
//! and its layers. kiln reads both and writes OCI.

/// OCI image index (multi-platform).
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI layer, uncompressed tar.
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// OCI layer, gzip-compressed tar.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI layer, zstd-compressed tar.
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// OCI empty JSON descriptor content (`{}`).
pub const OCI_EMPTY_JSON: &str = "application/vnd.oci.empty.v1+json";

/// Docker manifest list (multi-platform), schema 2.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker layer, uncompressed tar.
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// Docker layer, gzip-compressed tar.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker layer, zstd-compressed tar (as BuildKit writes it for Docker media types).
pub const DOCKER_LAYER_ZSTD: &str = "application/vnd.docker.image.rootfs.diff.tar.zstd";
/// Docker foreign (non-distributable) layer.
pub const DOCKER_FOREIGN_LAYER: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

/// Docker image manifest, schema 1 (signed). Recognised only to refuse it.
pub const DOCKER_MANIFEST_V1_SIGNED: &str =
    "application/vnd.docker.distribution.manifest.v1+prettyjws";
/// Docker image manifest, schema 1 (unsigned). Recognised only to refuse it.
pub const DOCKER_MANIFEST_V1: &str = "application/vnd.docker.distribution.manifest.v1+json";

/// What kiln asks a registry for when it fetches a manifest, most preferred
/// first (sent as one `Accept` header).
pub const MANIFEST_ACCEPT: [&str; 4] = [
    OCI_INDEX,
    DOCKER_MANIFEST_LIST,
    OCI_MANIFEST,
    DOCKER_MANIFEST,
];

/// Whether `media_type` is an OCI index or a Docker manifest list.
pub fn is_index(media_type: &str) -> bool {
    matches!(base(media_type), OCI_INDEX | DOCKER_MANIFEST_LIST)
}

/// Whether `media_type` is an OCI or Docker schema 2 image manifest.
pub fn is_manifest(media_type: &str) -> bool {
    matches!(base(media_type), OCI_MANIFEST | DOCKER_MANIFEST)
}

/// Whether `media_type` is an OCI or Docker image config.
pub fn is_config(media_type: &str) -> bool {
    matches!(base(media_type), OCI_CONFIG | DOCKER_CONFIG)
}

/// Whether `media_type` is a Docker schema 1 manifest, which kiln refuses.
pub fn is_schema1(media_type: &str) -> bool {
    matches!(
        base(media_type),
        DOCKER_MANIFEST_V1 | DOCKER_MANIFEST_V1_SIGNED
    )
}

/// The media type without parameters (`; charset=utf-8`) or surrounding
/// blanks, as a `Content-Type` header may carry them.
pub fn base(media_type: &str) -> &str {
    media_type.split(';').next().unwrap_or_default().trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_media_types() {
        assert!(is_index(OCI_INDEX));
        assert!(is_index(DOCKER_MANIFEST_LIST));
        assert!(is_manifest(OCI_MANIFEST));
        assert!(is_manifest(&format!("{DOCKER_MANIFEST}; charset=utf-8")));
        assert!(!is_manifest(OCI_INDEX));
        assert!(is_config(DOCKER_CONFIG));
        assert!(is_schema1(DOCKER_MANIFEST_V1_SIGNED));
        assert_eq!(base(" application/json ; q=1"), "application/json");
    }
}
