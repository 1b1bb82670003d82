//! The daemon matrix: which BuildKit this test run talks to, and what it can do.
//!
//! `scripts/test.sh` runs the integration suite once per daemon kind, with
//! `KILN_TEST_DAEMON` naming the kind (`docker`, `docker-classic`,
//! `buildkitd`, `buildkitd-tls`; `docker` when unset). Tests reach the daemon
//! through [`daemon()`] and never hard-code a kind; a test that needs what
//! only some daemons have asks [`Daemon::supports`] with a [`Need`], which
//! names why the others cannot run it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use kiln_client::{Address, Client, TlsOptions};

use crate::env::harness;

/// The four kinds of daemon kiln is tested against.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DaemonKind {
    /// Docker Engine 28 with the containerd image store (`docker://`).
    Docker,
    /// Docker Engine 28 with the classic image store (`docker://`).
    DockerClassic,
    /// Standalone buildkitd v0.29 on a unix socket (`unix://`).
    Buildkitd,
    /// The same buildkitd on TCP with mutual TLS (`tcp://` + certificates).
    BuildkitdTls,
}

impl DaemonKind {
    /// Every kind, in the order `scripts/test.sh` runs them.
    pub const ALL: [DaemonKind; 4] = [
        DaemonKind::Docker,
        DaemonKind::DockerClassic,
        DaemonKind::Buildkitd,
        DaemonKind::BuildkitdTls,
    ];

    /// The name used in `KILN_TEST_DAEMON(S)`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            DaemonKind::Docker => "docker",
            DaemonKind::DockerClassic => "docker-classic",
            DaemonKind::Buildkitd => "buildkitd",
            DaemonKind::BuildkitdTls => "buildkitd-tls",
        }
    }

    /// Parses a name from `KILN_TEST_DAEMON`.
    #[must_use]
    pub fn parse(s: &str) -> Option<DaemonKind> {
        DaemonKind::ALL.into_iter().find(|k| k.name() == s.trim())
    }

    /// Whether this is a Docker Engine (either image store).
    #[must_use]
    pub fn is_docker(self) -> bool {
        matches!(self, DaemonKind::Docker | DaemonKind::DockerClassic)
    }
}

impl fmt::Display for DaemonKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Something only some daemons have; each says why in [`Need::why`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Need {
    /// A Docker Engine API on the other end (`docker://` addresses, the
    /// `POST /session` upgrade, `docker run`, Docker's image store).
    DockerEngine,
    /// An image store that keeps multi-platform images and has the `oci` and
    /// `docker` exporters: Docker with the containerd store, or the
    /// client-side tarball exporters of a standalone buildkitd.
    OciExporters,
    /// Docker's containerd image store (multi-platform images in the store).
    ContainerdImageStore,
    /// RUN steps in their own network namespace by default. The harness's
    /// buildkitd, like buildkitd wherever no CNI configuration is installed
    /// (its `networkMode = "auto"`), runs every step on the host's network.
    IsolatedNetwork,
    /// LLB MergeOp and DiffOp: Docker's classic image store disables them
    /// ("only enabled with containerd image store backend").
    MergeDiff,
    /// `oci-layout://` sources: Docker's classic store has no such source
    /// ("unknown scheme oci-layout").
    OciLayoutSource,
    /// Pushing each platform by digest, for a fanned-out build: Docker's
    /// classic store cannot (kiln refuses such an endpoint up front).
    PushByDigest,
    /// Attestation manifests (provenance, SBOM) in an image index: Docker's
    /// classic image store cannot keep them (kiln refuses them there).
    Attestations,
}

impl Need {
    fn holds(self, kind: DaemonKind) -> bool {
        match self {
            Need::DockerEngine => kind.is_docker(),
            Need::OciExporters => kind != DaemonKind::DockerClassic,
            Need::ContainerdImageStore => kind == DaemonKind::Docker,
            Need::IsolatedNetwork => kind.is_docker(),
            Need::MergeDiff | Need::OciLayoutSource | Need::PushByDigest | Need::Attestations => {
                kind != DaemonKind::DockerClassic
            }
        }
    }

    /// Why a daemon without it cannot run the test.
    #[must_use]
    pub fn why(self) -> &'static str {
        match self {
            Need::DockerEngine => {
                "needs a Docker Engine (docker:// address, its API or image store)"
            }
            Need::OciExporters => {
                "needs the oci/docker exporters, which Docker's classic image store does not have"
            }
            Need::ContainerdImageStore => {
                "needs Docker's containerd image store (multi-platform images in the store)"
            }
            Need::MergeDiff => {
                "needs LLB merge and diff ops, which Docker's classic image store disables"
            }
            Need::OciLayoutSource => {
                "needs oci-layout:// sources, which Docker's classic image store does not have"
            }
            Need::PushByDigest => {
                "needs per-platform pushes by digest (fan-out), which Docker's classic image store cannot do"
            }
            Need::Attestations => {
                "needs attestation manifests, which Docker's classic image store cannot keep"
            }
            Need::IsolatedNetwork => {
                "needs RUN steps isolated from the host's network; buildkitd without CNI runs them on the host network"
            }
        }
    }
}

