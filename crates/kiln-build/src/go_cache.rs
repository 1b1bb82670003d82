//! Go's build cache across fresh CI runners (`--go-cache-to`,
//! `--go-cache-from`): BuildKit never exports cache mounts, so kiln's
//! graph does it. Before `go build`, a step fills the build cache mount
//! from the imported cache where the mount is empty or older; after the
//! build, a second solve of the same (cached) graph runs one step that
//! copies the cache mount out (entries used in the last five days, what Go
//! itself keeps) and exports it: to a registry as a one-layer image (zstd),
//! or to a directory. One cache per platform (Go's build cache differs per
//! GOOS/GOARCH): the ref's tag or the directory gets the platform
//! (`app:go-cache` → `app:go-cache-linux-arm64`, `DIR` → `DIR/linux-arm64`),
//! so the runners of a matrix never overwrite each other's.
//!
//! ```
//! use kiln_build::go_cache::{GoCacheSpec, GoCacheDest};
//! let to = GoCacheSpec::export("type=registry,ref=r.example/app:go-cache")?;
//! let p = kiln_image::Platform::parse("linux/arm64").unwrap();
//! assert_eq!(to.for_platform(&p).to_string(), "r.example/app:go-cache-linux-arm64");
//! let from = GoCacheSpec::import("type=local,src=/ci/go-cache")?;
//! assert!(matches!(from.dest, GoCacheDest::Local(_)));
//! # Ok::<(), kiln_build::spec::SpecError>(())
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

use kiln_image::{ImageRef, Platform};

use crate::spec::{csv, SpecError};

/// The stamp file of an exported cache (seconds since 1970 of the export).
pub const STAMP: &str = "kiln-go-cache";

/// Where a Go cache is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GoCacheDest {
    /// An image in a registry (the ref before the platform is added).
    Registry(ImageRef),
    /// A directory on the client (per-platform subdirectories).
    Local(PathBuf),
}

/// One `--go-cache-to` or `--go-cache-from`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoCacheSpec {
    pub dest: GoCacheDest,
    /// An export failure is a warning, not an error.
    pub ignore_error: bool,
    /// The export also holds the module cache's downloads (`modules=true`).
    pub modules: bool,
    /// The spec as given (for messages).
    pub spec: String,
    /// `--go-cache-to` or `--go-cache-from`.
    pub flag: &'static str,
}

/// Where one platform's cache is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlatformCache {
    Registry(ImageRef),
    Local(PathBuf),
}

impl fmt::Display for PlatformCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlatformCache::Registry(r) => write!(f, "{r}"),
            PlatformCache::Local(d) => write!(f, "{}", d.display()),
        }
    }
}

/// `linux/arm64/v8` → `linux-arm64-v8`.
#[must_use]
pub fn platform_slug(p: &Platform) -> String {
    p.to_string().replace('/', "-")
}

fn parse(flag: &'static str, spec: &str, export: bool) -> Result<GoCacheSpec, SpecError> {
    let bad = |why: String| SpecError::new(flag, spec, why);
    let fields = csv::fields(spec).map_err(|e| bad(e.to_string()))?;
    let (mut kind, mut reference, mut dir, mut ignore_error, mut modules) =
        (None, None, None, false, false);
    for f in &fields {
        let (k, v) = csv::key_value(f).ok_or_else(|| bad(format!("{f:?} is not KEY=VALUE")))?;
        match k {
            "type" => kind = Some(v.to_string()),
            "ref" => reference = Some(v.to_string()),
            "dest" if export => dir = Some(v.to_string()),
            "src" if !export => dir = Some(v.to_string()),
            "modules" if export => {
                modules = match v {
                    "true" => true,
                    "false" => false,
                    _ => return Err(bad(format!("modules={v}: expected true or false"))),
                }
            }
            "ignore-error" => {
                ignore_error = match v {
                    "true" => true,
                    "false" => false,
                    _ => return Err(bad(format!("ignore-error={v}: expected true or false"))),
                }
            }
            other => {
                let place = if export { "dest" } else { "src" };
                return Err(bad(format!(
                    "unknown key {other:?} (type=registry,ref=IMAGE or type=local,{place}=DIR, and ignore-error=true{})", if export { ", modules=true" } else { "" }
                )));
            }
        }
    }
    let dest = match kind.as_deref() {
        Some("registry") => {
            let r = reference.ok_or_else(|| bad("type=registry needs ref=IMAGE".into()))?;
            let image = ImageRef::parse(&r).map_err(|e| bad(format!("ref={r}: {e}")))?;
            if image.digest().is_some() {
                return Err(bad(format!(
                    "ref={r}: name a tag, not a digest (kiln adds the platform to it)"
                )));
            }
            GoCacheDest::Registry(image)
        }
        Some("local") => {
            let place = if export { "dest" } else { "src" };
            let d = dir.ok_or_else(|| bad(format!("type=local needs {place}=DIR")))?;
            if d.is_empty() {
                return Err(bad(format!("{place}= is empty")));
            }
            GoCacheDest::Local(PathBuf::from(d))
        }
        Some(other) => return Err(bad(format!("type={other}: expected registry or local"))),
        None => {
            return Err(bad(
                "it needs type=registry,ref=IMAGE or type=local,…".into()
            ))
        }
    };
    Ok(GoCacheSpec {
        dest,
        ignore_error,
        modules,
        spec: spec.to_string(),
        flag,
    })
}

