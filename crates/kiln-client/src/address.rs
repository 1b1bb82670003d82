//! Parsing of BuildKit addresses (`--addr` / `BUILDKIT_HOST`).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::error::AddressError;

/// The schemes kiln understands, for error messages.
pub const SCHEMES: &str = "unix://, tcp://, docker://, docker-container://, podman-container://, nerdctl-container://, kube-pod://, ssh://";

/// Where a BuildKit daemon answers.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Address {
    /// A standalone buildkitd on a unix socket.
    Unix(PathBuf),
    /// A standalone buildkitd on TCP (TLS when TLS options are given).
    Tcp { host: String, port: u16 },
    /// The BuildKit embedded in a Docker Engine (`POST /grpc`).
    Docker(DockerHost),
    /// `docker exec -i NAME buildctl dial-stdio`.
    DockerContainer { container: String },
    /// `podman exec -i NAME buildctl dial-stdio` (BuildKit's
    /// `connhelper/podmancontainer`).
    PodmanContainer { container: String },
    /// `nerdctl [--namespace NS] exec -i NAME buildctl dial-stdio` (BuildKit's
    /// `connhelper/nerdctlcontainer`); no namespace leaves nerdctl's default
    /// (`CONTAINERD_NAMESPACE`, else `default`).
    NerdctlContainer {
        container: String,
        namespace: Option<String>,
    },
    /// `kubectl exec -i POD -- buildctl dial-stdio`.
    KubePod {
        pod: String,
        namespace: Option<String>,
        context: Option<String>,
        container: Option<String>,
    },
    /// `ssh [-p PORT] [USER@]HOST -- buildctl dial-stdio`.
    Ssh {
        user: Option<String>,
        host: String,
        port: Option<u16>,
    },
}

/// How to reach a Docker Engine's API.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DockerHost {
    /// A unix socket, e.g. `/var/run/docker.sock`.
    Unix(PathBuf),
    /// Plain TCP, e.g. `tcp://127.0.0.1:2375`.
    Tcp { host: String, port: u16 },
}

/// The Docker Engine socket used when nothing says otherwise.
pub const DEFAULT_DOCKER_SOCKET: &str = "/var/run/docker.sock";
/// The standalone buildkitd socket used when no Docker Engine answers.
pub const DEFAULT_BUILDKITD_SOCKET: &str = "/run/buildkit/buildkitd.sock";

impl DockerHost {
    /// Parses a `DOCKER_HOST` value (`unix:///path` or `tcp://host:port`).
    ///
    /// # Errors
    /// [`AddressError`] for any other scheme or a malformed host.
    pub fn parse(value: &str) -> Result<Self, AddressError> {
        if let Some(path) = value.strip_prefix("unix://") {
            return non_empty_path(value, path).map(DockerHost::Unix);
        }
        if let Some(rest) = value.strip_prefix("tcp://") {
            let (host, port) = host_port(value, rest.trim_end_matches('/'), Some(2375))?;
            return Ok(DockerHost::Tcp { host, port });
        }
        Err(AddressError::UnsupportedDockerHost {
            address: value.to_string(),
        })
    }

    /// `DOCKER_HOST` if set, else the default socket.
    ///
    /// # Errors
    /// [`AddressError`] when `DOCKER_HOST` is set but malformed.
    pub fn from_env() -> Result<Self, AddressError> {
        match std::env::var("DOCKER_HOST") {
            Ok(v) if !v.is_empty() => DockerHost::parse(&v),
            _ => Ok(DockerHost::Unix(PathBuf::from(DEFAULT_DOCKER_SOCKET))),
        }
    }
}

impl fmt::Display for DockerHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DockerHost::Unix(p) => write!(f, "unix://{}", p.display()),
            DockerHost::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
        }
    }
}

impl FromStr for Address {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Address::parse(s)
    }
}

