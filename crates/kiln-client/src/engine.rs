//! The few Docker Engine API calls kiln needs next to BuildKit: which image
//! store the Engine uses (it decides which exporters its BuildKit has), and
//! saving or removing an image after a `moby` export on the classic store.
//!
//! Plain HTTP/1.1 over the Engine's socket, one connection per call; no
//! Docker CLI.

use std::fmt;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::address::DockerHost;
use crate::error::DialError;
use crate::transport::dial_docker_host;

/// How long a small Engine API call (info, delete) may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Where a Docker Engine keeps its images.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageStore {
    /// The containerd image store (`"features": {"containerd-snapshotter": true}`):
    /// multi-platform images, and BuildKit's `image`, `oci` and `docker` exporters.
    Containerd,
    /// The classic graph-driver store (overlay2), still the default of most
    /// installs: one platform per image, and BuildKit's `moby` exporter only
    /// (besides `tar` and `local`).
    Classic,
}

impl ImageStore {
    /// How `docker info` names it.
    #[must_use]
    pub fn describe(self) -> &'static str {
        match self {
            ImageStore::Containerd => "containerd image store",
            ImageStore::Classic => "classic image store",
        }
    }
}

/// What `GET /info` says about the Engine.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct EngineInfo {
    /// e.g. `28.5.2+dfsg3`.
    pub server_version: String,
    /// The storage driver (`overlay2`, `overlayfs`, …).
    pub driver: String,
    pub image_store: ImageStore,
}

/// A failed Engine API call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The socket could not be reached.
    #[error("cannot reach the Docker Engine at {host}: {source}")]
    Dial {
        host: String,
        #[source]
        source: DialError,
    },
    /// HTTP failed underneath.
    #[error("{method} {path} on the Docker Engine at {host} failed: {source}")]
    Http {
        host: String,
        method: &'static str,
        path: String,
        #[source]
        source: hyper::Error,
    },
    /// The Engine answered with an error status.
    #[error("the Docker Engine at {host} answered {status} to {method} {path}: {message}")]
    Status {
        host: String,
        method: &'static str,
        path: String,
        status: http::StatusCode,
        message: String,
    },
    /// An answer that is not what the API documents.
    #[error("the Docker Engine at {host} sent a malformed answer to {path}: {reason}")]
    Malformed {
        host: String,
        path: String,
        reason: String,
    },
    /// The call did not finish in time.
    #[error("{method} {path} on the Docker Engine at {host} did not finish within {seconds} s")]
    Timeout {
        host: String,
        method: &'static str,
        path: String,
        seconds: u64,
    },
    /// The Engine could not push an image.
    #[error("the Docker Engine at {host} could not push {name}: {message}")]
    Pushing {
        host: String,
        name: String,
        message: String,
    },
    /// Writing what the Engine sent failed.
    #[error("writing the image from the Docker Engine at {host} failed: {source}")]
    Write {
        host: String,
        #[source]
        source: std::io::Error,
    },
}

/// A Docker Engine's HTTP API.
#[derive(Clone, Debug)]
pub struct Engine {
    host: DockerHost,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawInfo {
    #[serde(default)]
    server_version: String,
    #[serde(default)]
    driver: String,
    #[serde(default)]
    driver_status: Option<Vec<Vec<String>>>,
}

/// The `driver-type` the containerd image store reports in `DriverStatus`.
const CONTAINERD_SNAPSHOTTER: &str = "io.containerd.snapshotter.v1";

impl Engine {
    /// The Engine at `host`.
    #[must_use]
    pub fn new(host: DockerHost) -> Engine {
        Engine { host }
    }

    /// The Engine's address.
    #[must_use]
    pub fn host(&self) -> &DockerHost {
        &self.host
    }

    /// `GET /info`: version, storage driver and image store.
    ///
    /// # Errors
    /// [`EngineError`] when the Engine cannot be reached or answers badly.
    pub async fn info(&self) -> Result<EngineInfo, EngineError> {
        let path = "/info".to_string();
        let body = tokio::time::timeout(CALL_TIMEOUT, self.call(http::Method::GET, "GET", &path))
            .await
            .map_err(|_| self.timeout("GET", &path))??;
        let bytes = body
            .collect()
            .await
            .map_err(|source| self.http("GET", &path, source))?
            .to_bytes();
        let raw: RawInfo = serde_json::from_slice(&bytes).map_err(|e| EngineError::Malformed {
            host: self.host.to_string(),
            path: path.clone(),
            reason: e.to_string(),
        })?;
        Ok(parse_info(raw))
    }

