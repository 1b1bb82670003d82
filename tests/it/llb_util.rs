//! Helpers shared by the `llb_*` tests: solve a graph with `kiln solve`
//! against the harness's daemon and look at what it exported.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::common::*;

/// One `kiln solve` of a graph, with its local export.
pub struct Solved {
    pub run: Run,
    /// The `type=local` export directory.
    pub out: PathBuf,
    /// The `type=tar` export file.
    pub tar: PathBuf,
}

impl Solved {
    /// A file of the export, as text.
    #[track_caller]
    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.out.join(rel)).unwrap_or_else(|e| {
            panic!(
                "{rel} in the export: {e}\nexport: {:?}\nstderr:\n{}",
                self.entries(),
                self.run.stderr
            )
        })
    }

    /// The tar export's entries, sorted, without directories' trailing `/`.
    pub fn entries(&self) -> Vec<String> {
        if !self.tar.exists() {
            return Vec::new();
        }
        let mut e: Vec<String> = tar_list(&self.tar)
            .into_iter()
            .map(|l| l.trim_end_matches('/').to_string())
            .collect();
        e.sort();
        e
    }

    /// Permission bits of an exported path (not following symlinks).
    pub fn mode(&self, rel: &str) -> u32 {
        std::fs::symlink_metadata(self.out.join(rel))
            .unwrap_or_else(|e| panic!("{rel}: {e}"))
            .permissions()
            .mode()
            & 0o7777
    }

    /// Owner `uid:gid` of a path as the tar export records it.
    pub fn tar_owner(&self, rel: &str) -> String {
        let out = std::process::Command::new("tar")
            .args(["--numeric-owner", "-tvf"])
            .arg(&self.tar)
            .output()
            .expect("tar");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        for line in text.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let name = fields.last().copied().unwrap_or_default();
            if name.trim_start_matches("./").trim_end_matches('/') == rel {
                return fields[1].to_string();
            }
        }
        panic!("{rel} not in the tar:\n{text}");
    }

    /// Modification time (Unix seconds) of an exported path.
    pub fn mtime(&self, rel: &str) -> i64 {
        std::fs::symlink_metadata(self.out.join(rel))
            .unwrap_or_else(|e| panic!("{rel}: {e}"))
            .mtime()
    }
}

/// Solves `state` with `kiln solve … ARGS -o type=local -o type=tar` in a
/// subdirectory of `dir` named `name`; the caller checks success.
pub async fn solve_in(dir: &Path, name: &str, state: &kiln_llb::State, args: &[&str]) -> Solved {
    let def = write_llb(dir, &format!("{name}.llb"), state);
    solve_def(dir, name, &def, args, kiln()).await
}

/// Solves an already written Definition with `cmd` (for extra env).
pub async fn solve_def(
    dir: &Path,
    name: &str,
    def: &Path,
    args: &[&str],
    cmd: tokio::process::Command,
) -> Solved {
    let out = dir.join(format!("{name}-out"));
    let tar = dir.join(format!("{name}.tar"));
    let local = format!("type=local,dest={}", out.display());
    let tar_spec = format!("type=tar,dest={}", tar.display());
    let mut all = vec!["solve", "-f", def.to_str().unwrap(), "--progress", "plain"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", &local, "-o", &tar_spec]);
    let mut cmd = cmd;
    cmd.args(daemon().kiln_args());
    let run = run(cmd, &all).await;
    Solved { run, out, tar }
}

/// Solves `state` and asserts it succeeded.
pub async fn solve_ok(dir: &Path, name: &str, state: &kiln_llb::State, args: &[&str]) -> Solved {
    let s = solve_in(dir, name, state, args).await;
    s.run.success();
    s
}

/// A shell RUN on the go fixture image whose `/out` scratch mount is the
/// result: `script` writes its findings there.
pub fn probe(base: &kiln_llb::State, script: &str) -> kiln_llb::State {
    probe_with(base, script, |o| o)
}

/// [`probe`] with extra exec options.
pub fn probe_with(
    base: &kiln_llb::State,
    script: &str,
    f: impl FnOnce(kiln_llb::ExecOptions) -> kiln_llb::ExecOptions,
) -> kiln_llb::State {
    let opts = kiln_llb::ExecOptions::shell(format!("# {}\n{script}", unique()))
        .mount(kiln_llb::Mount::scratch("/out"));
    base.run(f(opts)).get_mount("/out")
}

/// What a RUN changed, for export: `diff(base, upper)` where the daemon has
/// DiffOp; on Docker's classic store (no DiffOp) only `dir` of `upper`,
/// copied onto scratch at the same path, so the export has the same layout.
pub fn changes(base: &kiln_llb::State, upper: &kiln_llb::State, dir: &str) -> kiln_llb::State {
    if daemon().kind == kiln_test_support::DaemonKind::DockerClassic {
        kiln_llb::scratch().copy(kiln_llb::Copy::new(upper, dir, dir).create_dest_path())
    } else {
        kiln_llb::diff(base, upper)
    }
}

/// Writes `files` (relative path → contents) under `root`.
pub fn tree(root: &Path, files: &[(&str, &str)]) {
    for (rel, data) in files {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
}
