//! Helpers shared by the `session_*` tests: solving through the library
//! with an attached session, background processes that die with the test,
//! and small host-side utilities.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use kiln_client::{Client, ExporterSpec, SessionTransport, SolveRequest, SolveResponse};
use kiln_session::Session;

use crate::common::*;

/// Every way a session reaches this run's daemon: the Docker Engine's
/// `POST /session` upgrade and the `Control.Session` stream on Docker; only
/// the stream on a standalone buildkitd (it has no HTTP API).
pub fn transports() -> Vec<SessionTransport> {
    if daemon().kind.is_docker() {
        vec![SessionTransport::DockerUpgrade, SessionTransport::Control]
    } else {
        vec![SessionTransport::Control]
    }
}

/// A client for this run's daemon.
pub async fn client() -> Client {
    daemon().client().await
}

/// An exporter without attributes (`tar`, `local`, `oci`, …).
pub fn exporter(kind: &str) -> ExporterSpec {
    ExporterSpec {
        kind: kind.to_owned(),
        attrs: BTreeMap::new(),
    }
}

/// Marshals `state` for linux/amd64.
pub fn definition(state: &kiln_llb::State) -> kiln_llb::Definition {
    state
        .marshal(&kiln_llb::Constraints::new(amd64()))
        .expect("marshal")
}

/// Attaches `session` over `how`, solves `state` with `exporters`, and
/// detaches again (after the solve returned, so exports are complete).
pub async fn solve_with(
    client: &Client,
    session: &Session,
    how: SessionTransport,
    state: &kiln_llb::State,
    exporters: Vec<ExporterSpec>,
) -> Result<SolveResponse, kiln_client::Error> {
    solve_entitled(client, session, how, state, exporters, &[]).await
}

/// [`solve_with`] granting `entitlements` (e.g. `network.host`).
pub async fn solve_entitled(
    client: &Client,
    session: &Session,
    how: SessionTransport,
    state: &kiln_llb::State,
    exporters: Vec<ExporterSpec>,
    entitlements: &[&str],
) -> Result<SolveResponse, kiln_client::Error> {
    let attached = client
        .attach(session.clone(), how)
        .await
        .expect("attach the session");
    let r = tokio::time::timeout(
        Duration::from_secs(300),
        client.solve(
            SolveRequest {
                definition: Some(definition(state).into_pb().into()),
                session_id: Some(session.id().to_owned()),
                exporters,
                entitlements: entitlements.iter().map(|e| (*e).to_owned()).collect(),
                ..Default::default()
            },
            None,
        ),
    )
    .await
    .expect("the solve finishes within 300 s");
    // Received exports go into place once the build succeeded.
    if r.is_ok() {
        session
            .outputs()
            .commit()
            .await
            .expect("the outputs go into place");
    }
    attached.close().await;
    r
}

/// A free TCP port on 127.0.0.1 (free when asked; good enough for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A background process that is killed when the test ends (also on panic).
pub struct Background {
    pub child: tokio::process::Child,
    pub name: &'static str,
    pub log: PathBuf,
}

impl Background {
    /// Starts `cmd` with its output in `log`.
    pub fn spawn(name: &'static str, mut cmd: tokio::process::Command, log: &Path) -> Background {
        let out = std::fs::File::create(log).expect("log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log handle"))
            .stderr(out)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        Background {
            child,
            name,
            log: log.to_path_buf(),
        }
    }

    /// The process's output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `ready()` holds, failing if the process exits or 15 s pass.
    pub async fn wait_until(&mut self, mut ready: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if ready() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited ({status}):\n{}", self.name, self.log());
            }
            assert!(
                Instant::now() < deadline,
                "{} not ready within 15 s:\n{}",
                self.name,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until something listens on `addr`.
    pub async fn wait_for_port(&mut self, addr: &str) {
        let addr = addr.to_owned();
        self.wait_until(|| std::net::TcpStream::connect(&addr).is_ok())
            .await;
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        // Also on panic; tokio reaps the child in the background.
        let _ = self.child.start_kill();
    }
}

/// Runs a host command to completion and returns its stdout; fails the
/// test when it fails.
#[track_caller]
pub fn host(cmd: &mut std::process::Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `sh -c SCRIPT` in `dir` with the C locale.
#[track_caller]
pub fn sh_in(dir: &Path, script: &str) -> String {
    host(
        std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(dir)
            .env("LC_ALL", "C"),
    )
}

/// Whether `needle` occurs in `haystack`.
pub fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && memchr::memmem::find(haystack, needle).is_some()
}

/// Lowercase hex sha256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// Standard base64 (for a Docker config's `auth`).
pub fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `local://NAME` served by `session` only (`local.session`, as BuildKit's
/// Dockerfile frontend sets it). Without it, identical local sources of
/// concurrent builds are one shared vertex, which the daemon fills from any
/// of their sessions: another test's directory.
pub fn local_of(name: &str, session: &Session) -> kiln_llb::State {
    kiln_llb::local_with(name, kiln_llb::LocalOptions::new().session_id(session.id()))
}

/// `local://NAME` made unique (`local.unique`), for graphs solved by the CLI,
/// whose session id is not known in advance (see [`local_of`]).
pub fn unique_local(name: &str, opts: kiln_llb::LocalOptions) -> kiln_llb::State {
    kiln_llb::local_with(name, opts.unique_id(unique()))
}

/// The go fixture image with Go on PATH (Debian's golang-1.24 package),
/// HOME and the C locale.
pub fn go_env(state: kiln_llb::State) -> kiln_llb::State {
    state
        .add_env(
            "PATH",
            "/usr/lib/go-1.24/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .add_env("HOME", "/root")
        .add_env("LC_ALL", "C")
}

#[test]
fn base64_matches_the_rfc_examples() {
    assert_eq!(base64(b""), "");
    assert_eq!(base64(b"f"), "Zg==");
    assert_eq!(base64(b"fo"), "Zm8=");
    assert_eq!(base64(b"foo"), "Zm9v");
    assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    assert_eq!(base64(b"user:pass"), "dXNlcjpwYXNz");
}
