//! kiln's own registry calls (reading pushed images back, pushing a joined
//! index, recording per-platform digests in kiln.lock) with the credentials
//! the daemon gets through the session: Docker's config and credential
//! helpers, read once, before any work.

use std::collections::BTreeMap;

use kiln_client::kiln_session::{DockerAuth, ExposeSecret};
use kiln_image::registry::{Credentials, RegistryClient};
use kiln_image::ImageRef;

use crate::error::BuildError;

/// A registry client holding the credentials for `images`' registries;
/// `insecure` registries are spoken to over plain HTTP.
///
/// # Errors
/// [`BuildError::Invalid`] when a credential helper or the config fails,
/// [`BuildError::Registry`] when the client cannot be set up.
pub async fn client_for<'a>(
    images: impl IntoIterator<Item = &'a ImageRef>,
    insecure: &[String],
) -> Result<RegistryClient, BuildError> {
    let auth = DockerAuth::from_env();
    let mut creds: BTreeMap<String, Credentials> = BTreeMap::new();
    for image in images {
        let host = image.domain();
        if creds.contains_key(host) {
            continue;
        }
        let c = auth.credentials(host).await.map_err(|e| {
            BuildError::invalid(
                format!("the registry credentials for {host}"),
                e.to_string(),
            )
        })?;
        let Some(secret) = c.secret.filter(|s| !s.expose_secret().is_empty()) else {
            continue; // anonymous
        };
        let secret = String::from_utf8(secret.expose_secret().to_vec()).map_err(|_| {
            BuildError::invalid(format!("the registry secret for {host}"), "it is not UTF-8")
        })?;
        let cred = if c.username.is_empty() {
            Credentials::identity_token(secret)
        } else {
            Credentials::basic(c.username, secret)
        };
        creds.insert(host.to_string(), cred);
    }
    let mut b = RegistryClient::builder().credentials(creds);
    for r in insecure {
        b = b.insecure(r.clone());
    }
    Ok(b.build()?)
}

/// Why `image` does not resolve for `platform`, as its registry answers:
/// no such image or tag, or no such platform in its index. `None` when the
/// registry cannot be asked or has the image for that platform.
pub async fn why_unresolvable(
    image: &ImageRef,
    platform: &kiln_image::Platform,
) -> Option<crate::build::Unresolvable> {
    use crate::build::Unresolvable;
    let client = client_for([image], &[]).await.ok()?;
    match client.resolve_platforms(image).await {
        Err(kiln_image::RegistryError::NotFound { .. }) => Some(Unresolvable::NotFound),
        Ok(list) => {
            // The matcher BuildKit picks a platform of an index with.
            let matcher = kiln_image::PlatformMatcher::only(platform);
            let available: Vec<kiln_image::Platform> = list.into_iter().map(|(p, _)| p).collect();
            (!available.iter().any(|p| matcher.matches(p)))
                .then_some(Unresolvable::NoPlatform { available })
        }
        Err(_) => None,
    }
}