/// Whether `host` names this machine (`localhost`, 127.0.0.0/8, `::1`).
fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Address {
    /// A warning for plain TCP to another machine: without TLS anyone on
    /// the network path reads the session (secrets, registry credentials,
    /// the context) and can drive the daemon. `None` for every other case
    /// (TLS given, a loopback host, sockets, exec helpers).
    #[must_use]
    pub fn plaintext_warning(&self, tls_set: bool) -> Option<String> {
        let (host, how) = match self {
            Address::Tcp { host, .. } if !tls_set => (
                host,
                "pass --tlscacert (and --tlscert/--tlskey for mutual TLS)",
            ),
            Address::Docker(DockerHost::Tcp { host, .. }) => (
                host,
                "use the Engine's TLS port, an ssh:// address or a unix socket",
            ),
            _ => return None,
        };
        (!is_loopback(host)).then(|| {
            format!(
                "warning: {self} is plain TCP to another machine: anyone on the network path can read the build's secrets and registry credentials and drive the daemon; {how}"
            )
        })
    }

    /// Parses an address such as `unix:///run/buildkit/buildkitd.sock`,
    /// `tcp://127.0.0.1:1234`, `docker://`, `docker:///var/run/docker.sock`,
    /// `docker-container://buildkitd`, `podman-container://buildkitd`,
    /// `nerdctl-container://buildkitd?namespace=NS`, `kube-pod://POD?namespace=NS`,
    /// `ssh://user@host:22`.
    ///
    /// `docker://` alone resolves `DOCKER_HOST` at connect time.
    ///
    /// # Errors
    /// [`AddressError`] naming the address and the schemes that exist.
    pub fn parse(s: &str) -> Result<Self, AddressError> {
        let s = s.trim();
        let Some((scheme, rest)) = s.split_once("://") else {
            return Err(AddressError::MissingScheme {
                address: s.to_string(),
            });
        };
        match scheme {
            "unix" => non_empty_path(s, rest).map(Address::Unix),
            "tcp" => {
                let (host, port) = host_port(s, rest.trim_end_matches('/'), None)?;
                Ok(Address::Tcp { host, port })
            }
            "docker" => {
                if rest.is_empty() {
                    // Resolved when connecting: DOCKER_HOST or the default socket.
                    Ok(Address::Docker(DockerHost::from_env()?))
                } else if rest.starts_with('/') {
                    Ok(Address::Docker(DockerHost::Unix(PathBuf::from(rest))))
                } else {
                    let (host, port) = host_port(s, rest.trim_end_matches('/'), Some(2375))?;
                    Ok(Address::Docker(DockerHost::Tcp { host, port }))
                }
            }
            "docker-container" => Ok(Address::DockerContainer {
                container: container_name(s, scheme, rest)?,
            }),
            "podman-container" => Ok(Address::PodmanContainer {
                container: container_name(s, scheme, rest)?,
            }),
            "nerdctl-container" => parse_nerdctl(s, rest),
            "kube-pod" => parse_kube_pod(s, rest),
            "ssh" => parse_ssh(s, rest),
            other => Err(AddressError::UnknownScheme {
                address: s.to_string(),
                scheme: other.to_string(),
            }),
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Unix(p) => write!(f, "unix://{}", p.display()),
            Address::Tcp { host, port } => write!(f, "tcp://{}:{port}", bracket(host)),
            Address::Docker(DockerHost::Unix(p)) => write!(f, "docker://{}", p.display()),
            Address::Docker(DockerHost::Tcp { host, port }) => {
                write!(f, "docker://{}:{port}", bracket(host))
            }
            Address::DockerContainer { container } => write!(f, "docker-container://{container}"),
            Address::PodmanContainer { container } => write!(f, "podman-container://{container}"),
            Address::NerdctlContainer {
                container,
                namespace,
            } => {
                write!(f, "nerdctl-container://{container}")?;
                if let Some(ns) = namespace {
                    write!(f, "?namespace={ns}")?;
                }
                Ok(())
            }
            Address::KubePod {
                pod,
                namespace,
                context,
                container,
            } => {
                write!(f, "kube-pod://{pod}")?;
                let mut sep = '?';
                for (k, v) in [
                    ("namespace", namespace),
                    ("context", context),
                    ("container", container),
                ] {
                    if let Some(v) = v {
                        write!(f, "{sep}{k}={v}")?;
                        sep = '&';
                    }
                }
                Ok(())
            }
            Address::Ssh { user, host, port } => {
                write!(f, "ssh://")?;
                if let Some(u) = user {
                    write!(f, "{u}@")?;
                }
                write!(f, "{}", bracket(host))?;
                if let Some(p) = port {
                    write!(f, ":{p}")?;
                }
                Ok(())
            }
        }
    }
}

fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

fn non_empty_path(address: &str, path: &str) -> Result<PathBuf, AddressError> {
    if path.is_empty() || !path.starts_with('/') {
        return Err(AddressError::Invalid {
            address: address.to_string(),
            reason: "expected an absolute socket path, e.g. unix:///run/buildkit/buildkitd.sock"
                .into(),
        });
    }
    Ok(PathBuf::from(path))
}

fn host_port(
    address: &str,
    rest: &str,
    default_port: Option<u16>,
) -> Result<(String, u16), AddressError> {
    let invalid = |reason: &str| AddressError::Invalid {
        address: address.to_string(),
        reason: reason.to_string(),
    };
    if rest.is_empty() {
        return Err(invalid("expected HOST:PORT"));
    }
    let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
        let (h, after) = inner
            .split_once(']')
            .ok_or_else(|| invalid("unclosed '[' in IPv6 address"))?;
        (h, after.strip_prefix(':'))
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    if host.is_empty() {
        return Err(invalid("expected HOST:PORT"));
    }
    let port = match (port, default_port) {
        (Some(p), _) => p
            .parse::<u16>()
            .map_err(|_| invalid(&format!("port {p:?} is not a number from 1 to 65535")))?,
        (None, Some(d)) => d,
        (None, None) => return Err(invalid("missing port (e.g. tcp://127.0.0.1:1234)")),
    };
    if port == 0 {
        return Err(invalid("port 0 is not a port to dial"));
    }
    Ok((host.to_string(), port))
}

/// Whether `name` is a name or id Docker, Podman and nerdctl accept for a
/// container: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`. It goes on the helper's command
/// line, so a name that would read as an option (`-i`) never gets there.
fn is_container_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// The `NAME` of `SCHEME://NAME`.
fn container_name(address: &str, scheme: &str, rest: &str) -> Result<String, AddressError> {
    let name = rest.trim_end_matches('/');
    if !is_container_name(name) {
        return Err(AddressError::Invalid {
            address: address.to_string(),
            reason: if name.is_empty() {
                format!("expected {scheme}://CONTAINER_NAME")
            } else {
                format!(
                    "expected {scheme}://CONTAINER_NAME; {name:?} is not a container name (letters, digits, '_', '.', '-', starting with a letter or digit)"
                )
            },
        });
    }
    Ok(name.to_string())
}

/// `nerdctl-container://NAME[?namespace=NS]`.
fn parse_nerdctl(address: &str, rest: &str) -> Result<Address, AddressError> {
    const SCHEME: &str = "nerdctl-container";
    let (name, query) = rest.split_once('?').unwrap_or((rest, ""));
    let container = container_name(address, SCHEME, name)?;
    let invalid = |reason: String| AddressError::Invalid {
        address: address.to_string(),
        reason,
    };
    let mut namespace = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("namespace", ns)) => {
                // containerd's rule for namespace names: labels of letters and
                // digits joined by '.', '_' or '-'.
                let ok = !ns.is_empty()
                    && ns.split(['.', '_', '-']).all(|label| {
                        !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric())
                    });
                if !ok {
                    return Err(invalid(format!(
                        "namespace {ns:?} is not a containerd namespace (letters and digits, joined by '.', '_' or '-'), e.g. nerdctl-container://buildkitd?namespace=k8s.io"
                    )));
                }
                namespace = Some(ns.to_string());
            }
            _ => {
                let key = pair.split_once('=').map_or(pair, |(k, _)| k);
                return Err(invalid(format!(
                    "unknown nerdctl-container parameter {key:?} (known: namespace)"
                )));
            }
        }
    }
    Ok(Address::NerdctlContainer {
        container,
        namespace,
    })
}

