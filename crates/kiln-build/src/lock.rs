//! `kiln.lock`: everything that picks an image (the builder image or its
//! template, the distro, the base, the platforms, the Go version) and the
//! digests they resolved to, so two builds a month apart use the same
//! inputs.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::BuildError;

pub const FILE: &str = "kiln.lock";

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Lock {
    /// The Go release.
    pub go: String,
    /// What picked the images, as configured (flags over kiln.toml); empty
    /// in locks written before kiln recorded them.
    #[serde(default, skip_serializing_if = "Inputs::is_empty")]
    pub inputs: Inputs,
    pub builder: LockedImage,
    pub base: LockedImage,
}

/// The settings a lock was made with.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Inputs {
    /// `--builder-image` (a template with `{go}`/`{distro}`, or a reference).
    #[serde(default)]
    pub builder_image: String,
    #[serde(default)]
    pub distro: String,
    /// `--base-image` as configured.
    #[serde(default)]
    pub base_image: String,
    /// `--platform`s as configured (none: the daemon's).
    #[serde(default)]
    pub platforms: Vec<String>,
}

impl Inputs {
    /// Whether nothing is recorded (a lock from before kiln recorded them).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self == &Inputs::default()
    }
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
    /// Reads `DIR/kiln.lock`; `None` when there is none.
    ///
    /// # Errors
    /// [`BuildError::Lock`] for a file that does not parse,
    /// [`BuildError::File`] for one that cannot be read.
    pub fn load(dir: &Path) -> Result<Option<Lock>, BuildError> {
        let path = dir.join(FILE);
        match std::fs::read_to_string(&path) {
            Ok(t) => Lock::parse(&t, &path).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(BuildError::file("read", path, e)),
        }
    }

    /// Parses the text of a kiln.lock; `path` is only used in errors.
    ///
    /// # Errors
    /// [`BuildError::Lock`] for text that does not parse.
    pub fn parse(text: &str, path: &Path) -> Result<Lock, BuildError> {
        toml::from_str(text).map_err(|e| BuildError::Lock {
            reason: format!("not a valid kiln.lock ({e}); recreate it with `kiln lock --update`"),
            path: path.to_owned(),
        })
    }

    /// The text [`Lock::save`] writes; `path` is only used in errors.
    ///
    /// # Errors
    /// [`BuildError::Lock`] when the lock cannot be encoded.
    pub fn to_text(&self, path: &Path) -> Result<String, BuildError> {
        let encoded = toml::to_string_pretty(self).map_err(|e| BuildError::Lock {
            path: path.to_owned(),
            reason: format!("cannot encode: {e}"),
        })?;
        Ok(format!(
            "# kiln.lock: written by `kiln lock`; `kiln build` uses these exact inputs.\n{encoded}"
        ))
    }

    /// Writes atomically (temporary file, then rename).
    ///
    /// # Errors
    /// [`BuildError::File`] when the file cannot be written.
    pub fn save(&self, dir: &Path) -> Result<(), BuildError> {
        let path = dir.join(FILE);
        let body = self.to_text(&path)?;
        crate::write_atomic(&path, body.as_bytes())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let lock = Lock {
            inputs: Default::default(),
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
