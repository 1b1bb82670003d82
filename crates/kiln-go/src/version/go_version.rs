//! Go's version numbers, ordered the way the go command orders them.
//!
//! Go's tags are not semver: `go1.9beta1`, `go1.21rc2`, `go1.20` (the first
//! 1.20 release, which is 1.20.0) and `go1.21.0` (from Go 1.21 on, `1.21`
//! alone is the *language* version, older than every 1.21 release). The rules
//! here follow the go command's `internal/gover` package: for 1.21 and later,
//! `1.21 < 1.21rc1 < 1.21.0 < 1.21.1`; before 1.21, `1.20rc1 < 1.20 = 1.20.0`.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::VersionError;

/// The kind of a Go pre-release. Go has shipped betas and release
/// candidates; `alpha` is accepted because the go command accepts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PreRelease {
    /// `go1.9alpha1` (accepted, never used by a real release).
    Alpha,
    /// `go1.9beta1`.
    Beta,
    /// `go1.21rc2`.
    Rc,
}

impl PreRelease {
    fn as_str(self) -> &'static str {
        match self {
            PreRelease::Alpha => "alpha",
            PreRelease::Beta => "beta",
            PreRelease::Rc => "rc",
        }
    }
}

/// Where a version sits within its minor line; the derived order is the
/// order the go command uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Stage {
    /// `1.21`: the language version, older than any 1.21 pre-release.
    Language,
    /// `1.21rc2` (or the rare `1.8.5rc4` security pre-release).
    Pre(PreRelease, u32),
    /// `1.21.0`, `1.20` (= 1.20.0), `1.9`.
    Release,
}

/// A Go version: `1.24.3`, `1.24`, `1.21rc2`, `1.9beta1`, `1.20`.
///
/// It keeps the spelling it was parsed from (so `1.20` prints as `1.20`, the
/// name of that release) but compares, hashes and tests equality by meaning:
/// `1.20 == 1.20.0`, while `1.21 != 1.21.0`.
///
/// ```
/// use kiln_go::GoVersion;
///
/// let mut v: Vec<GoVersion> = ["1.21.0", "go1.21rc2", "1.21", "1.20", "1.9beta1"]
///     .iter()
///     .map(|s| s.parse().unwrap())
///     .collect();
/// v.sort();
/// let names: Vec<String> = v.iter().map(|v| v.to_string()).collect();
/// assert_eq!(names, ["1.9beta1", "1.20", "1.21", "1.21rc2", "1.21.0"]);
/// assert!(v[4].is_release() && !v[3].is_release() && !v[2].is_release());
/// ```
#[derive(Clone, Debug)]
pub struct GoVersion {
    major: u32,
    /// `None` only for `go1`, the very first release.
    minor: Option<u32>,
    patch: Option<u32>,
    pre: Option<(PreRelease, u32)>,
}

/// A minor line such as `1.24`: every `1.24.N` release belongs to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GoMinor {
    /// The `1` in `1.24`.
    pub major: u32,
    /// The `24` in `1.24`.
    pub minor: u32,
}

impl fmt::Display for GoMinor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl GoVersion {
    /// Parses `1.24.3`, `go1.24.3`, `1.24`, `1.21rc2`, `go1.9beta1`, `go1`.
    ///
    /// # Errors
    /// [`VersionError`] if the text is not a Go version (numbers with leading
    /// zeros, unknown pre-release kinds, missing pre-release numbers and
    /// trailing text are all rejected, as the go command does).
    pub fn parse(input: &str) -> Result<Self, VersionError> {
        let err = || VersionError {
            input: input.to_owned(),
        };
        let text = input.strip_prefix("go").unwrap_or(input);
        let (major, rest) = cut_number(text).ok_or_else(err)?;
        if rest.is_empty() {
            return Ok(GoVersion {
                major,
                minor: None,
                patch: None,
                pre: None,
            });
        }
        let rest = rest.strip_prefix('.').ok_or_else(err)?;
        let (minor, rest) = cut_number(rest).ok_or_else(err)?;
        let mut version = GoVersion {
            major,
            minor: Some(minor),
            patch: None,
            pre: None,
        };
        let mut rest = rest;
        if let Some(after_dot) = rest.strip_prefix('.') {
            let (patch, after) = cut_number(after_dot).ok_or_else(err)?;
            version.patch = Some(patch);
            rest = after;
        }
        if !rest.is_empty() {
            version.pre = Some(cut_pre(rest).ok_or_else(err)?);
        }
        Ok(version)
    }

    /// Builds a release version `major.minor.patch`.
    pub fn release(major: u32, minor: u32, patch: u32) -> Self {
        GoVersion {
            major,
            minor: Some(minor),
            patch: Some(patch),
            pre: None,
        }
    }

    /// The `1` in `1.24.3`.
    pub fn major(&self) -> u32 {
        self.major
    }

