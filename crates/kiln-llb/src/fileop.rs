//! File ops: mkdir, mkfile, rm, symlink and copy, chained into one op (Go's
//! `fileop.go`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use kiln_proto::{caps, pb};

use crate::constraints::{envelope, op_constraint_methods, HasOpConstraints, OpConstraints};
use crate::error::{LlbError, OpKind};
use crate::marshal::Ctx;
use crate::path;
use crate::state::{Head, Node, OpNode, Output, State};

/// A user or group, by id or by name (resolved in the target filesystem).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserSpec {
    Id(u32),
    Name(String),
}

/// Ownership of created files (Go's `ChownOpt`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Chown {
    pub user: Option<UserSpec>,
    pub group: Option<UserSpec>,
}

impl Chown {
    /// Numeric owner (Go's `WithUIDGID`).
    pub fn ids(uid: u32, gid: u32) -> Self {
        Chown {
            user: Some(UserSpec::Id(uid)),
            group: Some(UserSpec::Id(gid)),
        }
    }

    /// `user[:group]`, each a number, `root` or a name (Go's `WithUser`).
    pub fn parse(spec: &str) -> Self {
        let parse = |v: &str| match v {
            "root" => UserSpec::Id(0),
            v => match v.parse::<i32>() {
                // Go converts with uint32(), so negative ids wrap.
                Ok(id) => UserSpec::Id(id as u32),
                Err(_) => UserSpec::Name(v.to_string()),
            },
        };
        let (user, group) = match spec.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (spec, None),
        };
        Chown {
            user: Some(parse(user)),
            group: group.map(parse),
        }
    }

    fn to_pb(&self, base: i64) -> pb::ChownOpt {
        let user = |u: &UserSpec| pb::UserOpt {
            user: Some(match u {
                UserSpec::Id(id) => pb::user_opt::User::ById(*id),
                UserSpec::Name(name) => pb::user_opt::User::ByName(pb::NamedUserOpt {
                    name: name.clone(),
                    input: base,
                }),
            }),
        };
        pb::ChownOpt {
            user: self.user.as_ref().map(user),
            group: self.group.as_ref().map(user),
        }
    }
}

fn unix_nanos(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX),
    }
}

macro_rules! created_time_methods {
    () => {
        /// Timestamp of created files in Unix nanoseconds (Go's
        /// `WithCreatedTime`), for reproducible layers.
        pub fn created_time(mut self, unix_nanos: i64) -> Self {
            self.created = Some(unix_nanos);
            self
        }

        /// [`Self::created_time`] from a `SystemTime`.
        pub fn created_at(self, time: SystemTime) -> Self {
            self.created_time(unix_nanos(time))
        }

        /// Owner of created files.
        pub fn owner(mut self, owner: Chown) -> Self {
            self.owner = Some(owner);
            self
        }
    };
}

/// Creates a directory (Go's `Mkdir`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mkdir {
    path: String,
    mode: u32,
    make_parents: bool,
    owner: Option<Chown>,
    created: Option<i64>,
}

impl Mkdir {
    /// `path` (relative to the state's directory) with permission `mode`.
    pub fn new(path: impl Into<String>, mode: u32) -> Self {
        Mkdir {
            path: path.into(),
            mode,
            make_parents: false,
            owner: None,
            created: None,
        }
    }

    /// Creates missing parents too (Go's `WithParents`).
    pub fn parents(mut self, yes: bool) -> Self {
        self.make_parents = yes;
        self
    }

    created_time_methods!();
}

/// Creates a file with contents (Go's `Mkfile`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mkfile {
    path: String,
    mode: u32,
    data: Vec<u8>,
    owner: Option<Chown>,
    created: Option<i64>,
}

impl Mkfile {
    /// `path` with permission `mode` and contents `data`.
    pub fn new(path: impl Into<String>, mode: u32, data: impl Into<Vec<u8>>) -> Self {
        Mkfile {
            path: path.into(),
            mode,
            data: data.into(),
            owner: None,
            created: None,
        }
    }

    created_time_methods!();
}

