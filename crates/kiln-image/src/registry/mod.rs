//! A small async client for the OCI distribution API (registry v2): read
//! manifests, indexes and blobs, and push blobs and manifests.
//!
//! It speaks HTTPS to every registry except `localhost`, `127.0.0.1`, `::1`
//! and the hosts the caller marks insecure, which get plain HTTP.
//! `docker.io` is served by `registry-1.docker.io`. It authenticates the way
//! Docker does: anonymously first, then with HTTP Basic or a Bearer token
//! from the registry's token service, with credentials from a
//! [`CredentialStore`]. Tokens are cached per registry and scope.
//!
//! Every answer is checked: content fetched by digest must hash to it, and
//! a manifest fetched by tag must match the digest the registry announces.
//!
//! ```no_run
//! use kiln_image::registry::{Credentials, RegistryClient};
//! use kiln_image::{ImageRef, Platform};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let client = RegistryClient::builder()
//!     .credentials(|registry: &str| {
//!         (registry == "ghcr.io").then(|| Credentials::basic("me", "ghp_…"))
//!     })
//!     .build()?;
//! let image = ImageRef::parse("127.0.0.1:5000/kiln-fixtures/static:nonroot")?;
//! let platforms = client.resolve_platforms(&image).await?; // [(linux/amd64, sha256:…), …]
//! let index = client.get_manifest(&image).await?;
//! if let Some(arm64) = index.manifest.platform_manifest(&Platform::linux_arm64()) {
//!     let manifest = client.get_manifest(&image.with_digest(arm64.digest)).await?;
//!     let config = manifest.manifest.config().expect("an image manifest has a config");
//!     let config = client.get_blob(&image, &config.digest).await?; // verified bytes
//!     # let _ = (platforms, config);
//! }
//! # Ok(())
//! # }
//! ```

mod auth;
mod http;
mod ops;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use auth::{
    parse_www_authenticate, Challenge, CredentialStore, Credentials, ExposeSecret, Secret,
};
pub use ops::FetchedManifest;

use crate::error::{RegistryError, TransportError};

/// Largest manifest or index kiln reads (containerd's limit too).
pub const MAX_MANIFEST_SIZE: u64 = 4 << 20;

/// Registry host for the `docker.io` domain.
pub const DOCKER_HUB_HOST: &str = "registry-1.docker.io";

/// A registry client. Cheap to clone; clones share connections and tokens.
#[derive(Clone)]
pub struct RegistryClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    insecure: BTreeSet<String>,
    credentials: Option<Arc<dyn CredentialStore>>,
    request_timeout: Duration,
    retry: Retry,
    /// What each registry (by domain) asked for, and the tokens it gave.
    auth: Mutex<BTreeMap<String, HostAuth>>,
}

#[derive(Clone, Debug)]
enum HostAuth {
    Basic,
    Bearer { tokens: BTreeMap<String, Secret> },
}

impl fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryClient")
            .field("insecure", &self.inner.insecure)
            .field("credentials", &self.inner.credentials.is_some())
            .field("request_timeout", &self.inner.request_timeout)
            .finish_non_exhaustive()
    }
}

/// Options for a [`RegistryClient`].
#[must_use]
pub struct RegistryClientBuilder {
    insecure: BTreeSet<String>,
    credentials: Option<Arc<dyn CredentialStore>>,
    connect_timeout: Duration,
    request_timeout: Duration,
    user_agent: String,
    retry: Retry,
}

/// How requests a registry could not serve for now (429, 500, 502, 503,
/// 504, a refused connection, a timeout) are tried again.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Retry {
    /// Attempts after the first.
    pub(crate) attempts: u32,
    /// The first wait; each next one doubles. A `Retry-After` header wins
    /// (up to [`MAX_RETRY_WAIT`]).
    pub(crate) base: Duration,
}

/// The longest wait between attempts, whatever `Retry-After` asks.
pub(crate) const MAX_RETRY_WAIT: Duration = Duration::from_secs(30);

impl Default for RegistryClientBuilder {
    fn default() -> Self {
        RegistryClientBuilder {
            insecure: BTreeSet::new(),
            credentials: None,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            user_agent: format!("kiln/{}", env!("CARGO_PKG_VERSION")),
            retry: Retry {
                attempts: 3,
                base: Duration::from_millis(500),
            },
        }
    }
}

impl RegistryClientBuilder {
    /// Talk plain HTTP to `registry` (a domain such as `myreg:5000`, or a
    /// host, which then covers every port).
    pub fn insecure(mut self, registry: impl Into<String>) -> Self {
        self.insecure.insert(registry.into());
        self
    }

