//! The session a build attaches: local directories, secrets, ssh agents,
//! client-side OCI layouts, registry credentials, and where the daemon's
//! file outputs land.

use std::collections::BTreeMap;
use std::path::PathBuf;

use kiln_client::kiln_session::{
    DockerAuth, ExportTarget, SecretSpec, SecretStore, Session, SshAgents, SshSpec, SyncDirOptions,
};
use kiln_client::ExporterSpec;

use crate::error::BuildError;
use crate::spec::{Dest, SpecError};

/// What a session serves besides outputs.
#[derive(Clone, Debug, Default)]
pub struct SessionSpec {
    /// `local://NAME` directories.
    pub locals: Vec<(String, PathBuf, SyncDirOptions)>,
    pub secrets: Vec<SecretSpec>,
    pub ssh: Vec<SshSpec>,
    /// OCI layout directories by store id (`oci-layout://` sources).
    pub oci_layouts: Vec<(String, PathBuf)>,
    /// `type=local` cache directories: (the `src`/`dest` attr, the
    /// directory, writable for an export).
    pub local_caches: Vec<(String, PathBuf, bool)>,
}

/// Where the session writes a daemon's file output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A file (or stdout), written to a temporary file and renamed at the end.
    File(Dest),
    /// A directory (the `local` exporter).
    Dir(PathBuf),
}

/// One exporter as the daemon gets it, and where the session puts its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaemonOutput {
    pub exporter: ExporterSpec,
    pub target: Option<Target>,
}

/// Parses `NAME=DIR` (`--local`, `--oci-layout`), checking the directory exists.
///
/// # Errors
/// [`SpecError`] for a value without `=` or a path that is not a directory.
pub fn parse_named_dir(flag: &'static str, value: &str) -> Result<(String, PathBuf), SpecError> {
    let (name, dir) = value
        .split_once('=')
        .filter(|(n, d)| !n.is_empty() && !d.is_empty())
        .ok_or_else(|| SpecError::new(flag, value, "not NAME=DIR"))?;
    let dir = PathBuf::from(dir);
    if !dir.is_dir() {
        return Err(SpecError::new(
            flag,
            value,
            format!("{} is not a directory", dir.display()),
        ));
    }
    Ok((name.to_string(), dir))
}

impl SessionSpec {
    /// Builds the session; `outputs` are registered by their index (the
    /// exporter id the daemon names when it sends files).
    ///
    /// # Errors
    /// [`BuildError::Invalid`] for secrets or agents that cannot be served
    /// (a missing file, a socket that is not there).
    pub fn build(&self, outputs: &[DaemonOutput]) -> Result<Session, BuildError> {
        let mut b = Session::builder().shared_key(self.shared_key());
        for (name, dir, opts) in &self.locals {
            b = b.sync_dir(name.clone(), dir.clone(), opts.clone());
        }
        if !self.secrets.is_empty() {
            let mut store = SecretStore::new();
            for s in &self.secrets {
                store.add_spec(s.clone()).map_err(|e| {
                    BuildError::invalid(format!("--secret id={}", s.id.as_str()), e.to_string())
                })?;
            }
            b = b.secrets(store);
        }
        if !self.ssh.is_empty() {
            let mut agents = SshAgents::new();
            for s in &self.ssh {
                agents
                    .add(s.clone())
                    .map_err(|e| BuildError::invalid(format!("--ssh {}", s.id), e.to_string()))?;
            }
            b = b.ssh(agents);
        }
        for (id, dir) in &self.oci_layouts {
            b = b.oci_layout(id.clone(), dir.clone());
        }
        for (attr, dir, writable) in &self.local_caches {
            b = b.local_cache(attr.clone(), dir.clone(), *writable);
        }
        b = b.auth(DockerAuth::from_env());
        for (i, o) in outputs.iter().enumerate() {
            let index =
                u32::try_from(i).map_err(|_| BuildError::invalid("-o", "too many outputs"))?;
            match &o.target {
                Some(Target::File(Dest::Stdout)) => b = b.export(index, ExportTarget::stdout()),
                Some(Target::File(Dest::File(f))) => b = b.export(index, ExportTarget::file(f)),
                Some(Target::Dir(d)) => b = b.export(index, ExportTarget::directory(d)),
                None => {}
            }
        }
        b.build()
            .map_err(|e| BuildError::invalid("the build session", e.to_string()))
    }

    /// The daemon keeps one copy of a local dir per (name, hint, shared
    /// key): the key is derived from the directories' absolute paths, so
    /// rebuilds of the same dir send only changes while builds of different
    /// dirs never share (and race on) one copy.
    fn shared_key(&self) -> String {
        use sha2::Digest as _;
        let mut dirs: Vec<String> = self
            .locals
            .iter()
            .map(|(n, d, _)| {
                let abs = std::fs::canonicalize(d).unwrap_or_else(|_| d.clone());
                format!("{n}={}", abs.display())
            })
            .collect();
        dirs.sort();
        let h = sha2::Sha256::digest(dirs.join("\n").as_bytes());
        format!("kiln-{}", &hex::encode(h)[..24])
    }
}

/// A daemon output for an exporter without a file (`image`, `moby`).
#[must_use]
pub fn storeless(kind: &str, attrs: BTreeMap<String, String>) -> DaemonOutput {
    DaemonOutput {
        exporter: ExporterSpec {
            kind: kind.to_string(),
            attrs,
        },
        target: None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn named_dirs() {
        let d = tempfile::tempdir().unwrap();
        let v = format!("ctx={}", d.path().display());
        assert_eq!(parse_named_dir("--local", &v).unwrap().0, "ctx");
        let e = parse_named_dir("--local", "ctx").unwrap_err().to_string();
        assert!(e.contains("NAME=DIR") && e.starts_with("--local"), "{e}");
        let e = parse_named_dir("--oci-layout", "x=/nonexistent")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a directory"), "{e}");
    }

    #[test]
    fn the_shared_key_follows_the_directories_not_their_order() {
        let a = SessionSpec {
            locals: vec![
                ("a".into(), "/x".into(), SyncDirOptions::default()),
                ("b".into(), "/y".into(), SyncDirOptions::default()),
            ],
            ..Default::default()
        };
        let mut b = a.clone();
        b.locals.reverse();
        assert_eq!(a.shared_key(), b.shared_key());
        let mut c = a.clone();
        c.locals[0].1 = "/z".into();
        assert_ne!(a.shared_key(), c.shared_key());
    }
}
