//! [`State`]: an immutable, cheaply cloned handle on one output of an op
//! plus the metadata (env, dir, user, …) later ops inherit (Go's `state.go`).

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use kiln_image::Platform;
use serde::Deserialize;

use crate::constraints::{Constraints, OpConstraints};
use crate::diff::DiffOp;
use crate::error::LlbError;
use crate::exec::ExecOp;
use crate::fileop::FileOp;
use crate::merge::MergeOp;
use crate::meta::{HostIp, Meta, NetMode, SecurityMode, Ulimit};
use crate::source::SourceOp;
use crate::Definition;

/// One vertex of the graph: an op and its own constraints. Shared by every
/// state that refers to one of its outputs; never mutated after creation.
pub(crate) struct Node {
    pub op: OpNode,
    pub constraints: OpConstraints,
}

pub(crate) enum OpNode {
    Source(SourceOp),
    Exec(ExecOp),
    File(FileOp),
    Merge(MergeOp),
    Diff(DiffOp),
}

impl Node {
    pub fn new(op: OpNode, constraints: OpConstraints) -> Arc<Node> {
        Arc::new(Node { op, constraints })
    }

    /// The outputs this op reads, in Go's `Vertex.Inputs()` order (which
    /// decides the order of ops in a definition).
    pub fn inputs(&self) -> Result<Vec<Output>, LlbError> {
        match &self.op {
            OpNode::Source(_) => Ok(Vec::new()),
            OpNode::Exec(e) => e.inputs(),
            OpNode::File(f) => f.inputs(),
            OpNode::Merge(m) => m.inputs(),
            OpNode::Diff(d) => d.inputs(),
        }
    }

    /// The platform states built on this op's outputs inherit (Go's
    /// `output.platform`): only an explicit platform of a source or exec.
    pub fn output_platform(&self) -> Option<&Platform> {
        match &self.op {
            OpNode::Source(_) | OpNode::Exec(_) => self.constraints.platform.as_ref(),
            _ => None,
        }
    }
}

/// Something the iterative drop still has to take apart.
pub(crate) enum Owned {
    Node(Arc<Node>),
    Action(crate::fileop::FileAction),
}

/// Drops a graph without recursion: a chain of 100k ops would otherwise
/// overflow the stack in `Arc`'s recursive drop. Each node we hold the last
/// reference to gives up its children to the work list before it is freed.
pub(crate) fn drain(mut work: Vec<Owned>) {
    while let Some(item) = work.pop() {
        match item {
            Owned::Node(node) => {
                if let Some(mut n) = Arc::into_inner(node) {
                    n.release(&mut work);
                }
            }
            Owned::Action(fa) => {
                if let Some(mut a) = crate::fileop::into_inner(fa) {
                    a.release(&mut work);
                }
            }
        }
    }
}

impl Node {
    /// Moves out every reference to another node or action.
    fn release(&mut self, out: &mut Vec<Owned>) {
        match &mut self.op {
            OpNode::Source(_) => {}
            OpNode::Exec(e) => {
                for m in &mut e.mounts {
                    release_head(&mut m.source, out);
                }
            }
            OpNode::File(f) => f.release(out),
            OpNode::Merge(m) => m.release(out),
            OpNode::Diff(d) => d.release(out),
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let mut out = Vec::new();
        self.release(&mut out);
        drain(out);
    }
}

pub(crate) fn release_head(head: &mut Head, out: &mut Vec<Owned>) {
    if let Head::Output(o) = std::mem::replace(head, Head::Scratch) {
        out.push(Owned::Node(o.node));
    }
}

/// An output of a node: the node and the index of the output.
#[derive(Clone)]
pub(crate) struct Output {
    pub node: Arc<Node>,
    pub index: i64,
}

impl Output {
    /// Identity of the node, for memoising a marshal.
    pub fn key(&self) -> usize {
        Arc::as_ptr(&self.node) as usize
    }
}

/// What a state points at.
#[derive(Clone)]
pub(crate) enum Head {
    /// The empty filesystem.
    Scratch,
    Output(Output),
    /// A state that cannot be marshaled; the error surfaces at marshal time.
    Error(Arc<LlbError>),
}

impl Head {
    /// The output, `None` for scratch, the error for an invalid state.
    pub fn output(&self) -> Result<Option<&Output>, LlbError> {
        match self {
            Head::Scratch => Ok(None),
            Head::Output(o) => Ok(Some(o)),
            Head::Error(e) => Err((**e).clone()),
        }
    }
}

/// An immutable LLB state: the output of an op plus the metadata (working
/// directory, environment, user, platform, …) that ops built on it inherit.
///
/// Cloning is cheap (two `Arc`s). Every setter returns a new state and leaves
/// `self` untouched, so a state can be shared and branched freely. Identity
/// is the content: two states built the same way marshal to the same ops.
///
/// ```
/// use kiln_llb::{Constraints, ExecOptions, Platform};
/// let base = kiln_llb::image("alpine:3.20")?.dir("/src").add_env("CGO_ENABLED", "0");
/// let built = base.run(ExecOptions::shell("go build ./...")).root();
/// assert_eq!(built.get_dir(), "/src");
/// let def = built.marshal(&Constraints::new(Platform::parse("linux/amd64")?))?;
/// assert_eq!(def.len(), 3); // image, exec, terminal
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct State {
    pub(crate) head: Head,
    pub(crate) meta: Arc<Meta>,
}

impl State {
    /// Go's `NewState`: fresh metadata, platform from the output.
    pub(crate) fn from_head(head: Head) -> State {
        State {
            head,
            meta: Arc::new(Meta::default()),
        }
        .ensure_platform()
    }

