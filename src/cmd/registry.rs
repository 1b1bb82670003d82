//! kiln's own registry calls (reading pushed images back, pushing a joined
//! index, recording per-platform digests in kiln.lock) with the credentials
//! the daemon gets through the session: Docker's config and credential
//! helpers, read once, before any work.

use std::collections::BTreeMap;

use anyhow::Context;
use kiln_image::registry::{Credentials, RegistryClient};
use kiln_image::ImageRef;

/// A registry client holding the credentials for `images`' registries;
/// `insecure` registries are spoken to over plain HTTP.
pub async fn client_for<'a>(
    images: impl IntoIterator<Item = &'a ImageRef>,
    insecure: &[String],
) -> anyhow::Result<RegistryClient> {
    let auth = kiln_session::DockerAuth::from_env();
    let mut creds: BTreeMap<String, Credentials> = BTreeMap::new();
    for image in images {
        let host = image.domain();
        if creds.contains_key(host) {
            continue;
        }
        let c = auth
            .credentials(host)
            .await
            .with_context(|| format!("cannot read the registry credentials for {host}"))?;
        let Some(secret) = c.secret.filter(|s| !s.is_empty()) else {
            continue; // anonymous
        };
        let secret = String::from_utf8(secret.expose().to_vec())
            .map_err(|_| anyhow::anyhow!("the registry secret for {host} is not UTF-8"))?;
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
    b.build().context("cannot set up the registry client")
}
