//! Encoding LLB ops in the byte order BuildKit's daemon writes them.
//!
//! An op's identity is the sha256 of its bytes, and the daemon does not take
//! the client's bytes on trust: when it loads a Definition it marshals every
//! op again with Go's protobuf and uses *that* digest for the solver graph,
//! the cache and every vertex of the Status stream. A client whose bytes
//! differ from Go's sees its ops come back under digests it never sent.
//!
//! Go's protobuf (like the older `github.com/golang/protobuf` and
//! vtprotobuf) writes the fields of a `oneof` **after** all regular fields;
//! prost writes every field in tag order. `pb.Op` is the one LLB message
//! where that differs: its `op` oneof (tags 2–7) sits between `inputs` (1)
//! and `platform` (10) / `constraints` (11). The other oneofs in ops.proto
//! (`FileAction.action`, tags 4–8 after 1–3; `UserOpt.user`, its only
//! fields) already come last. Maps are BTreeMaps (sorted by key), as Go's
//! deterministic marshaling writes them.
//!
//! Checked against Docker 28.5's embedded BuildKit: with this order every
//! vertex digest in the Status stream equals the digest kiln computed.

use prost::encoding::message;
use prost::Message;

use crate::pb;

/// `op` encoded as Go's protobuf encodes it: `inputs`, `platform`,
/// `constraints`, then the `op` oneof.
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
    let mut buf = Vec::with_capacity(op.encoded_len());
    for input in &op.inputs {
        message::encode(1, input, &mut buf);
    }
    if let Some(platform) = &op.platform {
        message::encode(10, platform, &mut buf);
    }
    if let Some(constraints) = &op.constraints {
        message::encode(11, constraints, &mut buf);
    }
    if let Some(kind) = &op.op {
        kind.encode(&mut buf);
    }
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

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
