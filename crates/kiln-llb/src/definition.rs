//! [`Definition`]: a marshaled graph, as sent in a `SolveRequest`, read by
//! `buildctl build` on stdin and written by Go's `llb.WriteTo`.

use kiln_image::Digest;
use kiln_proto::wire::{DefinitionBytes, GoEncode};
use kiln_proto::{pb, prost::Message};

use crate::error::LlbError;

/// A marshaled LLB graph: the encoded ops (inputs first, the terminal op
/// last), per-op metadata and source maps. Wraps `pb.Definition`.
///
/// ```
/// use kiln_llb::{Constraints, Definition, Platform};
/// let def = kiln_llb::image("alpine")?.marshal(&Constraints::new(Platform::linux_amd64()))?;
/// let bytes = def.to_bytes(); // what `buildctl build` reads on stdin
/// let back = Definition::from_bytes(&bytes)?;
/// assert_eq!(back, def);
/// let (head, index) = back.head()?.expect("not empty");
/// assert_eq!(index, 0);
/// assert_eq!(back.ops()?[0].digest, head);
/// # Ok::<(), kiln_llb::LlbError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Definition {
    pb: pb::Definition,
}

/// One decoded op of a definition.
#[derive(Clone, Debug, PartialEq)]
pub struct DecodedOp {
    /// `sha256:` of the op's bytes: its identity in the graph.
    pub digest: Digest,
    pub op: pb::Op,
    pub metadata: Option<pb::OpMetadata>,
}

impl Definition {
    /// Wraps a wire definition.
    pub fn from_pb(pb: pb::Definition) -> Self {
        Definition { pb }
    }

    /// The wire definition.
    pub fn as_pb(&self) -> &pb::Definition {
        &self.pb
    }

    /// The wire definition, by value (for a `SolveRequest`).
    pub fn into_pb(self) -> pb::Definition {
        self.pb
    }

    /// The protobuf encoding of `pb.Definition` as Go's `llb.WriteTo`
    /// writes it, with map entries sorted as Go's deterministic marshaling
    /// sorts them (and, as in Go, written whole: see [`kiln_proto::wire`]).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.pb.to_go_bytes()
    }

    /// Decodes the protobuf encoding of `pb.Definition` (Go's `llb.ReadFrom`).
    ///
    /// # Errors
    /// [`LlbError::Decode`] when `bytes` is not a `pb.Definition`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, LlbError> {
        pb::Definition::decode(bytes)
            .map(Definition::from_pb)
            .map_err(|source| LlbError::Decode {
                what: "pb.Definition",
                source,
            })
    }

    /// Number of ops, the terminal op included.
    pub fn len(&self) -> usize {
        self.pb.def.len()
    }

    /// Whether there are no ops (the definition of scratch).
    pub fn is_empty(&self) -> bool {
        self.pb.def.is_empty()
    }

    /// The digests of the ops, in order.
    pub fn digests(&self) -> Vec<Digest> {
        self.pb.def.iter().map(|b| Digest::sha256_of(b)).collect()
    }

    /// The result: the digest and output index the terminal op points at
    /// (Go's `Definition.Head`); `None` for an empty definition.
    ///
    /// # Errors
    /// [`LlbError::Decode`] if the last op does not decode,
    /// [`LlbError::MalformedDefinition`] if it has no input,
    /// [`LlbError::Digest`] if the input digest is invalid.
    pub fn head(&self) -> Result<Option<(Digest, i64)>, LlbError> {
        let Some(last) = self.pb.def.last() else {
            return Ok(None);
        };
        let op = decode_op(last)?;
        let input = op
            .inputs
            .first()
            .ok_or_else(|| LlbError::MalformedDefinition {
                reason: "the terminal op has no input".to_string(),
            })?;
        let digest = Digest::parse(&input.digest).map_err(|source| LlbError::Digest {
            input: input.digest.clone(),
            source,
        })?;
        Ok(Some((digest, input.index)))
    }

    /// Every op decoded, with its digest and metadata, in order.
    ///
    /// # Errors
    /// [`LlbError::Decode`] for an op that is not a `pb.Op`.
    pub fn ops(&self) -> Result<Vec<DecodedOp>, LlbError> {
        self.pb
            .def
            .iter()
            .map(|bytes| {
                let op = decode_op(bytes)?;
                let digest = Digest::sha256_of(bytes);
                let metadata = self.pb.metadata.get(digest.as_str()).cloned();
                Ok(DecodedOp {
                    digest,
                    op,
                    metadata,
                })
            })
            .collect()
    }

    /// The metadata of the op with `digest`.
    pub fn metadata(&self, digest: &Digest) -> Option<&pb::OpMetadata> {
        self.pb.metadata.get(digest.as_str())
    }
}

impl Definition {
    /// The exec steps' commands, by op digest and by the name the daemon
    /// shows for the step (the custom name, else the arguments joined, as
    /// BuildKit's `llbOpName` does): what a failure report prints. kiln's
    /// own ops come back from the daemon under their digest; a definition
    /// another tool wrote in tag order is re-marshaled by the daemon and
    /// comes back under another digest, so the name is the fallback.
    #[must_use]
    pub fn exec_commands(&self) -> std::collections::HashMap<String, Vec<String>> {
        let mut out = std::collections::HashMap::new();
        // A definition that does not decode has no commands to show.
        for op in self.ops().unwrap_or_default() {
            let Some(pb::op::Op::Exec(exec)) = op.op.op else {
                continue;
            };
            let Some(meta) = exec.meta else {
                continue;
            };
            let name = op
                .metadata
                .as_ref()
                .and_then(|m| {
                    m.description
                        .get(kiln_proto::attrs::description::CUSTOM_NAME)
                })
                .cloned()
                .unwrap_or_else(|| meta.args.join(" "));
            out.insert(name, meta.args.clone());
            out.insert(op.digest.to_string(), meta.args);
        }
        out
    }
}

impl From<Definition> for pb::Definition {
    fn from(d: Definition) -> Self {
        d.pb
    }
}

/// For a solve request: the definition is encoded the Go way when sent.
impl From<Definition> for DefinitionBytes {
    fn from(d: Definition) -> Self {
        DefinitionBytes::Decoded(d.pb)
    }
}

pub(crate) fn decode_op(bytes: &[u8]) -> Result<pb::Op, LlbError> {
    pb::Op::decode(bytes).map_err(|source| LlbError::Decode {
        what: "pb.Op",
        source,
    })
}
