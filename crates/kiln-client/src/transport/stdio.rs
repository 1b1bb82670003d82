//! Connection helpers: a command whose stdin/stdout is the connection, as
//! BuildKit's own `connhelper` packages do (`buildctl dial-stdio` on the far side).

use std::pin::Pin;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, BufReader, ReadBuf};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::address::Address;
use crate::error::DialError;

/// How much of a helper's stderr is kept for error messages.
const STDERR_KEEP: usize = 2048;

/// How long a helper gets to exit after its stdin closes before it is
/// killed (BuildKit's commandconn waits 3 s after SIGTERM).
const HELPER_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// The program and arguments for a helper address.
pub(crate) fn helper_command(address: &Address) -> (String, Vec<String>) {
    let dial = ["buildctl", "dial-stdio"].map(String::from);
    match address {
        Address::DockerContainer { container } => {
            let mut args = vec!["exec".into(), "-i".into(), container.clone()];
            args.extend(dial);
            ("docker".into(), args)
        }
        Address::PodmanContainer { container } => {
            let mut args = vec!["exec".into(), "-i".into(), container.clone()];
            args.extend(dial);
            ("podman".into(), args)
        }
        Address::NerdctlContainer {
            container,
            namespace,
        } => {
            // --namespace is one of nerdctl's global flags: before `exec`.
            let mut args = Vec::new();
            if let Some(ns) = namespace {
                args.extend(["--namespace".into(), ns.clone()]);
            }
            args.extend(["exec".into(), "-i".into(), container.clone()]);
            args.extend(dial);
            ("nerdctl".into(), args)
        }
        Address::KubePod {
            pod,
            namespace,
            context,
            container,
        } => {
            let mut args = Vec::new();
            if let Some(c) = context {
                args.extend(["--context".into(), c.clone()]);
            }
            if let Some(n) = namespace {
                args.extend(["--namespace".into(), n.clone()]);
            }
            args.extend(["exec".into(), "-i".into(), pod.clone()]);
            if let Some(c) = container {
                args.extend(["-c".into(), c.clone()]);
            }
            args.push("--".into());
            args.extend(dial);
            ("kubectl".into(), args)
        }
        Address::Ssh { user, host, port } => {
            let mut args = Vec::new();
            if let Some(p) = port {
                args.extend(["-p".into(), p.to_string()]);
            }
            args.push(match user {
                Some(u) => format!("{u}@{host}"),
                None => host.clone(),
            });
            args.push("--".into());
            args.extend(dial);
            ("ssh".into(), args)
        }
        // Not helper addresses; callers never ask.
        other => (other.to_string(), Vec::new()),
    }
}

/// Starts the helper and returns its stdio as one stream.
pub(crate) fn spawn(
    (program, args): (String, Vec<String>),
    stderr_tail: Arc<Mutex<String>>,
) -> Result<HelperIo, DialError> {
    let mut child = Command::new(&program)
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| DialError::Spawn {
            program: program.clone(),
            source,
        })?;
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err(DialError::Spawn {
            program,
            source: std::io::Error::other("no stdio pipes"),
        });
    };
    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::debug!(target: "kiln_client::helper", "{line}");
                if let Ok(mut tail) = stderr_tail.lock() {
                    tail.push_str(&line);
                    tail.push('\n');
                    if tail.len() > STDERR_KEEP {
                        let cut = tail.len() - STDERR_KEEP;
                        let cut = (cut..tail.len())
                            .find(|i| tail.is_char_boundary(*i))
                            .unwrap_or(tail.len());
                        tail.drain(..cut);
                    }
                }
            }
        });
    }
    Ok(HelperIo {
        stdin: Some(stdin),
        stdout: Some(stdout),
        child: Some(child),
    })
}

/// A helper process's stdout (read) and stdin (write). Dropping it closes
/// the helper's stdin, reads what the helper still writes, and kills the
/// helper if it has not exited [`HELPER_GRACE`] later.
pub(crate) struct HelperIo {
    /// `None` only while dropping (as the other two).
    stdin: Option<ChildStdin>,
    stdout: Option<ChildStdout>,
    child: Option<Child>,
}

/// The threads closing helpers whose connection was dropped, for
/// [`wait_for_closing_helpers`].
static CLOSING: Mutex<Vec<std::thread::JoinHandle<()>>> = Mutex::new(Vec::new());

