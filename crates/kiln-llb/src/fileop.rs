//! File ops: mkdir, mkfile, rm, symlink and copy, chained into one op (Go's
//! `fileop.go`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kiln_proto::{caps, pb};

use crate::constraints::{envelope, op_constraint_methods, HasOpConstraints, OpConstraints};
use crate::error::{LlbError, OpKind};
use crate::file_actions::{Chown, Copy, CopyInput, CopyMode, Mkdir, Mkfile, Rm, Symlink};
use crate::marshal::Ctx;
use crate::path;
use crate::state::{drain, Head, Node, OpNode, Output, Owned, State};

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
pub(crate) struct ActionNode {
    prev: Option<FileAction>,
    action: Action,
    /// The state the action applies to, once bound.
    state: Option<State>,
}

impl ActionNode {
    /// Moves out everything that refers to other nodes or actions, for an
    /// iterative drop (see [`crate::state::drain`]).
    pub(crate) fn release(&mut self, out: &mut Vec<Owned>) {
        if let Some(prev) = self.prev.take() {
            out.push(Owned::Action(prev));
        }
        if let Some(mut st) = self.state.take() {
            st.release(out);
        }
        // An empty `Rm` allocates nothing.
        if let Action::Copy(c) =
            std::mem::replace(&mut self.action, Action::Rm(Rm::new(String::new())))
        {
            match c.input {
                CopyInput::State(mut st) => st.release(out),
                CopyInput::Action(fa) => out.push(Owned::Action(fa)),
            }
        }
    }
}

impl Drop for ActionNode {
    fn drop(&mut self) {
        let mut out = Vec::new();
        self.release(&mut out);
        drain(out);
    }
}

impl FileOp {
    pub(crate) fn release(&mut self, out: &mut Vec<Owned>) {
        if let Some(fa) = self.action.take() {
            out.push(Owned::Action(fa));
        }
    }
}

/// Takes the last reference to an action node, if this is it.
pub(crate) fn into_inner(fa: FileAction) -> Option<ActionNode> {
    std::sync::Arc::into_inner(fa.0)
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
        let node = Node::new(
            OpNode::File(FileOp {
                action: Some(action),
            }),
            opts.op,
        );
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
    /// Always set; an `Option` only so that dropping can take it out.
    action: Option<FileAction>,
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

    /// Go's recursive `marshalState.add`, without recursion: the previous
    /// action first, then this action's base input, then its copy source
    /// (an input, or another chain added first), then the action itself.
    fn add(&mut self, ctx: &Ctx<'_>, root: &FileAction) -> Result<usize, LlbError> {
        enum Step {
            Enter(FileAction),
            /// Previous action done: add the inputs, maybe enter the copy source.
            Inputs(FileAction),
            /// Everything before done: record the action.
            Finish(FileAction, i64, Index),
        }
        let mut work = vec![Step::Enter(root.clone())];
        while let Some(step) = work.pop() {
            match step {
                Step::Enter(fa) => {
                    if self.visited.contains_key(&fa.key()) {
                        continue;
                    }
                    let prev = fa.0.prev.clone();
                    work.push(Step::Inputs(fa));
                    if let Some(p) = prev {
                        work.push(Step::Enter(p));
                    }
                }
                Step::Inputs(fa) => {
                    let base = match state_output(&fa.0.state)? {
                        Some(o) => self.add_input(ctx, &o)?,
                        None => -1,
                    };
                    let mut input2 = Index::Input(-1);
                    let mut enter = None;
                    if let Action::Copy(c) = &fa.0.action {
                        match &c.input {
                            CopyInput::State(s) => {
                                if let Some(o) = s.head.output()? {
                                    input2 = Index::Input(self.add_input(ctx, o)?);
                                }
                            }
                            CopyInput::Action(src) => enter = Some(src.clone()),
                        }
                    }
                    work.push(Step::Finish(fa, base, input2));
                    if let Some(src) = enter {
                        work.push(Step::Enter(src));
                    }
                }
                Step::Finish(fa, base, mut input2) => {
                    if let Action::Copy(Copy {
                        input: CopyInput::Action(src),
                        ..
                    }) = &fa.0.action
                    {
                        input2 = Index::Relative(self.target_of(src)?);
                    }
                    let input = match &fa.0.prev {
                        Some(p) => Index::Relative(self.target_of(p)?),
                        None => Index::Input(base),
                    };
                    let target = self.actions.len();
                    self.visited.insert(fa.key(), target);
                    self.actions.push(Built {
                        fa,
                        base,
                        input,
                        input2,
                    });
                }
            }
        }
        self.target_of(root)
    }

    fn target_of(&self, fa: &FileAction) -> Result<usize, LlbError> {
        self.visited
            .get(&fa.key())
            .copied()
            .ok_or_else(|| LlbError::MalformedDefinition {
                reason: "internal: a file action was not added before its user".to_string(),
            })
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
        let mut stack: Vec<FileAction> = self.action.iter().cloned().collect();
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
        if let Some(action) = &self.action {
            b.add(ctx, action)?;
        }
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
            let action = action_to_pb(&st.fa.0.action, &parent, st.base)?;
            actions.push(pb::FileAction {
                input: index(st.input),
                secondary_input: index(st.input2),
                output: if i == last { 0 } else { -1 },
                action: Some(action),
            });
        }
        // Like Go's FileOp.Marshal (BuildKit >= v0.12): a file op is not
        // platform specific, so it carries no platform, and its digest is
        // the one Go's client and the daemon compute for the same op.
        //
        // Caps: only `file.base`, exactly as Go v0.29.0 writes them. Go's
        // per-action caps (file.symlink.create, file.copy.modestring,
        // file.copy.includeexcludepatterns, …, from each action's
        // `addCaps`) never reach the metadata: `(*FileOp).Marshal` runs its
        // capAdder loop over the actions of a marshalState it has just
        // created, before `state.add` fills it (fileop.go, lines 844-849).
        let op_caps = BTreeSet::from([caps::FILE_BASE]);
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
            let (mode, mode_str) = match &a.mode {
                None => (-1, String::new()),
                Some(CopyMode::Bits(m)) => (*m as i32, String::new()),
                Some(CopyMode::Symbolic(s)) => (0, s.clone()),
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
