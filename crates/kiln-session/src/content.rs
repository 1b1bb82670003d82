//! `containerd.services.content.v1.Content`: the daemon reads blobs of OCI
//! layouts on the client's disk (`oci-layout://` sources), and reads and
//! writes `type=local` cache directories (store id `local:<dir>`; writes
//! only where the client registered the directory as an export).
//!
//! BuildKit names the store in the `buildkit-attachable-store-id` metadata
//! as `oci:<store id>` (the source op's `oci.store` attr) and reads only by
//! digest: `Info` for a blob's size, then `Read` at offsets it chooses. It
//! never asks for `index.json`; tags are the client's business. Blobs are
//! served from `<layout>/blobs/<algorithm>/<hex>`, the layout's own files;
//! the daemon checks every blob against its digest.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use kiln_proto::content::{
    Info, InfoRequest, InfoResponse, ReadContentRequest, ReadContentResponse, WriteAction,
    WriteContentRequest, WriteContentResponse,
};
use kiln_proto::headers::{ATTACHABLE_STORE_ID, LOCAL_CACHE_STORE_PREFIX, OCI_STORE_PREFIX};
use kiln_proto::methods::{CONTENT_INFO, CONTENT_READ, CONTENT_WRITE};
use sha2::Digest as _;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::server::{Grpc, NamedService};
use tonic::{Request, Response, Status};

use crate::error::{Error, Result};

/// The largest chunk of one `Read` response (containerd's content server
/// uses the same).
const CHUNK: usize = 1 << 20;

/// OCI layout directories the daemon may read, by store id, and local
/// cache directories it may read (imports) or write (exports).
#[derive(Debug, Clone, Default)]
pub struct OciLayouts {
    stores: Arc<BTreeMap<String, PathBuf>>,
    /// By the `src`/`dest` attribute as given: (directory, writable).
    caches: Arc<BTreeMap<String, (PathBuf, bool)>>,
}

impl OciLayouts {
    /// No layouts.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves the OCI layout at `dir` as store `id` (the `oci.store` attr
    /// of `oci-layout://` sources).
    ///
    /// # Errors
    /// [`Error::NotAnOciLayout`] when `dir` has no `oci-layout` file or no
    /// `blobs` directory; [`Error::Duplicate`] when `id` is taken.
    pub fn add(&mut self, id: impl Into<String>, dir: impl Into<PathBuf>) -> Result<()> {
        let id = id.into();
        let dir = dir.into();
        if !dir.join("oci-layout").is_file() || !dir.join("blobs").is_dir() {
            return Err(Error::NotAnOciLayout { path: dir });
        }
        let stores = Arc::make_mut(&mut self.stores);
        if stores.contains_key(&id) {
            return Err(Error::Duplicate {
                kind: "OCI layout store",
                name: id,
            });
        }
        stores.insert(id, dir);
        Ok(())
    }

    /// Serves `dir` as the `type=local` cache store named `attr` (the
    /// `src` or `dest` attribute the daemon was given, which names the
    /// store `local:<attr>`): readable, and writable for an export. An
    /// export's directory is created.
    ///
    /// # Errors
    /// [`Error::NotAnOciLayout`] for an import whose `dir` has no
    /// `index.json`; [`Error::Io`]-like failures to create an export's
    /// directory as [`Error::NotAnOciLayout`] too (it cannot be one).
    pub fn local_cache(
        &mut self,
        attr: impl Into<String>,
        dir: impl Into<PathBuf>,
        writable: bool,
    ) -> Result<()> {
        let dir = dir.into();
        if writable {
            std::fs::create_dir_all(dir.join("blobs"))
                .map_err(|_| Error::NotAnOciLayout { path: dir.clone() })?;
        } else if !dir.join("index.json").is_file() {
            return Err(Error::NotAnOciLayout { path: dir });
        }
        let caches = Arc::make_mut(&mut self.caches);
        let entry = caches.entry(attr.into()).or_insert((dir, writable));
        entry.1 |= writable;
        Ok(())
    }