impl Drop for HelperIo {
    fn drop(&mut self) {
        // End of input first: `buildctl dial-stdio` exits on it once the
        // daemon closes its side, and the helper ends its session. Killed,
        // or killed by SIGPIPE writing its last bytes to a closed pipe (kiln
        // exited), `podman exec` leaves its exec session (and sometimes
        // `buildctl dial-stdio`) behind in the container: conmon keeps them.
        drop(self.stdin.take());
        let (Some(stdout), Some(child)) = (self.stdout.take(), self.child.take()) else {
            return;
        };
        let stdout = stdout.into_owned_fd().ok();
        // Threads, not tasks: connections are often dropped by the runtime's
        // own shutdown, which spawns nothing more.
        let closing = std::thread::Builder::new()
            .name("kiln-helper-close".into())
            .spawn(move || close(stdout, child));
        if let (Ok(handle), Ok(mut all)) = (closing, CLOSING.lock()) {
            all.retain(|h| !h.is_finished());
            all.push(handle);
        }
    }
}

/// Reads and drops what a helper whose input is closed still writes (so it
/// never writes to a closed pipe), waits up to [`HELPER_GRACE`] for it to
/// exit, then kills it.
fn close(stdout: Option<std::os::fd::OwnedFd>, mut child: Child) {
    if let Some(fd) = stdout {
        // Ends when the helper exits (or is killed) and its output closes.
        let _ = std::thread::Builder::new()
            .name("kiln-helper-drain".into())
            .spawn(move || {
                let _ = std::io::copy(&mut std::fs::File::from(fd), &mut std::io::sink());
            });
    }
    let poll = std::time::Duration::from_millis(20);
    let deadline = std::time::Instant::now() + HELPER_GRACE;
    while std::time::Instant::now() < deadline {
        match child.try_wait() {
            Ok(None) => std::thread::sleep(poll),
            Ok(Some(_)) | Err(_) => return,
        }
    }
    tracing::debug!(target: "kiln_client::helper", "the helper did not exit {HELPER_GRACE:?} after its input closed; killing it");
    let _ = child.start_kill();
    for _ in 0..50 {
        if !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        std::thread::sleep(poll);
    }
}

/// Waits until every connection helper (`docker exec`, `podman exec`,
/// `kubectl exec`, `ssh`, …) whose connection was dropped has exited: each
/// gets [`HELPER_GRACE`] (3 s) after its input closed, then is killed.
///
/// Call it before the process exits, after the last client is dropped
/// (after the async runtime shut down): a helper still running when the
/// process exits loses the reader of its output and may die of SIGPIPE
/// before it ends its session (`podman exec` then leaves the exec session
/// in the container).
pub fn wait_for_closing_helpers() {
    let closing = CLOSING
        .lock()
        .map(|mut all| std::mem::take(&mut *all))
        .unwrap_or_default();
    for handle in closing {
        let _ = handle.join();
    }
}

impl AsyncRead for HelperIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.stdout.as_mut() {
            Some(stdout) => Pin::new(stdout).poll_read(cx, buf),
            None => Poll::Ready(Err(closed())),
        }
    }
}

impl AsyncWrite for HelperIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.stdin.as_mut() {
            Some(stdin) => Pin::new(stdin).poll_write(cx, buf),
            None => Poll::Ready(Err(closed())),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.stdin.as_mut() {
            Some(stdin) => Pin::new(stdin).poll_flush(cx),
            None => Poll::Ready(Err(closed())),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.stdin.as_mut() {
            Some(stdin) => Pin::new(stdin).poll_shutdown(cx),
            None => Poll::Ready(Ok(())),
        }
    }
}

fn closed() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::BrokenPipe,
        "the helper's stdio is closed",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(address: &str) -> String {
        let a = Address::parse(address).expect(address);
        let (program, args) = helper_command(&a);
        std::iter::once(program)
            .chain(args)
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn helper_command_lines() {
        for (address, want) in [
            (
                "docker-container://bk0",
                "docker exec -i bk0 buildctl dial-stdio",
            ),
            (
                "podman-container://kiln-buildkitd",
                "podman exec -i kiln-buildkitd buildctl dial-stdio",
            ),
            (
                "nerdctl-container://buildkitd",
                "nerdctl exec -i buildkitd buildctl dial-stdio",
            ),
            (
                "nerdctl-container://buildkitd?namespace=k8s.io",
                "nerdctl --namespace k8s.io exec -i buildkitd buildctl dial-stdio",
            ),
            (
                "kube-pod://bk-0?namespace=ci&container=bk",
                "kubectl --namespace ci exec -i bk-0 -c bk -- buildctl dial-stdio",
            ),
            (
                "ssh://me@host:2222",
                "ssh -p 2222 me@host -- buildctl dial-stdio",
            ),
        ] {
            assert_eq!(line(address), want, "{address}");
        }
    }
}
