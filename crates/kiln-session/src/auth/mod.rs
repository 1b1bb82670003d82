//! `moby.filesync.v1.Auth`: registry credentials for the daemon's pulls
//! and pushes.
//!
//! `Credentials` answers from Docker's `config.json` and credential
//! helpers. kiln holds no token authority: `GetTokenAuthority` answers
//! `Unavailable` (what buildx answers with `BUILDKIT_NO_CLIENT_TOKEN`), so
//! the daemon fetches registry tokens itself with the credentials, and
//! never calls `FetchToken` (which answers `Unimplemented`);
//! `VerifyTokenAuthority` answers `Unimplemented`, which the daemon treats
//! as "not verified".

mod config;

use crate::secrets::ExposeSecret;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kiln_proto::moby::filesync::v1::auth_server::{Auth, AuthServer};
use kiln_proto::moby::filesync::v1::{
    CredentialsRequest, CredentialsResponse, FetchTokenRequest, FetchTokenResponse,
    GetTokenAuthorityRequest, GetTokenAuthorityResponse, VerifyTokenAuthorityRequest,
    VerifyTokenAuthorityResponse,
};
use tokio::sync::Mutex;
use tonic::{Request, Response, Status};

pub use config::{default_config_path, normalize_host, Credentials, DOCKER_HUB_KEY};

use crate::error::Result;

/// Registry credentials from a Docker config file.
#[derive(Debug, Clone)]
pub struct DockerAuth {
    config_path: PathBuf,
    cache: Arc<Mutex<HashMap<String, Credentials>>>,
}

impl DockerAuth {
    /// Uses `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
    pub fn from_env() -> Self {
        Self::with_config_file(default_config_path())
    }

    /// Uses this config file (it need not exist: then every registry is
    /// anonymous).
    pub fn with_config_file(path: impl Into<PathBuf>) -> Self {
        Self {
            config_path: path.into(),
            cache: Arc::default(),
        }
    }

    /// The config file consulted.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The credentials for a registry host (`registry-1.docker.io`,
    /// `ghcr.io`, `localhost:5000`, …); anonymous when none are stored.
    /// Answers are cached for the life of the provider.
    ///
    /// # Errors
    /// [`crate::Error::DockerConfig`] for an unreadable config,
    /// [`crate::Error::InvalidAuthEntry`] for a bad `auth` value,
    /// [`crate::Error::CredentialHelper`] when a helper fails.
    pub async fn credentials(&self, host: &str) -> Result<Credentials> {
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.get(host) {
            return Ok(c.clone());
        }
        let config = config::ConfigFile::load(&self.config_path).await?;
        let creds = config.credentials(&self.config_path, host).await?;
        cache.insert(host.to_owned(), creds.clone());
        Ok(creds)
    }

    pub(crate) fn into_server(self) -> AuthServer<Self> {
        AuthServer::new(self)
    }
}

#[tonic::async_trait]
impl Auth for DockerAuth {
    async fn credentials(
        &self,
        request: Request<CredentialsRequest>,
    ) -> std::result::Result<Response<CredentialsResponse>, Status> {
        let host = request.into_inner().host;
        match DockerAuth::credentials(self, &host).await {
            Ok(creds) => {
                tracing::debug!(%host, anonymous = creds.is_anonymous(), "registry credentials requested");
                let secret = creds
                    .secret
                    .as_ref()
                    .map(|s| String::from_utf8_lossy(s.expose_secret()).into_owned())
                    .unwrap_or_default();
                Ok(Response::new(CredentialsResponse {
                    username: creds.username,
                    secret,
                }))
            }
            Err(err) => {
                tracing::warn!(%host, error = %err, "registry credentials unavailable");
                Err(err.to_status())
            }
        }
    }

    async fn fetch_token(
        &self,
        _request: Request<FetchTokenRequest>,
    ) -> std::result::Result<Response<FetchTokenResponse>, Status> {
        Err(Status::unimplemented(
            "kiln has no token authority; use Credentials",
        ))
    }

    async fn get_token_authority(
        &self,
        _request: Request<GetTokenAuthorityRequest>,
    ) -> std::result::Result<Response<GetTokenAuthorityResponse>, Status> {
        Err(Status::unavailable("client side tokens disabled"))
    }

    async fn verify_token_authority(
        &self,
        _request: Request<VerifyTokenAuthorityRequest>,
    ) -> std::result::Result<Response<VerifyTokenAuthorityResponse>, Status> {
        Err(Status::unimplemented("kiln has no token authority"))
    }
}
