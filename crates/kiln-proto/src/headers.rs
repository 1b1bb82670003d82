//! Session header names and gRPC metadata keys.
//!
//! On the Docker Engine's `POST /session` these are HTTP headers; on
//! `Control.Session` the same names travel lower-cased as gRPC metadata.

/// The session's id.
pub const SESSION_UUID: &str = "X-Docker-Expose-Session-Uuid";
/// The session's name (shown by the daemon).
pub const SESSION_NAME: &str = "X-Docker-Expose-Session-Name";
/// The shared key: local sources with the same key share the daemon's copy.
pub const SESSION_SHARED_KEY: &str = "X-Docker-Expose-Session-Sharedkey";
/// One header per gRPC method the session serves.
pub const SESSION_GRPC_METHOD: &str = "X-Docker-Expose-Session-Grpc-Method";

/// Metadata naming the build a gateway (LLBBridge) call belongs to.
pub const CONTROL_API_BUILD_ID: &str = "buildkit-controlapi-buildid";
/// Metadata on `FileSend/DiffCopy` naming the exporter by its index.
pub const ATTACHABLE_EXPORTER_ID: &str = "buildkit-attachable-exporter-id";
/// Metadata on content-store calls naming the store; for OCI layout
/// sources the value is [`OCI_STORE_PREFIX`] + the `oci.store` attr.
pub const ATTACHABLE_STORE_ID: &str = "buildkit-attachable-store-id";
/// Prefix BuildKit puts before an OCI layout's store id.
pub const OCI_STORE_PREFIX: &str = "oci:";
/// The store id prefix of `type=local` cache exports and imports: the
/// value is this + the `dest`/`src` attribute.
pub const LOCAL_CACHE_STORE_PREFIX: &str = "local:";

/// DiffCopy request metadata: the local directory's name.
pub const FILESYNC_DIR_NAME: &str = "dir-name";
/// DiffCopy request metadata: include patterns.
pub const FILESYNC_INCLUDE_PATTERNS: &str = "include-patterns";
/// DiffCopy request metadata: exclude patterns.
pub const FILESYNC_EXCLUDE_PATTERNS: &str = "exclude-patterns";
/// DiffCopy request metadata: follow paths.
pub const FILESYNC_FOLLOW_PATHS: &str = "followpaths";
/// Suffix marking a metadata value as URL-escaped.
pub const ENCODED_SUFFIX: &str = "-encoded";

/// The file name `FileSend` writes for single-file exporters.
pub const FILESEND_FILE_NAME: &str = "filename";

/// `SSH/ForwardAgent` metadata naming the agent (`--ssh ID=…`).
pub const SSH_FORWARD_ID: &str = "buildkit.ssh.id";
/// The agent id used when none is named.
pub const SSH_DEFAULT_ID: &str = "default";
/// Prefix of `FileSend/DiffCopy` metadata carrying exporter metadata.
pub const EXPORTER_METADATA_PREFIX: &str = "exporter-md-";
