//! A fake, hostile BuildKit daemon on a unix socket.
//!
//! It answers what `kiln solve` calls (`Control.Info`, `Status`, `Session`,
//! `Solve`) like a standalone buildkitd. When the Solve asks for an export
//! it calls kiln back over the attached session, as BuildKit's exporters do
//! (`FileSend.DiffCopy` on the HTTP/2 connection tunnelled through
//! `Control.Session`, with the exporter's index in
//! `buildkit-attachable-exporter-id`), but sends what a compromised daemon
//! might: hostile fsutil packets, or a tar stream cut off midway. Like
//! BuildKit, the Solve then fails with the error kiln's receiver returned;
//! a lying one ([`FakeDaemon::start_lying`]) reports success anyway.
//!
//! ```no_run
//! # async fn f() {
//! use kiln_test_support::fake_daemon::{FakeDaemon, HostileExport};
//! let dir = tempfile::tempdir().unwrap();
//! let fake = FakeDaemon::start(&dir.path().join("fake.sock"), HostileExport::Packets(vec![])).await;
//! // kiln --addr {fake.address()} solve -o type=local,dest=… ; then:
//! let kiln_said = fake.export_result();
//! # }
//! ```

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use kiln_proto::control::control_server::{Control, ControlServer};
use kiln_proto::control::{self as pb, BytesMessage};
use kiln_proto::fsutil::types::Packet;
use kiln_proto::headers::{ATTACHABLE_EXPORTER_ID, SESSION_GRPC_METHOD};
use kiln_proto::methods::FILESEND_DIFFCOPY;
use kiln_proto::moby::filesync::packet::file_send_client::FileSendClient as PacketSendClient;
use kiln_proto::moby::filesync::v1::BytesMessage as FileBytes;
use tokio::net::UnixListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::{ReceiverStream, UnixListenerStream};
use tonic::{Request, Response, Streaming};

/// The status kiln answers an export call with (re-exported for tests).
pub use tonic::{Code, Status};

/// What the fake daemon sends when kiln's Solve asks for an export.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum HostileExport {
    /// fsutil packets for a `local` exporter, sent in order without waiting
    /// for kiln's REQs (kiln must cope with any order), then the request
    /// stream is held open until kiln ends the call.
    Packets(Vec<Packet>),
    /// `BytesMessage` frames for a `tar` exporter, then, half a second later,
    /// the call is reset (RST_STREAM) instead of half-closed: a daemon dying
    /// mid-export.
    FramesThenReset(Vec<Vec<u8>>),
}

/// A running fake daemon; stops when dropped.
#[derive(Debug)]
pub struct FakeDaemon {
    socket: PathBuf,
    task: JoinHandle<()>,
    state: Arc<State>,
}

#[derive(Debug)]
struct State {
    export: HostileExport,
    /// Report the Solve as successful whatever kiln answered.
    lie: bool,
    /// The nested HTTP/2 connection to kiln's session, once attached.
    session: watch::Sender<Option<SendRequest<tonic::body::Body>>>,
    /// Whether the session advertised FileSend.
    file_send_listed: Mutex<bool>,
    /// How kiln's FileSend call ended: `Ok(())`, or the status kiln sent.
    result: Mutex<Option<Result<(), Status>>>,
}

impl FakeDaemon {
    /// Listens on `socket` (which must not exist) and serves until dropped.
    ///
    /// # Panics
    /// When the socket cannot be bound.
    pub async fn start(socket: &Path, export: HostileExport) -> FakeDaemon {
        Self::serve(socket, export, false).await
    }

    /// Like [`FakeDaemon::start`], but the Solve reports success even when
    /// kiln refused the export.
    ///
    /// # Panics
    /// When the socket cannot be bound.
    pub async fn start_lying(socket: &Path, export: HostileExport) -> FakeDaemon {
        Self::serve(socket, export, true).await
    }

    async fn serve(socket: &Path, export: HostileExport, lie: bool) -> FakeDaemon {
        let listener =
            UnixListener::bind(socket).unwrap_or_else(|e| panic!("bind {}: {e}", socket.display()));
        let state = Arc::new(State {
            export,
            lie,
            session: watch::Sender::new(None),
            file_send_listed: Mutex::new(false),
            result: Mutex::new(None),
        });
        let service = ControlServer::new(Fake(state.clone()))
            .max_decoding_message_size(kiln_proto::MAX_MESSAGE_SIZE);
        let task = tokio::spawn(async move {
            let r = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(UnixListenerStream::new(listener))
                .await;
            if let Err(e) = r {
                eprintln!("fake daemon stopped: {e}");
            }
        });
        FakeDaemon {
            socket: socket.to_path_buf(),
            task,
            state,
        }
    }

