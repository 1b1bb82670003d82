//! Exec ops: run a command on a state with mounts (Go's `exec.go`).

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::ops::Deref;
use std::sync::Arc;

use kiln_proto::{caps, pb};

use crate::constraints::{
    envelope, op_constraint_methods, Constraints, HasOpConstraints, OpConstraints,
};
use crate::error::{LlbError, OpKind};
use crate::marshal::Ctx;
use crate::meta::{HostIp, Meta, NetMode, ProxyEnv, SecurityMode, Ulimit};
use crate::mount::{CacheSharing, ContentCache, Mount, MountKind, SecretMount, SshMount};
use crate::path;
use crate::state::{Head, Node, OpNode, Output, State};

/// BuildKit's `system.DefaultPathEnvUnix`.
pub const DEFAULT_PATH_UNIX: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// BuildKit's `system.DefaultPathEnvWindows`.
pub const DEFAULT_PATH_WINDOWS: &str = "c:\\Windows\\System32;c:\\Windows";

/// What [`State::run`] runs and how (Go's `RunOption`s): the command, its
/// environment, mounts, secrets and op constraints. Settings here apply to
/// this exec only; the state's own settings (env, dir, user, …) are the
/// defaults.
///
/// ```
/// use kiln_llb::{ExecOptions, Mount, NetMode, SecretMount};
/// let opts = ExecOptions::shell("go build -o /out/app .")
///     .env("CGO_ENABLED", "0")
///     .dir("/src")
///     .network(NetMode::None)
///     .mount(Mount::scratch("/out"))
///     .secret(SecretMount::env("token", "GOPROXY_TOKEN"))
///     .custom_name("go build");
/// # let _ = opts;
/// ```
#[derive(Clone, Debug, Default)]
pub struct ExecOptions {
    args: Vec<String>,
    env: Vec<(String, String)>,
    dir: Option<String>,
    user: Option<String>,
    hostname: Option<String>,
    network: Option<NetMode>,
    security: Option<SecurityMode>,
    valid_exit_codes: Option<Vec<i32>>,
    proxy_env: Option<ProxyEnv>,
    extra_hosts: Vec<HostIp>,
    ulimits: Vec<Ulimit>,
    cgroup_parent: Option<String>,
    readonly_rootfs: bool,
    mounts: Vec<Mount>,
    secrets: Vec<SecretMount>,
    ssh: Vec<SshMount>,
    op: OpConstraints,
}

impl HasOpConstraints for ExecOptions {
    fn op_constraints_mut(&mut self) -> &mut OpConstraints {
        &mut self.op
    }
}

impl ExecOptions {
    /// Runs `args` directly, without a shell (Go's `llb.Args`).
    pub fn new<I, S>(args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ExecOptions::default().args(args)
    }

    /// Runs `command` with `/bin/sh -c` (a Dockerfile's shell form).
    pub fn shell(command: impl Into<String>) -> Self {
        ExecOptions::new(["/bin/sh".to_string(), "-c".to_string(), command.into()])
    }