    /// Whether nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.stores.is_empty() && self.caches.is_empty()
    }

    /// The layout a call is for, by its store id metadata.
    fn store(&self, headers: &http::HeaderMap) -> Result<Store, Status> {
        let raw = headers
            .get(ATTACHABLE_STORE_ID)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                Status::invalid_argument(format!("request lacks {ATTACHABLE_STORE_ID} metadata"))
            })?;
        if let Some(attr) = raw.strip_prefix(LOCAL_CACHE_STORE_PREFIX) {
            return match self.caches.get(attr) {
                Some((dir, writable)) => Ok(Store {
                    id: raw.to_owned(),
                    dir: dir.clone(),
                    writable: *writable,
                }),
                None => Err(Status::not_found(format!(
                    "unknown cache store {raw:?} (this client serves no such --cache-to/--cache-from directory)"
                ))),
            };
        }
        let id = raw.strip_prefix(OCI_STORE_PREFIX).unwrap_or(raw);
        match self.stores.get(id) {
            Some(dir) => Ok(Store {
                id: id.to_owned(),
                dir: dir.clone(),
                writable: false,
            }),
            None => {
                let known: Vec<&str> = self.stores.keys().map(String::as_str).collect();
                Err(Status::not_found(format!(
                    "unknown OCI layout store {id:?} (this client serves {known:?})"
                )))
            }
        }
    }
}

/// One layout, as a call sees it. Messages to the daemon name the store id,
/// never the client's paths.
#[derive(Debug, Clone)]
struct Store {
    id: String,
    dir: PathBuf,
    /// A cache export's directory (the daemon may write blobs).
    writable: bool,
}

impl Store {
    fn failed(&self, what: &str, digest: &str, e: &std::io::Error) -> Status {
        tracing::warn!(store = %self.id, %digest, error = %e, "OCI layout {what} failed");
        Status::internal(format!(
            "cannot {what} blob {digest} of OCI layout store {:?}: {}",
            self.id,
            e.kind()
        ))
    }

    fn missing(&self, digest: &str) -> Status {
        Status::not_found(format!(
            "blob {digest} not found in OCI layout store {:?}",
            self.id
        ))
    }
}

/// The path of `digest`'s blob in the layout at `dir`; refuses anything
/// but `algorithm:hex` with a known algorithm and lower-case hex of its
/// length, so no request can name a path outside `blobs/`.
fn blob_path(dir: &Path, digest: &str) -> Result<PathBuf, Status> {
    let invalid = || Status::invalid_argument(format!("invalid digest {digest:?}"));
    let (alg, hex) = digest.split_once(':').ok_or_else(invalid)?;
    let len = match alg {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return Err(invalid()),
    };
    if hex.len() != len || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(invalid());
    }
    Ok(dir.join("blobs").join(alg).join(hex))
}

