//! Running a solve from the CLI: progress, Ctrl-C, the failure report.

use std::future::Future;

use kiln_client::progress::StatusEvent;
use tokio::sync::mpsc;

use super::report::{self, Reported};
use crate::progress::{self, Mode, State};

/// Exit code for a build cancelled by SIGINT/SIGTERM.
pub const CANCELLED: u8 = 130;

/// What the solve future gets: a sender for its progress events.
pub type Events = mpsc::UnboundedSender<StatusEvent>;

/// Exec commands by op digest, filled in as the graph is planned.
pub type Commands = kiln_build::build::ExecCommands;

/// Why the work under the progress display failed.
#[derive(Debug)]
pub enum StepError {
    /// The daemon failed a call or the build: reported with the step.
    Daemon(kiln_client::Error),
    /// kiln-build's error: reported with the step when the daemon's.
    Build(kiln_build::BuildError),
    /// Anything else (bad input found while planning): printed as an error.
    Other(anyhow::Error),
}

impl From<kiln_build::BuildError> for StepError {
    fn from(e: kiln_build::BuildError) -> Self {
        StepError::Build(e)
    }
}

impl From<kiln_client::Error> for StepError {
    fn from(e: kiln_client::Error) -> Self {
        StepError::Daemon(e)
    }
}

impl From<anyhow::Error> for StepError {
    fn from(e: anyhow::Error) -> Self {
        StepError::Other(e)
    }
}

/// Runs `solve` while drawing its progress; Ctrl-C or SIGTERM cancels it
/// (dropping the future cancels the build on the daemon and removes partial
/// outputs), prints `cancelled` and returns exit 130; a second signal exits
/// at once.
pub async fn with_progress<T, F, E>(
    mode: Mode,
    commands: Commands,
    debug: bool,
    solve: impl FnOnce(Events) -> F,
) -> anyhow::Result<(T, State)>
where
    F: Future<Output = Result<T, E>>,
    E: Into<StepError>,
{
    let (tx, rx) = mpsc::unbounded_channel();
    let drawer = tokio::spawn(progress::drive(rx, mode));
    // Boxed so that dropping it (on a signal) really cancels the solve now.
    let mut fut = Box::pin(solve(tx));
    let outcome = tokio::select! {
        r = &mut fut => Some(r),
        _ = shutdown_signal() => None,
    };
    let Some(result) = outcome else {
        // Dropping the solve future cancels the Solve RPC and the session.
        let running = kiln_client::in_flight();
        drop(fut);
        tokio::spawn(async {
            shutdown_signal().await;
            std::process::exit(i32::from(CANCELLED));
        });
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), drawer).await;
        // Exports being received stop, and what they wrote goes.
        let _ =
            tokio::task::spawn_blocking(kiln_client::kiln_session::filesend::abandon_exports).await;
        kiln_build::outputs::abandon_temporary_files();
        // A load into podman or containerd that was under way undoes itself.
        if !kiln_build::outputs::settle_loads(SETTLE_LOADS).await {
            eprintln!(
                "warning: a load into podman or containerd was still undoing itself after {}s; what it added may be left (podman: images named localhost/kiln-load-*)",
                SETTLE_LOADS.as_secs()
            );
        }
        eprintln!("cancelled");
        confirm_cancelled(running).await;
        return Err(Reported { code: CANCELLED }.into());
    };
    let state = drawer.await.unwrap_or_default();
    match result.map_err(Into::into) {
        Ok(v) => Ok((v, state)),
        Err(StepError::Daemon(e)) => {
            let commands = commands.lock().map(|c| c.clone()).unwrap_or_default();
            report::solve_failed(&state, &commands, &e, None, debug);
            Err(Reported { code: 1 }.into())
        }
        Err(StepError::Build(e)) => {
            let note = || {
                for w in e.written() {
                    eprintln!("note: the build failed, but it had already written {w}");
                }
            };
            // Planning errors wrap the daemon's in context; a failed step
            // is the daemon's own.
            if let Some(d) = e.failed_step() {
                let commands = commands.lock().map(|c| c.clone()).unwrap_or_default();
                report::solve_failed(&state, &commands, d, e.hint(), debug);
                if let Some((platforms, address)) = e.endpoint() {
                    eprintln!("error: it failed on the builder for {platforms} ({address})");
                }
                note();
                return Err(Reported { code: 1 }.into());
            }
            note();
            Err(e.into())
        }
        Err(StepError::Other(e)) => Err(e),
    }
}

/// How long kiln waits, after a cancel, for a load into podman or
/// containerd to undo itself.
const SETTLE_LOADS: std::time::Duration = std::time::Duration::from_secs(15);

/// How long kiln waits, after a cancel, for each daemon to record that
/// its build ended.
const CONFIRM_CANCEL: std::time::Duration = std::time::Duration::from_secs(5);

/// Asks each daemon whether the builds just cancelled really ended (their
/// history records them completed), one line per build; a build still
/// running after [`CONFIRM_CANCEL`] is a warning naming it.
async fn confirm_cancelled(running: Vec<kiln_client::InFlight>) {
    // One deadline for all: the builds end on their daemons in parallel.
    let deadline = tokio::time::Instant::now() + CONFIRM_CANCEL;
    for b in running {
        let address = b.client.address().to_string();
        let line = loop {
            let asked =
                tokio::time::timeout_at(deadline, b.client.build_record(&b.build_ref)).await;
            match asked {
                Ok(Ok(Some(r))) if !r.running => {
                    break format!("the daemon at {address} ended build {}", b.build_ref);
                }
                Ok(Ok(None)) => {
                    break format!(
                        "build {} had not started on the daemon at {address}",
                        b.build_ref
                    );
                }
                Ok(Err(e)) => {
                    break format!(
                        "warning: could not ask the daemon at {address} whether build {} ended: {e}",
                        b.build_ref
                    );
                }
                Ok(Ok(Some(_))) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Ok(Ok(Some(_))) | Err(_) => {
                    break format!(
                        "warning: the daemon at {address} still lists build {} as running {}s after it was cancelled; it may go on using the daemon until BuildKit notices",
                        b.build_ref,
                        CONFIRM_CANCEL.as_secs()
                    );
                }
            }
        };
        eprintln!("{line}");
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
