//! Test support for kiln's integration tests: where the harness's daemon and
//! registry are, and an in-process relay that makes the Docker Engine's
//! embedded BuildKit look like a standalone buildkitd on unix, TCP and
//! mutual-TLS TCP endpoints.
//!
//! The harness (`scripts/harness.sh up`) starts dockerd and the registry and
//! writes their addresses to `$KILN_HARNESS_DIR/env`; tests read them from
//! the environment, or from that file when run by hand.

#![allow(clippy::unwrap_used)] // test support: a failure here is a test failure

pub mod env;
pub mod relay;
pub mod tls;

pub use env::{harness, Harness};
pub use relay::{Relay, RelayOptions};
