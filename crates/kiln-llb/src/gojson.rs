//! The one piece of Go `encoding/json` output LLB needs byte for byte: a
//! JSON array of strings, as `json.Marshal([]string)` writes it (with Go's
//! HTML-safe escaping of `<`, `>`, `&`, U+2028 and U+2029).

pub(crate) fn string_array(items: &[String]) -> String {
    let mut out = String::from("[");
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_string(&mut out, s);
    }
    out.push(']');
    out
}

fn push_string(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{0}'..='\u{1f}' => {
                let b = c as u32;
                out.push_str("\\u00");
                out.push(HEX[(b >> 4) as usize & 0xf] as char);
                out.push(HEX[b as usize & 0xf] as char);
            }
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_go_json_marshal() {
        let v = |xs: &[&str]| string_array(&xs.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(v(&[]), "[]");
        assert_eq!(v(&["a", "b/*.go"]), r#"["a","b/*.go"]"#);
        assert_eq!(v(&["<a>&\"\\"]), r#"["\u003ca\u003e\u0026\"\\"]"#);
        assert_eq!(v(&["\n\t\u{1}\u{8}"]), r#"["\n\t\u0001\b"]"#);
        assert_eq!(v(&["é\u{2028}"]), "[\"é\\u2028\"]");
    }
}