    /// Go's `WithOutput`: this state's metadata, another output.
    pub(crate) fn with_head(&self, head: Head) -> State {
        State {
            head,
            meta: Arc::clone(&self.meta),
        }
        .ensure_platform()
    }

    fn ensure_platform(self) -> State {
        let platform = match &self.head {
            Head::Output(o) => o.node.output_platform().cloned(),
            _ => None,
        };
        match platform {
            Some(p) => self.platform(p),
            None => self,
        }
    }

    fn with_meta(&self, f: impl FnOnce(&mut Meta)) -> State {
        let mut meta = (*self.meta).clone();
        f(&mut meta);
        State {
            head: self.head.clone(),
            meta: Arc::new(meta),
        }
    }

    /// A state with an error that [`State::marshal`] will report.
    pub(crate) fn invalid(error: LlbError) -> State {
        State::from_head(Head::Error(Arc::new(error)))
    }

    /// Moves the output out (for the iterative drop).
    pub(crate) fn release(&mut self, out: &mut Vec<Owned>) {
        release_head(&mut self.head, out);
    }

    /// Whether this is the empty filesystem.
    pub fn is_scratch(&self) -> bool {
        matches!(self.head, Head::Scratch)
    }

    /// Sets an environment variable (Go's `AddEnv`); a later value for the
    /// same key replaces the earlier one and moves it last.
    pub fn add_env(&self, key: impl AsRef<str>, value: impl AsRef<str>) -> State {
        self.with_meta(|m| m.add_env(key.as_ref(), value.as_ref()))
    }

    /// The value of an environment variable (Go's `GetEnv`).
    pub fn get_env(&self, key: &str) -> Option<&str> {
        self.meta.get_env(key)
    }

    /// The environment, in order (Go's `Env().ToArray()` as pairs).
    pub fn env(&self) -> &[(String, String)] {
        &self.meta.env
    }

    /// Sets the working directory (Go's `Dir`). A relative value is joined
    /// onto the previous directory when the graph is marshaled.
    pub fn dir(&self, dir: impl AsRef<str>) -> State {
        self.with_meta(|m| m.set_dir(dir.as_ref()))
    }

    /// The resolved working directory (Go's `GetDir`); `/` by default.
    pub fn get_dir(&self) -> String {
        self.meta.resolved_dir()
    }

    /// Sets the user execs run as (Go's `User`), e.g. `1000:1000` or `nobody`.
    pub fn user(&self, user: impl Into<String>) -> State {
        let user = user.into();
        self.with_meta(|m| m.user = Some(user))
    }

    /// The user set with [`State::user`], if any.
    pub fn get_user(&self) -> Option<&str> {
        self.meta.user.as_deref()
    }

    /// Sets the hostname of execs (Go's `Hostname`).
    pub fn hostname(&self, hostname: impl Into<String>) -> State {
        let hostname = hostname.into();
        self.with_meta(|m| m.hostname = Some(hostname))
    }

    /// The hostname set with [`State::hostname`], if any.
    pub fn get_hostname(&self) -> Option<&str> {
        self.meta.hostname.as_deref()
    }

    /// Sets the platform of execs run on this state (Go's `Platform`),
    /// normalised.
    pub fn platform(&self, platform: Platform) -> State {
        let platform = platform.normalize();
        self.with_meta(|m| m.platform = Some(platform))
    }

    /// The platform of this state, if one was set or came with its source.
    pub fn get_platform(&self) -> Option<&Platform> {
        self.meta.platform.as_ref()
    }

    /// Sets the network mode of execs (Go's `Network`).
    pub fn network(&self, mode: NetMode) -> State {
        self.with_meta(|m| m.network = Some(mode))
    }

    /// The network mode (sandbox unless set).
    pub fn get_network(&self) -> NetMode {
        self.meta.network.unwrap_or_default()
    }