impl GoCacheSpec {
    /// Parses a `--go-cache-to` value.
    ///
    /// # Errors
    /// [`SpecError`] naming the flag, the value and what is wrong.
    pub fn export(spec: &str) -> Result<GoCacheSpec, SpecError> {
        parse("--go-cache-to", spec, true)
    }

    /// Parses a `--go-cache-from` value.
    ///
    /// # Errors
    /// [`SpecError`] naming the flag, the value and what is wrong.
    pub fn import(spec: &str) -> Result<GoCacheSpec, SpecError> {
        parse("--go-cache-from", spec, false)
    }

    /// Where `platform`'s cache is.
    #[must_use]
    pub fn for_platform(&self, platform: &Platform) -> PlatformCache {
        let slug = platform_slug(platform);
        match &self.dest {
            GoCacheDest::Registry(r) => {
                let tag = format!("{}-{slug}", r.tag().unwrap_or("latest"));
                // The tag is valid: both parts are.
                PlatformCache::Registry(r.with_tag(&tag).unwrap_or_else(|_| r.clone()))
            }
            GoCacheDest::Local(d) => PlatformCache::Local(d.join(slug)),
        }
    }
}

/// Whether `dir` holds an exported cache (its stamp and `gocache/`).
#[must_use]
pub fn local_cache_present(dir: &Path) -> bool {
    dir.join(STAMP).is_file() && dir.join("gocache").is_dir()
}

/// The total size of the files under `dir`.
#[must_use]
pub fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map(|m| m.len()).unwrap_or(0),
                _ => {}
            }
        }
    }
    total
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_name_the_flag() {
        let to =
            GoCacheSpec::export("type=registry,ref=r.example/app:gc,ignore-error=true").unwrap();
        assert!(to.ignore_error);
        assert_eq!(to.flag, "--go-cache-to");
        assert!(!to.modules);
        assert!(
            GoCacheSpec::export("type=local,dest=/x,modules=true")
                .unwrap()
                .modules
        );
        assert!(GoCacheSpec::import("type=local,src=/x,modules=true").is_err());
        let from = GoCacheSpec::import("type=local,src=/ci/gc").unwrap();
        assert_eq!(from.dest, GoCacheDest::Local("/ci/gc".into()));
        for (spec, says) in [
            ("type=floppy", "floppy"),
            ("type=registry", "ref"),
            ("type=local", "dest"),
            ("type=local,src=/x", "src"),
            ("ref=r/x", "type"),
            ("type=registry,ref=r/x,mode=max", "mode"),
            ("type=registry,ref=r/x@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "digest"),
        ] {
            let e = GoCacheSpec::export(spec).unwrap_err();
            assert_eq!(e.flag, "--go-cache-to");
            assert!(e.to_string().contains(says), "{spec}: {e}");
        }
        assert!(GoCacheSpec::import("type=local,dest=/x").is_err());
    }

    #[test]
    fn each_platform_has_its_own_cache() {
        let amd = Platform::parse("linux/amd64").unwrap();
        let arm = Platform::parse("linux/arm/v7").unwrap();
        let r = GoCacheSpec::export("type=registry,ref=r.example/app").unwrap();
        assert_eq!(
            r.for_platform(&amd).to_string(),
            "r.example/app:latest-linux-amd64"
        );
        assert_eq!(
            r.for_platform(&arm).to_string(),
            "r.example/app:latest-linux-arm-v7"
        );
        let l = GoCacheSpec::export("type=local,dest=/ci/gc").unwrap();
        assert_eq!(
            l.for_platform(&amd),
            PlatformCache::Local("/ci/gc/linux-amd64".into())
        );
    }

    #[test]
    fn a_local_cache_needs_its_stamp() {
        let d = tempfile::tempdir().unwrap();
        assert!(!local_cache_present(d.path()));
        std::fs::create_dir(d.path().join("gocache")).unwrap();
        std::fs::write(d.path().join("gocache/a"), b"12345").unwrap();
        assert!(!local_cache_present(d.path()));
        std::fs::write(d.path().join(STAMP), b"1").unwrap();
        assert!(local_cache_present(d.path()));
        assert_eq!(dir_size(d.path()), 6);
    }
}
