//! Noticing a daemon that stopped answering: a stopped process or a dead
//! network path leaves a build waiting forever on streams that never end.
//! BuildKit health-checks every session every 5 seconds (Docker's embedded
//! BuildKit too), so a session that hears nothing for a while means the
//! daemon is gone, whatever the transport; the build is then cancelled with
//! [`BuildError::Stalled`] naming the address.

use std::future::Future;
use std::time::Duration;

use kiln_client::kiln_session::Liveness;

use crate::error::BuildError;

/// How long a build waits without a sign of life (six missed checks).
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `work`, or fails with [`BuildError::Stalled`] once `liveness` has
/// been silent for `limit` (dropping `work`, which cancels the build). A
/// zero `limit` waits forever.
///
/// # Errors
/// `work`'s own, or [`BuildError::Stalled`].
pub async fn watched<T>(
    work: impl Future<Output = Result<T, BuildError>>,
    liveness: &Liveness,
    limit: Duration,
    address: &str,
) -> Result<T, BuildError> {
    if limit.is_zero() {
        return work.await;
    }
    liveness.beat();
    tokio::select! {
        r = work => r,
        silent = liveness.silence(limit) => Err(BuildError::Stalled {
            address: address.to_string(),
            silent,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn silence_cancels_and_names_the_address() {
        let live = Liveness::default();
        let r: Result<(), _> = watched(
            std::future::pending(),
            &live,
            Duration::from_secs(30),
            "tcp://10.0.0.1:1234",
        )
        .await;
        match r {
            Err(e @ BuildError::Stalled { .. }) => {
                let text = e.to_string();
                assert!(text.contains("tcp://10.0.0.1:1234"), "{text}");
                assert!(text.contains("30s"), "{text}");
            }
            other => panic!("not a stall: {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn checks_keep_a_long_build_alive() {
        let live = Liveness::default();
        let beating = live.clone();
        let work = async move {
            // A 2-minute build; the daemon checks every 5 s.
            for _ in 0..24 {
                tokio::time::sleep(Duration::from_secs(5)).await;
                beating.beat();
            }
            Ok::<_, BuildError>(42)
        };
        let r = watched(work, &live, Duration::from_secs(30), "unix:///x").await;
        assert_eq!(r.unwrap(), 42);
    }

    #[tokio::test(start_paused = true)]
    async fn zero_waits_forever() {
        let live = Liveness::default();
        let work = async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok::<_, BuildError>(())
        };
        watched(work, &live, Duration::ZERO, "unix:///x")
            .await
            .unwrap();
    }
}