/// The path and size of `digest`'s blob: a regular file (a symlink, say
/// to a key elsewhere on the client, is refused, not followed).
async fn blob_size(store: &Store, digest: &str) -> Result<(PathBuf, u64), Status> {
    let path = blob_path(&store.dir, digest)?;
    match tokio::fs::symlink_metadata(&path).await {
        Ok(m) if m.file_type().is_file() => Ok((path, m.len())),
        Ok(_) => Err(store.missing(digest)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(store.missing(digest)),
        Err(e) => Err(store.failed("stat", digest, &e)),
    }
}

async fn info(store: Store, req: InfoRequest) -> Result<Response<InfoResponse>, Status> {
    let (_, size) = blob_size(&store, &req.digest).await?;
    Ok(Response::new(InfoResponse {
        info: Some(Info {
            digest: req.digest,
            size: i64::try_from(size).unwrap_or(i64::MAX),
            ..Default::default()
        }),
    }))
}

/// The byte range a `Read` asks for, as containerd's content server reads
/// it: a negative offset is 0, an offset past the end is out of range, a
/// size of 0 or past the end reads to the end.
fn read_range(offset: i64, size: i64, len: u64) -> Result<(u64, u64), Status> {
    let offset = u64::try_from(offset).unwrap_or(0);
    if offset > len {
        return Err(Status::out_of_range(format!(
            "offset {offset} is past the end of the blob ({len} bytes)"
        )));
    }
    let rest = len - offset;
    let size = match u64::try_from(size) {
        Ok(s) if s > 0 && s < rest => s,
        _ => rest,
    };
    Ok((offset, size))
}

type ReadStream = ReceiverStream<Result<ReadContentResponse, Status>>;

async fn read(store: Store, req: ReadContentRequest) -> Result<Response<ReadStream>, Status> {
    let digest = req.digest;
    let (path, len) = blob_size(&store, &digest).await?;
    let (offset, size) = read_range(req.offset, req.size, len)?;
    let mut file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| store.failed("open", &digest, &e))?;
    file.seek(SeekFrom::Start(offset))
        .await
        .map_err(|e| store.failed("seek in", &digest, &e))?;
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        let mut sent: u64 = 0;
        while sent < size {
            let want = usize::try_from((size - sent).min(CHUNK as u64)).unwrap_or(CHUNK);
            let mut buf = vec![0u8; want];
            let n = match file.read(&mut buf).await {
                Ok(0) => {
                    let _ = tx
                        .send(Err(Status::data_loss(format!(
                            "blob {digest} of OCI layout store {:?} ended early (changed while the daemon read it?)",
                            store.id
                        ))))
                        .await;
                    return;
                }
                Ok(n) => n,
                Err(e) => {
                    let _ = tx.send(Err(store.failed("read", &digest, &e))).await;
                    return;
                }
            };
            buf.truncate(n);
            let chunk = ReadContentResponse {
                // Relative to the request, as containerd's server counts.
                offset: i64::try_from(sent).unwrap_or(i64::MAX),
                data: buf,
            };
            if tx.send(Ok(chunk)).await.is_err() {
                return; // the daemon has what it wanted and cancelled
            }
            sent += n as u64;
        }
    });
    Ok(Response::new(ReceiverStream::new(rx)))
}

type WriteStream = ReceiverStream<Result<WriteContentResponse, Status>>;

