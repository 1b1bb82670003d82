//! A day-long on-disk cache of each source's answer.
//!
//! One JSON file per source configuration,
//! `$XDG_CACHE_HOME/kiln/go-versions-<hash>.json` (or `~/.cache/kiln/…`),
//! written to a temporary file and renamed into place so a concurrent kiln
//! never reads half a file.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kiln_go::GoVersion;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::source::{Source, SourceKind};
use crate::error::CacheError;

/// How long a cached list is used without asking the source again.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// Where version lists are cached, and for how long they are fresh.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cache {
    dir: PathBuf,
    max_age: Duration,
}

/// A list read back from the cache.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub path: PathBuf,
    pub url: String,
    pub versions: Vec<GoVersion>,
    pub fetched_at: SystemTime,
}

impl Entry {
    /// How old the entry is; a timestamp in the future counts as stale.
    pub fn age(&self, now: SystemTime) -> Option<Duration> {
        now.duration_since(self.fetched_at).ok()
    }
}

#[derive(Serialize, Deserialize)]
struct CacheFile {
    /// Format version, so a later kiln can change the layout.
    kiln_go_versions: u32,
    source: SourceKind,
    identity: String,
    url: String,
    /// Seconds since the Unix epoch.
    fetched_at: u64,
    versions: Vec<GoVersion>,
}

const FORMAT: u32 = 1;

impl Cache {
    /// A cache in `dir` (created on first write), fresh for a day.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Cache {
            dir: dir.into(),
            max_age: DEFAULT_MAX_AGE,
        }
    }

    /// `$XDG_CACHE_HOME/kiln`, else `$HOME/.cache/kiln`; `None` if neither
    /// variable is usable.
    pub fn from_env() -> Option<Self> {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| {
                std::env::var_os("HOME")
                    .map(PathBuf::from)
                    .filter(|p| p.is_absolute())
                    .map(|h| h.join(".cache"))
            })?;
        Some(Cache::new(base.join("kiln")))
    }

    /// Sets how long an entry is fresh.
    pub fn with_max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How long an entry is fresh.
    pub fn max_age(&self) -> Duration {
        self.max_age
    }

    /// The file that caches `source`'s answer.
    pub fn path_for(&self, source: &Source) -> PathBuf {
        let hash = hex::encode(Sha256::digest(source.identity().as_bytes()));
        self.dir.join(format!("go-versions-{}.json", &hash[..16]))
    }

    /// Reads the entry for `source`; `Ok(None)` if there is none (or it was
    /// written for another configuration that hashed alike).
    pub(crate) fn load(&self, source: &Source) -> Result<Option<Entry>, CacheError> {
        let path = self.path_for(source);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(CacheError::Io {
                    action: "read",
                    path,
                    source,
                })
            }
        };
        let file: CacheFile =
            serde_json::from_slice(&bytes).map_err(|source| CacheError::Corrupt {
                path: path.clone(),
                source,
            })?;
        if file.kiln_go_versions != FORMAT || file.identity != source.identity() {
            return Ok(None);
        }
        Ok(Some(Entry {
            path,
            url: file.url,
            versions: file.versions,
            fetched_at: UNIX_EPOCH + Duration::from_secs(file.fetched_at),
        }))
    }

    /// Writes the entry for `source` atomically (temporary file + rename).
    pub(crate) fn store(
        &self,
        source: &Source,
        url: &str,
        versions: &[GoVersion],
        fetched_at: SystemTime,
    ) -> Result<PathBuf, CacheError> {
        let path = self.path_for(source);
        let io = |action, path: &Path| {
            let path = path.to_owned();
            move |source| CacheError::Io {
                action,
                path,
                source,
            }
        };
        std::fs::create_dir_all(&self.dir).map_err(io("create", &self.dir))?;
        let file = CacheFile {
            kiln_go_versions: FORMAT,
            source: source.kind(),
            identity: source.identity(),
            url: url.to_owned(),
            fetched_at: fetched_at
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            versions: versions.to_vec(),
        };
        let json = serde_json::to_vec_pretty(&file).map_err(|source| CacheError::Corrupt {
            path: path.clone(),
            source,
        })?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".go-versions-")
            .suffix(".tmp")
            .tempfile_in(&self.dir)
            .map_err(io("write", &self.dir))?;
        tmp.write_all(&json).map_err(io("write", tmp.path()))?;
        tmp.persist(&path)
            .map_err(|e| io("write", &path)(e.error))?;
        Ok(path)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::go_release::source::ProxyList;

    fn proxy(url: &str) -> Source {
        Source::Proxy(ProxyList::parse(url).unwrap())
    }

    #[test]
    fn round_trip_and_keyed_by_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().join("kiln"));
        let a = proxy("http://127.0.0.1:1");
        let b = proxy("http://127.0.0.1:2");
        assert!(cache.load(&a).unwrap().is_none());

        let versions: Vec<GoVersion> = ["1.24.3", "1.24rc1", "1.20"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let path = cache
            .store(&a, "http://127.0.0.1:1/x", &versions, at)
            .unwrap();
        assert!(path.starts_with(dir.path().join("kiln")));
        let name = path.file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with("go-versions-") && name.ends_with(".json"),
            "{name}"
        );

        let entry = cache.load(&a).unwrap().unwrap();
        assert_eq!(entry.versions, versions);
        assert_eq!(entry.url, "http://127.0.0.1:1/x");
        assert_eq!(entry.fetched_at, at);
        assert!(cache.load(&b).unwrap().is_none());
        assert_ne!(cache.path_for(&a), cache.path_for(&b));

        // No temporary files left behind.
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("kiln"))
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn corrupt_files_are_errors_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        let a = proxy("http://127.0.0.1:1");
        std::fs::write(cache.path_for(&a), "{not json").unwrap();
        let err = cache.load(&a).unwrap_err();
        assert!(matches!(err, CacheError::Corrupt { .. }), "{err:?}");
    }

    #[test]
    fn unwritable_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        let cache = Cache::new(file.join("kiln"));
        let err = cache
            .store(&proxy("http://127.0.0.1:1"), "u", &[], SystemTime::now())
            .unwrap_err();
        assert!(
            matches!(
                err,
                CacheError::Io {
                    action: "create",
                    ..
                }
            ),
            "{err:?}"
        );
    }
}
