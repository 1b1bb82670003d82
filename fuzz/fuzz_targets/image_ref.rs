//! Image references (`-t`, `--base-image`, `name=` of `-o`, kiln.toml's
//! `images`): never a panic, and a parsed reference written out parses
//! back to itself, in every form kiln writes it.
#![no_main]

use kiln_image::ImageRef;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let named = ImageRef::parse_normalized_named(s);
    let Ok(r) = ImageRef::parse(s) else {
        assert!(
            named.is_err(),
            "{s:?}: parse fails but parse_normalized_named passes"
        );
        return;
    };
    let named = named.expect("parse passes, so parse_normalized_named does");
    assert_eq!(named.clone().tag_name_only(), r, "{s:?}");

    let again = |text: &str| {
        ImageRef::parse(text).unwrap_or_else(|e| panic!("{s:?} → {text:?} no longer parses: {e}"))
    };
    assert_eq!(again(&r.to_string()), r, "{s:?}: to_string");
    assert_eq!(again(&r.familiar()), r, "{s:?}: familiar");
    let trimmed = ImageRef::parse_normalized_named(&r.name())
        .unwrap_or_else(|e| panic!("{s:?}: name {:?} no longer parses: {e}", r.name()));
    assert_eq!(trimmed, r.trim(), "{s:?}: name");
    if let Some(tag) = r.tag() {
        assert_eq!(r.with_tag(tag).as_ref(), Ok(&r), "{s:?}: with_tag");
    }
    if let Some(d) = r.digest() {
        assert_eq!(r.trim().with_digest(d.clone()).digest(), Some(d));
    }
    // kiln.lock and the metadata file store references as JSON/TOML strings.
    let json = serde_json::to_string(&named).expect("a reference serializes");
    let back: ImageRef = serde_json::from_str(&json)
        .unwrap_or_else(|e| panic!("{s:?}: {json} does not deserialize: {e}"));
    assert_eq!(back, named, "{s:?}: serde");
});
