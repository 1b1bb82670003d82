//! Registry credentials from Docker's `config.json` and credential helpers,
//! looked up like docker/cli's `configfile.GetAuthConfig`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use crate::error::{Error, Result};
use crate::secrets::{ExposeSecret, SecretValue};

/// The key Docker Hub credentials are stored under.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// Hosts that mean Docker Hub.
const DOCKER_HUB_HOSTS: &[&str] = &[
    "docker.io",
    "index.docker.io",
    "registry-1.docker.io",
    DOCKER_HUB_KEY,
    "https://index.docker.io/v1",
    "https://index.docker.io",
];

/// How long a credential helper may take.
const HELPER_TIMEOUT: Duration = Duration::from_secs(60);

/// The username credential helpers use to mark an identity token.
const TOKEN_USERNAME: &str = "<token>";

/// Credentials for one registry. `Debug` never shows the secret.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// The user name (empty for an identity token or anonymous access).
    pub username: String,
    /// The password or identity token (empty for anonymous access).
    pub secret: Option<SecretValue>,
}

impl Credentials {
    /// Whether these are anonymous (no secret).
    pub fn is_anonymous(&self) -> bool {
        self.secret
            .as_ref()
            .is_none_or(|s| s.expose_secret().is_empty())
    }
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ConfigFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
}

#[derive(Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    identitytoken: String,
}

impl std::fmt::Debug for AuthEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthEntry(<redacted>)")
    }
}

/// Maps the host the daemon asks for to the key Docker stores it under.
pub fn normalize_host(host: &str) -> &str {
    if DOCKER_HUB_HOSTS.contains(&host) {
        DOCKER_HUB_KEY
    } else {
        host
    }
}

/// docker/cli's `ConvertToHostname`: drop the scheme and any path.
fn to_hostname(key: &str) -> &str {
    let rest = key
        .strip_prefix("http://")
        .or_else(|| key.strip_prefix("https://"))
        .unwrap_or(key);
    rest.split('/').next().unwrap_or(rest)
}

impl ConfigFile {
    /// Reads a config file; a missing file is an empty config.
    pub(crate) async fn load(path: &Path) -> Result<Self> {
        match tokio::fs::read(path).await {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| Error::DockerConfig {
                path: path.to_path_buf(),
                source,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(Error::io("read", path, e)),
        }
    }

    /// The credential helper for `key`, if any (`credHelpers`, then `credsStore`).
    fn helper(&self, key: &str) -> Option<&str> {
        let per_host = if key == DOCKER_HUB_KEY {
            DOCKER_HUB_HOSTS
                .iter()
                .find_map(|h| self.cred_helpers.get(*h))
        } else {
            self.cred_helpers.get(key)
        };
        per_host
            .or(self.creds_store.as_ref())
            .map(String::as_str)
            .filter(|h| !h.is_empty())
    }

    /// The `auths` entry for `key`: exact, else one whose hostname matches.
    fn entry(&self, key: &str) -> Option<(&str, &AuthEntry)> {
        if let Some((k, e)) = self.auths.get_key_value(key) {
            return Some((k, e));
        }
        self.auths
            .iter()
            .map(|(k, e)| (k.as_str(), e))
            .find(|(k, _)| {
                if key == DOCKER_HUB_KEY {
                    DOCKER_HUB_HOSTS.contains(k)
                } else {
                    to_hostname(k) == key
                }
            })
    }

    /// Looks up credentials for a registry host (as the daemon names it).
    pub(crate) async fn credentials(&self, path: &Path, host: &str) -> Result<Credentials> {
        let key = normalize_host(host);
        if let Some(helper) = self.helper(key) {
            return run_helper(helper, key).await;
        }
        let Some((entry_key, entry)) = self.entry(key) else {
            return Ok(Credentials::default());
        };
        let (mut username, mut password) = (entry.username.clone(), entry.password.clone());
        if !entry.auth.is_empty() {
            let invalid = || Error::InvalidAuthEntry {
                host: entry_key.to_owned(),
                path: path.to_path_buf(),
            };
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(entry.auth.trim())
                .map_err(|_| invalid())?;
            let decoded = String::from_utf8(decoded).map_err(|_| invalid())?;
            let (u, p) = decoded.split_once(':').ok_or_else(invalid)?;
            username = u.to_owned();
            password = p.trim_end_matches('\0').to_owned();
        }
        if !entry.identitytoken.is_empty() {
            return Ok(Credentials {
                username: String::new(),
                secret: Some(SecretValue::from(entry.identitytoken.clone().into_bytes())),
            });
        }
        Ok(Credentials {
            username,
            secret: (!password.is_empty()).then(|| SecretValue::from(password.into_bytes())),
        })
    }
}

/// The default config file: `$DOCKER_CONFIG/config.json`, else
/// `~/.docker/config.json`.
pub fn default_config_path() -> PathBuf {
    let dir = match std::env::var_os("DOCKER_CONFIG") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default()
            .join(".docker"),
    };
    dir.join("config.json")
}

#[derive(Deserialize)]
struct HelperOutput {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// Runs `docker-credential-<helper> get` with the server address on stdin.
async fn run_helper(helper: &str, server: &str) -> Result<Credentials> {
    let program = format!("docker-credential-{helper}");
    let fail = |reason: String| Error::CredentialHelper {
        helper: helper.to_owned(),
        host: server.to_owned(),
        reason,
    };
    let mut child = tokio::process::Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| fail(format!("cannot run {program}: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(server.as_bytes())
            .await
            .map_err(|e| fail(format!("cannot write to {program}: {e}")))?;
    }
    let output = tokio::time::timeout(HELPER_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| fail("timed out".to_owned()))?
        .map_err(|e| fail(e.to_string()))?;
    if !output.status.success() {
        let message = String::from_utf8_lossy(&output.stdout);
        let message = message.trim();
        if message.contains("credentials not found") {
            return Ok(Credentials::default());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let detail = if message.is_empty() {
            stderr.trim()
        } else {
            message
        };
        return Err(fail(format!(
            "{}: {}",
            output.status,
            truncate(detail, 200)
        )));
    }
    let parsed: HelperOutput = serde_json::from_slice(&output.stdout).map_err(|_| {
        fail("unreadable answer (expected JSON with Username and Secret)".to_owned())
    })?;
    if parsed.username == TOKEN_USERNAME {
        return Ok(Credentials {
            username: String::new(),
            secret: Some(SecretValue::from(parsed.secret.into_bytes())),
        });
    }
    Ok(Credentials {
        username: parsed.username,
        secret: (!parsed.secret.is_empty()).then(|| SecretValue::from(parsed.secret.into_bytes())),
    })
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames() {
        assert_eq!(normalize_host("registry-1.docker.io"), DOCKER_HUB_KEY);
        assert_eq!(normalize_host("docker.io"), DOCKER_HUB_KEY);
        assert_eq!(normalize_host("ghcr.io"), "ghcr.io");
        assert_eq!(to_hostname("https://ghcr.io/v2/"), "ghcr.io");
        assert_eq!(to_hostname("localhost:5000"), "localhost:5000");
    }

    #[test]
    fn entry_debug_is_redacted() {
        let e = AuthEntry {
            password: "hunter2".to_owned(),
            ..AuthEntry::default()
        };
        assert!(!format!("{e:?}").contains("hunter2"));
    }
}
