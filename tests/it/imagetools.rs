//! The CI matrix (the CI runners issue): two runners each build one
//! platform and push it by digest with provenance and an SBOM, one job
//! joins them with `kiln imagetools create`; Docker's own tools accept the
//! index, with the attestations of both platforms.

use kiln_image::registry::RegistryClient;
use kiln_image::{Digest, ImageRef};

use crate::build::{build_args, sample_module};
use crate::common::*;

fn read_json(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// `docker` on the harness's containerd-store Docker (buildx's imagetools
/// and a multi-platform pull need it, whichever daemon built the image).
fn docker_cli(args: &[&str]) -> std::process::Output {
    let host = harness()
        .var("KILN_TEST_DOCKER_HOST")
        .expect("KILN_TEST_DOCKER_HOST: the harness's Docker");
    std::process::Command::new("docker")
        .args(args)
        .env("DOCKER_HOST", host)
        .output()
        .expect("docker CLI")
}

async fn kiln_ok(args: &[&str]) -> Run {
    let r = run(kiln(), args).await;
    r.success();
    r
}

#[tokio::test(flavor = "multi_thread")]
async fn a_two_runner_matrix_joins_into_one_index_with_attestations() {
    let h = harness();
    let tmp = tempfile::tempdir().unwrap();
    let m = unique();
    let dir = sample_module(tmp.path(), &m);
    let repo = format!("{}/kiln-test/matrix-{m}", h.registry);
    let o = format!("type=image,name={repo},push-by-digest=true,name-canonical=true,push=true");

    // Runner 1 and runner 2: one platform each, pushed by digest.
    let mut digests = Vec::new();
    for p in ["linux/amd64", "linux/arm64"] {
        let meta = tmp.path().join(format!("{}.json", p.replace('/', "-")));
        let args = build_args(
            &dir,
            &[
                "--platform",
                p,
                "-o",
                &o,
                "--provenance=mode=max",
                "--sbom",
                "--metadata-file",
                meta.to_str().unwrap(),
            ],
        );
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = run(kiln(), &refs).await;
        if !daemon().supports(Need::Attestations) {
            // The classic store: attestations asked for are refused up
            // front, naming the store, and nothing is written.
            r.failure();
            assert!(r.stderr.contains("attestations"), "{}", r.stderr);
            assert!(!meta.exists());
            return;
        }
        r.success();
        let j = read_json(&meta);
        let digest: Digest = j["containerimage.digest"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        // The metadata file's digest is what the registry has: an index
        // of the image and its attestation manifest.
        let pushed = RegistryClient::new()
            .unwrap()
            .get_manifest(&ImageRef::parse(&repo).unwrap().with_digest(digest.clone()))
            .await
            .unwrap();
        assert_eq!(pushed.digest, digest);
        assert!(
            pushed.manifest.is_index(),
            "{}",
            String::from_utf8_lossy(&pushed.bytes)
        );
        digests.push(digest);
    }

    // The merge job: --dry-run prints the index and pushes nothing.
    let sources: Vec<String> = digests.iter().map(|d| format!("{repo}@{d}")).collect();
    let tag = format!("{repo}:v1");
    let mut args = vec!["imagetools", "create", "--dry-run", "-t", &tag];
    args.extend(sources.iter().map(String::as_str));
    let dry = kiln_ok(&args).await;
    let index: serde_json::Value = serde_json::from_str(&dry.stdout).unwrap();
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 4, "two images, two attestations: {index:#}");
    let registry = RegistryClient::new().unwrap();
    assert!(registry
        .head_manifest(&ImageRef::parse(&tag).unwrap())
        .await
        .unwrap()
        .is_none());

    // For real: the printed digest is the tag's, and the index holds both
    // platforms and both attestation manifests.
    args.retain(|a| *a != "--dry-run");
    let created = kiln_ok(&args).await;
    let got = registry
        .get_manifest(&ImageRef::parse(&tag).unwrap())
        .await
        .unwrap();
    assert_eq!(created.stdout.trim(), got.digest.to_string());
    assert_eq!(
        got.bytes,
        dry.stdout.as_bytes(),
        "dry run = what was pushed"
    );
    let platforms: Vec<String> = got
        .manifest
        .platforms()
        .iter()
        .map(|(p, _)| p.to_string())
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);

    // kiln imagetools inspect: each image, and its attestations' predicates.
    let inspect = kiln_ok(&["imagetools", "inspect", &tag, "--format", "json"]).await;
    let j: serde_json::Value = serde_json::from_str(&inspect.stdout).unwrap();
    let manifests = j["manifests"].as_array().unwrap();
    let images: Vec<&serde_json::Value> = manifests
        .iter()
        .filter(|e| e.get("attestationFor").is_none())
        .collect();
    assert_eq!(images.len(), 2, "{j:#}");
    for image in images {
        let att = manifests
            .iter()
            .find(|e| e["attestationFor"] == image["digest"])
            .unwrap_or_else(|| panic!("no attestation for {image}: {j:#}"));
        assert_eq!(att["platform"], "unknown/unknown");
        let types: Vec<&str> = att["predicateTypes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        assert!(
            types.contains(&"https://slsa.dev/provenance/v1"),
            "{types:?}"
        );
        assert!(types.contains(&"https://spdx.dev/Document"), "{types:?}");
    }
    let text = kiln_ok(&["imagetools", "inspect", &tag]).await;
    assert!(text.stdout.contains("Attestation: for"), "{}", text.stdout);
    let raw = kiln_ok(&["imagetools", "inspect", &tag, "--raw"]).await;
    assert_eq!(raw.stdout.as_bytes(), got.bytes.as_slice());

    // Docker's tools accept it: buildx reads the provenance and the SBOM
    // of each platform, and an arm64 pull picks the arm64 image.
    for (what, needle) in [
        ("{{json .Provenance}}", "buildDefinition"),
        ("{{json .SBOM}}", "example.org/quote"),
        ("{{json .SBOM}}", "pkg:golang/stdlib@go"),
        ("{{json .SBOM}}", "example.com/svc"),
    ] {
        let out = docker_cli(&["buildx", "imagetools", "inspect", &tag, "--format", what]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "buildx imagetools inspect --format {what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("linux/amd64") && stdout.contains("linux/arm64"),
            "{what}: {stdout}"
        );
        assert!(stdout.contains(needle), "{what}: {stdout}");
    }
    let pull = docker_cli(&["pull", "--platform", "linux/arm64", &tag]);
    assert!(
        pull.status.success(),
        "{}",
        String::from_utf8_lossy(&pull.stderr)
    );
    let arch = docker_cli(&[
        "image",
        "inspect",
        "--platform",
        "linux/arm64",
        "--format",
        "{{.Architecture}}",
        &tag,
    ]);
    assert_eq!(String::from_utf8_lossy(&arch.stdout).trim(), "arm64");
    let _ = docker_cli(&["image", "rm", &tag]);

    // --append adds to what the tag has; another repository gets the
    // manifests and blobs by mount.
    let solo = format!("{repo}:solo");
    kiln_ok(&["imagetools", "create", "-t", &solo, &sources[0]]).await;
    kiln_ok(&["imagetools", "create", "--append", "-t", &solo, &sources[1]]).await;
    let appended = registry
        .get_manifest(&ImageRef::parse(&solo).unwrap())
        .await
        .unwrap();
    assert_eq!(appended.digest, got.digest, "append = both at once");
    let mirror = format!("{}/kiln-test/matrix-mirror-{m}:v1", h.registry);
    let copied = kiln_ok(&["imagetools", "create", "-t", &mirror, &tag]).await;
    assert!(copied.stderr.contains("mounted"), "{}", copied.stderr);
    let mirrored = registry
        .get_manifest(&ImageRef::parse(&mirror).unwrap())
        .await
        .unwrap();
    assert_eq!(mirrored.digest, got.digest);
    for e in mirrored.manifest.entries() {
        let m = ImageRef::parse(&mirror)
            .unwrap()
            .with_digest(e.digest.clone());
        registry.get_manifest(&m).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn imagetools_errors_name_the_problem() {
    let h = harness();
    // A source that does not exist: named, non-zero, nothing pushed.
    let tag = format!("{}/kiln-test/it-missing-{}:v1", h.registry, unique());
    let r = run(
        kiln(),
        &[
            "imagetools",
            "create",
            "-t",
            &tag,
            &format!("{}/kiln-test/nope:{}", h.registry, unique()),
        ],
    )
    .await;
    r.failure();
    assert!(r.stderr.contains("kiln-test/nope"), "{}", r.stderr);
    // No target, no source, a bad reference.
    let r = run(kiln(), &["imagetools", "create", &tag]).await;
    r.failure();
    assert!(r.stderr.contains("-t"), "{}", r.stderr);
    let r = run(kiln(), &["imagetools", "create", "-t", &tag]).await;
    r.failure();
    assert!(r.stderr.contains("no source"), "{}", r.stderr);
    let r = run(kiln(), &["imagetools", "inspect", "UPPER/case"]).await;
    r.failure();
    assert!(r.stderr.contains("UPPER/case"), "{}", r.stderr);
}

/// Sources in another registry cannot be mounted: kiln copies the blobs
/// and manifests through itself, and the index is whole on the other side.
#[tokio::test(flavor = "multi_thread")]
async fn imagetools_copies_across_registries() {
    let h = harness();
    let other = crate::registry::TestRegistry::start(tempfile::tempdir().unwrap(), "").await;
    let m = unique();
    // The static fixture: an index (or manifest) already in the harness's registry.
    let tag = format!("{}/kiln-test/copied-{m}:v1", other.addr);
    let r = kiln_ok(&["imagetools", "create", "-t", &tag, &h.static_image]).await;
    assert!(r.stderr.contains("0 blobs mounted"), "{}", r.stderr);
    assert!(!r.stderr.contains(" 0 copied"), "{}", r.stderr);
    let registry = RegistryClient::new().unwrap();
    let got = registry
        .get_manifest(&ImageRef::parse(&tag).unwrap())
        .await
        .unwrap();
    assert_eq!(r.stdout.trim(), got.digest.to_string());
    // Every manifest and blob it names is there.
    let repo = ImageRef::parse(&tag).unwrap();
    for e in got.manifest.entries() {
        let image = registry
            .get_manifest(&repo.with_digest(e.digest.clone()))
            .await
            .unwrap();
        for blob in image
            .manifest
            .config()
            .into_iter()
            .chain(image.manifest.layers())
        {
            registry.get_blob(&repo, &blob.digest).await.unwrap();
        }
    }
}
