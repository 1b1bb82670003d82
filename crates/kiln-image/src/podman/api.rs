//! HTTP/1.1 to podman's libpod REST API over its unix socket: one
//! connection a request, JSON answers, podman's error bodies turned into
//! [`PodmanError::Refused`].

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body::{Body, Frame};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::error::PodmanError;

/// The API version kiln asks for: podman 4.0 and later serve it.
const API: &str = "/v4.0.0/libpod";
/// How long connecting may take (a socket-activated service starts first).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// The header podman's answers carry.
const LIBPOD_API_VERSION: &str = "libpod-api-version";
/// How often an image listing is asked for before its error is reported.
const LIST_ATTEMPTS: u64 = 8;
/// How much of an error body goes into a message.
const MAX_MESSAGE: usize = 1000;

/// A request body: bytes in memory, or a stream of chunks.
pub(crate) type RequestBody = BoxBody<Bytes, io::Error>;

/// An empty body.
pub(crate) fn empty() -> RequestBody {
    Full::new(Bytes::new())
        .map_err(|never| match never {})
        .boxed()
}

/// A JSON body.
pub(crate) fn json(value: &serde_json::Value) -> RequestBody {
    Full::new(Bytes::from(value.to_string()))
        .map_err(|never| match never {})
        .boxed()
}

/// A body fed through a channel, so a blocking thread can write a tarball
/// into the request while it is sent. An `Err` chunk aborts the request
/// (the connection is cut before the body ends, so podman never sees a
/// complete archive); the sender dropped ends the body.
pub(crate) struct ChannelBody(pub(crate) mpsc::Receiver<io::Result<Bytes>>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|r| r.map(Frame::data)))
    }
}

/// An image as podman lists it (`GET /libpod/images/json`).
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct ListedImage {
    #[serde(rename = "Id", default)]
    pub(crate) id: String,
    #[serde(rename = "Names", default)]
    pub(crate) names: Option<Vec<String>>,
    #[serde(rename = "Digest", default)]
    pub(crate) digest: String,
    #[serde(rename = "RepoDigests", default)]
    pub(crate) repo_digests: Option<Vec<String>>,
}

impl ListedImage {
    pub(crate) fn names(&self) -> &[String] {
        self.names.as_deref().unwrap_or_default()
    }
}

/// Podman's error body.
#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: String,
    #[serde(default)]
    cause: String,
}

/// Podman's API on one socket.
#[derive(Clone, Debug)]
pub(crate) struct Api {
    socket: PathBuf,
}

impl Api {
    pub(crate) fn new(socket: &Path) -> Api {
        Api {
            socket: socket.to_path_buf(),
        }
    }

