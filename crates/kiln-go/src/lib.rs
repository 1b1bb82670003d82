//! The Go side of kiln, as pure functions: which Go release a module
//! builds with, and the LLB recipe that builds it into an image.
//!
//! This crate does no I/O: no files, no network, no processes, no async
//! runtime. Options and text go in; LLB states, an image config and
//! decisions come out. Reading `go.mod` from disk, listing Go releases over
//! HTTP or git and caching the list is kiln-build's job (its `go_mod` and
//! `go_release` modules), which feeds the results to the rules here.
//!
//! **The recipe** ([`recipe::plan`]) is what `kiln build` runs instead of a
//! Dockerfile: a pure function from [`recipe::GoBuildOptions`] and the images
//! the caller resolved ([`recipe::RecipeInput`]) to LLB states and an image
//! config ([`recipe::Recipe`]). See the [`recipe`] module for the graph and
//! a complete example.
//!
//! **The Go version rules** are behind `kiln go-version` and
//! `kiln build --go auto`:
//!
//! 1. [`GoMod::parse`] reads the `go` directive (`go 1.24.1`) and the
//!    optional `toolchain go1.24.3` line from the text of a `go.mod`.
//! 2. [`version::patch_candidates`] picks, from every release a source
//!    lists, the stable **patches** of the directive's minor line, newest
//!    first: `go 1.24.1` → `1.24.7`, `1.24.6`, …
//! 3. [`version::first_published`] steps back to an older patch when the
//!    builder image of the newest is not published yet; the caller answers
//!    "does this image exist?" through [`version::ImageTagProbe`], so this
//!    crate never talks to a daemon or a registry.
//!
//! [`GoVersion`] orders Go's non-semver version names the way the go
//! command does (`1.21 < 1.21rc1 < 1.21.0`, `1.20 == 1.20.0`), and
//! [`GoSpec`] is what `--go` asks for (`auto` or a pinned version).
//!
//! ```
//! use kiln_go::version::patch_candidates;
//! use kiln_go::{GoMod, GoVersion};
//!
//! let go_mod = GoMod::parse("module example.com/app\n\ngo 1.24.1\n", "go.mod".as_ref())?;
//!
//! // What a source lists, in any order: releases, pre-releases, old lines.
//! let listed: Vec<GoVersion> = ["1.24.2", "1.25rc1", "1.24.7", "1.24rc1", "1.23.12", "1.24.0"]
//!     .iter()
//!     .map(|v| v.parse())
//!     .collect::<Result<_, _>>()?;
//!
//! let candidates = patch_candidates(&go_mod.go, go_mod.toolchain.as_ref(), &listed);
//! assert_eq!(candidates.versions[0].to_string(), "1.24.7");
//! assert_eq!(candidates.versions.len(), 2); // 1.24.7 and 1.24.2; 1.24.0 is below go 1.24.1
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! **SBOMs**: [`buildinfo::read`] reads the build info the Go linker embeds
//! in a binary (Go version, modules with their `go.sum` hashes, build
//! settings) from the binary's bytes, and [`sbom::spdx`] turns it, with the
//! base image, into a reproducible SPDX 2.3 JSON document.

pub mod buildinfo;
pub mod error;
pub mod gomod;
pub mod recipe;
pub mod sbom;
pub mod version;

pub use error::{Error, VersionError};
pub use gomod::GoMod;
pub use recipe::{plan, GoBuildOptions, Recipe, RecipeError, RecipeInput, ResolvedImage};
pub use version::{GoSpec, GoVersion};
