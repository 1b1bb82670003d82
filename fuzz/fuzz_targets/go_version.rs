//! Go versions and tags (`--go`, kiln.toml's `go`, go.mod, release lists
//! from the module proxy, go.dev or git tags): never a panic; a version
//! prints and re-parses to itself; the order is total; every version makes
//! a valid builder image tag.
#![no_main]

use std::cmp::Ordering;

use kiln_go::version::{
    builder_image, newest_pre_release, patch_candidates, DEFAULT_IMAGE_TEMPLATE,
};
use kiln_go::{GoSpec, GoVersion};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let _ = s.parse::<GoSpec>();
    // The template is user input too (`--builder-image`).
    let _ = builder_image(s, &GoVersion::release(1, 24, 3), "bookworm");
    // A release list: one version per line, as git tags or the proxy list it.
    let listed: Vec<GoVersion> = s.lines().filter_map(|l| GoVersion::parse(l).ok()).collect();
    for v in &listed {
        let shown = v.to_string();
        let back = GoVersion::parse(&shown).unwrap_or_else(|e| panic!("{shown:?}: {e}"));
        assert_eq!(back.to_string(), shown);
        assert_eq!(&back, v);
        assert_eq!(GoVersion::parse(&v.tag()).as_ref(), Ok(v));
        assert_eq!(v.is_pre_release(), v.pre_release().is_some());
        builder_image(DEFAULT_IMAGE_TEMPLATE, v, "bookworm")
            .unwrap_or_else(|e| panic!("{shown}: no builder image reference: {e}"));
        builder_image(DEFAULT_IMAGE_TEMPLATE, v, "")
            .unwrap_or_else(|e| panic!("{shown}: no builder image reference: {e}"));
    }
    // A total order: sorting agrees with every pairwise comparison.
    let mut sorted = listed.clone();
    sorted.sort();
    for w in sorted.windows(2) {
        assert_ne!(w[0].cmp(&w[1]), Ordering::Greater);
        assert_eq!(w[0].cmp(&w[1]).reverse(), w[1].cmp(&w[0]));
        assert_eq!(w[0] == w[1], w[0].cmp(&w[1]) == Ordering::Equal);
    }
    if let Some(minimum) = listed.first() {
        let c = patch_candidates(minimum, listed.last(), &listed);
        for w in c.versions.windows(2) {
            assert!(
                w[0] > w[1],
                "candidates not newest first: {} {}",
                w[0],
                w[1]
            );
        }
        if let Some(p) = newest_pre_release(minimum, &listed) {
            assert!(p.is_pre_release());
        }
    }
});
