//! Full gRPC method paths, as the session advertises them and as the daemon
//! calls them.

/// `Control.Solve`.
pub const CONTROL_SOLVE: &str = "/moby.buildkit.v1.Control/Solve";
/// `Control.Status`.
pub const CONTROL_STATUS: &str = "/moby.buildkit.v1.Control/Status";
/// `Control.Session`.
pub const CONTROL_SESSION: &str = "/moby.buildkit.v1.Control/Session";

/// `LLBBridge.Solve` (a gateway build solving a definition).
pub const LLB_BRIDGE_SOLVE: &str = "/moby.buildkit.v1.frontend.LLBBridge/Solve";
/// `LLBBridge.Return` (a gateway build returning its result).
pub const LLB_BRIDGE_RETURN: &str = "/moby.buildkit.v1.frontend.LLBBridge/Return";
/// `LLBBridge.ResolveImageConfig`.
pub const LLB_BRIDGE_RESOLVE_IMAGE_CONFIG: &str =
    "/moby.buildkit.v1.frontend.LLBBridge/ResolveImageConfig";

/// Health check the daemon calls on every session.
pub const HEALTH_CHECK: &str = "/grpc.health.v1.Health/Check";
/// Client-to-daemon context transfer.
pub const FILESYNC_DIFFCOPY: &str = "/moby.filesync.v1.FileSync/DiffCopy";
/// Client-to-daemon tar-stream transfer (legacy).
pub const FILESYNC_TARSTREAM: &str = "/moby.filesync.v1.FileSync/TarStream";
/// Daemon-to-client export transfer.
pub const FILESEND_DIFFCOPY: &str = "/moby.filesync.v1.FileSend/DiffCopy";
/// Secrets.
pub const SECRETS_GET_SECRET: &str = "/moby.buildkit.secrets.v1.Secrets/GetSecret";
/// SSH agent: is an agent with this id available?
pub const SSH_CHECK_AGENT: &str = "/moby.sshforward.v1.SSH/CheckAgent";
/// SSH agent: the byte stream.
pub const SSH_FORWARD_AGENT: &str = "/moby.sshforward.v1.SSH/ForwardAgent";
/// Registry auth: credentials.
pub const AUTH_CREDENTIALS: &str = "/moby.filesync.v1.Auth/Credentials";
/// Registry auth: token fetch.
pub const AUTH_FETCH_TOKEN: &str = "/moby.filesync.v1.Auth/FetchToken";
/// Registry auth: token authority.
pub const AUTH_GET_TOKEN_AUTHORITY: &str = "/moby.filesync.v1.Auth/GetTokenAuthority";
/// Registry auth: verify token authority.
pub const AUTH_VERIFY_TOKEN_AUTHORITY: &str = "/moby.filesync.v1.Auth/VerifyTokenAuthority";
/// Content store (a client-side OCI layout): a blob's size.
pub const CONTENT_INFO: &str = "/containerd.services.content.v1.Content/Info";
/// Content store: a blob's bytes (server streaming).
pub const CONTENT_READ: &str = "/containerd.services.content.v1.Content/Read";
/// Content store: write a blob (bidirectional stream: stat, write, commit).
pub const CONTENT_WRITE: &str = "/containerd.services.content.v1.Content/Write";
