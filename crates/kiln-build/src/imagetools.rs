//! `kiln imagetools` as a library: join manifests and indexes that are in
//! a registry already into one index ([`plan_create`], [`push_index`]),
//! and describe what a reference holds ([`inspect`]). Nothing is pulled
//! to the machine but manifests: blobs move registry-side by
//! cross-repository mount, and are copied through memory only where the
//! registry refuses a mount (another registry, no pull right on the source).
//!
//! The CI matrix this serves: each runner builds one platform and pushes
//! it by digest, and one last job joins the digests under a tag.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kiln_build::imagetools::ImagetoolsError> {
//! use kiln_build::imagetools::{plan_create, push_index, CreateRequest};
//! use kiln_image::ImageRef;
//! let parse = |s: &str| ImageRef::parse(s).expect("reference");
//! let request = CreateRequest {
//!     sources: vec![parse("127.0.0.1:5000/app@sha256:1111111111111111111111111111111111111111111111111111111111111111"),
//!                   parse("127.0.0.1:5000/app@sha256:2222222222222222222222222222222222222222222222222222222222222222")],
//!     tags: vec![parse("127.0.0.1:5000/app:v1")],
//!     append: false,
//! };
//! let client = kiln_build::registry::client_for(request.tags.iter().chain(&request.sources), &[])
//!     .await
//!     .expect("registry client");
//! let plan = plan_create(&client, &request).await?;
//! let digest = push_index(&client, &plan, &request.tags, |_| {}).await?;
//! println!("{digest}");
//! # Ok(()) }
//! ```

use std::collections::BTreeSet;

use kiln_image::manifest::{platform_json, Manifest};
use kiln_image::registry::RegistryClient;
use kiln_image::{media_type, Digest, ImageRef, RegistryError};
use serde::Serialize;
use serde_json::{json, Value};

/// The annotation marking BuildKit's attestation manifests in an index.
pub const REFERENCE_TYPE: &str = "vnd.docker.reference.type";
/// Its value on an attestation manifest.
pub const ATTESTATION_MANIFEST: &str = "attestation-manifest";
/// The annotation naming the image manifest an attestation is about.
pub const REFERENCE_DIGEST: &str = "vnd.docker.reference.digest";
/// The layer annotation naming an in-toto predicate's type.
pub const PREDICATE_TYPE: &str = "in-toto.io/predicate-type";

/// Why an imagetools command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImagetoolsError {
    /// A registry call failed; `what` says which.
    #[error("{what}: {source}")]
    Registry {
        what: String,
        #[source]
        source: Box<RegistryError>,
    },
    /// The request cannot be carried out as given.
    #[error("{0}")]
    Invalid(String),
}

impl ImagetoolsError {
    fn registry(what: impl Into<String>, source: RegistryError) -> Self {
        ImagetoolsError::Registry {
            what: what.into(),
            source: Box::new(source),
        }
    }
}

/// `kiln imagetools create`: what to join and where to push it.
#[derive(Clone, Debug)]
pub struct CreateRequest {
    /// Manifests or indexes, by tag or digest. An index contributes every
    /// entry, its attestation manifests included.
    pub sources: Vec<ImageRef>,
    /// Where the index goes (the first is what `append` reads).
    pub tags: Vec<ImageRef>,
    /// Start from the entries of the index already under the first tag.
    pub append: bool,
}

/// One entry of the index to be made, and where its manifest is now.
#[derive(Clone, Debug)]
pub struct PlannedEntry {
    /// The descriptor as it goes into the index (annotations kept).
    pub descriptor: Value,
    /// The manifest's digest.
    pub digest: Digest,
    /// The repository holding it (with the digest).
    pub source: ImageRef,
}

/// The index [`plan_create`] made: its exact bytes, and the entries whose
/// manifests (and blobs) must be in each target repository first.
#[derive(Clone, Debug)]
pub struct CreatePlan {
    /// The index, exactly as it will be pushed (what `--dry-run` prints).
    pub index: Vec<u8>,
    /// Its digest.
    pub digest: Digest,
    /// Its entries, in order.
    pub entries: Vec<PlannedEntry>,
}

/// What [`push_index`] reports while it copies.
#[derive(Clone, Debug)]
pub enum CopyEvent {
    /// A manifest was copied into `to` from `from`; `mounted` blobs came by
    /// mount, `copied` through kiln.
    Manifest {
        digest: Digest,
        from: String,
        to: String,
        mounted: usize,
        copied: usize,
    },
    /// The index was pushed under a tag.
    Tagged { reference: String, digest: Digest },
}

