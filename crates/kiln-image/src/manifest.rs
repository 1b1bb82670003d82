//! Image manifests and indexes, OCI or Docker schema 2, read into one enum.
//!
//! ```
//! use kiln_image::manifest::Manifest;
//! use kiln_image::{media_type, Platform};
//!
//! let index = br#"{
//!   "schemaVersion": 2,
//!   "mediaType": "application/vnd.oci.image.index.v1+json",
//!   "manifests": [
//!     {"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 100,
//!      "digest": "sha256:1111111111111111111111111111111111111111111111111111111111111111",
//!      "platform": {"architecture": "amd64", "os": "linux"}},
//!     {"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 100,
//!      "digest": "sha256:2222222222222222222222222222222222222222222222222222222222222222",
//!      "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}}
//!   ]
//! }"#;
//! let manifest = Manifest::parse(Some(media_type::OCI_INDEX), index)?;
//! let arm64 = manifest.platform_manifest(&Platform::linux_arm64()).expect("arm64 entry");
//! assert!(arm64.digest.hex().starts_with("2222"));
//! assert!(manifest.platform_manifest(&"linux/s390x".parse()?).is_none());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::sync::Arc;

use oci_spec::image::{ImageIndex, ImageManifest};
use serde::de::IgnoredAny;
use serde::Deserialize;

use crate::digest::Digest;
use crate::error::{DigestError, ManifestError};
use crate::matcher::PlatformMatcher;
use crate::media_type;
use crate::platform::Platform;

/// The annotation BuildKit puts on attestation manifests inside an index.
const REFERENCE_TYPE_ANNOTATION: &str = "vnd.docker.reference.type";

/// What a descriptor says about content: its type, digest and size, and
/// the platform for an index entry. kiln's validated view of an OCI
/// descriptor.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Descriptor {
    /// The content's media type.
    pub media_type: String,
    /// The content's digest.
    pub digest: Digest,
    /// The content's size in bytes.
    pub size: u64,
    /// For an index entry, the platform of the manifest it points at.
    pub platform: Option<Platform>,
}

impl Descriptor {
    /// kiln's view of an `oci-spec` descriptor.
    ///
    /// # Errors
    /// A [`DigestError`] when the digest uses an algorithm kiln cannot verify.
    pub fn from_oci(descriptor: &oci_spec::image::Descriptor) -> Result<Self, DigestError> {
        Ok(Descriptor {
            media_type: descriptor.media_type().to_string(),
            digest: Digest::parse(descriptor.digest().as_ref())?,
            size: descriptor.size(),
            platform: descriptor.platform().as_ref().map(platform_from_oci),
        })
    }
}

/// kiln's (normalised) platform from an `oci-spec` one.
pub fn platform_from_oci(p: &oci_spec::image::Platform) -> Platform {
    Platform {
        architecture: p.architecture().to_string(),
        os: p.os().to_string(),
        os_version: p.os_version().clone(),
        os_features: p.os_features().clone().unwrap_or_default(),
        variant: p.variant().clone(),
    }
    .normalize()
}

/// A manifest document: an index of per-platform manifests, or one image
/// manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
// A manifest is read, inspected and dropped; boxing would only add noise
// to every match.
#[allow(clippy::large_enum_variant)]
pub enum Manifest {
    /// An OCI image index or Docker manifest list.
    Index(ImageIndex),
    /// An OCI or Docker schema 2 image manifest.
    Image(ImageManifest),
}

/// Just enough of a manifest to tell what it is.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    schema_version: Option<u32>,
    media_type: Option<String>,
    manifests: Option<IgnoredAny>,
    layers: Option<IgnoredAny>,
    config: Option<IgnoredAny>,
}