    /// `GET /images/get?names=NAME`: the image as a docker-archive (what
    /// `docker save` writes), streamed into `out`. Returns the bytes written.
    ///
    /// # Errors
    /// [`EngineError`]; [`EngineError::Write`] when `out` fails.
    pub async fn save_image<W: AsyncWrite + Unpin>(
        &self,
        name: &str,
        out: &mut W,
    ) -> Result<u64, EngineError> {
        let path = format!("/images/get?names={}", query_escape(name));
        let mut body = self.call(http::Method::GET, "GET", &path).await?;
        let mut written = 0u64;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|source| self.http("GET", &path, source))?;
            if let Some(data) = frame.data_ref() {
                out.write_all(data)
                    .await
                    .map_err(|source| EngineError::Write {
                        host: self.host.to_string(),
                        source,
                    })?;
                written += data.len() as u64;
            }
        }
        out.flush().await.map_err(|source| EngineError::Write {
            host: self.host.to_string(),
            source,
        })?;
        Ok(written)
    }

    /// `POST /images/NAME/push?tag=TAG`: the Engine pushes an image from its
    /// store, with `auth` as its `X-Registry-Auth`. Returns the pushed
    /// manifest's digest when the Engine reports it.
    ///
    /// The Engine answers 200 at once and reports failure inside its JSON
    /// progress stream, so the stream is read to the end.
    ///
    /// # Errors
    /// [`EngineError::Pushing`] with the Engine's message when the push failed.
    pub async fn push_image(
        &self,
        repository: &str,
        tag: &str,
        auth: &RegistryAuth,
    ) -> Result<Option<String>, EngineError> {
        let path = format!(
            "/images/{}/push?tag={}",
            path_escape(repository),
            query_escape(tag)
        );
        let mut body = self
            .call_with(
                http::Method::POST,
                "POST",
                &path,
                &[("X-Registry-Auth", auth.header())],
            )
            .await?;
        let mut buf = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|source| self.http("POST", &path, source))?;
            if let Some(data) = frame.data_ref() {
                buf.extend_from_slice(data);
            }
        }
        let name = format!("{repository}:{tag}");
        parse_push_stream(&buf).map_err(|message| EngineError::Pushing {
            host: self.host.to_string(),
            name,
            message,
        })
    }

    /// `GET /images/NAME/json`: the image's id, `None` when there is no
    /// such image.
    ///
    /// # Errors
    /// [`EngineError`] for anything but success or 404.
    pub async fn image_id(&self, name: &str) -> Result<Option<String>, EngineError> {
        let path = format!("/images/{}/json", path_escape(name));
        let body =
            match tokio::time::timeout(CALL_TIMEOUT, self.call(http::Method::GET, "GET", &path))
                .await
                .map_err(|_| self.timeout("GET", &path))?
            {
                Ok(b) => b,
                Err(EngineError::Status { status, .. })
                    if status == http::StatusCode::NOT_FOUND =>
                {
                    return Ok(None)
                }
                Err(e) => return Err(e),
            };
        let bytes = body
            .collect()
            .await
            .map_err(|source| self.http("GET", &path, source))?
            .to_bytes();
        let v: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| EngineError::Malformed {
                host: self.host.to_string(),
                path: path.clone(),
                reason: e.to_string(),
            })?;
        Ok(v.get("Id").and_then(|i| i.as_str()).map(str::to_string))
    }

    /// `DELETE /images/NAME`: untags (and removes, if nothing else uses it)
    /// an image. A name that does not exist is not an error.
    ///
    /// # Errors
    /// [`EngineError`] for anything but success or 404.
    pub async fn remove_image(&self, name: &str) -> Result<(), EngineError> {
        let path = format!("/images/{}?noprune=false", path_escape(name));
        let r = tokio::time::timeout(
            CALL_TIMEOUT,
            self.call(http::Method::DELETE, "DELETE", &path),
        )
        .await
        .map_err(|_| self.timeout("DELETE", &path))?;
        match r {
            Ok(_) => Ok(()),
            Err(EngineError::Status { status, .. }) if status == http::StatusCode::NOT_FOUND => {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Sends one request; returns the body of a 2xx answer.
    async fn call(
        &self,
        method: http::Method,
        name: &'static str,
        path: &str,
    ) -> Result<hyper::body::Incoming, EngineError> {
        self.call_with(method, name, path, &[]).await
    }

    /// [`Engine::call`] with extra headers.
    async fn call_with(
        &self,
        method: http::Method,
        name: &'static str,
        path: &str,
        headers: &[(&str, String)],
    ) -> Result<hyper::body::Incoming, EngineError> {
        let io = dial_docker_host(&self.host)
            .await
            .map_err(|source| EngineError::Dial {
                host: self.host.to_string(),
                source,
            })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|source| self.http(name, path, source))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut req = http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, "docker");
        for (k, v) in headers {
            req = req.header(*k, v.as_str());
        }
        let req = req
            .body(Empty::<Bytes>::new())
            .map_err(|e| EngineError::Malformed {
                host: self.host.to_string(),
                path: path.to_string(),
                reason: e.to_string(),
            })?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|source| self.http(name, path, source))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp.into_body());
        }
        let text =
            match tokio::time::timeout(Duration::from_secs(5), resp.into_body().collect()).await {
                Ok(Ok(b)) => error_message(&b.to_bytes()),
                _ => String::new(),
            };
        Err(EngineError::Status {
            host: self.host.to_string(),
            method: name,
            path: path.to_string(),
            status,
            message: text,
        })
    }

    fn http(&self, method: &'static str, path: &str, source: hyper::Error) -> EngineError {
        EngineError::Http {
            host: self.host.to_string(),
            method,
            path: path.to_string(),
            source,
        }
    }

    fn timeout(&self, method: &'static str, path: &str) -> EngineError {
        EngineError::Timeout {
            host: self.host.to_string(),
            method,
            path: path.to_string(),
            seconds: CALL_TIMEOUT.as_secs(),
        }
    }
}

