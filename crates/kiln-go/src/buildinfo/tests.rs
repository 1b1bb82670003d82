//! [`read`] on ELF images built byte by byte here: both classes and byte
//! orders, and hostile headers and lengths, which must give errors, never
//! panics.

use super::*;

/// `cmd/go/internal/modload.infoStart` and `infoEnd`.
const INFO_START: [u8; 16] = *b"\x30\x77\xaf\x0c\x92\x74\x08\x02\x41\xe1\xc1\x07\xe6\xd6\x18\xe6";
const INFO_END: [u8; 16] = *b"\xf9\x32\x43\x31\x86\x18\x20\x72\x00\x82\x42\x10\x41\x16\xd8\xf2";

const SHT_PROGBITS: u32 = 1;
const SHT_STRTAB: u32 = 3;
const SHT_NOBITS: u32 = 8;

const MOD_TEXT: &str = "path\texample.com/app\n\
    mod\texample.com/app\tv1.2.3\th1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\
    dep\tgolang.org/x/sys\tv0.20.0\th1:BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBA=\n\
    build\tGOOS=linux\n";

/// Writes `value` as `width` bytes at `at`, growing `buf` if needed.
fn put(buf: &mut Vec<u8>, at: usize, value: u64, width: usize, big: bool) {
    if buf.len() < at + width {
        buf.resize(at + width, 0);
    }
    let bytes = if big {
        value.to_be_bytes()
    } else {
        value.to_le_bytes()
    };
    let bytes = if big {
        &bytes[8 - width..]
    } else {
        &bytes[..width]
    };
    buf[at..at + width].copy_from_slice(bytes);
}

/// The layout of a crafted image, kept so tests can damage its fields.
struct Image {
    bytes: Vec<u8>,
    is64: bool,
    big: bool,
    shoff: usize,
    entsize: usize,
}

impl Image {
    /// An ELF file: header, the sections' bytes, `.shstrtab`, then the
    /// section header table (null section first, `.shstrtab` last).
    fn new(is64: bool, big: bool, sections: &[(&str, u32, &[u8])]) -> Image {
        let (header_len, entsize) = if is64 { (64, 64) } else { (52, 40) };
        let word = if is64 { 8 } else { 4 };
        let mut names = vec![0u8];
        let mut bytes = vec![0u8; header_len];
        let mut headers = Vec::new();
        for (name, kind, data) in sections {
            headers.push((names.len(), *kind, bytes.len(), data.len()));
            names.extend_from_slice(name.as_bytes());
            names.push(0);
            bytes.extend_from_slice(data);
        }
        headers.push((names.len(), SHT_STRTAB, bytes.len(), 0));
        names.extend_from_slice(b".shstrtab\0");
        if let Some(last) = headers.last_mut() {
            last.3 = names.len();
        }
        bytes.extend_from_slice(&names);
        while bytes.len() % 8 != 0 {
            bytes.push(0);
        }
        let shoff = bytes.len();
        bytes.resize(shoff + entsize, 0); // the null section
        for (name, kind, offset, size) in &headers {
            let at = bytes.len();
            bytes.resize(at + entsize, 0);
            put(&mut bytes, at, *name as u64, 4, big);
            put(&mut bytes, at + 4, u64::from(*kind), 4, big);
            let (off_at, size_at) = if is64 { (24, 32) } else { (16, 20) };
            put(&mut bytes, at + off_at, *offset as u64, word, big);
            put(&mut bytes, at + size_at, *size as u64, word, big);
        }
        bytes[..4].copy_from_slice(b"\x7fELF");
        bytes[4] = if is64 { 2 } else { 1 };
        bytes[5] = if big { 2 } else { 1 };
        bytes[6] = 1;
        let mut image = Image {
            bytes,
            is64,
            big,
            shoff,
            entsize,
        };
        image.set_header(0x28, 0x20, shoff as u64, word);
        image.set_header(0x3a, 0x2e, entsize as u64, 2);
        image.set_header(0x3c, 0x30, headers.len() as u64 + 1, 2);
        image.set_header(0x3e, 0x32, headers.len() as u64, 2);
        image
    }

    /// Sets an ELF header field (offsets for 64- and 32-bit files).
    fn set_header(&mut self, at64: usize, at32: usize, value: u64, width: usize) {
        let at = if self.is64 { at64 } else { at32 };
        put(&mut self.bytes, at, value, width, self.big);
    }