impl Manifest {
    /// Parses a manifest or index. `media_type` is the `Content-Type` the
    /// registry sent (or the descriptor's media type), if any; without a
    /// usable one the document's own `mediaType` decides, and without that
    /// its shape (`manifests` → index, `layers` → manifest), as the OCI
    /// spec allows.
    ///
    /// # Errors
    /// [`ManifestError::Schema1`] for Docker schema 1,
    /// [`ManifestError::UnsupportedMediaType`] for other kinds of content,
    /// [`ManifestError::UnknownKind`] when nothing tells the kind,
    /// [`ManifestError::Json`] for malformed JSON, and
    /// [`ManifestError::Digest`] for a descriptor kiln cannot verify.
    pub fn parse(media_type: Option<&str>, bytes: &[u8]) -> Result<Self, ManifestError> {
        let json_error = |media_type: &str, e| ManifestError::Json {
            media_type: media_type.to_string(),
            source: Arc::new(e),
        };
        let probe: Probe = serde_json::from_slice(bytes).map_err(|e| json_error("manifest", e))?;
        // Some registries answer with a generic Content-Type; only a
        // manifest type (or schema 1, to refuse it) from outside counts.
        let outside = media_type.map(media_type::base).filter(|t| {
            media_type::is_index(t) || media_type::is_manifest(t) || media_type::is_schema1(t)
        });
        let kind = match (outside, probe.media_type.as_deref()) {
            (Some(t), _) => t.to_string(),
            (None, Some(t)) => media_type::base(t).to_string(),
            (None, None) if probe.schema_version == Some(1) => {
                media_type::DOCKER_MANIFEST_V1.to_string()
            }
            (None, None) if probe.manifests.is_some() => media_type::OCI_INDEX.to_string(),
            (None, None) if probe.layers.is_some() || probe.config.is_some() => {
                media_type::OCI_MANIFEST.to_string()
            }
            (None, None) => return Err(ManifestError::UnknownKind),
        };
        if media_type::is_schema1(&kind) || probe.schema_version == Some(1) {
            return Err(ManifestError::Schema1 { media_type: kind });
        }
        let manifest = if media_type::is_index(&kind) {
            Manifest::Index(serde_json::from_slice(bytes).map_err(|e| json_error(&kind, e))?)
        } else if media_type::is_manifest(&kind) {
            Manifest::Image(serde_json::from_slice(bytes).map_err(|e| json_error(&kind, e))?)
        } else {
            return Err(ManifestError::UnsupportedMediaType { media_type: kind });
        };
        // Validate every digest now so the accessors below cannot fail.
        for d in manifest.oci_descriptors() {
            Digest::parse(d.digest().as_ref()).map_err(|source| ManifestError::Digest {
                media_type: kind.clone(),
                source,
            })?;
        }
        Ok(manifest)
    }

    fn oci_descriptors(&self) -> Vec<&oci_spec::image::Descriptor> {
        match self {
            Manifest::Index(index) => index.manifests().iter().collect(),
            Manifest::Image(image) => std::iter::once(image.config())
                .chain(image.layers())
                .collect(),
        }
    }

    /// Whether this is an index (or manifest list).
    pub fn is_index(&self) -> bool {
        matches!(self, Manifest::Index(_))
    }

    /// The media type the document declares, if it declares one.
    pub fn declared_media_type(&self) -> Option<String> {
        match self {
            Manifest::Index(index) => index.media_type().as_ref().map(ToString::to_string),
            Manifest::Image(image) => image.media_type().as_ref().map(ToString::to_string),
        }
    }

    /// An index's entries, in order; empty for an image manifest.
    pub fn entries(&self) -> Vec<Descriptor> {
        match self {
            Manifest::Index(index) => index
                .manifests()
                .iter()
                .filter_map(|d| Descriptor::from_oci(d).ok())
                .collect(),
            Manifest::Image(_) => Vec::new(),
        }
    }

    /// An index's runnable entries with their platforms, in order. Entries
    /// without a platform and BuildKit's attestation manifests
    /// (`unknown/unknown`) are left out.
    pub fn platforms(&self) -> Vec<(Platform, Descriptor)> {
        let Manifest::Index(index) = self else {
            return Vec::new();
        };
        index
            .manifests()
            .iter()
            .filter(|d| {
                d.annotations()
                    .as_ref()
                    .and_then(|a| a.get(REFERENCE_TYPE_ANNOTATION))
                    .is_none()
            })
            .filter_map(|d| Descriptor::from_oci(d).ok())
            .filter_map(|d| Some((d.platform.clone()?, d)))
            .filter(|(p, _)| p.os != "unknown" && p.architecture != "unknown")
            .collect()
    }

    /// The index entry to use for `platform`, chosen like BuildKit does it
    /// (containerd's `platforms.Only`, see [`PlatformMatcher`]): the best
    /// match wins, and the first entry among equals.
    ///
    /// `None` when no entry matches, and for an image manifest, which does
    /// not say its platform (its config does).
    pub fn platform_manifest(&self, platform: &Platform) -> Option<Descriptor> {
        self.platform_manifest_with(&PlatformMatcher::only(platform))
    }

    /// [`Manifest::platform_manifest`] with a matcher of the caller's
    /// choosing, e.g. [`PlatformMatcher::only_strict`].
    pub fn platform_manifest_with(&self, matcher: &PlatformMatcher) -> Option<Descriptor> {
        self.platforms()
            .into_iter()
            .filter_map(|(p, d)| Some((matcher.rank(&p)?, d)))
            // min_by_key keeps the first of equal keys.
            .min_by_key(|(rank, _)| *rank)
            .map(|(_, d)| d)
    }