    /// Replaces the command.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args = args.into_iter().map(Into::into).collect();
        self
    }

    /// Sets an environment variable for this exec (Go's `AddEnv` as a run option).
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Working directory; relative to the state's directory if relative.
    pub fn dir(mut self, dir: impl Into<String>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// The user to run as.
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// The container's hostname.
    pub fn hostname(mut self, hostname: impl Into<String>) -> Self {
        self.hostname = Some(hostname.into());
        self
    }

    /// Network mode (sandbox, host or none).
    pub fn network(mut self, mode: NetMode) -> Self {
        self.network = Some(mode);
        self
    }

    /// Security mode (sandbox or insecure).
    pub fn security(mut self, mode: SecurityMode) -> Self {
        self.security = Some(mode);
        self
    }

    /// Exit codes that count as success (Go's `ValidExitCodes`); by default
    /// only 0.
    pub fn valid_exit_codes<I: IntoIterator<Item = i32>>(mut self, codes: I) -> Self {
        self.valid_exit_codes = Some(codes.into_iter().collect());
        self
    }

    /// Proxy settings that do not affect the cache key (Go's `WithProxy`).
    pub fn proxy_env(mut self, proxy: ProxyEnv) -> Self {
        self.proxy_env = Some(proxy);
        self
    }

    /// Adds an `/etc/hosts` entry (Go's `AddExtraHost`).
    pub fn add_extra_host(mut self, host: impl Into<String>, ip: IpAddr) -> Self {
        self.extra_hosts.push(HostIp {
            host: host.into(),
            ip,
        });
        self
    }

    /// Adds a ulimit (Go's `AddUlimit`).
    pub fn add_ulimit(mut self, name: impl Into<String>, soft: i64, hard: i64) -> Self {
        self.ulimits.push(Ulimit {
            name: name.into(),
            soft,
            hard,
        });
        self
    }

    /// Parent cgroup (Go's `WithCgroupParent`).
    pub fn cgroup_parent(mut self, parent: impl Into<String>) -> Self {
        self.cgroup_parent = Some(parent.into());
        self
    }

    /// Mounts the root filesystem read-only (Go's `ReadonlyRootFS`); the
    /// exec's root state is then the input state itself.
    pub fn readonly_rootfs(mut self) -> Self {
        self.readonly_rootfs = true;
        self
    }

    /// Adds a mount.
    pub fn mount(mut self, mount: Mount) -> Self {
        self.mounts.push(mount);
        self
    }

    /// Binds `source` at `target` (Go's `AddMount` without options).
    pub fn add_mount(self, target: impl Into<String>, source: &State) -> Self {
        self.mount(Mount::bind(target, source))
    }

    /// Adds a secret (file or environment variable).
    pub fn secret(mut self, secret: SecretMount) -> Self {
        self.secrets.push(secret);
        self
    }

    /// Adds an SSH agent socket.
    pub fn ssh(mut self, ssh: SshMount) -> Self {
        self.ssh.push(ssh);
        self
    }

    op_constraint_methods!();
}

/// A mount of a built exec, sorted by target with the root mount first.
pub(crate) struct ExecMount {
    pub target: String,
    pub source: Head,
    pub kind: MountKind,
    pub readonly: bool,
    pub selector: String,
    pub content_cache: ContentCache,
    /// Output index, for mounts whose result is an output.
    pub output: Option<i64>,
}

/// An exec op.
pub(crate) struct ExecOp {
    /// The metadata of the state run on, with the exec's own settings.
    pub meta: Arc<Meta>,
    pub args: Vec<String>,
    pub proxy_env: Option<ProxyEnv>,
    pub valid_exit_codes: Option<Vec<i32>>,
    pub mounts: Vec<ExecMount>,
    pub secrets: Vec<SecretMount>,
    pub ssh: Vec<SshMount>,
}

/// The result of [`State::run`]: the root filesystem after the command (the
/// exec's state; also reachable through `Deref`) and the outputs of its
/// other mounts (Go's `ExecState`).
#[derive(Clone, Debug)]
pub struct ExecState {
    root: State,
    outputs: Arc<Vec<(String, Head)>>,
}

impl ExecState {
    /// The root filesystem after the command ran (Go's `Root`).
    pub fn root(&self) -> State {
        self.root.clone()
    }

    /// The state of the mount at `target` after the command ran (Go's
    /// `GetMount`), with fresh metadata. A read-only mount's state is its
    /// source; tmpfs, cache and no-output mounts have none, and an unknown
    /// target is an error, both reported when the state is marshaled.
    pub fn get_mount(&self, target: &str) -> State {
        match self.outputs.iter().find(|(t, _)| t == target) {
            Some((_, head)) => State::from_head(head.clone()),
            None => State::invalid(LlbError::NoSuchMount {
                target: target.to_string(),
            }),
        }
    }
}

impl Deref for ExecState {
    type Target = State;
    fn deref(&self) -> &State {
        &self.root
    }
}

impl From<ExecState> for State {
    fn from(e: ExecState) -> State {
        e.root
    }
}

