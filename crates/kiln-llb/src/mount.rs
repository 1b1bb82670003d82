//! Mounts of an exec: states bound at a path, caches, tmpfs, secrets and
//! SSH agent sockets (the mount options of Go's `exec.go`).

use crate::state::State;

/// How a cache mount is shared between concurrent builds (Go's
/// `CacheMountSharingMode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CacheSharing {
    /// Many writers at once.
    #[default]
    Shared,
    /// A new copy when it is already in use.
    Private,
    /// Writers wait for each other.
    Locked,
}

/// Content-based cache checksums for a mount (Go's `MountContentCache`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ContentCache {
    /// Let the daemon decide.
    #[default]
    Default,
    On,
    Off,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum MountKind {
    Bind,
    Cache { id: String, sharing: CacheSharing },
    Tmpfs { size: i64 },
}

/// A filesystem mounted into an exec (Go's `AddMount` and `MountOption`s).
///
/// ```
/// use kiln_llb::{CacheSharing, Mount};
/// let src = kiln_llb::local("context");
/// let mounts = [
///     Mount::bind("/src", &src).readonly(),
///     Mount::scratch("/out"),
///     Mount::cache("/root/.cache/go-build", "go-build").sharing(CacheSharing::Locked),
///     Mount::tmpfs("/tmp").size(64 << 20),
/// ];
/// # let _ = mounts;
/// ```
#[derive(Clone, Debug)]
pub struct Mount {
    pub(crate) target: String,
    pub(crate) source: State,
    pub(crate) kind: MountKind,
    pub(crate) readonly: bool,
    pub(crate) selector: String,
    pub(crate) no_output: bool,
    pub(crate) content_cache: ContentCache,
}

impl Mount {
    fn new(target: impl Into<String>, source: State, kind: MountKind) -> Self {
        Mount {
            target: target.into(),
            source,
            kind,
            readonly: false,
            selector: String::new(),
            no_output: false,
            content_cache: ContentCache::Default,
        }
    }

    /// `source` at `target`. Unless read-only, the mount's result is an
    /// output of the exec: [`ExecState::get_mount`](crate::ExecState::get_mount).
    pub fn bind(target: impl Into<String>, source: &State) -> Self {
        Mount::new(target, source.clone(), MountKind::Bind)
    }

    /// An empty directory at `target` whose result is an output of the exec.
    pub fn scratch(target: impl Into<String>) -> Self {
        Mount::new(target, crate::scratch(), MountKind::Bind)
    }

    /// A persistent cache directory (Go's `AsPersistentCacheDir`). An empty
    /// `id` means the target path, as in Dockerfiles.
    pub fn cache(target: impl Into<String>, id: impl Into<String>) -> Self {
        let target = target.into();
        let mut id = id.into();
        if id.is_empty() {
            id.clone_from(&target);
        }
        Mount::new(
            target,
            crate::scratch(),
            MountKind::Cache {
                id,
                sharing: CacheSharing::Shared,
            },
        )
    }

    /// An in-memory filesystem (Go's `Tmpfs`).
    pub fn tmpfs(target: impl Into<String>) -> Self {
        Mount::new(target, crate::scratch(), MountKind::Tmpfs { size: 0 })
    }

    /// Sharing mode of a cache mount (no effect on other kinds).
    pub fn sharing(mut self, sharing: CacheSharing) -> Self {
        if let MountKind::Cache { sharing: s, .. } = &mut self.kind {
            *s = sharing;
        }
        self
    }

    /// Initial contents of a cache mount (Go passes the source state to
    /// `AddMount` with `AsPersistentCacheDir`).
    pub fn from(mut self, base: &State) -> Self {
        if matches!(self.kind, MountKind::Cache { .. }) {
            self.source = base.clone();
        }
        self
    }

    /// Size limit of a tmpfs mount in bytes (Go's `TmpfsSize`).
    pub fn size(mut self, bytes: i64) -> Self {
        if let MountKind::Tmpfs { size } = &mut self.kind {
            *size = bytes;
        }
        self
    }

