//! `containerd.services.content.v1`: the part of containerd's content
//! service BuildKit calls on a session to read a client-side OCI layout
//! (`oci-layout://` sources). Mirrors `proto/containerd-content-v1.proto`
//! by hand; `bollard-buildkit-proto` does not generate it.

use std::collections::BTreeMap;

use crate::google::protobuf::Timestamp;

/// A blob's description.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct Info {
    /// `sha256:<hex>`.
    #[prost(string, tag = "1")]
    pub digest: String,
    /// Size in bytes.
    #[prost(int64, tag = "2")]
    pub size: i64,
    #[prost(message, optional, tag = "3")]
    pub created_at: Option<Timestamp>,
    #[prost(message, optional, tag = "4")]
    pub updated_at: Option<Timestamp>,
    #[prost(btree_map = "string, string", tag = "5")]
    pub labels: BTreeMap<String, String>,
}

/// `Content/Info` request.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct InfoRequest {
    #[prost(string, tag = "1")]
    pub digest: String,
}

/// `Content/Info` response.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct InfoResponse {
    #[prost(message, optional, tag = "1")]
    pub info: Option<Info>,
}

/// `Content/Read` request: `size` 0 (or past the end) reads to the end.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct ReadContentRequest {
    #[prost(string, tag = "1")]
    pub digest: String,
    #[prost(int64, tag = "2")]
    pub offset: i64,
    #[prost(int64, tag = "3")]
    pub size: i64,
}

/// One chunk of a `Content/Read` stream.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct ReadContentResponse {
    #[prost(int64, tag = "1")]
    pub offset: i64,
    #[prost(bytes = "vec", tag = "2")]
    pub data: Vec<u8>,
}

/// What a `Content/Write` message asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ::prost::Enumeration)]
#[repr(i32)]
pub enum WriteAction {
    /// Report the write's state (the first message of every write).
    Stat = 0,
    /// Write `data` at `offset`.
    Write = 1,
    /// Write any `data`, check `total` and `expected`, store the blob.
    Commit = 2,
}

/// One message of a `Content/Write` stream.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct WriteContentRequest {
    #[prost(enumeration = "WriteAction", tag = "1")]
    pub action: i32,
    /// The pre-commit object's name (not a path).
    #[prost(string, tag = "2")]
    pub r#ref: String,
    #[prost(int64, tag = "3")]
    pub total: i64,
    /// The digest the content must have.
    #[prost(string, tag = "4")]
    pub expected: String,
    #[prost(int64, tag = "5")]
    pub offset: i64,
    #[prost(bytes = "vec", tag = "6")]
    pub data: Vec<u8>,
    #[prost(btree_map = "string, string", tag = "7")]
    pub labels: BTreeMap<String, String>,
}

/// The answer to each `Content/Write` message.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct WriteContentResponse {
    #[prost(enumeration = "WriteAction", tag = "1")]
    pub action: i32,
    #[prost(message, optional, tag = "2")]
    pub started_at: Option<Timestamp>,
    #[prost(message, optional, tag = "3")]
    pub updated_at: Option<Timestamp>,
    /// Bytes written so far.
    #[prost(int64, tag = "4")]
    pub offset: i64,
    #[prost(int64, tag = "5")]
    pub total: i64,
    /// On commit: the stored content's digest.
    #[prost(string, tag = "6")]
    pub digest: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn wire_bytes_follow_the_proto() {
        let req = ReadContentRequest {
            digest: "sha256:ab".into(),
            offset: 3,
            size: 1,
        };
        assert_eq!(req.encode_to_vec(), b"\x0a\x09sha256:ab\x10\x03\x18\x01");
        let resp = ReadContentResponse {
            offset: 2,
            data: b"hi".to_vec(),
        };
        assert_eq!(resp.encode_to_vec(), b"\x08\x02\x12\x02hi");
        let info = InfoResponse {
            info: Some(Info {
                digest: "d".into(),
                size: 5,
                labels: BTreeMap::from([("k".into(), "v".into())]),
                ..Default::default()
            }),
        };
        assert_eq!(
            info.encode_to_vec(),
            b"\x0a\x0d\x0a\x01d\x10\x05\x2a\x06\x0a\x01k\x12\x01v"
        );
        assert_eq!(
            InfoRequest { digest: "x".into() }.encode_to_vec(),
            b"\x0a\x01x"
        );
    }
}