/// The raw descriptors of an index's entries, as written there.
pub(crate) fn raw_entries(bytes: &[u8]) -> Result<Vec<Value>, String> {
    let doc: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    Ok(doc
        .get("manifests")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default())
}

fn entry_digest(d: &Value) -> Option<Digest> {
    d.get("digest")
        .and_then(Value::as_str)
        .and_then(|s| Digest::parse(s).ok())
}

/// The entries `source` contributes: every entry of an index, or the one
/// manifest with the platform its config states.
async fn entries_of(
    client: &RegistryClient,
    source: &ImageRef,
) -> Result<Vec<PlannedEntry>, ImagetoolsError> {
    let fetched = client
        .get_manifest(source)
        .await
        .map_err(|e| ImagetoolsError::registry(format!("reading {source}"), e))?;
    let repo = source.trim();
    if fetched.manifest.is_index() {
        let raw = raw_entries(&fetched.bytes)
            .map_err(|e| ImagetoolsError::Invalid(format!("{source}: unreadable index: {e}")))?;
        let mut out = Vec::new();
        for d in raw {
            let digest = entry_digest(&d).ok_or_else(|| {
                ImagetoolsError::Invalid(format!("{source}: an index entry has no usable digest"))
            })?;
            let media = d.get("mediaType").and_then(Value::as_str).unwrap_or("");
            if media_type::is_index(media) {
                return Err(ImagetoolsError::Invalid(format!(
                    "{source}: entry {digest} is itself an index; name it as a source of its own"
                )));
            }
            out.push(PlannedEntry {
                source: repo.with_digest(digest.clone()),
                digest,
                descriptor: d,
            });
        }
        return Ok(out);
    }
    let platforms = client
        .resolve_platforms(&repo.with_digest(fetched.digest.clone()))
        .await
        .map_err(|e| ImagetoolsError::registry(format!("reading the config of {source}"), e))?;
    let platform = platforms.first().map(|(p, _)| p.clone()).ok_or_else(|| {
        ImagetoolsError::Invalid(format!(
            "{source}: the manifest has no config to take its platform from"
        ))
    })?;
    Ok(vec![PlannedEntry {
        descriptor: json!({
            "mediaType": fetched.media_type,
            "digest": fetched.digest.to_string(),
            "size": fetched.bytes.len(),
            "platform": platform_json(&platform),
        }),
        source: repo.with_digest(fetched.digest.clone()),
        digest: fetched.digest,
    }])
}

