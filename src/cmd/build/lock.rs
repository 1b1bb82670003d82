//! `kiln.lock`: the Go version and the builder and base image digests a
//! build used, so two builds a month apart use the same inputs.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

pub const FILE: &str = "kiln.lock";

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Lock {
    /// The Go release.
    pub go: String,
    pub builder: LockedImage,
    pub base: LockedImage,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LockedImage {
    /// The reference as configured (`golang:1.24.7-bookworm`), normalised.
    pub name: String,
    /// The index (or single manifest) digest it resolved to.
    pub digest: String,
    /// Each platform's manifest digest, by platform (`linux/amd64`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub platforms: BTreeMap<String, String>,
}

impl Lock {
    pub fn load(dir: &Path) -> anyhow::Result<Option<Lock>> {
        let path = dir.join(FILE);
        match std::fs::read_to_string(&path) {
            Ok(t) => toml::from_str(&t).map(Some).with_context(|| {
                format!(
                    "{} is not a valid kiln.lock; recreate it with `kiln lock --update`",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Writes atomically (temporary file, then rename).
    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        let body = format!(
            "# kiln.lock: written by `kiln lock`; `kiln build` uses these exact inputs.\n{}",
            toml::to_string_pretty(self).context("cannot encode kiln.lock")?
        );
        let path = dir.join(FILE);
        let tmp = dir.join(format!(".{FILE}.tmp-{}", std::process::id()));
        std::fs::write(&tmp, body).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let lock = Lock {
            go: "1.24.7".into(),
            builder: LockedImage {
                name: "docker.io/library/golang:1.24.7-bookworm".into(),
                digest: format!("sha256:{}", "a".repeat(64)),
                platforms: BTreeMap::from([(
                    "linux/amd64".into(),
                    format!("sha256:{}", "b".repeat(64)),
                )]),
            },
            base: LockedImage::default(),
        };
        lock.save(dir.path()).unwrap();
        assert_eq!(Lock::load(dir.path()).unwrap(), Some(lock));
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }
}
