//! `containerd.services.content.v1.Content`: the daemon reads blobs of OCI
//! layouts on the client's disk (`oci-layout://` sources).
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
    Info, InfoRequest, InfoResponse, ReadContentRequest, ReadContentResponse,
};
use kiln_proto::headers::{ATTACHABLE_STORE_ID, OCI_STORE_PREFIX};
use kiln_proto::methods::{CONTENT_INFO, CONTENT_READ};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::server::{Grpc, NamedService};
use tonic::{Request, Response, Status};

use crate::error::{Error, Result};

/// The largest chunk of one `Read` response (containerd's content server
/// uses the same).
const CHUNK: usize = 1 << 20;

/// OCI layout directories the daemon may read, by store id.
#[derive(Debug, Clone, Default)]
pub struct OciLayouts {
    stores: Arc<BTreeMap<String, PathBuf>>,
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

    /// Whether no layout is registered.
    pub fn is_empty(&self) -> bool {
        self.stores.is_empty()
    }

    /// The layout a call is for, by its store id metadata.
    fn store(&self, headers: &http::HeaderMap) -> Result<Store, Status> {
        let raw = headers
            .get(ATTACHABLE_STORE_ID)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                Status::invalid_argument(format!("request lacks {ATTACHABLE_STORE_ID} metadata"))
            })?;
        let id = raw.strip_prefix(OCI_STORE_PREFIX).unwrap_or(raw);
        match self.stores.get(id) {
            Some(dir) => Ok(Store {
                id: id.to_owned(),
                dir: dir.clone(),
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
    async fn info_and_read_serve_the_blob() {
        use tokio_stream::StreamExt;
        let (_tmp, dir) = layout();
        let store = Store {
            id: "st".into(),
            dir: dir.clone(),
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
