//! The BuildKit session: the services a BuildKit daemon calls back on the
//! client while a build runs.
//!
//! A [`Session`] is built with the providers it serves: local directories
//! for the build context ([file sync](filesync)), targets for exporter
//! output ([file send](ExportTarget)), [secrets](SecretStore), [ssh
//! agents](SshAgents) and [registry credentials](DockerAuth). It announces
//! itself with [`Session::headers`] (the method list is derived from what
//! is registered) and is then served with [`Session::serve`] as an HTTP/2
//! server on the connection the daemon dials back over: the upgraded
//! `POST /session` of a Docker Engine, or a `Control.Session` call of a
//! standalone buildkitd wrapped with [`bytes_stream_io`].
//!
//! ```no_run
//! use kiln_session::{ExportTarget, SecretId, SecretSource, SecretStore, Session, SyncDirOptions};
//!
//! # async fn run(conn: tokio::net::TcpStream) -> Result<(), kiln_session::Error> {
//! let mut secrets = SecretStore::new();
//! secrets.insert(SecretId::new("npmrc")?, SecretSource::File("/home/me/.npmrc".into()))?;
//!
//! let session = Session::builder()
//!     .name("my-build")
//!     .shared_key("my-project")
//!     .sync_dir("context", "./app", SyncDirOptions::default().dockerignore(true))
//!     .sync_dir("dockerfile", "./app", SyncDirOptions::default())
//!     .export(0, ExportTarget::file("image.tar"))
//!     .secrets(secrets)
//!     .build()?;
//!
//! // Send session.headers() with the POST /session upgrade (or as gRPC
//! // metadata on Control.Session), use session.id() in the SolveRequest,
//! // then serve on the connection until the daemon closes it.
//! for (name, value) in session.headers() {
//!     println!("{name}: {value}");
//! }
//! session.serve(conn).await?;
//! # Ok(()) }
//! ```
//!
//! Everything the daemon sends is treated as untrusted: exported paths are
//! confined to their destination, secrets never appear in `Debug` output
//! or error messages, and credentials are never logged.

mod auth;
mod content;
mod error;
pub mod filesend;
pub mod filesync;
mod health;
mod io;
mod metadata;
mod secrets;
mod session;
mod ssh;

pub use auth::{default_config_path, normalize_host, Credentials, DockerAuth, DOCKER_HUB_KEY};
pub use content::OciLayouts;
pub use error::{Error, Result};
pub use filesend::ExportTarget;
pub use filesync::{FileSyncProvider, SyncDirOptions, SyncStats};
pub use health::Liveness;
pub use io::{bytes_stream_io, BytesStreamIo};
pub use secrets::{
    ExposeSecret, SecretId, SecretSource, SecretSpec, SecretStore, SecretValue, MAX_SECRET_SIZE,
};
pub use session::{Session, SessionBuilder};
pub use ssh::{Keyring, SshAgents, SshSpec};
