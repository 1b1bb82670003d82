//! Sending requests: authentication (Basic, Bearer tokens), status and
//! error-body handling, bounded body reads.

use std::time::Duration;

use reqwest::header::{HeaderMap, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde::Deserialize;

use super::auth::{parse_www_authenticate, Challenge, Credentials, ExposeSecret, Secret};
use super::{HostAuth, RegistryClient};
use crate::digest::Digest;
use crate::error::{ProtocolError, RegistryError, TransportError};

/// Largest error or token body kiln reads.
const MAX_SMALL_BODY: u64 = 1 << 20;

/// What a request is about: the registry (domain) whose credentials and
/// tokens apply, the reference to name in errors, and the token scope.
pub(crate) struct Target {
    pub registry: String,
    pub reference: String,
    pub scope: String,
}

impl Target {
    pub fn unreachable(&self, e: reqwest::Error) -> RegistryError {
        RegistryError::Unreachable {
            registry: self.registry.clone(),
            source: TransportError(e),
        }
    }

    pub fn protocol(&self, problem: ProtocolError) -> RegistryError {
        RegistryError::Protocol {
            registry: self.registry.clone(),
            reference: self.reference.clone(),
            problem,
        }
    }

    fn unauthorized(&self, status: StatusCode) -> RegistryError {
        RegistryError::Unauthorized {
            registry: self.registry.clone(),
            reference: self.reference.clone(),
            status: status.as_u16(),
        }
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    token: Option<String>,
    access_token: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    errors: Vec<ErrorEntry>,
}

#[derive(Deserialize)]
struct ErrorEntry {
    code: Option<String>,
    message: Option<String>,
}

impl RegistryClient {
    /// Sends the request `build` makes, authenticating and sending it once
    /// more when the registry challenges it. `build` runs once per attempt.
    ///
    /// 401 and 403 after authenticating are [`RegistryError::Unauthorized`];
    /// every other status is the caller's to judge.
    pub(crate) async fn send<F>(&self, target: &Target, build: F) -> Result<Response, RegistryError>
    where
        F: Fn(&reqwest::Client) -> RequestBuilder,
    {
        let credentials = self
            .inner
            .credentials
            .as_ref()
            .and_then(|store| store.credentials(&target.registry));
        let mut authenticated = false;
        let retry = self.inner.retry;
        let mut retried = 0u32;
        loop {
            let request = self.authorize(build(&self.inner.http), target, credentials.as_ref());
            let response = match request.send().await {
                Ok(r) => r,
                Err(e) if retried < retry.attempts && (e.is_connect() || e.is_timeout()) => {
                    let wait = backoff(retry, retried);
                    tracing::warn!(registry = %target.registry, error = %e, "registry unreachable; trying again in {wait:?}");
                    retried += 1;
                    tokio::time::sleep(wait).await;
                    continue;
                }
                Err(e) => return Err(target.unreachable(e)),
            };
            let status = response.status();
            tracing::debug!(
                registry = %target.registry,
                url = %response.url(),
                status = status.as_u16(),
                "registry request"
            );
            if retryable(status) && retried < retry.attempts {
                let wait = retry_after(response.headers())
                    .unwrap_or_else(|| backoff(retry, retried))
                    .min(super::MAX_RETRY_WAIT);
                tracing::warn!(
                    registry = %target.registry,
                    status = status.as_u16(),
                    "the registry cannot serve the request now; trying again in {wait:?}"
                );
                retried += 1;
                tokio::time::sleep(wait).await;
                continue;
            }
            if status == StatusCode::UNAUTHORIZED && !authenticated {
                let challenges: Vec<Challenge> = response
                    .headers()
                    .get_all(WWW_AUTHENTICATE)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .flat_map(parse_www_authenticate)
                    .collect();
                self.authenticate(target, &challenges, credentials.as_ref())
                    .await?;
                authenticated = true;
                continue;
            }
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                return Err(target.unauthorized(status));
            }
            return Ok(response);
        }
    }

    fn authorize(
        &self,
        request: RequestBuilder,
        target: &Target,
        credentials: Option<&Credentials>,
    ) -> RequestBuilder {
        let auth = self
            .inner
            .auth
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&target.registry)
            .cloned();
        match auth {
            Some(HostAuth::Basic) => match credentials.and_then(|c| Some((c, c.password()?))) {
                Some((c, password)) => {
                    request.basic_auth(c.username(), Some(password.expose_secret()))
                }
                None => request,
            },
            Some(HostAuth::Bearer { tokens }) => match tokens.get(&target.scope) {
                Some(token) => request.bearer_auth(token.expose_secret()),
                None => request,
            },
            None => request,
        }
    }

    /// Answers a 401's challenges: remembers that the registry wants Basic,
    /// or gets (and caches) a Bearer token for the target's scope.
    async fn authenticate(
        &self,
        target: &Target,
        challenges: &[Challenge],
        credentials: Option<&Credentials>,
    ) -> Result<(), RegistryError> {
        if let Some(bearer) = challenges.iter().find(|c| c.scheme == "bearer") {
            let token = self.fetch_token(target, bearer, credentials).await?;
            let mut auth = self
                .inner
                .auth
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let entry = auth
                .entry(target.registry.clone())
                .or_insert_with(|| HostAuth::Bearer {
                    tokens: Default::default(),
                });
            if let HostAuth::Basic = entry {
                *entry = HostAuth::Bearer {
                    tokens: Default::default(),
                };
            }
            if let HostAuth::Bearer { tokens } = entry {
                tokens.insert(target.scope.clone(), token);
            }
            return Ok(());
        }
        if challenges.iter().any(|c| c.scheme == "basic") {
            if credentials.and_then(Credentials::password).is_none() {
                return Err(target.unauthorized(StatusCode::UNAUTHORIZED));
            }
            self.inner
                .auth
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(target.registry.clone(), HostAuth::Basic);
            return Ok(());
        }
        match challenges.first() {
            None => Err(target.unauthorized(StatusCode::UNAUTHORIZED)),
            Some(other) => Err(target.protocol(ProtocolError::Challenge {
                challenge: other.scheme.clone(),
            })),
        }
    }

    /// The token flow of the distribution spec: GET the realm with
    /// `service` and `scope` (with Basic credentials if there are any), or,
    /// for an identity token, POST the OAuth2 refresh-token grant.
    async fn fetch_token(
        &self,
        target: &Target,
        challenge: &Challenge,
        credentials: Option<&Credentials>,
    ) -> Result<Secret, RegistryError> {
        let realm = challenge.param("realm").ok_or_else(|| {
            target.protocol(ProtocolError::Challenge {
                challenge: "Bearer without realm".to_string(),
            })
        })?;
        let mut url = url::Url::parse(realm).map_err(|_| {
            target.protocol(ProtocolError::InvalidHeader {
                header: "WWW-Authenticate",
                value: realm.to_string(),
            })
        })?;
        let service = challenge.param("service");
        // Our scope first, then any other the registry asks for.
        let mut scopes = vec![target.scope.as_str()];
        for scope in challenge.param("scope").unwrap_or_default().split(' ') {
            if !scope.is_empty() && !scopes.contains(&scope) {
                scopes.push(scope);
            }
        }
        let http = &self.inner.http;
        let request = match credentials.and_then(Credentials::refresh_token) {
            Some(refresh_token) => {
                let body = url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("grant_type", "refresh_token")
                    .append_pair("refresh_token", refresh_token.expose_secret())
                    .append_pair("service", service.unwrap_or_default())
                    .append_pair("scope", &scopes.join(" "))
                    .append_pair("client_id", "kiln")
                    .finish();
                http.post(url)
                    .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(body)
            }
            None => {
                {
                    let mut query = url.query_pairs_mut();
                    if let Some(service) = service {
                        query.append_pair("service", service);
                    }
                    for scope in &scopes {
                        query.append_pair("scope", scope);
                    }
                    if let Some(c) = credentials {
                        query.append_pair("account", c.username());
                    }
                }
                let request = http.get(url);
                match credentials.and_then(|c| Some((c, c.password()?))) {
                    Some((c, password)) => {
                        request.basic_auth(c.username(), Some(password.expose_secret()))
                    }
                    None => request,
                }
            }
        };
        let response = request
            .timeout(self.inner.request_timeout)
            .send()
            .await
            .map_err(|e| target.unreachable(e))?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(target.unauthorized(status));
        }
        if !status.is_success() {
            return Err(self.status_error(target, response).await);
        }
        let body = self.read_body(target, response, MAX_SMALL_BODY).await?;
        // serde_json's messages can quote the input; report only where it failed.
        let parsed: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
            target.protocol(ProtocolError::TokenJson {
                realm: realm.to_string(),
                detail: format!(
                    "{:?} error at line {} column {}",
                    e.classify(),
                    e.line(),
                    e.column()
                ),
            })
        })?;
        parsed
            .token
            .filter(|t| !t.is_empty())
            .or(parsed.access_token.filter(|t| !t.is_empty()))
            .map(Secret::from)
            .ok_or_else(|| {
                target.protocol(ProtocolError::NoToken {
                    realm: realm.to_string(),
                })
            })
    }

    /// Reads a whole body, refusing more than `limit` bytes.
    pub(crate) async fn read_body(
        &self,
        target: &Target,
        mut response: Response,
        limit: u64,
    ) -> Result<Vec<u8>, RegistryError> {
        let too_large = || target.protocol(ProtocolError::TooLarge { limit });
        if response.content_length().is_some_and(|len| len > limit) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| target.unreachable(e))? {
            if (body.len() + chunk.len()) as u64 > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// The error for a status the operation did not expect: 404 is
    /// [`RegistryError::NotFound`], anything else a protocol error carrying
    /// the registry's error codes and messages.
    pub(crate) async fn status_error(&self, target: &Target, response: Response) -> RegistryError {
        let status = response.status();
        if status == StatusCode::NOT_FOUND {
            return RegistryError::NotFound {
                reference: target.reference.clone(),
            };
        }
        let body = self
            .read_body(target, response, MAX_SMALL_BODY)
            .await
            .unwrap_or_default();
        target.protocol(ProtocolError::UnexpectedStatus {
            status: status.as_u16(),
            message: error_message(&body),
        })
    }
}

