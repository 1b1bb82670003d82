#![allow(clippy::unwrap_used)] // tests fail loudly by design
//! kiln's integration tests, one binary (see uv's `tests/it`). They run
//! against the real daemon and registry that `scripts/harness.sh up`
//! starts; without them every test here fails and says how to start them.

mod build;
mod cache;
mod cache_export;
mod cancel;
mod cli;
mod common;
mod containerd;
mod errors;
mod examples;
mod exclusive;
mod gateway;
mod go_version;
mod hostile;
mod imagetools;
mod llb_digests;
mod llb_exec;
mod llb_files;
mod llb_go_fixtures;
mod llb_interop;
mod llb_mounts;
mod llb_oci_layout;
mod llb_sources;
mod llb_util;
mod metadata;
mod new_user;
mod podman;
mod podman_container;
mod progress;
mod proxy;
mod registry;
mod secrets_sweep;
mod session_auth;
mod session_common;
mod session_context;
mod session_export;
mod session_fidelity;
mod session_secrets;
mod session_ssh;
mod solve;
mod stores;
mod tarballs;
mod transport;
