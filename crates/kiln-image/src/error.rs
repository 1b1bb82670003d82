//! Typed errors for parsing digests, image references and platforms, for
//! reading OCI configs and manifests, for reading, merging and renaming OCI
//! layout tarballs, and for talking to registries.
//!
//! Every variant carries the input that failed, so a caller can report it
//! without keeping it around. The parse errors are `Clone` so that
//! lazily-failing builders (such as `kiln-llb`'s states) can hold on to them.
//! [`RegistryError`] names the registry and the reference involved, and
//! never contains a credential.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use thiserror::Error;

use crate::digest::Digest;
use crate::platform::Platform;

/// A string that is not a valid content digest (`algorithm:hex`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DigestError {
    /// No `algorithm:` prefix, or nothing after it.
    #[error("invalid digest {input:?}: expected \"algorithm:hex\"")]
    Format { input: String },
    /// The algorithm is syntactically fine but not one kiln can verify.
    #[error("invalid digest {input:?}: unsupported algorithm {algorithm:?}")]
    UnsupportedAlgorithm { input: String, algorithm: String },
    /// The hex part has the wrong length for its algorithm.
    #[error("invalid digest {input:?}: {algorithm} needs {expected} hex characters, got {actual}")]
    InvalidLength {
        input: String,
        algorithm: String,
        expected: usize,
        actual: usize,
    },
    /// The encoded part is not lowercase hexadecimal.
    #[error("invalid digest {input:?}: encoded part must be lowercase hex")]
    InvalidEncoding { input: String },
}

/// A string that is not a valid Docker image reference.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ReferenceError {
    /// The empty string.
    #[error("invalid reference: repository name must have at least one component")]
    Empty,
    /// A bare 64-character hex string, which Docker reserves for image ids.
    #[error("invalid repository name ({input}), cannot specify 64-byte hexadecimal strings")]
    IdentifierOnly { input: String },
    /// The repository part contains uppercase letters.
    #[error("invalid reference format: repository name ({input}) must be lowercase")]
    Uppercase { input: String },
    /// The reference does not follow `name[:tag][@digest]`.
    #[error("invalid reference format: {input:?}")]
    InvalidFormat { input: String },
    /// The repository path is longer than 255 characters.
    #[error("invalid reference {input:?}: repository name must not be more than 255 characters (got {len})")]
    NameTooLong { input: String, len: usize },
    /// A tag given to [`crate::ImageRef::with_tag`] is not valid.
    #[error("invalid tag format: {tag:?}")]
    InvalidTag { tag: String },
    /// The digest part of the reference is not a valid digest.
    #[error("invalid reference {input:?}: {source}")]
    Digest {
        input: String,
        #[source]
        source: DigestError,
    },
}

/// A string that is not a valid platform specifier (`os[/arch[/variant]]`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PlatformError {
    /// The empty string.
    #[error("invalid platform: empty specifier")]
    Empty,
    /// Wildcards such as `linux/*` are not supported (as in containerd).
    #[error("invalid platform {input:?}: wildcards are not supported")]
    Wildcard { input: String },
    /// The OS component (with its optional `(version+features)`) is malformed.
    #[error("invalid platform {input:?}: {component:?} is not a valid OS component")]
    InvalidOs { input: String, component: String },
    /// An architecture or variant component has characters outside `[A-Za-z0-9_.-]`.
    #[error("invalid platform {input:?}: {component:?} is not a valid component")]
    InvalidComponent { input: String, component: String },
    /// Only one component was given. containerd would fill the other one in
    /// from the host; kiln never uses host-derived defaults, so it refuses.
    #[error(
        "invalid platform {input:?}: both OS and architecture are required (e.g. linux/amd64)"
    )]
    Incomplete { input: String },
    /// More than three `/`-separated components.
    #[error("invalid platform {input:?}: expected os/arch[/variant]")]
    TooManyComponents { input: String },
}

/// Any error of this crate, for callers that do not care which parser failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Digest(#[from] DigestError),
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error(transparent)]
    Platform(#[from] PlatformError),
}