impl State {
    /// Runs a command on this state (Go's `State.Run`). The returned
    /// [`ExecState`] is the root filesystem afterwards; its mounts' results
    /// are available through [`ExecState::get_mount`].
    pub fn run(&self, opts: ExecOptions) -> ExecState {
        let ExecOptions {
            args,
            env,
            dir,
            user,
            hostname,
            network,
            security,
            valid_exit_codes,
            proxy_env,
            extra_hosts,
            ulimits,
            cgroup_parent,
            readonly_rootfs,
            mounts,
            secrets,
            ssh,
            op,
        } = opts;

        let mut meta = (*self.meta).clone();
        for (k, v) in &env {
            meta.add_env(k, v);
        }
        if let Some(d) = &dir {
            meta.set_dir(d);
        }
        meta.user = user.or(meta.user);
        meta.hostname = hostname.or(meta.hostname);
        meta.network = network.or(meta.network);
        meta.security = security.or(meta.security);
        meta.cgroup_parent = cgroup_parent.or(meta.cgroup_parent);
        Arc::make_mut(&mut meta.extra_hosts).extend(extra_hosts);
        Arc::make_mut(&mut meta.ulimits).extend(ulimits);

        let mut root = Mount::bind("/", self);
        root.readonly = readonly_rootfs;
        let mut all: Vec<Mount> = std::iter::once(root).chain(mounts).collect();
        // Go sorts mounts by target; "/" sorts before every other absolute path.
        all.sort_by(|a, b| a.target.cmp(&b.target));

        let mut next_output = 0;
        let exec_mounts: Vec<ExecMount> = all
            .iter()
            .map(|m| {
                let output = m.has_output().then(|| {
                    next_output += 1;
                    next_output - 1
                });
                ExecMount {
                    target: m.target.clone(),
                    source: m.source.head.clone(),
                    kind: m.kind.clone(),
                    readonly: m.readonly,
                    selector: m.selector.clone(),
                    content_cache: m.content_cache,
                    output,
                }
            })
            .collect();

        let node = Node::new(
            OpNode::Exec(ExecOp {
                meta: Arc::new(meta),
                args,
                proxy_env,
                valid_exit_codes,
                mounts: exec_mounts,
                secrets,
                ssh,
            }),
            op,
        );

        let outputs: Vec<(String, Head)> = all
            .iter()
            .zip(node_mounts(&node))
            .map(|(m, em)| {
                let head = match (&m.kind, em.output) {
                    _ if m.readonly => m.source.head.clone(),
                    (_, Some(index)) => Head::Output(Output {
                        node: Arc::clone(&node),
                        index,
                    }),
                    (MountKind::Tmpfs { .. }, None) => no_output(&m.target, "tmpfs"),
                    (MountKind::Cache { .. }, None) => no_output(&m.target, "cache"),
                    (MountKind::Bind, None) => no_output(&m.target, "no-output"),
                };
                (m.target.clone(), head)
            })
            .collect();
        let root_head = outputs
            .iter()
            .find(|(t, _)| t == "/")
            .map_or(Head::Scratch, |(_, h)| h.clone());
        ExecState {
            root: self.with_head(root_head),
            outputs: Arc::new(outputs),
        }
    }
}

fn node_mounts(node: &Node) -> &[ExecMount] {
    match &node.op {
        OpNode::Exec(e) => &e.mounts,
        _ => &[],
    }
}

fn no_output(target: &str, kind: &'static str) -> Head {
    Head::Error(Arc::new(LlbError::MountHasNoOutput {
        target: target.to_string(),
        kind,
    }))
}

impl ExecOp {
    /// Go's `ExecOp.Inputs`: mount sources in mount order, each once.
    pub fn inputs(&self) -> Result<Vec<Output>, LlbError> {
        let mut out: Vec<Output> = Vec::new();
        for m in &self.mounts {
            if let Some(o) = m.source.output()? {
                if !out.iter().any(|x| x.key() == o.key() && x.index == o.index) {
                    out.push(o.clone());
                }
            }
        }
        Ok(out)
    }

    fn validate(&self) -> Result<(), LlbError> {
        if self.args.is_empty() {
            return Err(LlbError::empty(OpKind::Exec, "args"));
        }
        let mut seen = BTreeSet::new();
        let targets = self
            .mounts
            .iter()
            .map(|m| &m.target)
            .chain(self.secrets.iter().filter_map(|s| s.target.as_ref()))
            .chain(self.ssh.iter().filter_map(|s| s.target.as_ref()));
        for t in targets {
            if !path::is_abs(t) {
                return Err(LlbError::NotAbsolute {
                    op: OpKind::Exec,
                    field: "mount target",
                    path: t.clone(),
                });
            }
            if !seen.insert(t.as_str()) {
                return Err(LlbError::DuplicateMount { target: t.clone() });
            }
        }
        for s in &self.secrets {
            if s.id.is_empty() {
                return Err(LlbError::empty(OpKind::Exec, "secret id"));
            }
            if s.target.is_none() && s.env.is_none() {
                return Err(LlbError::empty(OpKind::Exec, "secret target or env name"));
            }
            if s.env.as_deref() == Some("") {
                return Err(LlbError::empty(OpKind::Exec, "secret env name"));
            }
        }
        Ok(())
    }

