//! `moby.buildkit.secrets.v1.Secrets`: build secrets (`RUN --mount=type=secret`).
//!
//! A [`SecretStore`] maps ids to sources: a file read when the daemon asks,
//! an environment variable read when the daemon asks, or bytes in memory.
//! Unknown ids answer `NotFound`, which the daemon needs for `required=false`
//! mounts. Values travel in [`SecretValue`], which never prints its bytes.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::sync::Arc;

use kiln_proto::moby::buildkit::secrets::v1::secrets_server::{Secrets, SecretsServer};
use kiln_proto::moby::buildkit::secrets::v1::{GetSecretRequest, GetSecretResponse};
use tonic::{Request, Response, Status};

use crate::error::{Error, Result};

/// BuildKit's limit on a secret's size (`secretsprovider.MaxSecretSize`).
pub const MAX_SECRET_SIZE: u64 = 500 * 1024;

/// A secret's id, as `RUN --mount=type=secret,id=ID` names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SecretId(String);

impl SecretId {
    /// Validates an id: it must not be empty.
    ///
    /// # Errors
    /// [`Error::SecretSpec`] for an empty id.
    pub fn new(id: impl Into<String>) -> Result<Self> {
        let id = id.into();
        if id.is_empty() {
            return Err(Error::SecretSpec {
                spec: id,
                reason: "secret id must not be empty".to_owned(),
            });
        }
        Ok(Self(id))
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for SecretId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SecretId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Secret bytes: `secrecy`'s redacting box (`Debug` prints `[REDACTED]`,
/// the memory is zeroed on drop), the one secret type kiln uses. Read it
/// with [`ExposeSecret::expose_secret`], the one deliberate way.
pub type SecretValue = secrecy::SecretSlice<u8>;

pub use secrecy::ExposeSecret;

/// Where a secret's value comes from.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum SecretSource {
    /// A file, read each time the daemon asks.
    File(PathBuf),
    /// An environment variable, read each time the daemon asks (unset reads
    /// as empty, like BuildKit).
    Env(String),
    /// Bytes held in memory.
    Value(SecretValue),
}

/// A secret as a `--secret` flag gives it (kiln-build parses the flag).
/// Without `file` or `env`, the source is decided when the spec is added to
/// a store: the environment variable named like the id if it is set, else
/// the file named like the id (BuildKit's `NewStore`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretSpec {
    /// The id.
    pub id: SecretId,
    /// `src=`/`source=` (or the value of `src` with `type=env`).
    pub file: Option<PathBuf>,
    /// `env=`.
    pub env: Option<String>,
}

/// Secrets by id.
#[derive(Debug, Clone, Default)]
pub struct SecretStore {
    secrets: BTreeMap<SecretId, SecretSource>,
}

impl SecretStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a secret.
    ///
    /// # Errors
    /// [`Error::Duplicate`] when the id is taken.
    pub fn insert(&mut self, id: SecretId, source: SecretSource) -> Result<()> {
        if self.secrets.contains_key(&id) {
            return Err(Error::Duplicate {
                kind: "secret",
                name: id.0,
            });
        }
        self.secrets.insert(id, source);
        Ok(())
    }

    /// Adds a parsed `--secret` flag, deciding the source like BuildKit's
    /// `NewStore` and checking that a file source exists and fits the limit.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read, [`Error::SecretTooBig`]
    /// when it is over [`MAX_SECRET_SIZE`], [`Error::Duplicate`] for a taken id.
    pub fn add_spec(&mut self, spec: SecretSpec) -> Result<()> {
        let source = match (spec.env, spec.file) {
            (Some(env), _) => SecretSource::Env(env),
            (None, Some(file)) => SecretSource::File(file),
            (None, None) if std::env::var_os(spec.id.as_str()).is_some() => {
                SecretSource::Env(spec.id.0.clone())
            }
            (None, None) => SecretSource::File(PathBuf::from(spec.id.as_str())),
        };
        if let SecretSource::File(path) = &source {
            let meta = std::fs::metadata(path).map_err(|e| Error::io("stat", path, e))?;
            if meta.len() > MAX_SECRET_SIZE {
                return Err(Error::SecretTooBig {
                    id: spec.id.0,
                    size: meta.len(),
                    max: MAX_SECRET_SIZE,
                });
            }
        }
        self.insert(spec.id, source)
    }

    /// Whether no secret is registered.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// Looks a secret up and reads its value now. `Ok(None)` for an unknown id.
    ///
    /// # Errors
    /// [`Error::Io`] when a file source cannot be read,
    /// [`Error::SecretTooBig`] when the value is over [`MAX_SECRET_SIZE`].
    pub async fn get(&self, id: &str) -> Result<Option<SecretValue>> {
        let Some((id, source)) = self.secrets.get_key_value(id) else {
            return Ok(None);
        };
        let value = match source {
            SecretSource::File(path) => SecretValue::from(
                tokio::fs::read(path)
                    .await
                    .map_err(|e| Error::io("read secret file", path, e))?,
            ),
            SecretSource::Env(var) => SecretValue::from(
                std::env::var_os(var)
                    .map(OsString::into_vec)
                    .unwrap_or_default(),
            ),
            SecretSource::Value(v) => v.clone(),
        };
        if value.expose_secret().len() as u64 > MAX_SECRET_SIZE {
            return Err(Error::SecretTooBig {
                id: id.0.clone(),
                size: value.expose_secret().len() as u64,
                max: MAX_SECRET_SIZE,
            });
        }
        Ok(Some(value))
    }

    pub(crate) fn into_server(self) -> SecretsServer<SecretsService> {
        SecretsServer::new(SecretsService(Arc::new(self)))
    }
}

/// The gRPC face of a [`SecretStore`].
#[derive(Debug, Clone)]
pub(crate) struct SecretsService(Arc<SecretStore>);

#[tonic::async_trait]
impl Secrets for SecretsService {
    async fn get_secret(
        &self,
        request: Request<GetSecretRequest>,
    ) -> Result<Response<GetSecretResponse>, Status> {
        let id = request.into_inner().id;
        match self.0.get(&id).await {
            Ok(Some(value)) => {
                tracing::debug!(secret = %id, "secret sent");
                Ok(Response::new(GetSecretResponse {
                    data: value.expose_secret().to_vec(),
                }))
            }
            Ok(None) => {
                tracing::debug!(secret = %id, "secret not found");
                Err(Status::not_found(format!("secret {id} not found")))
            }
            Err(err) => {
                tracing::warn!(secret = %id, error = %err, "secret unavailable");
                // Not NotFound: that would silently skip an optional mount
                // whose source is broken. BuildKit answers Unknown too.
                Err(Status::unknown(err.message_chain()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_is_redacted() {
        let v = SecretValue::from(b"hunter2".to_vec());
        assert!(!format!("{v:?}").contains("hunter2"));
        assert!(format!("{v:?}").contains("REDACTED"));
        let src = SecretSource::Value(v);
        assert!(!format!("{src:?}").contains("hunter2"));
    }
}
