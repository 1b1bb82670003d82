//! The depth-first walk that produces the STAT packets, in the order the
//! daemon validates: a directory before its children, each directory's
//! children sorted byte-wise by name.
//!
//! Filtering follows fsutil's `filterFS.Walk`: an excluded directory is
//! still walked when an exception (or include) might match inside it, and
//! is then sent just before the first entry that is kept below it.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use kiln_proto::fsutil::types::Stat;

use super::filter::Filter;
use super::pattern::MatchInfo;
use super::stat::{make_stat, Hardlinks};
use crate::error::{Error, Result};

/// Receives each kept entry: its `Stat` and its host path.
pub trait Visitor {
    /// Called once per entry, in wire order.
    ///
    /// # Errors
    /// Any error stops the walk and is returned from [`walk`].
    fn visit(&mut self, stat: Stat, abs: &Path) -> Result<()>;
}

impl<F: FnMut(Stat, &Path) -> Result<()>> Visitor for F {
    fn visit(&mut self, stat: Stat, abs: &Path) -> Result<()> {
        self(stat, abs)
    }
}

/// A directory on the current path from the root.
struct Frame {
    /// Its stat, until it has been sent.
    pending: Option<(Stat, PathBuf)>,
    include: MatchInfo,
    exclude: MatchInfo,
}

struct Walker<'a, V> {
    filter: &'a Filter,
    visitor: &'a mut V,
    links: Hardlinks,
    stack: Vec<Frame>,
}

/// Walks `root`, calling `visitor` for every entry the filter keeps.
///
/// # Errors
/// [`Error::Io`] for unreadable directories (entries that vanish during the
/// walk are skipped), [`Error::NonUtf8Path`] for names that cannot be sent,
/// or whatever the visitor returns.
pub fn walk<V: Visitor>(root: &Path, filter: &Filter, visitor: &mut V) -> Result<()> {
    let mut w = Walker {
        filter,
        visitor,
        links: Hardlinks::default(),
        stack: Vec::new(),
    };
    w.walk_dir(root, "")
}

enum Decision {
    /// Not sent, not walked.
    Prune,
    /// Not sent (for now), but walked if a directory.
    Hide,
    /// Sent.
    Keep,
}

impl<V: Visitor> Walker<'_, V> {
    fn walk_dir(&mut self, dir: &Path, prefix: &str) -> Result<()> {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if vanished(&e) => return Ok(()),
            Err(e) => return Err(Error::io("readdir", dir, e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            match entry {
                Ok(entry) => names.push(entry.file_name()),
                Err(e) if vanished(&e) => {}
                Err(e) => return Err(Error::io("readdir", dir, e)),
            }
        }
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            let abs = dir.join(&name);
            let name = name
                .to_str()
                .ok_or_else(|| Error::NonUtf8Path { path: abs.clone() })?;
            let rel = if prefix.is_empty() {
                name.to_owned()
            } else {
                format!("{prefix}/{name}")
            };
            let meta = match std::fs::symlink_metadata(&abs) {
                Ok(meta) => meta,
                Err(e) if vanished(&e) => continue,
                Err(e) => return Err(Error::io("lstat", &abs, e)),
            };
            self.entry(&abs, &rel, &meta)?;
        }
        Ok(())
    }

    fn entry(&mut self, abs: &Path, rel: &str, meta: &std::fs::Metadata) -> Result<()> {
        let is_dir = meta.is_dir();
        let (decision, include, exclude) = self.decide(rel, is_dir);
        if matches!(decision, Decision::Prune) {
            return Ok(());
        }
        let keep = matches!(decision, Decision::Keep);
        let stat = if keep || is_dir {
            Some(make_stat(abs, rel, meta, &mut self.links)?)
        } else {
            None
        };
        if keep {
            self.flush_parents()?;
            if let Some(stat) = stat.clone() {
                self.visitor.visit(stat, abs)?;
            }
        }
        if is_dir {
            self.stack.push(Frame {
                pending: if keep {
                    None
                } else {
                    stat.map(|s| (s, abs.to_path_buf()))
                },
                include,
                exclude,
            });
            let result = self.walk_dir(abs, rel);
            self.stack.pop();
            result?;
        }
        Ok(())
    }

    /// Sends the directories above the current entry that were hidden.
    fn flush_parents(&mut self) -> Result<()> {
        for frame in &mut self.stack {
            if let Some((stat, abs)) = frame.pending.take() {
                self.visitor.visit(stat, &abs)?;
            }
        }
        Ok(())
    }

    fn decide(&self, rel: &str, is_dir: bool) -> (Decision, MatchInfo, MatchInfo) {
        let f = self.filter;
        let parent = self.stack.last();
        let mut hide = false;
        let mut include_info = MatchInfo::default();
        let mut exclude_info = MatchInfo::default();
        if let Some(inc) = &f.include {
            let parent_info = parent.map(|p| &p.include).cloned().unwrap_or_default();
            let (m, info) = inc.matches_using_parent_results(rel, &parent_info);
            include_info = info;
            if !m {
                if is_dir && f.only_prefix_includes {
                    let dir_slash = format!("{rel}/");
                    let reachable = inc.patterns().iter().any(|p| {
                        !p.is_exclusion()
                            && format!("{}/", p.without_trailing_glob()).starts_with(&dir_slash)
                    });
                    if !reachable {
                        return (Decision::Prune, include_info, exclude_info);
                    }
                }
                hide = true;
            }
        }
        if let Some(exc) = &f.exclude {
            let parent_info = parent.map(|p| &p.exclude).cloned().unwrap_or_default();
            let (m, info) = exc.matches_using_parent_results(rel, &parent_info);
            exclude_info = info;
            if m {
                if is_dir && f.only_prefix_exclude_exceptions {
                    if !exc.has_exclusions() {
                        return (Decision::Prune, include_info, exclude_info);
                    }
                    let dir_slash = format!("{rel}/");
                    let reachable = exc.patterns().iter().any(|p| {
                        p.is_exclusion()
                            && format!("{}/", p.without_trailing_glob()).starts_with(&dir_slash)
                    });
                    if !reachable {
                        return (Decision::Prune, include_info, exclude_info);
                    }
                }
                hide = true;
            }
        }
        let decision = if hide { Decision::Hide } else { Decision::Keep };
        (decision, include_info, exclude_info)
    }
}

