//! Reading the `go` and `toolchain` lines of a `go.mod`.
//!
//! This is not a full `golang.org/x/mod/modfile` parser: it tokenizes lines
//! the same way (comments, quoted strings, `verb ( … )` blocks, CRLF) and
//! keeps only what picking a Go release needs: `module`, `go` and
//! `toolchain`. Every other directive is skipped, so new ones do not break it.
//!
//! The caller reads the file (kiln-build's `go_mod::read_dir` reads
//! `DIR/go.mod`) and hands its text to [`GoMod::parse`].

use std::path::{Path, PathBuf};

use crate::error::{Error, GoModProblem, VersionError};
use crate::version::GoVersion;

/// What kiln needs from a `go.mod`.
///
/// ```
/// use kiln_go::GoMod;
///
/// let text = "module example.com/app\r\n\r\ngo 1.24.1 // minimum\r\n\r\ntoolchain go1.24.3\r\n\
///             require (\r\n\tgolang.org/x/text v0.14.0\r\n)\r\n";
/// let m = GoMod::parse(text, "go.mod".as_ref())?;
/// assert_eq!(m.go.to_string(), "1.24.1");
/// assert_eq!(m.toolchain.as_ref().map(ToString::to_string).as_deref(), Some("1.24.3"));
/// assert_eq!(m.module.as_deref(), Some("example.com/app"));
/// # Ok::<(), kiln_go::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoMod {
    /// The file this was read from (the `path` given to [`GoMod::parse`]).
    pub path: PathBuf,
    /// The module path, if the file declares one.
    pub module: Option<String>,
    /// The `go` directive: the minimum Go version (and language version).
    pub go: GoVersion,
    /// The version of the `toolchain` line (`go1.24.3` → 1.24.3), if any and
    /// not `default`.
    pub toolchain: Option<GoVersion>,
}

impl GoMod {
    /// Parses the text of a `go.mod`; `path` is only used in errors.
    ///
    /// # Errors
    /// [`Error::GoDirectiveMissing`] without a `go` line,
    /// [`Error::GoModSyntax`] for a malformed or repeated `go`/`toolchain`
    /// line, [`Error::GoModVersion`] if either names no valid version.
    pub fn parse(text: &str, path: &Path) -> Result<Self, Error> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut module = None;
        let mut go: Option<GoVersion> = None;
        let mut toolchain: Option<Option<GoVersion>> = None;
        // The verb of the `verb (` block we are in, if any.
        let mut block: Option<String> = None;

        for (index, raw) in text.split('\n').enumerate() {
            let line = index + 1;
            let syntax = |directive: &'static str, problem| Error::GoModSyntax {
                path: path.to_owned(),
                line,
                directive,
                problem,
            };
            let tokens = tokenize(raw.trim_end_matches('\r'))
                .ok_or_else(|| syntax("go.mod", GoModProblem::UnterminatedQuote))?;
            let Some(first) = tokens.first() else {
                continue;
            };
            if block.is_some() && first == ")" {
                block = None;
                continue;
            }
            let (verb, args): (&str, &[String]) = match &block {
                Some(verb) => (verb, &tokens[..]),
                None => {
                    if tokens.len() == 2 && tokens[1] == "(" {
                        block = Some(first.clone());
                        continue;
                    }
                    (first, &tokens[1..])
                }
            };
            let version_error = |source: VersionError| Error::GoModVersion {
                path: path.to_owned(),
                line,
                source,
            };
            match verb {
                "module" => module = args.first().cloned(),
                "go" => {
                    if go.is_some() {
                        return Err(syntax("go", GoModProblem::Repeated));
                    }
                    let [version] = args else {
                        return Err(syntax("go", GoModProblem::Arguments));
                    };
                    go = Some(GoVersion::parse(version).map_err(version_error)?);
                }
                "toolchain" => {
                    if toolchain.is_some() {
                        return Err(syntax("toolchain", GoModProblem::Repeated));
                    }
                    let [name] = args else {
                        return Err(syntax("toolchain", GoModProblem::Arguments));
                    };
                    toolchain = Some(toolchain_version(name).map_err(version_error)?);
                }
                _ => {}
            }
        }
        let go = go.ok_or_else(|| Error::GoDirectiveMissing {
            path: path.to_owned(),
        })?;
        Ok(GoMod {
            path: path.to_owned(),
            module,
            go,
            toolchain: toolchain.flatten(),
        })
    }
}

/// `go1.24.3` → 1.24.3; `default` → none. Like the go command's
/// `gover.FromToolchain`, a custom suffix after `-` is dropped
/// (`go1.21.3-bigcorp`).
fn toolchain_version(name: &str) -> Result<Option<GoVersion>, VersionError> {
    if name == "default" {
        return Ok(None);
    }
    let invalid = || VersionError {
        input: name.to_owned(),
    };
    let version = name.strip_prefix("go").ok_or_else(invalid)?;
    let version = version.split('-').next().unwrap_or(version);
    GoVersion::parse(version).map(Some).map_err(|_| invalid())
}

