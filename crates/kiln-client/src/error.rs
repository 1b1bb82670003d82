//! kiln-client's errors.

use std::path::PathBuf;

use crate::address::SCHEMES;

/// A malformed BuildKit address.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    /// No `scheme://` prefix.
    #[error("address {address:?} has no scheme; use one of {SCHEMES}")]
    MissingScheme { address: String },
    /// A scheme kiln does not know.
    #[error("address {address:?} has an unknown scheme {scheme:?}; use one of {SCHEMES}")]
    UnknownScheme { address: String, scheme: String },
    /// A known scheme with a malformed rest.
    #[error("address {address:?} is not valid: {reason}")]
    Invalid { address: String, reason: String },
    /// `DOCKER_HOST` with a scheme kiln cannot dial.
    #[error(
        "DOCKER_HOST {address:?} is not supported; use unix:///path/docker.sock or tcp://host:port"
    )]
    UnsupportedDockerHost { address: String },
}

/// A TLS option that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsConfigError {
    /// A certificate or key file that cannot be read.
    #[error("cannot read {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file without the PEM content expected.
    #[error("{path} holds no {what} in PEM form")]
    NoPem { what: &'static str, path: PathBuf },
    /// The client certificate or key was given alone.
    #[error("--tlscert and --tlskey go together: give both for mutual TLS, or neither")]
    HalfClientCert,
    /// Client certificate options without a CA.
    #[error("--tlscert/--tlskey need --tlscacert: kiln never connects with TLS verification off")]
    ClientCertWithoutCa,
    /// TLS options on an address that is not `tcp://`.
    #[error("TLS options apply only to tcp:// addresses, not {address}")]
    NotTcp { address: String },
    /// rustls rejected the configuration (bad key, bad certificate).
    #[error("TLS configuration rejected: {source}")]
    Rustls {
        #[source]
        source: rustls::Error,
    },
    /// The server name is not a valid DNS name or IP address.
    #[error("TLS server name {name:?} is not a DNS name or IP address")]
    ServerName { name: String },
}

/// Why a connection to the daemon could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DialError {
    /// The socket or host could not be reached.
    #[error("{source}")]
    Io {
        #[source]
        source: std::io::Error,
    },
    /// The dial did not finish in time.
    #[error("no answer within {seconds} s")]
    Timeout { seconds: u64 },
    /// The TLS handshake failed (certificate not trusted, name mismatch, client cert refused).
    #[error("TLS handshake failed: {source}")]
    Tls {
        #[source]
        source: std::io::Error,
    },
    /// The peer did not speak HTTP/1.1 as a Docker Engine would.
    #[error("it did not answer as a Docker Engine: {reason}")]
    NotDocker { reason: String },
    /// The Docker Engine refused the upgrade to BuildKit's gRPC.
    #[error("the Docker Engine answered {status} to POST {path} (expected 101 Switching Protocols){body}")]
    UpgradeRefused {
        path: &'static str,
        status: http::StatusCode,
        body: String,
    },
    /// A connection helper command could not be started.
    #[error("cannot run {program:?}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
}