fn now() -> kiln_proto::google::protobuf::Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    kiln_proto::google::protobuf::Timestamp {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

/// One blob being written: appended in order, hashed as it goes, renamed
/// into `blobs/` on commit once its size and digest check out.
struct Ingest {
    path: PathBuf,
    file: Option<tokio::fs::File>,
    hasher: sha2::Sha256,
    offset: u64,
}

impl Ingest {
    async fn append(&mut self, store: &Store, at: i64, data: &[u8]) -> Result<(), Status> {
        let at = u64::try_from(at).unwrap_or(0);
        if at == 0 && self.offset != 0 {
            // containerd's writers may restart a write from the beginning.
            self.file = None;
            self.offset = 0;
            self.hasher = sha2::Sha256::new();
        }
        if at != self.offset {
            return Err(Status::out_of_range(format!(
                "write at {at}, but {} bytes are written (cache store {:?} writes in order)",
                self.offset, store.id
            )));
        }
        if self.file.is_none() {
            let f = tokio::fs::File::create(&self.path)
                .await
                .map_err(|e| store.failed("create", "an ingest file", &e))?;
            self.file = Some(f);
        }
        if let Some(f) = self.file.as_mut() {
            f.write_all(data)
                .await
                .map_err(|e| store.failed("write", "an ingest file", &e))?;
        }
        self.hasher.update(data);
        self.offset += data.len() as u64;
        Ok(())
    }
}

async fn write(
    store: Store,
    mut reqs: tonic::Streaming<WriteContentRequest>,
) -> Result<Response<WriteStream>, Status> {
    if !store.writable {
        return Err(Status::permission_denied(format!(
            "cache store {:?} is not an export of this build",
            store.id
        )));
    }
    let ingest_dir = store.dir.join("ingest");
    tokio::fs::create_dir_all(&ingest_dir)
        .await
        .map_err(|e| store.failed("create", "the ingest directory", &e))?;
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        let started = now();
        let mut ingest: Option<Ingest> = None;
        let (mut total, mut expected) = (0i64, String::new());
        loop {
            let msg = match reqs.message().await {
                Ok(Some(m)) => m,
                Ok(None) | Err(_) => break,
            };
            if msg.total > 0 {
                total = msg.total;
            }
            if !msg.expected.is_empty() {
                expected = msg.expected.clone();
            }
            let ing = ingest.get_or_insert_with(|| Ingest {
                // The ref names the write; its hash names the file, so no
                // ref can name a path.
                path: ingest_dir.join(hex::encode(sha2::Sha256::digest(msg.r#ref.as_bytes()))),
                file: None,
                hasher: sha2::Sha256::new(),
                offset: 0,
            });
            // The action answered, and on commit the stored digest.
            let answer = match WriteAction::try_from(msg.action) {
                Ok(WriteAction::Stat) => {
                    if !expected.is_empty() && blob_size(&store, &expected).await.is_ok() {
                        Err(Status::already_exists(format!("{expected} already exists")))
                    } else {
                        Ok((WriteAction::Stat, String::new()))
                    }
                }
                Ok(WriteAction::Write) => ing
                    .append(&store, msg.offset, &msg.data)
                    .await
                    .map(|()| (WriteAction::Write, String::new())),
                Ok(WriteAction::Commit) => commit(&store, ing, &msg, total, &expected)
                    .await
                    .map(|digest| (WriteAction::Commit, digest)),
                Err(_) => Err(Status::invalid_argument(format!(
                    "unknown write action {}",
                    msg.action
                ))),
            };
            let done = !matches!(answer, Ok((WriteAction::Stat | WriteAction::Write, _)));
            let reply = answer.map(|(action, digest)| WriteContentResponse {
                action: action as i32,
                started_at: Some(started),
                updated_at: Some(now()),
                offset: i64::try_from(ing.offset).unwrap_or(i64::MAX),
                total,
                digest,
            });
            if tx.send(reply).await.is_err() || done {
                break;
            }
        }
        if let Some(ing) = ingest {
            let _ = tokio::fs::remove_file(&ing.path).await;
        }
    });
    Ok(Response::new(ReceiverStream::new(rx)))
}

/// Checks the written content against `total` and `expected` and stores
/// it under its digest, which it returns.
async fn commit(
    store: &Store,
    ing: &mut Ingest,
    msg: &WriteContentRequest,
    total: i64,
    expected: &str,
) -> Result<String, Status> {
    if !msg.data.is_empty() || ing.file.is_none() {
        let at = i64::try_from(ing.offset).unwrap_or(i64::MAX);
        ing.append(
            store,
            if msg.data.is_empty() { at } else { msg.offset },
            &msg.data,
        )
        .await?;
    }
    if let Some(f) = ing.file.as_mut() {
        f.flush()
            .await
            .map_err(|e| store.failed("flush", "an ingest file", &e))?;
    }
    ing.file = None;
    if total > 0 && u64::try_from(total).ok() != Some(ing.offset) {
        return Err(Status::failed_precondition(format!(
            "{} bytes written, {total} expected",
            ing.offset
        )));
    }
    let got = format!("sha256:{}", hex::encode(ing.hasher.clone().finalize()));
    if !expected.is_empty() && expected != got {
        return Err(Status::failed_precondition(format!(
            "unexpected digest {got}, expected {expected}"
        )));
    }
    let target = blob_path(&store.dir, &got)?;
    if let Some(parent) = target.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| store.failed("create", &got, &e))?;
    }
    tokio::fs::rename(&ing.path, &target)
        .await
        .map_err(|e| store.failed("store", &got, &e))?;
    Ok(got)
}

