//! Attestations kiln attaches itself: the SBOM (SPDX 2.3) of each
//! platform's binary, written from the Go build info the linker embedded
//! in it, read out of the solved image through the gateway a few
//! kilobytes at a time (the ELF header, its section table, the section
//! names and `.go.buildinfo`), never the whole binary. No scanner image
//! runs. Provenance is BuildKit's own (`attest:provenance`).

use kiln_client::gateway::{GatewayBuild, InTotoAttestation};
use kiln_go::buildinfo::{self, BuildInfo};
use kiln_image::Platform;
use kiln_llb::{Constraints, Mkfile};

use crate::error::BuildError;

/// The SPDX predicate type BuildKit and buildx use.
pub const SPDX_PREDICATE: &str = "https://spdx.dev/Document";
/// Where the SBOM file sits in the ref handed to the exporter.
pub const SBOM_PATH: &str = "/kiln.spdx.json";

/// The largest section table or `.go.buildinfo` section kiln reads.
const MAX_READ: u64 = 4 << 20;

/// Where a section's bytes are in an ELF file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Section {
    name: u32,
    kind: u32,
    offset: u64,
    size: u64,
}

/// The facts of an ELF header kiln needs: byte order, class, and where
/// the section table is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ElfHeader {
    big_endian: bool,
    is64: bool,
    shoff: u64,
    shentsize: u64,
    shnum: u64,
    shstrndx: u64,
}

fn uint(bytes: &[u8], at: usize, width: usize, big: bool) -> Option<u64> {
    let b = bytes.get(at..at.checked_add(width)?)?;
    let mut v = 0u64;
    for i in 0..width {
        let byte = if big { b[i] } else { b[width - 1 - i] };
        v = (v << 8) | u64::from(byte);
    }
    Some(v)
}

fn elf_header(h: &[u8]) -> Result<ElfHeader, String> {
    if h.get(..4) != Some(b"\x7fELF") {
        return Err("not an ELF file".into());
    }
    let is64 = match h.get(4) {
        Some(1) => false,
        Some(2) => true,
        _ => return Err("unknown ELF class".into()),
    };
    let big = match h.get(5) {
        Some(1) => false,
        Some(2) => true,
        _ => return Err("unknown ELF byte order".into()),
    };
    let short = || "truncated ELF header".to_string();
    let (shoff, rest) = if is64 {
        (uint(h, 0x28, 8, big).ok_or_else(short)?, 0x3A)
    } else {
        (uint(h, 0x20, 4, big).ok_or_else(short)?, 0x2E)
    };
    Ok(ElfHeader {
        big_endian: big,
        is64,
        shoff,
        shentsize: uint(h, rest, 2, big).ok_or_else(short)?,
        shnum: uint(h, rest + 2, 2, big).ok_or_else(short)?,
        shstrndx: uint(h, rest + 4, 2, big).ok_or_else(short)?,
    })
}

fn sections(h: &ElfHeader, table: &[u8]) -> Result<Vec<Section>, String> {
    let want = if h.is64 { 0x40 } else { 0x28 };
    if h.shentsize < want {
        return Err(format!("section header size {} is too small", h.shentsize));
    }
    let mut out = Vec::new();
    for i in 0..h.shnum {
        let at = usize::try_from(i * h.shentsize).map_err(|_| "section table too large")?;
        let big = h.big_endian;
        let short = || "truncated section table".to_string();
        let (offset, size) = if h.is64 {
            (
                uint(table, at + 0x18, 8, big),
                uint(table, at + 0x20, 8, big),
            )
        } else {
            (
                uint(table, at + 0x10, 4, big),
                uint(table, at + 0x14, 4, big),
            )
        };
        out.push(Section {
            name: u32::try_from(uint(table, at, 4, big).ok_or_else(short)?).unwrap_or(u32::MAX),
            kind: u32::try_from(uint(table, at + 4, 4, big).ok_or_else(short)?).unwrap_or(u32::MAX),
            offset: offset.ok_or_else(short)?,
            size: size.ok_or_else(short)?,
        });
    }
    Ok(out)
}

fn section_name(strtab: &[u8], at: u32) -> &[u8] {
    let rest = strtab.get(at as usize..).unwrap_or_default();
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    &rest[..end]
}