/// Errors from [`Client`](crate::Client) calls.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The address could not be parsed.
    #[error(transparent)]
    Address(#[from] AddressError),
    /// `BUILDKIT_HOST` holds an address that cannot be parsed.
    #[error("BUILDKIT_HOST: {source}")]
    AddressEnv {
        #[source]
        source: AddressError,
    },
    /// TLS options could not be used.
    #[error(transparent)]
    TlsConfig(#[from] TlsConfigError),
    /// No connection could be made.
    #[error("cannot connect to BuildKit at {address}: {source}{helper}")]
    Dial {
        address: String,
        #[source]
        source: DialError,
        /// The tail of a helper command's stderr, if any.
        helper: String,
    },
    /// The connection was made at the transport level, but gRPC over it failed.
    #[error("cannot connect to BuildKit at {address}: {message}{helper}")]
    Handshake {
        address: String,
        message: String,
        helper: String,
    },
    /// A call failed.
    #[error("{method} on {address} failed: {}", describe_status(.status))]
    Rpc {
        address: String,
        method: &'static str,
        #[source]
        status: tonic::Status,
        /// What the transport suggests (e.g. a TLS connection the daemon closed).
        transport_hint: Option<String>,
    },
    /// A Docker Engine API call (image store, saving an image) failed.
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
}

impl Error {
    /// A hint telling the user what to do next, when there is one.
    #[must_use]
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Address(_) | Error::AddressEnv { .. } => Some(format!(
                "addresses look like unix:///run/buildkit/buildkitd.sock, tcp://127.0.0.1:1234, docker://, docker-container://NAME, podman-container://NAME (schemes: {SCHEMES})"
            )),
            Error::Dial { address, source, .. } => Some(dial_hint(address, source)),
            Error::Handshake { address, .. } => Some(format!(
                "{address} accepted the connection but did not speak BuildKit's gRPC; check that the address points at buildkitd (or use docker:// for a Docker Engine)"
            )),
            Error::TlsConfig(_) => Some(
                "TLS needs --tlscacert (server verification); add --tlscert and --tlskey for mutual TLS".into(),
            ),
            Error::Rpc {
                transport_hint: Some(h),
                ..
            } => Some(h.clone()),
            Error::Rpc {
                status, address, ..
            } if is_connection_loss(status) => Some(format!(
                "the connection to {address} broke during the call: check that the daemon is still running and that the address points at BuildKit (for a Docker Engine's BuildKit use docker://)"
            )),
            Error::Rpc { .. } => None,
            Error::Engine(_) => Some(
                "kiln asks the Docker Engine's API which image store it uses: check that the docker:// address is a Docker Engine and that this user may use its socket".into(),
            ),
        }
    }

    /// Whether the daemon said, by its status code, that the thing asked
    /// for does not exist (BuildKit maps containerd's "not found" to gRPC
    /// `NotFound`). Daemons that send it as `Unknown` with a text are not
    /// matched here: kiln never reads an error's text; callers ask the
    /// registry instead.
    #[must_use]
    pub fn is_not_found(&self) -> bool {
        let Some(s) = self.status() else {
            return false;
        };
        s.code() == tonic::Code::NotFound
    }

    /// The gRPC status, for call failures.
    #[must_use]
    pub fn status(&self) -> Option<&tonic::Status> {
        match self {
            Error::Rpc { status, .. } => Some(status),
            _ => None,
        }
    }
}

fn dial_hint(address: &str, source: &DialError) -> String {
    let is = |s: &str| address.starts_with(s);
    match source {
        DialError::Io { source } if source.kind() == std::io::ErrorKind::PermissionDenied => {
            format!("permission denied on {address}: run as a user that may use the socket (e.g. in the docker group) or as root")
        }
        DialError::UpgradeRefused { .. } | DialError::NotDocker { .. } => {
            "the socket is not a Docker Engine with BuildKit; for a standalone buildkitd use unix:// or tcp:// instead of docker://".into()
        }
        DialError::Tls { .. } => {
            "check --tlscacert (the CA that signed the daemon's certificate), --tlsservername (a name in the daemon's certificate) and, for mutual TLS, --tlscert/--tlskey".into()
        }
        DialError::Spawn { program, .. } => format!("install {program} or put it on PATH"),
        _ if is("docker://") => {
            "start the Docker Engine (dockerd), or point DOCKER_HOST / --addr docker:///path/docker.sock at its socket".into()
        }
        _ if is("unix://") || is("tcp://") => {
            "start buildkitd (e.g. `buildkitd --addr unix:///run/buildkit/buildkitd.sock`, or `docker compose up -d buildkitd` from kiln's repo), or use --addr docker:// for a Docker Engine's BuildKit".into()
        }
        _ => "check that the helper command can reach a BuildKit daemon (it runs `buildctl dial-stdio` there)".into(),
    }
}

/// Whether a status means the connection went away rather than the daemon
/// answering with an error: a status made on this side from a transport
/// failure carries that failure as its source; one from the wire never does.
#[must_use]
pub fn is_connection_loss(status: &tonic::Status) -> bool {
    use std::error::Error as _;
    matches!(
        status.code(),
        tonic::Code::Unavailable | tonic::Code::Cancelled
    ) || status.source().is_some()
}

/// One line for a gRPC status: the daemon's message, or, for a status made
/// on this side from a transport failure (it carries its cause), the
/// innermost cause (e.g. "received fatal alert: CertificateRequired").
#[must_use]
pub fn describe_status(status: &tonic::Status) -> String {
    use std::error::Error as _;
    let msg = status.message().trim();
    if msg.is_empty() || status.source().is_some() {
        let mut cur = status.source();
        let mut deepest = None;
        while let Some(e) = cur {
            deepest = Some(e.to_string());
            cur = e.source();
        }
        if let Some(d) = deepest {
            return format!("connection lost: {d}");
        }
        if status.code() == tonic::Code::Cancelled || status.code() == tonic::Code::Unavailable {
            return "the daemon closed the connection".into();
        }
    }
    if msg.is_empty() {
        format!("{:?}", status.code())
    } else {
        msg.to_string()
    }
}