/// Removes a path (Go's `Rm`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rm {
    path: String,
    allow_not_found: bool,
    allow_wildcard: bool,
}

impl Rm {
    pub fn new(path: impl Into<String>) -> Self {
        Rm {
            path: path.into(),
            allow_not_found: false,
            allow_wildcard: false,
        }
    }

    /// Succeeds when nothing is there (Go's `WithAllowNotFound`).
    pub fn allow_not_found(mut self) -> Self {
        self.allow_not_found = true;
        self
    }

    /// Treats the path as a `filepath.Match` pattern (Go's `WithAllowWildcard`).
    pub fn allow_wildcard(mut self) -> Self {
        self.allow_wildcard = true;
        self
    }
}

/// Creates a symlink at `newpath` pointing to `oldpath` (Go's `Symlink`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Symlink {
    oldpath: String,
    newpath: String,
    owner: Option<Chown>,
    created: Option<i64>,
}

impl Symlink {
    pub fn new(oldpath: impl Into<String>, newpath: impl Into<String>) -> Self {
        Symlink {
            oldpath: oldpath.into(),
            newpath: newpath.into(),
            owner: None,
            created: None,
        }
    }

    created_time_methods!();
}

/// Where a copy reads from: a state, or the result of a chain of file
/// actions on another state ([`FileAction::with_state`]).
#[derive(Clone, Debug)]
pub enum CopyInput {
    State(State),
    Action(FileAction),
}

impl From<State> for CopyInput {
    fn from(s: State) -> Self {
        CopyInput::State(s)
    }
}

impl From<&State> for CopyInput {
    fn from(s: &State) -> Self {
        CopyInput::State(s.clone())
    }
}

/// Permission override of a copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CopyMode {
    /// Numeric bits (Go's `ChmodOpt.Mode`).
    Bits(u32),
    /// A chmod string such as `u+x` (Go's `ChmodOpt.ModeStr`).
    Symbolic(String),
}

/// Copies `src` from another state to `dest` (Go's `Copy` and `CopyInfo`).
///
/// ```
/// use kiln_llb::{Chown, Copy};
/// let ctx = kiln_llb::local("context");
/// let c = Copy::new(&ctx, "/go.mod", "/src/")
///     .create_dest_path()
///     .owner(Chown::ids(1000, 1000))
///     .exclude_patterns(["**/*_test.go"]);
/// let st = kiln_llb::scratch().copy(c);
/// # let _ = st;
/// ```
#[derive(Clone, Debug)]
pub struct Copy {
    input: CopyInput,
    src: String,
    dest: String,
    mode: Option<CopyMode>,
    follow_symlinks: bool,
    dir_contents_only: bool,
    include_patterns: Vec<String>,
    exclude_patterns: Vec<String>,
    attempt_unpack: bool,
    create_dest_path: bool,
    allow_wildcard: bool,
    allow_empty_wildcard: bool,
    owner: Option<Chown>,
    created: Option<i64>,
    always_replace_existing_dest_paths: bool,
}

impl Copy {
    /// Copies `src` (relative to the source state's directory) of `input`
    /// to `dest` (relative to the target state's directory).
    pub fn new(
        input: impl Into<CopyInput>,
        src: impl Into<String>,
        dest: impl Into<String>,
    ) -> Self {
        Copy {
            input: input.into(),
            src: src.into(),
            dest: dest.into(),
            mode: None,
            follow_symlinks: false,
            dir_contents_only: false,
            include_patterns: Vec::new(),
            exclude_patterns: Vec::new(),
            attempt_unpack: false,
            create_dest_path: false,
            allow_wildcard: false,
            allow_empty_wildcard: false,
            owner: None,
            created: None,
            always_replace_existing_dest_paths: false,
        }
    }

    /// Overrides permissions of copied files.
    pub fn mode(mut self, mode: CopyMode) -> Self {
        self.mode = Some(mode);
        self
    }

    /// Resolves symlinks in `src`.
    pub fn follow_symlinks(mut self) -> Self {
        self.follow_symlinks = true;
        self
    }