    /// Where credentials come from. Without a store, every request is
    /// anonymous.
    pub fn credentials(mut self, store: impl CredentialStore + 'static) -> Self {
        self.credentials = Some(Arc::new(store));
        self
    }

    /// [`RegistryClientBuilder::credentials`] for a store that is shared already.
    pub fn credential_store(mut self, store: Arc<dyn CredentialStore>) -> Self {
        self.credentials = Some(store);
        self
    }

    /// How long to wait for a TCP (and TLS) connection. Default 10 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long a request may take as a whole. Default 60 s. Blob transfers
    /// are bounded by this as an idle time instead, since a large layer may
    /// take longer on a slow link.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How often a request the registry could not serve for now (429, 500,
    /// 502, 503, 504, a refused connection, a timeout) is tried again, the
    /// first wait `base` and each next one doubled, or what the registry's
    /// `Retry-After` asks (at most 30 s). Default 3 more times from 500 ms.
    pub fn retries(mut self, attempts: u32, base: Duration) -> Self {
        self.retry = Retry { attempts, base };
        self
    }

    /// The `User-Agent` header. Default `kiln/VERSION`.
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }

    /// The client.
    ///
    /// # Errors
    /// [`RegistryError::Client`] when the TLS setup fails (no usable root
    /// certificates on the system).
    pub fn build(self) -> Result<RegistryClient, RegistryError> {
        let http = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .read_timeout(self.request_timeout)
            .user_agent(self.user_agent)
            .build()
            .map_err(|e| RegistryError::Client {
                source: TransportError(e),
            })?;
        Ok(RegistryClient {
            inner: Arc::new(Inner {
                http,
                insecure: self.insecure,
                credentials: self.credentials,
                request_timeout: self.request_timeout,
                retry: self.retry,
                auth: Mutex::new(BTreeMap::new()),
            }),
        })
    }
}

impl RegistryClient {
    /// Options for a client.
    pub fn builder() -> RegistryClientBuilder {
        RegistryClientBuilder::default()
    }

    /// An anonymous client with the default options.
    ///
    /// # Errors
    /// As [`RegistryClientBuilder::build`].
    pub fn new() -> Result<Self, RegistryError> {
        Self::builder().build()
    }

    /// The base URL of `domain`'s API, `scheme://host`, by kiln's host rules.
    pub fn base_url(&self, domain: &str) -> String {
        let host = if domain == "docker.io" {
            DOCKER_HUB_HOST
        } else {
            domain
        };
        let scheme = if self.is_plain_http(domain) {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{host}")
    }

    fn is_plain_http(&self, domain: &str) -> bool {
        let host = host_of(domain);
        matches!(host, "localhost" | "127.0.0.1" | "::1")
            || self.inner.insecure.contains(domain)
            || self.inner.insecure.contains(host)
    }
}

/// The host part of a domain: `localhost:5000` → `localhost`,
/// `[::1]:5000` → `::1`.
fn host_of(domain: &str) -> &str {
    if let Some(rest) = domain.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    domain.split(':').next().unwrap_or(domain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_rules() {
        let client = RegistryClient::builder()
            .insecure("myreg:5000")
            .insecure("plain.example")
            .build()
            .expect("client");
        assert_eq!(client.base_url("docker.io"), "https://registry-1.docker.io");
        assert_eq!(client.base_url("ghcr.io"), "https://ghcr.io");
        assert_eq!(client.base_url("localhost:5000"), "http://localhost:5000");
        assert_eq!(client.base_url("127.0.0.1:5000"), "http://127.0.0.1:5000");
        assert_eq!(client.base_url("[::1]:5000"), "http://[::1]:5000");
        assert_eq!(client.base_url("myreg:5000"), "http://myreg:5000");
        assert_eq!(client.base_url("myreg:5001"), "https://myreg:5001");
        assert_eq!(
            client.base_url("plain.example:8080"),
            "http://plain.example:8080"
        );
        assert_eq!(client.base_url("127.0.0.2:5000"), "https://127.0.0.2:5000");
    }

    #[test]
    fn debug_shows_no_credentials() {
        let client = RegistryClient::builder()
            .credentials(|_: &str| Some(Credentials::basic("u", "very-secret")))
            .build()
            .expect("client");
        let shown = format!("{client:?}");
        assert!(!shown.contains("very-secret"), "{shown}");
    }
}
