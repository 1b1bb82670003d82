//! The registry operations kiln uses: manifests, blobs, platforms, pushes.

use bytes::Bytes;
use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::StatusCode;

use super::http::{content_digest, header_str, Target};
use super::{RegistryClient, MAX_MANIFEST_SIZE};
use crate::config::{config_platform, parse_config};
use crate::digest::Digest;
use crate::error::{ProtocolError, RegistryError};
use crate::manifest::{Descriptor, Manifest};
use crate::media_type;
use crate::platform::Platform;
use crate::reference::ImageRef;

/// A manifest or index as fetched: its digest, media type, exact bytes and
/// parsed form.
#[derive(Clone, Debug)]
pub struct FetchedManifest {
    /// The digest of `bytes` (verified against the reference's digest, or the
    /// registry's `Docker-Content-Digest`).
    pub digest: Digest,
    /// The media type (`Content-Type`, or the document's own).
    pub media_type: String,
    /// The bytes, exactly as the registry sent them.
    pub bytes: Vec<u8>,
    /// The parsed document.
    pub manifest: Manifest,
}

impl FetchedManifest {
    /// A descriptor of this manifest (without platform).
    pub fn descriptor(&self) -> Descriptor {
        Descriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.bytes.len() as u64,
            platform: None,
        }
    }
}

fn manifest_target(image: &ImageRef, push: bool) -> Target {
    Target {
        registry: image.domain().to_string(),
        reference: image.to_string(),
        scope: scope(image, push),
    }
}

fn blob_target(repository: &ImageRef, digest: &Digest, push: bool) -> Target {
    Target {
        registry: repository.domain().to_string(),
        reference: format!("{}@{digest}", repository.name()),
        scope: scope(repository, push),
    }
}

fn scope(image: &ImageRef, push: bool) -> String {
    let actions = if push { "pull,push" } else { "pull" };
    format!("repository:{}:{actions}", image.path())
}

/// The tag or digest part of a manifest URL; a digest wins over a tag.
fn manifest_reference(image: &ImageRef) -> String {
    match (image.digest(), image.tag()) {
        (Some(digest), _) => digest.to_string(),
        (None, Some(tag)) => tag.to_string(),
        (None, None) => "latest".to_string(),
    }
}

fn mismatch(target: &Target, expected: &Digest, actual: Digest) -> RegistryError {
    RegistryError::DigestMismatch {
        reference: target.reference.clone(),
        expected: expected.clone(),
        actual,
    }
}

impl RegistryClient {
    fn manifest_url(&self, image: &ImageRef) -> String {
        format!(
            "{}/v2/{}/manifests/{}",
            self.base_url(image.domain()),
            image.path(),
            manifest_reference(image)
        )
    }

    fn blob_url(&self, repository: &ImageRef, digest: &Digest) -> String {
        format!(
            "{}/v2/{}/blobs/{digest}",
            self.base_url(repository.domain()),
            repository.path()
        )
    }

