//! Encoding BuildKit messages byte for byte as Go encodes them.
//!
//! An op's identity is the sha256 of its bytes, and the daemon does not take
//! the client's bytes on trust: when it loads a Definition it marshals every
//! op again with Go's protobuf and uses *that* digest for the solver graph,
//! the cache and every vertex of the Status stream. A client whose bytes
//! differ from Go's sees its ops come back under digests it never sent.
//! Beyond ops, the daemon decodes whatever kiln sends with vtprotobuf, and
//! some of its code trusts that what arrives is what a Go client writes.
//!
//! Go's protobuf (protobuf-go with `Deterministic`, and vtprotobuf) differs
//! from prost in three ways, and this module follows Go:
//!
//! 1. **Oneofs last.** Go writes the fields of a `oneof` *after* all regular
//!    fields; prost writes every field in tag order. That differs where a
//!    oneof has lower tags than a regular field: `pb.Op` (`op`, tags 2–7,
//!    before `platform` 10 and `constraints` 11) and the gateway's `Result`
//!    (`result`, tags 1–4, before `metadata` 10 and `attestations` 12). The
//!    other oneofs kiln sends (`FileAction.action`, `UserOpt.user`) already
//!    come last.
//! 2. **Map entries are whole.** Go writes a map entry's key (1) *and* value
//!    (2) even when they are empty: an attr `""` is `12 00`, an empty
//!    `Locations` message is `12 00`, a `false` cap is `10 00`. prost leaves
//!    out a key or value equal to its default, and vtprotobuf then decodes a
//!    missing message value as a nil pointer: buildkitd v0.29 panics on one
//!    in `Source.locations` when a step fails.
//! 3. **Maps sorted by key** (Go's deterministic marshaling). The generated
//!    control and gateway types hold `HashMap`s; kiln sorts them.
//!
//! [`GoEncode`] is implemented by hand for every message kiln sends that
//! holds, at any depth, a map or a oneof that is not last: `pb.Op`,
//! `SourceOp`, `BuildOp`, `Definition`, `OpMetadata`, `Source`, `SourceInfo`;
//! `control.SolveRequest`, `CacheOptions`, `CacheOptionsEntry`, `Exporter`,
//! `sourcepolicy.Policy`, `Rule`, `Update`; the gateway's `SolveRequest`,
//! `CacheOptionsEntry`, `ReturnRequest`, `Result`, `RefMapDeprecated`, `Ref`,
//! `RefMap`, `Attestations`, `Attestation` and `ResolveImageConfigRequest`.
//! Every other message inside them (`ExecOp`, `FileOp`, `Platform`,
//! `Locations`, `google.rpc.Status`, …) has neither, and for such a message
//! prost's bytes are Go's: both write fields in field-number order and skip
//! the same proto3 defaults. Those are delegated to prost. The crate's test
//! `tests/proto_rules.rs` derives this split from BuildKit's `.proto` files,
//! and `tests/go_fixtures.rs` compares with definitions Go wrote.
//!
//! The hand-written encoders destructure each message completely, so a field
//! added to the generated types is a compile error here, not a silent drop.
//!
//! To send, [`GoCodec`] is a tonic codec that encodes requests with
//! [`GoEncode`] and decodes replies with prost. A solve request travels as a
//! [`WithDefinition`], whose [`DefinitionBytes::Raw`] puts a definition
//! someone else wrote (Go's `llb.WriteTo`, `buildctl`'s input) into the
//! request unchanged.
//!
//! ```
//! use std::collections::BTreeMap;
//! use kiln_proto::{pb, wire::GoEncode};
//! let source = pb::Source {
//!     locations: BTreeMap::from([("sha256:ab".to_string(), pb::Locations::default())]),
//!     infos: vec![],
//! };
//! // The entry: key "sha256:ab", then the empty value Go writes and prost drops.
//! assert_eq!(source.to_go_bytes(), b"\x0a\x0d\x0a\x09sha256:ab\x12\x00");
//! ```
//!
//! Checked against Docker 28.5's embedded BuildKit: with this order every
//! vertex digest in the Status stream equals the digest kiln computed.

#[cfg(feature = "grpc")]
mod codec;
mod control;
mod definition;
mod enc;
mod gateway;
mod llb;

#[cfg(feature = "grpc")]
pub use codec::{GoCodec, GoEncoder};
pub use definition::{DefinitionBytes, WithDefinition};

use crate::pb;

/// A message encoded as Go's protobuf encodes it (see the [module docs](self)).
pub trait GoEncode {
    /// Appends the message's fields (without a length prefix) to `buf`.
    fn encode_go(&self, buf: &mut Vec<u8>);

