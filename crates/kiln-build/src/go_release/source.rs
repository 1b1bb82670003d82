//! Where the list of Go releases comes from, configured from the environment
//! the way the go command configures itself.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::GoReleaseError;

/// The module whose versions are the Go toolchains.
pub const TOOLCHAIN_MODULE: &str = "golang.org/toolchain";
/// The go command's default GOPROXY.
pub const DEFAULT_GOPROXY: &str = "https://proxy.golang.org,direct";
/// The JSON list of every Go release on go.dev.
pub const DEFAULT_GODEV_URL: &str = "https://go.dev/dl/?mode=json&include=all";
/// Go's own repository.
pub const DEFAULT_GIT_URL: &str = "https://go.googlesource.com/go";
/// Overrides [`DEFAULT_GODEV_URL`] (tests point it at a local server).
pub const GODEV_URL_ENV: &str = "KILN_GODEV_URL";
/// Overrides [`DEFAULT_GIT_URL`] (tests point it at a local repository).
pub const GIT_URL_ENV: &str = "KILN_GO_GIT_URL";

/// The kind of source, as `--go-source` names it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum SourceKind {
    /// The module proxy's `golang.org/toolchain/@v/list` (the default: it
    /// has a release as soon as the go command can download it).
    #[default]
    Proxy,
    /// `go.dev/dl/?mode=json&include=all`.
    Godev,
    /// `git ls-remote --tags` on Go's repository.
    Git,
}

impl SourceKind {
    /// The name `--go-source` uses.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Proxy => "proxy",
            SourceKind::Godev => "godev",
            SourceKind::Git => "git",
        }
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SourceKind {
    type Err = GoReleaseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "proxy" => Ok(SourceKind::Proxy),
            "godev" => Ok(SourceKind::Godev),
            "git" => Ok(SourceKind::Git),
            _ => Err(GoReleaseError::UnknownSource {
                input: s.to_owned(),
            }),
        }
    }
}

/// One GOPROXY entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProxyEntry {
    /// A proxy base URL (`https://…`, `http://…` or `file://…`).
    Url {
        /// The base URL, without a trailing slash.
        url: String,
        /// Whether the next entry is tried on any error (`|` follows this
        /// entry) rather than only on 404/410 (`,`).
        fall_back_on_error: bool,
    },
    /// `direct`: kiln does not fetch modules from their origin, so it skips it.
    Direct,
    /// `off`: stop here.
    Off,
}

/// A parsed GOPROXY list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyList {
    raw: String,
    entries: Vec<ProxyEntry>,
}

impl ProxyList {
    /// Parses a GOPROXY value like the go command: entries separated by `,`
    /// (fall through on 404/410) or `|` (fall through on any error); an entry
    /// with a dot or colon but no scheme gets `https://`.
    ///
    /// # Errors
    /// [`GoReleaseError::InvalidProxy`] for an entry that is neither a URL nor
    /// `direct`/`off`; [`GoReleaseError::ProxyOff`] if `off` comes before any URL;
    /// [`GoReleaseError::NoProxy`] if there is no URL at all.
    pub fn parse(goproxy: &str) -> Result<Self, GoReleaseError> {
        let mut entries = Vec::new();
        let mut rest = goproxy;
        while !rest.is_empty() {
            let (entry, sep, after) = match rest.find([',', '|']) {
                Some(i) => (&rest[..i], rest[i..].chars().next(), &rest[i + 1..]),
                None => (rest, None, ""),
            };
            rest = after;
            let entry = entry.trim();
            if entry.is_empty() {
                continue;
            }
            entries.push(match entry {
                "direct" => ProxyEntry::Direct,
                "off" => ProxyEntry::Off,
                _ => ProxyEntry::Url {
                    url: proxy_url(entry)?,
                    fall_back_on_error: sep == Some('|'),
                },
            });
        }
        for entry in &entries {
            match entry {
                ProxyEntry::Url { .. } => {
                    return Ok(ProxyList {
                        raw: goproxy.to_owned(),
                        entries,
                    })
                }
                ProxyEntry::Off => {
                    return Err(GoReleaseError::ProxyOff {
                        goproxy: goproxy.to_owned(),
                    })
                }
                ProxyEntry::Direct => {}
            }
        }
        Err(GoReleaseError::NoProxy {
            goproxy: goproxy.to_owned(),
        })
    }