/// Reads the Go build info of the binary at `path` in `ref_id`.
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
    let head = gw.read_file_range(ref_id, path, 0, 64).await?;
    let h = elf_header(&head).map_err(bad)?;
    let table_len = h.shnum.saturating_mul(h.shentsize);
    if table_len > MAX_READ {
        return Err(bad(format!("its section table claims {table_len} bytes")));
    }
    let table = gw.read_file_range(ref_id, path, h.shoff, table_len).await?;
    let list = sections(&h, &table).map_err(bad)?;
    let strtab = list
        .get(usize::try_from(h.shstrndx).unwrap_or(usize::MAX))
        .ok_or_else(|| bad("it has no section name table".into()))?;
    if strtab.size > MAX_READ {
        return Err(bad("its section name table is too large".into()));
    }
    let names = gw
        .read_file_range(ref_id, path, strtab.offset, strtab.size)
        .await?;
    // SHT_NOBITS (8) sections have no bytes in the file.
    let info = list
        .iter()
        .find(|s| s.kind != 8 && section_name(&names, s.name) == b".go.buildinfo")
        .ok_or_else(|| {
            bad(
                "it has no .go.buildinfo section: not a Go binary, or its build info was stripped"
                    .into(),
            )
        })?;
    if info.size > MAX_READ {
        return Err(bad("its .go.buildinfo section is too large".into()));
    }
    let data = gw
        .read_file_range(ref_id, path, info.offset, info.size)
        .await?;
    buildinfo::parse_section(&data).map_err(|e| bad(e.to_string()))
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

    /// A 64-bit little-endian ELF header and section table with a name
    /// table and `.go.buildinfo`.
    fn elf64() -> Vec<u8> {
        let mut f = vec![0u8; 64];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 2;
        f[5] = 1;
        let names = b"\0.shstrtab\0.go.buildinfo\0";
        let names_at = 64u64;
        let shoff = 128u64;
        f.resize(128, 0);
        f[64..64 + names.len()].copy_from_slice(names);
        f[0x28..0x30].copy_from_slice(&shoff.to_le_bytes());
        f[0x3A..0x3C].copy_from_slice(&0x40u16.to_le_bytes());
        f[0x3C..0x3E].copy_from_slice(&3u16.to_le_bytes());
        f[0x3E..0x40].copy_from_slice(&1u16.to_le_bytes());
        let mut sh = |name: u32, kind: u32, off: u64, size: u64| {
            let mut e = vec![0u8; 0x40];
            e[..4].copy_from_slice(&name.to_le_bytes());
            e[4..8].copy_from_slice(&kind.to_le_bytes());
            e[0x18..0x20].copy_from_slice(&off.to_le_bytes());
            e[0x20..0x28].copy_from_slice(&size.to_le_bytes());
            f.extend(e);
        };
        sh(0, 0, 0, 0);
        sh(1, 3, names_at, names.len() as u64);
        sh(11, 1, 4096, 300);
        f
    }

    #[test]
    fn finds_the_buildinfo_section() {
        let f = elf64();
        let h = elf_header(&f[..64]).expect("header");
        assert!(h.is64 && !h.big_endian);
        assert_eq!((h.shoff, h.shnum, h.shstrndx), (128, 3, 1));
        let table = &f[128..128 + 3 * 0x40];
        let list = sections(&h, table).expect("sections");
        let strtab = list[1];
        let names = &f[strtab.offset as usize..(strtab.offset + strtab.size) as usize];
        let info = list
            .iter()
            .find(|s| section_name(names, s.name) == b".go.buildinfo")
            .expect("found");
        assert_eq!((info.offset, info.size), (4096, 300));
    }

    #[test]
    fn refuses_what_is_not_elf_and_truncation() {
        assert!(elf_header(b"#!/bin/sh\n").is_err());
        assert!(elf_header(b"\x7fELF\x02\x01").is_err());
        let f = elf64();
        let h = elf_header(&f[..64]).expect("header");
        assert!(sections(&h, &f[128..150]).is_err());
        assert_eq!(section_name(b"abc", 99), b"");
    }

    #[test]
    fn entrypoint_of_a_config() {
        let c = br#"{"config":{"Entrypoint":["/app/bin"]}}"#;
        assert_eq!(entrypoint(c).as_deref(), Some("/app/bin"));
        assert_eq!(entrypoint(b"{}"), None);
    }
}