/// Builds the index `request` asks for, reading only manifests and
/// configs. Entries keep the order of the sources (with `append`, the
/// existing index's first); an entry already present (same digest) is not
/// added twice.
///
/// # Errors
/// [`ImagetoolsError::Invalid`] without sources or tags, or for an index
/// nested in a source index; [`ImagetoolsError::Registry`] when a source
/// cannot be read.
pub async fn plan_create(
    client: &RegistryClient,
    request: &CreateRequest,
) -> Result<CreatePlan, ImagetoolsError> {
    let Some(first_tag) = request.tags.first() else {
        return Err(ImagetoolsError::Invalid(
            "no target: give -t REGISTRY/REPO:TAG (or --dry-run)".into(),
        ));
    };
    if request.sources.is_empty() && !request.append {
        return Err(ImagetoolsError::Invalid(
            "no source: name the manifests or indexes to join (REPO@sha256:… or REPO:TAG)".into(),
        ));
    }
    let mut entries: Vec<PlannedEntry> = Vec::new();
    if request.append {
        match entries_of(client, first_tag).await {
            Ok(existing) => entries.extend(existing),
            Err(ImagetoolsError::Registry { source, .. })
                if matches!(*source, RegistryError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    for source in &request.sources {
        entries.extend(entries_of(client, source).await?);
    }
    let mut seen = BTreeSet::new();
    entries.retain(|e| seen.insert(e.digest.clone()));
    let manifests: Vec<Value> = entries.iter().map(|e| e.descriptor.clone()).collect();
    let index = json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_INDEX,
        "manifests": manifests,
    });
    let mut bytes = serde_json::to_vec_pretty(&index)
        .map_err(|e| ImagetoolsError::Invalid(format!("cannot write the index: {e}")))?;
    bytes.push(b'\n');
    Ok(CreatePlan {
        digest: Digest::sha256_of(&bytes),
        index: bytes,
        entries,
    })
}

/// Copies what `manifest` (of `from`) needs into `to`: its config and
/// layers, by mount where possible. Returns (mounted, copied).
async fn copy_manifest(
    client: &RegistryClient,
    from: &ImageRef,
    to: &ImageRef,
) -> Result<(usize, usize), ImagetoolsError> {
    let fetched = client
        .get_manifest(from)
        .await
        .map_err(|e| ImagetoolsError::registry(format!("reading {from}"), e))?;
    let Manifest::Image(_) = &fetched.manifest else {
        return Err(ImagetoolsError::Invalid(format!(
            "{from} is an index, not a manifest"
        )));
    };
    let (mut mounted, mut copied) = (0, 0);
    let blobs = fetched
        .manifest
        .config()
        .into_iter()
        .chain(fetched.manifest.layers());
    for blob in blobs {
        let by_mount = client
            .copy_blob(to, &blob.digest, from)
            .await
            .map_err(|e| {
                ImagetoolsError::registry(
                    format!("copying blob {} from {from} to {to}", blob.digest),
                    e,
                )
            })?;
        if by_mount {
            mounted += 1;
        } else {
            copied += 1;
        }
    }
    let dest = to.trim().with_digest(fetched.digest.clone());
    client
        .put_manifest(&dest, &fetched.media_type, fetched.bytes)
        .await
        .map_err(|e| ImagetoolsError::registry(format!("pushing manifest {dest}"), e))?;
    Ok((mounted, copied))
}

fn same_repository(a: &ImageRef, b: &ImageRef) -> bool {
    a.domain() == b.domain() && a.path() == b.path()
}

/// Pushes `plan`'s index under every tag, copying first the manifests
/// (and their blobs) that are in other repositories. Returns the index's
/// digest.
///
/// # Errors
/// [`ImagetoolsError::Registry`] for the first copy or push that fails;
/// nothing is tagged then.
pub async fn push_index(
    client: &RegistryClient,
    plan: &CreatePlan,
    tags: &[ImageRef],
    mut progress: impl FnMut(CopyEvent),
) -> Result<Digest, ImagetoolsError> {
    let mut done: BTreeSet<(String, String, Digest)> = BTreeSet::new();
    for tag in tags {
        for entry in &plan.entries {
            if same_repository(&entry.source, tag) {
                continue;
            }
            let key = (
                tag.domain().to_string(),
                tag.path().to_string(),
                entry.digest.clone(),
            );
            if !done.insert(key) {
                continue;
            }
            let (mounted, copied) = copy_manifest(client, &entry.source, tag).await?;
            progress(CopyEvent::Manifest {
                digest: entry.digest.clone(),
                from: entry.source.name(),
                to: tag.name(),
                mounted,
                copied,
            });
        }
    }
    for tag in tags {
        let digest = client
            .put_manifest(tag, media_type::OCI_INDEX, plan.index.clone())
            .await
            .map_err(|e| ImagetoolsError::registry(format!("pushing the index to {tag}"), e))?;
        progress(CopyEvent::Tagged {
            reference: tag.to_string(),
            digest,
        });
    }
    Ok(plan.digest.clone())
}

/// What a reference holds, as `kiln imagetools inspect` shows it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Inspection {
    /// The reference as given.
    pub name: String,
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    /// An index's entries (empty for a single manifest).
    pub manifests: Vec<InspectedEntry>,
    /// The platform of a single manifest (from its config).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
}

/// One entry of an inspected index.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InspectedEntry {
    /// `REPO@DIGEST`, pullable as written.
    pub name: String,
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    /// `os/arch[/variant]`; `unknown/unknown` for attestations.
    pub platform: String,
    /// For an attestation manifest: the digest of the image it is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attestation_for: Option<String>,
    /// For an attestation manifest: the predicate type of each statement
    /// (e.g. `https://slsa.dev/provenance/v1`, `https://spdx.dev/Document`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub predicate_types: Vec<String>,
}

fn platform_text(d: &Value) -> String {
    let Some(p) = d.get("platform") else {
        return String::new();
    };
    let get = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or("");
    let mut s = format!("{}/{}", get("os"), get("architecture"));
    if !get("variant").is_empty() {
        s.push('/');
        s.push_str(get("variant"));
    }
    s
}

