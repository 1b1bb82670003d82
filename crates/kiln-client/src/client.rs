//! The connection to a BuildKit daemon and its Control API calls.

use std::collections::BTreeMap;
use std::error::Error as _;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kiln_proto::control::{self, control_client::ControlClient};
use serde::Serialize;
use tonic::transport::{Channel, Endpoint};

use crate::address::{Address, DockerHost, DEFAULT_BUILDKITD_SOCKET};
use crate::error::{DialError, Error};
use crate::tls::{TlsOptions, TlsSetup};
use crate::transport::{docker, Connector, Dialer};

/// The environment variable naming the daemon address.
pub const BUILDKIT_HOST_ENV: &str = "BUILDKIT_HOST";

/// Where the address came from, so `kiln info` can say.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AddressSource {
    /// `--addr`.
    Flag,
    /// `BUILDKIT_HOST`.
    Env,
    /// No address given; a Docker Engine answered.
    DefaultDocker,
    /// No address given and no Docker Engine answered.
    DefaultBuildkitd,
}

impl fmt::Display for AddressSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressSource::Flag => "from --addr",
            AddressSource::Env => "from BUILDKIT_HOST",
            AddressSource::DefaultDocker => "default: a Docker Engine answered",
            AddressSource::DefaultBuildkitd => "default: no Docker Engine answered",
        })
    }
}

/// Picks the daemon address: the flag, else `BUILDKIT_HOST`, else `docker://`
/// if a Docker Engine answers (`DOCKER_HOST` or `/var/run/docker.sock`), else
/// the standalone buildkitd socket.
///
/// # Errors
/// [`Error::Address`] when the flag or environment holds a malformed address.
pub async fn resolve_address(flag: Option<&str>) -> Result<(Address, AddressSource), Error> {
    if let Some(a) = flag.filter(|a| !a.is_empty()) {
        return Ok((Address::parse(a)?, AddressSource::Flag));
    }
    if let Ok(a) = std::env::var(BUILDKIT_HOST_ENV) {
        if !a.is_empty() {
            let address = Address::parse(&a).map_err(|source| Error::AddressEnv { source })?;
            return Ok((address, AddressSource::Env));
        }
    }
    let docker = DockerHost::from_env()?;
    if docker_answers(&docker).await {
        return Ok((Address::Docker(docker), AddressSource::DefaultDocker));
    }
    Ok((
        Address::Unix(DEFAULT_BUILDKITD_SOCKET.into()),
        AddressSource::DefaultBuildkitd,
    ))
}

/// Whether a Docker Engine answers `/_ping` on `host` within a second.
pub async fn docker_answers(host: &DockerHost) -> bool {
    let attempt = async {
        match crate::transport::dial_docker_host(host).await {
            Ok(io) => docker::ping(io).await,
            Err(_) => false,
        }
    };
    tokio::time::timeout(Duration::from_secs(1), attempt)
        .await
        .unwrap_or(false)
}

/// The HTTP/2 connection window kiln offers the daemon (see [`Client::connect`]).
const CONNECTION_WINDOW: u32 = 16 * 1024 * 1024;
/// The HTTP/2 stream window kiln offers the daemon.
const STREAM_WINDOW: u32 = 8 * 1024 * 1024;

