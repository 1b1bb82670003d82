//! The Docker Engine's HTTP upgrade to BuildKit's gRPC (`POST /grpc`) and to
//! a session (`POST /session`).

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

use super::{BoxIo, DialError};

/// The Control API endpoint on the Docker Engine.
pub const GRPC_PATH: &str = "/grpc";
/// The session endpoint on the Docker Engine.
pub const SESSION_PATH: &str = "/session";
/// The Docker Engine's liveness endpoint.
pub const PING_PATH: &str = "/_ping";

/// Sends `POST path` with `Connection: Upgrade` / `Upgrade: h2c` over `io`
/// and returns the upgraded byte stream.
///
/// # Errors
/// [`DialError::NotDocker`] if the peer does not speak HTTP/1.1,
/// [`DialError::UpgradeRefused`] if it answers anything but 101.
pub async fn upgrade(
    io: BoxIo,
    path: &'static str,
    headers: &[(String, String)],
) -> Result<TokioIo<hyper::upgrade::Upgraded>, DialError> {
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(not_docker)?;
    tokio::spawn(async move {
        // Ends when the upgrade completes or the peer goes away.
        let _ = conn.with_upgrades().await;
    });
    let mut req = http::Request::builder()
        .method(http::Method::POST)
        .uri(path)
        .header(http::header::HOST, "docker")
        .header(http::header::CONNECTION, "Upgrade")
        .header(http::header::UPGRADE, "h2c");
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let req = req.body(Empty::<Bytes>::new()).map_err(|e| DialError::Io {
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
    })?;
    let resp = sender.send_request(req).await.map_err(not_docker)?;
    let status = resp.status();
    if status != http::StatusCode::SWITCHING_PROTOCOLS {
        let body = match tokio::time::timeout(
            std::time::Duration::from_secs(2),
            resp.into_body().collect(),
        )
        .await
        {
            Ok(Ok(b)) => {
                let text = String::from_utf8_lossy(&b.to_bytes()).trim().to_string();
                if text.is_empty() {
                    String::new()
                } else {
                    format!(": {}", text.chars().take(200).collect::<String>())
                }
            }
            _ => String::new(),
        };
        return Err(DialError::UpgradeRefused { path, status, body });
    }
    let upgraded = hyper::upgrade::on(resp).await.map_err(not_docker)?;
    Ok(TokioIo::new(upgraded))
}

/// `GET /_ping`: whether a Docker Engine answers on `io`.
pub async fn ping(io: BoxIo) -> bool {
    let Ok((mut sender, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await
    else {
        return false;
    };
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let Ok(req) = http::Request::builder()
        .method(http::Method::GET)
        .uri(PING_PATH)
        .header(http::header::HOST, "docker")
        .body(Empty::<Bytes>::new())
    else {
        return false;
    };
    matches!(sender.send_request(req).await, Ok(r) if r.status().is_success())
}

fn not_docker(e: hyper::Error) -> DialError {
    use std::error::Error as _;
    let mut reason = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        reason = format!("{reason}: {inner}");
        cur = inner.source();
    }
    DialError::NotDocker { reason }
}
