//! Attaching a [`Session`] to the daemon, so it can call back for files,
//! secrets, ssh agents, credentials and outputs while a build runs.

use std::sync::Arc;
use std::time::Duration;

use kiln_session::Session;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;

use crate::address::Address;
use crate::client::Client;
use crate::error::{DialError, Error};
use crate::transport::{dial_docker_host, docker};

/// How the session reaches the daemon.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum SessionTransport {
    /// `POST /session` on a Docker Engine (faster for bulk data), else `Control.Session`.
    #[default]
    Auto,
    /// The `Control.Session` stream (works with every daemon).
    Control,
    /// The Docker Engine's `POST /session` upgrade.
    DockerUpgrade,
}

/// A session being served; stops when dropped (or with [`Attached::close`]).
#[derive(Debug)]
pub struct Attached {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    ready: bool,
    history: Arc<std::sync::Mutex<Reattach>>,
}

/// What became of a session's lost connections.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reattach {
    /// Connections re-made and served again (to the same daemon).
    pub reattached: u32,
    /// Why kiln stopped re-attaching, if it refused (e.g. another daemon
    /// answers at the address now).
    pub refused: Option<String>,
}

impl Attached {
    /// Stops serving: ends kiln's side of the session stream and drops the
    /// connection at once.
    ///
    /// Call it once the solve has returned: the daemon makes no more calls
    /// that matter then (exporters call back before the Solve returns). It
    /// does not wait for the daemon to hang up, because a standalone
    /// buildkitd never ends the `Control.Session` stream by itself; waiting
    /// for it added seconds to every build.
    pub async fn close(mut self) {
        let _ = self.stop.send(true);
        self.task.abort();
        let _ = (&mut self.task).await;
    }

    /// What became of the session's lost connections so far.
    #[must_use]
    pub fn reattach(&self) -> Reattach {
        self.history.lock().map(|h| h.clone()).unwrap_or_default()
    }

    /// Whether the first attach succeeded.
    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.ready
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.task.abort();
    }
}

/// How often a lost session connection is re-attached before giving up.
const MAX_REATTACH: u32 = 5;

impl Client {
    /// Attaches `session` and serves it in the background until the
    /// returned handle is dropped. A session whose connection drops is
    /// re-attached (the daemon then finds it again by id).
    ///
    /// # Errors
    /// [`Error::Dial`] / [`Error::Rpc`] when the first attach fails.
    pub async fn attach(&self, session: Session, how: SessionTransport) -> Result<Attached, Error> {
        let use_docker = match (how, self.address()) {
            (SessionTransport::Control, _) => false,
            (SessionTransport::DockerUpgrade, Address::Docker(_)) => true,
            (SessionTransport::DockerUpgrade, other) => {
                return Err(Error::Dial {
                    address: other.to_string(),
                    source: DialError::UpgradeRefused {
                        path: docker::SESSION_PATH,
                        status: http::StatusCode::NOT_FOUND,
                        body: ": POST /session needs a docker:// address".into(),
                    },
                    helper: String::new(),
                })
            }
            (SessionTransport::Auto, Address::Docker(_)) => true,
            (SessionTransport::Auto, _) => false,
        };
        let (stop_tx, stop_rx) = watch::channel(false);
        // The first connection is made here, so its errors reach the caller.
        let first = self.open_session_conn(&session, use_docker).await?;
        let client = self.clone();
        let history = Arc::new(std::sync::Mutex::new(Reattach::default()));
        let record = history.clone();
        let task = tokio::spawn(async move {
            let mut conn = Some(first);
            let mut failures = 0u32;
            // Who the session was attached to: a re-attach serves it (its
            // secrets, ssh agents, files) only to that same daemon.
            // Asked beside the first connection, not before it: the daemon
            // calls back as soon as the session is attached.
            let mut identity = Some(tokio::spawn({
                let c = client.clone();
                async move { c.identity().await }
            }));
            let mut attached_to = None;
            loop {
                if conn.is_none() {
                    if let Some(t) = identity.take() {
                        attached_to = t.await.ok().flatten();
                    }
                }
                let io = match conn.take() {
                    Some(io) => io,
                    None => match client.same_daemon(&attached_to).await {
                        Err(why) => {
                            if let Ok(mut h) = record.lock() {
                                h.refused = Some(why.clone());
                            }
                            tracing::warn!(
                                address = %client.address(),
                                "the session was not re-attached: {why}; kiln serves a build's session (its secrets, ssh agents and files) only to the daemon the build started on"
                            );
                            return;
                        }
                        Ok(()) => match client.open_session_conn(&session, use_docker).await {
                            Ok(io) => {
                                if let Ok(mut h) = record.lock() {
                                    h.reattached += 1;
                                }
                                io
                            }
                            Err(e) => {
                                failures += 1;
                                tracing::warn!(error = %e, "session re-attach failed");
                                if failures >= MAX_REATTACH {
                                    return;
                                }
                                tokio::time::sleep(Duration::from_millis(
                                    200 * u64::from(failures),
                                ))
                                .await;
                                continue;
                            }
                        },
                    },
                };
                let mut stop = stop_rx.clone();
                let signal = async move {
                    let _ = stop.wait_for(|s| *s).await;
                };
                let r = session.serve_with_shutdown(io, signal).await;
                if *stop_rx.borrow() {
                    return;
                }
                tracing::debug!(result = ?r, "session connection ended; re-attaching");
                failures += 1;
                if failures >= MAX_REATTACH {
                    return;
                }
            }
        });
        Ok(Attached {
            stop: stop_tx,
            task,
            ready: true,
            history,
        })
    }

