//! BuildKit's wire types, as kiln uses them.
//!
//! The generated tonic/prost code for BuildKit v0.29's protos comes from the
//! [`bollard_buildkit_proto`] crate and is re-exported here unchanged, so every
//! kiln crate names the same types. What that crate lacks lives beside it:
//! the string constants of the protocol (session headers, gRPC method paths,
//! capability ids, attribute keys), each kind in its own module, so nothing in
//! kiln spells a wire string twice; and [`wire`], which encodes what kiln
//! sends byte for byte as Go's protobuf does (prost's bytes differ for maps
//! and misplaced oneofs), with the tonic codec that sends it.
//!
//! ```
//! use kiln_proto::{control, methods};
//! let req = control::InfoRequest {};
//! assert_eq!(methods::CONTROL_SOLVE, "/moby.buildkit.v1.Control/Solve");
//! # let _ = req;
//! ```

pub use bollard_buildkit_proto::{fsutil, google, health, moby, pb, provenance};
pub use prost;

/// `moby.buildkit.v1`: the Control service and its messages.
pub use bollard_buildkit_proto::moby::buildkit::v1 as control;
/// `moby.buildkit.v1.frontend`: the gateway (LLBBridge) service.
pub use bollard_buildkit_proto::moby::buildkit::v1::frontend as gateway;

pub mod attrs;
pub mod caps;
pub mod content;
pub mod headers;
pub mod methods;
pub mod wire;

/// The largest gRPC message BuildKit sends (status batches, definitions):
/// tonic's default of 4 MiB is too small.
pub const MAX_MESSAGE_SIZE: usize = 64 * 1024 * 1024;