/// Where this test run's daemon is and how to reach it.
#[derive(Clone, Debug)]
pub struct Daemon {
    pub kind: DaemonKind,
    /// kiln's `--addr` for it.
    pub addr: String,
    /// Client certificates (`buildkitd-tls` only).
    pub tls: Option<ClientTls>,
    /// The Docker Engine's socket (Docker kinds only).
    pub docker_sock: Option<PathBuf>,
    /// A unix socket that speaks BuildKit's gRPC directly (standalone
    /// buildkitd), for relays and raw clients.
    pub grpc_sock: Option<PathBuf>,
}

/// PEM files for mutual TLS.
#[derive(Clone, Debug)]
pub struct ClientTls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Daemon {
    /// `--addr ADDR` plus the TLS flags, for a `kiln` command line.
    #[must_use]
    pub fn kiln_args(&self) -> Vec<String> {
        let mut v = vec!["--addr".to_string(), self.addr.clone()];
        if let Some(t) = &self.tls {
            for (flag, p) in [
                ("--tlscacert", &t.ca),
                ("--tlscert", &t.cert),
                ("--tlskey", &t.key),
            ] {
                v.push(flag.to_string());
                v.push(p.display().to_string());
            }
        }
        v
    }

    /// The TLS options a library client needs.
    #[must_use]
    pub fn tls_options(&self) -> TlsOptions {
        match &self.tls {
            Some(t) => TlsOptions {
                ca_cert: Some(t.ca.clone()),
                cert: Some(t.cert.clone()),
                key: Some(t.key.clone()),
                server_name: None,
            },
            None => TlsOptions::default(),
        }
    }

    /// The parsed address.
    ///
    /// # Panics
    /// If the harness wrote an address kiln cannot parse.
    #[must_use]
    pub fn address(&self) -> Address {
        Address::parse(&self.addr).unwrap_or_else(|e| panic!("{}: {e}", self.addr))
    }

    /// A connected library client.
    ///
    /// # Panics
    /// When the daemon does not answer (the message says how to start it).
    pub async fn client(&self) -> Client {
        Client::connect(self.address(), &self.tls_options())
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "connecting to the {} daemon at {}: {e}\n{HOW}",
                    self.kind, self.addr
                )
            })
    }

    /// Whether this daemon has what `need` names; when not, prints one line
    /// saying the test is skipped on this daemon and why.
    #[must_use]
    pub fn supports(&self, need: Need) -> bool {
        if need.holds(self.kind) {
            return true;
        }
        eprintln!("skipped on {}: this test {}", self.kind, need.why());
        false
    }

    /// The Docker Engine socket; only call after `supports(Need::DockerEngine)`.
    ///
    /// # Panics
    /// On a standalone buildkitd.
    #[must_use]
    pub fn docker_sock(&self) -> &Path {
        self.docker_sock
            .as_deref()
            .unwrap_or_else(|| panic!("{} is not a Docker Engine", self.kind))
    }

    /// `DOCKER_HOST` for the Docker CLI (Docker kinds only).
    #[must_use]
    pub fn docker_host(&self) -> String {
        format!("unix://{}", self.docker_sock().display())
    }
}

const HOW: &str = "start the harness with `./scripts/harness.sh up` (as root), or run the suite \
with `./scripts/test.sh`";