/// Credentials for one registry, as the Engine's `X-Registry-Auth` header
/// carries them. Never printed: `Debug` shows the user name only.
#[derive(Clone, Default)]
pub struct RegistryAuth {
    username: String,
    password: Option<secrecy::SecretString>,
    identity_token: Option<secrecy::SecretString>,
    server: String,
}

impl fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("username", &self.username)
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl RegistryAuth {
    /// No credentials (anonymous).
    #[must_use]
    pub fn anonymous() -> RegistryAuth {
        RegistryAuth::default()
    }

    /// A user name and password (or token) for `server`.
    #[must_use]
    pub fn basic(server: &str, username: &str, password: &str) -> RegistryAuth {
        RegistryAuth {
            username: username.into(),
            password: Some(password.into()),
            server: server.into(),
            ..RegistryAuth::default()
        }
    }

    /// An identity (refresh) token for `server`.
    #[must_use]
    pub fn identity_token(server: &str, token: &str) -> RegistryAuth {
        RegistryAuth {
            identity_token: Some(token.into()),
            server: server.into(),
            ..RegistryAuth::default()
        }
    }

    /// The header value: base64url of the JSON the Engine's API documents.
    fn header(&self) -> String {
        let mut m = serde_json::Map::new();
        let mut put = |k: &str, v: &str| {
            if !v.is_empty() {
                m.insert(k.into(), serde_json::Value::String(v.into()));
            }
        };
        use secrecy::ExposeSecret;
        put("username", &self.username);
        put(
            "password",
            self.password.as_ref().map_or("", |p| p.expose_secret()),
        );
        put(
            "identitytoken",
            self.identity_token
                .as_ref()
                .map_or("", |t| t.expose_secret()),
        );
        put("serveraddress", &self.server);
        base64url(serde_json::Value::Object(m).to_string().as_bytes())
    }
}

/// URL-safe base64 with padding (what the Engine decodes).
fn base64url(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Reads the Engine's push progress stream (one JSON object per line):
/// the first `error` is the failure; `aux.Digest` the pushed digest.
fn parse_push_stream(body: &[u8]) -> Result<Option<String>, String> {
    let mut digest = None;
    let text = String::from_utf8_lossy(body);
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
            let detail = v
                .pointer("/errorDetail/message")
                .and_then(|m| m.as_str())
                .unwrap_or(e);
            return Err(detail.to_string());
        }
        if let Some(d) = v.pointer("/aux/Digest").and_then(|d| d.as_str()) {
            digest = Some(d.to_string());
        }
    }
    Ok(digest)
}