    /// The daemon's identity: its workers' ids (stable for a daemon's
    /// lifetime and its state directory), sorted; `None` when it cannot
    /// be asked.
    async fn identity(&self) -> Option<Vec<String>> {
        // A few tries: right after a connection loss the channel is still
        // reconnecting.
        for attempt in 0..5u64 {
            if let Ok(workers) = self.list_workers().await {
                let mut ids: Vec<String> = workers.into_iter().map(|w| w.id).collect();
                ids.sort();
                return Some(ids);
            }
            tokio::time::sleep(Duration::from_millis(100 * (attempt + 1))).await;
        }
        None
    }

    /// Whether the daemon answering now is the one `attached_to` names.
    async fn same_daemon(&self, attached_to: &Option<Vec<String>>) -> Result<(), String> {
        let Some(before) = attached_to else {
            return Err("the daemon's identity was not known when the build started".into());
        };
        match self.identity().await {
            Some(now) if &now == before => Ok(()),
            Some(now) => Err(format!(
                "the daemon now behind this address is another one (workers {} instead of {})",
                now.join(", "),
                before.join(", ")
            )),
            None => Err("the daemon behind this address cannot be asked who it is".into()),
        }
    }

    async fn open_session_conn(
        &self,
        session: &Session,
        use_docker: bool,
    ) -> Result<SessionIo, Error> {
        if use_docker {
            let Address::Docker(host) = self.address() else {
                return Err(not_docker_address(self.address()));
            };
            let dial = |source| Error::Dial {
                address: self.address().to_string(),
                source,
                helper: String::new(),
            };
            let io = dial_docker_host(host).await.map_err(dial)?;
            let headers: Vec<(String, String)> = session
                .headers()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            let up = docker::upgrade(io, docker::SESSION_PATH, &headers)
                .await
                .map_err(dial)?;
            return Ok(SessionIo::Docker(up));
        }
        let (tx, rx) = mpsc::channel(64);
        let mut req = tonic::Request::new(ReceiverStream::new(rx));
        for (name, value) in session.headers() {
            let key =
                tonic::metadata::MetadataKey::from_bytes(name.to_ascii_lowercase().as_bytes());
            let val = value.parse::<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>();
            if let (Ok(k), Ok(v)) = (key, val) {
                req.metadata_mut().append(k, v);
            }
        }
        let inbound = self
            .control()
            .session(req)
            .await
            .map_err(|s| self.rpc_error("Session", s))?
            .into_inner();
        Ok(SessionIo::Control(kiln_session::bytes_stream_io(
            tx, inbound,
        )))
    }
}

fn not_docker_address(address: &Address) -> Error {
    Error::Handshake {
        address: address.to_string(),
        message: "POST /session needs a docker:// address".into(),
        helper: String::new(),
    }
}

/// Either session connection.
enum SessionIo {
    Docker(hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>),
    Control(kiln_session::BytesStreamIo),
}

impl tokio::io::AsyncRead for SessionIo {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            SessionIo::Docker(io) => std::pin::Pin::new(io).poll_read(cx, buf),
            SessionIo::Control(io) => std::pin::Pin::new(io).poll_read(cx, buf),
        }
    }
}

impl tokio::io::AsyncWrite for SessionIo {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            SessionIo::Docker(io) => std::pin::Pin::new(io).poll_write(cx, buf),
            SessionIo::Control(io) => std::pin::Pin::new(io).poll_write(cx, buf),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            SessionIo::Docker(io) => std::pin::Pin::new(io).poll_flush(cx),
            SessionIo::Control(io) => std::pin::Pin::new(io).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            SessionIo::Docker(io) => std::pin::Pin::new(io).poll_shutdown(cx),
            SessionIo::Control(io) => std::pin::Pin::new(io).poll_shutdown(cx),
        }
    }
}