/// The daemon this test run targets (`KILN_TEST_DAEMON`, `docker` by default).
///
/// # Panics
/// When the kind is unknown or the harness did not set that daemon up: a
/// daemon test never passes without its daemon.
pub fn daemon() -> &'static Daemon {
    static D: OnceLock<Daemon> = OnceLock::new();
    D.get_or_init(|| {
        let name = std::env::var("KILN_TEST_DAEMON").unwrap_or_else(|_| "docker".into());
        let kind = DaemonKind::parse(&name).unwrap_or_else(|| {
            panic!(
                "KILN_TEST_DAEMON={name} is not a daemon kind; use one of {}",
                DaemonKind::ALL.map(DaemonKind::name).join(", ")
            )
        });
        match load(kind) {
            Ok(d) => d,
            Err(why) => {
                let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
                panic!(
                    "the {kind} daemon is not available: {why}.\n{}{HOW}",
                    if ci {
                        "CI=true: a missing daemon is a failure. "
                    } else {
                        ""
                    }
                )
            }
        }
    })
}

fn load(kind: DaemonKind) -> Result<Daemon, String> {
    let h = harness();
    let var = |k: &str| {
        h.var(k)
            .ok_or_else(|| format!("{k} is not set in the harness env"))
    };
    let existing = |p: PathBuf, what: &str| {
        if p.exists() {
            Ok(p)
        } else {
            Err(format!(
                "{what} {} does not exist (is it running?)",
                p.display()
            ))
        }
    };
    let d = match kind {
        DaemonKind::Docker => {
            let sock = existing(h.docker_sock.clone(), "the Docker socket")?;
            Daemon {
                kind,
                addr: format!("docker://{}", sock.display()),
                tls: None,
                docker_sock: Some(sock),
                grpc_sock: None,
            }
        }
        DaemonKind::DockerClassic => {
            let sock = existing(
                PathBuf::from(var("KILN_TEST_DOCKER_CLASSIC_SOCK")?),
                "the classic-store Docker socket",
            )?;
            Daemon {
                kind,
                addr: format!("docker://{}", sock.display()),
                tls: None,
                docker_sock: Some(sock),
                grpc_sock: None,
            }
        }
        DaemonKind::Buildkitd => {
            let sock = existing(
                PathBuf::from(var("KILN_TEST_BUILDKITD_SOCK")?),
                "the buildkitd socket",
            )?;
            Daemon {
                kind,
                addr: format!("unix://{}", sock.display()),
                tls: None,
                docker_sock: None,
                grpc_sock: Some(sock),
            }
        }
        DaemonKind::BuildkitdTls => {
            let sock = existing(
                PathBuf::from(var("KILN_TEST_BUILDKITD_SOCK")?),
                "the buildkitd socket",
            )?;
            let tls = ClientTls {
                ca: existing(
                    PathBuf::from(var("KILN_TEST_TLS_CA")?),
                    "the CA certificate",
                )?,
                cert: existing(
                    PathBuf::from(var("KILN_TEST_TLS_CERT")?),
                    "the client certificate",
                )?,
                key: existing(PathBuf::from(var("KILN_TEST_TLS_KEY")?), "the client key")?,
            };
            Daemon {
                kind,
                addr: var("KILN_TEST_BUILDKITD_TLS")?,
                tls: Some(tls),
                docker_sock: None,
                grpc_sock: Some(sock),
            }
        }
    };
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_by_name() {
        for k in DaemonKind::ALL {
            assert_eq!(DaemonKind::parse(k.name()), Some(k));
        }
        assert_eq!(DaemonKind::parse("podman"), None);
    }

    #[test]
    fn needs_hold_where_they_should() {
        assert!(Need::DockerEngine.holds(DaemonKind::DockerClassic));
        assert!(!Need::DockerEngine.holds(DaemonKind::Buildkitd));
        assert!(!Need::OciExporters.holds(DaemonKind::DockerClassic));
        assert!(Need::OciExporters.holds(DaemonKind::BuildkitdTls));
        assert!(!Need::ContainerdImageStore.holds(DaemonKind::DockerClassic));
    }

    #[test]
    fn tls_daemon_passes_its_certificates() {
        let d = Daemon {
            kind: DaemonKind::BuildkitdTls,
            addr: "tcp://127.0.0.1:1234".into(),
            tls: Some(ClientTls {
                ca: "/t/ca.pem".into(),
                cert: "/t/c.pem".into(),
                key: "/t/k.pem".into(),
            }),
            docker_sock: None,
            grpc_sock: None,
        };
        assert_eq!(
            d.kiln_args(),
            [
                "--addr",
                "tcp://127.0.0.1:1234",
                "--tlscacert",
                "/t/ca.pem",
                "--tlscert",
                "/t/c.pem",
                "--tlskey",
                "/t/k.pem"
            ]
        );
    }
}
