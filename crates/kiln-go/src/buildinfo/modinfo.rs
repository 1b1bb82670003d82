//! The module info text, parsed line by line as Go's
//! `runtime/debug.ParseBuildInfo` does, and the `strconv.Unquote` rules its
//! quoted build settings use.

use super::error::{ModInfoError, ModInfoProblem};
use super::{BuildInfo, Module};

/// Where a `=>` line attaches: the module of the previous `mod`/`dep` line.
#[derive(Clone, Copy)]
enum Last {
    None,
    Main,
    Dep(usize),
}

/// Parses module info text (the part between the 16-byte sentinels), the
/// way Go's `runtime/debug.ParseBuildInfo` does.
///
/// Recognised lines are `path\t…`, `mod\t…`, `dep\t…`, `=>\t…` (the
/// replacement of the module on the line before) and `build\tKEY=VALUE`
/// (keys and values may be quoted with Go's `strconv.Quote` rules). Other
/// lines are ignored, and so is a last line without its newline, as Go does.
/// [`BuildInfo::go_version`] is left empty: it is not part of this text.
///
/// # Errors
///
/// A [`ModInfoError`] naming the 1-based line and the problem, with Go's
/// messages.
pub fn parse_mod_info(text: &str) -> Result<BuildInfo, ModInfoError> {
    let mut info = BuildInfo::default();
    let mut last = Last::None;
    let lines = text
        .split_inclusive('\n')
        .filter_map(|l| l.strip_suffix('\n'));
    for (index, line) in lines.enumerate() {
        let fail = |problem| ModInfoError {
            line: index + 1,
            problem,
        };
        if let Some(rest) = line.strip_prefix("path\t") {
            info.path = rest.to_string();
        } else if let Some(rest) = line.strip_prefix("mod\t") {
            info.main = module_line(rest).map_err(fail)?;
            last = Last::Main;
        } else if let Some(rest) = line.strip_prefix("dep\t") {
            info.deps.push(module_line(rest).map_err(fail)?);
            last = Last::Dep(info.deps.len() - 1);
        } else if let Some(rest) = line.strip_prefix("=>\t") {
            let cols: Vec<&str> = rest.split('\t').collect();
            let [path, version, sum] = cols[..] else {
                return Err(fail(ModInfoProblem::ReplacementColumns { got: cols.len() }));
            };
            let target = match last {
                Last::None => return Err(fail(ModInfoProblem::ReplacementWithoutModule)),
                Last::Main => &mut info.main,
                Last::Dep(i) => &mut info.deps[i],
            };
            target.replace = Some(Box::new(Module {
                path: path.to_string(),
                version: version.to_string(),
                sum: sum.to_string(),
                replace: None,
            }));
            last = Last::None;
        } else if let Some(rest) = line.strip_prefix("build\t") {
            info.settings.push(build_line(rest).map_err(fail)?);
        }
    }
    Ok(info)
}

/// `path\tversion[\tsum]`.
fn module_line(rest: &str) -> Result<Module, ModInfoProblem> {
    let cols: Vec<&str> = rest.split('\t').collect();
    let (path, version, sum) = match cols[..] {
        [path, version] => (path, version, ""),
        [path, version, sum] => (path, version, sum),
        _ => return Err(ModInfoProblem::ModuleColumns { got: cols.len() }),
    };
    Ok(Module {
        path: path.to_string(),
        version: version.to_string(),
        sum: sum.to_string(),
        replace: None,
    })
}

/// Go's `quoteKey`: keys with these characters (or empty) are quoted.
fn key_needs_quotes(key: &str) -> bool {
    key.is_empty() || key.contains(['=', ' ', '\t', '\r', '\n', '"', '`'])
}

/// Go's `quoteValue`: values with these characters are quoted.
fn value_needs_quotes(value: &str) -> bool {
    value.contains([' ', '\t', '\r', '\n', '"', '`'])
}

/// `KEY=VALUE` after `build\t`.
fn build_line(kv: &str) -> Result<(String, String), ModInfoProblem> {
    let (key, raw_value) = match kv.chars().next() {
        None => return Err(ModInfoProblem::BuildMissingEquals),
        Some('=') => return Err(ModInfoProblem::BuildMissingKey),
        Some('"' | '`') => {
            let (key, rest) = unquote_prefix(kv).ok_or(ModInfoProblem::InvalidQuotedKey)?;
            let mut rest_chars = rest.chars();
            match rest_chars.next() {
                None => return Err(ModInfoProblem::MissingEqualsAfterQuotedKey),
                Some('=') => (key, rest_chars.as_str()),
                Some(found) => return Err(ModInfoProblem::UnexpectedAfterQuotedKey { found }),
            }
        }
        Some(_) => {
            let (key, value) = kv
                .split_once('=')
                .ok_or(ModInfoProblem::MissingEqualsAfterKey)?;
            if key_needs_quotes(key) {
                return Err(ModInfoProblem::UnquotedKey {
                    key: key.to_string(),
                });
            }
            (key.to_string(), value)
        }
    };
    let value = match raw_value.chars().next() {
        Some('"' | '`') => match unquote_prefix(raw_value) {
            Some((value, "")) => value,
            _ => return Err(ModInfoProblem::InvalidQuotedValue),
        },
        _ if value_needs_quotes(raw_value) => {
            return Err(ModInfoProblem::UnquotedValue {
                value: raw_value.to_string(),
            })
        }
        _ => raw_value.to_string(),
    };
    Ok((key, value))
}

