//! `--provenance`, `--sbom` and `--attest`, in buildx's syntax.
//!
//! ```
//! use kiln_build::spec::{AttestFlags, Provenance};
//! let flags = AttestFlags {
//!     attest: vec!["type=provenance,mode=max".into(), "type=sbom".into()],
//!     ..Default::default()
//! };
//! let a = flags.resolve(None, None, false)?;
//! assert_eq!(a.provenance, Some(Provenance::Max));
//! assert!(a.sbom);
//! // Pushing turns provenance on (mode=min) unless it was turned off.
//! let a = AttestFlags::default().resolve(None, None, true)?;
//! assert_eq!(a.provenance, Some(Provenance::Min));
//! # Ok::<(), kiln_build::spec::SpecError>(())
//! ```

use super::{csv, SpecError};

/// SLSA provenance detail: `min` (the build's inputs and builder) or
/// `max` (also the LLB and the build's parameters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provenance {
    Min,
    Max,
}

impl Provenance {
    /// The `mode=` value BuildKit takes.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Provenance::Min => "min",
            Provenance::Max => "max",
        }
    }
}

/// The attestation flags as given (each `None`/empty when not given).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AttestFlags {
    /// `--provenance VALUE`: `true`, `false`, `mode=min`, `mode=max`.
    pub provenance: Option<String>,
    /// `--sbom VALUE`: `true` or `false`.
    pub sbom: Option<String>,
    /// `--attest type=provenance,mode=max`, `--attest type=sbom`,
    /// `--attest type=sbom,disabled=true`.
    pub attest: Vec<String>,
}

/// What the build attaches to each platform's image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Attestations {
    /// BuildKit's SLSA v1 provenance, at this detail.
    pub provenance: Option<Provenance>,
    /// kiln's SPDX 2.3 SBOM (the Go module, its dependencies, the base).
    pub sbom: bool,
    /// Whether the user asked (not a default): an output that cannot keep
    /// attestations is then an error rather than a silent drop.
    pub explicit: bool,
}

impl Attestations {
    /// Whether anything is attached.
    #[must_use]
    pub fn any(&self) -> bool {
        self.provenance.is_some() || self.sbom
    }
}

fn boolean(flag: &'static str, value: &str) -> Result<bool, SpecError> {
    match value {
        "true" | "1" | "" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(SpecError::new(flag, value, "expected true or false")),
    }
}

/// `true`/`false`/`mode=…` (and `min`/`max`) of `--provenance`, or the
/// fields after `type=provenance` of `--attest`.
fn provenance_fields(
    flag: &'static str,
    value: &str,
    fields: &[String],
) -> Result<Option<Provenance>, SpecError> {
    let mut mode = Some(Provenance::Min);
    for f in fields {
        let (k, v) = csv::key_value(f).unwrap_or((f.as_str(), ""));
        match (k, v) {
            ("" | "true" | "1", "") => mode = mode.or(Some(Provenance::Min)),
            ("false" | "0", "") => mode = None,
            ("min", "") | ("mode", "min") => mode = Some(Provenance::Min),
            ("max", "") | ("mode", "max") => mode = Some(Provenance::Max),
            ("mode", other) => {
                return Err(SpecError::new(
                    flag,
                    value,
                    format!("mode={other}: expected mode=min or mode=max"),
                ))
            }
            ("disabled", d) => {
                if boolean(flag, d)? {
                    mode = None;
                }
            }
            ("version", "v1") => {}
            ("version", other) => {
                return Err(SpecError::new(
                    flag,
                    value,
                    format!("version={other}: kiln asks BuildKit for SLSA v1 only"),
                ))
            }
            (other, _) => {
                return Err(SpecError::new(
                    flag,
                    value,
                    format!("unknown field {other:?} (mode=min|max, disabled=true)"),
                ))
            }
        }
    }
    Ok(mode)
}

fn sbom_fields(flag: &'static str, value: &str, fields: &[String]) -> Result<bool, SpecError> {
    let mut on = true;
    for f in fields {
        let (k, v) = csv::key_value(f).unwrap_or((f.as_str(), ""));
        match (k, v) {
            ("true" | "1" | "false" | "0", "") => on = boolean(flag, k)?,
            ("disabled", d) => on = !boolean(flag, d)?,
            ("generator", _) => {
                return Err(SpecError::new(
                    flag,
                    value,
                    "kiln writes the SBOM itself from the binary's build info (no scanner image runs): leave out generator=",
                ))
            }
            (other, _) => {
                return Err(SpecError::new(flag, value, format!("unknown field {other:?} (true, false or disabled=true)")))
            }
        }
    }
    Ok(on)
}

fn split(flag: &'static str, value: &str) -> Result<Vec<String>, SpecError> {
    csv::fields(value).map_err(|e| SpecError::new(flag, value, e.to_string()))
}