    /// Go's `ExecOp.Marshal`.
    pub fn marshal(
        &self,
        oc: &OpConstraints,
        ctx: &Ctx<'_>,
    ) -> Result<(pb::Op, pb::OpMetadata), LlbError> {
        self.validate()?;
        let c: &Constraints = ctx.c;
        let mut op_caps: BTreeSet<&'static str> = BTreeSet::new();
        let mut env: Vec<(String, String)> = (*self.meta.env).clone();

        let ssh_targets: Vec<String> = self
            .ssh
            .iter()
            .enumerate()
            .map(|(i, s)| {
                s.target
                    .clone()
                    .unwrap_or_else(|| format!("/run/buildkit/ssh_agent.{i}"))
            })
            .collect();
        if let Some(first) = ssh_targets.first() {
            Meta::env_set_default(&mut env, "SSH_AUTH_SOCK", first);
        }
        let daemon_sets_path = c
            .daemon_caps
            .as_ref()
            .is_some_and(|d| d.contains(caps::EXEC_META_SETS_DEFAULT_PATH));
        if daemon_sets_path {
            op_caps.insert(caps::EXEC_META_SETS_DEFAULT_PATH);
        } else {
            // Unlike Go (which leaves PATH out when it does not know the
            // daemon's caps), kiln always writes the default PATH: the daemon
            // would add it and rewrite the op, and its vertex digest would no
            // longer be kiln's. Go uses the marshal's platform here.
            let default_path = if c.platform.os == "windows" {
                DEFAULT_PATH_WINDOWS
            } else {
                DEFAULT_PATH_UNIX
            };
            Meta::env_set_default(&mut env, "PATH", default_path);
        }

        let mut meta = pb::Meta {
            args: self.args.clone(),
            env: env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            cwd: self.meta.resolved_dir(),
            user: self.meta.user.clone().unwrap_or_default(),
            hostname: self.meta.hostname.clone().unwrap_or_default(),
            cgroup_parent: self.meta.cgroup_parent.clone().unwrap_or_default(),
            remove_mount_stubs_recursive: true,
            ..Default::default()
        };
        if let Some(codes) = &self.valid_exit_codes {
            meta.valid_exit_codes.clone_from(codes);
            op_caps.insert(caps::EXEC_VALID_EXIT_CODE);
        }
        meta.extra_hosts = self
            .meta
            .extra_hosts
            .iter()
            .map(|h| pb::HostIp {
                host: h.host.clone(),
                ip: h.ip.to_string(),
            })
            .collect();
        if !self.meta.ulimits.is_empty() {
            op_caps.insert(caps::EXEC_META_ULIMIT);
            meta.ulimit = self
                .meta
                .ulimits
                .iter()
                .map(|u| pb::Ulimit {
                    name: u.name.clone(),
                    soft: u.soft,
                    hard: u.hard,
                })
                .collect();
        }
        let network = self.meta.network.unwrap_or_default();
        let security = self.meta.security.unwrap_or_default();
        if network != NetMode::Sandbox {
            op_caps.insert(caps::EXEC_META_NETWORK);
        }
        if security != SecurityMode::Sandbox {
            op_caps.insert(caps::EXEC_META_SECURITY);
        }
        if let Some(p) = &self.proxy_env {
            meta.proxy_env = Some(p.to_pb());
            op_caps.insert(caps::EXEC_META_PROXY);
        }
        op_caps.insert(caps::EXEC_META_BASE);
        for m in &self.mounts {
            if !m.selector.is_empty() {
                op_caps.insert(caps::EXEC_MOUNT_SELECTOR);
            }
            match &m.kind {
                MountKind::Cache { .. } => {
                    op_caps.insert(caps::EXEC_MOUNT_CACHE);
                    op_caps.insert(caps::EXEC_MOUNT_CACHE_SHARING);
                }
                MountKind::Tmpfs { size } => {
                    op_caps.insert(caps::EXEC_MOUNT_TMPFS);
                    if *size > 0 {
                        op_caps.insert(caps::EXEC_MOUNT_TMPFS_SIZE);
                    }
                }
                MountKind::Bind => {
                    if !matches!(m.source, Head::Scratch) {
                        op_caps.insert(caps::EXEC_MOUNT_BIND);
                    }
                }
            }
            if m.content_cache != ContentCache::Default {
                op_caps.insert(caps::EXEC_MOUNT_CONTENT_CACHE);
            }
        }
        if !self.secrets.is_empty() {
            op_caps.insert(caps::EXEC_MOUNT_SECRET);
            if self.secrets.iter().any(|s| s.env.is_some()) {
                op_caps.insert(caps::EXEC_SECRET_ENV);
            }
        }
        if !self.ssh.is_empty() {
            op_caps.insert(caps::EXEC_MOUNT_SSH);
        }

        // The op's own platform, else the state's, else the marshal's.
        let platform = oc
            .platform
            .as_ref()
            .or(self.meta.platform.as_ref())
            .unwrap_or(&c.platform);
        let (mut pop, md) = envelope(c, oc, Some(platform), &op_caps);

        let mut exec = pb::ExecOp {
            meta: Some(meta),
            network: network.to_pb() as i32,
            security: security.to_pb() as i32,
            ..Default::default()
        };
        for m in &self.mounts {
            let input = match m.source.output()? {
                Some(o) => {
                    let inp = ctx.input(o)?;
                    match pop.inputs.iter().position(|x| *x == inp) {
                        Some(i) => i as i64,
                        None => {
                            pop.inputs.push(inp);
                            pop.inputs.len() as i64 - 1
                        }
                    }
                }
                None => -1,
            };
            let mut pm = pb::Mount {
                input,
                selector: m.selector.clone(),
                dest: m.target.clone(),
                output: m.output.unwrap_or(-1),
                readonly: m.readonly,
                content_cache: match m.content_cache {
                    ContentCache::Default => pb::MountContentCache::Default,
                    ContentCache::On => pb::MountContentCache::On,
                    ContentCache::Off => pb::MountContentCache::Off,
                } as i32,
                ..Default::default()
            };
            match &m.kind {
                MountKind::Bind => {}
                MountKind::Cache { id, sharing } => {
                    pm.mount_type = pb::MountType::Cache as i32;
                    pm.cache_opt = Some(pb::CacheOpt {
                        id: id.clone(),
                        sharing: match sharing {
                            CacheSharing::Shared => pb::CacheSharingOpt::Shared,
                            CacheSharing::Private => pb::CacheSharingOpt::Private,
                            CacheSharing::Locked => pb::CacheSharingOpt::Locked,
                        } as i32,
                    });
                }
                MountKind::Tmpfs { size } => {
                    pm.mount_type = pb::MountType::Tmpfs as i32;
                    pm.tmpfs_opt = Some(pb::TmpfsOpt { size: *size });
                }
            }
            exec.mounts.push(pm);
        }
        // Secret and SSH mounts follow the sorted mounts in the order given;
        // Go leaves their output index at 0.
        for s in &self.secrets {
            if let Some(name) = &s.env {
                exec.secretenv.push(pb::SecretEnv {
                    id: s.id.clone(),
                    name: name.clone(),
                    optional: s.optional,
                });
            }
            if let Some(target) = &s.target {
                exec.mounts.push(pb::Mount {
                    input: -1,
                    dest: target.clone(),
                    mount_type: pb::MountType::Secret as i32,
                    secret_opt: Some(pb::SecretOpt {
                        id: s.id.clone(),
                        uid: s.uid,
                        gid: s.gid,
                        mode: s.mode,
                        optional: s.optional,
                    }),
                    ..Default::default()
                });
            }
        }
        for (s, target) in self.ssh.iter().zip(ssh_targets) {
            exec.mounts.push(pb::Mount {
                input: -1,
                dest: target,
                mount_type: pb::MountType::Ssh as i32,
                ssh_opt: Some(pb::SshOpt {
                    id: s.id.clone(),
                    uid: s.uid,
                    gid: s.gid,
                    mode: s.mode,
                    optional: s.optional,
                }),
                ..Default::default()
            });
        }
        pop.op = Some(pb::op::Op::Exec(exec));
        Ok((pop, md))
    }
}

#[cfg(test)]
#[path = "exec_tests.rs"]
mod tests;
