//! Serving a session in-process and calling it with tonic's generated
//! clients over an HTTP/2 connection on the other end of a pipe.

use std::sync::{Arc, Mutex};

use hyper_util::rt::TokioIo;
use kiln_session::Session;
use tokio::io::{AsyncRead, AsyncWrite};
use tonic::transport::{Channel, Endpoint, Uri};

/// A tonic channel whose only connection is `io`.
pub async fn channel_over<IO>(io: IO) -> Channel
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let slot = Arc::new(Mutex::new(Some(io)));
    Endpoint::from_static("http://session.invalid")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let io = slot.lock().expect("slot lock").take();
            async move {
                io.map(TokioIo::new)
                    .ok_or_else(|| std::io::Error::other("the pipe was used already"))
            }
        }))
        .await
        .expect("connect over the pipe")
}

/// Serves `session` on one end of an in-memory pipe and returns a channel
/// on the other end (the daemon's side).
pub async fn connect(session: &Session) -> Channel {
    let (daemon_io, session_io) = tokio::io::duplex(256 * 1024);
    let session = session.clone();
    tokio::spawn(async move {
        if let Err(e) = session.serve(session_io).await {
            eprintln!("session ended: {e}");
        }
    });
    channel_over(daemon_io).await
}

/// Adds metadata to a request.
pub fn with_metadata<T>(
    mut req: tonic::Request<T>,
    md: &[(&'static str, &str)],
) -> tonic::Request<T> {
    for (k, v) in md {
        req.metadata_mut()
            .append(*k, v.parse().expect("ascii metadata value"));
    }
    req
}
