//! What loading an image into another image store (podman, containerd)
//! reports back.

use crate::digest::Digest;
use crate::platform::Platform;

/// An image loaded into a store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loaded {
    /// The name the store now gives it (as the store spells it).
    pub name: String,
    /// The digest the name points at: the index (manifest list) for a
    /// multi-platform image, else the image manifest.
    pub digest: Digest,
    /// Every platform the store now holds under the name.
    pub platforms: Vec<Platform>,
}

#[cfg(any(feature = "podman", feature = "containerd"))]
pub use undo::settle;
#[cfg(any(feature = "podman", feature = "containerd"))]
pub(crate) use undo::{undoable, Cancelled};

/// Loads that undo themselves when their caller stops waiting (Ctrl-C
/// drops the build's future): the load runs on a task of its own, learns
/// that it was abandoned, undoes what it did, and [`settle`] lets the
/// program wait for that before it exits.
#[cfg(any(feature = "podman", feature = "containerd"))]
mod undo {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::LazyLock;
    use std::task::{Context, Poll};
    use std::time::Duration;

    use tokio::sync::{oneshot, watch};

    /// How many loads are running or undoing themselves.
    static ACTIVE: LazyLock<watch::Sender<usize>> = LazyLock::new(|| watch::channel(0).0);

    /// Resolves when the caller of [`undoable`] stopped waiting for it.
    pub(crate) struct Cancelled(oneshot::Receiver<()>);

    impl Cancelled {
        /// Whether the caller has stopped waiting, without waiting.
        pub(crate) fn now(&mut self) -> bool {
            !matches!(self.0.try_recv(), Err(oneshot::error::TryRecvError::Empty))
        }
    }

    impl Future for Cancelled {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            // The sender never sends: it is dropped with the caller.
            Pin::new(&mut self.0).poll(cx).map(drop)
        }
    }

    /// Counts a running load until dropped.
    struct Active;

    impl Active {
        fn start() -> Active {
            ACTIVE.send_modify(|n| *n += 1);
            Active
        }
    }

    impl Drop for Active {
        fn drop(&mut self) {
            ACTIVE.send_modify(|n| *n = n.saturating_sub(1));
        }
    }

    /// Runs `work` on a task of its own and returns its result. If the
    /// returned future is dropped first, `work`'s [`Cancelled`] resolves
    /// and `work` goes on (to undo what it did) until it ends; [`settle`]
    /// waits for it. `aborted` makes the result when the runtime stops
    /// the task (it shuts down) before it ends.
    pub(crate) async fn undoable<T, F, Fut>(work: F, aborted: impl FnOnce(String) -> T) -> T
    where
        F: FnOnce(Cancelled) -> Fut,
        Fut: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let (caller, rx) = oneshot::channel::<()>();
        let active = Active::start();
        let fut = work(Cancelled(rx));
        let task = tokio::spawn(async move {
            let _active = active;
            fut.await
        });
        let r = task.await;
        drop(caller);
        match r {
            Ok(v) => v,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => aborted(e.to_string()),
        }
    }

    /// Waits up to `timeout` for abandoned loads to finish undoing
    /// themselves; `false` if some were still at it (what they had added
    /// may then be left in the store).
    pub async fn settle(timeout: Duration) -> bool {
        let mut rx = ACTIVE.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|n| *n == 0))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;

        /// One test: the count of running loads is the process's, so the
        /// cases run in turn (and other tests' loads, all short, may be
        /// counted too: `settle` is only asked to succeed with seconds).
        #[tokio::test]
        async fn abandoned_loads_undo_themselves_and_settle_waits_for_them() {
            // A load that ends gives its result and was never cancelled.
            let r = undoable(
                |cancelled| async move {
                    tokio::select! {
                        biased;
                        () = cancelled => 0,
                        () = tokio::time::sleep(Duration::from_millis(10)) => 7,
                    }
                },
                |_| 3,
            )
            .await;
            assert_eq!(r, 7);

            // An abandoned one learns it, and settle waits for its undo.
            let undone = Arc::new(AtomicBool::new(false));
            let seen = undone.clone();
            let load = undoable(
                move |cancelled| async move {
                    tokio::select! {
                        () = std::future::pending::<()>() => 1,
                        () = cancelled => {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            seen.store(true, Ordering::SeqCst);
                            2
                        }
                    }
                },
                |_| 3,
            );
            // Dropped after 50 ms, like a build's future on Ctrl-C.
            assert!(tokio::time::timeout(Duration::from_millis(50), load)
                .await
                .is_err());
            assert!(!undone.load(Ordering::SeqCst), "still undoing");
            assert!(settle(Duration::from_secs(5)).await);
            assert!(undone.load(Ordering::SeqCst), "settle waited for the undo");

            // Settle gives up after its timeout.
            let load = undoable(
                |cancelled| async move {
                    cancelled.await;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                },
                |_| (),
            );
            let _ = tokio::time::timeout(Duration::from_millis(10), load).await;
            assert!(!settle(Duration::from_millis(100)).await);
            assert!(settle(Duration::from_secs(10)).await);
        }
    }
}
