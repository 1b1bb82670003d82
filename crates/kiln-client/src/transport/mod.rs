//! Byte-stream transports to BuildKit: each dial yields one bidirectional
//! stream over which tonic runs HTTP/2 gRPC.

pub mod docker;
mod stdio;

pub use stdio::wait_for_closing_helpers;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};

use crate::address::{Address, DockerHost};
use crate::error::DialError;
use crate::tls::TlsSetup;

/// Any bidirectional byte stream.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

/// A boxed bidirectional byte stream.
pub type BoxIo = Box<dyn Io>;

/// How long one dial (socket connect, TLS handshake, HTTP upgrade) may take.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(20);

/// Everything needed to open a new connection to the daemon.
#[derive(Clone, Debug)]
pub(crate) struct Dialer {
    pub address: Address,
    pub tls: Option<TlsSetup>,
    /// The tail of a stdio helper's stderr, shared with error reporting.
    pub helper_stderr: Arc<Mutex<String>>,
}

impl Dialer {
    /// Opens a raw byte stream to BuildKit's gRPC server.
    pub(crate) async fn dial(&self) -> Result<BoxIo, DialError> {
        match tokio::time::timeout(DIAL_TIMEOUT, self.dial_inner()).await {
            Ok(r) => r,
            Err(_) => Err(DialError::Timeout {
                seconds: DIAL_TIMEOUT.as_secs(),
            }),
        }
    }

    async fn dial_inner(&self) -> Result<BoxIo, DialError> {
        match &self.address {
            Address::Unix(path) => {
                let s = UnixStream::connect(path)
                    .await
                    .map_err(|source| DialError::Io { source })?;
                Ok(Box::new(s))
            }
            Address::Tcp { host, port } => {
                let s = TcpStream::connect((host.as_str(), *port))
                    .await
                    .map_err(|source| DialError::Io { source })?;
                let _ = s.set_nodelay(true);
                match &self.tls {
                    None => Ok(Box::new(s)),
                    Some(tls) => {
                        let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
                        let stream = connector
                            .connect(tls.server_name.clone(), s)
                            .await
                            .map_err(|source| DialError::Tls { source })?;
                        Ok(Box::new(stream))
                    }
                }
            }
            Address::Docker(host) => {
                let io = dial_docker_host(host).await?;
                let upgraded = docker::upgrade(io, docker::GRPC_PATH, &[]).await?;
                Ok(Box::new(upgraded))
            }
            Address::DockerContainer { .. }
            | Address::PodmanContainer { .. }
            | Address::NerdctlContainer { .. }
            | Address::KubePod { .. }
            | Address::Ssh { .. } => {
                let cmd = stdio::helper_command(&self.address);
                let io = stdio::spawn(cmd, self.helper_stderr.clone())?;
                Ok(Box::new(io))
            }
        }
    }
}

/// Connects to a Docker Engine's API socket.
///
/// # Errors
/// [`DialError::Io`] when the socket or host cannot be reached.
pub async fn dial_docker_host(host: &DockerHost) -> Result<BoxIo, DialError> {
    match host {
        DockerHost::Unix(path) => UnixStream::connect(path)
            .await
            .map(|s| Box::new(s) as BoxIo)
            .map_err(|source| DialError::Io { source }),
        DockerHost::Tcp { host, port } => {
            let s = TcpStream::connect((host.as_str(), *port))
                .await
                .map_err(|source| DialError::Io { source })?;
            let _ = s.set_nodelay(true);
            Ok(Box::new(s))
        }
    }
}

/// The tower service tonic calls to open a connection.
#[derive(Clone, Debug)]
pub(crate) struct Connector {
    pub dialer: Arc<Dialer>,
}

impl tower_service::Service<http::Uri> for Connector {
    type Response = TokioIo<BoxIo>;
    type Error = DialError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, DialError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: http::Uri) -> Self::Future {
        let dialer = self.dialer.clone();
        Box::pin(async move { dialer.dial().await.map(TokioIo::new) })
    }
}