    /// The `24` in `1.24.3` (`0` for `go1`).
    pub fn minor(&self) -> u32 {
        self.minor.unwrap_or(0)
    }

    /// The patch number as it means: `Some(3)` for `1.24.3`, `Some(0)` for
    /// `1.20` (the 1.20.0 release), `None` for `1.21` or `1.21rc2`.
    pub fn patch(&self) -> Option<u32> {
        self.key().2
    }

    /// The pre-release kind and number, if any: `Some((Rc, 2))` for `1.21rc2`.
    pub fn pre_release(&self) -> Option<(PreRelease, u32)> {
        self.pre
    }

    /// The minor line this version belongs to.
    pub fn minor_line(&self) -> GoMinor {
        GoMinor {
            major: self.major,
            minor: self.minor(),
        }
    }

    /// Whether this names a stable release (`1.24.3`, `1.20`, `1.9`), not a
    /// beta, release candidate or bare language version (`1.21`).
    pub fn is_release(&self) -> bool {
        self.key().3 == Stage::Release
    }

    /// Whether this is a beta or release candidate.
    pub fn is_pre_release(&self) -> bool {
        self.pre.is_some()
    }

    /// The tag name of this version: `go1.24.3`.
    pub fn tag(&self) -> String {
        format!("go{self}")
    }

    /// `(major, minor, patch, stage)` as `internal/gover` compares them.
    fn key(&self) -> (u32, u32, Option<u32>, Stage) {
        let minor = self.minor.unwrap_or(0);
        let (patch, stage) = match (self.patch, self.pre) {
            (Some(p), None) => (Some(p), Stage::Release),
            (Some(p), Some((kind, n))) => (Some(p), Stage::Pre(kind, n)),
            (None, Some((kind, n))) => (None, Stage::Pre(kind, n)),
            // `go1` and, before Go 1.21, `1.N` name the N.0 release; from
            // 1.21 on, `1.N` is only the language version.
            (None, None) if self.minor.is_none() || (self.major, minor) < (1, 21) => {
                (Some(0), Stage::Release)
            }
            (None, None) => (None, Stage::Language),
        };
        (self.major, minor, patch, stage)
    }
}

/// A decimal number without a leading zero (the go command rejects `01`).
fn cut_number(s: &str) -> Option<(u32, &str)> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let digits = &s[..end];
    if digits.is_empty() || (digits.len() > 1 && digits.starts_with('0')) {
        return None;
    }
    Some((digits.parse().ok()?, &s[end..]))
}

fn cut_pre(s: &str) -> Option<(PreRelease, u32)> {
    let end = s.find(|c: char| !c.is_ascii_lowercase()).unwrap_or(s.len());
    let kind = match &s[..end] {
        "alpha" => PreRelease::Alpha,
        "beta" => PreRelease::Beta,
        "rc" => PreRelease::Rc,
        _ => return None,
    };
    let (n, rest) = cut_number(&s[end..])?;
    rest.is_empty().then_some((kind, n))
}

impl fmt::Display for GoVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.major)?;
        if let Some(minor) = self.minor {
            write!(f, ".{minor}")?;
        }
        if let Some(patch) = self.patch {
            write!(f, ".{patch}")?;
        }
        if let Some((kind, n)) = self.pre {
            write!(f, "{}{n}", kind.as_str())?;
        }
        Ok(())
    }
}

impl FromStr for GoVersion {
    type Err = VersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        GoVersion::parse(s)
    }
}

impl PartialEq for GoVersion {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for GoVersion {}

impl Hash for GoVersion {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl PartialOrd for GoVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for GoVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

impl Serialize for GoVersion {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GoVersion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        GoVersion::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn v(s: &str) -> GoVersion {
        GoVersion::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn parses_every_spelling() {
        for (input, shown) in [
            ("1.24.3", "1.24.3"),
            ("go1.24.3", "1.24.3"),
            ("1.24", "1.24"),
            ("go1.21rc2", "1.21rc2"),
            ("go1.9beta1", "1.9beta1"),
            ("go1.9", "1.9"),
            ("go1", "1"),
            ("go1.0.3", "1.0.3"),
            ("1.8.5rc4", "1.8.5rc4"),
            ("1.22alpha1", "1.22alpha1"),
            ("1.100.200", "1.100.200"),
        ] {
            assert_eq!(v(input).to_string(), shown, "{input}");
        }
        assert_eq!(v("go1.24.3").tag(), "go1.24.3");
    }

