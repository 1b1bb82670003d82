//! A resolved recipe input, as kiln build has it once the images are
//! resolved, for targets that feed user options into `kiln_go::plan`.

use kiln_go::{GoBuildOptions, RecipeInput, ResolvedImage};
use kiln_image::{Digest, ImageRef, Platform};

pub fn input(options: GoBuildOptions) -> RecipeInput {
    let builder = ResolvedImage {
        reference: ImageRef::parse("golang:1.24.7-bookworm").expect("ref"),
        config_json: br#"{"architecture":"amd64","os":"linux",
            "config":{"Env":["PATH=/go/bin:/usr/local/go/bin:/usr/bin:/bin","GOLANG_VERSION=1.24.7","GOPATH=/go"],"WorkingDir":"/go"},
            "rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec(),
    };
    let base = ResolvedImage {
        reference: ImageRef::parse("gcr.io/distroless/static-debian12:nonroot")
            .expect("ref")
            .with_digest(Digest::sha256_of(b"index")),
        config_json: br#"{"architecture":"arm64","os":"linux",
            "config":{"Env":["PATH=/usr/bin:/bin"],"User":"65532","WorkingDir":"/home/nonroot"},
            "rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec(),
    };
    RecipeInput {
        context_name: "context".into(),
        go_version: "1.24.7".into(),
        builder,
        base,
        build_platform: Platform::linux_amd64(),
        target: Platform::linux_arm64(),
        options,
        go_cache_in: None,
        go_cache_out: false,
        go_cache_modules: false,
    }
}