    /// Copies a directory's contents rather than the directory itself.
    pub fn dir_contents_only(mut self) -> Self {
        self.dir_contents_only = true;
        self
    }

    /// Copies only paths matching these patterns.
    pub fn include_patterns<I: IntoIterator<Item = S>, S: Into<String>>(mut self, p: I) -> Self {
        self.include_patterns = p.into_iter().map(Into::into).collect();
        self
    }

    /// Skips paths matching these patterns.
    pub fn exclude_patterns<I: IntoIterator<Item = S>, S: Into<String>>(mut self, p: I) -> Self {
        self.exclude_patterns.extend(p.into_iter().map(Into::into));
        self
    }

    /// Unpacks archives like Dockerfile's `ADD`.
    pub fn attempt_unpack(mut self) -> Self {
        self.attempt_unpack = true;
        self
    }

    /// Creates the destination's parent directories.
    pub fn create_dest_path(mut self) -> Self {
        self.create_dest_path = true;
        self
    }

    /// Treats `src` as a `filepath.Match` pattern.
    pub fn allow_wildcard(mut self) -> Self {
        self.allow_wildcard = true;
        self
    }

    /// Succeeds when a wildcard matches nothing.
    pub fn allow_empty_wildcard(mut self) -> Self {
        self.allow_empty_wildcard = true;
        self
    }

    /// Replaces existing destination paths of another type instead of failing.
    pub fn always_replace_existing_dest_paths(mut self) -> Self {
        self.always_replace_existing_dest_paths = true;
        self
    }

    created_time_methods!();
}

#[derive(Clone, Debug)]
enum Action {
    Mkdir(Mkdir),
    Mkfile(Mkfile),
    Rm(Rm),
    Symlink(Symlink),
    Copy(Copy),
}

/// One or more file actions applied in order, as one op (Go's `FileAction`
/// chains such as `Mkdir(…).Mkfile(…)`). Run it with [`State::file`].
///
/// ```
/// use kiln_llb::{FileAction, Mkdir, Mkfile, Rm};
/// let actions = FileAction::from(Mkdir::new("/app", 0o755).parents(true))
///     .mkfile(Mkfile::new("/app/VERSION", 0o644, "1.0\n"))
///     .rm(Rm::new("/app/tmp").allow_not_found());
/// let st = kiln_llb::scratch().file(actions);
/// # let _ = st;
/// ```
#[derive(Clone, Debug)]
pub struct FileAction(Arc<ActionNode>);

#[derive(Debug)]
struct ActionNode {
    prev: Option<FileAction>,
    action: Action,
    /// The state the action applies to, once bound.
    state: Option<State>,
}

impl FileAction {
    fn then(&self, action: Action) -> FileAction {
        FileAction(Arc::new(ActionNode {
            prev: Some(self.clone()),
            action,
            state: None,
        }))
    }

    fn single(action: Action) -> FileAction {
        FileAction(Arc::new(ActionNode {
            prev: None,
            action,
            state: None,
        }))
    }

    /// Then creates a directory.
    pub fn mkdir(&self, a: Mkdir) -> FileAction {
        self.then(Action::Mkdir(a))
    }

    /// Then creates a file.
    pub fn mkfile(&self, a: Mkfile) -> FileAction {
        self.then(Action::Mkfile(a))
    }

    /// Then removes a path.
    pub fn rm(&self, a: Rm) -> FileAction {
        self.then(Action::Rm(a))
    }

    /// Then creates a symlink.
    pub fn symlink(&self, a: Symlink) -> FileAction {
        self.then(Action::Symlink(a))
    }

    /// Then copies.
    pub fn copy(&self, a: Copy) -> FileAction {
        self.then(Action::Copy(a))
    }

    /// The result of these actions applied to `state`, as a copy source
    /// inside the same op (Go's `FileAction.WithState`).
    pub fn with_state(&self, state: &State) -> CopyInput {
        CopyInput::Action(self.bind(state))
    }

