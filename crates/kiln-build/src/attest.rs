//! Attestations kiln attaches itself: the SBOM (SPDX 2.3) of each
//! platform's binary, written from the Go build info the linker embedded
//! in it, read out of the solved image through the gateway a few pieces
//! at a time (the ELF header, its section table, the section names and
//! `.go.buildinfo`, as kiln-go's reader asks), never the whole binary. No scanner image
//! runs. Provenance is BuildKit's own (`attest:provenance`).

use kiln_client::gateway::{GatewayBuild, InTotoAttestation};
use kiln_go::buildinfo::{self, BuildInfo, BuildInfoError};
use kiln_image::Platform;
use kiln_llb::{Constraints, Mkfile};

use crate::error::BuildError;

/// The SPDX predicate type BuildKit and buildx use.
pub const SPDX_PREDICATE: &str = "https://spdx.dev/Document";
/// Where the SBOM file sits in the ref handed to the exporter.
pub const SBOM_PATH: &str = "/kiln.spdx.json";

/// The largest piece of a binary kiln reads at once (a section table or
/// `.go.buildinfo`), and the least (small reads are rounded up to this).
const MAX_READ: u64 = 4 << 20;
const MIN_READ: u64 = 64 << 10;

/// Reads the Go build info of the binary at `path` in `ref_id`, a few
/// pieces at a time through the gateway (kiln-go's ELF reader says which:
/// the header, the section table, the names, `.go.buildinfo`).
///
/// # Errors
/// [`BuildError::Daemon`] when the file cannot be read,
/// [`BuildError::Invalid`] when it is not a Go ELF binary with build info.
pub async fn read_build_info(
    gw: &GatewayBuild,
    ref_id: &str,
    path: &str,
) -> Result<BuildInfo, BuildError> {
    let bad = |reason: String| {
        BuildError::invalid(
            format!("the SBOM of {path}"),
            format!("{reason}; build with --sbom=false"),
        )
    };
    let mut pieces: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut asked = Vec::new();
    loop {
        match buildinfo::locate_section(&pieces) {
            Err(BuildInfoError::NeedBytes { offset, len }) => {
                if len > MAX_READ {
                    return Err(bad(format!("it claims a {len}-byte ELF structure")));
                }
                if asked.contains(&(offset, len)) {
                    // Asked before and still short: the file ends there.
                    return Err(bad("it is truncated".into()));
                }
                asked.push((offset, len));
                let data = gw
                    .read_file_range(ref_id, path, offset, len.max(MIN_READ))
                    .await?;
                pieces.push((offset, data));
            }
            Ok(info) => return Ok(info),
            Err(e) => return Err(bad(e.to_string())),
        }
    }
}

/// The binary an image config's entrypoint runs.
#[must_use]
pub fn entrypoint(image_config: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(image_config).ok()?;
    v.get("config")?
        .get("Entrypoint")?
        .get(0)?
        .as_str()
        .map(ToString::to_string)
}

/// Solves a ref holding the SBOM of the platform's binary and returns the
/// attestation naming it.
///
/// # Errors
/// As [`read_build_info`], and [`BuildError::Daemon`] for the solve.
pub async fn sbom(
    gw: &GatewayBuild,
    image_ref: &str,
    image_config: &[u8],
    name: &str,
    base: Option<(&str, &str)>,
    created: &str,
    platform: &Platform,
) -> Result<InTotoAttestation, BuildError> {
    let binary = entrypoint(image_config).ok_or_else(|| {
        BuildError::invalid(
            format!("the SBOM for {platform}"),
            "the image config names no entrypoint",
        )
    })?;
    let info = read_build_info(gw, image_ref, &binary).await?;
    let doc = kiln_go::sbom::spdx(&kiln_go::sbom::SbomInput {
        name,
        build: &info,
        base_image: base,
        created,
    });
    let bytes = serde_json::to_vec_pretty(&doc)
        .map_err(|e| BuildError::invalid("the SBOM", e.to_string()))?;
    let state = kiln_llb::scratch().mkfile(Mkfile::new(SBOM_PATH, 0o644, bytes));
    let def = state
        .marshal(&Constraints::new(platform.clone()))
        .map_err(|e| BuildError::Marshal {
            platform: Box::new(platform.clone()),
            source: Box::new(e),
        })?;
    let ref_id = gw.solve(def.as_pb().clone(), false).await?;
    Ok(InTotoAttestation {
        ref_id,
        path: SBOM_PATH.to_string(),
        predicate_type: SPDX_PREDICATE.to_string(),
        metadata: [("reason".to_string(), b"sbom".to_vec())].into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entrypoint_of_a_config() {
        let c = br#"{"config":{"Entrypoint":["/app/bin"]}}"#;
        assert_eq!(entrypoint(c).as_deref(), Some("/app/bin"));
        assert_eq!(entrypoint(b"{}"), None);
    }
}
