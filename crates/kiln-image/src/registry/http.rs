//! Sending requests: authentication (Basic, Bearer tokens), status and
//! error-body handling, bounded body reads.

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
        loop {
            let request = self.authorize(build(&self.inner.http), target, credentials.as_ref());
            let response = request.send().await.map_err(|e| target.unreachable(e))?;
            let status = response.status();
            tracing::debug!(
                registry = %target.registry,
                url = %response.url(),
                status = status.as_u16(),
                "registry request"
            );
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
