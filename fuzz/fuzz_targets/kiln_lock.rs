//! kiln.lock (committed with the repository being built): never a panic;
//! a parsed lock written back as `kiln lock` writes it parses to the same
//! lock; its values go through the parsers kiln build gives them.
#![no_main]

use std::path::Path;

use kiln_build::Lock;
use kiln_go::GoVersion;
use kiln_image::{Digest, ImageRef, Platform};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("kiln.lock");
    let Ok(lock) = Lock::parse(text, path) else {
        return;
    };
    let written = lock.to_text(path).expect("a parsed lock encodes");
    let back = Lock::parse(&written, path)
        .unwrap_or_else(|e| panic!("{text:?} → {written:?} no longer parses: {e}"));
    assert_eq!(back, lock, "{text:?} → {written:?}");

    let _ = GoVersion::parse(&lock.go);
    for image in [&lock.builder, &lock.base] {
        let _ = ImageRef::parse(&image.name);
        let _ = Digest::parse(&image.digest);
        for (platform, digest) in &image.platforms {
            let _ = Platform::parse(platform);
            let _ = Digest::parse(digest);
        }
    }
    for p in &lock.inputs.platforms {
        let _ = Platform::parse(p);
    }
});
