//! Just enough ELF to find a section by name: the file header, the section
//! header table and the section name string table, for 32- and 64-bit files
//! of either byte order. Every offset is checked against the file, so
//! hostile input gives an error, never a panic.

use super::error::BuildInfoError;

/// `SHT_NOBITS`: a section that occupies no bytes in the file (`.bss`).
const SHT_NOBITS: u32 = 8;
/// `SHN_XINDEX`: the string table index lives in section 0's `sh_link`.
const SHN_XINDEX: u16 = 0xffff;

/// What is known of a file: the whole of it, or the pieces fetched so far
/// (`(offset, bytes)`), for a reader that cannot hold a large binary.
#[derive(Clone, Copy)]
pub(super) enum Bytes<'a> {
    Whole(&'a [u8]),
    Pieces(&'a [(u64, Vec<u8>)]),
}

impl<'a> Bytes<'a> {
    /// `len` bytes at `at`: from the file, or from a fetched piece that
    /// covers them; a range no piece covers is [`BuildInfoError::NeedBytes`].
    fn get(self, at: u64, len: u64, what: &'static str) -> Result<&'a [u8], BuildInfoError> {
        let slice = |data: &'a [u8], from: u64| {
            let start = usize::try_from(at.checked_sub(from)?).ok()?;
            data.get(start..start.checked_add(usize::try_from(len).ok()?)?)
        };
        match self {
            Bytes::Whole(data) => slice(data, 0).ok_or(BuildInfoError::Truncated { what }),
            Bytes::Pieces(pieces) => pieces
                .iter()
                .find_map(|(from, data)| slice(data, *from))
                .ok_or(BuildInfoError::NeedBytes { offset: at, len }),
        }
    }
}

/// An ELF file's bytes with its class and byte order.
struct Elf<'a> {
    data: Bytes<'a>,
    is64: bool,
    big_endian: bool,
}

/// The fields of a section header this reader needs.
struct SectionHeader {
    name: u32,
    kind: u32,
    offset: u64,
    size: u64,
    link: u32,
}

impl<'a> Elf<'a> {
    fn bytes<const N: usize>(
        &self,
        at: u64,
        what: &'static str,
    ) -> Result<[u8; N], BuildInfoError> {
        self.data
            .get(at, N as u64, what)?
            .try_into()
            .map_err(|_| BuildInfoError::Truncated { what })
    }

    fn u16(&self, at: u64, what: &'static str) -> Result<u16, BuildInfoError> {
        let b = self.bytes(at, what)?;
        Ok(if self.big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        })
    }

    fn u32(&self, at: u64, what: &'static str) -> Result<u32, BuildInfoError> {
        let b = self.bytes(at, what)?;
        Ok(if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }

    fn u64(&self, at: u64, what: &'static str) -> Result<u64, BuildInfoError> {
        let b = self.bytes(at, what)?;
        Ok(if self.big_endian {
            u64::from_be_bytes(b)
        } else {
            u64::from_le_bytes(b)
        })
    }

    /// An address-sized field: 4 bytes in 32-bit files, 8 in 64-bit ones.
    fn word(&self, at: u64, what: &'static str) -> Result<u64, BuildInfoError> {
        if self.is64 {
            self.u64(at, what)
        } else {
            self.u32(at, what).map(u64::from)
        }
    }

    /// The section header at `at` (offsets per the ELF gABI).
    fn section_header(&self, at: u64) -> Result<SectionHeader, BuildInfoError> {
        const WHAT: &str = "section header table";
        // Saturating: an offset past the end is reported as truncation.
        let field =
            |off64: u64, off32: u64| at.saturating_add(if self.is64 { off64 } else { off32 });
        Ok(SectionHeader {
            name: self.u32(at, WHAT)?,
            kind: self.u32(field(4, 4), WHAT)?,
            offset: self.word(field(24, 16), WHAT)?,
            size: self.word(field(32, 20), WHAT)?,
            link: self.u32(field(40, 24), WHAT)?,
        })
    }

    /// The bytes a section occupies in the file.
    fn section_data(
        &self,
        h: &SectionHeader,
        what: &'static str,
    ) -> Result<&'a [u8], BuildInfoError> {
        self.data.get(h.offset, h.size, what)
    }
}

/// The name of the section the Go linker writes build info to.
const GO_BUILDINFO: &[u8] = b".go.buildinfo";

