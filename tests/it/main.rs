//! kiln's integration tests, one binary (see uv's `tests/it`). They run
//! against the real daemon and registry that `scripts/harness.sh up`
//! starts; without them every test here fails and says how to start them.

mod cache;
mod cli;
mod common;
mod digests;
mod errors;
mod gateway;
mod go_version;
mod progress;
mod registry;
mod solve;
mod transport;