    /// Go's `bind`: a copy of the chain with every action applied to `state`.
    fn bind(&self, state: &State) -> FileAction {
        let mut chain = Vec::new();
        let mut cur = Some(self);
        while let Some(fa) = cur {
            chain.push(fa);
            cur = fa.0.prev.as_ref();
        }
        let mut bound: Option<FileAction> = None;
        for fa in chain.into_iter().rev() {
            bound = Some(FileAction(Arc::new(ActionNode {
                prev: bound,
                action: fa.0.action.clone(),
                state: Some(state.clone()),
            })));
        }
        bound.unwrap_or_else(|| self.clone())
    }

    fn key(&self) -> usize {
        Arc::as_ptr(&self.0) as usize
    }
}

macro_rules! into_file_action {
    ($($t:ident),*) => {$(
        impl From<$t> for FileAction {
            fn from(a: $t) -> Self {
                FileAction::single(Action::$t(a))
            }
        }
    )*};
}
into_file_action!(Mkdir, Mkfile, Rm, Symlink, Copy);

/// Op constraints of a file op (custom name, platform, …).
#[derive(Clone, Debug, Default)]
pub struct FileOptions {
    op: OpConstraints,
}

impl HasOpConstraints for FileOptions {
    fn op_constraints_mut(&mut self) -> &mut OpConstraints {
        &mut self.op
    }
}

impl FileOptions {
    pub fn new() -> Self {
        Self::default()
    }

    op_constraint_methods!();
}

impl State {
    /// Applies file actions to this state, as one op (Go's `State.File`).
    pub fn file(&self, action: impl Into<FileAction>) -> State {
        self.file_with(action, FileOptions::default())
    }

    /// [`State::file`] with op constraints.
    pub fn file_with(&self, action: impl Into<FileAction>, opts: FileOptions) -> State {
        let action = action.into().bind(self);
        let node = Node::new(OpNode::File(FileOp { action }), opts.op);
        self.with_head(Head::Output(Output { node, index: 0 }))
    }

    /// `self.file(mkdir)`.
    pub fn mkdir(&self, a: Mkdir) -> State {
        self.file(a)
    }

    /// `self.file(mkfile)`.
    pub fn mkfile(&self, a: Mkfile) -> State {
        self.file(a)
    }

    /// `self.file(rm)`.
    pub fn rm(&self, a: Rm) -> State {
        self.file(a)
    }

    /// `self.file(symlink)`.
    pub fn symlink(&self, a: Symlink) -> State {
        self.file(a)
    }

    /// `self.file(copy)`.
    pub fn copy(&self, a: Copy) -> State {
        self.file(a)
    }
}

/// A file op: a bound chain of actions.
pub(crate) struct FileOp {
    action: FileAction,
}

fn state_output(st: &Option<State>) -> Result<Option<Output>, LlbError> {
    match st {
        Some(s) => Ok(s.head.output()?.cloned()),
        None => Ok(None),
    }
}

/// Go's `normalizePath`.
fn normalize_path(parent: &str, p: &str, keep_slash: bool) -> String {
    let mut out = path::clean(p);
    if !path::is_abs(&out) {
        out = path::join(&["/", parent, &out]);
    }
    if keep_slash {
        if p.ends_with('/') && !out.ends_with('/') {
            out.push('/');
        } else if p.ends_with("/.") {
            if out != "/" {
                out.push('/');
            }
            out.push('.');
        }
    }
    out
}

/// Go's `marshalState`: inputs and actions in the order the op lists them.
#[derive(Default)]
struct Builder {
    inputs: Vec<pb::Input>,
    actions: Vec<Built>,
    visited: BTreeMap<usize, usize>,
}

struct Built {
    fa: FileAction,
    base: i64,
    input: Index,
    input2: Index,
}

#[derive(Clone, Copy)]
enum Index {
    Input(i64),
    Relative(usize),
}

impl Builder {
    fn add_input(&mut self, ctx: &Ctx<'_>, o: &Output) -> Result<i64, LlbError> {
        let inp = ctx.input(o)?;
        if let Some(i) = self.inputs.iter().position(|x| *x == inp) {
            return Ok(i as i64);
        }
        self.inputs.push(inp);
        Ok(self.inputs.len() as i64 - 1)
    }