/// The distribution API's `{"errors": [{"code", "message"}]}` as
/// `CODE: message; …`, or the start of a plain-text body.
/// Statuses that say "not now" rather than "no".
fn retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 500 | 502 | 503 | 504)
}

/// The `n`th wait (from 0): `base`, doubling.
fn backoff(retry: super::Retry, n: u32) -> Duration {
    retry
        .base
        .saturating_mul(1u32 << n.min(16))
        .min(super::MAX_RETRY_WAIT)
}

/// `Retry-After` in seconds (an HTTP date is not honoured: the backoff
/// applies then).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    header_str(headers, "retry-after")?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

fn error_message(body: &[u8]) -> String {
    const MAX: usize = 300;
    let text = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(parsed) => parsed
            .errors
            .iter()
            .map(|e| match (&e.code, &e.message) {
                (Some(code), Some(message)) => format!("{code}: {message}"),
                (Some(one), None) | (None, Some(one)) => one.clone(),
                (None, None) => String::new(),
            })
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("; "),
        Err(_) => String::from_utf8_lossy(body).trim().to_string(),
    };
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// The `Docker-Content-Digest` header, if present.
pub(crate) fn content_digest(
    headers: &HeaderMap,
    target: &Target,
) -> Result<Option<Digest>, RegistryError> {
    let Some(value) = headers.get("docker-content-digest") else {
        return Ok(None);
    };
    let invalid = || {
        target.protocol(ProtocolError::InvalidHeader {
            header: "Docker-Content-Digest",
            value: String::from_utf8_lossy(value.as_bytes()).into_owned(),
        })
    };
    let text = value.to_str().map_err(|_| invalid())?;
    Digest::parse(text.trim()).map(Some).map_err(|_| invalid())
}