fn parse_kube_pod(address: &str, rest: &str) -> Result<Address, AddressError> {
    let (pod, query) = rest.split_once('?').unwrap_or((rest, ""));
    let pod = pod.trim_end_matches('/');
    if pod.is_empty() {
        return Err(AddressError::Invalid {
            address: address.to_string(),
            reason: "expected kube-pod://POD[?namespace=NS&context=CTX&container=C]".into(),
        });
    }
    let (mut namespace, mut context, mut container) = (None, None, None);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match k {
            "namespace" => &mut namespace,
            "context" => &mut context,
            "container" => &mut container,
            other => {
                return Err(AddressError::Invalid {
                    address: address.to_string(),
                    reason: format!(
                    "unknown kube-pod parameter {other:?} (known: namespace, context, container)"
                ),
                })
            }
        };
        *slot = Some(v.to_string());
    }
    Ok(Address::KubePod {
        pod: pod.to_string(),
        namespace,
        context,
        container,
    })
}

fn parse_ssh(address: &str, rest: &str) -> Result<Address, AddressError> {
    let rest = rest.trim_end_matches('/');
    let (user, hostport) = match rest.rsplit_once('@') {
        Some((u, h)) => (Some(u.to_string()), h),
        None => (None, rest),
    };
    if hostport.is_empty() {
        return Err(AddressError::Invalid {
            address: address.to_string(),
            reason: "expected ssh://[USER@]HOST[:PORT]".into(),
        });
    }
    let has_port = hostport.starts_with('[') && hostport.contains("]:")
        || (!hostport.starts_with('[') && hostport.matches(':').count() == 1);
    let (host, port) = if has_port {
        let (h, p) = host_port(address, hostport, None)?;
        (h, Some(p))
    } else {
        (
            hostport
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            None,
        )
    };
    Ok(Address::Ssh { user, host, port })
}

#[cfg(test)]
mod tests {

    #[test]
    fn plain_tcp_to_another_machine_warns() {
        let tcp = |a: &str| Address::parse(a).unwrap();
        let w = tcp("tcp://10.1.2.3:1234").plaintext_warning(false).unwrap();
        assert!(
            w.contains("tcp://10.1.2.3:1234") && w.contains("--tlscacert"),
            "{w}"
        );
        assert_eq!(tcp("tcp://10.1.2.3:1234").plaintext_warning(true), None);
        for local in [
            "tcp://127.0.0.1:1234",
            "tcp://localhost:1234",
            "tcp://[::1]:1234",
        ] {
            assert_eq!(tcp(local).plaintext_warning(false), None, "{local}");
        }
        assert_eq!(
            tcp("unix:///run/buildkit/buildkitd.sock").plaintext_warning(false),
            None
        );
        assert!(tcp("docker://build.example:2375")
            .plaintext_warning(true)
            .is_some());
    }

    use super::*;

    #[test]
    fn parses_every_scheme() {
        assert_eq!(
            Address::parse("unix:///run/buildkit/buildkitd.sock").ok(),
            Some(Address::Unix("/run/buildkit/buildkitd.sock".into()))
        );
        assert_eq!(
            Address::parse("tcp://127.0.0.1:1234").ok(),
            Some(Address::Tcp {
                host: "127.0.0.1".into(),
                port: 1234
            })
        );
        assert_eq!(
            Address::parse("tcp://[::1]:1234").ok(),
            Some(Address::Tcp {
                host: "::1".into(),
                port: 1234
            })
        );
        assert_eq!(
            Address::parse("docker:///tmp/d.sock").ok(),
            Some(Address::Docker(DockerHost::Unix("/tmp/d.sock".into())))
        );
        assert_eq!(
            Address::parse("docker://10.0.0.1:2375").ok(),
            Some(Address::Docker(DockerHost::Tcp {
                host: "10.0.0.1".into(),
                port: 2375
            }))
        );
        assert_eq!(
            Address::parse("docker-container://buildkitd").ok(),
            Some(Address::DockerContainer {
                container: "buildkitd".into()
            })
        );
        assert_eq!(
            Address::parse("podman-container://kiln-buildkitd").ok(),
            Some(Address::PodmanContainer {
                container: "kiln-buildkitd".into()
            })
        );
        assert_eq!(
            Address::parse("nerdctl-container://buildkitd").ok(),
            Some(Address::NerdctlContainer {
                container: "buildkitd".into(),
                namespace: None
            })
        );
        assert_eq!(
            Address::parse("nerdctl-container://bk_1.a?namespace=k8s.io").ok(),
            Some(Address::NerdctlContainer {
                container: "bk_1.a".into(),
                namespace: Some("k8s.io".into())
            })
        );
        assert_eq!(
            Address::parse("kube-pod://bk-0?namespace=ci&container=bk").ok(),
            Some(Address::KubePod {
                pod: "bk-0".into(),
                namespace: Some("ci".into()),
                context: None,
                container: Some("bk".into())
            })
        );
        assert_eq!(
            Address::parse("ssh://me@host:2222").ok(),
            Some(Address::Ssh {
                user: Some("me".into()),
                host: "host".into(),
                port: Some(2222)
            })
        );
        assert_eq!(
            Address::parse("ssh://host").ok(),
            Some(Address::Ssh {
                user: None,
                host: "host".into(),
                port: None
            })
        );
    }

