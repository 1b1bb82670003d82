//! `--metadata-file` and `--iidfile` (the CI runners issue): buildx's JSON,
//! whose digests are what the registry has.

use kiln_image::registry::RegistryClient;
use kiln_image::{Digest, ImageRef};

use crate::build::{build_args, sample_module, second_endpoint};
use crate::common::*;

fn read_json(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn metadata_file_digests_match_the_registry() {
    let h = harness();
    let tmp = tempfile::tempdir().unwrap();
    let m = unique();
    let dir = sample_module(tmp.path(), &m);
    let name = format!("{}/kiln-test/meta:{m}", h.registry);
    let meta = tmp.path().join("out/meta.json");
    let iid = tmp.path().join("out/iid");
    std::fs::create_dir_all(meta.parent().unwrap()).unwrap();
    let args = build_args(
        &dir,
        &[
            "-t",
            &name,
            "--push",
            "--metadata-file",
            meta.to_str().unwrap(),
            "--iidfile",
            iid.to_str().unwrap(),
        ],
    );
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = run(kiln(), &refs).await;
    r.success();
    let j = read_json(&meta);
    let registry = RegistryClient::new().unwrap();
    let pushed = registry
        .get_manifest(&ImageRef::parse(&name).unwrap())
        .await
        .unwrap();
    assert_eq!(
        j["containerimage.digest"],
        pushed.digest.to_string(),
        "{j:#}"
    );
    assert_eq!(r.stdout.trim(), pushed.digest.to_string());
    let desc = &j["containerimage.descriptor"];
    assert_eq!(desc["digest"], pushed.digest.to_string(), "{j:#}");
    assert_eq!(desc["size"], pushed.descriptor().size, "{j:#}");
    assert_eq!(j["kiln.go-version"], crate::build::go_version());
    // The base is pinned to what the registry has under its tag.
    let base = registry
        .get_manifest(&ImageRef::parse(&h.static_image).unwrap())
        .await
        .unwrap();
    assert_eq!(
        j["kiln.base-image"]["digest"],
        base.digest.to_string(),
        "{j:#}"
    );
    assert_eq!(j["kiln.base-image"]["name"], h.static_image);
    // The image ID: the config digest when the exporter reported one.
    let id = std::fs::read_to_string(&iid).unwrap();
    let want = j["containerimage.config.digest"]
        .as_str()
        .unwrap_or_else(|| j["containerimage.digest"].as_str().unwrap());
    assert_eq!(id, want);
    let _: Digest = id.parse().unwrap();
    // Readable as any file the user writes (a temporary file is 0600).
    for f in [&meta, &iid] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644, "{}", f.display());
    }
    if daemon().kind.is_docker() {
        let _ = docker(&["image", "rm", &name]);
    }

    // --iidfile without an image to identify: refused before building.
    let bad = tmp.path().join("none.iid");
    let tar = tmp.path().join("fs.tar");
    let o = format!("type=tar,dest={}", tar.display());
    let args = build_args(&dir, &["-o", &o, "--iidfile", bad.to_str().unwrap()]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = run(kiln(), &refs).await;
    r.failure();
    assert!(r.stderr.contains("--iidfile"), "{}", r.stderr);
    assert!(!bad.exists() && !tar.exists(), "no partial output");

    // Files into a directory that does not exist: refused before anything
    // is built (the daemon would build, then fail to send the tarball).
    let missing = tmp.path().join("no-such-dir");
    let oci = missing.join("app.tar");
    let o = format!("type=oci,dest={}", oci.display());
    let good = format!("type=oci,dest={}", tmp.path().join("app.tar").display());
    let meta = missing.join("meta.json");
    for extra in [
        vec!["-o", o.as_str()],
        vec![
            "-o",
            good.as_str(),
            "--metadata-file",
            meta.to_str().unwrap(),
        ],
        vec!["-o", good.as_str(), "--iidfile", meta.to_str().unwrap()],
    ] {
        let args = build_args(&dir, &extra);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = run(kiln(), &refs).await;
        r.failure();
        assert!(
            r.stderr.contains(&format!(
                "{} does not exist: create the directory first",
                missing.display()
            )),
            "{extra:?}: {}",
            r.stderr
        );
        assert!(!r.stderr.contains("#1 "), "nothing was built: {}", r.stderr);
        assert!(!missing.exists() && !tmp.path().join("app.tar").exists());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn fanned_out_metadata_names_each_platform() {
    if !daemon().supports(Need::PushByDigest) {
        return;
    }
    let h = harness();
    let relay = Relay::for_daemon(RelayOptions::default()).await;
    let tmp = tempfile::tempdir().unwrap();
    let m = unique();
    let dir = sample_module(tmp.path(), &m);
    let name = format!("{}/kiln-test/meta-fanout:{m}", h.registry);
    let meta = tmp.path().join("meta.json");
    let go_cache = tmp.path().join("go-cache");
    let go_cache_to = format!("type=local,dest={}", go_cache.display());
    let arm = format!("linux/arm64={}", second_endpoint(&relay));
    let args = build_args(
        &dir,
        &[
            "--platform",
            "linux/amd64,linux/arm64",
            "--builder",
            &arm,
            "-t",
            &name,
            "--push",
            "--metadata-file",
            meta.to_str().unwrap(),
            // Each endpoint exports its platforms' Go caches.
            "--go-cache-to",
            &go_cache_to,
        ],
    );
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    run(kiln(), &refs).await.success();
    for p in ["linux-amd64", "linux-arm64"] {
        assert!(
            go_cache.join(p).join("kiln-go-cache").is_file(),
            "no Go cache for {p}"
        );
    }
    let j = read_json(&meta);
    let index = RegistryClient::new()
        .unwrap()
        .get_manifest(&ImageRef::parse(&name).unwrap())
        .await
        .unwrap();
    assert_eq!(
        j["containerimage.digest"],
        index.digest.to_string(),
        "{j:#}"
    );
    assert_eq!(
        j["containerimage.descriptor"]["size"],
        index.descriptor().size
    );
    assert_eq!(j["image.name"], name.as_str());
    for (p, d) in index.manifest.platforms() {
        assert_eq!(
            j["kiln.platforms"][p.to_string()],
            d.digest.to_string(),
            "{j:#}"
        );
    }
    assert_eq!(j["kiln.platforms"].as_object().unwrap().len(), 2);
    // The push's default provenance: each endpoint's attestation manifest
    // is kept in the joined index, naming its platform's image.
    let doc: serde_json::Value = serde_json::from_slice(&index.bytes).unwrap();
    let attestations: Vec<&serde_json::Value> = doc["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["annotations"]["vnd.docker.reference.type"] == "attestation-manifest")
        .collect();
    assert_eq!(attestations.len(), 2, "{doc:#}");
    for (_, d) in index.manifest.platforms() {
        assert!(
            attestations
                .iter()
                .any(|a| a["annotations"]["vnd.docker.reference.digest"] == d.digest.as_str()),
            "no attestation for {}: {doc:#}",
            d.digest
        );
    }
}

/// A matrix job's half: pushed by digest, no tag; the digest is in the
/// metadata file and the registry has it.
#[tokio::test(flavor = "multi_thread")]
async fn push_by_digest_leaves_no_tag_and_records_the_digest() {
    let h = harness();
    let tmp = tempfile::tempdir().unwrap();
    let m = unique();
    let dir = sample_module(tmp.path(), &m);
    let repo = format!("{}/kiln-test/by-digest-{m}", h.registry);
    let meta = tmp.path().join("meta.json");
    let o = format!("type=image,name={repo},push-by-digest=true,name-canonical=true,push=true");
    let args = build_args(&dir, &["-o", &o, "--metadata-file", meta.to_str().unwrap()]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = run(kiln(), &refs).await;
    if !daemon().supports(Need::PushByDigest) {
        r.failure();
        assert!(r.stderr.contains("push-by-digest"), "{}", r.stderr);
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
    let registry = RegistryClient::new().unwrap();
    let pushed = registry
        .get_manifest(&ImageRef::parse(&repo).unwrap().with_digest(digest.clone()))
        .await
        .unwrap();
    assert_eq!(pushed.digest, digest);
    // No tag: the repository's tag list is empty.
    let tags = std::process::Command::new("curl")
        .args([
            "-s",
            &format!("http://{}/v2/kiln-test/by-digest-{m}/tags/list", h.registry),
        ])
        .output()
        .unwrap();
    let tags: serde_json::Value = serde_json::from_slice(&tags.stdout).unwrap();
    assert!(
        tags["tags"].as_array().is_none_or(|t| t.is_empty()),
        "tagged: {tags}"
    );
}