/// The file bytes of the `.go.buildinfo` section.
///
/// # Errors
///
/// [`BuildInfoError::NotElf`], [`BuildInfoError::UnsupportedElf`],
/// [`BuildInfoError::NoBuildInfoSection`] when no section has that name (or
/// the file has no section headers), and [`BuildInfoError::Truncated`] or
/// [`BuildInfoError::MalformedElf`] when headers point outside the file or
/// contradict themselves.
pub(super) fn go_buildinfo_section(data: Bytes<'_>) -> Result<&[u8], BuildInfoError> {
    // The 16 identification bytes, then the rest of the (64-byte) header.
    let ident = data.get(0, 16, "ELF header").or_else(|e| match (e, data) {
        (BuildInfoError::Truncated { .. }, Bytes::Whole(d)) => Ok(d),
        (e, _) => Err(e),
    })?;
    if !ident.starts_with(b"\x7fELF") {
        return Err(BuildInfoError::NotElf);
    }
    let ident = |i: usize, field| {
        ident
            .get(i)
            .copied()
            .ok_or(BuildInfoError::Truncated { what: "ELF header" })
            .map(|v| (v, field))
    };
    let is64 = match ident(4, "class")? {
        (1, _) => false,
        (2, _) => true,
        (value, field) => return Err(BuildInfoError::UnsupportedElf { field, value }),
    };
    let big_endian = match ident(5, "data encoding")? {
        (1, _) => false,
        (2, _) => true,
        (value, field) => return Err(BuildInfoError::UnsupportedElf { field, value }),
    };
    let elf = Elf {
        data,
        is64,
        big_endian,
    };

    const HEADER: &str = "ELF header";
    let (header_len, shoff_at, shentsize_at) = if is64 {
        (64, 0x28, 0x3a)
    } else {
        (52, 0x20, 0x2e)
    };
    data.get(0, header_len, HEADER)?;
    let shoff = elf.word(shoff_at, HEADER)?;
    let shentsize = elf.u16(shentsize_at, HEADER)?;
    let mut shnum = u64::from(elf.u16(shentsize_at + 2, HEADER)?);
    let shstrndx = elf.u16(shentsize_at + 4, HEADER)?;
    if shoff == 0 {
        // No section header table (e.g. `sstrip`ped): nothing has a name.
        return Err(BuildInfoError::NoBuildInfoSection);
    }
    let min_entsize = if is64 { 64 } else { 40 };
    if shentsize < min_entsize {
        return Err(BuildInfoError::MalformedElf {
            what: "section header entries are smaller than the ELF format's",
        });
    }

    // Extended numbering: counts that do not fit 16 bits live in section 0.
    let mut shstrndx = u32::from(shstrndx);
    if shnum == 0 || shstrndx == u32::from(SHN_XINDEX) {
        let first = elf.section_header(shoff)?;
        if shnum == 0 {
            shnum = first.size;
        }
        if shstrndx == u32::from(SHN_XINDEX) {
            shstrndx = first.link;
        }
    }
    let entsize = u64::from(shentsize);
    let table_len = shnum
        .checked_mul(entsize)
        .ok_or(BuildInfoError::Truncated {
            what: "section header table",
        })?;
    data.get(shoff, table_len, "section header table")?;
    if shstrndx == 0 {
        // SHN_UNDEF: the file has no section name table.
        return Err(BuildInfoError::NoBuildInfoSection);
    }
    if u64::from(shstrndx) >= shnum {
        return Err(BuildInfoError::MalformedElf {
            what: "the section name table index is past the section header table",
        });
    }
    let names = elf.section_header(shoff + u64::from(shstrndx) * entsize)?;
    let names = elf.section_data(&names, "section name table")?;

    for i in 0..shnum {
        let header = elf.section_header(shoff + i * entsize)?;
        let section_name = usize::try_from(header.name)
            .ok()
            .and_then(|start| names.get(start..))
            .and_then(|rest| Some(&rest[..rest.iter().position(|&b| b == 0)?]))
            .ok_or(BuildInfoError::MalformedElf {
                what: "a section name is not a NUL-terminated string of the section name table",
            })?;
        if section_name != GO_BUILDINFO {
            continue;
        }
        if header.kind == SHT_NOBITS {
            return Err(BuildInfoError::MalformedElf {
                what: "the .go.buildinfo section holds no bytes in the file (SHT_NOBITS)",
            });
        }
        return elf.section_data(&header, ".go.buildinfo section");
    }
    Err(BuildInfoError::NoBuildInfoSection)
}
