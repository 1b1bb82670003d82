//! `moby.filesync.v1.FileSend`: the daemon sends exporter output to kiln.
//!
//! One wire path, `/moby.filesync.v1.FileSend/DiffCopy`, carries two
//! protocols: raw `BytesMessage` frames for single-file exporters (`tar`,
//! `oci`, `docker`) and fsutil packets for the `local` exporter. The
//! generated code has a server type for each, so this service is written by
//! hand: it picks the target by the `buildkit-attachable-exporter-id`
//! metadata (the exporter's index in `SolveRequest.exporters`) and decodes
//! the stream with the matching message type.

mod file;
mod receive;
mod staged_dir;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use kiln_proto::fsutil::types::Packet;
use kiln_proto::headers::ATTACHABLE_EXPORTER_ID;
use kiln_proto::methods::FILESEND_DIFFCOPY;
use kiln_proto::moby::filesync::v1::BytesMessage;
use tokio::io::AsyncWrite;
use tokio::sync::{mpsc, Mutex};
use tokio_stream::wrappers::ReceiverStream;
use tonic::server::{Grpc, NamedService};
use tonic::{Request, Response, Status, Streaming};

pub use receive::{receive_dir, ReceiveOptions};
pub use staged_dir::abandon_exports;

use crate::error::{Error, Result};

/// A writer export target, shared by the clones of a session; the first
/// export to use it takes it.
#[derive(Clone)]
pub struct SharedWriter(Arc<Mutex<Option<Box<dyn AsyncWrite + Send + Unpin>>>>);

impl SharedWriter {
    async fn take(&self) -> Option<Box<dyn AsyncWrite + Send + Unpin>> {
        self.0.lock().await.take()
    }
}

/// Exports the daemon has sent completely, waiting (a file in its
/// temporary file, a directory in its staging directory) until the build
/// succeeds: [`Outputs::commit`] puts them into place. A stream that ends
/// is not a finished build (a cancelled exporter closes its stream too), so
/// nothing reaches its destination before the caller knows the build
/// succeeded; uncommitted exports are removed when the session is dropped.
#[derive(Clone, Default)]
pub struct Outputs(Arc<OutputsInner>);

#[derive(Default)]
struct OutputsInner {
    staged: std::sync::Mutex<Vec<Staged>>,
    /// Transfers still running: a directory's last packets and its staging
    /// may trail the daemon's end of the export by a moment.
    running: std::sync::atomic::AtomicUsize,
    settled: tokio::sync::Notify,
}

/// A whole export waiting for the build's success.
enum Staged {
    File(file::Received),
    Dir(staged_dir::StagedDir),
}

/// How long [`Outputs::commit`] waits for transfers still finishing.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(60);

impl std::fmt::Debug for Outputs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outputs").finish_non_exhaustive()
    }
}

/// One transfer counted as running while alive.
struct Transfer(Outputs);

impl Drop for Transfer {
    fn drop(&mut self) {
        self.0
             .0
            .running
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        self.0 .0.settled.notify_waiters();
    }
}

impl Outputs {
    fn begin(&self) -> Transfer {
        self.0
            .running
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Transfer(self.clone())
    }

    fn stage(&self, received: Staged) {
        if let Ok(mut v) = self.0.staged.lock() {
            v.push(received);
        }
    }