    /// Sets a field of section header `index` (offsets for 64/32-bit).
    fn set_section(&mut self, index: usize, at64: usize, at32: usize, value: u64, width: usize) {
        let at = self.shoff + index * self.entsize + if self.is64 { at64 } else { at32 };
        put(&mut self.bytes, at, value, width, self.big);
    }

    fn word(&self) -> usize {
        if self.is64 {
            8
        } else {
            4
        }
    }
}

fn uvarint_bytes(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
    out
}

/// A Go 1.18+ `.go.buildinfo` blob.
fn blob(ptr_size: u8, big: bool, version: &str, mod_info: &[u8]) -> Vec<u8> {
    let mut b = MAGIC.to_vec();
    b.push(ptr_size);
    b.push(FLAG_INLINE | u8::from(big));
    b.resize(HEADER_LEN, 0);
    b.extend(uvarint_bytes(version.len() as u64));
    b.extend_from_slice(version.as_bytes());
    b.extend(uvarint_bytes(mod_info.len() as u64));
    b.extend_from_slice(mod_info);
    b
}

fn framed(text: &str) -> Vec<u8> {
    [&INFO_START[..], text.as_bytes(), &INFO_END[..]].concat()
}

/// A typical image: code, build info, then `.bss`.
fn go_binary(is64: bool, big: bool, buildinfo: &[u8]) -> Image {
    Image::new(
        is64,
        big,
        &[
            (".text", SHT_PROGBITS, b"\x90\x90\x90\x90"),
            (".go.buildinfo", SHT_PROGBITS, buildinfo),
            (".bss", SHT_NOBITS, b""),
        ],
    )
}

#[test]
fn reads_64_bit_little_endian() {
    let image = go_binary(true, false, &blob(8, false, "go1.24.1", &framed(MOD_TEXT)));
    let info = read(&image.bytes).expect("reads");
    assert_eq!(info.go_version, "go1.24.1");
    assert_eq!(info.path, "example.com/app");
    assert_eq!(
        (&*info.main.path, &*info.main.version),
        ("example.com/app", "v1.2.3")
    );
    assert_eq!(info.deps.len(), 1);
    assert_eq!(info.deps[0].path, "golang.org/x/sys");
    assert_eq!(info.settings, [("GOOS".to_string(), "linux".to_string())]);
}

#[test]
fn reads_32_bit_big_endian_with_the_header_on_a_later_boundary() {
    let mut section = vec![0u8; 32];
    section.extend(blob(4, true, "go1.22.3 X:boringcrypto", &framed(MOD_TEXT)));
    let image = go_binary(false, true, &section);
    let info = read(&image.bytes).expect("reads");
    assert_eq!(info.go_version, "go1.22.3 X:boringcrypto");
    assert_eq!(info.main.version, "v1.2.3");
}

#[test]
fn a_binary_built_outside_module_mode_has_no_modules() {
    let image = go_binary(true, false, &blob(8, false, "go1.21.0", b""));
    let info = read(&image.bytes).expect("reads");
    assert_eq!(info.go_version, "go1.21.0");
    assert_eq!(info.main, Module::default());
    assert!(info.deps.is_empty());
}

#[test]
fn extended_section_numbering() {
    let mut image = go_binary(true, false, &blob(8, false, "go1.24.1", &framed(MOD_TEXT)));
    // e_shnum = 0: the count is section 0's sh_size; e_shstrndx = SHN_XINDEX:
    // the name table index is section 0's sh_link.
    image.set_header(0x3c, 0x30, 0, 2);
    image.set_header(0x3e, 0x32, 0xffff, 2);
    image.set_section(0, 32, 20, 5, 8);
    image.set_section(0, 40, 24, 4, 4);
    assert_eq!(read(&image.bytes).expect("reads").go_version, "go1.24.1");
}

fn read_err(bytes: &[u8]) -> BuildInfoError {
    read(bytes).expect_err("must fail")
}