/// Reads `image`'s manifest or index and, for attestation manifests, the
/// predicate types they carry.
///
/// # Errors
/// [`ImagetoolsError::Registry`] when the registry cannot be read.
pub async fn inspect(
    client: &RegistryClient,
    image: &ImageRef,
) -> Result<(Inspection, Vec<u8>), ImagetoolsError> {
    let fetched = client
        .get_manifest(image)
        .await
        .map_err(|e| ImagetoolsError::registry(format!("reading {image}"), e))?;
    let repo = image.trim();
    let mut inspection = Inspection {
        name: image.to_string(),
        media_type: fetched.media_type.clone(),
        digest: fetched.digest.to_string(),
        size: fetched.bytes.len() as u64,
        manifests: Vec::new(),
        platform: None,
    };
    if !fetched.manifest.is_index() {
        let platforms = client
            .resolve_platforms(&repo.with_digest(fetched.digest.clone()))
            .await
            .map_err(|e| ImagetoolsError::registry(format!("reading the config of {image}"), e))?;
        inspection.platform = platforms.first().map(|(p, _)| p.to_string());
        return Ok((inspection, fetched.bytes));
    }
    let raw = raw_entries(&fetched.bytes)
        .map_err(|e| ImagetoolsError::Invalid(format!("{image}: unreadable index: {e}")))?;
    for d in raw {
        let Some(digest) = entry_digest(&d) else {
            continue;
        };
        let annotations = d.get("annotations");
        let ann = |k: &str| {
            annotations
                .and_then(|a| a.get(k))
                .and_then(Value::as_str)
                .map(ToString::to_string)
        };
        let is_attestation = ann(REFERENCE_TYPE).as_deref() == Some(ATTESTATION_MANIFEST);
        let mut predicate_types = Vec::new();
        if is_attestation {
            let att = client
                .get_manifest(&repo.with_digest(digest.clone()))
                .await
                .map_err(|e| {
                    ImagetoolsError::registry(format!("reading attestation {digest} of {image}"), e)
                })?;
            if let Ok(doc) = serde_json::from_slice::<Value>(&att.bytes) {
                for layer in doc
                    .get("layers")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(t) = layer
                        .get("annotations")
                        .and_then(|a| a.get(PREDICATE_TYPE))
                        .and_then(Value::as_str)
                    {
                        predicate_types.push(t.to_string());
                    }
                }
            }
        }
        inspection.manifests.push(InspectedEntry {
            name: format!("{}@{digest}", repo.name()),
            media_type: d
                .get("mediaType")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            digest: digest.to_string(),
            size: d.get("size").and_then(Value::as_u64).unwrap_or(0),
            platform: platform_text(&d),
            attestation_for: if is_attestation {
                ann(REFERENCE_DIGEST)
            } else {
                None
            },
            predicate_types,
        });
    }
    Ok((inspection, fetched.bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_image::Platform;

    #[test]
    fn platform_text_and_json() {
        let p = Platform::parse("linux/arm/v7").expect("platform");
        let j = platform_json(&p);
        assert_eq!(j["architecture"], "arm");
        assert_eq!(j["variant"], "v7");
        assert_eq!(platform_text(&json!({ "platform": j })), "linux/arm/v7");
        assert_eq!(platform_text(&json!({})), "");
    }

    #[test]
    fn raw_entries_keep_annotations() {
        let index = br#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":1,"annotations":{"vnd.docker.reference.type":"attestation-manifest"}}]}"#;
        let e = raw_entries(index).expect("entries");
        assert_eq!(e.len(), 1);
        assert_eq!(e[0]["annotations"][REFERENCE_TYPE], ATTESTATION_MANIFEST);
        assert!(entry_digest(&e[0]).is_some());
        assert!(raw_entries(b"not json").is_err());
    }

    #[test]
    fn same_repository_ignores_tag_and_digest() {
        let a = ImageRef::parse("127.0.0.1:5000/app:v1").expect("ref");
        let b = ImageRef::parse(
            "127.0.0.1:5000/app@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        )
        .expect("ref");
        let c = ImageRef::parse("127.0.0.1:5000/other:v1").expect("ref");
        assert!(same_repository(&a, &b));
        assert!(!same_repository(&a, &c));
    }
}