    /// An image manifest's config descriptor.
    pub fn config(&self) -> Option<Descriptor> {
        match self {
            Manifest::Image(image) => Descriptor::from_oci(image.config()).ok(),
            Manifest::Index(_) => None,
        }
    }

    /// An image manifest's layers, in order; empty for an index.
    pub fn layers(&self) -> Vec<Descriptor> {
        match self {
            Manifest::Image(image) => image
                .layers()
                .iter()
                .filter_map(|d| Descriptor::from_oci(d).ok())
                .collect(),
            Manifest::Index(_) => Vec::new(),
        }
    }
}

/// A platform as an OCI descriptor writes it (`os.version`,
/// `os.features` and `variant` only when set).
#[must_use]
pub fn platform_json(p: &Platform) -> serde_json::Value {
    let mut platform = serde_json::Map::new();
    platform.insert("architecture".into(), p.architecture.clone().into());
    platform.insert("os".into(), p.os.clone().into());
    if let Some(v) = &p.os_version {
        platform.insert("os.version".into(), v.clone().into());
    }
    if !p.os_features.is_empty() {
        platform.insert("os.features".into(), p.os_features.clone().into());
    }
    if let Some(v) = &p.variant {
        platform.insert("variant".into(), v.clone().into());
    }
    serde_json::Value::Object(platform)
}

