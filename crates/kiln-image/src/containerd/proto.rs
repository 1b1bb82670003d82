//! The few messages of containerd's gRPC API that loading an image needs,
//! written by hand so that building kiln needs no `protoc`. Field numbers
//! and names are exactly those of containerd's `.proto` files (API v1, as
//! vendored by `containerd-client` 0.9), named above each group; fields
//! kiln never reads or sends are left out, which protobuf allows.

use std::collections::HashMap;

pub(crate) use prost_types::{FieldMask, Timestamp};

/// The gRPC method paths called, one per RPC.
pub(crate) mod methods {
    pub(crate) const NAMESPACES_LIST: &str = "/containerd.services.namespaces.v1.Namespaces/List";
    pub(crate) const LEASES_CREATE: &str = "/containerd.services.leases.v1.Leases/Create";
    pub(crate) const LEASES_DELETE: &str = "/containerd.services.leases.v1.Leases/Delete";
    pub(crate) const LEASES_ADD_RESOURCE: &str =
        "/containerd.services.leases.v1.Leases/AddResource";
    pub(crate) const CONTENT_INFO: &str = "/containerd.services.content.v1.Content/Info";
    pub(crate) const CONTENT_UPDATE: &str = "/containerd.services.content.v1.Content/Update";
    pub(crate) const CONTENT_WRITE: &str = "/containerd.services.content.v1.Content/Write";
    pub(crate) const IMAGES_CREATE: &str = "/containerd.services.images.v1.Images/Create";
    pub(crate) const IMAGES_UPDATE: &str = "/containerd.services.images.v1.Images/Update";
}

/// The metadata headers containerd reads on every request.
pub(crate) mod headers {
    /// The namespace a request works in (`namespaces.GRPCHeader`).
    pub(crate) const NAMESPACE: &str = "containerd-namespace";
    /// The lease that holds what a request creates (`leases.GRPCHeader`).
    pub(crate) const LEASE: &str = "containerd-lease";
}

// api/types/descriptor.proto

/// `containerd.types.Descriptor`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Descriptor {
    #[prost(string, tag = "1")]
    pub media_type: String,
    #[prost(string, tag = "2")]
    pub digest: String,
    #[prost(int64, tag = "3")]
    pub size: i64,
    #[prost(map = "string, string", tag = "5")]
    pub annotations: HashMap<String, String>,
}

// api/services/namespaces/v1/namespace.proto

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Namespace {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(map = "string, string", tag = "2")]
    pub labels: HashMap<String, String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ListNamespacesRequest {
    #[prost(string, tag = "1")]
    pub filter: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ListNamespacesResponse {
    #[prost(message, repeated, tag = "1")]
    pub namespaces: Vec<Namespace>,
}

// api/services/leases/v1/leases.proto

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Lease {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(message, optional, tag = "2")]
    pub created_at: Option<Timestamp>,
    #[prost(map = "string, string", tag = "3")]
    pub labels: HashMap<String, String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct CreateLeaseRequest {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(map = "string, string", tag = "3")]
    pub labels: HashMap<String, String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct CreateLeaseResponse {
    #[prost(message, optional, tag = "1")]
    pub lease: Option<Lease>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct DeleteLeaseRequest {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(bool, tag = "2")]
    pub sync: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Resource {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub r#type: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct AddResourceRequest {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(message, optional, tag = "2")]
    pub resource: Option<Resource>,
}

/// `google.protobuf.Empty`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Empty {}

// api/services/content/v1/content.proto

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Info {
    #[prost(string, tag = "1")]
    pub digest: String,
    #[prost(int64, tag = "2")]
    pub size: i64,
    #[prost(message, optional, tag = "3")]
    pub created_at: Option<Timestamp>,
    #[prost(message, optional, tag = "4")]
    pub updated_at: Option<Timestamp>,
    #[prost(map = "string, string", tag = "5")]
    pub labels: HashMap<String, String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct InfoRequest {
    #[prost(string, tag = "1")]
    pub digest: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct InfoResponse {
    #[prost(message, optional, tag = "1")]
    pub info: Option<Info>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct UpdateRequest {
    #[prost(message, optional, tag = "1")]
    pub info: Option<Info>,
    #[prost(message, optional, tag = "2")]
    pub update_mask: Option<FieldMask>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct UpdateResponse {
    #[prost(message, optional, tag = "1")]
    pub info: Option<Info>,
}

/// `containerd.services.content.v1.WriteAction`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub(crate) enum WriteAction {
    Stat = 0,
    Write = 1,
    Commit = 2,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct WriteContentRequest {
    #[prost(enumeration = "WriteAction", tag = "1")]
    pub action: i32,
    #[prost(string, tag = "2")]
    pub r#ref: String,
    #[prost(int64, tag = "3")]
    pub total: i64,
    #[prost(string, tag = "4")]
    pub expected: String,
    #[prost(int64, tag = "5")]
    pub offset: i64,
    #[prost(bytes = "bytes", tag = "6")]
    pub data: bytes::Bytes,
    #[prost(map = "string, string", tag = "7")]
    pub labels: HashMap<String, String>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct WriteContentResponse {
    #[prost(enumeration = "WriteAction", tag = "1")]
    pub action: i32,
    #[prost(message, optional, tag = "2")]
    pub started_at: Option<Timestamp>,
    #[prost(message, optional, tag = "3")]
    pub updated_at: Option<Timestamp>,
    #[prost(int64, tag = "4")]
    pub offset: i64,
    #[prost(int64, tag = "5")]
    pub total: i64,
    #[prost(string, tag = "6")]
    pub digest: String,
}

// api/services/images/v1/images.proto

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Image {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(map = "string, string", tag = "2")]
    pub labels: HashMap<String, String>,
    #[prost(message, optional, tag = "3")]
    pub target: Option<Descriptor>,
    #[prost(message, optional, tag = "7")]
    pub created_at: Option<Timestamp>,
    #[prost(message, optional, tag = "8")]
    pub updated_at: Option<Timestamp>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct CreateImageRequest {
    #[prost(message, optional, tag = "1")]
    pub image: Option<Image>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct CreateImageResponse {
    #[prost(message, optional, tag = "1")]
    pub image: Option<Image>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct UpdateImageRequest {
    #[prost(message, optional, tag = "1")]
    pub image: Option<Image>,
    #[prost(message, optional, tag = "2")]
    pub update_mask: Option<FieldMask>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct UpdateImageResponse {
    #[prost(message, optional, tag = "1")]
    pub image: Option<Image>,
}
