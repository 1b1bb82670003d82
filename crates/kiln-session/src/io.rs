//! A byte stream carried in `moby.buildkit.v1.BytesMessage` frames, for
//! `Control.Session` (standalone buildkitd): the session's nested HTTP/2
//! connection travels inside that bidirectional gRPC stream.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes};
use futures::Stream;
use kiln_proto::control::BytesMessage;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use tokio_util::sync::PollSender;

/// The largest frame written at once; far below the daemon's 4 MiB gRPC
/// receive limit.
const MAX_FRAME: usize = 1024 * 1024;

/// Adapts the two halves of a `Control.Session` call into one connection:
/// writes become `BytesMessage`s on `outbound` (the request stream), reads
/// come from `inbound` (the response stream).
///
/// Shutting the writer down closes `outbound`, which ends the request
/// stream (a half-close). The end of `inbound` reads as end of file; an
/// error status reads as an I/O error.
///
/// ```no_run
/// # async fn f(session: kiln_session::Session, mut control: kiln_proto::control::control_client::ControlClient<tonic::transport::Channel>) -> Result<(), Box<dyn std::error::Error>> {
/// use tokio_stream::wrappers::ReceiverStream;
/// let (tx, rx) = tokio::sync::mpsc::channel(32);
/// let mut request = tonic::Request::new(ReceiverStream::new(rx));
/// for (name, value) in session.headers() {
///     request.metadata_mut().append(
///         tonic::metadata::MetadataKey::from_bytes(name.to_ascii_lowercase().as_bytes())?,
///         value.parse()?,
///     );
/// }
/// let inbound = control.session(request).await?.into_inner();
/// session.serve(kiln_session::bytes_stream_io(tx, inbound)).await?;
/// # Ok(()) }
/// ```
pub fn bytes_stream_io<S>(outbound: mpsc::Sender<BytesMessage>, inbound: S) -> BytesStreamIo
where
    S: Stream<Item = Result<BytesMessage, tonic::Status>> + Send + 'static,
{
    // Drain the gRPC stream at once, whatever the session is doing: frames
    // left unread pile up in the outer HTTP/2 connection, whose small-DATA
    // budget then runs out and h2 closes the whole connection (the Solve
    // call included) with ENHANCE_YOUR_CALM "too_many_data_frames". What
    // waits here is bounded by the nested connection's own flow control.
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        use futures::StreamExt as _;
        let mut inbound = Box::pin(inbound);
        while let Some(item) = inbound.next().await {
            if tx.send(item).is_err() {
                break;
            }
        }
    });
    BytesStreamIo {
        outbound: PollSender::new(outbound),
        inbound: Box::pin(tokio_stream::wrappers::UnboundedReceiverStream::new(rx)),
        pending: Bytes::new(),
        eof: false,
    }
}

/// The connection returned by [`bytes_stream_io`].
pub struct BytesStreamIo {
    outbound: PollSender<BytesMessage>,
    inbound: Pin<Box<dyn Stream<Item = Result<BytesMessage, tonic::Status>> + Send>>,
    pending: Bytes,
    eof: bool,
}

impl std::fmt::Debug for BytesStreamIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BytesStreamIo")
            .field("pending", &self.pending.len())
            .field("eof", &self.eof)
            .finish_non_exhaustive()
    }
}

impl AsyncRead for BytesStreamIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        while self.pending.is_empty() {
            if self.eof {
                return Poll::Ready(Ok(()));
            }
            match ready!(self.inbound.as_mut().poll_next(cx)) {
                Some(Ok(msg)) => self.pending = Bytes::from(msg.data),
                Some(Err(status)) => {
                    self.eof = true;
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::ConnectionReset,
                        status,
                    )));
                }
                None => self.eof = true,
            }
        }
        let n = self.pending.len().min(buf.remaining());
        buf.put_slice(&self.pending[..n]);
        self.pending.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for BytesStreamIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        ready!(self.outbound.poll_reserve(cx)).map_err(|_| closed())?;
        let n = buf.len().min(MAX_FRAME);
        self.outbound
            .send_item(BytesMessage {
                data: buf[..n].to_vec(),
            })
            .map_err(|_| closed())?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.outbound.close();
        Poll::Ready(Ok(()))
    }
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "session stream closed")
}