    /// The entries in order.
    pub fn entries(&self) -> &[ProxyEntry] {
        &self.entries
    }

    /// The GOPROXY value this was parsed from.
    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

fn proxy_url(entry: &str) -> Result<String, GoReleaseError> {
    let invalid = || GoReleaseError::InvalidProxy {
        entry: entry.to_owned(),
    };
    let url = if entry.contains("://") {
        entry.to_owned()
    } else if entry.contains(['.', ':']) && !entry.contains(":/") && !entry.starts_with('/') {
        format!("https://{entry}")
    } else {
        return Err(invalid());
    };
    let scheme_ok = ["http://", "https://", "file://"]
        .iter()
        .any(|s| url.len() > s.len() && url[..s.len()].eq_ignore_ascii_case(s));
    if !scheme_ok {
        return Err(invalid());
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// A configured source of Go releases.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source {
    /// The module proxies of GOPROXY.
    Proxy(ProxyList),
    /// go.dev's JSON list.
    Godev {
        /// The full URL, query included.
        url: String,
    },
    /// `git ls-remote --tags URL 'go*'`.
    Git {
        /// The repository URL or path.
        url: String,
        /// The git program.
        program: PathBuf,
    },
}

impl Source {
    /// Configures `kind` from the process environment: GOPROXY, GONOPROXY and
    /// GOPRIVATE (also read from the go command's `go env -w` file when not
    /// set in the environment), [`GODEV_URL_ENV`] and [`GIT_URL_ENV`].
    ///
    /// # Errors
    /// See [`Source::from_vars`].
    pub fn from_env(kind: SourceKind) -> Result<Self, GoReleaseError> {
        let file = go_env_file();
        Self::from_vars(kind, |name| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.is_empty())
                .or_else(|| file.as_ref().and_then(|f| go_env_lookup(f, name)))
        })
    }