    fn add(&mut self, ctx: &Ctx<'_>, fa: &FileAction) -> Result<usize, LlbError> {
        if let Some(&t) = self.visited.get(&fa.key()) {
            return Ok(t);
        }
        let prev = match &fa.0.prev {
            Some(p) => Some(self.add(ctx, p)?),
            None => None,
        };
        let base = match state_output(&fa.0.state)? {
            Some(o) => self.add_input(ctx, &o)?,
            None => -1,
        };
        let input = match prev {
            Some(t) => Index::Relative(t),
            None => Index::Input(base),
        };
        let input2 = match &fa.0.action {
            Action::Copy(c) => match &c.input {
                CopyInput::State(s) => match s.head.output()? {
                    Some(o) => Index::Input(self.add_input(ctx, o)?),
                    None => Index::Input(-1),
                },
                CopyInput::Action(src) => Index::Relative(self.add(ctx, src)?),
            },
            _ => Index::Input(-1),
        };
        let target = self.actions.len();
        self.visited.insert(fa.key(), target);
        self.actions.push(Built {
            fa: fa.clone(),
            base,
            input,
            input2,
        });
        Ok(target)
    }
}

impl FileOp {
    /// Go's `FileOp.Inputs` (`allOutputs`): for each action from the last,
    /// its state, then its copy source, then the previous action.
    pub fn inputs(&self) -> Result<Vec<Output>, LlbError> {
        let mut out: Vec<Output> = Vec::new();
        let push = |o: Option<Output>, out: &mut Vec<Output>| {
            if let Some(o) = o {
                if !out.iter().any(|x| x.key() == o.key() && x.index == o.index) {
                    out.push(o);
                }
            }
        };
        let mut stack = vec![self.action.clone()];
        while let Some(fa) = stack.pop() {
            push(state_output(&fa.0.state)?, &mut out);
            // Pushed first, visited last.
            if let Some(p) = &fa.0.prev {
                stack.push(p.clone());
            }
            if let Action::Copy(c) = &fa.0.action {
                match &c.input {
                    CopyInput::State(s) => push(s.head.output()?.cloned(), &mut out),
                    CopyInput::Action(src) => stack.push(src.clone()),
                }
            }
        }
        Ok(out)
    }

    /// Go's `FileOp.Marshal`.
    pub fn marshal(
        &self,
        oc: &OpConstraints,
        ctx: &Ctx<'_>,
    ) -> Result<(pb::Op, pb::OpMetadata), LlbError> {
        let mut b = Builder::default();
        b.add(ctx, &self.action)?;
        let mut op_caps: BTreeSet<&'static str> = BTreeSet::from([caps::FILE_BASE]);
        let n_inputs = b.inputs.len() as i64;
        let index = |i: Index| match i {
            Index::Input(i) => i,
            Index::Relative(t) => n_inputs + t as i64,
        };
        let last = b.actions.len().saturating_sub(1);
        let mut actions = Vec::with_capacity(b.actions.len());
        for (i, st) in b.actions.iter().enumerate() {
            let parent = st
                .fa
                .0
                .state
                .as_ref()
                .map(State::get_dir)
                .unwrap_or_default();
            let action = action_to_pb(&st.fa.0.action, &parent, st.base, &mut op_caps)?;
            actions.push(pb::FileAction {
                input: index(st.input),
                secondary_input: index(st.input2),
                output: if i == last { 0 } else { -1 },
                action: Some(action),
            });
        }
        // Go marshals file ops without a platform.
        let (mut pop, md) = envelope(ctx.c, oc, None, &op_caps);
        pop.inputs = b.inputs;
        pop.op = Some(pb::op::Op::File(pb::FileOp { actions }));
        Ok((pop, md))
    }
}

fn timestamp(t: Option<i64>) -> i64 {
    t.unwrap_or(-1)
}

fn non_empty(value: &str, field: &'static str) -> Result<(), LlbError> {
    if value.is_empty() {
        return Err(LlbError::empty(OpKind::File, field));
    }
    Ok(())
}