#[test]
fn refuses_files_that_are_not_go_elf_binaries() {
    assert_eq!(read_err(b""), BuildInfoError::NotElf);
    assert_eq!(read_err(b"MZ\x90\x00"), BuildInfoError::NotElf);
    assert_eq!(
        read_err(b"\x7fELF"),
        BuildInfoError::Truncated { what: "ELF header" }
    );
    assert_eq!(
        read_err(b"\x7fELF\x03\x01"),
        BuildInfoError::UnsupportedElf {
            field: "class",
            value: 3
        }
    );
    assert_eq!(
        read_err(b"\x7fELF\x02\x00"),
        BuildInfoError::UnsupportedElf {
            field: "data encoding",
            value: 0
        }
    );
    assert_eq!(
        read_err(b"\x7fELF\x02\x01\x01"),
        BuildInfoError::Truncated { what: "ELF header" }
    );

    let no_section = Image::new(true, false, &[(".text", SHT_PROGBITS, b"\x90")]);
    let err = read_err(&no_section.bytes);
    assert_eq!(err, BuildInfoError::NoBuildInfoSection);
    assert_eq!(
        err.to_string(),
        "no .go.buildinfo section: not a Go binary or stripped of build info"
    );

    let mut sstripped = go_binary(true, false, &blob(8, false, "go1.24.1", b""));
    sstripped.set_header(0x28, 0x20, 0, 8);
    assert_eq!(
        read_err(&sstripped.bytes),
        BuildInfoError::NoBuildInfoSection
    );

    let not_go = go_binary(false, false, b"just some data in a section of that name");
    assert_eq!(read_err(&not_go.bytes), BuildInfoError::NoMagic);
}

#[test]
fn refuses_the_pre_go_1_18_layout() {
    let mut old = blob(8, false, "go1.17", b"");
    old[15] = 0; // pointer-based, little endian
    let err = read_err(&go_binary(true, false, &old).bytes);
    assert_eq!(err, BuildInfoError::PreGo118);
    assert!(err.to_string().contains("older than 1.18"), "{err}");
}

#[test]
fn refuses_damaged_blobs() {
    let image = |b: &[u8]| go_binary(true, false, b).bytes;
    let header_only = &blob(8, false, "", b"")[..20];
    assert_eq!(
        read_err(&image(header_only)),
        BuildInfoError::Truncated {
            what: "build info header"
        }
    );
    let mut huge = blob(8, false, "", b"");
    huge.truncate(HEADER_LEN);
    huge.extend([0xff; 10]);
    huge.push(0x01);
    assert_eq!(
        read_err(&image(&huge)),
        BuildInfoError::BadLength { what: "Go version" }
    );
    let mut past_end = blob(8, false, "", b"");
    past_end.truncate(HEADER_LEN);
    past_end.extend(uvarint_bytes(u64::MAX));
    past_end.extend_from_slice(b"go1.24");
    assert_eq!(
        read_err(&image(&past_end)),
        BuildInfoError::Truncated { what: "Go version" }
    );
    let mut no_mod = blob(8, false, "go1.24", b"");
    no_mod.truncate(HEADER_LEN + 7);
    assert_eq!(
        read_err(&image(&no_mod)),
        BuildInfoError::Truncated {
            what: "module info"
        }
    );
    assert_eq!(
        read_err(&image(&blob(8, false, "", &framed(MOD_TEXT)))),
        BuildInfoError::EmptyGoVersion
    );
    let bad_utf8 = [&INFO_START[..], b"path\t\xff\n", &INFO_END[..]].concat();
    assert_eq!(
        read_err(&image(&blob(8, false, "go1.24", &bad_utf8))),
        BuildInfoError::NotUtf8 {
            what: "module info"
        }
    );
    assert_eq!(
        read_err(&image(&blob(8, false, "go1.24", &framed("mod\tonly\n")))),
        BuildInfoError::ModInfo(ModInfoError {
            line: 1,
            problem: ModInfoProblem::ModuleColumns { got: 1 },
        })
    );
}