/// Writes an OCI image index listing `entries` in order: how kiln joins
/// per-platform manifests built on different daemons into one image.
/// Deterministic (keys sorted, no timestamps): the same entries give the
/// same bytes and digest.
///
/// # Errors
/// [`ManifestError::MissingPlatform`] when an entry has no platform (an
/// index entry without one cannot be selected by platform).
pub fn oci_index(entries: &[Descriptor]) -> Result<Vec<u8>, ManifestError> {
    let mut manifests = Vec::with_capacity(entries.len());
    for e in entries {
        let p = e
            .platform
            .as_ref()
            .ok_or_else(|| ManifestError::MissingPlatform {
                digest: e.digest.to_string(),
            })?;
        manifests.push(serde_json::json!({
            "mediaType": e.media_type,
            "digest": e.digest.to_string(),
            "size": e.size,
            "platform": platform_json(p),
        }));
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_INDEX,
        "manifests": manifests,
    });
    serde_json::to_vec(&index).map_err(|e| ManifestError::Json {
        media_type: media_type::OCI_INDEX.to_string(),
        source: Arc::new(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn entry(media_type: &str, c: char, platform: &str) -> String {
        format!(
            r#"{{"mediaType": "{media_type}", "size": 7, "digest": "{}", "platform": {platform}}}"#,
            digest(c)
        )
    }

    fn oci_index(entries: &[String]) -> Vec<u8> {
        format!(
            r#"{{"schemaVersion": 2, "mediaType": "{}", "manifests": [{}]}}"#,
            media_type::OCI_INDEX,
            entries.join(",")
        )
        .into_bytes()
    }

    fn pick(m: &Manifest, platform: &str) -> Option<String> {
        let p = Platform::parse(platform).expect(platform);
        m.platform_manifest(&p)
            .map(|d| d.digest.hex()[..1].to_string())
    }

    #[test]
    fn oci_index_with_attestations() {
        let m = media_type::OCI_MANIFEST;
        let attestation = format!(
            r#"{{"mediaType": "{m}", "size": 5, "digest": "{}",
                "annotations": {{"vnd.docker.reference.type": "attestation-manifest",
                                 "vnd.docker.reference.digest": "{}"}},
                "platform": {{"architecture": "unknown", "os": "unknown"}}}}"#,
            digest('c'),
            digest('a')
        );
        let bytes = oci_index(&[
            entry(m, 'a', r#"{"architecture": "amd64", "os": "linux"}"#),
            entry(
                m,
                'b',
                r#"{"architecture": "arm64", "os": "linux", "variant": "v8"}"#,
            ),
            attestation,
        ]);
        let index = Manifest::parse(Some(media_type::OCI_INDEX), &bytes).expect("parses");
        assert!(index.is_index());
        assert_eq!(index.entries().len(), 3);
        let platforms: Vec<String> = index
            .platforms()
            .iter()
            .map(|(p, _)| p.to_string())
            .collect();
        assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
        assert_eq!(pick(&index, "linux/amd64").as_deref(), Some("a"));
        assert_eq!(pick(&index, "linux/arm64/v8").as_deref(), Some("b"));
        assert_eq!(pick(&index, "linux/arm/v7"), None);
        assert_eq!(index.config(), None);
        // Without a Content-Type the document's mediaType decides.
        assert!(Manifest::parse(None, &bytes).expect("parses").is_index());
        assert!(Manifest::parse(Some("application/json"), &bytes)
            .expect("parses")
            .is_index());
    }

    #[test]
    fn docker_manifest_list_and_arm_variants() {
        let m = media_type::DOCKER_MANIFEST;
        let list = format!(
            r#"{{"schemaVersion": 2, "mediaType": "{}", "manifests": [{}]}}"#,
            media_type::DOCKER_MANIFEST_LIST,
            [
                entry(
                    m,
                    '1',
                    r#"{"architecture": "arm", "os": "linux", "variant": "v5"}"#
                ),
                entry(
                    m,
                    '2',
                    r#"{"architecture": "arm", "os": "linux", "variant": "v6"}"#
                ),
                entry(m, '3', r#"{"architecture": "arm", "os": "linux"}"#),
                entry(m, '4', r#"{"architecture": "386", "os": "linux"}"#),
                entry(
                    m,
                    '5',
                    r#"{"architecture": "amd64", "os": "windows", "os.version": "10.0.17763.1"}"#
                ),
                entry(
                    m,
                    '6',
                    r#"{"architecture": "arm64", "os": "linux", "features": ["x"]}"#
                ),
            ]
            .join(",")
        );
        let list = Manifest::parse(None, list.as_bytes()).expect("parses");
        assert_eq!(
            list.declared_media_type().as_deref(),
            Some(media_type::DOCKER_MANIFEST_LIST)
        );
        // `arm` without a variant is arm/v7.
        assert_eq!(pick(&list, "linux/arm/v7").as_deref(), Some("3"));
        assert_eq!(pick(&list, "linux/arm/v6").as_deref(), Some("2"));
        assert_eq!(pick(&list, "linux/arm/v5").as_deref(), Some("1"));
        assert_eq!(pick(&list, "linux/arm64").as_deref(), Some("6"));
        assert_eq!(pick(&list, "linux/arm64/v8").as_deref(), Some("6"));
        // amd64 falls back to 386, as in containerd.
        assert_eq!(pick(&list, "linux/amd64").as_deref(), Some("4"));
        assert_eq!(
            list.platform_manifest_with(&PlatformMatcher::only_strict(&Platform::linux_amd64())),
            None
        );
        assert_eq!(pick(&list, "windows/amd64").as_deref(), Some("5"));
    }

    #[test]
    fn arm64_falls_back_to_32_bit_arm_and_prefers_the_best() {
        let m = media_type::OCI_MANIFEST;
        let bytes = oci_index(&[
            entry(
                m,
                '1',
                r#"{"architecture": "arm", "os": "linux", "variant": "v6"}"#,
            ),
            entry(
                m,
                '2',
                r#"{"architecture": "arm", "os": "linux", "variant": "v7"}"#,
            ),
            entry(
                m,
                '3',
                r#"{"architecture": "arm", "os": "linux", "variant": "v7"}"#,
            ),
        ]);
        let index = Manifest::parse(None, &bytes).expect("parses");
        // Best match wins regardless of order; the first of equals is kept.
        assert_eq!(pick(&index, "linux/arm64").as_deref(), Some("2"));
        assert_eq!(pick(&index, "linux/arm/v8").as_deref(), Some("2"));
        assert_eq!(pick(&index, "linux/arm/v6").as_deref(), Some("1"));
        assert_eq!(pick(&index, "linux/arm/v5"), None);
    }

    #[test]
    fn single_manifests_oci_and_docker() {
        for (mt, config_mt, layer_mt) in [
            (
                media_type::OCI_MANIFEST,
                media_type::OCI_CONFIG,
                media_type::OCI_LAYER_GZIP,
            ),
            (
                media_type::DOCKER_MANIFEST,
                media_type::DOCKER_CONFIG,
                media_type::DOCKER_LAYER_GZIP,
            ),
        ] {
            let bytes = format!(
                r#"{{"schemaVersion": 2, "mediaType": "{mt}",
                    "config": {{"mediaType": "{config_mt}", "size": 2, "digest": "{}"}},
                    "layers": [{{"mediaType": "{layer_mt}", "size": 3, "digest": "{}"}},
                               {{"mediaType": "{layer_mt}", "size": 4, "digest": "{}"}}]}}"#,
                digest('a'),
                digest('b'),
                digest('c')
            );
            let parsed = Manifest::parse(Some(mt), bytes.as_bytes()).expect(mt);
            assert!(!parsed.is_index());
            let config = parsed.config().expect("config");
            assert_eq!(config.media_type, config_mt);
            assert_eq!(config.size, 2);
            let layers = parsed.layers();
            assert_eq!(layers.len(), 2);
            assert_eq!(layers[1].size, 4);
            assert_eq!(layers[0].media_type, layer_mt);
            assert_eq!(parsed.platform_manifest(&Platform::linux_amd64()), None);
            assert!(parsed.platforms().is_empty());
        }
    }

    #[test]
    fn kind_from_shape_when_untyped() {
        let index = format!(
            r#"{{"schemaVersion": 2, "manifests": [{}]}}"#,
            entry(
                media_type::OCI_MANIFEST,
                'a',
                r#"{"architecture": "amd64", "os": "linux"}"#
            )
        );
        assert!(Manifest::parse(None, index.as_bytes())
            .expect("index")
            .is_index());
        let image = format!(
            r#"{{"schemaVersion": 2, "config": {{"mediaType": "{}", "size": 2, "digest": "{}"}}, "layers": []}}"#,
            media_type::OCI_CONFIG,
            digest('a')
        );
        assert!(!Manifest::parse(None, image.as_bytes())
            .expect("image")
            .is_index());
    }

    #[test]
    fn rejects_what_it_cannot_read() {
        assert!(matches!(
            Manifest::parse(
                None,
                br#"{"schemaVersion": 1, "name": "x", "fsLayers": []}"#
            ),
            Err(ManifestError::Schema1 { .. })
        ));
        assert!(matches!(
            Manifest::parse(Some(media_type::DOCKER_MANIFEST_V1_SIGNED), b"{}"),
            Err(ManifestError::Schema1 { .. })
        ));
        assert!(matches!(
            Manifest::parse(None, br#"{"schemaVersion": 2}"#),
            Err(ManifestError::UnknownKind)
        ));
        assert!(matches!(
            Manifest::parse(
                None,
                br#"{"mediaType": "application/vnd.oci.image.config.v1+json"}"#
            ),
            Err(ManifestError::UnsupportedMediaType { .. })
        ));
        assert!(matches!(
            Manifest::parse(None, b"not json"),
            Err(ManifestError::Json { .. })
        ));
        assert!(matches!(
            Manifest::parse(
                Some(media_type::OCI_INDEX),
                br#"{"schemaVersion": 2, "manifests": 3}"#
            ),
            Err(ManifestError::Json { .. })
        ));
        let md5 = format!(
            r#"{{"schemaVersion": 2, "manifests": [{{"mediaType": "{}", "size": 1, "digest": "md5:{}"}}]}}"#,
            media_type::OCI_MANIFEST,
            "0".repeat(32)
        );
        let err = Manifest::parse(None, md5.as_bytes());
        assert!(
            matches!(
                err,
                Err(ManifestError::Digest { .. }) | Err(ManifestError::Json { .. })
            ),
            "{err:?}"
        );
    }

    #[test]
    fn oci_index_round_trips_in_order() {
        let e = |c: char, p: &str| Descriptor {
            media_type: media_type::OCI_MANIFEST.into(),
            digest: Digest::parse(&digest(c)).expect("digest"),
            size: 42,
            platform: Some(p.parse().expect("platform")),
        };
        let entries = [
            e('2', "linux/arm64"),
            e('1', "linux/amd64"),
            e('3', "linux/arm/v7"),
        ];
        let bytes = super::oci_index(&entries).expect("index");
        assert_eq!(
            bytes,
            super::oci_index(&entries).expect("again"),
            "deterministic"
        );
        let m = Manifest::parse(Some(media_type::OCI_INDEX), &bytes).expect("parse");
        let got: Vec<(String, String)> = m
            .platforms()
            .into_iter()
            .map(|(p, d)| (p.to_string(), d.digest.hex()[..1].to_string()))
            .collect();
        assert_eq!(
            got,
            [
                ("linux/arm64", "2"),
                ("linux/amd64", "1"),
                ("linux/arm/v7", "3")
            ]
            .map(|(a, b)| (a.to_string(), b.to_string()))
        );
        let mut no_platform = e('4', "linux/amd64");
        no_platform.platform = None;
        assert!(matches!(
            super::oci_index(&[no_platform]),
            Err(ManifestError::MissingPlatform { .. })
        ));
    }
}