    #[test]
    fn rejects_what_the_go_command_rejects() {
        for input in [
            "",
            "go",
            "1.",
            "1.24.",
            ".24",
            "1..2",
            "01.24",
            "1.024",
            "1.24.03",
            "1.21rc",
            "1.21RC1",
            "1.21rc01",
            "1.21-rc1",
            "1.21gamma1",
            "1.21.0.1",
            "1.24.3 ",
            " 1.24",
            "v1.24.3",
            "1.24.x",
            "latest",
            "1.21rc1.1",
            "4294967296.1",
            "go1.24.3.linux-amd64",
        ] {
            let err = GoVersion::parse(input).expect_err(input);
            assert!(err.to_string().contains(&format!("{input:?}")), "{err}");
        }
    }

    #[test]
    fn orders_like_internal_gover() {
        // Every adjacent pair is strictly increasing.
        let ordered = [
            "1",
            "1.0.1",
            "1.0.3",
            "1.1",
            "1.2.2",
            "1.9beta1",
            "1.9beta2",
            "1.9rc1",
            "1.9rc2",
            "1.9",
            "1.9.1",
            "1.9.2rc2",
            "1.9.2",
            "1.10beta1",
            "1.10",
            "1.19.13",
            "1.20rc1",
            "1.20rc3",
            "1.20",
            "1.20.1",
            "1.20.14",
            "1.21",
            "1.21alpha1",
            "1.21beta1",
            "1.21rc2",
            "1.21rc4",
            "1.21.0",
            "1.21.1",
            "1.21.10",
            "1.22rc1",
            "1.22.0",
            "1.24",
            "1.24rc1",
            "1.24rc3",
            "1.24.0",
            "1.24.1",
            "1.24.9",
            "1.24.10",
            "1.25rc1",
            "2.0rc1",
            "2.0.0",
        ];
        for pair in ordered.windows(2) {
            assert!(v(pair[0]) < v(pair[1]), "{} < {}", pair[0], pair[1]);
            assert!(v(pair[1]) > v(pair[0]), "{} > {}", pair[1], pair[0]);
        }
        // Sorting a shuffled copy gives the same order back.
        let mut shuffled: Vec<GoVersion> = ordered.iter().rev().map(|s| v(s)).collect();
        shuffled.swap(3, 17);
        shuffled.swap(0, 30);
        shuffled.sort();
        let names: Vec<String> = shuffled.iter().map(ToString::to_string).collect();
        assert_eq!(names, ordered);
    }

    #[test]
    fn numbers_compare_numerically_not_lexically() {
        assert!(v("1.9") < v("1.10"));
        assert!(v("1.24.9") < v("1.24.10"));
        assert!(v("1.21rc9") < v("1.21rc10"));
    }

    #[test]
    fn before_1_21_a_bare_minor_is_the_dot_zero_release() {
        assert_eq!(v("1.20"), v("1.20.0"));
        assert_eq!(v("go1"), v("1.0.0"));
        assert_eq!(v("1.0"), v("1"));
        assert!(v("1.20").is_release());
        assert_eq!(v("1.20").patch(), Some(0));
        // Same meaning, so the same hash (dedup through a HashSet works).
        let set: std::collections::HashSet<GoVersion> =
            [v("1.20"), v("1.20.0"), v("1.9"), v("1.9.0")]
                .into_iter()
                .collect();
        assert_eq!(set.len(), 2);
    }

    #[test]
    fn from_1_21_a_bare_minor_is_the_language_version() {
        assert_ne!(v("1.21"), v("1.21.0"));
        assert!(v("1.21") < v("1.21rc1"));
        assert!(!v("1.21").is_release());
        assert!(!v("1.21").is_pre_release());
        assert_eq!(v("1.21").patch(), None);
        assert_eq!(v("1.21.0").patch(), Some(0));
    }

    #[test]
    fn release_and_pre_release_flags() {
        assert!(v("1.24.3").is_release());
        assert!(!v("1.24.3").is_pre_release());
        assert!(!v("1.21rc2").is_release());
        assert!(v("1.21rc2").is_pre_release());
        assert_eq!(v("1.21rc2").pre_release(), Some((PreRelease::Rc, 2)));
        assert!(!v("1.9beta1").is_release());
        assert!(!v("1.8.5rc4").is_release());
    }

    #[test]
    fn minor_lines() {
        assert_eq!(v("1.24.3").minor_line(), v("1.24rc1").minor_line());
        assert_eq!(v("1.24").minor_line().to_string(), "1.24");
        assert_ne!(v("1.24.3").minor_line(), v("1.25.0").minor_line());
        assert_eq!(v("go1").minor_line().to_string(), "1.0");
    }

    #[test]
    fn serde_round_trip_as_strings() {
        let list = vec![v("1.24.3"), v("1.21rc2"), v("1.20")];
        let json = serde_json::to_string(&list).unwrap();
        assert_eq!(json, r#"["1.24.3","1.21rc2","1.20"]"#);
        let back: Vec<GoVersion> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, list);
        assert!(serde_json::from_str::<GoVersion>(r#""1.x""#).is_err());
    }
}