/// An image index or manifest that kiln cannot read.
#[derive(Debug, Clone, Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// A media type that is neither an OCI/Docker index nor a manifest.
    #[error("unsupported manifest media type {media_type:?}")]
    UnsupportedMediaType { media_type: String },
    /// Docker's schema 1 manifests were retired in 2019; kiln does not read them.
    #[error("Docker schema 1 manifest ({media_type}) is not supported: push the image again with a current Docker or BuildKit")]
    Schema1 { media_type: String },
    /// No media type was given and the JSON has neither `manifests` nor `layers`.
    #[error("cannot tell an image index from a manifest: no mediaType and neither \"manifests\" nor \"layers\"")]
    UnknownKind,
    /// The bytes are not valid JSON of the expected shape.
    #[error("invalid {media_type} document")]
    Json {
        media_type: String,
        #[source]
        source: Arc<serde_json::Error>,
    },
    /// An index entry to write has no platform.
    #[error("index entry {digest} has no platform")]
    MissingPlatform { digest: String },
    /// A descriptor's digest is not one kiln can verify.
    #[error("invalid descriptor in {media_type} document")]
    Digest {
        media_type: String,
        #[source]
        source: DigestError,
    },
}

/// An image config that kiln cannot read or write.
#[derive(Debug, Clone, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The bytes are not an OCI/Docker image config.
    #[error("invalid image config JSON")]
    Json {
        #[source]
        source: Arc<serde_json::Error>,
    },
    /// The config could not be encoded (a bug: every field is plain data).
    #[error("cannot encode the image config")]
    Encode {
        #[source]
        source: Arc<serde_json::Error>,
    },
    /// A SOURCE_DATE_EPOCH value that is not a number of seconds.
    #[error("invalid SOURCE_DATE_EPOCH {value:?}: expected seconds since 1970-01-01")]
    SourceDateEpoch { value: String },
}