#[test]
fn refuses_damaged_elf_headers() {
    let good = || go_binary(true, false, &blob(8, false, "go1.24.1", &framed(MOD_TEXT)));
    let truncated = |what| BuildInfoError::Truncated { what };

    let mut image = good();
    image.set_header(0x28, 0x20, u64::MAX - 2, 8);
    assert_eq!(read_err(&image.bytes), truncated("section header table"));

    let mut image = good();
    image.set_header(0x3c, 0x30, 0xfff0, 2);
    assert_eq!(read_err(&image.bytes), truncated("section header table"));

    let mut image = good();
    image.set_header(0x3c, 0x30, 0, 2); // extended count from section 0 ...
    image.set_section(0, 32, 20, u64::MAX / 2, 8); // ... which is absurd
    assert_eq!(read_err(&image.bytes), truncated("section header table"));

    let mut image = good();
    image.set_header(0x3a, 0x2e, 16, 2);
    assert!(matches!(
        read_err(&image.bytes),
        BuildInfoError::MalformedElf { .. }
    ));

    let mut image = good();
    image.set_header(0x3e, 0x32, 9, 2);
    assert!(matches!(
        read_err(&image.bytes),
        BuildInfoError::MalformedElf { .. }
    ));

    let mut image = good();
    let word = image.word();
    image.set_section(4, 24, 16, u64::MAX - 1, word); // .shstrtab offset
    assert_eq!(read_err(&image.bytes), truncated("section name table"));

    let mut image = good();
    image.set_section(2, 0, 0, 0xffff_fff0, 4); // .go.buildinfo's name offset
    assert!(matches!(
        read_err(&image.bytes),
        BuildInfoError::MalformedElf { .. }
    ));

    let mut image = good();
    image.set_section(2, 32, 20, 1 << 30, word); // .go.buildinfo's size
    assert_eq!(read_err(&image.bytes), truncated(".go.buildinfo section"));

    let mut image = good();
    image.set_section(2, 4, 4, u64::from(SHT_NOBITS), 4);
    assert!(matches!(
        read_err(&image.bytes),
        BuildInfoError::MalformedElf { .. }
    ));
}

#[test]
fn never_panics_on_truncated_or_corrupted_images() {
    for (is64, big) in [(true, false), (false, true), (true, true), (false, false)] {
        let image = go_binary(is64, big, &blob(8, big, "go1.24.1", &framed(MOD_TEXT)));
        assert!(read(&image.bytes).is_ok());
        for len in 0..image.bytes.len() {
            let _ = read(&image.bytes[..len]);
        }
        for at in 0..image.bytes.len() {
            for value in [0x00, 0x7f, 0x80, 0xff] {
                let mut bytes = image.bytes.clone();
                bytes[at] = value;
                let _ = read(&bytes);
            }
        }
    }
}

/// Drives [`locate_section`] as a piecewise reader does, fetching what it
/// asks for (at least `window` bytes, as a client rounds small reads up).
fn read_piecewise(bytes: &[u8], window: u64) -> (Result<BuildInfo, BuildInfoError>, usize) {
    let mut pieces: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut asked = Vec::new();
    for round in 1..=10 {
        match locate_section(&pieces) {
            Err(BuildInfoError::NeedBytes { offset, len }) => {
                let start = usize::try_from(offset)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                let end = start
                    .saturating_add(len.max(window) as usize)
                    .min(bytes.len());
                if asked.contains(&(offset, len)) {
                    return (Err(BuildInfoError::Truncated { what: "piece" }), round);
                }
                asked.push((offset, len));
                pieces.push((offset, bytes[start..end].to_vec()));
            }
            other => return (other, round),
        }
    }
    panic!("more than 10 rounds");
}

#[test]
fn piecewise_reading_finds_what_a_whole_read_finds() {
    for (is64, big) in [(true, false), (false, true)] {
        let image = go_binary(
            is64,
            big,
            &blob(if is64 { 8 } else { 4 }, big, "go1.24.1", &framed(MOD_TEXT)),
        );
        let whole = read(&image.bytes).expect("reads");
        // Field by field (no window): every piece is asked for.
        let (got, rounds) = read_piecewise(&image.bytes, 0);
        assert_eq!(got.expect("reads piecewise"), whole);
        assert!(rounds > 3, "{rounds}");
        // With a window, a handful of rounds.
        let (got, rounds) = read_piecewise(&image.bytes, 4096);
        assert_eq!(got.expect("reads piecewise"), whole);
        assert!(rounds <= 5, "{rounds}");
    }
    // Not ELF, and a truncated file, are errors, not endless asking.
    assert_eq!(
        read_piecewise(b"#!/bin/sh\necho hi\n", 64).0,
        Err(BuildInfoError::NotElf)
    );
    let image = go_binary(true, false, &blob(8, false, "go1.24.1", &framed(MOD_TEXT)));
    assert!(read_piecewise(&image.bytes[..100], 64).0.is_err());
}