    /// The message's bytes.
    fn to_go_bytes(&self) -> Vec<u8> {
        let mut buf = Vec::new();
        self.encode_go(&mut buf);
        buf
    }
}

/// `op` encoded as Go's protobuf encodes it: `inputs`, `platform`,
/// `constraints`, then the `op` oneof, with source attrs written whole.
///
/// ```
/// use kiln_proto::{pb, wire};
/// let op = pb::Op {
///     op: Some(pb::op::Op::Source(pb::SourceOp {
///         identifier: "docker-image://docker.io/library/alpine:latest".into(),
///         ..Default::default()
///     })),
///     platform: Some(pb::Platform { architecture: "amd64".into(), os: "linux".into(), ..Default::default() }),
///     ..Default::default()
/// };
/// let bytes = wire::encode_op(&op);
/// assert_eq!(bytes[0], 10 << 3 | 2, "platform (tag 10) comes before the source (tag 3)");
/// assert_eq!(<pb::Op as prost::Message>::decode(bytes.as_slice()).unwrap(), op);
/// ```
pub fn encode_op(op: &pb::Op) -> Vec<u8> {
    op.to_go_bytes()
}

#[cfg(test)]
mod encoder_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn file_op() -> pb::Op {
        pb::Op {
            inputs: vec![pb::Input {
                digest: "sha256:0000000000000000000000000000000000000000000000000000000000000000"
                    .into(),
                index: 0,
            }],
            op: Some(pb::op::Op::File(pb::FileOp {
                actions: vec![pb::FileAction {
                    input: 0,
                    secondary_input: -1,
                    output: 0,
                    action: Some(pb::file_action::Action::Mkfile(pb::FileActionMkFile {
                        path: "/x.txt".into(),
                        mode: 0o644,
                        data: b"hello-digest-probe\n".to_vec(),
                        timestamp: -1,
                        ..Default::default()
                    })),
                }],
            })),
            platform: Some(pb::Platform {
                architecture: "amd64".into(),
                os: "linux".into(),
                ..Default::default()
            }),
            constraints: Some(pb::WorkerConstraints::default()),
        }
    }

    /// Tags of the top-level fields, in the order they were written.
    fn tags(mut b: &[u8]) -> Vec<u32> {
        let mut out = Vec::new();
        while !b.is_empty() {
            let (tag, wire) = prost::encoding::decode_key(&mut b).expect("key");
            out.push(tag);
            prost::encoding::skip_field(wire, tag, &mut b, Default::default()).expect("skip");
        }
        out
    }

    #[test]
    fn oneof_comes_after_regular_fields() {
        let bytes = encode_op(&file_op());
        assert_eq!(tags(&bytes), vec![1, 10, 11, 4]);
        // prost alone writes tag order, which the daemon would re-digest.
        assert_eq!(tags(&file_op().encode_to_vec()), vec![1, 4, 10, 11]);
    }

    #[test]
    fn same_content_same_length_and_round_trips() {
        let op = file_op();
        let bytes = encode_op(&op);
        assert_eq!(bytes.len(), op.encoded_len());
        assert_eq!(pb::Op::decode(bytes.as_slice()).expect("decode"), op);
    }

    #[test]
    fn digest_matches_what_the_daemon_reported() {
        // A lone mkfile on scratch, linux/amd64, empty constraints: Docker
        // 28.5's BuildKit reported this vertex as sha256:2ebd69a0…4442
        // while prost's tag-order bytes hash to sha256:5c7c715a….
        let mut op = file_op();
        op.inputs.clear();
        if let Some(pb::op::Op::File(f)) = &mut op.op {
            f.actions[0].input = -1;
        }
        let bytes = encode_op(&op);
        let digest = sha256_hex(&bytes);
        assert_eq!(
            digest,
            "2ebd69a065271ed2f5aaea5eba526004f140999759cb4125b30c9adf6e4d4442"
        );
        assert_eq!(
            sha256_hex(&op.encode_to_vec()),
            "5c7c715a76d52f9a200cf97551e00ea9f2109b18c96704b65146c5e3b68ccb4f"
        );
    }

    fn sha256_hex(b: &[u8]) -> String {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(b))
    }

    #[test]
    fn ops_without_oneof_or_fields_are_unchanged() {
        let terminal = pb::Op {
            inputs: vec![pb::Input {
                digest: "sha256:ab".into(),
                index: 2,
            }],
            ..Default::default()
        };
        assert_eq!(encode_op(&terminal), terminal.encode_to_vec());
        assert!(encode_op(&pb::Op::default()).is_empty());
    }
}
