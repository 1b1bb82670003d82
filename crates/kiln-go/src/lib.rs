//! The Go side of kiln: which Go release to build with, and the LLB recipe
//! that builds a Go module into an image.
//!
//! **The recipe** ([`recipe::plan`]) is what `kiln build` runs instead of a
//! Dockerfile: a pure function from [`recipe::GoBuildOptions`] and the images
//! the caller resolved ([`recipe::RecipeInput`]) to LLB states and an image
//! config ([`recipe::Recipe`]). See the [`recipe`] module for the graph and
//! a complete example.
//!
//! **The Go version resolver** is behind `kiln go-version` and
//! `kiln build --go auto`:
//!
//! 1. [`GoMod`] reads the `go` directive (`go 1.24.1`) and the optional
//!    `toolchain go1.24.3` line of a module's `go.mod`.
//! 2. [`version::Resolver`] lists every Go release from a
//!    [`version::Source`] (the module proxy, go.dev or Go's git repository),
//!    caching the answer for a day, and picks the newest **stable patch** of
//!    the directive's minor line: `go 1.24.1` → `1.24.7`.
//! 3. [`version::Resolver::resolve_with_image`] steps back to an older patch
//!    when the builder image of the newest is not published yet; the caller
//!    answers "does this image exist?" through [`version::ImageTagProbe`], so
//!    this crate never talks to a daemon.
//!
//! [`GoVersion`] orders Go's non-semver version names the way the go
//! command does (`1.21 < 1.21rc1 < 1.21.0`, `1.20 == 1.20.0`).
//!
//! The library never prints: warnings (a stale cache used offline) and notes
//! (a builder-image fallback) are returned in [`version::Resolution`].
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

pub mod error;
pub mod gomod;
pub mod recipe;
pub mod version;

pub use error::{Error, FetchError, VersionError};
pub use gomod::GoMod;
pub use recipe::{plan, GoBuildOptions, Recipe, RecipeError, RecipeInput, ResolvedImage};
pub use version::{GoSpec, GoVersion, Resolution, Resolver};