    /// Configures `kind` from variables looked up by `var` (tests pass a map).
    ///
    /// # Errors
    /// For [`SourceKind::Proxy`]: the errors of [`ProxyList::parse`], and
    /// [`GoReleaseError::ProxyExcluded`] when GONOPROXY (or, if that is unset,
    /// GOPRIVATE) matches `golang.org/toolchain`.
    pub fn from_vars(
        kind: SourceKind,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, GoReleaseError> {
        let non_empty = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        match kind {
            SourceKind::Proxy => {
                let (variable, patterns) = match non_empty("GONOPROXY") {
                    Some(p) => ("GONOPROXY", Some(p)),
                    None => ("GOPRIVATE", non_empty("GOPRIVATE")),
                };
                if let Some(pattern) = patterns
                    .as_deref()
                    .and_then(|p| match_prefix_patterns(p, TOOLCHAIN_MODULE))
                {
                    return Err(GoReleaseError::ProxyExcluded {
                        variable,
                        pattern: pattern.to_owned(),
                    });
                }
                let goproxy = non_empty("GOPROXY").unwrap_or_else(|| DEFAULT_GOPROXY.to_owned());
                Ok(Source::Proxy(ProxyList::parse(&goproxy)?))
            }
            SourceKind::Godev => Ok(Source::Godev {
                url: non_empty(GODEV_URL_ENV).unwrap_or_else(|| DEFAULT_GODEV_URL.to_owned()),
            }),
            SourceKind::Git => Ok(Source::Git {
                url: non_empty(GIT_URL_ENV).unwrap_or_else(|| DEFAULT_GIT_URL.to_owned()),
                program: PathBuf::from("git"),
            }),
        }
    }

    /// The kind of this source.
    pub fn kind(&self) -> SourceKind {
        match self {
            Source::Proxy(_) => SourceKind::Proxy,
            Source::Godev { .. } => SourceKind::Godev,
            Source::Git { .. } => SourceKind::Git,
        }
    }

    /// A description that identifies the configuration: the GOPROXY list,
    /// the go.dev URL or the repository. Cache files are keyed by it.
    pub fn identity(&self) -> String {
        match self {
            Source::Proxy(list) => format!("proxy {}", list.as_str()),
            Source::Godev { url } => format!("godev {url}"),
            Source::Git { url, .. } => format!("git {url}"),
        }
    }

    /// The URL to show before one has answered: the first proxy, the go.dev
    /// URL or the repository.
    pub fn display_url(&self) -> String {
        match self {
            Source::Proxy(list) => list
                .entries()
                .iter()
                .find_map(|e| match e {
                    ProxyEntry::Url { url, .. } => Some(toolchain_list_url(url)),
                    _ => None,
                })
                .unwrap_or_else(|| list.as_str().to_owned()),
            Source::Godev { url } | Source::Git { url, .. } => url.clone(),
        }
    }
}

/// `BASE/golang.org/toolchain/@v/list`.
pub(crate) fn toolchain_list_url(base: &str) -> String {
    format!("{}/{TOOLCHAIN_MODULE}/@v/list", base.trim_end_matches('/'))
}

/// The go command's config file (`go env -w`): `$GOENV`, else
/// `$XDG_CONFIG_HOME/go/env` or `~/.config/go/env`. `GOENV=off` disables it.
fn go_env_file() -> Option<String> {
    let path = match std::env::var_os("GOENV").filter(|v| !v.is_empty()) {
        Some(v) if v == "off" => return None,
        Some(v) => PathBuf::from(v),
        None => {
            let config = std::env::var_os("XDG_CONFIG_HOME")
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
            config.join("go").join("env")
        }
    };
    std::fs::read_to_string(path).ok()
}

/// `KEY=VALUE` lines, as the go command reads its config file.
fn go_env_lookup(file: &str, name: &str) -> Option<String> {
    file.lines().rev().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        (key.trim() == name)
            .then(|| value.trim().to_owned())
            .filter(|v| !v.is_empty())
    })
}

/// The pattern of a comma-separated glob list (GONOPROXY syntax) that
/// matches a prefix of `target`, as `golang.org/x/mod/module.MatchPrefixPatterns`
/// decides: a pattern of N path elements matches the first N elements.
pub(crate) fn match_prefix_patterns<'a>(globs: &'a str, target: &str) -> Option<&'a str> {
    for glob in globs.split(',') {
        let glob = glob.trim_end_matches('/');
        if glob.is_empty() {
            continue;
        }
        let elements = glob.matches('/').count() + 1;
        let target_elements: Vec<&str> = target.split('/').collect();
        if target_elements.len() < elements {
            continue;
        }
        let prefix = target_elements[..elements].join("/");
        if path_match(glob.as_bytes(), prefix.as_bytes()) {
            return Some(glob);
        }
    }
    None
}

/// Go's `path.Match`: `*` is any run of non-`/` bytes, `?` one non-`/` byte,
/// `[...]` a class (`^` negates, `a-z` ranges), `\` escapes. A malformed
/// pattern matches nothing.
fn path_match(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.first() {
        None => name.is_empty(),
        Some(b'*') => {
            let rest = &pattern[1..];
            let mut i = 0;
            loop {
                if path_match(rest, &name[i..]) {
                    return true;
                }
                if i == name.len() || name[i] == b'/' {
                    return false;
                }
                i += 1;
            }
        }
        Some(b'?') => match name.first() {
            Some(&c) if c != b'/' => path_match(&pattern[1..], &name[1..]),
            _ => false,
        },
        Some(b'[') => {
            let Some(&c) = name.first() else {
                return false;
            };
            if c == b'/' {
                return false;
            }
            match match_class(&pattern[1..], c) {
                Some((true, rest)) => path_match(rest, &name[1..]),
                _ => false,
            }
        }
        Some(b'\\') => match (pattern.get(1), name.first()) {
            (Some(p), Some(n)) if p == n => path_match(&pattern[2..], &name[1..]),
            _ => false,
        },
        Some(&p) => name.first() == Some(&p) && path_match(&pattern[1..], &name[1..]),
    }
}

