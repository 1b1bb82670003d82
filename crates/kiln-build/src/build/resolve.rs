//! Image config and digest resolution behind a trait (the role
//! `llb.ImageMetaResolver` plays in BuildKit's Go client): planning asks it,
//! the daemon's gateway answers in a build, a fixed table in unit tests.

use std::future::Future;

use kiln_client::gateway::{GatewayBuild, ResolveMode};
use kiln_image::{Digest, ImageRef, Platform};

use crate::error::BuildError;

/// An image resolved for one platform.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The index (or single manifest) digest; `None` if the resolver could
    /// not say (then the image cannot be pinned).
    pub digest: Option<Digest>,
    /// The platform's image config JSON.
    pub config: Vec<u8>,
}

/// Why an image could not be resolved, as its registry tells it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unresolvable {
    /// No such image or tag.
    NotFound,
    /// The image exists, for these platforms only.
    NoPlatform { available: Vec<Platform> },
}

/// Resolves image references for a platform.
pub trait ImageResolver {
    /// The digest and config of `image` for `platform`.
    fn resolve(
        &self,
        image: &ImageRef,
        platform: &Platform,
    ) -> impl Future<Output = Result<Resolved, BuildError>> + Send;

    /// After [`ImageResolver::resolve`] failed: why, when the resolver can
    /// find out as a fact (the daemon says it only in text); `None` when it
    /// cannot tell.
    fn why_unresolvable(
        &self,
        _image: &ImageRef,
        _platform: &Platform,
    ) -> impl Future<Output = Option<Unresolvable>> + Send {
        async { None }
    }
}

/// Resolution through a running gateway build: the daemon's registry
/// access, mirrors and the session's credentials.
pub struct GatewayResolver<'a> {
    pub gateway: &'a GatewayBuild,
    pub session_id: &'a str,
}

pub(crate) use kiln_llb::platform_to_pb as to_pb;

impl ImageResolver for GatewayResolver<'_> {
    /// Asks the registry, with the credentials the daemon gets through the
    /// session; `None` when this client cannot reach it (a remote daemon
    /// may use a registry or mirror only it can reach).
    async fn why_unresolvable(
        &self,
        image: &ImageRef,
        platform: &Platform,
    ) -> Option<Unresolvable> {
        crate::registry::why_unresolvable(image, platform).await
    }

    /// Docker's classic image store answers an image it has locally from
    /// the store, without a digest; kiln pins every image, so it asks the
    /// registry then.
    async fn resolve(&self, image: &ImageRef, platform: &Platform) -> Result<Resolved, BuildError> {
        // A reference pinned by digest (kiln.lock) names one config forever.
        let cache = ConfigCache::from_env();
        if let (Some(cache), Some(digest)) = (&cache, image.digest()) {
            if let Some(config) = cache.get(digest, platform) {
                return Ok(Resolved {
                    digest: Some(digest.clone()),
                    config,
                });
            }
        }
        let resolved = self.ask_daemon(image, platform).await?;
        if let (Some(cache), Some(pinned), Some(got)) = (&cache, image.digest(), &resolved.digest) {
            if pinned == got {
                cache.put(pinned, platform, &resolved.config);
            }
        }
        Ok(resolved)
    }
}

impl GatewayResolver<'_> {
    async fn ask_daemon(
        &self,
        image: &ImageRef,
        platform: &Platform,
    ) -> Result<Resolved, BuildError> {
        let reference = image.to_string();
        let ask = |mode| {
            self.gateway.resolve_image_config(
                &reference,
                Some(to_pb(platform)),
                mode,
                Some(self.session_id),
            )
        };
        let mut got = ask(ResolveMode::Default).await?;
        if got.digest.is_none() {
            got = ask(ResolveMode::Pull).await?;
        }
        let digest = match got.digest {
            Some(d) => Some(d.parse::<Digest>().map_err(|e| {
                BuildError::invalid(
                    format!("the daemon's digest for {image}"),
                    format!("{d:?} is not a digest: {e}"),
                )
            })?),
            None => None,
        };
        Ok(Resolved {
            digest,
            config: got.config,
        })
    }
}

