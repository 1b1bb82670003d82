//! kiln's build as a library: a Go module and options in; a plan per
//! platform (images resolved to digests, the LLB, the lock entries); the
//! build solved on one or several BuildKit daemons, with progress events;
//! the image exported where the user asked. The `kiln` CLI only parses
//! arguments into these types and renders what comes back.

pub mod config;
pub mod error;
pub mod lock;
pub mod spec;

pub use config::KilnToml;
pub use error::BuildError;
pub use lock::{Lock, LockedImage};