    /// Mounts read-only (Go's `Readonly`); the mount then has no output of
    /// its own: its state is the source state.
    pub fn readonly(mut self) -> Self {
        self.readonly = true;
        self
    }

    /// Mounts only this path of the source (Go's `SourcePath`).
    pub fn selector(mut self, path: impl Into<String>) -> Self {
        self.selector = path.into();
        self
    }

    /// Writable, but its result is discarded (Go's `ForceNoOutput`).
    pub fn no_output(mut self) -> Self {
        self.no_output = true;
        self
    }

    /// Content-based cache checksums (Go's `ContentCache`).
    pub fn content_cache(mut self, mode: ContentCache) -> Self {
        self.content_cache = mode;
        self
    }

    /// The mount path.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Whether this mount's result is an exec output (Go's rule: not
    /// read-only, not forced off, not a cache, not a tmpfs).
    pub(crate) fn has_output(&self) -> bool {
        !self.readonly && !self.no_output && matches!(self.kind, MountKind::Bind)
    }
}

/// A secret from the session, as a file or an environment variable (Go's
/// `AddSecret` and `SecretOption`s).
///
/// ```
/// use kiln_llb::SecretMount;
/// let npmrc = SecretMount::file("npmrc", "/root/.npmrc").mode(0o440).optional();
/// let token = SecretMount::env("gh-token", "GITHUB_TOKEN");
/// # let _ = (npmrc, token);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretMount {
    pub(crate) id: String,
    pub(crate) target: Option<String>,
    pub(crate) env: Option<String>,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) mode: u32,
    pub(crate) optional: bool,
}

impl SecretMount {
    /// Secret `id` as a file at `target` (mode `0400`, owned by root).
    pub fn file(id: impl Into<String>, target: impl Into<String>) -> Self {
        SecretMount {
            id: id.into(),
            target: Some(target.into()),
            env: None,
            uid: 0,
            gid: 0,
            mode: 0o400,
            optional: false,
        }
    }

    /// Secret `id` as the environment variable `name` (Go's `SecretAsEnvName`).
    pub fn env(id: impl Into<String>, name: impl Into<String>) -> Self {
        SecretMount {
            id: id.into(),
            target: None,
            env: Some(name.into()),
            uid: 0,
            gid: 0,
            mode: 0o400,
            optional: false,
        }
    }

    /// Also exposes the secret as the environment variable `name`.
    pub fn also_env(mut self, name: impl Into<String>) -> Self {
        self.env = Some(name.into());
        self
    }

    /// Owner uid of the file.
    pub fn uid(mut self, uid: u32) -> Self {
        self.uid = uid;
        self
    }

    /// Owner gid of the file.
    pub fn gid(mut self, gid: u32) -> Self {
        self.gid = gid;
        self
    }

    /// Permission bits of the file.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Do not fail when the session has no such secret (Go's `SecretOptional`).
    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }
}

/// A forwarded SSH agent socket (Go's `AddSSHSocket` and `SSHOption`s).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshMount {
    pub(crate) id: String,
    pub(crate) target: Option<String>,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) mode: u32,
    pub(crate) optional: bool,
}

impl Default for SshMount {
    fn default() -> Self {
        SshMount::new()
    }
}

impl SshMount {
    /// The default agent at `/run/buildkit/ssh_agent.N` (mode `0600`).
    pub fn new() -> Self {
        SshMount {
            id: String::new(),
            target: None,
            uid: 0,
            gid: 0,
            mode: 0o600,
            optional: false,
        }
    }

    /// Which agent of the session (Go's `SSHID`).
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// Socket path (Go's `SSHSocketTarget`).
    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    /// Owner uid of the socket.
    pub fn uid(mut self, uid: u32) -> Self {
        self.uid = uid;
        self
    }

    /// Owner gid of the socket.
    pub fn gid(mut self, gid: u32) -> Self {
        self.gid = gid;
        self
    }

    /// Permission bits of the socket.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    /// Do not fail when the session forwards no agent (Go's `SSHOptional`).
    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }
}