/// Go's `strconv.QuotedPrefix` + `strconv.Unquote` for `"…"` and `` `…` ``:
/// the unquoted text of the quoted string `s` starts with, and what follows
/// it. `None` when the quoting is invalid, or when `\x`/octal escapes decode
/// to bytes that are not UTF-8 (Go strings may hold any bytes; ours may not).
pub(crate) fn unquote_prefix(s: &str) -> Option<(String, &str)> {
    if let Some(raw) = s.strip_prefix('`') {
        // A raw string: no escapes; carriage returns are discarded.
        let end = raw.find('`')?;
        return Some((raw[..end].replace('\r', ""), &raw[end + 1..]));
    }
    let mut rest = s.strip_prefix('"')?;
    let mut out = Vec::with_capacity(rest.len());
    loop {
        let c = rest.chars().next()?;
        match c {
            '"' => {
                rest = &rest[1..];
                break;
            }
            '\n' => return None,
            '\\' => {
                let (unescaped, tail) = unescape(&rest[1..])?;
                match unescaped {
                    Unescaped::Byte(b) => out.push(b),
                    Unescaped::Char(c) => {
                        out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                    }
                }
                rest = tail;
            }
            c => {
                out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    String::from_utf8(out).ok().map(|text| (text, rest))
}

/// One escape's value: `\x` and octal escapes are raw bytes in Go.
enum Unescaped {
    Byte(u8),
    Char(char),
}

/// Go's `strconv.UnquoteChar` after a backslash, inside a `"…"` string.
fn unescape(s: &str) -> Option<(Unescaped, &str)> {
    let bytes = s.as_bytes();
    let first = *bytes.first()?;
    let tail = &s[1..];
    let simple = |c: char| Some((Unescaped::Char(c), tail));
    match first {
        b'a' => simple('\u{7}'),
        b'b' => simple('\u{8}'),
        b'f' => simple('\u{c}'),
        b'n' => simple('\n'),
        b'r' => simple('\r'),
        b't' => simple('\t'),
        b'v' => simple('\u{b}'),
        b'\\' => simple('\\'),
        // Only the string's own quote may be escaped (`\'` is for runes).
        b'"' => simple('"'),
        b'x' | b'u' | b'U' => {
            let n = match first {
                b'x' => 2,
                b'u' => 4,
                _ => 8,
            };
            let digits = tail.get(..n)?;
            if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            let v = u32::from_str_radix(digits, 16).ok()?;
            let unescaped = if first == b'x' {
                Unescaped::Byte(u8::try_from(v).ok()?)
            } else {
                // Rejects surrogates and values past U+10FFFF, as Go does.
                Unescaped::Char(char::from_u32(v)?)
            };
            Some((unescaped, &tail[n..]))
        }
        b'0'..=b'7' => {
            let digits = s.get(..3)?;
            if !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
                return None;
            }
            let v = u32::from_str_radix(digits, 8).ok()?;
            Some((Unescaped::Byte(u8::try_from(v).ok()?), &s[3..]))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unquote(s: &str) -> Option<String> {
        match unquote_prefix(s) {
            Some((v, "")) => Some(v),
            _ => None,
        }
    }

    #[test]
    fn parses_modules_replacements_and_settings() {
        let text = "path\texample.com/app/cmd/app\n\
            mod\texample.com/app\t(devel)\t\n\
            dep\tgolang.org/x/sys\tv0.20.0\th1:abc=\n\
            dep\tgithub.com/old/lib\tv1.0.0\n\
            =>\tgithub.com/new/lib\tv1.2.0\th1:def=\n\
            dep\texample.com/local\tv0.0.0\n\
            =>\t../local\t\t\n\
            build\t-buildmode=exe\n\
            build\t-ldflags=\"-s -w -X main.version=1.0\"\n\
            build\tCGO_ENABLED=0\n\
            build\t\"odd key\"=`raw value`\n\
            build\tvcs.modified=\n";
        let info = parse_mod_info(text).expect("parses");
        assert_eq!(info.go_version, "");
        assert_eq!(info.path, "example.com/app/cmd/app");
        assert_eq!(info.main.path, "example.com/app");
        assert_eq!(info.main.version, "(devel)");
        assert_eq!(info.main.sum, "");
        assert_eq!(info.deps.len(), 3);
        assert_eq!(info.deps[0].sum, "h1:abc=");
        assert_eq!(info.deps[0].replace, None);
        let replaced = info.deps[1].replace.as_deref().expect("replaced");
        assert_eq!(
            (&*replaced.path, &*replaced.version, &*replaced.sum),
            ("github.com/new/lib", "v1.2.0", "h1:def=")
        );
        assert_eq!(info.deps[1].sum, "");
        let local = info.deps[2].replace.as_deref().expect("replaced");
        assert_eq!((&*local.path, &*local.version), ("../local", ""));
        let settings: Vec<(&str, &str)> = info
            .settings
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            settings,
            [
                ("-buildmode", "exe"),
                ("-ldflags", "-s -w -X main.version=1.0"),
                ("CGO_ENABLED", "0"),
                ("odd key", "raw value"),
                ("vcs.modified", ""),
            ]
        );
    }

    #[test]
    fn ignores_unknown_lines_and_an_unterminated_last_line() {
        let info = parse_mod_info("go\tgo1.22\nfuture\tx\npath\ta\npath\tb").expect("parses");
        assert_eq!(info.path, "a");
        assert_eq!(parse_mod_info("").expect("empty"), BuildInfo::default());
    }

    #[test]
    fn replacement_of_main_module() {
        let info = parse_mod_info("mod\ta\tv1\t\n=>\tb\tv2\th1:x\n").expect("parses");
        assert_eq!(info.main.replace.as_deref().map(|m| &*m.path), Some("b"));
    }

    #[test]
    fn reports_malformed_lines_with_go_messages() {
        let cases: &[(&str, usize, ModInfoProblem)] = &[
            ("mod\tonly\n", 1, ModInfoProblem::ModuleColumns { got: 1 }),
            (
                "path\tp\ndep\ta\tb\tc\td\n",
                2,
                ModInfoProblem::ModuleColumns { got: 4 },
            ),
            ("=>\ta\tb\tc\n", 1, ModInfoProblem::ReplacementWithoutModule),
            (
                "dep\ta\tv1\n=>\tb\tv2\th\n=>\tc\tv3\th\n",
                3,
                ModInfoProblem::ReplacementWithoutModule,
            ),
            (
                "dep\ta\tv1\n=>\tb\tv2\n",
                2,
                ModInfoProblem::ReplacementColumns { got: 2 },
            ),
            ("build\t\n", 1, ModInfoProblem::BuildMissingEquals),
            ("build\t=v\n", 1, ModInfoProblem::BuildMissingKey),
            ("build\tkey\n", 1, ModInfoProblem::MissingEqualsAfterKey),
            ("build\t\"k\n", 1, ModInfoProblem::InvalidQuotedKey),
            (
                "build\t\"k\"\n",
                1,
                ModInfoProblem::MissingEqualsAfterQuotedKey,
            ),
            (
                "build\t\"k\"x=1\n",
                1,
                ModInfoProblem::UnexpectedAfterQuotedKey { found: 'x' },
            ),
            (
                "build\ta b=1\n",
                1,
                ModInfoProblem::UnquotedKey { key: "a b".into() },
            ),
            ("build\tk=\"v\n", 1, ModInfoProblem::InvalidQuotedValue),
            (
                "build\tk=\"v\"tail\n",
                1,
                ModInfoProblem::InvalidQuotedValue,
            ),
            (
                "build\tk=a b\n",
                1,
                ModInfoProblem::UnquotedValue {
                    value: "a b".into(),
                },
            ),
        ];
        for (text, line, problem) in cases {
            let err = parse_mod_info(text).expect_err(text);
            assert_eq!((err.line, &err.problem), (*line, problem), "{text:?}");
        }
        let err = parse_mod_info("mod\tonly\n").expect_err("bad");
        assert_eq!(
            err.to_string(),
            "could not parse Go build info: line 1: expected 2 or 3 columns; got 1"
        );
    }

    #[test]
    fn unquotes_like_go_strconv() {
        assert_eq!(unquote(r#""plain""#).as_deref(), Some("plain"));
        assert_eq!(
            unquote(r#""a\tb\n\\\"\a\b\f\r\v""#).as_deref(),
            Some("a\tb\n\\\"\u{7}\u{8}\u{c}\r\u{b}")
        );
        assert_eq!(
            unquote(r#""\x41\101\u00e9\U0001F600""#).as_deref(),
            Some("AAé😀")
        );
        assert_eq!(unquote(r#""é""#).as_deref(), Some("é"));
        // UTF-8 spelled out byte by byte, as Go writes invalid sequences.
        assert_eq!(unquote(r#""\xc3\xa9""#).as_deref(), Some("é"));
        assert_eq!(unquote("`a\\n\r\"b`").as_deref(), Some("a\\n\"b"));
        assert_eq!(unquote_prefix(r#""k"=v"#), Some(("k".into(), "=v")));
        for bad in [
            r#""\'""#,         // \' is for rune literals only
            r#""\x4""#,        // short hex
            r#""\xzz""#,       // not hex
            r#""\400""#,       // octal above 255
            r#""\18""#,        // not octal
            r#""\ud800""#,     // surrogate
            r#""\U00110000""#, // past U+10FFFF
            r#""\q""#,         // unknown escape
            r#""\xff""#,       // not UTF-8 once decoded
            "\"a\nb\"",        // newline in an interpreted string
            r#""open"#,        // unterminated
            "`open",           // unterminated raw string
            r#""\"#,           // lone backslash
            "'r'",             // runes are not build setting quoting
        ] {
            assert_eq!(unquote(bad), None, "{bad:?}");
        }
    }
}