impl AttestFlags {
    /// What to attach: the flags over kiln.toml's `provenance` and `sbom`,
    /// with buildx's default (provenance `mode=min` when `pushing`).
    ///
    /// # Errors
    /// [`SpecError`] naming the flag for a value that does not parse.
    pub fn resolve(
        &self,
        toml_provenance: Option<&str>,
        toml_sbom: Option<bool>,
        pushing: bool,
    ) -> Result<Attestations, SpecError> {
        let mut provenance: Option<Option<Provenance>> = None;
        let mut sbom: Option<bool> = None;
        if let Some(v) = toml_provenance {
            provenance = Some(provenance_fields(
                "kiln.toml provenance",
                v,
                &split("kiln.toml provenance", v)?,
            )?);
        }
        if let Some(v) = toml_sbom {
            sbom = Some(v);
        }
        for a in &self.attest {
            let fields = split("--attest", a)?;
            let kind = fields
                .iter()
                .find_map(|f| f.strip_prefix("type="))
                .ok_or_else(|| {
                    SpecError::new("--attest", a, "it needs type=provenance or type=sbom")
                })?;
            let rest: Vec<String> = fields
                .iter()
                .filter(|f| !f.starts_with("type="))
                .cloned()
                .collect();
            match kind {
                "provenance" => provenance = Some(provenance_fields("--attest", a, &rest)?),
                "sbom" => sbom = Some(sbom_fields("--attest", a, &rest)?),
                other => {
                    return Err(SpecError::new(
                        "--attest",
                        a,
                        format!("type={other}: expected type=provenance or type=sbom"),
                    ))
                }
            }
        }
        if let Some(v) = &self.provenance {
            provenance = Some(provenance_fields(
                "--provenance",
                v,
                &split("--provenance", v)?,
            )?);
        }
        if let Some(v) = &self.sbom {
            sbom = Some(sbom_fields("--sbom", v, &split("--sbom", v)?)?);
        }
        let explicit = provenance.flatten().is_some() || sbom == Some(true);
        Ok(Attestations {
            provenance: provenance.unwrap_or(pushing.then_some(Provenance::Min)),
            sbom: sbom.unwrap_or(false),
            explicit,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(p: Option<&str>, s: Option<&str>, attest: &[&str]) -> AttestFlags {
        AttestFlags {
            provenance: p.map(Into::into),
            sbom: s.map(Into::into),
            attest: attest.iter().map(|a| (*a).to_string()).collect(),
        }
    }

    #[test]
    fn buildx_spellings() {
        let r = |f: AttestFlags| f.resolve(None, None, false).expect("resolves");
        assert_eq!(
            r(flags(Some("mode=max"), None, &[])).provenance,
            Some(Provenance::Max)
        );
        assert_eq!(
            r(flags(Some("true"), None, &[])).provenance,
            Some(Provenance::Min)
        );
        assert_eq!(
            r(flags(Some("max"), None, &[])).provenance,
            Some(Provenance::Max)
        );
        assert!(r(flags(None, Some("true"), &[])).sbom);
        assert!(!r(flags(None, Some("false"), &[])).sbom);
        let a = r(flags(
            None,
            None,
            &["type=provenance,mode=max", "type=sbom"],
        ));
        assert_eq!(
            (a.provenance, a.sbom, a.explicit),
            (Some(Provenance::Max), true, true)
        );
        assert!(!r(flags(None, None, &["type=sbom,disabled=true"])).sbom);
        assert!(!r(flags(None, None, &[])).any());
    }

    #[test]
    fn defaults_and_precedence() {
        // Pushing: provenance min by default, not explicit; false wins.
        let a = AttestFlags::default()
            .resolve(None, None, true)
            .expect("ok");
        assert_eq!((a.provenance, a.explicit), (Some(Provenance::Min), false));
        let a = flags(Some("false"), None, &[])
            .resolve(None, None, true)
            .expect("ok");
        assert_eq!(a.provenance, None);
        // kiln.toml, then --attest, then --provenance/--sbom.
        let a = AttestFlags::default()
            .resolve(Some("mode=max"), Some(true), false)
            .expect("ok");
        assert_eq!((a.provenance, a.sbom), (Some(Provenance::Max), true));
        let a = flags(
            Some("mode=min"),
            Some("false"),
            &["type=provenance,mode=max"],
        )
        .resolve(Some("false"), Some(true), false)
        .expect("ok");
        assert_eq!((a.provenance, a.sbom), (Some(Provenance::Min), false));
    }

    #[test]
    fn bad_values_name_the_flag() {
        let e = |f: AttestFlags| f.resolve(None, None, false).expect_err("refused");
        assert_eq!(e(flags(Some("mode=all"), None, &[])).flag, "--provenance");
        assert_eq!(e(flags(None, Some("maybe"), &[])).flag, "--sbom");
        assert_eq!(e(flags(None, None, &["type=vex"])).flag, "--attest");
        assert_eq!(e(flags(None, None, &["mode=max"])).flag, "--attest");
        let g = e(flags(None, None, &["type=sbom,generator=docker/scout"]));
        assert!(g.reason.contains("generator"), "{g}");
        assert!(e(flags(None, None, &["type=provenance,version=v0.2"]))
            .reason
            .contains("v1"));
    }
}
