//! The solves this process has running, so that a caller cancelling
//! everything (Ctrl-C) can name them and ask their daemons whether they
//! really ended.
//!
//! [`Client::solve`] registers its build here for as long as its future
//! lives (gateway builds solve through it too); [`in_flight`] lists them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::client::Client;

/// A solve in flight: the daemon it runs on and its build id.
#[derive(Clone, Debug)]
pub struct InFlight {
    /// A client of the daemon running it (shares the build's connection).
    pub client: Client,
    /// The Solve request's ref: the build's id in the daemon's history.
    pub build_ref: String,
}

static RUNNING: Mutex<Vec<(u64, InFlight)>> = Mutex::new(Vec::new());
static NEXT: AtomicU64 = AtomicU64::new(0);

/// The solves running now, oldest first.
#[must_use]
pub fn in_flight() -> Vec<InFlight> {
    RUNNING
        .lock()
        .map(|r| r.iter().map(|(_, f)| f.clone()).collect())
        .unwrap_or_default()
}

/// Registered while alive.
pub(crate) struct Registered(u64);

impl Registered {
    pub(crate) fn new(client: &Client, build_ref: &str) -> Registered {
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut r) = RUNNING.lock() {
            r.push((
                id,
                InFlight {
                    client: client.clone(),
                    build_ref: build_ref.to_string(),
                },
            ));
        }
        Registered(id)
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        if let Ok(mut r) = RUNNING.lock() {
            r.retain(|(id, _)| *id != self.0);
        }
    }
}
