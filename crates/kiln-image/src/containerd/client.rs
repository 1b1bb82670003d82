//! A gRPC connection to containerd over its unix socket, calling methods
//! by path with tonic's generic client and the hand-written messages of
//! [`super::proto`].

use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};

use super::proto::headers;
use crate::error::ContainerdError;

/// One connection, with the namespace (and lease, once created) every
/// request carries.
#[derive(Clone)]
pub(crate) struct Conn {
    channel: Channel,
    pub(crate) socket: PathBuf,
    namespace: String,
    lease: Option<String>,
}

/// Opens the socket once, to tell a missing socket, a forbidden one and a
/// dead one apart before gRPC hides the reason in its transport error.
pub(crate) async fn probe(socket: &Path) -> Result<(), ContainerdError> {
    match tokio::net::UnixStream::connect(socket).await {
        Ok(_) => Ok(()),
        Err(e) => Err(match e.kind() {
            std::io::ErrorKind::NotFound => ContainerdError::NoSocket {
                socket: socket.to_path_buf(),
            },
            std::io::ErrorKind::PermissionDenied => ContainerdError::PermissionDenied {
                socket: socket.to_path_buf(),
            },
            _ => ContainerdError::Connect {
                socket: socket.to_path_buf(),
                source: e,
            },
        }),
    }
}

impl Conn {
    /// Connects to the socket at `socket`.
    pub(crate) async fn connect(socket: &Path, namespace: &str) -> Result<Conn, ContainerdError> {
        probe(socket).await?;
        let path = socket.to_path_buf();
        // The URI is a placeholder: the connector dials the socket.
        let channel = Endpoint::from_static("http://containerd.sock")
            .connect_with_connector(tower::service_fn(move |_: http::Uri| {
                let path = path.clone();
                async move {
                    tokio::net::UnixStream::connect(path)
                        .await
                        .map(TokioIo::new)
                }
            }))
            .await
            .map_err(|source| ContainerdError::Transport {
                socket: socket.to_path_buf(),
                source,
            })?;
        Ok(Conn {
            channel,
            socket: socket.to_path_buf(),
            namespace: namespace.to_string(),
            lease: None,
        })
    }

    /// This connection, with every request also holding `lease`.
    pub(crate) fn with_lease(&self, lease: &str) -> Conn {
        Conn {
            lease: Some(lease.to_string()),
            ..self.clone()
        }
    }

    /// The lease every request holds, if any.
    pub(crate) fn lease(&self) -> Option<&str> {
        self.lease.as_deref()
    }

    /// `message` with the namespace and lease headers.
    pub(crate) fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        // Both were validated as ASCII identifiers (namespace) or are
        // made by kiln (lease); a failure here leaves the header out and
        // containerd names what is missing.
        if let Ok(v) = MetadataValue::try_from(self.namespace.as_str()) {
            request.metadata_mut().insert(headers::NAMESPACE, v);
        }
        if let Some(lease) = &self.lease {
            if let Ok(v) = MetadataValue::try_from(lease.as_str()) {
                request.metadata_mut().insert(headers::LEASE, v);
            }
        }
        request
    }

    /// A unary call to `method`.
    pub(crate) async fn unary<Req, Resp>(
        &self,
        method: &'static str,
        message: Req,
    ) -> Result<Resp, Status>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        grpc.ready()
            .await
            .map_err(|e| Status::unavailable(format!("containerd connection: {e}")))?;
        let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
        let path = http::uri::PathAndQuery::from_static(method);
        grpc.unary(self.request(message), path, codec)
            .await
            .map(tonic::Response::into_inner)
    }

    /// A client-and-server streaming call to `method`.
    pub(crate) async fn streaming<Req, Resp, S>(
        &self,
        method: &'static str,
        messages: S,
    ) -> Result<tonic::Streaming<Resp>, Status>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
        S: futures::Stream<Item = Req> + Send + 'static,
    {
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        grpc.ready()
            .await
            .map_err(|e| Status::unavailable(format!("containerd connection: {e}")))?;
        let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
        let path = http::uri::PathAndQuery::from_static(method);
        grpc.streaming(self.request(messages), path, codec)
            .await
            .map(tonic::Response::into_inner)
    }

    /// The error for a failed call to `method`.
    pub(crate) fn rpc_error(&self, method: &'static str, status: Status) -> ContainerdError {
        ContainerdError::Rpc {
            socket: self.socket.clone(),
            method,
            source: Box::new(status),
        }
    }

    /// [`Conn::unary`], failures as [`ContainerdError::Rpc`].
    pub(crate) async fn call<Req, Resp>(
        &self,
        method: &'static str,
        message: Req,
    ) -> Result<Resp, ContainerdError>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        self.unary(method, message)
            .await
            .map_err(|s| self.rpc_error(method, s))
    }
}

/// Whether a status says the thing asked about does not exist.
pub(crate) fn is_not_found(status: &Status) -> bool {
    status.code() == Code::NotFound
}

/// Whether a status says the thing to create exists already.
pub(crate) fn is_already_exists(status: &Status) -> bool {
    status.code() == Code::AlreadyExists
}