impl NamedService for OciLayouts {
    const NAME: &'static str = "containerd.services.content.v1.Content";
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<B> tower::Service<http::Request<B>> for OciLayouts
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
        let path = req.uri().path().to_owned();
        let store = self.store(req.headers());
        Box::pin(async move {
            let store = match store {
                Ok(store) => store,
                Err(status) => return Ok(status.into_http()),
            };
            let response = match path.as_str() {
                CONTENT_INFO => {
                    let mut grpc =
                        Grpc::new(tonic_prost::ProstCodec::<InfoResponse, InfoRequest>::default());
                    let svc = tower::service_fn(move |r: Request<InfoRequest>| {
                        info(store.clone(), r.into_inner())
                    });
                    grpc.unary(svc, req).await
                }
                CONTENT_READ => {
                    let mut grpc = Grpc::new(tonic_prost::ProstCodec::<
                        ReadContentResponse,
                        ReadContentRequest,
                    >::default())
                    .apply_max_message_size_config(None, Some(kiln_proto::MAX_MESSAGE_SIZE));
                    let svc = tower::service_fn(move |r: Request<ReadContentRequest>| {
                        read(store.clone(), r.into_inner())
                    });
                    grpc.server_streaming(svc, req).await
                }
                CONTENT_WRITE => {
                    let mut grpc = Grpc::new(tonic_prost::ProstCodec::<
                        WriteContentResponse,
                        WriteContentRequest,
                    >::default())
                    .apply_max_message_size_config(Some(kiln_proto::MAX_MESSAGE_SIZE), None);
                    let svc = tower::service_fn(
                        move |r: Request<tonic::Streaming<WriteContentRequest>>| {
                            write(store.clone(), r.into_inner())
                        },
                    );
                    grpc.streaming(svc, req).await
                }
                _ => Status::unimplemented(format!("content method {path} is not served"))
                    .into_http(),
            };
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn layout() -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("layout");
        std::fs::create_dir_all(dir.join("blobs/sha256")).expect("mkdir");
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).expect("w");
        std::fs::write(dir.join("blobs/sha256").join(&D[7..]), "test").expect("w");
        (tmp, dir)
    }

    #[test]
    fn refuses_digests_that_could_name_other_paths() {
        let dir = Path::new("/l");
        assert!(blob_path(dir, D).is_ok());
        for bad in [
            "sha256:../../etc/passwd",
            "sha256:ABCDEF",
            "md5:9f86d081884c7d659a2feaa0c55ad015",
            "nocolon",
            &D.to_uppercase(),
            &format!("{D}/x"),
        ] {
            let e = blob_path(dir, bad).expect_err(bad);
            assert_eq!(e.code(), tonic::Code::InvalidArgument, "{bad}");
        }
    }

    #[test]
    fn ranges_follow_containerd() {
        assert_eq!(read_range(0, 0, 10).expect("r"), (0, 10));
        assert_eq!(read_range(-5, 0, 10).expect("r"), (0, 10));
        assert_eq!(read_range(4, 3, 10).expect("r"), (4, 3));
        assert_eq!(read_range(4, 100, 10).expect("r"), (4, 6));
        assert_eq!(read_range(10, 0, 10).expect("r"), (10, 0));
        assert_eq!(
            read_range(11, 0, 10).expect_err("past end").code(),
            tonic::Code::OutOfRange
        );
    }

