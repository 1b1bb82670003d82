//! Test support for kiln's integration tests: where the harness's daemons and
//! registry are, which daemon of the matrix this run targets ([`daemon()`]),
//! and an in-process relay that puts any of them behind unix, TCP and
//! mutual-TLS TCP endpoints; and a fake, hostile daemon ([`fake_daemon`])
//! for what no real daemon would send.
//!
//! The harness (`scripts/harness.sh up`) starts dockerd and the registry and
//! writes their addresses to `$KILN_HARNESS_DIR/env`; tests read them from
//! the environment, or from that file when run by hand.

#![allow(clippy::unwrap_used)] // test support: a failure here is a test failure

pub mod daemon;
pub mod env;
pub mod fake_daemon;
pub mod relay;
pub mod tls;

pub use daemon::{daemon, ClientTls, Daemon, DaemonKind, Need};
pub use env::{harness, Harness};
pub use relay::{Relay, RelayOptions, Upstream};