/// An OCI image layout tarball that cannot be read, or layouts that cannot
/// be merged into one ([`crate::layout`]). Each variant names the tarball
/// (`tar`), the file written (`path`, `dest`), the entry, digest or platform
/// involved. Large parts are boxed to keep `Result`s small.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum LayoutError {
    /// The tarball cannot be opened.
    #[error("cannot open {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The tarball is not a tar archive, or breaks off.
    #[error("cannot read {tar}: not a tar archive, or a broken one")]
    Tar {
        tar: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An entry whose content cannot be read.
    #[error("cannot read {entry} in {tar}")]
    ReadEntry {
        tar: PathBuf,
        entry: String,
        #[source]
        source: std::io::Error,
    },
    /// An entry that has no place in a layout: a link, a device, or a path
    /// that is absolute or climbs out with `..`.
    #[error("{tar}: refusing entry {entry:?}: {problem}")]
    UnsafeEntry {
        tar: PathBuf,
        entry: String,
        problem: EntryProblem,
    },
    /// The tarball has no `index.json`.
    #[error("{tar} has no index.json: not an OCI layout")]
    NotLayout { tar: PathBuf },
    /// `index.json` is not an OCI index.
    #[error("{tar}: invalid index.json")]
    IndexJson {
        tar: PathBuf,
        #[source]
        source: Box<ManifestError>,
    },
    /// `index.json` lists nothing.
    #[error("{tar}: index.json lists no image")]
    EmptyIndex { tar: PathBuf },
    /// A manifest, index or config the layout refers to is not in it.
    #[error("{tar}: blob {digest} is missing")]
    MissingBlob { tar: PathBuf, digest: Digest },
    /// A manifest or index that cannot be read.
    #[error("{tar}: cannot read manifest {digest}")]
    Manifest {
        tar: PathBuf,
        digest: Digest,
        #[source]
        source: Box<ManifestError>,
    },
    /// An image config that cannot be read.
    #[error("{tar}: cannot read config {digest}")]
    Config {
        tar: PathBuf,
        digest: Digest,
        #[source]
        source: ConfigError,
    },
    /// A blob whose bytes do not hash to the digest its path names.
    #[error("{tar}: blob {entry} does not match its digest (its content is {actual})")]
    DigestMismatch {
        tar: PathBuf,
        entry: String,
        expected: Digest,
        actual: Digest,
    },
    /// The layout holds no image for the platform asked for.
    #[error("{tar} has no {platform} image")]
    NoImage {
        tar: PathBuf,
        platform: Box<Platform>,
    },
    /// A layout with one image manifest (no index) was said to hold several
    /// platforms: which one the manifest is cannot be told.
    #[error(
        "{tar}: one image manifest for several platforms ({})",
        fmt_platforms(platforms)
    )]
    SeveralPlatforms {
        tar: PathBuf,
        platforms: Vec<Platform>,
    },
    /// No layout being merged has an image for this platform.
    #[error("no {platform} image in the layouts being merged")]
    NoPlatform { platform: Box<Platform> },
    /// A platform's manifest is in none of the layouts being merged.
    #[error("the {platform} manifest {digest} is missing")]
    MissingManifest {
        platform: Box<Platform>,
        digest: Digest,
    },
    /// A blob the merged index reaches is in none of the layouts.
    #[error("blob {digest} is in none of the layouts being merged")]
    BlobNotFound { digest: Digest },
    /// The joined index cannot be written.
    #[error("cannot write the image index")]
    Index {
        #[source]
        source: Box<ManifestError>,
    },
    /// A document of the output cannot be encoded (a bug: it is plain data).
    #[error("cannot encode {document}")]
    Encode {
        document: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// The destination's directory does not exist.
    #[error("cannot write {dest}: {dir} is not a directory")]
    NotADirectory { dest: PathBuf, dir: PathBuf },
    /// No temporary file can be made beside the destination.
    #[error("cannot create a temporary file in {dir}")]
    TempFile {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A blob cannot be copied from a layout into the output.
    #[error("cannot copy {entry} from {tar}")]
    Copy {
        tar: PathBuf,
        entry: String,
        #[source]
        source: std::io::Error,
    },
    /// The output cannot be written or moved into place.
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Why an entry of a layout tarball is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EntryProblem {
    /// A symbolic link (to `target`).
    Symlink { target: String },
    /// A hard link (to `target`).
    HardLink { target: String },
    /// A path with a `..` component.
    ParentDir,
    /// An absolute path.
    Absolute,
    /// A device, FIFO, sparse file or other entry that is not a file or
    /// directory.
    Unsupported { kind: String },
}

impl fmt::Display for EntryProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntryProblem::Symlink { target } => write!(f, "a symbolic link (to {target:?})"),
            EntryProblem::HardLink { target } => write!(f, "a hard link (to {target:?})"),
            EntryProblem::ParentDir => f.write_str("its path climbs out with \"..\""),
            EntryProblem::Absolute => f.write_str("its path is absolute"),
            EntryProblem::Unsupported { kind } => {
                write!(f, "a {kind} entry, neither a file nor a directory")
            }
        }
    }
}

