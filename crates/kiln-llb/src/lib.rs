//! A typed, immutable LLB graph builder with deterministic marshaling: the
//! Rust counterpart of BuildKit's Go `client/llb` package.
//!
//! A [`State`] is an immutable value: the output of an op (a source, an
//! exec, file actions, a merge or a diff) plus metadata such as the working
//! directory and environment. Every method returns a new state; cloning is
//! cheap. [`State::marshal`] turns the graph into a [`Definition`] for a
//! `SolveRequest`: ops de-duplicated by content digest, inputs first, the
//! terminal op last. Marshaling is a pure function of the graph and the
//! [`Constraints`]: no host platform, random ids, clocks or hash maps are
//! involved, so the bytes are the same on every run and every host.
//!
//! Method names follow the Go package in snake_case (`run`, `file`, `dir`,
//! `add_env`, `get_mount`, …); Go's functional options are builder structs
//! ([`ExecOptions`], [`Mount`], [`Copy`](struct@Copy), [`ImageOptions`], …), each with
//! the shared op-constraint methods (`custom_name`, `ignore_cache`,
//! `platform`, …).
//!
//! ```
//! use kiln_llb::{dump, Constraints, ExecOptions, Mount, Platform};
//!
//! let c = Constraints::new(Platform::parse("linux/amd64")?);
//! let base = kiln_llb::image("127.0.0.1:5000/kiln-fixtures/golang:1.24-trixie")?;
//! let out = base
//!     .dir("/src")
//!     .run(ExecOptions::shell("echo hi > /out/x").mount(Mount::scratch("/out")))
//!     .get_mount("/out");
//! let def = out.marshal(&c)?;
//!
//! let json = dump::to_json(&def);
//! assert_eq!(json["ops"][1]["op"]["meta"]["cwd"], "/src");
//! assert_eq!(def.to_bytes(), out.marshal(&c)?.to_bytes()); // deterministic
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Structural mistakes (an exec without arguments, a mount on a relative
//! path, a copy without a source path, using a tmpfs mount as a state, …)
//! do not panic and do not fail while building: they are reported by
//! [`State::marshal`] as a typed [`LlbError`] naming the op and field.
//! Graphs cannot contain cycles: an op can only use states that existed
//! before it.
//!
//! Like Go's `MarshalConstraints`, kiln writes a platform into every op
//! (the op's, else the state's, else the constraints' default) except
//! local, git and HTTP sources, and every op but the terminal one carries
//! (possibly empty) worker constraints. Unlike Go, an exec without `PATH`
//! gets the default one written when the daemon's caps are unknown: the
//! daemon would add it anyway, and kiln's graph then says what runs.

mod constraints;
pub mod definition;
mod diff;
pub mod dump;
pub mod error;
mod exec;
mod file_actions;
mod fileop;
mod gitutil;
mod gojson;
mod marshal;
mod merge;
mod meta;
mod mount;
mod path;
mod source;
mod sourcemap;
mod state;
#[cfg(test)]
mod testutil;

pub use constraints::{platform_to_pb, Constraints, OpConstraints};
pub use definition::{DecodedOp, Definition};
pub use diff::{diff, diff_with};
pub use error::{LlbError, OpKind};
pub use exec::{ExecOptions, ExecState, DEFAULT_PATH_UNIX, DEFAULT_PATH_WINDOWS};
pub use file_actions::{Chown, Copy, CopyInput, CopyMode, Mkdir, Mkfile, Rm, Symlink, UserSpec};
pub use fileop::{FileAction, FileOptions};
pub use merge::{merge, merge_with, MergeOptions};
pub use meta::{HostIp, NetMode, ProxyEnv, SecurityMode, Ulimit};
pub use mount::{CacheSharing, ContentCache, Mount, SecretMount, SshMount};
pub use source::{
    git, git_with, http, http_with, image, image_ref, image_with, local, local_with, oci_layout,
    oci_layout_with, scratch, DiffType, GitOptions, HttpOptions, ImageOptions, LocalOptions,
    OciLayoutOptions, ResolveMode,
};
pub use sourcemap::{Range, SourceLocation, SourceMap};
pub use state::State;

pub use kiln_image::{Digest, ImageRef, Platform};
pub use kiln_proto::pb;
