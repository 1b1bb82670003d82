//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong while building or serving a session.
///
/// No variant ever carries a secret value or a credential: secrets are
/// named by id, credentials by host.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The HTTP/2 connection the session was served on failed.
    #[error("session connection failed")]
    Serve(#[source] hyper::Error),

    /// Reading or writing a local file failed.
    #[error("{op} {path}")]
    Io {
        /// What was being done (`"read"`, `"create"`, …).
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A directory registered for file sync is not a directory.
    #[error("sync dir {name:?}: {path} is not a directory")]
    NotADirectory {
        /// The name the daemon asks for (`context`, `dockerfile`, …).
        name: String,
        /// The host path.
        path: PathBuf,
    },

    /// Two providers were registered under the same name or id.
    #[error("duplicate {kind} {name:?}")]
    Duplicate {
        /// What was duplicated (`"sync dir"`, `"exporter id"`, `"ssh id"`, `"secret"`).
        kind: &'static str,
        /// The duplicated name or id.
        name: String,
    },

    /// An include/exclude/ignore pattern is malformed.
    #[error("invalid pattern {pattern:?}: {reason}")]
    Pattern {
        /// The pattern as given.
        pattern: String,
        /// Why it is invalid.
        reason: &'static str,
    },

    /// A file name cannot travel in the fsutil protocol (its `Stat.path` is a
    /// protobuf string, so it must be UTF-8).
    #[error("path {path} is not valid UTF-8")]
    NonUtf8Path {
        /// The offending path.
        path: PathBuf,
    },

    /// A `--secret` spec could not be parsed or its source is unusable.
    #[error("invalid secret {spec:?}: {reason}")]
    SecretSpec {
        /// The spec (never contains a value: specs name sources, not values).
        spec: String,
        /// Why it was rejected.
        reason: String,
    },

    /// A directory given as an OCI layout is not one.
    #[error("{path} is not an OCI image layout (it needs an `oci-layout` file and a `blobs` directory; unpack an `oci` export or use `skopeo copy … oci:DIR`)")]
    NotAnOciLayout {
        /// The directory.
        path: PathBuf,
    },

    /// A secret exceeds BuildKit's 500 KiB limit.
    #[error("secret {id} is too big ({size} bytes, max {max})")]
    SecretTooBig {
        /// The secret's id.
        id: String,
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },

    /// A `--ssh` spec could not be parsed or its socket/keys are unusable.
    #[error("invalid ssh agent {id:?}: {reason}")]
    SshSpec {
        /// The agent id (`default` unless named).
        id: String,
        /// Why it was rejected.
        reason: String,
    },

    /// Docker's `config.json` could not be parsed.
    #[error("invalid docker config {path}")]
    DockerConfig {
        /// The config file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },

    /// A `docker-credential-<helper>` run failed.
    #[error("credential helper docker-credential-{helper} failed for {host}: {reason}")]
    CredentialHelper {
        /// The helper's suffix (`desktop`, `pass`, …).
        helper: String,
        /// The registry host asked for.
        host: String,
        /// What went wrong (exit status and the helper's message; helpers
        /// never print the secret on failure).
        reason: String,
    },

    /// An `auth` entry of `config.json` is not valid base64 `user:password`.
    #[error("invalid auth entry for {host} in {path}")]
    InvalidAuthEntry {
        /// The registry key in `auths`.
        host: String,
        /// The config file.
        path: PathBuf,
    },

    /// A path sent by the daemon was refused (absolute, `..`, through a
    /// symlink, …): nothing was written for it.
    #[error("refused path {path:?} from the daemon: {reason}")]
    UnsafePath {
        /// The path as the daemon sent it.
        path: String,
        /// Why it was refused.
        reason: &'static str,
    },

    /// A file of the build context changed between its listing and its
    /// sending: the daemon would get a mixture of two versions.
    #[error("{path} changed while the build context was being sent (listed with {listed} bytes, {read} read): something writes into the context during the build; stop it (or exclude the file in .dockerignore) and run kiln again")]
    FileChanged {
        /// The file.
        path: PathBuf,
        /// Its size when listed.
        listed: u64,
        /// What was read when the daemon asked for it.
        read: u64,
    },

    /// The peer broke the fsutil packet protocol.
    #[error("file transfer protocol violation: {reason}")]
    PacketProtocol {
        /// What was wrong.
        reason: String,
    },

    /// The daemon's export exceeded a limit kiln sets to bound its memory.
    #[error("the daemon's export exceeds kiln's limit of {limit} {what}")]
    ExportTooLarge {
        /// The limit.
        limit: usize,
        /// What it counts.
        what: &'static str,
    },
    /// The peer reported an error (an fsutil `ERR` packet).
    #[error("error from the daemon: {message}")]
    Remote {
        /// The peer's message.
        message: String,
    },

    /// The gRPC stream failed.
    #[error("transfer stream failed")]
    Stream(#[source] tonic::Status),
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn protocol(reason: impl Into<String>) -> Self {
        Self::PacketProtocol {
            reason: reason.into(),
        }
    }

    /// The error and its sources, `: `-separated.
    pub(crate) fn message_chain(&self) -> String {
        use std::error::Error as _;
        let mut message = self.to_string();
        let mut source = self.source();
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        message
    }

    /// The gRPC status the daemon should see for this error.
    pub(crate) fn to_status(&self) -> tonic::Status {
        let message = self.message_chain();
        match self {
            Self::Stream(status) => status.clone(),
            Self::UnsafePath { .. } => tonic::Status::permission_denied(message),
            Self::Pattern { .. } => tonic::Status::invalid_argument(message),
            Self::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                tonic::Status::not_found(message)
            }
            _ => tonic::Status::unknown(message),
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
