//! `moby.sshforward.v1.SSH`: ssh-agent forwarding (`RUN --mount=type=ssh`).
//!
//! Each `ForwardAgent` call is one agent connection, its bytes carried in
//! `BytesMessage` frames; the agent is chosen by the `buildkit.ssh.id`
//! metadata. Like BuildKit's provider, kiln speaks the agent protocol
//! itself: it forwards only the read-only requests (list keys, sign) to the
//! local agent socket and refuses everything else (adding or removing keys,
//! locking, extensions), or answers from keys it loaded from files.

mod agent;
mod keys;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use kiln_proto::headers::{SSH_DEFAULT_ID, SSH_FORWARD_ID};
use kiln_proto::moby::sshforward::v1::ssh_server::{Ssh, SshServer};
use kiln_proto::moby::sshforward::v1::{BytesMessage, CheckAgentRequest, CheckAgentResponse};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

pub use keys::Keyring;

use crate::error::{Error, Result};
use crate::metadata;

/// An ssh agent to forward, as an `--ssh` flag gives it (kiln-build parses
/// the flag): paths are agent sockets or private key files; none means
/// `$SSH_AUTH_SOCK`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshSpec {
    /// The agent id (`default` when empty).
    pub id: String,
    /// Socket or key file paths.
    pub paths: Vec<PathBuf>,
}

#[derive(Debug, Clone)]
enum AgentSource {
    Socket(PathBuf),
    Keys(Arc<Keyring>),
}

/// The ssh agents a session forwards, by id.
#[derive(Debug, Clone, Default)]
pub struct SshAgents {
    agents: Arc<BTreeMap<String, AgentSource>>,
}

impl SshAgents {
    /// No agents.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an agent: a socket path (or `$SSH_AUTH_SOCK` when none is
    /// given), or one or more private key files served by an in-process
    /// agent.
    ///
    /// # Errors
    /// [`Error::SshSpec`] when no socket is known, a path is missing, sockets
    /// and keys are mixed, or a key cannot be loaded; [`Error::Duplicate`]
    /// for a taken id.
    pub fn add(&mut self, spec: SshSpec) -> Result<()> {
        let bad = |reason: String| Error::SshSpec {
            id: spec.id.clone(),
            reason,
        };
        let mut paths = spec.paths.clone();
        if paths.is_empty() || (paths.len() == 1 && paths[0].as_os_str().is_empty()) {
            let sock = std::env::var_os("SSH_AUTH_SOCK").unwrap_or_default();
            if sock.is_empty() {
                return Err(bad(
                    "invalid empty ssh agent socket, make sure SSH_AUTH_SOCK is set".to_owned(),
                ));
            }
            paths = vec![PathBuf::from(sock)];
        }
        let mut sockets = Vec::new();
        let mut key_files = Vec::new();
        for path in paths {
            use std::os::unix::fs::FileTypeExt;
            let meta =
                std::fs::metadata(&path).map_err(|e| bad(format!("{}: {e}", path.display())))?;
            if meta.file_type().is_socket() {
                sockets.push(path);
            } else {
                key_files.push(path);
            }
        }
        let source = match (sockets.len(), key_files.is_empty()) {
            (0, false) => AgentSource::Keys(Arc::new(Keyring::load(&key_files).map_err(bad)?)),
            (1, true) => AgentSource::Socket(sockets.remove(0)),
            (n, true) if n > 1 => return Err(bad("only a single socket is allowed".to_owned())),
            _ => return Err(bad("invalid combination of keys and sockets".to_owned())),
        };
        let agents = Arc::make_mut(&mut self.agents);
        if agents.contains_key(&spec.id) {
            return Err(Error::Duplicate {
                kind: "ssh id",
                name: spec.id,
            });
        }
        agents.insert(spec.id, source);
        Ok(())
    }

    /// Whether no agent is registered.
    pub fn is_empty(&self) -> bool {
        self.agents.is_empty()
    }

    pub(crate) fn into_server(self) -> SshServer<Self> {
        SshServer::new(self).max_decoding_message_size(kiln_proto::MAX_MESSAGE_SIZE)
    }

    fn source(&self, id: &str) -> std::result::Result<AgentSource, Status> {
        let id = if id.is_empty() { SSH_DEFAULT_ID } else { id };
        self.agents
            .get(id)
            .cloned()
            .ok_or_else(|| Status::not_found(format!("unset ssh forward key {id}")))
    }
}

/// How long to wait for the local agent socket to accept.
const DIAL_TIMEOUT: Duration = Duration::from_secs(1);

#[tonic::async_trait]
impl Ssh for SshAgents {
    async fn check_agent(
        &self,
        request: Request<CheckAgentRequest>,
    ) -> std::result::Result<Response<CheckAgentResponse>, Status> {
        self.source(&request.into_inner().id)?;
        Ok(Response::new(CheckAgentResponse {}))
    }

    type ForwardAgentStream =
        Pin<Box<dyn Stream<Item = std::result::Result<BytesMessage, Status>> + Send>>;

    async fn forward_agent(
        &self,
        request: Request<Streaming<BytesMessage>>,
    ) -> std::result::Result<Response<Self::ForwardAgentStream>, Status> {
        let id = metadata::first(request.metadata(), SSH_FORWARD_ID).unwrap_or_default();
        let source = self.source(&id)?;
        let backend = match source {
            AgentSource::Socket(path) => {
                let conn =
                    tokio::time::timeout(DIAL_TIMEOUT, tokio::net::UnixStream::connect(&path))
                        .await
                        .map_err(|_| {
                            Status::unavailable(format!(
                                "timed out connecting to {}",
                                path.display()
                            ))
                        })?
                        .map_err(|e| {
                            Status::unavailable(format!(
                                "failed to connect to {}: {e}",
                                path.display()
                            ))
                        })?;
                agent::Backend::Socket(conn)
            }
            AgentSource::Keys(keys) => agent::Backend::Keys(keys),
        };
        tracing::debug!(agent = %if id.is_empty() { SSH_DEFAULT_ID } else { &id }, "ssh agent forwarded");
        let (tx, rx) = mpsc::channel(16);
        let inbound = request.into_inner();
        tokio::spawn(async move {
            if let Err(err) = agent::serve(inbound, tx.clone(), backend).await {
                tracing::warn!(error = %err, "ssh agent forwarding failed");
                let _ = tx.send(Err(err.to_status())).await;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