/// Entries removed while the walk runs are skipped, like fsutil does.
fn vanished(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(20 /* ENOTDIR */)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = dir.path();
        for d in [
            "a/b",
            "a/c",
            "docs/keep",
            "docs/drop",
            "empty",
            "node_modules/x",
        ] {
            fs::create_dir_all(r.join(d)).expect("mkdir");
        }
        for f in [
            "a/b/1.go",
            "a/c/2.txt",
            "a.txt",
            "docs/keep/k.md",
            "docs/drop/d.md",
            "docs/readme.md",
            "node_modules/x/i.js",
            "z.log",
        ] {
            fs::write(r.join(f), f).expect("write");
        }
        dir
    }

    fn paths(root: &Path, inc: &[&str], exc: &[&str]) -> Vec<String> {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let filter = Filter::new(root, &s(inc), &s(exc), &[]).expect("filter");
        let mut out = Vec::new();
        walk(root, &filter, &mut |stat: Stat, _: &Path| {
            out.push(stat.path);
            Ok(())
        })
        .expect("walk");
        out
    }

    #[test]
    fn order_is_depth_first_bytewise() {
        let dir = tree();
        assert_eq!(
            paths(dir.path(), &[], &[]),
            [
                "a",
                "a/b",
                "a/b/1.go",
                "a/c",
                "a/c/2.txt",
                "a.txt",
                "docs",
                "docs/drop",
                "docs/drop/d.md",
                "docs/keep",
                "docs/keep/k.md",
                "docs/readme.md",
                "empty",
                "node_modules",
                "node_modules/x",
                "node_modules/x/i.js",
                "z.log"
            ]
        );
    }

    #[test]
    fn excluded_dir_with_exception_inside_is_walked() {
        let dir = tree();
        assert_eq!(
            paths(
                dir.path(),
                &[],
                &["docs", "!docs/keep", "node_modules", "*.log"]
            ),
            [
                "a",
                "a/b",
                "a/b/1.go",
                "a/c",
                "a/c/2.txt",
                "a.txt",
                "docs",
                "docs/keep",
                "docs/keep/k.md",
                "empty"
            ]
        );
    }

    #[test]
    fn includes_send_parents_lazily() {
        let dir = tree();
        assert_eq!(paths(dir.path(), &["a/c"], &[]), ["a", "a/c", "a/c/2.txt"]);
        assert_eq!(
            paths(dir.path(), &["**/*.md"], &["docs/drop"]),
            ["docs", "docs/keep", "docs/keep/k.md", "docs/readme.md"]
        );
    }

    /// A symlink pointing out of the context is sent as a symlink (its
    /// target text), never followed: nothing from outside is listed.
    #[test]
    fn symlinks_out_of_the_context_are_not_followed() {
        let outside = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(outside.path().join("secret")).expect("mkdir");
        std::fs::write(outside.path().join("secret/key"), "k").expect("write");
        let ctx = tempfile::tempdir().expect("tempdir");
        std::fs::write(ctx.path().join("a.txt"), "a").expect("write");
        std::os::unix::fs::symlink(outside.path().join("secret"), ctx.path().join("link"))
            .expect("symlink");
        std::os::unix::fs::symlink("../../etc/passwd", ctx.path().join("up")).expect("symlink");
        let filter = Filter::default();
        let mut seen = Vec::new();
        walk(ctx.path(), &filter, &mut |stat: Stat, abs: &Path| {
            assert!(abs.starts_with(ctx.path()), "{} is outside", abs.display());
            seen.push((
                stat.path,
                stat.mode & crate::filesync::MODE_SYMLINK != 0,
                stat.linkname,
            ));
            Ok(())
        })
        .expect("walk");
        let out = outside.path().join("secret").display().to_string();
        assert_eq!(
            seen,
            [
                ("a.txt".to_string(), false, String::new()),
                ("link".to_string(), true, out),
                ("up".to_string(), true, "../../etc/passwd".to_string()),
            ]
        );
    }

    /// Excluded files are neither listed nor reachable by id; a file that
    /// vanishes while the walk runs is left out, and the walk goes on.
    #[test]
    fn excluded_and_vanishing_files_are_not_sent() {
        let dir = tree();
        let root = dir.path().to_path_buf();
        let filter = Filter::new(&root, &[], &["*.log".to_string(), "docs".to_string()], &[])
            .expect("filter");
        let mut seen = Vec::new();
        walk(&root, &filter, &mut |stat: Stat, _: &Path| {
            // While "a" is visited, delete what comes later in the walk.
            if stat.path == "a" {
                std::fs::remove_file(root.join("a.txt")).expect("rm");
                std::fs::remove_dir_all(root.join("node_modules")).expect("rm");
            }
            seen.push(stat.path);
            Ok(())
        })
        .expect("a vanished entry is not an error");
        assert_eq!(seen, ["a", "a/b", "a/b/1.go", "a/c", "a/c/2.txt", "empty"]);
        assert!(!filter.allows("z.log") && !filter.allows("docs/keep/k.md"));
    }
}
