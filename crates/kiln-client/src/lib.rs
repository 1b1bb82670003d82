//! kiln's connection to BuildKit.
//!
//! [`Client::connect`] opens one HTTP/2 gRPC connection over whichever
//! transport the [`Address`] names: a unix socket or TCP (optionally mutual
//! TLS through rustls) for a standalone buildkitd, the Docker Engine's
//! `POST /grpc` upgrade for its embedded BuildKit, or a helper command's
//! stdio (`docker exec … buildctl dial-stdio`, `kubectl exec …`, `ssh …`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), kiln_client::Error> {
//! use kiln_client::{resolve_address, Client, TlsOptions};
//! let (address, _source) = resolve_address(Some("docker://")).await?;
//! let client = Client::connect(address, &TlsOptions::default()).await?;
//! for worker in client.list_workers().await? {
//!     println!("{} {:?}", worker.id, worker.platforms);
//! }
//! # Ok(()) }
//! ```

pub mod address;
mod client;
mod daemon;
pub mod engine;
pub mod error;
pub mod gateway;
mod inflight;
pub mod progress;
pub mod render;
mod session;
mod solve;
pub mod steps;
pub mod tls;
pub mod transport;

/// The wire types and protocol constants kiln-client's API speaks in
/// (definitions, exporter attributes), and the session it attaches: public
/// dependencies, re-exported so callers use exactly these.
pub use kiln_proto;
pub use kiln_session;

pub use address::{Address, DockerHost};
pub use client::{
    docker_answers, resolve_address, AddressSource, BuildRecord, BuildkitVersion, CacheRecord,
    Client, GcPolicy, PruneOptions, Worker, BUILDKIT_HOST_ENV,
};
pub use daemon::{DaemonInfo, DaemonKind, ExporterKind};
pub use engine::{Engine, EngineError, EngineInfo, ImageStore, RegistryAuth};
pub use error::{AddressError, DialError, Error, TlsConfigError};
pub use inflight::{in_flight, InFlight};
pub use session::{Attached, Reattach, SessionTransport};
pub use solve::{
    new_build_ref, solve_failure, CacheSpec, ExporterSpec, SolveFailure, SolveRequest,
    SolveResponse,
};
pub use tls::TlsOptions;
