//! The build info the Go linker embeds in a binary: the Go version, the
//! main module and every dependency module with its `go.sum` hash, and the
//! build settings. Go's `debug/buildinfo.Read` in Rust, for ELF binaries
//! built by Go 1.18 or newer; kiln-build feeds it the bytes of the binary it
//! built and turns the result into an SBOM ([`crate::sbom`]).
//!
//! Pure like the rest of this crate: bytes in, values out.
//!
//! ```
//! use kiln_go::buildinfo::parse_mod_info;
//!
//! let info = parse_mod_info(
//!     "path\texample.com/app\n\
//!      mod\texample.com/app\t(devel)\t\n\
//!      dep\tgolang.org/x/text\tv0.14.0\th1:ScX5w1eTa3QqT8oi6+ziP7dTV1S2+ALU0bI+0zXKWiQ=\n\
//!      build\t-ldflags=\"-s -w\"\n",
//! )?;
//! assert_eq!(info.main.path, "example.com/app");
//! assert_eq!(info.deps[0].version, "v0.14.0");
//! assert_eq!(info.settings[0], ("-ldflags".to_string(), "-s -w".to_string()));
//! # Ok::<(), kiln_go::buildinfo::ModInfoError>(())
//! ```

mod elf;
mod error;
mod modinfo;

pub use error::{BuildInfoError, ModInfoError, ModInfoProblem};
pub use modinfo::parse_mod_info;

/// Build information read from a Go binary (Go's `debug.BuildInfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildInfo {
    /// The toolchain that built the binary, e.g. `go1.24.1` (possibly with
    /// a suffix such as ` X:boringcrypto`); empty from [`parse_mod_info`].
    pub go_version: String,
    /// The main package's import path, e.g. `example.com/app/cmd/app`.
    pub path: String,
    /// The module that holds the main package.
    pub main: Module,
    /// Every other module that contributed packages, in the linker's order.
    pub deps: Vec<Module>,
    /// Build settings (`-ldflags`, `CGO_ENABLED`, `vcs.revision`, …), in order.
    pub settings: Vec<(String, String)>,
}

/// A module of a build (Go's `debug.Module`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Module {
    /// The module path.
    pub path: String,
    /// The module version; `(devel)` for an unversioned main module, empty
    /// for a replacement by a local directory.
    pub version: String,
    /// The `go.sum` hash (`h1:…`), empty when unknown.
    pub sum: String,
    /// The module that replaced this one (a `replace` directive).
    pub replace: Option<Box<Module>>,
}

/// `"\xff Go buildinf:"`: the start of the build info blob.
const MAGIC: &[u8; 14] = b"\xff Go buildinf:";
/// The blob's header: magic, pointer size, flags, then padding to 32 bytes.
const HEADER_LEN: usize = 32;
/// The header sits on a 16-byte boundary near the start of the section.
const ALIGN: usize = 16;
/// Go looks for the header in the first 64 KiB only.
const SEARCH_LIMIT: usize = 64 * 1024;
/// Flag: the strings follow the header inline (Go 1.18+), not via pointers.
const FLAG_INLINE: u8 = 0x2;
/// The sentinels around the module info (`modload.infoStart`/`infoEnd`).
const SENTINEL_LEN: usize = 16;

/// Reads the build info of a Go binary from the whole file's bytes, like
/// Go's `debug/buildinfo.Read`: the `.go.buildinfo` section of an ELF file
/// (32- or 64-bit, either byte order), in the inline layout of Go 1.18+.
///
/// A binary built outside module mode yields an empty [`BuildInfo::main`]
/// and no dependencies, as in Go.
///
/// # Errors
///
/// [`BuildInfoError::NotElf`], [`BuildInfoError::NoBuildInfoSection`] (not
/// a Go binary, or its build info was stripped), [`BuildInfoError::PreGo118`],
/// [`BuildInfoError::Truncated`] / [`BuildInfoError::MalformedElf`] /
/// [`BuildInfoError::BadLength`] for damaged files, and
/// [`BuildInfoError::ModInfo`] for malformed module info text.
pub fn read(binary: &[u8]) -> Result<BuildInfo, BuildInfoError> {
    parse_section(elf::go_buildinfo_section(elf::Bytes::Whole(binary))?)
}

