//! What a DiffCopy call sends: include/exclude patterns, follow paths and
//! `.dockerignore` files, resolved as fsutil's `NewFilterFS` does.

use std::collections::BTreeSet;
use std::path::Path;

use super::pattern::{clean_path, PatternMatcher};
use crate::error::{Error, Result};

/// Characters that make a pattern more than a path prefix (fsutil's
/// `patternChars` on unix).
const PATTERN_CHARS: &[char] = &['*', '[', ']', '?', '^', '\\'];

/// The include/exclude rules of one DiffCopy call.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub(crate) include: Option<PatternMatcher>,
    pub(crate) exclude: Option<PatternMatcher>,
    /// No include pattern has wildcards before a trailing glob: directories
    /// that no include could reach are skipped without walking.
    pub(crate) only_prefix_includes: bool,
    /// Same for the `!` exceptions of the exclude patterns.
    pub(crate) only_prefix_exclude_exceptions: bool,
}

impl Filter {
    /// Builds the filter for a directory rooted at `root`.
    ///
    /// `follow_paths` are resolved through symlinks under `root` and their
    /// targets added to the include patterns, like fsutil's `FollowLinks`.
    ///
    /// # Errors
    /// [`Error::Pattern`] for malformed patterns, [`Error::Io`] when a follow
    /// path cannot be resolved.
    pub fn new(
        root: &Path,
        includes: &[String],
        excludes: &[String],
        follow_paths: &[String],
    ) -> Result<Self> {
        let mut includes = includes.to_vec();
        if !follow_paths.is_empty() {
            if let Some(targets) = follow_links(root, follow_paths)? {
                includes.extend(targets);
                includes.sort();
                includes = dedupe_paths(&includes).unwrap_or_default();
            }
        }
        let mut filter = Self {
            only_prefix_includes: true,
            only_prefix_exclude_exceptions: true,
            ..Self::default()
        };
        if !includes.is_empty() {
            let pm = PatternMatcher::new(&includes)?;
            filter.only_prefix_includes = !pm
                .patterns()
                .iter()
                .any(|p| !p.is_exclusion() && p.without_trailing_glob().contains(PATTERN_CHARS));
            filter.include = Some(pm);
        }
        if !excludes.is_empty() {
            let pm = PatternMatcher::new(excludes)?;
            filter.only_prefix_exclude_exceptions = !pm
                .patterns()
                .iter()
                .any(|p| p.is_exclusion() && p.without_trailing_glob().contains(PATTERN_CHARS));
            filter.exclude = Some(pm);
        }
        Ok(filter)
    }

    /// Whether `path` would be sent if it exists (checks parents too); used
    /// to refuse requests for files the walk never offered.
    pub fn allows(&self, path: &str) -> bool {
        if let Some(inc) = &self.include {
            if !inc.matches_or_parent_matches(path) {
                return false;
            }
        }
        match &self.exclude {
            Some(exc) => !exc.matches_or_parent_matches(path),
            None => true,
        }
    }
}

/// Reads a `.dockerignore`-style file into patterns (patternmatcher's
/// `ignorefile.ReadAll`): a UTF-8 BOM is dropped, `#` lines are comments,
/// lines are trimmed and cleaned, and a leading `/` is removed.
pub fn parse_ignore_file(content: &str) -> Vec<String> {
    let content = content.strip_prefix('\u{feff}').unwrap_or(content);
    let mut out = Vec::new();
    for line in content.lines() {
        if line.starts_with('#') {
            continue;
        }
        let mut pattern = line.trim();
        if pattern.is_empty() {
            continue;
        }
        let invert = pattern.starts_with('!');
        if invert {
            pattern = pattern[1..].trim();
        }
        let mut cleaned = String::new();
        if !pattern.is_empty() {
            cleaned = clean_path(pattern);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
        }
        if invert {
            cleaned.insert(0, '!');
        }
        out.push(cleaned);
    }
    out
}

/// Reads `root/.dockerignore` if there is one.
///
/// # Errors
/// [`Error::Io`] when the file exists but cannot be read.
pub fn read_dockerignore(root: &Path) -> Result<Vec<String>> {
    let path = root.join(".dockerignore");
    match std::fs::read(&path) {
        Ok(bytes) => Ok(parse_ignore_file(&String::from_utf8_lossy(&bytes))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::io("read", path, e)),
    }
}

/// Resolves symlinks along `paths` under `root` and returns the paths
/// together with every symlink and target met on the way (fsutil's
/// `FollowLinks`). `None` means "no filter" (one of them is the root).
fn follow_links(root: &Path, paths: &[String]) -> Result<Option<Vec<String>>> {
    let mut resolved = BTreeSet::new();
    for p in paths {
        resolve_link(root, p, &mut resolved, 0)?;
    }
    let all: Vec<String> = resolved.into_iter().collect();
    Ok(dedupe_paths(&all))
}

/// Links followed before giving up on a cycle.
const MAX_LINK_DEPTH: usize = 255;

