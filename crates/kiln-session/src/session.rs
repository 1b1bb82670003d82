//! The session: its identity, the services registered on it, and serving
//! them as an HTTP/2 server on a hijacked connection.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use kiln_proto::{headers, methods};
use tokio::io::{AsyncRead, AsyncWrite};
use tonic::service::Routes;

use crate::auth::DockerAuth;
use crate::content::OciLayouts;
use crate::error::{Error, Result};
use crate::filesend::{ExportTarget, FileSendService};
use crate::filesync::{FileSyncProvider, SyncDirOptions, SyncStats};
use crate::health::{HealthService, Liveness};
use crate::secrets::SecretStore;
use crate::ssh::SshAgents;

/// A BuildKit session: the services the daemon may call back while a build
/// runs. Cheap to clone; serve it again on a new connection after a
/// reconnect.
#[derive(Debug, Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    id: String,
    name: String,
    shared_key: String,
    file_sync: FileSyncProvider,
    file_send: FileSendService,
    secrets: Option<SecretStore>,
    ssh: Option<SshAgents>,
    auth: Option<DockerAuth>,
    oci_layouts: OciLayouts,
    liveness: Liveness,
}

impl Session {
    /// Starts building a session with a fresh random id.
    pub fn builder() -> SessionBuilder {
        SessionBuilder::default()
    }

    /// The session id (`SolveRequest.session`, `local.session`).
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The session's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The shared key: local sources with the same key share the daemon's copy.
    pub fn shared_key(&self) -> &str {
        &self.inner.shared_key
    }

    /// The gRPC methods this session serves, derived from what is registered
    /// (health always). The daemon calls nothing else.
    pub fn methods(&self) -> Vec<&'static str> {
        let i = &self.inner;
        let mut out = vec![methods::HEALTH_CHECK];
        if !i.file_sync.is_empty() {
            out.push(methods::FILESYNC_DIFFCOPY);
        }
        if !i.file_send.is_empty() {
            out.push(methods::FILESEND_DIFFCOPY);
        }
        if i.secrets.is_some() {
            out.push(methods::SECRETS_GET_SECRET);
        }
        if i.ssh.is_some() {
            out.extend([methods::SSH_CHECK_AGENT, methods::SSH_FORWARD_AGENT]);
        }
        if i.auth.is_some() {
            out.extend([
                methods::AUTH_CREDENTIALS,
                methods::AUTH_FETCH_TOKEN,
                methods::AUTH_GET_TOKEN_AUTHORITY,
                methods::AUTH_VERIFY_TOKEN_AUTHORITY,
            ]);
        }
        if !i.oci_layouts.is_empty() {
            out.extend([methods::CONTENT_INFO, methods::CONTENT_READ]);
        }
        out
    }

    /// The `(name, value)` pairs announcing the session: HTTP headers on the
    /// Docker Engine's `POST /session`, lower-cased gRPC metadata on
    /// `Control.Session`.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![
            (headers::SESSION_UUID, self.inner.id.clone()),
            (headers::SESSION_NAME, self.inner.name.clone()),
            (headers::SESSION_SHARED_KEY, self.inner.shared_key.clone()),
        ];
        out.extend(
            self.methods()
                .into_iter()
                .map(|m| (headers::SESSION_GRPC_METHOD, m.to_owned())),
        );
        out
    }

    /// When the daemon last health-checked this session (its sign of life
    /// while a build runs).
    pub fn liveness(&self) -> Liveness {
        self.inner.liveness.clone()
    }

    /// The session's single-file exports, to commit once the build
    /// succeeded (see [`crate::filesend::Outputs`]).
    pub fn outputs(&self) -> crate::filesend::Outputs {
        self.inner.file_send.outputs()
    }

    /// The first export transfer that failed on kiln's side (a refused path,
    /// a broken stream, …), taken: check it after a Solve the daemon
    /// reported as successful, so a daemon cannot hide a refused export.
    pub fn take_export_failure(&self) -> Option<Error> {
        self.inner.file_send.take_failure()
    }

    /// What file sync has sent so far (all calls of this session).
    pub fn sync_stats(&self) -> SyncStats {
        self.inner.file_sync.stats()
    }

    /// Serves the session on `io` until the daemon closes the connection.
    ///
    /// In this connection the daemon is the HTTP/2 client: `io` is the
    /// upgraded `POST /session` connection, or [`crate::bytes_stream_io`]
    /// around a `Control.Session` call.
    ///
    /// # Errors
    /// [`Error::Serve`] when the HTTP/2 connection fails.
    pub async fn serve<IO>(&self, io: IO) -> Result<()>
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        self.serve_with_shutdown(io, std::future::pending()).await
    }

    /// Like [`Session::serve`], but also stops (gracefully: calls in flight
    /// finish) when `signal` completes.
    ///
    /// # Errors
    /// [`Error::Serve`] when the HTTP/2 connection fails.
    pub async fn serve_with_shutdown<IO, F>(&self, io: IO, signal: F) -> Result<()>
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        F: Future<Output = ()>,
    {
        let routes = self.routes();
        let service = TowerToHyperService::new(routes);
        let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        // The daemon streams large exports; don't let small windows throttle them.
        builder
            .initial_stream_window_size(4 * 1024 * 1024)
            .initial_connection_window_size(8 * 1024 * 1024)
            .max_frame_size(1024 * 1024);
        let conn = builder.serve_connection(TokioIo::new(io), service);
        tokio::pin!(conn);
        tokio::pin!(signal);
        tracing::debug!(session = %self.inner.id, "serving session");
        let result = tokio::select! {
            r = conn.as_mut() => r,
            () = &mut signal => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        tracing::debug!(session = %self.inner.id, ok = result.is_ok(), "session connection ended");
        result.map_err(Error::Serve)
    }

    fn routes(&self) -> Routes {
        let i = &self.inner;
        let mut routes = Routes::new(
            HealthService {
                liveness: self.inner.liveness.clone(),
            }
            .into_server(),
        );
        if !i.file_sync.is_empty() {
            routes = routes.add_service(i.file_sync.clone().into_server());
        }
        if !i.file_send.is_empty() {
            routes = routes.add_service(i.file_send.clone());
        }
        if let Some(secrets) = &i.secrets {
            routes = routes.add_service(secrets.clone().into_server());
        }
        if let Some(ssh) = &i.ssh {
            routes = routes.add_service(ssh.clone().into_server());
        }
        if let Some(auth) = &i.auth {
            routes = routes.add_service(auth.clone().into_server());
        }
        if !i.oci_layouts.is_empty() {
            routes = routes.add_service(i.oci_layouts.clone());
        }
        routes.prepare()
    }
}