    /// What the registry has under `image`'s tag or digest, without
    /// downloading it: `None` if nothing.
    ///
    /// # Errors
    /// [`RegistryError::Unauthorized`], [`RegistryError::Unreachable`],
    /// [`RegistryError::DigestMismatch`] when a pinned reference resolves to
    /// other content, [`RegistryError::Protocol`] for other statuses.
    pub async fn head_manifest(
        &self,
        image: &ImageRef,
    ) -> Result<Option<Descriptor>, RegistryError> {
        let target = manifest_target(image, false);
        let url = self.manifest_url(image);
        let accept = media_type::MANIFEST_ACCEPT.join(", ");
        let response = self
            .send(&target, |http| {
                http.head(&url)
                    .header(ACCEPT, &accept)
                    .timeout(self.inner.request_timeout)
            })
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND => return Ok(None),
            s if s.is_success() => {}
            _ => return Err(self.status_error(&target, response).await),
        }
        let headers = response.headers();
        let Some(digest) = content_digest(headers, &target)? else {
            // Some registries leave the digest out of HEAD answers.
            return self.get_manifest(image).await.map(|m| Some(m.descriptor()));
        };
        if let Some(expected) = image.digest() {
            if *expected != digest {
                return Err(mismatch(&target, expected, digest));
            }
        }
        let size = header_str(headers, CONTENT_LENGTH.as_str())
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_default();
        let media_type = header_str(headers, CONTENT_TYPE.as_str())
            .map(|t| media_type::base(t).to_string())
            .unwrap_or_default();
        Ok(Some(Descriptor {
            media_type,
            digest,
            size,
            platform: None,
        }))
    }

    /// Fetches and parses the manifest or index under `image`'s tag or
    /// digest, accepting OCI and Docker schema 2 types.
    ///
    /// # Errors
    /// [`RegistryError::NotFound`] for a missing tag, manifest or repository;
    /// [`RegistryError::DigestMismatch`] when the bytes do not hash to the
    /// reference's digest or the registry's `Docker-Content-Digest`;
    /// [`RegistryError::Manifest`] for a document kiln cannot read;
    /// [`RegistryError::Unauthorized`], [`RegistryError::Unreachable`],
    /// [`RegistryError::Protocol`].
    pub async fn get_manifest(&self, image: &ImageRef) -> Result<FetchedManifest, RegistryError> {
        let target = manifest_target(image, false);
        let url = self.manifest_url(image);
        let accept = media_type::MANIFEST_ACCEPT.join(", ");
        let response = self
            .send(&target, |http| {
                http.get(&url)
                    .header(ACCEPT, &accept)
                    .timeout(self.inner.request_timeout)
            })
            .await?;
        if !response.status().is_success() {
            return Err(self.status_error(&target, response).await);
        }
        let announced = content_digest(response.headers(), &target)?;
        let content_type = header_str(response.headers(), CONTENT_TYPE.as_str())
            .map(|t| media_type::base(t).to_string());
        let bytes = self.read_body(&target, response, MAX_MANIFEST_SIZE).await?;

        let digest = match (image.digest(), &announced) {
            (Some(expected), _) | (None, Some(expected)) => {
                let actual = expected.recompute(&bytes);
                if actual != *expected {
                    return Err(mismatch(&target, expected, actual));
                }
                actual
            }
            (None, None) => Digest::sha256_of(&bytes),
        };
        let manifest = Manifest::parse(content_type.as_deref(), &bytes).map_err(|source| {
            RegistryError::Manifest {
                reference: target.reference.clone(),
                source,
            }
        })?;
        let media_type = content_type
            .filter(|t| media_type::is_index(t) || media_type::is_manifest(t))
            .or_else(|| manifest.declared_media_type())
            .unwrap_or_else(|| {
                let default = if manifest.is_index() {
                    media_type::OCI_INDEX
                } else {
                    media_type::OCI_MANIFEST
                };
                default.to_string()
            });
        Ok(FetchedManifest {
            digest,
            media_type,
            bytes,
            manifest,
        })
    }

    /// Fetches the blob `digest` of `repository` (tag and digest of the
    /// reference are ignored) into memory and verifies it. Meant for configs
    /// and other small blobs.
    ///
    /// # Errors
    /// [`RegistryError::NotFound`], [`RegistryError::DigestMismatch`],
    /// [`RegistryError::Unauthorized`], [`RegistryError::Unreachable`],
    /// [`RegistryError::Protocol`].
    pub async fn get_blob(
        &self,
        repository: &ImageRef,
        digest: &Digest,
    ) -> Result<Vec<u8>, RegistryError> {
        let target = blob_target(repository, digest, false);
        let url = self.blob_url(repository, digest);
        let response = self.send(&target, |http| http.get(&url)).await?;
        if !response.status().is_success() {
            return Err(self.status_error(&target, response).await);
        }
        let bytes = self.read_body(&target, response, u64::MAX).await?;
        let actual = digest.recompute(&bytes);
        if actual != *digest {
            return Err(mismatch(&target, digest, actual));
        }
        Ok(bytes)
    }

    /// The platforms `image` is available for, each with the digest of its
    /// manifest, in index order (attestations left out). For a
    /// single-platform image, the platform its config states.
    ///
    /// # Errors
    /// As [`RegistryClient::get_manifest`] and, for a single manifest,
    /// [`RegistryClient::get_blob`]; an unreadable config is a
    /// [`RegistryError::Protocol`].
    pub async fn resolve_platforms(
        &self,
        image: &ImageRef,
    ) -> Result<Vec<(Platform, Digest)>, RegistryError> {
        let fetched = self.get_manifest(image).await?;
        if fetched.manifest.is_index() {
            return Ok(fetched
                .manifest
                .platforms()
                .into_iter()
                .map(|(platform, d)| (platform, d.digest))
                .collect());
        }
        let target = manifest_target(image, false);
        let Some(config) = fetched.manifest.config() else {
            return Ok(Vec::new());
        };
        let bytes = self.get_blob(image, &config.digest).await?;
        let config = parse_config(&bytes).map_err(|e| {
            target.protocol(ProtocolError::UnexpectedContent {
                what: "image config",
                detail: std::error::Error::source(&e)
                    .map(ToString::to_string)
                    .unwrap_or_default(),
            })
        })?;
        Ok(vec![(config_platform(&config), fetched.digest)])
    }

    /// Whether these credentials may push to `repository`, asked the way a
    /// push starts: a blob upload is opened (with a push-scoped token where
    /// the registry uses tokens) and cancelled at once, so nothing is
    /// written. `Ok(false)` when the registry refuses (HTTP 401/403).
    ///
    /// # Errors
    /// [`RegistryError::Unreachable`], or [`RegistryError::Protocol`] for
    /// an answer that is neither an upload nor a refusal.
    pub async fn may_push(&self, repository: &ImageRef) -> Result<bool, RegistryError> {
        let target = manifest_target(repository, true);
        let start_url = format!(
            "{}/v2/{}/blobs/uploads/",
            self.base_url(repository.domain()),
            repository.path()
        );
        let timeout = self.inner.request_timeout;
        let started = match self
            .send(&target, |http| {
                http.post(&start_url)
                    .header(CONTENT_LENGTH, "0")
                    .timeout(timeout)
            })
            .await
        {
            Ok(r) => r,
            Err(RegistryError::Unauthorized { .. }) => return Ok(false),
            Err(e) => return Err(e),
        };
        if started.status() != StatusCode::ACCEPTED {
            return Err(self.status_error(&target, started).await);
        }
        // Cancel the upload session; a registry that keeps it expires it.
        if let Some(location) = header_str(started.headers(), LOCATION.as_str()) {
            if let Ok(upload) = url::Url::parse(&start_url).and_then(|b| b.join(location)) {
                let _ = self
                    .send(&target, |http| http.delete(upload.clone()).timeout(timeout))
                    .await;
            }
        }
        Ok(true)
    }

    /// Uploads `content` as a blob of `repository` (monolithic upload: POST,
    /// then PUT with the digest), unless the registry has it already.
    /// Returns its sha256 digest.
    ///
    /// # Errors
    /// [`RegistryError::Unauthorized`] without push rights,
    /// [`RegistryError::DigestMismatch`] if the registry stored other bytes,
    /// [`RegistryError::Unreachable`], [`RegistryError::Protocol`].
    pub async fn push_blob(
        &self,
        repository: &ImageRef,
        content: impl Into<Bytes>,
    ) -> Result<Digest, RegistryError> {
        let content: Bytes = content.into();
        let digest = Digest::sha256_of(&content);
        let target = blob_target(repository, &digest, true);
        let timeout = self.inner.request_timeout;

        let blob_url = self.blob_url(repository, &digest);
        let head = self
            .send(&target, |http| http.head(&blob_url).timeout(timeout))
            .await?;
        if head.status().is_success() {
            return Ok(digest);
        }
        if head.status() != StatusCode::NOT_FOUND {
            return Err(self.status_error(&target, head).await);
        }

        let start_url = format!(
            "{}/v2/{}/blobs/uploads/",
            self.base_url(repository.domain()),
            repository.path()
        );
        let started = self
            .send(&target, |http| {
                http.post(&start_url)
                    .header(CONTENT_LENGTH, "0")
                    .timeout(timeout)
            })
            .await?;
        if started.status() != StatusCode::ACCEPTED {
            return Err(self.status_error(&target, started).await);
        }
        let location = header_str(started.headers(), LOCATION.as_str())
            .ok_or_else(|| target.protocol(ProtocolError::MissingHeader { header: "Location" }))?;
        let invalid_location = || {
            target.protocol(ProtocolError::InvalidHeader {
                header: "Location",
                value: location.to_string(),
            })
        };
        // The Location may be relative to the request and may carry a query.
        let mut upload = url::Url::parse(&start_url)
            .and_then(|base| base.join(location))
            .map_err(|_| invalid_location())?;
        upload
            .query_pairs_mut()
            .append_pair("digest", digest.as_str());

        let finished = self
            .send(&target, |http| {
                http.put(upload.clone())
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_LENGTH, content.len())
                    .body(content.clone())
            })
            .await?;
        if finished.status() != StatusCode::CREATED {
            return Err(self.status_error(&target, finished).await);
        }
        if let Some(stored) = content_digest(finished.headers(), &target)? {
            if stored != digest {
                return Err(mismatch(&target, &digest, stored));
            }
        }
        Ok(digest)
    }

    /// Makes blob `digest` of `from` (a repository of the same registry)
    /// available in `repository` without uploading it: the registry's
    /// cross-repository mount. `Ok(true)` when mounted (or already there),
    /// `Ok(false)` when the registry declines (it then opens an upload
    /// session, which is cancelled here): the caller copies the bytes.
    ///
    /// # Errors
    /// [`RegistryError::Unauthorized`] without push rights,
    /// [`RegistryError::Unreachable`], [`RegistryError::Protocol`].
    pub async fn mount_blob(
        &self,
        repository: &ImageRef,
        digest: &Digest,
        from: &ImageRef,
    ) -> Result<bool, RegistryError> {
        let target = blob_target(repository, digest, true);
        if from.domain() != repository.domain() {
            return Ok(false);
        }
        let timeout = self.inner.request_timeout;
        let blob_url = self.blob_url(repository, digest);
        let head = self
            .send(&target, |http| http.head(&blob_url).timeout(timeout))
            .await?;
        if head.status().is_success() {
            return Ok(true);
        }
        let start_url = format!(
            "{}/v2/{}/blobs/uploads/",
            self.base_url(repository.domain()),
            repository.path()
        );
        let mut url = url::Url::parse(&start_url).map_err(|_| {
            target.protocol(ProtocolError::InvalidHeader {
                header: "Location",
                value: start_url.clone(),
            })
        })?;
        url.query_pairs_mut()
            .append_pair("mount", digest.as_str())
            .append_pair("from", from.path());
        let answer = self
            .send(&target, |http| {
                http.post(url.clone())
                    .header(CONTENT_LENGTH, "0")
                    .timeout(timeout)
            })
            .await?;
        match answer.status() {
            StatusCode::CREATED => Ok(true),
            StatusCode::ACCEPTED => {
                if let Some(location) = header_str(answer.headers(), LOCATION.as_str()) {
                    if let Ok(upload) = url.join(location) {
                        let _ = self
                            .send(&target, |http| http.delete(upload.clone()).timeout(timeout))
                            .await;
                    }
                }
                Ok(false)
            }
            _ => Err(self.status_error(&target, answer).await),
        }
    }

    /// Makes blob `digest` of `from` available in `repository`: mounted
    /// when the registry allows it, else downloaded and uploaded (held in
    /// memory). Returns whether it was mounted (or already there).
    ///
    /// # Errors
    /// As [`RegistryClient::mount_blob`], [`RegistryClient::get_blob`] and
    /// [`RegistryClient::push_blob`].
    pub async fn copy_blob(
        &self,
        repository: &ImageRef,
        digest: &Digest,
        from: &ImageRef,
    ) -> Result<bool, RegistryError> {
        if self.mount_blob(repository, digest, from).await? {
            return Ok(true);
        }
        let bytes = self.get_blob(from, digest).await?;
        let pushed = self.push_blob(repository, bytes).await?;
        if pushed != *digest {
            let target = blob_target(repository, digest, true);
            return Err(mismatch(&target, digest, pushed));
        }
        Ok(false)
    }

    /// Uploads a manifest or index under `image`'s tag (or digest) with the
    /// given media type. Returns its digest. The blobs and manifests it
    /// refers to must be in the repository already.
    ///
    /// # Errors
    /// [`RegistryError::DigestMismatch`] when `image` is pinned to another
    /// digest than the bytes have, or the registry reports another;
    /// [`RegistryError::Unauthorized`], [`RegistryError::Unreachable`],
    /// [`RegistryError::Protocol`] (e.g. `MANIFEST_BLOB_UNKNOWN`).
    pub async fn put_manifest(
        &self,
        image: &ImageRef,
        media_type: &str,
        bytes: impl Into<Bytes>,
    ) -> Result<Digest, RegistryError> {
        let bytes: Bytes = bytes.into();
        let target = manifest_target(image, true);
        let digest = match image.digest() {
            Some(expected) => {
                let actual = expected.recompute(&bytes);
                if actual != *expected {
                    return Err(mismatch(&target, expected, actual));
                }
                actual
            }
            None => Digest::sha256_of(&bytes),
        };
        let url = self.manifest_url(image);
        let response = self
            .send(&target, |http| {
                http.put(&url)
                    .header(CONTENT_TYPE, media_type)
                    .body(bytes.clone())
                    .timeout(self.inner.request_timeout)
            })
            .await?;
        if !response.status().is_success() {
            return Err(self.status_error(&target, response).await);
        }
        if let Some(stored) = content_digest(response.headers(), &target)? {
            if stored.algorithm() == digest.algorithm() && stored != digest {
                return Err(mismatch(&target, &digest, stored));
            }
        }
        Ok(digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_scopes() {
        let client = RegistryClient::new().expect("client");
        let image = ImageRef::parse("golang:1.24").expect("ref");
        assert_eq!(
            client.manifest_url(&image),
            "https://registry-1.docker.io/v2/library/golang/manifests/1.24"
        );
        let pinned = image.with_digest(Digest::sha256_of(b"x"));
        assert!(client
            .manifest_url(&pinned)
            .ends_with(&format!("/manifests/{}", Digest::sha256_of(b"x"))));
        assert_eq!(scope(&image, false), "repository:library/golang:pull");
        assert_eq!(scope(&image, true), "repository:library/golang:pull,push");
        let local = ImageRef::parse("localhost:5000/a/b").expect("ref");
        let d = Digest::sha256_of(b"");
        assert_eq!(
            client.blob_url(&local, &d),
            format!("http://localhost:5000/v2/a/b/blobs/{d}")
        );
        assert_eq!(
            blob_target(&local, &d, false).reference,
            format!("localhost:5000/a/b@{d}")
        );
    }
}