    #[test]
    fn display_round_trips() {
        for a in [
            "unix:///run/buildkit/buildkitd.sock",
            "tcp://127.0.0.1:1234",
            "tcp://[::1]:1234",
            "docker:///tmp/d.sock",
            "docker-container://bk",
            "podman-container://kiln-buildkitd",
            "nerdctl-container://bk",
            "nerdctl-container://bk?namespace=k8s.io",
            "kube-pod://p?namespace=n&context=c&container=k",
            "ssh://u@h:22",
        ] {
            let parsed = Address::parse(a).expect(a);
            assert_eq!(parsed.to_string(), a);
        }
    }

    #[test]
    fn rejects_bad_addresses_with_reasons() {
        let e = Address::parse("http://x").unwrap_err().to_string();
        assert!(e.contains("unknown scheme \"http\""), "{e}");
        assert!(e.contains("unix://"), "{e}");
        let e = Address::parse("localhost:1234").unwrap_err().to_string();
        assert!(e.contains("no scheme"), "{e}");
        let e = Address::parse("tcp://host").unwrap_err().to_string();
        assert!(e.contains("missing port"), "{e}");
        let e = Address::parse("tcp://host:99999").unwrap_err().to_string();
        assert!(e.contains("99999"), "{e}");
        assert!(Address::parse("unix://relative.sock").is_err());
        assert!(Address::parse("kube-pod://p?bogus=1").is_err());
        assert!(Address::parse("docker-container://").is_err());
        for (bad, want) in [
            (
                "podman-container://",
                "expected podman-container://CONTAINER_NAME",
            ),
            ("podman-container://a/b", "\"a/b\" is not a container name"),
            ("podman-container://-i", "\"-i\" is not a container name"),
            ("docker-container://-i", "\"-i\" is not a container name"),
            (
                "nerdctl-container://",
                "expected nerdctl-container://CONTAINER_NAME",
            ),
            (
                "nerdctl-container://?namespace=x",
                "expected nerdctl-container://CONTAINER_NAME",
            ),
            ("nerdctl-container://bk?namespace=", "namespace \"\" is not"),
            (
                "nerdctl-container://bk?namespace=a..b",
                "namespace \"a..b\" is not",
            ),
            (
                "nerdctl-container://bk?namespace=-x",
                "namespace \"-x\" is not",
            ),
            (
                "nerdctl-container://bk?ns=x",
                "unknown nerdctl-container parameter \"ns\"",
            ),
        ] {
            let e = Address::parse(bad).unwrap_err().to_string();
            assert!(e.contains(want), "{bad}: {e}");
            assert!(e.contains(bad), "the error names the address: {e}");
        }
    }

    #[test]
    fn docker_host_parse() {
        assert_eq!(
            DockerHost::parse("unix:///var/run/docker.sock").ok(),
            Some(DockerHost::Unix("/var/run/docker.sock".into()))
        );
        assert_eq!(
            DockerHost::parse("tcp://1.2.3.4").ok(),
            Some(DockerHost::Tcp {
                host: "1.2.3.4".into(),
                port: 2375
            })
        );
        assert!(DockerHost::parse("npipe:////./pipe/docker_engine").is_err());
    }
}
