//! Typed errors of [`read`](super::read) and
//! [`parse_mod_info`](super::parse_mod_info).
//!
//! Reading a binary fails on the container (not ELF, malformed or truncated
//! headers), on the `.go.buildinfo` blob (missing, pre-1.18 format, bad
//! lengths) or on the module info text, whose errors mirror the messages of
//! Go's `runtime/debug.ParseBuildInfo`.

use thiserror::Error;

/// Why a binary's build info cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum BuildInfoError {
    /// The bytes do not start with the ELF magic.
    #[error("not an ELF file: kiln reads Go build info from Linux (ELF) binaries only")]
    NotElf,
    /// An ELF identification byte kiln does not know.
    #[error("unsupported ELF {field} {value}")]
    UnsupportedElf {
        /// `class` (32/64-bit) or `data encoding` (byte order).
        field: &'static str,
        /// The byte found.
        value: u8,
    },
    /// A structure runs past the end of the file (or of its section).
    #[error("truncated {what}: it runs past the end of the file")]
    Truncated {
        /// What was being read, e.g. `section header table`.
        what: &'static str,
    },
    /// Reading piecewise ([`super::locate_section`]): these bytes of the
    /// file are needed next. Not a failure: fetch them and ask again.
    #[error("bytes {offset}..+{len} of the file are needed")]
    NeedBytes {
        /// Where they start in the file.
        offset: u64,
        /// How many.
        len: u64,
    },
    /// The ELF headers contradict themselves.
    #[error("malformed ELF file: {what}")]
    MalformedElf {
        /// What is wrong.
        what: &'static str,
    },
    /// No section is named `.go.buildinfo`.
    #[error("no .go.buildinfo section: not a Go binary or stripped of build info")]
    NoBuildInfoSection,
    /// The section does not hold the `"\xff Go buildinf:"` header.
    #[error(
        ".go.buildinfo section has no build info header (\"\\xff Go buildinf:\"): not a Go binary"
    )]
    NoMagic,
    /// The build info uses the pointer-based layout of Go 1.17 and older.
    #[error("the binary was built by Go older than 1.18, whose build info layout kiln does not read; rebuild it with Go 1.18 or newer")]
    PreGo118,
    /// A length prefix in `.go.buildinfo` overflows 64 bits.
    #[error("invalid length prefix of the {what} in .go.buildinfo")]
    BadLength {
        /// `Go version` or `module info`.
        what: &'static str,
    },
    /// A string in `.go.buildinfo` is not UTF-8.
    #[error("the {what} in .go.buildinfo is not valid UTF-8")]
    NotUtf8 {
        /// `Go version` or `module info`.
        what: &'static str,
    },
    /// The Go version string is empty.
    #[error("not a Go executable: .go.buildinfo holds an empty Go version")]
    EmptyGoVersion,
    /// The module info text is malformed.
    #[error(transparent)]
    ModInfo(#[from] ModInfoError),
}

/// A malformed line of module info text.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("could not parse Go build info: line {line}: {problem}")]
pub struct ModInfoError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub problem: ModInfoProblem,
}

/// What is wrong with a line of module info; the messages are Go's.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ModInfoProblem {
    /// A `mod` or `dep` line without 2 or 3 tab-separated columns.
    ModuleColumns {
        /// The number of columns.
        got: usize,
    },
    /// A `=>` line without exactly 3 columns.
    ReplacementColumns {
        /// The number of columns.
        got: usize,
    },
    /// A `=>` line that follows no `mod` or `dep` line.
    ReplacementWithoutModule,
    /// `build\t` and nothing else.
    BuildMissingEquals,
    /// `build\t=value`.
    BuildMissingKey,
    /// A quoted key that does not unquote.
    InvalidQuotedKey,
    /// A quoted key that ends the line.
    MissingEqualsAfterQuotedKey,
    /// A quoted key followed by something other than `=`.
    UnexpectedAfterQuotedKey {
        /// The character found.
        found: char,
    },
    /// An unquoted key without `=`.
    MissingEqualsAfterKey,
    /// An unquoted key with characters that require quoting.
    UnquotedKey {
        /// The key.
        key: String,
    },
    /// A quoted value that does not unquote (or decodes to non-UTF-8 bytes).
    InvalidQuotedValue,
    /// An unquoted value with characters that require quoting.
    UnquotedValue {
        /// The value.
        value: String,
    },
}

impl std::fmt::Display for ModInfoProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModInfoProblem::ModuleColumns { got } => {
                write!(f, "expected 2 or 3 columns; got {got}")
            }
            ModInfoProblem::ReplacementColumns { got } => {
                write!(f, "expected 3 columns for replacement; got {got}")
            }
            ModInfoProblem::ReplacementWithoutModule => {
                f.write_str("replacement with no module on previous line")
            }
            ModInfoProblem::BuildMissingEquals => f.write_str("build line missing '='"),
            ModInfoProblem::BuildMissingKey => f.write_str("build line with missing key"),
            ModInfoProblem::InvalidQuotedKey => f.write_str("invalid quoted key in build line"),
            ModInfoProblem::MissingEqualsAfterQuotedKey => {
                f.write_str("build line missing '=' after quoted key")
            }
            ModInfoProblem::UnexpectedAfterQuotedKey { found } => {
                write!(f, "unexpected character after quoted key: {found:?}")
            }
            ModInfoProblem::MissingEqualsAfterKey => {
                f.write_str("build line missing '=' after key")
            }
            ModInfoProblem::UnquotedKey { key } => write!(f, "unquoted key {key:?} must be quoted"),
            ModInfoProblem::InvalidQuotedValue => f.write_str("invalid quoted value in build line"),
            ModInfoProblem::UnquotedValue { value } => {
                write!(f, "unquoted value {value:?} must be quoted")
            }
        }
    }
}
