//! kiln.toml (it comes with the repository being built): never a panic;
//! what parses writes back to the same settings; every setting goes
//! through the parser kiln build gives it, and the `[build]` options
//! through the recipe's validation and planning, which must either refuse
//! them or plan a graph that marshals the same way twice.
#![no_main]

#[path = "common/recipe.rs"]
mod recipe;

use std::path::Path;

use kiln_build::spec::{AttestFlags, CacheSpec};
use kiln_build::KilnToml;
use kiln_go::version::builder_image;
use kiln_go::{GoSpec, GoVersion};
use kiln_image::{ImageRef, Platform};
use kiln_llb::Constraints;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(cfg) = KilnToml::parse(text, Path::new("kiln.toml")) else {
        return;
    };
    // `kiln init` and tests write settings back out.
    let written = toml::to_string(&cfg).expect("a parsed kiln.toml serializes");
    let back = KilnToml::parse(&written, Path::new("kiln.toml"))
        .unwrap_or_else(|e| panic!("{text:?} → {written:?} no longer parses: {e}"));
    assert_eq!(back, cfg, "{text:?} → {written:?}");

    for p in &cfg.platforms {
        let _ = Platform::parse(p);
    }
    if let Some(go) = &cfg.go {
        let _ = go.parse::<GoSpec>();
    }
    if let Some(t) = &cfg.builder_image {
        let distro = cfg.distro.as_deref().unwrap_or("bookworm");
        let _ = builder_image(t, &GoVersion::release(1, 24, 7), distro);
    }
    for i in cfg.images.iter().chain(&cfg.base_image) {
        let _ = ImageRef::parse(i);
    }
    for c in [&cfg.cache, &cfg.go_cache].into_iter().flatten() {
        for f in &c.from {
            let _ = CacheSpec::import(f);
        }
        for t in &c.to {
            let _ = CacheSpec::export(t);
        }
    }
    let _ = AttestFlags::default().resolve(cfg.provenance.as_deref(), cfg.sbom, true);

    let Some(mut options) = cfg.build else {
        return;
    };
    options.module_name = "example.com/app".into();
    let Ok(planned) = kiln_go::plan(&recipe::input(options)) else {
        return;
    };
    let c = Constraints::new(Platform::linux_amd64());
    let one = planned
        .final_state
        .marshal(&c)
        .expect("a planned graph marshals");
    let two = planned
        .final_state
        .marshal(&c)
        .expect("a planned graph marshals");
    assert_eq!(
        one.to_bytes(),
        two.to_bytes(),
        "marshaling is not deterministic"
    );
    planned
        .builder_state
        .marshal(&c)
        .expect("the builder graph marshals");
});