    /// Sends `method API path` with `body`; returns the answer's body for a
    /// 2xx status, else [`PodmanError::Refused`] with podman's message.
    /// `action` says what was asked, for errors ("load the linux/amd64
    /// image").
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: RequestBody,
        action: &str,
    ) -> Result<Bytes, PodmanError> {
        let (status, _, bytes) = self.send(method, path, content_type, body, action).await?;
        if status.is_success() {
            return Ok(bytes);
        }
        Err(refused(action, status, &bytes))
    }

    /// Sends the request; returns the answer's status, headers and body.
    async fn send(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: RequestBody,
        action: &str,
    ) -> Result<(StatusCode, http::HeaderMap, Bytes), PodmanError> {
        let http_err = |source: Box<dyn std::error::Error + Send + Sync>| PodmanError::Http {
            socket: self.socket.clone(),
            action: action.to_string(),
            source,
        };
        let stream = match tokio::time::timeout(
            CONNECT_TIMEOUT,
            tokio::net::UnixStream::connect(&self.socket),
        )
        .await
        {
            Ok(Ok(s)) => s,
            Ok(Err(source)) => {
                return Err(PodmanError::Connect {
                    socket: self.socket.clone(),
                    source,
                })
            }
            Err(_) => {
                return Err(PodmanError::Connect {
                    socket: self.socket.clone(),
                    source: io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no connection within {} s", CONNECT_TIMEOUT.as_secs()),
                    ),
                })
            }
        };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| http_err(Box::new(e)))?;
        tokio::spawn(async move {
            // Ends with the answer, or when podman hangs up.
            let _ = conn.await;
        });
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("{API}{path}"))
            .header(http::header::HOST, "d");
        if let Some(ct) = content_type {
            req = req.header(http::header::CONTENT_TYPE, ct);
        }
        let req = req.body(body).map_err(|e| http_err(Box::new(e)))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| http_err(Box::new(e)))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| http_err(Box::new(e)))?
            .to_bytes();
        Ok((status, headers, bytes))
    }

    /// `GET path`, the answer parsed as JSON.
    pub(crate) async fn get_json<T: for<'de> Deserialize<'de>>(
        &self,
        path: &str,
        action: &str,
    ) -> Result<T, PodmanError> {
        let bytes = self.call(Method::GET, path, None, empty(), action).await?;
        parse(&bytes, action)
    }

    /// Whether podman answers (`GET /_ping`, answered with a
    /// `Libpod-Api-Version` header: Docker's socket answers 404, without).
    pub(crate) async fn ping(&self) -> Result<(), PodmanError> {
        let action = "answer a ping";
        let (status, headers, bytes) = self
            .send(Method::GET, "/_ping", None, empty(), action)
            .await?;
        if !headers.contains_key(LIBPOD_API_VERSION) {
            let answer = if status.is_success() {
                format!("HTTP {}", status.as_u16())
            } else {
                refused(action, status, &bytes).to_string()
            };
            return Err(PodmanError::NotPodman {
                socket: self.socket.clone(),
                answer,
            });
        }
        if !status.is_success() {
            return Err(refused(action, status, &bytes));
        }
        Ok(())
    }

    /// Every image in podman's store, manifest lists included.
    ///
    /// Podman 4 fails a listing (HTTP 500, "image not known") when an image
    /// goes while it lists them, as when another load or a prune runs: the
    /// listing is asked for again a few times.
    pub(crate) async fn images(&self) -> Result<Vec<ListedImage>, PodmanError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self
                .get_json("/images/json?all=true", "list its images")
                .await
            {
                Err(PodmanError::Refused { status, .. })
                    if status >= 500 && attempt < LIST_ATTEMPTS =>
                {
                    tracing::debug!(attempt, "podman's image listing failed; asking again");
                    tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
                }
                other => return other,
            }
        }
    }

    /// The ID of image `name` (not a manifest list's: podman 4 resolves a
    /// list's name to one of its images here).
    pub(crate) async fn image_id(&self, name: &str) -> Result<String, PodmanError> {
        #[derive(Deserialize)]
        struct Inspected {
            #[serde(rename = "Id")]
            id: String,
        }
        let action = format!("show image {name}");
        let path = format!("/images/{}/json", seg(name));
        Ok(self.get_json::<Inspected>(&path, &action).await?.id)
    }

    /// Gives image `id` (an image or a manifest list) the name `repo:tag`,
    /// taking it from whichever image had it.
    pub(crate) async fn tag(&self, id: &str, repo: &str, tag: &str) -> Result<(), PodmanError> {
        let path = format!(
            "/images/{}/tag?repo={}&tag={}",
            seg(id),
            seg(repo),
            seg(tag)
        );
        let action = format!("name image {} {repo}:{tag}", short(id));
        self.call(Method::POST, &path, None, empty(), &action)
            .await
            .map(drop)
    }

    /// Takes the name `repo:tag` off image `id` (not a manifest list: on
    /// podman 4 the untag endpoint resolves a list to one of its images).
    pub(crate) async fn untag(&self, id: &str, repo: &str, tag: &str) -> Result<(), PodmanError> {
        let path = format!(
            "/images/{}/untag?repo={}&tag={}",
            seg(id),
            seg(repo),
            seg(tag)
        );
        let action = format!("take the name {repo}:{tag} off image {}", short(id));
        self.call(Method::POST, &path, None, empty(), &action)
            .await
            .map(drop)
    }

    /// Removes image `id`, or the name `id` (never forced: an image a
    /// container uses stays). By a name: the image goes with its last name,
    /// else only the name does.
    pub(crate) async fn remove_image(&self, id: &str) -> Result<(), PodmanError> {
        let action = format!("remove image {}", short(id));
        self.call(
            Method::DELETE,
            &format!("/images/{}", seg(id)),
            None,
            empty(),
            &action,
        )
        .await
        .map(drop)
    }

    /// Creates an empty manifest list named `name`; returns its ID.
    pub(crate) async fn create_list(&self, name: &str) -> Result<String, PodmanError> {
        #[derive(Deserialize)]
        struct Created {
            #[serde(rename = "Id")]
            id: String,
        }
        let action = format!("create the manifest list {name}");
        let bytes = self
            .call(
                Method::POST,
                &format!("/manifests/{}", seg(name)),
                None,
                empty(),
                &action,
            )
            .await?;
        Ok(parse::<Created>(&bytes, &action)?.id)
    }

    /// Adds the local images `ids` to the manifest list `name`.
    pub(crate) async fn add_to_list(&self, name: &str, ids: &[String]) -> Result<(), PodmanError> {
        let images: Vec<String> = ids
            .iter()
            .map(|id| format!("containers-storage:{id}"))
            .collect();
        let body = serde_json::json!({ "operation": "update", "images": images });
        let action = format!("add the loaded images to the manifest list {name}");
        self.call(
            Method::PUT,
            &format!("/manifests/{}", seg(name)),
            Some("application/json"),
            json(&body),
            &action,
        )
        .await
        .map(drop)
    }

    /// The manifest list `name`, as `podman manifest inspect` shows it.
    pub(crate) async fn inspect_list(&self, name: &str) -> Result<Bytes, PodmanError> {
        let action = format!("show the manifest list {name}");
        self.call(
            Method::GET,
            &format!("/manifests/{}/json", seg(name)),
            None,
            empty(),
            &action,
        )
        .await
    }

    /// Drops the name `name` of a manifest list: the list goes when it has
    /// no other name (`podman manifest rm`).
    pub(crate) async fn remove_list_name(&self, name: &str) -> Result<(), PodmanError> {
        let action = format!("remove the manifest list name {name}");
        self.call(
            Method::DELETE,
            &format!("/manifests/{}", seg(name)),
            None,
            empty(),
            &action,
        )
        .await
        .map(drop)
    }
}

