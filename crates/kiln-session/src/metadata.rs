//! Reading the gRPC metadata BuildKit attaches to session calls.

use kiln_proto::headers::ENCODED_SUFFIX;
use tonic::metadata::MetadataMap;

/// Every value of `key`, URL-unescaped when BuildKit marked them with
/// `<key>-encoded: 1` (it does so when any value is not ASCII; see
/// `encodeStringForHeader` in `session/filesync/filesync.go`).
pub(crate) fn values(md: &MetadataMap, key: &str) -> Vec<String> {
    let encoded = md
        .get(format!("{key}{ENCODED_SUFFIX}").as_str())
        .and_then(|v| v.to_str().ok())
        .is_some_and(parse_go_bool);
    md.get_all(key)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| {
            if encoded {
                query_unescape(v)
            } else {
                v.to_owned()
            }
        })
        .collect()
}

/// The first value of `key`, if any.
pub(crate) fn first(md: &MetadataMap, key: &str) -> Option<String> {
    values(md, key).into_iter().next()
}

/// Go's `strconv.ParseBool`, true side.
fn parse_go_bool(s: &str) -> bool {
    matches!(s, "1" | "t" | "T" | "true" | "TRUE" | "True")
}

/// Go's `url.QueryUnescape`: `+` is a space, `%XX` a byte. Like BuildKit,
/// a malformed value decodes to what can be salvaged rather than failing.
pub(crate) fn query_unescape(s: &str) -> String {
    let plus_decoded = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_decoded)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::metadata::MetadataValue;

    #[test]
    fn decodes_marked_values_only() {
        let mut md = MetadataMap::new();
        md.append("exclude-patterns", MetadataValue::from_static("a+b"));
        md.append(
            "include-patterns",
            MetadataValue::from_static("%C3%BCber%2A"),
        );
        md.append("include-patterns", MetadataValue::from_static("x+y"));
        md.insert("include-patterns-encoded", MetadataValue::from_static("1"));
        assert_eq!(values(&md, "exclude-patterns"), ["a+b"]);
        assert_eq!(values(&md, "include-patterns"), ["über*", "x y"]);
        assert_eq!(first(&md, "dir-name"), None);
    }
}