/// Splits a line into tokens as modfile's lexer does: `//` starts a comment,
/// `(` and `)` are tokens of their own, `"…"` and `` `…` `` are single
/// (unquoted) tokens. `None` for an unterminated quote.
fn tokenize(line: &str) -> Option<Vec<String>> {
    let mut tokens = Vec::new();
    let mut chars = line.chars().peekable();
    let mut current = String::new();
    let flush = |current: &mut String, tokens: &mut Vec<String>| {
        if !current.is_empty() {
            tokens.push(std::mem::take(current));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => break,
            c if c.is_whitespace() => flush(&mut current, &mut tokens),
            '(' | ')' => {
                flush(&mut current, &mut tokens);
                tokens.push(c.to_string());
            }
            '"' => loop {
                match chars.next()? {
                    '"' => break,
                    '\\' => current.push(chars.next()?),
                    c => current.push(c),
                }
            },
            '`' => loop {
                match chars.next()? {
                    '`' => break,
                    c => current.push(c),
                }
            },
            c => current.push(c),
        }
    }
    flush(&mut current, &mut tokens);
    Some(tokens)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<GoMod, Error> {
        GoMod::parse(text, Path::new("/src/app/go.mod"))
    }

    fn ok(text: &str) -> (String, Option<String>) {
        let m = parse(text).unwrap_or_else(|e| panic!("{e}"));
        (m.go.to_string(), m.toolchain.map(|t| t.to_string()))
    }

    #[test]
    fn reads_go_and_toolchain() {
        assert_eq!(ok("module a\n\ngo 1.24\n"), ("1.24".into(), None));
        assert_eq!(
            ok("go 1.24.1\ntoolchain go1.24.3\n"),
            ("1.24.1".into(), Some("1.24.3".into()))
        );
        assert_eq!(ok("go 1.21rc2"), ("1.21rc2".into(), None));
        assert_eq!(ok("go 1.22\ntoolchain default\n"), ("1.22".into(), None));
        assert_eq!(
            ok("go 1.21.0\ntoolchain go1.21.3-bigcorp\n"),
            ("1.21.0".into(), Some("1.21.3".into()))
        );
    }

    #[test]
    fn the_seed_articles_go_mod() {
        let text = "module github.com/ngicks/go-example-basics-revisited/building-with-docker\n\n\
                    go 1.25.0\n\nrequire (\n\tgithub.com/ngicks/go-iterator-helper v0.0.23\n\
                    \tgithub.com/ngicks/go-playground v0.0.1\n)\n";
        let m = parse(text).unwrap();
        assert_eq!(m.go.to_string(), "1.25.0");
        assert_eq!(
            m.module.as_deref(),
            Some("github.com/ngicks/go-example-basics-revisited/building-with-docker")
        );
    }

    #[test]
    fn comments_crlf_bom_blocks_and_quotes() {
        let text = "\u{feff}// go 1.99 in a comment does not count\r\n\
                    module \"example.com/quoted\" // the module\r\n\
                    \r\n\
                    go 1.23.4 // minimum\r\n\
                    toolchain go1.23.6\r\n\
                    require (\r\n\
                    \tgo.example/go v1.0.0 // a module named go\r\n\
                    \tgolang.org/toolchain v0.0.1-go1.21.0.linux-amd64\r\n\
                    )\r\n\
                    replace example.com/x => ../x\r\n\
                    exclude ( example.com/y v1.0.0 )\r\n\
                    retract [v1.0.0, v1.1.0] // \"quoted // inside\"\r\n\
                    godebug (\r\n\tdefault=go1.21\r\n)\r\n\
                    tool `example.com/raw`\r\n";
        let m = parse(text).unwrap();
        assert_eq!(m.go.to_string(), "1.23.4");
        assert_eq!(m.toolchain.unwrap().to_string(), "1.23.6");
        assert_eq!(m.module.as_deref(), Some("example.com/quoted"));
    }

    #[test]
    fn require_lines_that_start_with_go_are_not_the_directive() {
        let text = "module m\nrequire (\n\tgo 1.0.0\n)\ngo 1.22.1\n";
        assert_eq!(ok(text).0, "1.22.1");
    }

    #[test]
    fn go_in_block_form() {
        assert_eq!(ok("module m\ngo (\n\t1.22.3\n)\n").0, "1.22.3");
    }

    #[test]
    fn missing_go_directive() {
        let err = parse("module m\nrequire x v1.0.0\n").unwrap_err();
        assert!(matches!(err, Error::GoDirectiveMissing { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("/src/app/go.mod") && msg.contains("--go"),
            "{msg}"
        );
        assert!(matches!(
            parse("").unwrap_err(),
            Error::GoDirectiveMissing { .. }
        ));
    }

    #[test]
    fn malformed_lines_name_the_file_and_line() {
        let err = parse("module m\n\ngo\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "/src/app/go.mod:3: go line expects exactly one version"
        );
        let err = parse("go 1.21 1.22\n").unwrap_err();
        assert!(matches!(
            err,
            Error::GoModSyntax {
                line: 1,
                problem: GoModProblem::Arguments,
                ..
            }
        ));
        let err = parse("go 1.21\ngo 1.22\n").unwrap_err();
        assert!(matches!(
            err,
            Error::GoModSyntax {
                line: 2,
                problem: GoModProblem::Repeated,
                ..
            }
        ));
        let err = parse("go 1.21\ntoolchain go1.21.1\ntoolchain go1.21.2\n").unwrap_err();
        assert!(matches!(
            err,
            Error::GoModSyntax {
                line: 3,
                directive: "toolchain",
                ..
            }
        ));
        let err = parse("module \"m\ngo 1.21\n").unwrap_err();
        assert!(matches!(
            err,
            Error::GoModSyntax {
                problem: GoModProblem::UnterminatedQuote,
                ..
            }
        ));
    }

    #[test]
    fn bad_versions_name_the_file_and_line() {
        let err = parse("module m\ngo 1.x\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "/src/app/go.mod:2: invalid Go version \"1.x\": expected a version such as \
             1.24.3, 1.24, 1.25rc1 or go1.24.3"
        );
        let err = parse("go 1.21\ntoolchain 1.21.3\n").unwrap_err();
        assert!(
            matches!(err, Error::GoModVersion { line: 2, .. }),
            "{err:?}"
        );
        let err = parse("go 1.21\ntoolchain gox\n").unwrap_err();
        assert!(err.to_string().contains("\"gox\""), "{err}");
    }
}