fn fmt_platforms(platforms: &[Platform]) -> String {
    platforms
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A docker-archive (`docker save`, the Engine's `GET /images/get`) that
/// cannot be renamed ([`crate::layout::rename_docker_archive`]). Each
/// variant names the entry involved.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ArchiveError {
    /// The input is not a tar archive, or breaks off.
    #[error("the docker-archive is not a tar archive")]
    Tar {
        #[source]
        source: std::io::Error,
    },
    /// An entry whose path cannot be read.
    #[error("an entry of the docker-archive has a bad path")]
    EntryPath {
        #[source]
        source: std::io::Error,
    },
    /// An entry whose content cannot be read.
    #[error("cannot read {entry} in the docker-archive")]
    ReadEntry {
        entry: String,
        #[source]
        source: std::io::Error,
    },
    /// `manifest.json` or `index.json` is not of the expected shape.
    #[error("the docker-archive has a malformed {entry}")]
    Malformed {
        entry: String,
        #[source]
        source: serde_json::Error,
    },
    /// A rewritten document cannot be encoded (a bug: it is plain data).
    #[error("cannot encode {entry}")]
    Encode {
        entry: String,
        #[source]
        source: serde_json::Error,
    },
    /// The output cannot be written.
    #[error("cannot write {entry}")]
    Write {
        entry: String,
        #[source]
        source: std::io::Error,
    },
    /// The output's end cannot be written.
    #[error("cannot finish the archive")]
    Finish {
        #[source]
        source: std::io::Error,
    },
}

/// A failed registry operation. Each variant names the registry (as in the
/// image reference, e.g. `docker.io`) or the reference involved.
#[cfg(feature = "registry")]
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The registry refused the credentials, or wants some and none were
    /// given (HTTP 401/403 after authenticating, or from the token service).
    #[error("wrong or missing credentials for {registry} (HTTP {status} for {reference})")]
    Unauthorized {
        registry: String,
        reference: String,
        status: u16,
    },
    /// The manifest, tag, blob or repository does not exist.
    #[error("{reference} not found")]
    NotFound { reference: String },
    /// The registry (or its token service) could not be reached, or the
    /// connection failed or timed out mid-answer.
    #[error("cannot reach registry {registry}")]
    Unreachable {
        registry: String,
        #[source]
        source: TransportError,
    },
    /// Content whose digest is not the one asked for or announced.
    #[error("{reference}: content has digest {actual}, expected {expected}")]
    DigestMismatch {
        reference: String,
        expected: Digest,
        actual: Digest,
    },
    /// An answer that does not follow the distribution API.
    #[error("registry {registry} answered unexpectedly for {reference}: {problem}")]
    Protocol {
        registry: String,
        reference: String,
        problem: ProtocolError,
    },
    /// A manifest or index that kiln cannot read.
    #[error("cannot read the manifest of {reference}")]
    Manifest {
        reference: String,
        #[source]
        source: ManifestError,
    },
    /// The HTTP client could not be set up (TLS roots could not be loaded).
    #[error("cannot set up the registry HTTP client")]
    Client {
        #[source]
        source: TransportError,
    },
}

/// How a registry answer broke the distribution API.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// An HTTP status the operation does not expect, with the registry's
    /// error codes and messages, if it sent any.
    #[error("HTTP {status}{}", fmt_message(message))]
    UnexpectedStatus { status: u16, message: String },
    /// A header the operation needs is missing.
    #[error("no {header} header")]
    MissingHeader { header: &'static str },
    /// A header that cannot be parsed.
    #[error("invalid {header} header {value:?}")]
    InvalidHeader { header: &'static str, value: String },
    /// A 401 whose `WWW-Authenticate` challenge kiln cannot answer.
    #[error("unsupported authentication challenge {challenge:?}")]
    Challenge { challenge: String },
    /// The token service answered without a `token` or `access_token`.
    #[error("the token service {realm} returned no token")]
    NoToken { realm: String },
    /// The token service answered something that is not a token response.
    #[error("the token service {realm} returned invalid JSON ({detail})")]
    TokenJson { realm: String, detail: String },
    /// Content that is not what it should be (e.g. an unreadable config).
    #[error("invalid {what}: {detail}")]
    UnexpectedContent { what: &'static str, detail: String },
    /// A response larger than kiln accepts for its kind (manifests: 4 MiB).
    #[error("response is larger than {limit} bytes")]
    TooLarge { limit: u64 },
}

fn fmt_message(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    }
}

/// An HTTP transport failure (DNS, connect, TLS, timeout, broken stream).
///
/// Opaque so that the HTTP library stays out of kiln's public API; its
/// message and source chain say what went wrong.
#[cfg(feature = "registry")]
pub struct TransportError(pub(crate) reqwest::Error);

#[cfg(feature = "registry")]
impl TransportError {
    /// Whether the request timed out.
    pub fn is_timeout(&self) -> bool {
        self.0.is_timeout()
    }

    /// Whether the connection could not be established.
    pub fn is_connect(&self) -> bool {
        self.0.is_connect()
    }
}

#[cfg(feature = "registry")]
impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(feature = "registry")]
impl fmt::Debug for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

#[cfg(feature = "registry")]
impl std::error::Error for TransportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.0)
    }
}

