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