    /// The `--addr` for kiln: `unix://SOCKET`.
    #[must_use]
    pub fn address(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// How kiln's end of the export call ended: `None` if kiln was never
    /// called back, `Some(Err(status))` with the error kiln sent.
    #[must_use]
    pub fn export_result(&self) -> Option<Result<(), Status>> {
        self.state.result.lock().unwrap().clone()
    }
}

impl Drop for FakeDaemon {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Fake(Arc<State>);

type Stream<T> = std::pin::Pin<Box<dyn futures::Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl Control for Fake {
    async fn disk_usage(
        &self,
        _: Request<pb::DiskUsageRequest>,
    ) -> Result<Response<pb::DiskUsageResponse>, Status> {
        Err(Status::unimplemented("fake daemon"))
    }

    type PruneStream = Stream<pb::UsageRecord>;

    async fn prune(
        &self,
        _: Request<pb::PruneRequest>,
    ) -> Result<Response<Self::PruneStream>, Status> {
        Err(Status::unimplemented("fake daemon"))
    }

    async fn solve(
        &self,
        request: Request<pb::SolveRequest>,
    ) -> Result<Response<pb::SolveResponse>, Status> {
        let req = request.into_inner();
        let Some(index) = req
            .exporters
            .iter()
            .position(|e| e.r#type == "local" || e.r#type == "tar")
        else {
            return Err(Status::invalid_argument(
                "fake daemon: ask for a local or tar export",
            ));
        };
        let send = self.session().await?;
        if !*self.0.file_send_listed.lock().unwrap() {
            return Err(Status::failed_precondition(
                "fake daemon: the session does not serve FileSend",
            ));
        }
        let result = match &self.0.export {
            HostileExport::Packets(packets) => send_packets(send, index, packets.clone()).await,
            HostileExport::FramesThenReset(frames) => {
                send_frames_then_reset(send, index, frames.clone()).await
            }
        };
        *self.0.result.lock().unwrap() = Some(result.clone());
        match result {
            // As BuildKit: the exporter's error fails the Solve.
            Err(status) if !self.0.lie => Err(Status::unknown(format!(
                "failed to export: error from receiver: {}",
                status.message()
            ))),
            _ => Ok(Response::new(pb::SolveResponse::default())),
        }
    }

    type StatusStream = Stream<pb::StatusResponse>;

    async fn status(
        &self,
        _: Request<pb::StatusRequest>,
    ) -> Result<Response<Self::StatusStream>, Status> {
        Ok(Response::new(Box::pin(futures::stream::empty())))
    }

    type SessionStream = Stream<BytesMessage>;

    async fn session(
        &self,
        request: Request<Streaming<BytesMessage>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let listed = request
            .metadata()
            .get_all(SESSION_GRPC_METHOD.to_ascii_lowercase().as_str())
            .iter()
            .any(|v| v.to_str().is_ok_and(|m| m == FILESEND_DIFFCOPY));
        *self.0.file_send_listed.lock().unwrap() = listed;
        let (tx, rx) = mpsc::channel(64);
        let io = kiln_session::bytes_stream_io(tx, request.into_inner());
        let state = self.0.clone();
        tokio::spawn(async move {
            // The daemon is the HTTP/2 client of kiln's session.
            match hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
                .await
            {
                Ok((send, conn)) => {
                    state.session.send_replace(Some(send));
                    let _ = conn.await;
                }
                Err(e) => eprintln!("fake daemon: session handshake failed: {e}"),
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx).map(Ok))))
    }

    async fn list_workers(
        &self,
        _: Request<pb::ListWorkersRequest>,
    ) -> Result<Response<pb::ListWorkersResponse>, Status> {
        Ok(Response::new(pb::ListWorkersResponse::default()))
    }

    async fn info(
        &self,
        _: Request<pb::InfoRequest>,
    ) -> Result<Response<pb::InfoResponse>, Status> {
        Ok(Response::new(pb::InfoResponse {
            buildkit_version: Some(kiln_proto::moby::buildkit::v1::types::BuildkitVersion {
                package: "github.com/moby/buildkit".into(),
                version: "v0.29.0".into(),
                revision: "fake".into(),
            }),
        }))
    }

    type ListenBuildHistoryStream = Stream<pb::BuildHistoryEvent>;

    async fn listen_build_history(
        &self,
        _: Request<pb::BuildHistoryRequest>,
    ) -> Result<Response<Self::ListenBuildHistoryStream>, Status> {
        Err(Status::unimplemented("fake daemon"))
    }

    async fn update_build_history(
        &self,
        _: Request<pb::UpdateBuildHistoryRequest>,
    ) -> Result<Response<pb::UpdateBuildHistoryResponse>, Status> {
        Err(Status::unimplemented("fake daemon"))
    }
}

impl Fake {
    /// The session connection (kiln attaches it before solving).
    async fn session(&self) -> Result<SendRequest<tonic::body::Body>, Status> {
        let mut rx = self.0.session.subscribe();
        let found = tokio::time::timeout(Duration::from_secs(10), rx.wait_for(Option::is_some))
            .await
            .map_err(|_| Status::failed_precondition("fake daemon: no session attached"))?
            .map_err(|_| Status::internal("fake daemon: state dropped"))?;
        found
            .clone()
            .ok_or_else(|| Status::internal("fake daemon: no session"))
    }
}

/// A tonic client service over the session's HTTP/2 connection.
fn session_service(
    send: SendRequest<tonic::body::Body>,
) -> impl tonic::client::GrpcService<
    tonic::body::Body,
    ResponseBody = hyper::body::Incoming,
    Error = hyper::Error,
    Future = impl Send,
> + Clone {
    tower::service_fn(move |mut req: http::Request<tonic::body::Body>| {
        let mut send = send.clone();
        async move {
            // HTTP/2 needs a scheme and authority; tonic leaves them to
            // the channel.
            let path = req.uri().path().to_owned();
            *req.uri_mut() = format!("http://session{path}").parse().unwrap();
            send.send_request(req).await
        }
    })
}

fn with_exporter<T>(index: usize, message: T) -> Request<T> {
    let mut req = Request::new(message);
    req.metadata_mut()
        .insert(ATTACHABLE_EXPORTER_ID, index.to_string().parse().unwrap());
    req
}

async fn send_packets(
    send: SendRequest<tonic::body::Body>,
    index: usize,
    packets: Vec<Packet>,
) -> Result<(), Status> {
    let mut client = PacketSendClient::new(session_service(send));
    let (tx, rx) = mpsc::channel(packets.len().max(1));
    for p in packets {
        tx.send(p).await.unwrap();
    }
    let mut inbound = client
        .diff_copy(with_exporter(index, ReceiverStream::new(rx)))
        .await?
        .into_inner();
    // kiln's REQs and FIN are read and ignored; the call ends when kiln
    // ends it (with its error, or OK after a full exchange).
    while inbound.message().await?.is_some() {}
    drop(tx);
    Ok(())
}

/// A request body: gRPC frames, a pause (so they reach kiln), then an
/// error, on which hyper resets the HTTP/2 stream (RST_STREAM) rather than
/// ending it: the request never half-closes, as when a daemon dies.
struct FramesThenError {
    frames: std::collections::VecDeque<bytes::Bytes>,
    pause: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl http_body::Body for FramesThenError {
    type Data = bytes::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        if let Some(f) = self.frames.pop_front() {
            return std::task::Poll::Ready(Some(Ok(http_body::Frame::data(f))));
        }
        std::task::ready!(std::future::Future::poll(self.pause.as_mut(), cx));
        std::task::Poll::Ready(Some(Err(std::io::Error::other(
            "fake daemon: exporter died mid-stream",
        ))))
    }
}

async fn send_frames_then_reset(
    mut send: SendRequest<tonic::body::Body>,
    index: usize,
    frames: Vec<Vec<u8>>,
) -> Result<(), Status> {
    use http_body::Body as _;
    use kiln_proto::prost::Message as _;
    let frames = frames
        .into_iter()
        .map(|data| {
            let msg = FileBytes { data }.encode_to_vec();
            let mut framed = vec![0u8];
            framed.extend_from_slice(&u32::try_from(msg.len()).unwrap().to_be_bytes());
            framed.extend_from_slice(&msg);
            bytes::Bytes::from(framed)
        })
        .collect();
    let body = FramesThenError {
        frames,
        pause: Box::pin(tokio::time::sleep(Duration::from_millis(500))),
    };
    let req = http::Request::builder()
        .method("POST")
        .uri(format!("http://session{FILESEND_DIFFCOPY}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header(ATTACHABLE_EXPORTER_ID, index.to_string())
        .body(tonic::body::Body::new(body))
        .unwrap();
    // kiln's answer does not matter here: its stream was reset under it.
    if let Ok(resp) = send.send_request(req).await {
        let mut body = resp.into_body();
        while let Some(Ok(_)) =
            std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
        {}
    }
    Err(Status::unavailable("fake daemon: exporter died mid-stream"))
}
