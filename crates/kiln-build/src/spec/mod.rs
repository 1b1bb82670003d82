//! The user's specs (`-o`, `--secret`, `--ssh`, …) parsed once into typed
//! values, with buildx's CSV syntax.

mod attest;
mod cache;
pub mod csv;
mod output;
mod secret;

pub use attest::{AttestFlags, Attestations, Provenance};
pub use cache::{CacheKind, CacheSpec};
pub use output::{Dest, OutputSpec};
pub use secret::{parse_secret, parse_ssh};

/// A spec that cannot be used: the flag, the value, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{flag} {value:?}: {reason}")]
pub struct SpecError {
    pub flag: &'static str,
    pub value: String,
    pub reason: String,
}

impl SpecError {
    pub(crate) fn new(flag: &'static str, value: &str, reason: impl Into<String>) -> SpecError {
        SpecError {
            flag,
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}