fn resolve_link(
    root: &Path,
    path: &str,
    resolved: &mut BTreeSet<String>,
    depth: usize,
) -> Result<()> {
    if depth > MAX_LINK_DEPTH {
        return Err(Error::io(
            "follow",
            root.join(path),
            std::io::Error::other("too many levels of symbolic links"),
        ));
    }
    let mut current = String::new();
    let mut rest = path;
    loop {
        let (first, remaining) = match rest.split_once('/') {
            Some((first, remaining)) => (first, Some(remaining)),
            None => (rest, None),
        };
        current = clean_path(&format!("{current}/{first}"))
            .trim_start_matches('/')
            .to_owned();
        if current.is_empty() {
            current = ".".to_owned();
        }
        let targets = read_symlinks(root, &current, true)?;
        rest = remaining.unwrap_or("");
        if (rest.is_empty() || targets.is_some()) && resolved.contains(&current) {
            return Ok(());
        }
        if let Some(targets) = targets {
            resolved.insert(current.clone());
            for target in targets {
                let next = format!("{target}/{rest}");
                let next = clean_path(&next);
                resolve_link(root, next.trim_start_matches('/'), resolved, depth + 1)?;
            }
            return Ok(());
        }
        if rest.is_empty() {
            resolved.insert(current);
            return Ok(());
        }
    }
}

/// The symlink target(s) of `rel` under `root`, as absolute-to-root paths;
/// `None` when it is not a symlink (or does not exist). A wildcard last
/// component is expanded against the directory's entries.
fn read_symlinks(root: &Path, rel: &str, allow_wildcard: bool) -> Result<Option<Vec<String>>> {
    let (dir, base) = rel.rsplit_once('/').unwrap_or((".", rel));
    if allow_wildcard && contains_wildcards(base) {
        let pm = PatternMatcher::new(&[base])?;
        let entries = match std::fs::read_dir(root.join(dir)) {
            Ok(entries) => entries,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(Error::io("readdir", root.join(dir), e)),
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .filter(|name| pm.patterns().iter().any(|p| p.matches(name)))
            .collect();
        names.sort();
        let mut out = Vec::new();
        for name in names {
            let child = if dir == "." {
                name
            } else {
                format!("{dir}/{name}")
            };
            if let Some(t) = read_symlinks(root, &child, false)? {
                out.extend(t);
            }
        }
        return Ok(Some(out).filter(|o: &Vec<String>| !o.is_empty()));
    }
    let abs = root.join(rel);
    let meta = match std::fs::symlink_metadata(&abs) {
        Ok(meta) => meta,
        Err(e) if is_not_found(&e) => return Ok(None),
        Err(e) => return Err(Error::io("lstat", abs, e)),
    };
    if !meta.file_type().is_symlink() {
        return Ok(None);
    }
    let link = std::fs::read_link(&abs).map_err(|e| Error::io("readlink", &abs, e))?;
    let link = link
        .to_str()
        .ok_or(Error::NonUtf8Path { path: abs.clone() })?;
    let link = clean_path(link);
    if link.starts_with('/') {
        return Ok(Some(vec![link]));
    }
    Ok(Some(vec![clean_path(&format!("/{dir}/{link}"))]))
}

fn is_not_found(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(20 /* ENOTDIR */)
}

fn contains_wildcards(name: &str) -> bool {
    let mut chars = name.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '*' | '?' | '[' => return true,
            _ => {}
        }
    }
    false
}

/// Drops paths below an earlier path of the sorted input; `None` when the
/// root itself is in it (fsutil's `dedupePaths`).
fn dedupe_paths(sorted: &[String]) -> Option<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for s in sorted {
        if s == "." {
            return None;
        }
        if out
            .last()
            .is_some_and(|last| s.starts_with(&format!("{last}/")))
        {
            continue;
        }
        out.push(s.clone());
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignore_file_rules() {
        let content = "\u{feff}# comment\n\n  node_modules/ \n/abs/path\n! keep.txt\n*.log\n#x\n";
        assert_eq!(
            parse_ignore_file(content),
            ["node_modules", "abs/path", "!keep.txt", "*.log"]
        );
    }

    #[test]
    fn dedupe() {
        let v = vec!["a".to_owned(), "a/b".to_owned(), "ab".to_owned()];
        assert_eq!(
            dedupe_paths(&v),
            Some(vec!["a".to_owned(), "ab".to_owned()])
        );
        assert_eq!(dedupe_paths(&[".".to_owned()]), None);
    }

    #[test]
    fn follow_links_resolves_chain() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::create_dir_all(root.join("real/sub")).expect("mkdir");
        std::fs::write(root.join("real/sub/Dockerfile"), "FROM x").expect("write");
        std::os::unix::fs::symlink("real/sub/Dockerfile", root.join("Dockerfile")).expect("link");
        std::os::unix::fs::symlink("/real", root.join("abs")).expect("link");
        let got = follow_links(root, &["Dockerfile".to_owned(), "abs/sub".to_owned()])
            .expect("follow")
            .expect("some");
        assert_eq!(got, ["Dockerfile", "abs", "real/sub"]);
    }
}
