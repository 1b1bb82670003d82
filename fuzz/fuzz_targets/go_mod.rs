//! go.mod files (the module being built is not trusted): never a panic;
//! the versions read are ones the rest of kiln can use.
#![no_main]

use std::path::Path;

use kiln_go::version::{builder_image, patch_candidates, DEFAULT_IMAGE_TEMPLATE};
use kiln_go::{GoMod, GoVersion};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // As kiln-build's go_mod::read_dir reads it.
    let text = String::from_utf8_lossy(data);
    let Ok(m) = GoMod::parse(&text, Path::new("go.mod")) else {
        return;
    };
    for v in std::iter::once(&m.go).chain(m.toolchain.as_ref()) {
        let back = GoVersion::parse(&v.to_string()).expect("a version read from go.mod re-parses");
        assert_eq!(&back, v);
    }
    if let Some(module) = &m.module {
        assert!(!module.is_empty());
    }
    let listed = [
        m.go.clone(),
        GoVersion::release(m.go.major(), m.go.minor(), 99),
    ];
    let c = patch_candidates(&m.go, m.toolchain.as_ref(), &listed);
    for v in &c.versions {
        builder_image(DEFAULT_IMAGE_TEMPLATE, v, "bookworm")
            .unwrap_or_else(|e| panic!("{v}: no builder image reference: {e}"));
    }
});
