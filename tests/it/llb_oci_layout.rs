//! `oci-layout://` sources: an OCI image layout on the client's disk, read
//! by the daemon through the session's content store (`kiln solve
//! --oci-layout ID=DIR`). The layouts are written here by hand (tar layers,
//! config, manifest, index), so the daemon has never seen their blobs and
//! must read every one of them from kiln.

use std::path::{Path, PathBuf};

use kiln_llb::{Constraints, Copy, Digest, OciLayoutOptions, Platform};
use serde_json::json;

use crate::common::*;
use crate::llb_util::tree;

/// Writes `data` as a blob of the layout at `dir`; returns its descriptor.
fn blob(dir: &Path, media_type: &str, data: &[u8]) -> serde_json::Value {
    let d = Digest::sha256_of(data);
    let p = dir.join("blobs/sha256");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(p.join(d.hex()), data).unwrap();
    json!({"mediaType": media_type, "digest": d.to_string(), "size": data.len()})
}

/// A one-layer image for `platform` whose only file is `/app/hello`
/// holding `hello`; returns the manifest's descriptor.
fn image(dir: &Path, work: &Path, platform: &str, hello: &str) -> serde_json::Value {
    let root = work.join(format!("rootfs-{}", platform.replace('/', "-")));
    tree(&root, &[("app/hello", hello)]);
    let layer_tar = work.join(format!("layer-{}.tar", platform.replace('/', "-")));
    let ok = std::process::Command::new("tar")
        .args([
            "--sort=name",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "-cf",
        ])
        .arg(&layer_tar)
        .arg("-C")
        .arg(&root)
        .arg("app")
        .status()
        .unwrap()
        .success();
    assert!(ok, "tar");
    let layer = std::fs::read(&layer_tar).unwrap();
    let layer_desc = blob(dir, "application/vnd.oci.image.layer.v1.tar", &layer);
    let (os, arch) = platform.split_once('/').unwrap();
    let config = json!({
        "architecture": arch,
        "os": os,
        "config": {"Env": ["PATH=/usr/bin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [layer_desc["digest"]]},
    });
    let config_desc = blob(
        dir,
        "application/vnd.oci.image.config.v1+json",
        &serde_json::to_vec(&config).unwrap(),
    );
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config_desc,
        "layers": [layer_desc],
    });
    let mut desc = blob(
        dir,
        "application/vnd.oci.image.manifest.v1+json",
        &serde_json::to_vec(&manifest).unwrap(),
    );
    desc["platform"] = json!({"os": os, "architecture": arch});
    desc
}

/// A layout at `work/layout` with a two-platform index; returns the layout
/// directory and the index digest.
fn layout(work: &Path, amd: &str, arm: &str) -> (PathBuf, Digest) {
    let dir = work.join("layout");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            image(&dir, work, "linux/amd64", amd),
            image(&dir, work, "linux/arm64", arm),
        ],
    });
    let index_desc = blob(
        &dir,
        "application/vnd.oci.image.index.v1+json",
        &serde_json::to_vec(&index).unwrap(),
    );
    let top = json!({"schemaVersion": 2, "manifests": [index_desc]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
    let digest = Digest::parse(index_desc["digest"].as_str().unwrap()).unwrap();
    (dir, digest)
}

/// Solves "copy /app/hello out of the layout image" for `platform` with
/// the layout served as `served_id`; the source names store `store`.
async fn solve(
    work: &Path,
    name: &str,
    layout: &Path,
    served_id: &str,
    store: &str,
    digest: &Digest,
    platform: Platform,
) -> (Run, PathBuf) {
    let src = kiln_llb::oci_layout_with(
        "kiln-test/layout-app",
        digest,
        OciLayoutOptions::new().store_id(store),
    );
    let st = kiln_llb::scratch().copy(Copy::new(&src, "/app/hello", "/hello"));
    let def = st.marshal(&Constraints::new(platform)).expect("marshal");
    let def_path = work.join(format!("{name}.llb"));
    std::fs::write(&def_path, def.to_bytes()).unwrap();
    let out = work.join(format!("{name}-out"));
    let layout_arg = format!("{served_id}={}", layout.display());
    let dest = format!("type=local,dest={}", out.display());
    let r = kiln_d(&[
        "solve",
        "-f",
        def_path.to_str().unwrap(),
        "--oci-layout",
        &layout_arg,
        "--progress",
        "plain",
        "-o",
        &dest,
    ])
    .await;
    (r, out)
}

#[tokio::test(flavor = "multi_thread")]
async fn llb_oci_layout_source_reads_the_clients_layout_per_platform() {
    if !daemon().supports(Need::OciLayoutSource) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let amd = format!("amd64 {}\n", unique());
    let arm = format!("arm64 {}\n", unique());
    let (dir, index) = layout(tmp.path(), &amd, &arm);

    // The index resolves to the op's platform; every blob came from kiln.
    let (r, out) = solve(
        tmp.path(),
        "amd",
        &dir,
        "st",
        "st",
        &index,
        Platform::linux_amd64(),
    )
    .await;
    r.success();
    assert_eq!(std::fs::read_to_string(out.join("hello")).unwrap(), amd);
    let (r, out) = solve(
        tmp.path(),
        "arm",
        &dir,
        "st",
        "st",
        &index,
        Platform::linux_arm64(),
    )
    .await;
    r.success();
    assert_eq!(std::fs::read_to_string(out.join("hello")).unwrap(), arm);
}

#[tokio::test(flavor = "multi_thread")]
async fn llb_oci_layout_errors_name_the_store_or_the_blob() {
    if !daemon().supports(Need::OciLayoutSource) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _) = layout(tmp.path(), &unique(), &unique());

    // A digest the layout does not hold.
    let missing = Digest::sha256_of(unique().as_bytes());
    let (r, out) = solve(
        tmp.path(),
        "missing",
        &dir,
        "st",
        "st",
        &missing,
        Platform::linux_amd64(),
    )
    .await;
    r.failure();
    assert!(
        r.stderr.contains(missing.hex()),
        "names the digest: {}",
        r.stderr
    );
    // kiln's own answer (not just BuildKit's wrapping of some error): it
    // names the store, never the client's path.
    assert!(
        r.stderr.contains("not found in OCI layout store \"st\""),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains(dir.to_str().unwrap()), "{}", r.stderr);
    assert!(!out.join("hello").exists());

    // A store the session does not serve.
    let (_, index) = layout(&tmp.path().join("second"), &unique(), &unique());
    let (r, _) = solve(
        tmp.path(),
        "nostore",
        &dir,
        "st",
        "other",
        &index,
        Platform::linux_amd64(),
    )
    .await;
    r.failure();
    assert!(
        r.stderr.contains("\"other\""),
        "names the store: {}",
        r.stderr
    );

    // Not a layout at all: refused before anything is sent.
    let plain = tmp.path().join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    let (r, _) = solve(
        tmp.path(),
        "plain",
        &plain,
        "st",
        "st",
        &index,
        Platform::linux_amd64(),
    )
    .await;
    r.failure();
    assert!(r.stderr.contains("not an OCI image layout"), "{}", r.stderr);
}