/// Finds the build info from pieces of a binary fetched so far
/// (`(offset, bytes)`), for a caller that reads a large file piecewise
/// (e.g. through BuildKit's gateway): [`BuildInfoError::NeedBytes`] names
/// the range to fetch next; add it to `pieces` and call again. A few rounds
/// suffice: the ELF header, the section header table, the section names,
/// `.go.buildinfo`. A fetched piece shorter than asked (the end of the
/// file) makes the same range needed again: the caller should then stop.
///
/// # Errors
/// As [`read`], plus [`BuildInfoError::NeedBytes`].
pub fn locate_section(pieces: &[(u64, Vec<u8>)]) -> Result<BuildInfo, BuildInfoError> {
    parse_section(elf::go_buildinfo_section(elf::Bytes::Pieces(pieces))?)
}

/// Reads the build info from the bytes of a binary's `.go.buildinfo`
/// section alone (what a caller that reads a large binary piecewise has
/// found with the section table).
///
/// # Errors
/// As [`read`], without the ELF errors.
pub fn parse_section(section: &[u8]) -> Result<BuildInfo, BuildInfoError> {
    let (go_version, mod_info) = decode_blob(section)?;
    let mut info = parse_mod_info(mod_info)?;
    info.go_version = go_version.to_string();
    Ok(info)
}

/// The Go version and the module info text (sentinels stripped) of a
/// `.go.buildinfo` section.
fn decode_blob(section: &[u8]) -> Result<(&str, &str), BuildInfoError> {
    let searched = &section[..section.len().min(SEARCH_LIMIT)];
    let start = (0..searched.len())
        .step_by(ALIGN)
        .find(|&i| searched[i..].starts_with(MAGIC))
        .ok_or(BuildInfoError::NoMagic)?;
    let blob = &section[start..];
    let flags = *blob.get(15).ok_or(BuildInfoError::Truncated {
        what: "build info header",
    })?;
    if flags & FLAG_INLINE == 0 {
        return Err(BuildInfoError::PreGo118);
    }
    let rest = blob.get(HEADER_LEN..).ok_or(BuildInfoError::Truncated {
        what: "build info header",
    })?;
    let (version, rest) = length_prefixed(rest, "Go version")?;
    let (mod_info, _) = length_prefixed(rest, "module info")?;

    let version =
        std::str::from_utf8(version).map_err(|_| BuildInfoError::NotUtf8 { what: "Go version" })?;
    if version.is_empty() {
        return Err(BuildInfoError::EmptyGoVersion);
    }
    // Without the framing (a newline before the end sentinel), the binary
    // was built outside module mode: Go reports no module info then.
    let mod_info = match mod_info.len() {
        n if n > 2 * SENTINEL_LEN && mod_info[n - SENTINEL_LEN - 1] == b'\n' => {
            &mod_info[SENTINEL_LEN..n - SENTINEL_LEN]
        }
        _ => &[],
    };
    let mod_info = std::str::from_utf8(mod_info).map_err(|_| BuildInfoError::NotUtf8 {
        what: "module info",
    })?;
    Ok((version, mod_info))
}

/// A uvarint-length-prefixed string and the bytes after it.
fn length_prefixed<'a>(
    data: &'a [u8],
    what: &'static str,
) -> Result<(&'a [u8], &'a [u8]), BuildInfoError> {
    let (len, n) = uvarint(data, what)?;
    let rest = &data[n..];
    match usize::try_from(len) {
        Ok(len) if len <= rest.len() => Ok(rest.split_at(len)),
        _ => Err(BuildInfoError::Truncated { what }),
    }
}

/// Go's `binary.Uvarint`: the value and the number of bytes it took.
fn uvarint(data: &[u8], what: &'static str) -> Result<(u64, usize), BuildInfoError> {
    let mut value = 0u64;
    for (i, &b) in data.iter().enumerate() {
        if i == 10 || (i == 9 && b > 1) {
            return Err(BuildInfoError::BadLength { what });
        }
        value |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Ok((value, i + 1));
        }
    }
    Err(BuildInfoError::Truncated { what })
}

#[cfg(test)]
mod tests;