    /// Waits for the transfers still finishing (their last packets and
    /// their staging may trail the daemon's end of the export).
    ///
    /// # Errors
    /// [`Error::PacketProtocol`] when a transfer is still running a minute
    /// after the build ended.
    pub async fn settle(&self) -> Result<()> {
        let settled = async {
            loop {
                let notified = self.0.settled.notified();
                if self.0.running.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(SETTLE, settled).await.map_err(|_| {
            Error::protocol("an export was still being received a minute after the build ended")
        })
    }

    /// [`Outputs::settle`], then moves every export received whole into
    /// place, returning their destinations.
    ///
    /// # Errors
    /// [`Error::Io`] when a rename or a merge fails (the exports not yet
    /// moved are removed), or what [`Outputs::settle`] returns.
    pub async fn commit(&self) -> Result<Vec<PathBuf>> {
        self.settle().await?;
        let staged = match self.0.staged.lock() {
            Ok(mut v) => std::mem::take(&mut *v),
            Err(_) => return Err(Error::protocol("export list poisoned")),
        };
        let mut done = Vec::new();
        for r in staged {
            done.push(match r {
                Staged::File(f) => f.commit()?,
                Staged::Dir(d) => d.commit()?,
            });
        }
        Ok(done)
    }
}

/// Where one exporter's output goes.
#[derive(Clone)]
#[non_exhaustive]
pub enum ExportTarget {
    /// A single file (`tar`, `oci`, `docker` exporters): written to a
    /// temporary file beside it, synced, and renamed into place by
    /// [`Outputs::commit`] once the build succeeded; removed otherwise.
    File(PathBuf),
    /// A writer such as stdout (`dest=-`); usable by one export only.
    Writer(SharedWriter),
    /// A directory (`local` exporter): the daemon's files are written below
    /// it; paths that would leave it are refused.
    Directory(PathBuf),
}

impl std::fmt::Debug for ExportTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(p) => f.debug_tuple("File").field(p).finish(),
            Self::Writer(_) => f.write_str("Writer"),
            Self::Directory(p) => f.debug_tuple("Directory").field(p).finish(),
        }
    }
}

impl ExportTarget {
    /// A single-file target.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self::File(path.into())
    }

    /// A directory target.
    pub fn directory(path: impl Into<PathBuf>) -> Self {
        Self::Directory(path.into())
    }

    /// A writer target.
    pub fn writer(writer: impl AsyncWrite + Send + Unpin + 'static) -> Self {
        Self::Writer(SharedWriter(Arc::new(Mutex::new(Some(Box::new(writer))))))
    }

    /// Standard output.
    pub fn stdout() -> Self {
        Self::writer(tokio::io::stdout())
    }

    /// A single-file exporter's `dest`: `-` is standard output.
    pub fn from_dest(dest: &str) -> Self {
        if dest == "-" {
            Self::stdout()
        } else {
            Self::file(dest)
        }
    }

    fn is_directory(&self) -> bool {
        matches!(self, Self::Directory(_))
    }
}

/// The FileSend service: export targets by exporter index.
#[derive(Debug, Clone, Default)]
pub(crate) struct FileSendService {
    targets: Arc<BTreeMap<u32, ExportTarget>>,
    outputs: Outputs,
    /// The first transfer that failed on kiln's side, kept so that a daemon
    /// reporting success anyway cannot hide it.
    failed: Arc<std::sync::Mutex<Option<Error>>>,
}

impl FileSendService {
    pub(crate) fn add(&mut self, index: u32, target: ExportTarget) -> Result<()> {
        let targets = Arc::make_mut(&mut self.targets);
        if targets.contains_key(&index) {
            return Err(Error::Duplicate {
                kind: "exporter id",
                name: index.to_string(),
            });
        }
        targets.insert(index, target);
        Ok(())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    pub(crate) fn outputs(&self) -> Outputs {
        self.outputs.clone()
    }

    /// Takes the first failed transfer's error, if any.
    pub(crate) fn take_failure(&self) -> Option<Error> {
        self.failed.lock().ok().and_then(|mut f| f.take())
    }

    /// The target for a call: by the exporter id metadata; without it the
    /// only target, else exporter 0 (BuildKit's default).
    fn target(&self, headers: &http::HeaderMap) -> std::result::Result<ExportTarget, Status> {
        let id = match headers.get(ATTACHABLE_EXPORTER_ID) {
            Some(v) => v
                .to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok())
                .ok_or_else(|| Status::invalid_argument("invalid exporter id metadata"))?,
            None if self.targets.len() == 1 => *self.targets.keys().next().unwrap_or(&0),
            None => 0,
        };
        self.targets
            .get(&id)
            .cloned()
            .ok_or_else(|| Status::not_found(format!("exporter {id} not found")))
    }
}