/// `s` as one path segment or query value.
fn seg(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

/// An image ID as podman shows it: 12 characters.
pub(crate) fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

fn parse<T: for<'de> Deserialize<'de>>(bytes: &[u8], action: &str) -> Result<T, PodmanError> {
    serde_json::from_slice(bytes).map_err(|e| PodmanError::Unexpected {
        action: action.to_string(),
        detail: format!("{e}: {}", excerpt(bytes)),
    })
}

/// [`PodmanError::Refused`] with podman's message (its JSON error body's
/// `message`, else the body's text).
pub(crate) fn refused(action: &str, status: StatusCode, body: &[u8]) -> PodmanError {
    let message = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) if !e.message.is_empty() => e.message,
        Ok(e) if !e.cause.is_empty() => e.cause,
        _ => excerpt(body),
    };
    PodmanError::Refused {
        action: action.to_string(),
        status: status.as_u16(),
        message,
    }
}

fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "(no message)".to_string();
    }
    text.chars().take(MAX_MESSAGE).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn podmans_error_body_becomes_the_message() {
        let e = refused(
            "name image 0123456789ab docker.io/library/app:latest",
            StatusCode::INTERNAL_SERVER_ERROR,
            br#"{"cause":"tag not known","message":"app:latest: tag not known","response":500}"#,
        );
        assert_eq!(
            e.to_string(),
            "podman refused to name image 0123456789ab docker.io/library/app:latest (HTTP 500): app:latest: tag not known"
        );
        let e = refused(
            "list its images",
            StatusCode::NOT_FOUND,
            b"404 page not found\n",
        );
        assert!(
            e.to_string().ends_with("(HTTP 404): 404 page not found"),
            "{e}"
        );
        let e = refused("list its images", StatusCode::BAD_GATEWAY, b"");
        assert!(e.to_string().ends_with("(no message)"), "{e}");
    }

    #[test]
    fn names_are_escaped_as_one_segment() {
        assert_eq!(
            seg("docker.io/library/app:latest"),
            "docker%2Eio%2Flibrary%2Fapp%3Alatest"
        );
        assert_eq!(short("0123456789abcdef"), "0123456789ab");
        assert_eq!(short("abc"), "abc");
    }
}
