//! `--cache-to` / `--cache-from` values, in buildx's syntax, so a CI
//! configuration written for `docker buildx build` translates line for line.
//!
//! ```
//! use kiln_build::spec::{CacheKind, CacheSpec};
//! let to = CacheSpec::export("type=registry,ref=r.example/app:cache,mode=max")?;
//! assert_eq!(to.kind, CacheKind::Registry);
//! assert_eq!(to.attrs["mode"], "max");
//! // A bare reference is a registry source, as in buildx.
//! let from = CacheSpec::import("r.example/app:cache")?;
//! assert_eq!(from.attrs["ref"], "r.example/app:cache");
//! # Ok::<(), kiln_build::spec::SpecError>(())
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use super::{csv, SpecError};

/// Where a cache goes or comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheKind {
    /// An image-like cache manifest in a registry (`ref=`).
    Registry,
    /// An OCI layout directory on the client (`dest=` / `src=`).
    Local,
    /// Cache metadata inside the exported image's config (export only; to
    /// import it, name the image as a `type=registry` source).
    Inline,
    /// GitHub Actions' cache service (passed to BuildKit; not tested here).
    Gha,
    /// An S3 bucket (passed to BuildKit; not tested here).
    S3,
    /// Azure Blob Storage (passed to BuildKit; not tested here).
    Azblob,
}

impl CacheKind {
    /// BuildKit's name of the cache type.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            CacheKind::Registry => "registry",
            CacheKind::Local => "local",
            CacheKind::Inline => "inline",
            CacheKind::Gha => "gha",
            CacheKind::S3 => "s3",
            CacheKind::Azblob => "azblob",
        }
    }
}

/// One `--cache-to` or `--cache-from`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheSpec {
    pub kind: CacheKind,
    /// The other attributes, as BuildKit takes them (`ref`, `mode`, …).
    pub attrs: BTreeMap<String, String>,
}

const TYPES: &str = "registry, local, inline, gha, s3 or azblob";

impl CacheSpec {
    /// Parses a `--cache-to` value.
    ///
    /// # Errors
    /// [`SpecError`] naming `--cache-to`, the value and what is wrong.
    pub fn export(spec: &str) -> Result<CacheSpec, SpecError> {
        let c = parse("--cache-to", spec)?;
        let bad = |why: String| SpecError::new("--cache-to", spec, why);
        match c.kind {
            CacheKind::Registry if !c.attrs.contains_key("ref") => {
                return Err(bad(
                    "type=registry needs ref=IMAGE (e.g. ref=registry.example/app:buildcache)"
                        .into(),
                ))
            }
            CacheKind::Local if !c.attrs.contains_key("dest") => {
                return Err(bad("type=local needs dest=DIR".into()))
            }
            _ => {}
        }
        if let Some(mode) = c.attrs.get("mode") {
            if mode != "min" && mode != "max" {
                return Err(bad(format!("mode={mode} is not min or max")));
            }
        }
        if let Some(v) = c.attrs.get("compression") {
            if !["gzip", "zstd", "estargz", "uncompressed"].contains(&v.as_str()) {
                return Err(bad(format!(
                    "compression={v} is not gzip, zstd, estargz or uncompressed"
                )));
            }
        }
        for key in ["ignore-error", "image-manifest", "oci-mediatypes"] {
            if let Some(v) = c.attrs.get(key) {
                if v != "true" && v != "false" {
                    return Err(bad(format!("{key}={v} is not true or false")));
                }
            }
        }
        Ok(c)
    }

    /// Parses a `--cache-from` value (a bare reference is
    /// `type=registry,ref=REF`).
    ///
    /// # Errors
    /// [`SpecError`] naming `--cache-from`, the value and what is wrong
    /// (a `type=local` source must be an OCI layout directory).
    pub fn import(spec: &str) -> Result<CacheSpec, SpecError> {
        let c = parse("--cache-from", spec)?;
        let bad = |why: String| SpecError::new("--cache-from", spec, why);
        match c.kind {
            CacheKind::Registry if !c.attrs.contains_key("ref") => {
                Err(bad("type=registry needs ref=IMAGE".into()))
            }
            CacheKind::Inline => Err(bad(
                "type=inline is for --cache-to; import an inline cache with type=registry,ref=IMAGE".into(),
            )),
            CacheKind::Local => match c.attrs.get("src") {
                None => Err(bad("type=local needs src=DIR".into())),
                Some(src) if !Path::new(src).join("index.json").is_file() => Err(bad(format!(
                    "{src} is not a readable cache directory (no index.json): export one with --cache-to type=local,dest={src}"
                ))),
                Some(_) => Ok(c),
            },
            _ => Ok(c),
        }
    }
}

