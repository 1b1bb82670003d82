//! Errors of building and marshaling LLB graphs.
//!
//! Builders never fail on structure: a state that cannot be marshaled (an
//! exec without arguments, a mount on a relative path, a copy without a
//! source path, the output of a tmpfs mount, …) carries the problem until
//! [`State::marshal`](crate::State::marshal) reports it as one of these
//! typed errors, naming the op and the field involved. Nothing in this crate
//! panics on user input.
//!
//! Cycles cannot be built: states are immutable and an op can only refer to
//! states that existed before it, so the graph is acyclic by construction.

use std::fmt;

use kiln_image::{DigestError, ReferenceError};
use thiserror::Error;

/// The kind of op an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpKind {
    Source,
    Exec,
    File,
    Merge,
    Diff,
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OpKind::Source => "source op",
            OpKind::Exec => "exec op",
            OpKind::File => "file op",
            OpKind::Merge => "merge op",
            OpKind::Diff => "diff op",
        })
    }
}

/// An error of this crate.
#[derive(Debug, Clone, Error)]
#[non_exhaustive]
pub enum LlbError {
    /// A string that must not be empty was empty (exec args, a source name,
    /// a file action path, a secret id, …).
    #[error("{op}: {field} must not be empty")]
    EmptyField { op: OpKind, field: &'static str },

    /// A path that must be absolute was not (mount targets).
    #[error("{op}: {field} {path:?} must be an absolute path")]
    NotAbsolute {
        op: OpKind,
        field: &'static str,
        path: String,
    },

    /// Two mounts of one exec share a target.
    #[error("exec op: more than one mount targets {target:?}")]
    DuplicateMount { target: String },

    /// [`ExecState::get_mount`](crate::ExecState::get_mount) named a target
    /// that is not mounted.
    #[error("exec op: no mount targets {target:?}")]
    NoSuchMount { target: String },

    /// The state of a mount that produces no output (tmpfs, cache,
    /// `no_output`) was used as an input.
    #[error("exec op: the {kind} mount at {target:?} has no output and cannot be used as a state")]
    MountHasNoOutput { target: String, kind: &'static str },

    /// An image reference that does not parse.
    #[error("invalid image reference {input:?}")]
    ImageRef {
        input: String,
        #[source]
        source: ReferenceError,
    },

    /// A digest that does not parse (in a decoded definition).
    #[error("invalid digest {input:?}")]
    Digest {
        input: String,
        #[source]
        source: DigestError,
    },

    /// Bytes that are not a protobuf `pb.Definition` or `pb.Op`.
    #[error("cannot decode {what}")]
    Decode {
        what: &'static str,
        #[source]
        source: prost::DecodeError,
    },

    /// An image config given to `State::with_image_config` that is not
    /// OCI image-config JSON.
    #[error("invalid image config: {reason}")]
    InvalidImageConfig { reason: String },

    /// A decoded definition that breaks LLB's structure (e.g. a terminal op
    /// without input).
    #[error("malformed definition: {reason}")]
    MalformedDefinition { reason: String },
}

impl LlbError {
    pub(crate) fn empty(op: OpKind, field: &'static str) -> Self {
        LlbError::EmptyField { op, field }
    }
}
