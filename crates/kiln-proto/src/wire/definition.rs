//! A definition on its way to the daemon: decoded and encoded the Go way,
//! or bytes forwarded untouched.

use bytes::Bytes;

use super::enc::{len_delimited, message};
use super::GoEncode;
use crate::pb;

/// The `definition` of a solve request.
///
/// ```
/// use kiln_proto::wire::{DefinitionBytes, GoEncode, WithDefinition};
/// use kiln_proto::control;
/// // Bytes Go's llb.WriteTo wrote, sent as they are.
/// let raw = DefinitionBytes::Raw(vec![0x0a, 0x00].into());
/// let req = WithDefinition::new(control::SolveRequest::default(), Some(raw));
/// assert_eq!(req.to_go_bytes(), [0x12, 0x02, 0x0a, 0x00]);
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum DefinitionBytes {
    /// A serialized `pb.Definition` (what Go's `llb.WriteTo` writes and
    /// `buildctl build` reads), sent exactly as given: re-encoding would
    /// drop what the generated types do not know and could change bytes
    /// the daemon relies on.
    Raw(Bytes),
    /// A definition, encoded as Go encodes it when sent.
    Decoded(pb::Definition),
}

impl DefinitionBytes {
    /// The bytes that are sent: the raw bytes, or the Go encoding.
    #[must_use]
    pub fn to_bytes(&self) -> Bytes {
        match self {
            DefinitionBytes::Raw(raw) => raw.clone(),
            DefinitionBytes::Decoded(def) => Bytes::from(def.to_go_bytes()),
        }
    }
}

impl From<pb::Definition> for DefinitionBytes {
    fn from(def: pb::Definition) -> Self {
        DefinitionBytes::Decoded(def)
    }
}

impl From<Bytes> for DefinitionBytes {
    fn from(raw: Bytes) -> Self {
        DefinitionBytes::Raw(raw)
    }
}

impl From<Vec<u8>> for DefinitionBytes {
    fn from(raw: Vec<u8>) -> Self {
        DefinitionBytes::Raw(Bytes::from(raw))
    }
}

impl GoEncode for DefinitionBytes {
    fn encode_go(&self, buf: &mut Vec<u8>) {
        match self {
            DefinitionBytes::Raw(raw) => buf.extend_from_slice(raw),
            DefinitionBytes::Decoded(def) => def.encode_go(buf),
        }
    }
}

/// A solve request (`control.SolveRequest` for `Control.Solve`, the
/// gateway's `SolveRequest` for `LLBBridge.Solve`) whose definition is a
/// [`DefinitionBytes`], so that raw bytes reach the daemon untouched inside
/// an otherwise Go-encoded request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WithDefinition<M> {
    /// The request.
    pub request: M,
    /// When set, sent as the request's `definition` field in place of
    /// `request.definition`.
    pub definition: Option<DefinitionBytes>,
}

impl<M> WithDefinition<M> {
    /// `request` with `definition` in place of its own.
    pub fn new(request: M, definition: Option<DefinitionBytes>) -> Self {
        WithDefinition {
            request,
            definition,
        }
    }
}

impl<M> From<M> for WithDefinition<M> {
    fn from(request: M) -> Self {
        WithDefinition::new(request, None)
    }
}

/// The `definition` field of a solve request: `given` if set, else the
/// request's `own`.
pub(super) fn definition_field(
    tag: u32,
    given: Option<&DefinitionBytes>,
    own: Option<&pb::Definition>,
    buf: &mut Vec<u8>,
) {
    match (given, own) {
        (Some(DefinitionBytes::Raw(raw)), _) => len_delimited(tag, raw, buf),
        (Some(DefinitionBytes::Decoded(def)), _) | (None, Some(def)) => message(tag, def, buf),
        (None, None) => {}
    }
}
