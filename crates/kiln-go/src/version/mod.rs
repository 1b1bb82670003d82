//! Go's version rules, without I/O: how Go names and orders its releases
//! ([`GoVersion`]), which releases can build a module
//! ([`patch_candidates`]: the newest stable patch of the go directive's
//! minor line, `go 1.24.1` → `1.24.7`), and which builder image a release
//! builds in ([`builder_image`], [`first_published`]).
//!
//! Listing the releases (the module proxy, go.dev or Go's git repository),
//! caching the list and combining it with these rules is kiln-build's
//! `go_release` module; whether an image exists is answered by the caller
//! through [`ImageTagProbe`].
//!
//! ```
//! use kiln_go::version::{patch_candidates, GoSpec};
//! use kiln_go::GoVersion;
//!
//! assert_eq!("auto".parse::<GoSpec>()?, GoSpec::Auto);
//! let listed: Vec<GoVersion> = ["1.24.7", "1.24.6", "1.25rc1"]
//!     .iter()
//!     .map(|v| v.parse())
//!     .collect::<Result<_, _>>()?;
//! let candidates = patch_candidates(&"1.24.1".parse()?, None, &listed);
//! assert_eq!(candidates.versions[0].to_string(), "1.24.7");
//! # Ok::<(), kiln_go::Error>(())
//! ```

mod go_version;
mod image;
mod pick;

use std::str::FromStr;

pub use go_version::{GoMinor, GoVersion, PreRelease};
pub use image::{
    builder_image, first_published, ImageTagProbe, DEFAULT_IMAGE_TEMPLATE, MAX_IMAGE_PROBES,
};
pub use pick::{newest_pre_release, patch_candidates, Candidates};

use crate::error::Error;

/// What `--go` asks for: resolve from go.mod, or use a given version.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum GoSpec {
    /// `auto`: the newest patch of go.mod's minor line.
    #[default]
    Auto,
    /// A version given by the user, used as is.
    Pinned(GoVersion),
}

impl FromStr for GoSpec {
    type Err = Error;

    /// `auto` or a Go version (`1.24.3`, `go1.24.3`, `1.25rc1`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "auto" => Ok(GoSpec::Auto),
            v => Ok(GoSpec::Pinned(GoVersion::parse(v)?)),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn go_spec_parses_auto_and_versions() {
        assert_eq!("auto".parse::<GoSpec>().unwrap(), GoSpec::Auto);
        assert_eq!(
            "go1.24.3".parse::<GoSpec>().unwrap(),
            GoSpec::Pinned("1.24.3".parse().unwrap())
        );
        let err = "1.24.x".parse::<GoSpec>().unwrap_err();
        assert!(matches!(err, Error::Version(_)), "{err:?}");
    }
}