fn parse_info(raw: RawInfo) -> EngineInfo {
    let containerd = raw
        .driver_status
        .unwrap_or_default()
        .iter()
        .any(|kv| kv.len() == 2 && kv[0] == "driver-type" && kv[1] == CONTAINERD_SNAPSHOTTER);
    EngineInfo {
        server_version: raw.server_version,
        driver: raw.driver,
        image_store: if containerd {
            ImageStore::Containerd
        } else {
            ImageStore::Classic
        },
    }
}

/// The `message` of an Engine error body (`{"message": "…"}`), else the text.
fn error_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Msg {
        message: String,
    }
    match serde_json::from_slice::<Msg>(body) {
        Ok(m) => m.message,
        Err(_) => String::from_utf8_lossy(body)
            .trim()
            .chars()
            .take(300)
            .collect(),
    }
}

/// Percent-escapes everything but unreserved characters (for a query value).
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Like [`query_escape`] but keeps `/` and `:` (an image name in a path).
fn path_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/:@".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(json: &str) -> RawInfo {
        serde_json::from_str(json).expect("json")
    }

    #[test]
    fn containerd_store_is_told_by_the_driver_type() {
        let i = parse_info(raw(
            r#"{"ServerVersion":"28.5.2","Driver":"overlayfs","DriverStatus":[["driver-type","io.containerd.snapshotter.v1"]]}"#,
        ));
        assert_eq!(i.image_store, ImageStore::Containerd);
        assert_eq!(i.server_version, "28.5.2");
        let i = parse_info(raw(
            r#"{"ServerVersion":"28.5.2","Driver":"overlay2","DriverStatus":[["Backing Filesystem","extfs"],["Supports d_type","true"]]}"#,
        ));
        assert_eq!(i.image_store, ImageStore::Classic);
        assert_eq!(i.driver, "overlay2");
        // Older Engines may send null.
        let i = parse_info(raw(r#"{"Driver":"vfs","DriverStatus":null}"#));
        assert_eq!(i.image_store, ImageStore::Classic);
    }

    #[test]
    fn names_are_escaped() {
        assert_eq!(
            query_escape("127.0.0.1:5000/a/b:t"),
            "127.0.0.1%3A5000%2Fa%2Fb%3At"
        );
        assert_eq!(path_escape("127.0.0.1:5000/a/b:t"), "127.0.0.1:5000/a/b:t");
        assert_eq!(path_escape("a b"), "a%20b");
    }

    #[test]
    fn push_streams_report_errors_and_digests() {
        let ok = br#"{"status":"The push refers to repository [127.0.0.1:5000/a]"}
{"status":"Pushed","progressDetail":{},"id":"29ca32dc3a57"}
{"status":"1: digest: sha256:ab size: 735"}
{"progressDetail":{},"aux":{"Tag":"1","Digest":"sha256:ab","Size":735}}
"#;
        assert_eq!(parse_push_stream(ok), Ok(Some("sha256:ab".into())));
        let bad = br#"{"status":"The push refers to repository [127.0.0.1:5999/a]"}
{"errorDetail":{"message":"dial tcp 127.0.0.1:5999: connection refused"},"error":"connection refused"}
"#;
        assert_eq!(
            parse_push_stream(bad),
            Err("dial tcp 127.0.0.1:5999: connection refused".into())
        );
    }

    #[test]
    fn registry_auth_header_is_base64url_json_and_debug_hides_the_password() {
        assert_eq!(RegistryAuth::anonymous().header(), "e30=");
        let a = RegistryAuth::basic("r:5000", "u", "p?>");
        let h = a.header();
        assert!(!h.contains('+') && !h.contains('/'), "{h}");
        assert_eq!(
            h,
            base64url(br#"{"password":"p?>","serveraddress":"r:5000","username":"u"}"#)
        );
        assert!(!format!("{a:?}").contains("p?>"));
        assert_eq!(base64url(b"ab"), "YWI=");
        assert_eq!(base64url(b">>>?"), "Pj4-Pw==");
    }

    #[test]
    fn error_bodies_give_their_message() {
        assert_eq!(
            error_message(br#"{"message":"No such image: x:latest"}"#),
            "No such image: x:latest"
        );
        assert_eq!(error_message(b"plain text\n"), "plain text");
    }
}
