//! "Does this image exist?" answered by the BuildKit daemon (gateway
//! `ResolveImageConfig`), so it uses the daemon's registry access, mirrors
//! and the session's credentials.

use kiln_client::gateway::{GatewayBuild, ResolveMode};
use kiln_go::version::ImageTagProbe;
use kiln_image::ImageRef;

pub struct DaemonProbe<'a> {
    pub gateway: &'a GatewayBuild,
    pub platform: Option<kiln_client::kiln_proto::pb::Platform>,
    pub session_id: Option<String>,
}

/// Whether a resolution error means "no such image/tag" rather than a failure.
pub fn is_not_found(err: &kiln_client::Error) -> bool {
    err.is_not_found()
}

impl ImageTagProbe for DaemonProbe<'_> {
    type Error = kiln_client::Error;

    async fn exists(&self, image: &ImageRef) -> Result<bool, kiln_client::Error> {
        match self
            .gateway
            .resolve_image_config(
                &image.to_string(),
                self.platform.clone(),
                ResolveMode::Default,
                self.session_id.as_deref(),
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            // Not every daemon sends NotFound as its status code: ask the
            // registry (the daemon's error is only text).
            Err(e) => match crate::registry::client_for([image], &[]).await {
                Ok(registry) => match registry.head_manifest(image).await {
                    Ok(None) | Err(kiln_image::RegistryError::NotFound { .. }) => Ok(false),
                    _ => Err(e),
                },
                Err(_) => Err(e),
            },
        }
    }
}