/// Builds a [`Session`].
#[derive(Debug, Default)]
pub struct SessionBuilder {
    id: Option<String>,
    name: Option<String>,
    shared_key: Option<String>,
    file_sync: FileSyncProvider,
    file_send: FileSendService,
    secrets: Option<SecretStore>,
    ssh: Option<SshAgents>,
    auth: Option<DockerAuth>,
    oci_layouts: OciLayouts,
    error: Option<Error>,
}

impl SessionBuilder {
    /// Uses this id instead of a random one.
    #[must_use]
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// The session's name (default `kiln`).
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The shared key (default `kiln`). The daemon keeps one copy of each
    /// synced directory per name, `local.sharedkeyhint` and shared key, and
    /// diffs the next sync against it, so a stable key lets a rebuild send
    /// only what changed.
    #[must_use]
    pub fn shared_key(mut self, key: impl Into<String>) -> Self {
        self.shared_key = Some(key.into());
        self
    }

    /// Exposes a local directory to the daemon under `name` (file sync).
    /// Errors are reported by [`SessionBuilder::build`].
    #[must_use]
    pub fn sync_dir(
        mut self,
        name: impl Into<String>,
        path: impl Into<PathBuf>,
        options: SyncDirOptions,
    ) -> Self {
        if let Err(e) = self.file_sync.add_dir(name, path, options) {
            self.error.get_or_insert(e);
        }
        self
    }

    /// Receives the output of the exporter at `index` in
    /// `SolveRequest.exporters` (file send).
    #[must_use]
    pub fn export(mut self, index: u32, target: ExportTarget) -> Self {
        if let Err(e) = self.file_send.add(index, target) {
            self.error.get_or_insert(e);
        }
        self
    }

    /// Serves these secrets.
    #[must_use]
    pub fn secrets(mut self, store: SecretStore) -> Self {
        self.secrets = Some(store);
        self
    }

    /// Forwards these ssh agents.
    #[must_use]
    pub fn ssh(mut self, agents: SshAgents) -> Self {
        self.ssh = Some(agents);
        self
    }

    /// Answers registry credential requests from Docker's config.
    #[must_use]
    pub fn auth(mut self, auth: DockerAuth) -> Self {
        self.auth = Some(auth);
        self
    }

    /// Serves the OCI layout at `dir` as content store `id`, for
    /// `oci-layout://` sources whose `oci.store` attr is `id`. Errors are
    /// reported by [`SessionBuilder::build`].
    #[must_use]
    pub fn oci_layout(mut self, id: impl Into<String>, dir: impl Into<PathBuf>) -> Self {
        if let Err(e) = self.oci_layouts.add(id, dir) {
            self.error.get_or_insert(e);
        }
        self
    }

    /// Serves `dir` as the `type=local` cache store the daemon knows as
    /// `local:<attr>` (`attr` is the `src`/`dest` value it was given):
    /// readable, and writable for an export (`writable`). Errors are
    /// reported by [`SessionBuilder::build`].
    #[must_use]
    pub fn local_cache(
        mut self,
        attr: impl Into<String>,
        dir: impl Into<PathBuf>,
        writable: bool,
    ) -> Self {
        if let Err(e) = self.oci_layouts.local_cache(attr, dir, writable) {
            self.error.get_or_insert(e);
        }
        self
    }

    /// Builds the session.
    ///
    /// # Errors
    /// The first error met while registering providers ([`Error::Duplicate`],
    /// [`Error::NotADirectory`], [`Error::Io`]).
    pub fn build(self) -> Result<Session> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let id = self
            .id
            .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
        let shared_key = self.shared_key.unwrap_or_else(|| "kiln".to_owned());
        Ok(Session {
            inner: Arc::new(Inner {
                name: self.name.unwrap_or_else(|| "kiln".to_owned()),
                shared_key,
                id,
                file_sync: self.file_sync,
                file_send: self.file_send,
                secrets: self.secrets,
                ssh: self.ssh,
                auth: self.auth,
                oci_layouts: self.oci_layouts,
                liveness: Liveness::default(),
            }),
        })
    }
}