    #[tokio::test]
    async fn a_cache_export_writes_in_order_and_commits_by_digest() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut stores = OciLayouts::new();
        let dest = tmp.path().join("cache");
        stores
            .local_cache(dest.display().to_string(), &dest, true)
            .expect("export dir");
        let mut h = http::HeaderMap::new();
        let id = format!("local:{}", dest.display());
        h.insert(ATTACHABLE_STORE_ID, id.parse().expect("header"));
        let store = stores.store(&h).expect("the export's store");
        assert!(store.writable);
        std::fs::create_dir_all(dest.join("ingest")).expect("ingest");
        let mut ing = Ingest {
            path: dest.join("ingest/x"),
            file: None,
            hasher: sha2::Sha256::new(),
            offset: 0,
        };
        ing.append(&store, 0, b"te").await.expect("first chunk");
        let gap = ing.append(&store, 5, b"x").await.expect_err("a gap");
        assert_eq!(gap.code(), tonic::Code::OutOfRange);
        let msg = WriteContentRequest {
            action: WriteAction::Commit as i32,
            offset: 2,
            data: b"st".to_vec(),
            ..Default::default()
        };
        let wrong = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
        let e = commit(&store, &mut ing, &msg, 4, wrong)
            .await
            .expect_err("wrong digest");
        assert_eq!(e.code(), tonic::Code::FailedPrecondition);
        // "test" again, from the start, with the right digest.
        let mut ing = Ingest {
            path: dest.join("ingest/y"),
            file: None,
            hasher: sha2::Sha256::new(),
            offset: 0,
        };
        let msg = WriteContentRequest {
            offset: 0,
            data: b"test".to_vec(),
            ..msg
        };
        let stored = commit(&store, &mut ing, &msg, 4, D).await.expect("commit");
        assert_eq!(stored, D);
        let blob = blob_path(&dest, D).expect("path");
        assert_eq!(std::fs::read(blob).expect("blob"), b"test");
        // An import's directory is read-only; unknown cache stores are refused.
        let mut ro = OciLayouts::new();
        assert!(ro
            .local_cache("nope", tmp.path().join("nope"), false)
            .is_err());
        ro.local_cache("c", &dest, false)
            .expect_err("no index.json yet");
        std::fs::write(dest.join("index.json"), "{}").expect("index");
        ro.local_cache("c", &dest, false).expect("import dir");
        h.insert(ATTACHABLE_STORE_ID, "local:c".parse().expect("header"));
        assert!(!ro.store(&h).expect("store").writable);
        h.insert(ATTACHABLE_STORE_ID, "local:other".parse().expect("header"));
        assert_eq!(
            ro.store(&h).expect_err("unknown").code(),
            tonic::Code::NotFound
        );
    }

    #[tokio::test]
    async fn info_and_read_serve_the_blob() {
        use tokio_stream::StreamExt;
        let (_tmp, dir) = layout();
        let store = Store {
            id: "st".into(),
            dir: dir.clone(),
            writable: false,
        };
        let i = info(store.clone(), InfoRequest { digest: D.into() })
            .await
            .expect("info")
            .into_inner();
        assert_eq!(i.info.expect("info").size, 4);
        let req = ReadContentRequest {
            digest: D.into(),
            offset: 1,
            size: 2,
        };
        let mut s = read(store.clone(), req).await.expect("read").into_inner();
        let mut data = Vec::new();
        while let Some(c) = s.next().await {
            data.extend(c.expect("chunk").data);
        }
        assert_eq!(data, b"es");
        let missing = "sha256:".to_string() + &"0".repeat(64);
        let e = info(
            store.clone(),
            InfoRequest {
                digest: missing.clone(),
            },
        )
        .await
        .expect_err("missing");
        assert_eq!(e.code(), tonic::Code::NotFound);
        assert!(e.message().contains(&missing), "{}", e.message());
        // The daemon is told the store id, never the client's paths.
        assert!(e.message().contains("store \"st\""), "{}", e.message());
        assert!(!e.message().contains(&dir.display().to_string()));

        // A blob that is a symlink (say to a key elsewhere) is not served.
        let secret = dir.join("../secret");
        std::fs::write(&secret, "do not send").expect("w");
        let linked = digest_of(b"do not send");
        std::os::unix::fs::symlink(&secret, dir.join("blobs/sha256").join(&linked[7..]))
            .expect("symlink");
        let e = info(
            store.clone(),
            InfoRequest {
                digest: linked.clone(),
            },
        )
        .await
        .expect_err("symlink");
        assert_eq!(e.code(), tonic::Code::NotFound);
        let e = read(
            store,
            ReadContentRequest {
                digest: linked,
                ..Default::default()
            },
        )
        .await
        .expect_err("symlink");
        assert_eq!(e.code(), tonic::Code::NotFound);
    }

    fn digest_of(b: &[u8]) -> String {
        use sha2::Digest as _;
        let hex: String = sha2::Sha256::digest(b)
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect();
        format!("sha256:{hex}")
    }

    #[test]
    fn add_checks_the_layout_and_store_ids() {
        let (tmp, dir) = layout();
        let mut l = OciLayouts::new();
        assert!(matches!(
            l.add("x", tmp.path()),
            Err(Error::NotAnOciLayout { .. })
        ));
        l.add("s", &dir).expect("add");
        assert!(matches!(l.add("s", &dir), Err(Error::Duplicate { .. })));
        let mut h = http::HeaderMap::new();
        assert_eq!(
            l.store(&h).expect_err("no md").code(),
            tonic::Code::InvalidArgument
        );
        h.insert(ATTACHABLE_STORE_ID, "oci:s".parse().expect("hv"));
        let st = l.store(&h).expect("store");
        assert_eq!((st.id.as_str(), st.dir), ("s", dir));
        h.insert(ATTACHABLE_STORE_ID, "oci:t".parse().expect("hv"));
        let e = l.store(&h).expect_err("unknown");
        assert_eq!(e.code(), tonic::Code::NotFound);
        assert!(e.message().contains("\"t\""), "{}", e.message());
    }
}