/// Matches `c` against the class after `[`; returns whether it matched and
/// the pattern after `]`, or `None` if the class is malformed.
fn match_class(class: &[u8], c: u8) -> Option<(bool, &[u8])> {
    let (negated, mut rest) = match class.first() {
        Some(b'^') => (true, &class[1..]),
        _ => (false, class),
    };
    let mut matched = false;
    let mut first = true;
    loop {
        match rest.first()? {
            b']' if !first => return Some((matched != negated, &rest[1..])),
            _ => {}
        }
        first = false;
        let (lo, after) = class_char(rest)?;
        rest = after;
        let hi = if rest.first() == Some(&b'-') && rest.get(1) != Some(&b']') {
            let (hi, after) = class_char(&rest[1..])?;
            rest = after;
            hi
        } else {
            lo
        };
        if lo <= c && c <= hi {
            matched = true;
        }
    }
}

fn class_char(s: &[u8]) -> Option<(u8, &[u8])> {
    match s.first()? {
        b'\\' => Some((*s.get(1)?, &s[2..])),
        b'-' | b']' => None,
        &c => Some((c, &s[1..])),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn url(url: &str, fall_back_on_error: bool) -> ProxyEntry {
        ProxyEntry::Url {
            url: url.into(),
            fall_back_on_error,
        }
    }

    #[test]
    fn default_goproxy() {
        let Source::Proxy(list) = Source::from_vars(SourceKind::Proxy, vars(&[])).unwrap() else {
            panic!("not a proxy source");
        };
        assert_eq!(
            list.entries(),
            [url("https://proxy.golang.org", false), ProxyEntry::Direct]
        );
        assert_eq!(
            Source::Proxy(list).display_url(),
            "https://proxy.golang.org/golang.org/toolchain/@v/list"
        );
    }

    #[test]
    fn goproxy_separators_and_keywords() {
        let list = ProxyList::parse(
            "https://a.example/,http://127.0.0.1:8080|goproxy.example/x,direct,off",
        )
        .unwrap();
        assert_eq!(
            list.entries(),
            [
                url("https://a.example", false),
                url("http://127.0.0.1:8080", true),
                url("https://goproxy.example/x", false),
                ProxyEntry::Direct,
                ProxyEntry::Off,
            ]
        );
        let list = ProxyList::parse("file:///srv/goproxy").unwrap();
        assert_eq!(list.entries(), [url("file:///srv/goproxy", false)]);
        assert_eq!(
            ProxyList::parse(" ,https://x.example,, ")
                .unwrap()
                .entries()
                .len(),
            1
        );
    }

    #[test]
    fn goproxy_errors() {
        assert!(matches!(
            ProxyList::parse("off"),
            Err(GoReleaseError::ProxyOff { .. })
        ));
        assert!(matches!(
            ProxyList::parse("direct,off"),
            Err(GoReleaseError::ProxyOff { .. })
        ));
        let err = ProxyList::parse("off").unwrap_err().to_string();
        assert!(
            err.contains("GOPROXY=\"off\"") && err.contains("--go"),
            "{err}"
        );
        assert!(matches!(
            ProxyList::parse("direct"),
            Err(GoReleaseError::NoProxy { .. })
        ));
        assert!(matches!(
            ProxyList::parse(""),
            Err(GoReleaseError::NoProxy { .. })
        ));
        for bad in ["noproxy", "ftp://x.example", "/srv/goproxy", "https://"] {
            assert!(
                matches!(
                    ProxyList::parse(bad),
                    Err(GoReleaseError::InvalidProxy { .. })
                ),
                "{bad}"
            );
        }
        // `off` after a usable URL is only reached if that URL answers 404.
        assert!(ProxyList::parse("https://a.example,off").is_ok());
    }

    #[test]
    fn gonoproxy_and_goprivate_exclude_the_toolchain_module() {
        for (var, value) in [
            ("GONOPROXY", "golang.org"),
            ("GONOPROXY", "golang.org/toolchain"),
            ("GONOPROXY", "example.com,golang.org/*"),
            ("GOPRIVATE", "*.org"),
            ("GOPRIVATE", "golang.org/toolchain/"),
            ("GOPRIVATE", "golang.[n-p]rg"),
        ] {
            let err = Source::from_vars(SourceKind::Proxy, vars(&[(var, value)])).unwrap_err();
            assert!(
                matches!(&err, GoReleaseError::ProxyExcluded { variable, .. } if *variable == var),
                "{var}={value}: {err:?}"
            );
        }
        for value in [
            "golang.org/x",
            "example.com",
            "golang.org/toolchain/extra",
            "*.com",
            "go*.net",
        ] {
            assert!(
                Source::from_vars(SourceKind::Proxy, vars(&[("GOPRIVATE", value)])).is_ok(),
                "{value}"
            );
        }
        // GONOPROXY overrides GOPRIVATE; `none` matches nothing.
        assert!(Source::from_vars(
            SourceKind::Proxy,
            vars(&[("GOPRIVATE", "golang.org"), ("GONOPROXY", "none")])
        )
        .is_ok());
        // Other sources do not care.
        assert!(Source::from_vars(SourceKind::Git, vars(&[("GOPRIVATE", "*")])).is_ok());
    }

    #[test]
    fn path_match_like_go() {
        let m = |p: &str, n: &str| path_match(p.as_bytes(), n.as_bytes());
        assert!(m("abc", "abc"));
        assert!(m("*", "abc"));
        assert!(!m("*", "a/b"));
        assert!(m("*/b", "a/b"));
        assert!(m("a*b*c", "axxbyyc"));
        assert!(m("a?c", "abc"));
        assert!(!m("a?c", "a/c"));
        assert!(m("[a-c]x", "bx"));
        assert!(!m("[^a-c]x", "bx"));
        assert!(m("[^a-c]x", "dx"));
        assert!(m("a\\*", "a*"));
        assert!(!m("a\\*", "ab"));
        assert!(!m("[", "a"));
        assert!(!m("[]a]", "a"));
    }

    #[test]
    fn godev_and_git_urls_are_overridable() {
        let s = Source::from_vars(SourceKind::Godev, vars(&[])).unwrap();
        assert_eq!(s.display_url(), DEFAULT_GODEV_URL);
        let s = Source::from_vars(
            SourceKind::Godev,
            vars(&[(GODEV_URL_ENV, "http://127.0.0.1:1/x")]),
        )
        .unwrap();
        assert_eq!(s.display_url(), "http://127.0.0.1:1/x");
        let s = Source::from_vars(SourceKind::Git, vars(&[(GIT_URL_ENV, "/srv/go.git")])).unwrap();
        assert_eq!(s.display_url(), "/srv/go.git");
        assert_eq!(s.kind(), SourceKind::Git);
        assert_ne!(
            s.identity(),
            Source::from_vars(SourceKind::Git, vars(&[]))
                .unwrap()
                .identity()
        );
    }

    #[test]
    fn source_kind_names() {
        for kind in [SourceKind::Proxy, SourceKind::Godev, SourceKind::Git] {
            assert_eq!(kind.as_str().parse::<SourceKind>().unwrap(), kind);
        }
        assert!(matches!(
            "github".parse::<SourceKind>(),
            Err(GoReleaseError::UnknownSource { .. })
        ));
    }

    #[test]
    fn go_env_file_lines() {
        let file = "GOPROXY=https://a.example\nGOPRIVATE=\nGOPROXY=https://b.example\n";
        assert_eq!(
            go_env_lookup(file, "GOPROXY").as_deref(),
            Some("https://b.example")
        );
        assert_eq!(go_env_lookup(file, "GOPRIVATE"), None);
        assert_eq!(go_env_lookup(file, "GOFLAGS"), None);
    }
}