impl NamedService for FileSendService {
    const NAME: &'static str = "moby.filesync.v1.FileSend";
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<B> tower::Service<http::Request<B>> for FileSendService
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != FILESEND_DIFFCOPY {
            return Box::pin(async {
                Ok(Status::unimplemented("unknown FileSend method").into_http())
            });
        }
        let target = self.target(req.headers());
        let outputs = self.outputs.clone();
        let failed = self.failed.clone();
        Box::pin(async move {
            let response = match target {
                Ok(target) if target.is_directory() => {
                    let mut grpc = Grpc::new(tonic_prost::ProstCodec::<Packet, Packet>::default())
                        .apply_max_message_size_config(Some(kiln_proto::MAX_MESSAGE_SIZE), None);
                    let outputs = outputs.clone();
                    let svc = tower::service_fn(move |r: Request<Streaming<Packet>>| {
                        let (target, failed) = (target.clone(), failed.clone());
                        let outputs = outputs.clone();
                        async move { Ok::<_, Status>(start_directory(target, outputs, r, failed)) }
                    });
                    grpc.streaming(svc, req).await
                }
                Ok(target) => {
                    let mut grpc =
                        Grpc::new(tonic_prost::ProstCodec::<BytesMessage, BytesMessage>::default())
                            .apply_max_message_size_config(
                                Some(kiln_proto::MAX_MESSAGE_SIZE),
                                None,
                            );
                    let svc = tower::service_fn(move |r: Request<Streaming<BytesMessage>>| {
                        let (target, failed) = (target.clone(), failed.clone());
                        let outputs = outputs.clone();
                        async move { Ok::<_, Status>(start_file(target, outputs, r, failed)) }
                    });
                    grpc.streaming(svc, req).await
                }
                Err(status) => status.into_http(),
            };
            Ok(response)
        })
    }
}

type Answer<T> = Response<ReceiverStream<Result<T, Status>>>;

type Failed = Arc<std::sync::Mutex<Option<Error>>>;

/// Keeps `err` as the session's export failure (the first one wins) and
/// returns the status that tells the daemon.
fn record(failed: &Failed, err: Error) -> Status {
    let status = err.to_status();
    if let Ok(mut slot) = failed.lock() {
        slot.get_or_insert(err);
    }
    status
}

/// Runs a transfer in its own task; the response stream stays open (and
/// empty) until the transfer ends, then carries its error if any.
fn spawn_transfer<T, F>(transfer: F, failed: Failed) -> Answer<T>
where
    T: Send + 'static,
    F: Future<Output = Result<()>> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        if let Err(err) = transfer.await {
            tracing::warn!(error = %err, "export transfer failed");
            let _ = tx.send(Err(record(&failed, err))).await;
        }
    });
    Response::new(ReceiverStream::new(rx))
}

fn start_file(
    target: ExportTarget,
    outputs: Outputs,
    request: Request<Streaming<BytesMessage>>,
    failed: Failed,
) -> Answer<BytesMessage> {
    let inbound = request.into_inner();
    let transfer = outputs.begin();
    spawn_transfer(
        async move {
            let _transfer = transfer;
            match target {
                ExportTarget::File(path) => {
                    outputs.stage(Staged::File(file::receive_file(&path, inbound).await?));
                    Ok(())
                }
                ExportTarget::Writer(writer) => file::receive_writer(&writer, inbound).await,
                ExportTarget::Directory(_) => {
                    Err(Error::protocol("directory target got a byte stream"))
                }
            }
        },
        failed,
    )
}

fn start_directory(
    target: ExportTarget,
    outputs: Outputs,
    request: Request<Streaming<Packet>>,
    failed: Failed,
) -> Answer<Packet> {
    let inbound = request.into_inner();
    let (tx, rx) = mpsc::channel(64);
    let ExportTarget::Directory(dest) = target else {
        return spawn_transfer(
            async { Err(Error::protocol("file target got a packet stream")) },
            failed,
        );
    };
    let transfer = outputs.begin();
    tokio::spawn(async move {
        let _transfer = transfer;
        // Received into a staging directory inside `dest`, merged into it
        // by Outputs::commit once the build succeeded.
        let received = async {
            let staged = staged_dir::StagedDir::create(&dest)?;
            receive::receive_dir_cancellable(
                staged.staging(),
                inbound,
                tx.clone(),
                ReceiveOptions::default(),
                staged.cancel(),
            )
            .await?;
            Ok::<_, Error>(staged)
        };
        match received.await {
            Ok(staged) => outputs.stage(Staged::Dir(staged)),
            Err(err) => {
                tracing::warn!(dest = %dest.display(), error = %err, "local export failed");
                let _ = tx.send(Err(record(&failed, err))).await;
            }
        }
    });
    Response::new(ReceiverStream::new(rx))
}
