//! The actions of a file op (Go's `Mkdir`, `Mkfile`, `Rm`, `Symlink`,
//! `Copy` and their options), as builder structs.

use std::time::{SystemTime, UNIX_EPOCH};

use kiln_proto::pb;

use crate::fileop::FileAction;
use crate::state::State;

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

    pub(crate) fn to_pb(&self, base: i64) -> pb::ChownOpt {
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
    pub(crate) path: String,
    pub(crate) mode: u32,
    pub(crate) make_parents: bool,
    pub(crate) owner: Option<Chown>,
    pub(crate) created: Option<i64>,
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
    pub(crate) path: String,
    pub(crate) mode: u32,
    pub(crate) data: Vec<u8>,
    pub(crate) owner: Option<Chown>,
    pub(crate) created: Option<i64>,
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
    pub(crate) path: String,
    pub(crate) allow_not_found: bool,
    pub(crate) allow_wildcard: bool,
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
    pub(crate) oldpath: String,
    pub(crate) newpath: String,
    pub(crate) owner: Option<Chown>,
    pub(crate) created: Option<i64>,
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
    pub(crate) input: CopyInput,
    pub(crate) src: String,
    pub(crate) dest: String,
    pub(crate) mode: Option<CopyMode>,
    pub(crate) follow_symlinks: bool,
    pub(crate) dir_contents_only: bool,
    pub(crate) include_patterns: Vec<String>,
    pub(crate) exclude_patterns: Vec<String>,
    pub(crate) attempt_unpack: bool,
    pub(crate) create_dest_path: bool,
    pub(crate) allow_wildcard: bool,
    pub(crate) allow_empty_wildcard: bool,
    pub(crate) owner: Option<Chown>,
    pub(crate) created: Option<i64>,
    pub(crate) always_replace_existing_dest_paths: bool,
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
