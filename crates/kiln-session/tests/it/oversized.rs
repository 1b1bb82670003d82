//! A gRPC message larger than the session accepts: refused from its 5-byte
//! header, before its body is read, so a hostile daemon cannot make kiln
//! buffer a message of any size.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http_body::{Body, Frame};
use kiln_proto::headers::ATTACHABLE_EXPORTER_ID;
use kiln_proto::methods::FILESEND_DIFFCOPY;
use kiln_proto::MAX_MESSAGE_SIZE;
use kiln_session::{ExportTarget, Session};
use tokio::sync::mpsc;
use tower::{Service, ServiceExt};

use crate::support::connect;

/// A request body fed from a channel: it stays open while the sender lives.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

/// Calls FileSend.DiffCopy for exporter `id` with one frame declaring
/// `declared` bytes followed by only 16 of them, the body left open; returns
/// the call's gRPC status.
async fn declare(session: &Session, id: &str, declared: usize) -> tonic::Status {
    let mut channel = connect(session).await;
    let (tx, rx) = mpsc::channel(4);
    let mut frame = BytesMut::new();
    frame.put_u8(0);
    frame.put_u32(u32::try_from(declared).expect("fits the gRPC header"));
    frame.put_slice(&[0u8; 16]);
    tx.send(frame.freeze()).await.expect("send");
    let req = http::Request::builder()
        .method("POST")
        .uri(format!("http://session.invalid{FILESEND_DIFFCOPY}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header(ATTACHABLE_EXPORTER_ID, id)
        .body(tonic::body::Body::new(ChannelBody(rx)))
        .expect("request");
    let resp = tokio::time::timeout(Duration::from_secs(10), async {
        channel.ready().await.expect("ready").call(req).await
    })
    .await
    .expect("answered while the body is still open")
    .expect("response");
    if let Some(status) = tonic::Status::from_header_map(resp.headers()) {
        return status;
    }
    let mut body = resp.into_body();
    let trailers = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
                Some(Ok(f)) if f.is_trailers() => break f.into_trailers().ok(),
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("response body: {e}"),
                None => break None,
            }
        }
    })
    .await
    .expect("the status arrives while the body is still open")
    .expect("trailers");
    drop(tx);
    tonic::Status::from_header_map(&trailers).expect("grpc-status in trailers")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_the_limit_is_refused_from_its_header() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("out");
    let tar = tmp.path().join("out.tar");
    let session = Session::builder()
        .export(0, ExportTarget::directory(&out))
        .export(1, ExportTarget::file(&tar))
        .build()
        .expect("session");
    for id in ["0", "1"] {
        let status = declare(&session, id, MAX_MESSAGE_SIZE + 1).await;
        assert_eq!(
            status.code(),
            tonic::Code::OutOfRange,
            "exporter {id}: {status:?}"
        );
        assert!(
            status.message().contains("too large"),
            "exporter {id}: {status:?}"
        );
    }
    // Nothing written: the directory target got no entry, the file target
    // left neither the file nor a temporary file.
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("readdir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(
        left.iter().all(|n| n == "out"),
        "unexpected files: {left:?}"
    );
    if out.exists() {
        assert_eq!(std::fs::read_dir(&out).expect("readdir").count(), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_within_the_limit_is_read() {
    // Control for the test above: the same raw call with a frame within
    // the limit (an empty BytesMessage) is decoded and the export succeeds.
    let tmp = tempfile::tempdir().expect("tempdir");
    let session = Session::builder()
        .export(0, ExportTarget::file(tmp.path().join("out.tar")))
        .build()
        .expect("session");
    let mut channel = connect(&session).await;
    let (tx, rx) = mpsc::channel(4);
    let mut frame = BytesMut::new();
    frame.put_u8(0);
    frame.put_u32(0);
    tx.send(frame.freeze()).await.expect("send");
    drop(tx);
    let req = http::Request::builder()
        .method("POST")
        .uri(format!("http://session.invalid{FILESEND_DIFFCOPY}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(tonic::body::Body::new(ChannelBody(rx)))
        .expect("request");
    let resp = channel
        .ready()
        .await
        .expect("ready")
        .call(req)
        .await
        .expect("response");
    assert!(tonic::Status::from_header_map(resp.headers()).is_none());
    let mut body = resp.into_body();
    let trailers = loop {
        match std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
            Some(Ok(f)) if f.is_trailers() => break f.into_trailers().expect("trailers"),
            Some(Ok(_)) => continue,
            other => panic!("{other:?}"),
        }
    };
    let status = tonic::Status::from_header_map(&trailers).expect("status");
    assert_eq!(status.code(), tonic::Code::Ok, "{status:?}");
}
