//! TLS for `tcp://` addresses, through rustls. Verification is never off.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::error::TlsConfigError;

/// TLS options as given on the command line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// CA bundle used to verify the daemon's certificate (`--tlscacert`).
    pub ca_cert: Option<PathBuf>,
    /// Client certificate for mutual TLS (`--tlscert`).
    pub cert: Option<PathBuf>,
    /// Client key for mutual TLS (`--tlskey`).
    pub key: Option<PathBuf>,
    /// Name to verify in the daemon's certificate (`--tlsservername`); the host otherwise.
    pub server_name: Option<String>,
}

impl TlsOptions {
    /// Whether any TLS option was given.
    #[must_use]
    pub fn is_set(&self) -> bool {
        self.ca_cert.is_some()
            || self.cert.is_some()
            || self.key.is_some()
            || self.server_name.is_some()
    }
}

/// A ready rustls client configuration plus the name to verify.
#[derive(Clone)]
pub(crate) struct TlsSetup {
    pub config: Arc<rustls::ClientConfig>,
    pub server_name: ServerName<'static>,
    /// Whether a client certificate is presented.
    pub client_auth: bool,
}

impl std::fmt::Debug for TlsSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSetup")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl TlsSetup {
    pub(crate) fn new(opts: &TlsOptions, host: &str) -> Result<Self, TlsConfigError> {
        let Some(ca_path) = &opts.ca_cert else {
            return Err(TlsConfigError::ClientCertWithoutCa);
        };
        let mut roots = rustls::RootCertStore::empty();
        let cas = read_certs(ca_path, "CA certificate")?;
        for ca in cas {
            roots
                .add(ca)
                .map_err(|source| TlsConfigError::Rustls { source })?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|source| TlsConfigError::Rustls { source })?
            .with_root_certificates(roots);
        let mut config = match (&opts.cert, &opts.key) {
            (Some(cert), Some(key)) => {
                let chain = read_certs(cert, "certificate")?;
                let key = read_key(key)?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|source| TlsConfigError::Rustls { source })?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => return Err(TlsConfigError::HalfClientCert),
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        let name = opts.server_name.clone().unwrap_or_else(|| host.to_string());
        let server_name =
            ServerName::try_from(name.clone()).map_err(|_| TlsConfigError::ServerName { name })?;
        Ok(TlsSetup {
            config: Arc::new(config),
            server_name,
            client_auth: opts.cert.is_some(),
        })
    }
}

fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, TlsConfigError> {
    std::fs::read(path).map_err(|source| TlsConfigError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

fn read_certs(
    path: &Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let pem = read(path, what)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_slice())
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsConfigError::NoPem {
            what,
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
    let pem = read(path, "private key")?;
    match rustls_pemfile::private_key(&mut pem.as_slice()) {
        Ok(Some(key)) => Ok(key),
        _ => Err(TlsConfigError::NoPem {
            what: "private key",
            path: path.to_path_buf(),
        }),
    }
}