    /// Sets the security mode of execs (Go's `Security`).
    pub fn security(&self, mode: SecurityMode) -> State {
        self.with_meta(|m| m.security = Some(mode))
    }

    /// The security mode (sandbox unless set).
    pub fn get_security(&self) -> SecurityMode {
        self.meta.security.unwrap_or_default()
    }

    /// Adds an `/etc/hosts` entry for execs (Go's `AddExtraHost`).
    pub fn add_extra_host(&self, host: impl Into<String>, ip: IpAddr) -> State {
        let host = host.into();
        self.with_meta(|m| Arc::make_mut(&mut m.extra_hosts).push(HostIp { host, ip }))
    }

    /// Adds a ulimit for execs (Go's `AddUlimit`), e.g. `("nofile", 1024, 4096)`.
    pub fn add_ulimit(&self, name: impl Into<String>, soft: i64, hard: i64) -> State {
        let name = name.into();
        self.with_meta(|m| Arc::make_mut(&mut m.ulimits).push(Ulimit { name, soft, hard }))
    }

    /// Sets the parent cgroup of execs (Go's `WithCgroupParent`).
    pub fn cgroup_parent(&self, parent: impl Into<String>) -> State {
        let parent = parent.into();
        self.with_meta(|m| m.cgroup_parent = Some(parent))
    }

    /// Stores a free-form value on the state (Go's `WithValue`, with string
    /// keys and values). Values never reach the wire.
    pub fn with_value(&self, key: impl Into<String>, value: impl Into<String>) -> State {
        let (key, value) = (key.into(), value.into());
        self.with_meta(|m| {
            Arc::make_mut(&mut m.values).insert(key, value);
        })
    }

    /// A value stored with [`State::with_value`].
    pub fn value(&self, key: &str) -> Option<&str> {
        self.meta.values.get(key).map(String::as_str)
    }

    /// This state's output with `other`'s metadata (Go's `Reset`).
    pub fn reset(&self, other: &State) -> State {
        other.with_head(self.head.clone())
    }

    /// Applies an OCI image config's `Env`, `WorkingDir` and platform (Go's
    /// `WithImageConfig`), e.g. the config resolved for an image source.
    ///
    /// # Errors
    /// [`LlbError::InvalidImageConfig`] when `config` is not image-config JSON.
    pub fn with_image_config(&self, config: &[u8]) -> Result<State, LlbError> {
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct Image {
            architecture: String,
            os: String,
            variant: Option<String>,
            #[serde(rename = "os.version")]
            os_version: Option<String>,
            #[serde(rename = "os.features")]
            os_features: Vec<String>,
            config: Config,
        }
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct Config {
            #[serde(rename = "Env")]
            env: Option<Vec<String>>,
            #[serde(rename = "WorkingDir")]
            working_dir: String,
        }
        let img: Image =
            serde_json::from_slice(config).map_err(|e| LlbError::InvalidImageConfig {
                reason: e.to_string(),
            })?;
        let mut st = self.clone();
        for kv in img.config.env.unwrap_or_default() {
            let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
            if !k.is_empty() {
                st = st.add_env(k, v);
            }
        }
        st = st.dir(&img.config.working_dir);
        if !img.architecture.is_empty() && !img.os.is_empty() {
            st = st.platform(Platform {
                architecture: img.architecture,
                os: img.os,
                variant: img.variant,
                os_version: img.os_version,
                os_features: img.os_features,
            });
        }
        Ok(st)
    }

    /// Marshals this state and everything it depends on into a
    /// [`Definition`] (Go's `State.Marshal`).
    ///
    /// # Errors
    /// The first structural problem found in the graph, as an [`LlbError`].
    pub fn marshal(&self, c: &Constraints) -> Result<Definition, LlbError> {
        crate::marshal::marshal(self, c)
    }
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let head = match &self.head {
            Head::Scratch => "scratch".to_string(),
            Head::Output(o) => {
                let kind = match &o.node.op {
                    OpNode::Source(s) => format!("source {}", s.identifier),
                    OpNode::Exec(_) => "exec".to_string(),
                    OpNode::File(_) => "file".to_string(),
                    OpNode::Merge(_) => "merge".to_string(),
                    OpNode::Diff(_) => "diff".to_string(),
                };
                format!("{kind} output {}", o.index)
            }
            Head::Error(e) => format!("invalid: {e}"),
        };
        f.debug_struct("State")
            .field("head", &head)
            .field("dir", &self.get_dir())
            .field("env", &self.meta.env)
            .field("platform", &self.meta.platform)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Head {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Head::Scratch => f.write_str("Scratch"),
            Head::Output(o) => write!(f, "Output({})", o.index),
            Head::Error(e) => write!(f, "Error({e})"),
        }
    }
}