/// A header as text, if present and printable.
pub(crate) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A registry on loopback that answers each connection with the next
    /// canned response (HTTP/1.1, one request per connection).
    async fn fake_registry(
        responses: Vec<String>,
    ) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let served = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = served.clone();
        tokio::spawn(async move {
            for body in responses {
                let Ok((mut c, _)) = listener.accept().await else {
                    return;
                };
                let mut buf = vec![0u8; 4096];
                let _ = c.read(&mut buf).await;
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _ = c.write_all(body.as_bytes()).await;
                let _ = c.shutdown().await;
            }
        });
        (addr, served)
    }

    fn reply(status: &str, headers: &str, body: &str) -> String {
        format!(
            "HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: {}\r\n{headers}\r\n{body}",
            body.len()
        )
    }

    const MANIFEST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":0},"layers":[]}"#;

    fn client(addr: &str, attempts: u32) -> RegistryClient {
        RegistryClient::builder()
            .insecure(addr.to_string())
            .retries(attempts, Duration::from_millis(10))
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn busy_registries_are_asked_again_then_answer() {
        let ok = reply(
            "200 OK",
            "Content-Type: application/vnd.oci.image.manifest.v1+json\r\n",
            MANIFEST,
        );
        let (addr, served) = fake_registry(vec![
            reply("429 Too Many Requests", "Retry-After: 0\r\n", ""),
            reply("503 Service Unavailable", "", ""),
            reply("500 Internal Server Error", "", ""),
            ok,
        ])
        .await;
        let image = crate::ImageRef::parse(&format!("{addr}/app:1")).unwrap();
        let got = client(&addr, 3).get_manifest(&image).await;
        assert!(got.is_ok(), "{got:?}");
        assert_eq!(served.load(std::sync::atomic::Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn retries_are_bounded_then_the_error_says_what_the_registry_said() {
        let busy = reply(
            "503 Service Unavailable",
            "Retry-After: 0\r\n",
            r#"{"errors":[{"code":"UNAVAILABLE","message":"try later"}]}"#,
        );
        let (addr, served) =
            fake_registry(vec![busy.clone(), busy.clone(), busy.clone(), busy]).await;
        let image = crate::ImageRef::parse(&format!("{addr}/app:1")).unwrap();
        let err = client(&addr, 2)
            .get_manifest(&image)
            .await
            .unwrap_err()
            .to_string();
        assert_eq!(
            served.load(std::sync::atomic::Ordering::SeqCst),
            3,
            "one try and two more"
        );
        assert!(err.contains("503") || err.contains("try later"), "{err}");
        assert!(err.contains(&addr), "{err}");
    }

    #[test]
    fn waits() {
        let r = super::super::Retry {
            attempts: 3,
            base: Duration::from_millis(500),
        };
        assert_eq!(backoff(r, 0), Duration::from_millis(500));
        assert_eq!(backoff(r, 2), Duration::from_secs(2));
        assert_eq!(backoff(r, 30), super::super::MAX_RETRY_WAIT);
        let mut h = HeaderMap::new();
        h.insert("retry-after", "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), None);
        assert!(retryable(StatusCode::TOO_MANY_REQUESTS) && !retryable(StatusCode::NOT_FOUND));
    }

    #[test]
    fn error_messages() {
        let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"x"}},{"code":"DENIED"}]}"#;
        assert_eq!(
            error_message(body),
            "MANIFEST_UNKNOWN: manifest unknown; DENIED"
        );
        assert_eq!(error_message(b"  upstream down \n"), "upstream down");
        assert_eq!(error_message(&[b'x'; 1000]).chars().count(), 301);
        assert_eq!(error_message(b""), "");
    }
}