/// A failed load into containerd ([`crate::containerd`]). Each variant
/// names the socket, namespace, method or blob involved and says what to
/// do about it.
#[cfg(feature = "containerd")]
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ContainerdError {
    /// An address that is not a unix socket's path.
    #[error("invalid containerd address {address:?}: expected unix:///path/to/containerd.sock or /path/to/containerd.sock")]
    InvalidAddress { address: String },
    /// A namespace name containerd would refuse.
    #[error("invalid containerd namespace {namespace:?}: letters and digits joined by single '.', '_' or '-', at most 76 characters (e.g. default, k8s.io)")]
    InvalidNamespace { namespace: String },
    /// Nothing at the socket's path.
    #[error("no containerd socket at {}: is containerd running? pass address=/path/to/containerd.sock (k3s: address={}, namespace=k8s.io)", socket.display(), crate::containerd::K3S_SOCKET)]
    NoSocket { socket: PathBuf },
    /// The socket (or a directory above it) may not be opened by this user.
    #[error("permission denied on {}: run as root, or as a member of the socket's group (see ls -l {}), or pass address= of a containerd you may use", socket.display(), socket.display())]
    PermissionDenied { socket: PathBuf },
    /// The socket exists but nothing answers on it.
    #[error("cannot connect to containerd at {}: is containerd running?", socket.display())]
    Connect {
        socket: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The gRPC connection could not be set up.
    #[error("cannot speak gRPC to containerd at {}", socket.display())]
    Transport {
        socket: PathBuf,
        #[source]
        source: tonic::transport::Error,
    },
    /// Something answers gRPC on the socket, but not containerd (say,
    /// buildkitd).
    #[error("{} is not containerd's socket (it has no namespaces service): pass address= of containerd's gRPC socket, e.g. /run/containerd/containerd.sock", socket.display())]
    NotContainerd { socket: PathBuf },
    /// The namespace does not exist. kiln does not create it: a misspelt
    /// `k8s.io` would hold images Kubernetes never sees.
    #[error("containerd at {} has no namespace {namespace:?} (it has: {}): create it with `ctr -a {} namespaces create {namespace}`, or pass namespace= of an existing one", socket.display(), fmt_names(existing), socket.display())]
    NoNamespace {
        socket: PathBuf,
        namespace: String,
        existing: Vec<String>,
    },
    /// containerd refused or failed a call (the method is the gRPC path).
    #[error("containerd at {} failed {method}: {}", socket.display(), source.message())]
    Rpc {
        socket: PathBuf,
        method: &'static str,
        #[source]
        source: Box<tonic::Status>,
    },
    /// containerd refused a blob.
    #[error("containerd at {} refused blob {digest}: {}", socket.display(), source.message())]
    WriteBlob {
        socket: PathBuf,
        digest: Digest,
        #[source]
        source: Box<tonic::Status>,
    },
    /// Another client held the blob's write lock (`kiln-load-<digest>`)
    /// and did not finish writing it in time.
    #[error("containerd at {}: blob {digest} is being written by another client (ref {reference}) that did not finish within {seconds} s; try again", socket.display())]
    Locked {
        socket: PathBuf,
        digest: Digest,
        reference: String,
        seconds: u64,
    },
    /// The layout could not be read, or holds a blob that is missing or
    /// does not match its digest. Nothing was named in containerd.
    #[error("cannot load the image layout into containerd")]
    Layout {
        #[source]
        source: LayoutError,
    },
    /// The thread reading the layout stopped without saying why (it
    /// panicked).
    #[error("the thread reading {} stopped unexpectedly", tar.display())]
    Reader { tar: PathBuf },
    /// The load stopped before it ended: cancelled (its caller went away;
    /// nobody sees this error) or its task was stopped.
    #[error("the load into containerd at {} stopped: {detail}", socket.display())]
    Interrupted { socket: PathBuf, detail: String },
}

#[cfg(feature = "containerd")]
fn fmt_names(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

/// Loading an image into podman ([`crate::podman`]) failed. Each variant
/// names the socket, image name or platform involved, and its message says
/// what to do. A failed load has been undone (what it loaded removed, the
/// name given back to the image that had it) unless the error is
/// [`PodmanError::Leftovers`].
#[cfg(feature = "podman")]
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PodmanError {
    /// An address that is not a unix socket (podman's `tcp://` or `ssh://`
    /// connections, or a typo).
    #[error(
        "podman address {address:?}{} is not supported: kiln talks to podman's API over a unix socket only; give `unix:///path/to/podman.sock` or `/path/to/podman.sock` (for a remote podman, forward its socket, e.g. `ssh -L /tmp/podman.sock:/run/podman/podman.sock host`)",
        if *from_env { " (from CONTAINER_HOST)" } else { "" }
    )]
    UnsupportedAddress { address: String, from_env: bool },
    /// Rootless, with neither an address nor `XDG_RUNTIME_DIR` to find the
    /// user's socket in.
    #[error("cannot find podman's socket: XDG_RUNTIME_DIR is not set; give its address (`address=unix:///run/user/UID/podman/podman.sock`) or set CONTAINER_HOST")]
    NoRuntimeDir,
    /// Nothing answers on the socket: podman's API service is not running.
    #[error("cannot connect to podman's API at {}: start it (`systemctl --user start podman.socket`, as root `systemctl start podman.socket`, or `podman system service --time=0 unix://{}`) or give another socket with `address=unix:///path`", socket.display(), socket.display())]
    Connect {
        socket: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Something else answers on the socket (Docker's, say).
    #[error("{} is not podman's API socket (it answered the ping without a Libpod-Api-Version header: {answer}): give podman's, e.g. `address=unix:///run/podman/podman.sock`", socket.display())]
    NotPodman { socket: PathBuf, answer: String },
    /// The connection broke, or the peer does not speak HTTP (is it
    /// podman's socket?).
    #[error("the connection to podman at {} broke while asking it to {action} (is this podman's API socket?)", socket.display())]
    Http {
        socket: PathBuf,
        action: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Podman answered with an error.
    #[error("podman refused to {action} (HTTP {status}): {message}")]
    Refused {
        action: String,
        status: u16,
        message: String,
    },
    /// Podman answered something kiln does not understand.
    #[error("podman answered unexpectedly when asked to {action}: {detail}")]
    Unexpected { action: String, detail: String },
    /// Podman names images by tag: a name pinned to a digest cannot be
    /// given to a loaded image.
    #[error("podman names images by tag, and {name} has a digest: name the image without it (e.g. `-t {without}`)")]
    NameHasDigest { name: String, without: String },
    /// A platform's image would be named `TAG-OS-ARCH[-VARIANT]`, and that
    /// is not a tag (more than 128 characters).
    #[error("cannot name the {platform} image of {name} {tag:?}: not a tag (at most 128 characters of letters, digits, `_`, `.` and `-`); use a shorter tag")]
    InstanceTag {
        name: String,
        platform: Box<Platform>,
        tag: String,
    },
    /// The layout holds no image with a platform.
    #[error("{} holds no image to load", tar.display())]
    NoImages { tar: PathBuf },
    /// The layout cannot be read, or a blob is missing or damaged.
    #[error("cannot read the image to load into podman")]
    Layout(#[from] LayoutError),
    /// The manifest list podman made does not list what was loaded.
    #[error("podman's manifest list for {name} does not list what kiln loaded: {detail}")]
    ListMismatch { name: String, detail: String },
    /// The load failed, and undoing it failed too: what is left behind is
    /// listed, with how to remove it.
    #[error("loading into podman failed, and undoing it failed too: remove what is left with {}{}", leftover_commands(leftovers, lists), if problems.is_empty() { String::new() } else { format!(" ({})", problems.join("; ")) })]
    Leftovers {
        #[source]
        source: Box<PodmanError>,
        /// Images and names (`podman rmi`).
        leftovers: Vec<String>,
        /// Manifest lists (`podman manifest rm`).
        lists: Vec<String>,
        problems: Vec<String>,
    },
}

#[cfg(feature = "podman")]
fn leftover_commands(images: &[String], lists: &[String]) -> String {
    let mut commands = Vec::new();
    if !lists.is_empty() {
        commands.push(format!("`podman manifest rm {}`", lists.join(" ")));
    }
    if !images.is_empty() {
        commands.push(format!("`podman rmi {}`", images.join(" ")));
    }
    commands.join(" and ")
}
