//! One line of comma-separated values with buildx's quoting rules (Go's
//! `encoding/csv`, which `docker buildx` uses for `--output`, `--secret`,
//! `--ssh`, `--cache-to`…): a field in double quotes may hold commas, and
//! `""` inside it is one quote; a quote inside an unquoted field is an error.
//!
//! ```
//! use kiln_build::spec::csv::fields;
//! assert_eq!(fields(r#"type=local,"dest=a,b""#).unwrap(), ["type=local", "dest=a,b"]);
//! assert_eq!(fields(r#""name=say ""hi""",push=true"#).unwrap(), [r#"name=say "hi""#, "push=true"]);
//! ```

/// Why a line is not valid CSV.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CsvError {
    /// A `"` inside a field that does not start with one.
    #[error("bare \" in non-quoted field {field:?} (quote the whole field: \"key=value\")")]
    BareQuote { field: String },
    /// A quoted field not followed by a comma or the end.
    #[error("extraneous or missing \" in quoted field {field:?}")]
    Quote { field: String },
}

/// Splits `line` into its fields.
///
/// # Errors
/// [`CsvError`] for misplaced quotes.
pub fn fields(line: &str) -> Result<Vec<String>, CsvError> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err(CsvError::Quote { field }),
                }
            }
            match chars.next() {
                None => {
                    out.push(field);
                    return Ok(out);
                }
                Some(',') => out.push(field),
                Some(c) => {
                    field.push('"');
                    field.push(c);
                    return Err(CsvError::Quote { field });
                }
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        if field.contains('"') {
                            return Err(CsvError::BareQuote { field });
                        }
                        out.push(field);
                        return Ok(out);
                    }
                    Some(',') => break,
                    Some(c) => field.push(c),
                }
            }
            if field.contains('"') {
                return Err(CsvError::BareQuote { field });
            }
            out.push(field);
        }
    }
}

/// Splits `field` at its first `=` into a key and a value (`None` without one).
#[must_use]
pub fn key_value(field: &str) -> Option<(&str, &str)> {
    field.split_once('=')
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn plain_fields() {
        assert_eq!(fields("a=1,b=2").unwrap(), ["a=1", "b=2"]);
        assert_eq!(fields("").unwrap(), [""]);
        assert_eq!(fields("a,,b").unwrap(), ["a", "", "b"]);
        assert_eq!(fields("a,").unwrap(), ["a", ""]);
        assert_eq!(
            fields(" a = 1 ").unwrap(),
            [" a = 1 "],
            "spaces are kept, as Go does"
        );
    }

    #[test]
    fn quoted_fields_hold_commas_and_doubled_quotes() {
        assert_eq!(fields(r#""a,b",c"#).unwrap(), ["a,b", "c"]);
        assert_eq!(fields(r#""a""b""#).unwrap(), [r#"a"b"#]);
        assert_eq!(fields(r#""""#).unwrap(), [""]);
        assert_eq!(fields(r#"x,"y""#).unwrap(), ["x", "y"]);
    }

    #[test]
    fn misplaced_quotes_are_errors() {
        assert!(matches!(
            fields(r#"dest="a,b""#),
            Err(CsvError::BareQuote { .. })
        ));
        assert!(matches!(fields(r#""a"b"#), Err(CsvError::Quote { .. })));
        assert!(matches!(fields(r#""open"#), Err(CsvError::Quote { .. })));
        let e = fields(r#"a=1,b"c"#).unwrap_err().to_string();
        assert!(e.contains("bare \""), "{e}");
    }

    #[test]
    fn key_values_split_at_the_first_equals() {
        assert_eq!(key_value("a=b=c"), Some(("a", "b=c")));
        assert_eq!(key_value("flag"), None);
    }
}