/// A connected BuildKit client. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct Client {
    address: Address,
    channel: Channel,
    dialer: Arc<Dialer>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("address", &self.address.to_string())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects to `address` (TLS options apply to `tcp://` only) and
    /// completes the HTTP/2 handshake, so a wrong address fails here.
    ///
    /// # Errors
    /// [`Error::TlsConfig`], [`Error::Dial`] (the socket, TLS or upgrade
    /// failed), [`Error::Handshake`] (something answered, but not gRPC).
    pub async fn connect(address: Address, tls: &TlsOptions) -> Result<Client, Error> {
        let tls = match (&address, tls.is_set()) {
            (_, false) => None,
            (Address::Tcp { host, .. }, true) => Some(TlsSetup::new(tls, host)?),
            (other, true) => {
                return Err(crate::error::TlsConfigError::NotTcp {
                    address: other.to_string(),
                }
                .into())
            }
        };
        let dialer = Arc::new(Dialer {
            address: address.clone(),
            tls,
            helper_stderr: Arc::new(Mutex::new(String::new())),
        });
        // The URI is never dialled: the connector decides where bytes go.
        // Fixed, large flow-control windows rather than hyper's adaptive
        // ones: the adaptive window starts at 64 KiB, and h2 sizes its
        // budget for small DATA frames from the connection window (half of
        // it). BuildKit streams many small frames (status updates, session
        // packets tunnelled through Control.Session); when a busy client
        // falls behind reading them, a 32 KiB budget runs out and h2 kills
        // the whole connection with GOAWAY ENHANCE_YOUR_CALM
        // "too_many_data_frames", Solve included. 16 MiB gives 8 MiB.
        let endpoint = Endpoint::from_static("http://buildkitd.invalid")
            .connect_timeout(crate::transport::DIAL_TIMEOUT)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .initial_stream_window_size(STREAM_WINDOW);
        let channel = endpoint
            .connect_with_connector(Connector {
                dialer: dialer.clone(),
            })
            .await
            .map_err(|e| connect_error(&address, &dialer, &e))?;
        Ok(Client {
            address,
            channel,
            dialer,
        })
    }

    /// The address this client is connected to.
    #[must_use]
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// The underlying gRPC channel, for other services on the same connection.
    #[must_use]
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// A Control API client with the message limits BuildKit needs.
    #[must_use]
    pub fn control(&self) -> ControlClient<Channel> {
        ControlClient::new(self.channel.clone())
            .max_decoding_message_size(kiln_proto::MAX_MESSAGE_SIZE)
            .max_encoding_message_size(kiln_proto::MAX_MESSAGE_SIZE)
    }

    pub(crate) fn rpc_error(&self, method: &'static str, status: tonic::Status) -> Error {
        let helper = self.helper_tail();
        let status = if helper.is_empty() {
            status
        } else {
            tonic::Status::new(status.code(), format!("{}{helper}", status.message()))
        };
        let transport_hint = match &self.dialer.tls {
            Some(tls) if crate::error::is_connection_loss(&status) && !tls.client_auth => Some(
                "the daemon closed the TLS connection: it may require a client certificate; pass --tlscert and --tlskey".to_string(),
            ),
            Some(_) if crate::error::is_connection_loss(&status) => Some(
                "the daemon closed the TLS connection: it may not accept this client certificate (--tlscert/--tlskey must be signed by a CA the daemon trusts)".to_string(),
            ),
            _ => None,
        };
        Error::Rpc {
            address: self.address.to_string(),
            method,
            status,
            transport_hint,
        }
    }

    fn helper_tail(&self) -> String {
        helper_tail(&self.dialer)
    }

    /// `Control.Info`: the daemon's BuildKit version.
    ///
    /// # Errors
    /// [`Error::Rpc`] when the call fails.
    pub async fn info(&self) -> Result<Option<BuildkitVersion>, Error> {
        let resp = self
            .control()
            .info(control::InfoRequest {})
            .await
            .map_err(|s| self.rpc_error("Info", s))?
            .into_inner();
        Ok(resp.buildkit_version.map(|v| BuildkitVersion {
            package: v.package,
            version: v.version,
            revision: v.revision,
        }))
    }

    /// The builds running on the daemon now (BuildKit's build history,
    /// active builds only; Docker's embedded BuildKit serves it too).
    ///
    /// # Errors
    /// [`Error::Rpc`] when the call or its stream fails.
    pub async fn active_builds(&self) -> Result<Vec<BuildRecord>, Error> {
        self.build_history(None, true).await
    }

    /// One build of the daemon's history, running or finished (`None`
    /// when the daemon has no record of `build_ref`).
    ///
    /// # Errors
    /// [`Error::Rpc`] when the call or its stream fails.
    pub async fn build_record(&self, build_ref: &str) -> Result<Option<BuildRecord>, Error> {
        Ok(self.build_history(Some(build_ref), false).await?.pop())
    }

    /// `Control.ListenBuildHistory` with early exit: the records the
    /// daemon has now (those still running only, with `active_only`).
    async fn build_history(
        &self,
        build_ref: Option<&str>,
        active_only: bool,
    ) -> Result<Vec<BuildRecord>, Error> {
        let mut stream = self
            .control()
            .listen_build_history(control::BuildHistoryRequest {
                active_only,
                early_exit: true,
                r#ref: build_ref.unwrap_or_default().to_string(),
                ..Default::default()
            })
            .await
            .map_err(|s| self.rpc_error("ListenBuildHistory", s))?
            .into_inner();
        let mut builds = BTreeMap::new();
        while let Some(event) = stream.next().await {
            let event = event.map_err(|s| self.rpc_error("ListenBuildHistory", s))?;
            let Some(record) = event.record else { continue };
            if event.r#type == control::BuildHistoryEventType::Deleted as i32 {
                builds.remove(&record.r#ref);
                continue;
            }
            builds.insert(
                record.r#ref.clone(),
                BuildRecord {
                    running: record.completed_at.is_none(),
                    error: record.error.map(|e| e.message),
                    build_ref: record.r#ref,
                    frontend: record.frontend,
                    exporters: record
                        .exporters
                        .into_iter()
                        .map(|e| (e.r#type, e.attrs.into_iter().collect()))
                        .collect(),
                },
            );
        }
        Ok(builds.into_values().collect())
    }

    /// `Control.ListWorkers`.
    ///
    /// # Errors
    /// [`Error::Rpc`] when the call fails.
    pub async fn list_workers(&self) -> Result<Vec<Worker>, Error> {
        let resp = self
            .control()
            .list_workers(control::ListWorkersRequest { filter: vec![] })
            .await
            .map_err(|s| self.rpc_error("ListWorkers", s))?
            .into_inner();
        Ok(resp
            .record
            .into_iter()
            .map(|w| Worker {
                id: w.id,
                platforms: w
                    .platforms
                    .iter()
                    .map(|p| {
                        let mut s = format!("{}/{}", p.os, p.architecture);
                        if !p.variant.is_empty() {
                            s.push('/');
                            s.push_str(&p.variant);
                        }
                        s
                    })
                    .collect(),
                labels: w.labels.into_iter().collect(),
                gc_policy: w
                    .gc_policy
                    .into_iter()
                    .map(|g| GcPolicy {
                        all: g.all,
                        filters: g.filters,
                        keep_duration_seconds: g.keep_duration / 1_000_000_000,
                        reserved_space: g.reserved_space,
                        max_used_space: g.max_used_space,
                        min_free_space: g.min_free_space,
                    })
                    .collect(),
            })
            .collect())
    }

    /// `Control.DiskUsage`: the build cache records.
    ///
    /// # Errors
    /// [`Error::Rpc`] when the call fails.
    pub async fn disk_usage(&self, filter: Vec<String>) -> Result<Vec<CacheRecord>, Error> {
        let resp = self
            .control()
            .disk_usage(control::DiskUsageRequest {
                filter,
                age_limit: 0,
            })
            .await
            .map_err(|s| self.rpc_error("DiskUsage", s))?
            .into_inner();
        let mut records: Vec<CacheRecord> =
            resp.record.into_iter().map(CacheRecord::from).collect();
        records.sort_by(|a, b| b.size.cmp(&a.size).then(a.id.cmp(&b.id)));
        Ok(records)
    }

    /// `Control.Prune`: removes build cache and returns what was removed.
    ///
    /// # Errors
    /// [`Error::Rpc`] when the call fails.
    pub async fn prune(&self, opts: PruneOptions) -> Result<Vec<CacheRecord>, Error> {
        let mut stream = self
            .control()
            .prune(control::PruneRequest {
                filter: opts.filter,
                all: opts.all,
                keep_duration: i64::try_from(opts.keep_duration.as_nanos()).unwrap_or(i64::MAX),
                reserved_space: 0,
                max_used_space: opts.keep_storage.unwrap_or(0),
                min_free_space: 0,
            })
            .await
            .map_err(|s| self.rpc_error("Prune", s))?
            .into_inner();
        let mut removed = Vec::new();
        while let Some(item) = stream.next().await {
            let rec = item.map_err(|s| self.rpc_error("Prune", s))?;
            removed.push(CacheRecord::from(rec));
        }
        Ok(removed)
    }
}

fn helper_tail(dialer: &Dialer) -> String {
    match dialer.helper_stderr.lock() {
        Ok(t) if !t.trim().is_empty() => {
            let last: Vec<&str> = t.trim().lines().rev().take(3).collect();
            let last: Vec<&str> = last.into_iter().rev().collect();
            format!(" (helper said: {})", last.join(" / "))
        }
        _ => String::new(),
    }
}

/// Turns tonic's connect error into ours, keeping the dial cause when there is one.
fn connect_error(address: &Address, dialer: &Dialer, err: &tonic::transport::Error) -> Error {
    let helper = helper_tail(dialer);
    let mut cur: Option<&(dyn std::error::Error + 'static)> = err.source();
    let mut last = String::new();
    while let Some(e) = cur {
        if let Some(d) = e.downcast_ref::<DialError>() {
            return Error::Dial {
                address: address.to_string(),
                source: clone_dial(d),
                helper,
            };
        }
        last = e.to_string();
        cur = e.source();
    }
    let message = if last.is_empty() {
        err.to_string()
    } else {
        format!("the HTTP/2 handshake failed ({last})")
    };
    Error::Handshake {
        address: address.to_string(),
        message,
        helper,
    }
}

/// `DialError` holds non-Clone sources; rebuild an equivalent one.
fn clone_dial(d: &DialError) -> DialError {
    let io = |e: &std::io::Error| std::io::Error::new(e.kind(), e.to_string());
    match d {
        DialError::Io { source } => DialError::Io { source: io(source) },
        DialError::Timeout { seconds } => DialError::Timeout { seconds: *seconds },
        DialError::Tls { source } => DialError::Tls { source: io(source) },
        DialError::NotDocker { reason } => DialError::NotDocker {
            reason: reason.clone(),
        },
        DialError::UpgradeRefused { path, status, body } => DialError::UpgradeRefused {
            path,
            status: *status,
            body: body.clone(),
        },
        DialError::Spawn { program, source } => DialError::Spawn {
            program: program.clone(),
            source: io(source),
        },
    }
}

/// The daemon's reported BuildKit version.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct BuildkitVersion {
    pub package: String,
    pub version: String,
    pub revision: String,
}

/// A build in the daemon's history (see [`Client::active_builds`]).
#[derive(Clone, Debug, Serialize)]
pub struct BuildRecord {
    /// The build's id (the Solve request's ref).
    pub build_ref: String,
    /// Still running (no completion time yet).
    pub running: bool,
    /// Why it failed (e.g. `context canceled`), once completed.
    pub error: Option<String>,
    /// The frontend, empty for plain LLB and kiln's own builds.
    pub frontend: String,
    /// Each exporter's type and attributes (e.g. `image` with its `name`).
    pub exporters: Vec<(String, BTreeMap<String, String>)>,
}

/// A BuildKit worker.
#[derive(Clone, Debug, Serialize)]
pub struct Worker {
    pub id: String,
    /// Platforms as `os/arch[/variant]`.
    pub platforms: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub gc_policy: Vec<GcPolicy>,
}

/// One garbage-collection rule of a worker.
#[derive(Clone, Debug, Serialize)]
pub struct GcPolicy {
    pub all: bool,
    pub filters: Vec<String>,
    pub keep_duration_seconds: i64,
    pub reserved_space: i64,
    pub max_used_space: i64,
    pub min_free_space: i64,
}

/// One build cache record.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CacheRecord {
    pub id: String,
    pub size: i64,
    pub mutable: bool,
    pub in_use: bool,
    pub shared: bool,
    pub record_type: String,
    pub description: String,
    pub usage_count: i64,
    pub parents: Vec<String>,
    /// Seconds since the Unix epoch.
    pub created_at: Option<i64>,
    /// Seconds since the Unix epoch.
    pub last_used_at: Option<i64>,
}

impl From<control::UsageRecord> for CacheRecord {
    fn from(r: control::UsageRecord) -> Self {
        let parents = r.parents;
        CacheRecord {
            id: r.id,
            size: r.size,
            mutable: r.mutable,
            in_use: r.in_use,
            shared: r.shared,
            record_type: r.record_type,
            description: r.description,
            usage_count: r.usage_count,
            parents,
            created_at: r.created_at.map(|t| t.seconds),
            last_used_at: r.last_used_at.map(|t| t.seconds),
        }
    }
}

/// What `prune` removes.
#[derive(Clone, Debug, Default)]
pub struct PruneOptions {
    /// Remove everything, not only unreferenced/internal records.
    pub all: bool,
    /// Keep records used more recently than this.
    pub keep_duration: Duration,
    /// Keep this many bytes of cache (largest-first removal beyond it).
    pub keep_storage: Option<i64>,
    /// BuildKit filters, e.g. `type==regular`, `id==abc`.
    pub filter: Vec<String>,
}
