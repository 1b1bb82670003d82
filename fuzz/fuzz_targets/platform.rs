//! Platforms (`--platform`, kiln.toml's `platforms`, `--builder
//! PLATFORM=ADDR`): never a panic; parsing normalises once and for all, and
//! what kiln prints parses back to the same platform.
#![no_main]

use kiln_image::Platform;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(p) = Platform::parse(s) else {
        return;
    };
    assert_eq!(
        p.clone().normalize(),
        p,
        "{s:?}: normalize is not idempotent"
    );
    // `os/arch[/variant]` (Display) leaves out the OS options.
    let plain = Platform {
        os_version: None,
        os_features: Vec::new(),
        ..p.clone()
    };
    let shown = p.to_string();
    match Platform::parse(&shown) {
        Ok(back) => assert_eq!(back, plain, "{s:?} → {shown:?}"),
        Err(e) => panic!("{s:?} → {shown:?} no longer parses: {e}"),
    }
    // FormatAll keeps them; where it can be read again it means the same.
    if let Ok(back) = Platform::parse(&p.format_all()) {
        assert_eq!(back, p, "{s:?} → {:?}", p.format_all());
    }
    assert_eq!(Platform::new(&p.os, &p.architecture).os, p.os);
    let _ = p.go_env();
    let json = serde_json::to_string(&p).expect("a platform serializes");
    let back: Platform = serde_json::from_str(&json).expect("and deserializes");
    assert_eq!(back, p, "{s:?}: serde");
});