/// Image configs of references pinned by digest, on disk
/// (`$XDG_CACHE_HOME/kiln/image-configs`, else `~/.cache/kiln/…`): an
/// index or manifest digest and a platform name one config forever, so a
/// build with kiln.lock asks the daemon nothing about its images (each
/// question is a registry round trip on the daemon's side, about 10 ms of a
/// 90 ms warm build). `KILN_IMAGE_CONFIG_CACHE=off` turns it off.
pub(crate) struct ConfigCache {
    dir: std::path::PathBuf,
}

/// Larger "configs" are not kept (a real one is a few KiB).
const MAX_CACHED_CONFIG: u64 = 1 << 20;

impl ConfigCache {
    pub(crate) fn from_env() -> Option<Self> {
        if std::env::var("KILN_IMAGE_CONFIG_CACHE").is_ok_and(|v| v == "off" || v == "0") {
            return None;
        }
        let base = crate::go_release::Cache::from_env()?;
        Some(Self {
            dir: base.dir().join("image-configs"),
        })
    }

    fn path(&self, digest: &Digest, platform: &Platform) -> std::path::PathBuf {
        let name: String = platform
            .to_string()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        self.dir
            .join(format!("{}-{}", digest.algorithm(), digest.hex()))
            .join(format!("{name}.json"))
    }

    /// The cached config, if any and if it is JSON.
    pub(crate) fn get(&self, digest: &Digest, platform: &Platform) -> Option<Vec<u8>> {
        use std::io::Read as _;
        let file = std::fs::File::open(self.path(digest, platform)).ok()?;
        let mut bytes = Vec::new();
        file.take(MAX_CACHED_CONFIG).read_to_end(&mut bytes).ok()?;
        serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .filter(serde_json::Value::is_object)
            .map(|_| bytes)
    }

    /// Keeps `config` (best effort: a cache that cannot be written is
    /// skipped; written to a temporary file, then renamed).
    pub(crate) fn put(&self, digest: &Digest, platform: &Platform, config: &[u8]) {
        if config.len() as u64 > MAX_CACHED_CONFIG {
            return;
        }
        let path = self.path(digest, platform);
        let Some(dir) = path.parent() else { return };
        if std::fs::create_dir_all(dir).is_err() {
            return;
        }
        use std::io::Write as _;
        if let Ok(mut tmp) = tempfile::NamedTempFile::with_prefix_in(".config", dir) {
            if tmp.write_all(config).is_ok() {
                let _ = tmp.persist(&path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_are_kept_by_digest_and_platform() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = ConfigCache {
            dir: tmp.path().to_path_buf(),
        };
        let d: Digest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
            .parse()
            .unwrap();
        let amd: Platform = "linux/amd64".parse().unwrap();
        let arm: Platform = "linux/arm64/v8".parse().unwrap();
        assert_eq!(cache.get(&d, &amd), None);
        cache.put(&d, &amd, br#"{"architecture":"amd64"}"#);
        assert_eq!(cache.get(&d, &amd).unwrap(), br#"{"architecture":"amd64"}"#);
        assert_eq!(
            cache.get(&d, &arm),
            None,
            "another platform is another config"
        );
        // A damaged entry is not a config: asked again.
        std::fs::write(cache.path(&d, &arm), b"{trunc").unwrap_or_else(|_| {
            std::fs::create_dir_all(cache.path(&d, &arm).parent().unwrap()).unwrap();
            std::fs::write(cache.path(&d, &arm), b"{trunc").unwrap();
        });
        assert_eq!(cache.get(&d, &arm), None);
        // No temporary files left.
        let left: Vec<_> = std::fs::read_dir(cache.path(&d, &amd).parent().unwrap())
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with(".config"))
            .collect();
        assert!(left.is_empty());
    }
}