fn parse(flag: &'static str, spec: &str) -> Result<CacheSpec, SpecError> {
    let spec_t = spec.trim();
    let bad = |why: String| SpecError::new(flag, spec, why);
    if spec_t.is_empty() {
        return Err(bad(format!(
            "empty; e.g. type=registry,ref=IMAGE ({TYPES})"
        )));
    }
    if !spec_t.contains('=') {
        return Ok(CacheSpec {
            kind: CacheKind::Registry,
            attrs: BTreeMap::from([("ref".to_string(), spec_t.to_string())]),
        });
    }
    let mut attrs = BTreeMap::new();
    for field in csv::fields(spec_t).map_err(|e| bad(e.to_string()))? {
        let (k, v) =
            csv::key_value(&field).ok_or_else(|| bad(format!("{field:?} is not KEY=VALUE")))?;
        if attrs
            .insert(k.trim().to_string(), v.trim().to_string())
            .is_some()
        {
            return Err(bad(format!("{} is given twice", k.trim())));
        }
    }
    let kind = match attrs.remove("type").as_deref() {
        None => return Err(bad(format!("no type= ({TYPES})"))),
        Some("registry") => CacheKind::Registry,
        Some("local") => CacheKind::Local,
        Some("inline") => CacheKind::Inline,
        Some("gha") => CacheKind::Gha,
        Some("s3") => CacheKind::S3,
        Some("azblob") => CacheKind::Azblob,
        Some(other) => return Err(bad(format!("unknown cache type {other:?} ({TYPES})"))),
    };
    Ok(CacheSpec { kind, attrs })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn buildx_forms_parse() {
        let c = CacheSpec::export(
            "type=registry,ref=r/app:c,mode=max,image-manifest=true,oci-mediatypes=true,compression=zstd,ignore-error=true",
        )
        .unwrap();
        assert_eq!(c.kind, CacheKind::Registry);
        assert_eq!(c.attrs.len(), 6);
        assert_eq!(
            CacheSpec::export("type=inline").unwrap().kind,
            CacheKind::Inline
        );
        let gha = CacheSpec::export("type=gha,scope=main,\"url=http://a,b\"").unwrap();
        assert_eq!(
            gha.attrs["url"], "http://a,b",
            "buildx's quoting keeps commas"
        );
        assert_eq!(
            CacheSpec::import("r/app:c").unwrap().attrs["ref"],
            "r/app:c"
        );
    }

    #[test]
    fn mistakes_name_the_flag_and_the_problem() {
        let e = |r: Result<CacheSpec, SpecError>| r.unwrap_err().to_string();
        assert!(e(CacheSpec::export("type=floppy")).contains("unknown cache type \"floppy\""));
        assert!(e(CacheSpec::export("type=registry")).contains("--cache-to"));
        assert!(e(CacheSpec::export("type=registry,ref=r,mode=all")).contains("mode=all"));
        assert!(e(CacheSpec::export("type=local")).contains("dest=DIR"));
        assert!(e(CacheSpec::import("type=inline")).contains("--cache-to"));
        let missing = e(CacheSpec::import("type=local,src=/nonexistent/k"));
        assert!(
            missing.contains("--cache-from") && missing.contains("/nonexistent/k"),
            "{missing}"
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("index.json"), "{}").unwrap();
        let src = format!("type=local,src={}", dir.path().display());
        assert_eq!(CacheSpec::import(&src).unwrap().kind, CacheKind::Local);
        assert!(e(CacheSpec::export("type=registry,ref=r,ref=s")).contains("twice"));
    }
}