fn action_to_pb(
    action: &Action,
    parent: &str,
    base: i64,
    op_caps: &mut BTreeSet<&'static str>,
) -> Result<pb::file_action::Action, LlbError> {
    use pb::file_action::Action as A;
    let owner = |o: &Option<Chown>| o.as_ref().map(|c| c.to_pb(base));
    Ok(match action {
        Action::Mkdir(a) => {
            non_empty(&a.path, "mkdir path")?;
            A::Mkdir(pb::FileActionMkDir {
                path: normalize_path(parent, &a.path, false),
                mode: (a.mode & 0o777) as i32,
                make_parents: a.make_parents,
                owner: owner(&a.owner),
                timestamp: timestamp(a.created),
            })
        }
        Action::Mkfile(a) => {
            non_empty(&a.path, "mkfile path")?;
            A::Mkfile(pb::FileActionMkFile {
                path: normalize_path(parent, &a.path, false),
                mode: (a.mode & 0o777) as i32,
                data: a.data.clone(),
                owner: owner(&a.owner),
                timestamp: timestamp(a.created),
            })
        }
        Action::Rm(a) => {
            non_empty(&a.path, "rm path")?;
            A::Rm(pb::FileActionRm {
                path: normalize_path(parent, &a.path, false),
                allow_not_found: a.allow_not_found,
                allow_wildcard: a.allow_wildcard,
            })
        }
        Action::Symlink(a) => {
            non_empty(&a.oldpath, "symlink oldpath")?;
            non_empty(&a.newpath, "symlink newpath")?;
            op_caps.insert(caps::FILE_SYMLINK_CREATE);
            A::Symlink(pb::FileActionSymlink {
                oldpath: a.oldpath.clone(),
                newpath: a.newpath.clone(),
                owner: owner(&a.owner),
                timestamp: timestamp(a.created),
            })
        }
        Action::Copy(a) => {
            non_empty(&a.src, "copy source path")?;
            // Go: the source path is relative to the source state's directory.
            let src = path::clean(&a.src);
            let src_dir = if path::is_abs(&src) {
                "/".to_string()
            } else {
                match &a.input {
                    CopyInput::State(s) => s.get_dir(),
                    CopyInput::Action(fa) => {
                        fa.0.state.as_ref().map(State::get_dir).unwrap_or_default()
                    }
                }
            };
            if !a.include_patterns.is_empty() || !a.exclude_patterns.is_empty() {
                op_caps.insert(caps::FILE_COPY_INCLUDE_EXCLUDE_PATTERNS);
            }
            if a.always_replace_existing_dest_paths {
                op_caps.insert(caps::FILE_COPY_ALWAYS_REPLACE_EXISTING_DEST_PATHS);
            }
            let (mode, mode_str) = match &a.mode {
                None => (-1, String::new()),
                Some(CopyMode::Bits(m)) => (*m as i32, String::new()),
                Some(CopyMode::Symbolic(s)) => {
                    op_caps.insert(caps::FILE_COPY_MODE_STRING_FORMAT);
                    (0, s.clone())
                }
            };
            A::Copy(pb::FileActionCopy {
                src: path::join(&[&src_dir, &src]),
                dest: normalize_path(parent, &a.dest, true),
                owner: owner(&a.owner),
                mode,
                follow_symlink: a.follow_symlinks,
                dir_copy_contents: a.dir_contents_only,
                attempt_unpack_docker_compatibility: a.attempt_unpack,
                create_dest_path: a.create_dest_path,
                allow_wildcard: a.allow_wildcard,
                allow_empty_wildcard: a.allow_empty_wildcard,
                timestamp: timestamp(a.created),
                include_patterns: a.include_patterns.clone(),
                exclude_patterns: a.exclude_patterns.clone(),
                always_replace_existing_dest_paths: a.always_replace_existing_dest_paths,
                mode_str,
                required_paths: Vec::new(),
            })
        }
    })
}

#[cfg(test)]
#[path = "fileop_tests.rs"]
mod tests;
