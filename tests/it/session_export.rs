//! Outputs the daemon sends back through the session (file send): tar,
//! local and OCI layouts arrive complete; a failed build leaves nothing.

use std::path::Path;

use kiln_client::SessionTransport;
use kiln_llb::{ExecOptions, Mount};
use kiln_session::{ExportTarget, Session, SyncDirOptions};

use crate::common::*;
use crate::session_common::*;

/// A tree with a 5 MB file, an executable, a symlink and nested dirs,
/// plus the context copied in.
fn output_graph(marker: &str, session: &Session) -> kiln_llb::State {
    go_env(go_image())
        .run(
            ExecOptions::shell(format!(
                "echo {marker} > /out/marker \
                 && cp -a /ctx/. /out/ctx \
                 && head -c 5000000 /dev/urandom > /out/gen.bin \
                 && (cd /out && sha256sum gen.bin > gen.sha) \
                 && mkdir -p /out/deep/er && ln -s ../gen.bin /out/deep/link \
                 && printf '#!/bin/sh\\n' > /out/deep/er/tool && chmod 0751 /out/deep/er/tool"
            ))
            .mount(Mount::bind("/ctx", &local_of("context", session)).readonly())
            .mount(Mount::scratch("/out")),
        )
        .get_mount("/out")
}

/// `path mode type link` of every entry under `dir`, sorted.
fn tree(dir: &Path) -> String {
    sh_in(dir, "find . -mindepth 1 -printf '%p %m %y %l\\n' | sort")
}

#[track_caller]
fn assert_complete_output(dir: &Path, ctx: &Path, marker: &str) {
    assert_eq!(
        std::fs::read_to_string(dir.join("marker")).unwrap().trim(),
        marker
    );
    let gen = std::fs::read(dir.join("gen.bin")).unwrap();
    assert_eq!(gen.len(), 5_000_000);
    assert_eq!(
        std::fs::read_to_string(dir.join("gen.sha")).unwrap(),
        format!("{}  gen.bin\n", sha256_hex(&gen))
    );
    assert_eq!(
        std::fs::read_link(dir.join("deep/link")).unwrap(),
        Path::new("../gen.bin")
    );
    let ctx_tree = tree(ctx);
    assert_eq!(tree(&dir.join("ctx")), ctx_tree);
    assert_eq!(
        std::fs::read(dir.join("ctx/data.bin")).unwrap(),
        std::fs::read(ctx.join("data.bin")).unwrap()
    );
    let t = tree(dir);
    assert!(t.contains("./deep/er/tool 751 f \n"), "{t}");
}

fn small_context(root: &Path) {
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("hello.txt"), "hello\n").unwrap();
    std::fs::write(root.join("sub/nested.txt"), unique()).unwrap();
    // 3 MB of pseudo-random bytes: many DATA packets each way.
    let mut data = Vec::with_capacity(3_000_000);
    let mut x: u32 = 0x1234_5678;
    while data.len() < 3_000_000 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        data.extend_from_slice(&x.to_le_bytes());
    }
    std::fs::write(root.join("data.bin"), data).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn session_tar_and_local_exports_over_both_transports() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    small_context(&ctx);
    let client = client().await;
    for how in transports() {
        let marker = unique();
        let tar = tmp.path().join(format!("{how:?}.tar"));
        let dir = tmp.path().join(format!("{how:?}-dir"));
        // A fresh shared key, or the second transport's sync would find the
        // daemon's copy from the first and send nothing.
        let session = Session::builder()
            .shared_key(unique())
            .sync_dir("context", &ctx, SyncDirOptions::default())
            .export(0, ExportTarget::file(&tar))
            .export(1, ExportTarget::directory(&dir))
            .build()
            .unwrap();
        solve_with(
            &client,
            &session,
            how,
            &output_graph(&marker, &session),
            vec![exporter("tar"), exporter("local")],
        )
        .await
        .unwrap_or_else(|e| panic!("{how:?}: {e}"));
        assert!(session.sync_stats().bytes >= 3_000_000, "{how:?}");
        assert_complete_output(&dir, &ctx, &marker);
        let untarred = tmp.path().join(format!("{how:?}-untarred"));
        std::fs::create_dir(&untarred).unwrap();
        host(
            std::process::Command::new("tar")
                .arg("-xf")
                .arg(&tar)
                .arg("-C")
                .arg(&untarred),
        );
        assert_complete_output(&untarred, &ctx, &marker);
        assert_eq!(tree(&untarred), tree(&dir), "{how:?}: tar and local differ");
    }
}

/// Reads `blobs/sha256/<hex>` of an unpacked layout, checking its digest.
fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    let hex = digest
        .strip_prefix("sha256:")
        .unwrap_or_else(|| panic!("not a sha256 digest: {digest}"));
    let path = layout.join("blobs/sha256").join(hex);
    let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(sha256_hex(&data), hex, "blob {digest} has another digest");
    data
}

/// Checks an OCI layout tar: `oci-layout`, `index.json`, and every blob the
/// index reaches, down to a layer holding `marker`.
fn check_oci_layout(tar: &Path, marker: &str) {
    let entries = tar_list(tar);
    for want in ["oci-layout", "index.json"] {
        assert!(
            entries.iter().any(|e| e == want),
            "{want} missing: {entries:?}"
        );
    }
    assert!(
        entries.iter().any(|e| e.starts_with("blobs/sha256/")),
        "{entries:?}"
    );
    let dir = tar.with_extension("unpacked");
    std::fs::create_dir_all(&dir).unwrap();
    host(
        std::process::Command::new("tar")
            .arg("-xf")
            .arg(tar)
            .arg("-C")
            .arg(&dir),
    );
    let layout: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("oci-layout")).unwrap()).unwrap();
    assert_eq!(layout["imageLayoutVersion"], "1.0.0");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["schemaVersion"], 2, "{index}");
    let mut desc = index["manifests"][0].clone();
    // A nested index (one manifest per platform) is followed to its first manifest.
    while desc["mediaType"] == "application/vnd.oci.image.index.v1+json" {
        let nested: serde_json::Value =
            serde_json::from_slice(&blob(&dir, desc["digest"].as_str().unwrap())).unwrap();
        desc = nested["manifests"][0].clone();
    }
    assert_eq!(
        desc["mediaType"], "application/vnd.oci.image.manifest.v1+json",
        "{index}"
    );
    let raw = blob(&dir, desc["digest"].as_str().unwrap());
    assert_eq!(raw.len() as u64, desc["size"].as_u64().unwrap());
    let manifest: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    let config_raw = blob(&dir, manifest["config"]["digest"].as_str().unwrap());
    let config: serde_json::Value = serde_json::from_slice(&config_raw).unwrap();
    assert_eq!(config["architecture"], "amd64", "{config}");
    assert_eq!(config["os"], "linux", "{config}");
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "{manifest}");
    let layer = blob(&dir, layers[0]["digest"].as_str().unwrap());
    assert_eq!(layer.len() as u64, layers[0]["size"].as_u64().unwrap());
    let layer_path = dir.join("layer.tar.gz");
    std::fs::write(&layer_path, layer).unwrap();
    let files = host(
        std::process::Command::new("tar")
            .arg("-tf")
            .arg(&layer_path),
    );
    assert!(files.lines().any(|l| l == "marker"), "{files}");
    let content = host(
        std::process::Command::new("tar")
            .arg("-xOf")
            .arg(&layer_path)
            .arg("marker"),
    );
    assert_eq!(content.trim(), marker);
    assert_eq!(
        config["rootfs"]["diff_ids"].as_array().map(Vec::len),
        Some(1),
        "{config}"
    );
}

fn marker_image(marker: &str) -> kiln_llb::State {
    go_image()
        .run(
            ExecOptions::shell(format!("echo {marker} > /out/marker"))
                .mount(Mount::scratch("/out")),
        )
        .get_mount("/out")
}

#[tokio::test(flavor = "multi_thread")]
async fn session_oci_export_is_a_complete_layout() {
    let tmp = tempfile::tempdir().unwrap();
    // Through the CLI (POST /session) …
    let marker = unique();
    let def = write_llb(tmp.path(), "def.llb", &marker_image(&marker));
    let tar = tmp.path().join("cli-oci.tar");
    let r = kiln_d(&[
        "solve",
        "-f",
        def.to_str().unwrap(),
        "--progress",
        "plain",
        "-o",
        &format!("type=oci,dest={}", tar.display()),
    ])
    .await;
    r.success();
    check_oci_layout(&tar, &marker);

    // … and through the library over Control.Session (the daemon's own oci
    // exporter: the CLI above fits the output to a classic store, the
    // library passes exporters through).
    if !daemon().supports(Need::OciExporters) {
        return;
    }
    let marker = unique();
    let tar = tmp.path().join("control-oci.tar");
    let session = Session::builder()
        .export(0, ExportTarget::file(&tar))
        .build()
        .unwrap();
    solve_with(
        &client().await,
        &session,
        SessionTransport::Control,
        &marker_image(&marker),
        vec![exporter("oci")],
    )
    .await
    .expect("oci export over Control.Session");
    check_oci_layout(&tar, &marker);
}

#[tokio::test(flavor = "multi_thread")]
async fn session_failing_build_leaves_no_output_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let state = go_image()
        .run(
            ExecOptions::shell(format!("echo {} > /out/partial && exit 5", unique()))
                .mount(Mount::scratch("/out")),
        )
        .get_mount("/out");
    let def = write_llb(tmp.path(), "def.llb", &state);
    let r = kiln_d(&[
        "solve",
        "-f",
        def.to_str().unwrap(),
        "--progress",
        "plain",
        "-o",
        &format!("type=tar,dest={}", work.join("out.tar").display()),
        "-o",
        &format!("type=oci,dest={}", work.join("out-oci.tar").display()),
        "-o",
        &format!("type=local,dest={}", work.join("outdir").display()),
    ])
    .await;
    r.failure();
    assert!(r.stderr.contains("exit code: 5"), "{}", r.stderr);
    let left: Vec<_> = std::fs::read_dir(&work)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "a failed build left {left:?}");

    // The library too: nothing is written for a failed solve, on either transport.
    let client = client().await;
    for how in transports() {
        let tar = work.join(format!("{how:?}.tar"));
        let dir = work.join(format!("{how:?}-dir"));
        let session = Session::builder()
            .export(0, ExportTarget::file(&tar))
            .export(1, ExportTarget::directory(&dir))
            .build()
            .unwrap();
        let e = solve_with(
            &client,
            &session,
            how,
            &state,
            vec![exporter("tar"), exporter("local")],
        )
        .await
        .expect_err("the build fails");
        assert!(e.to_string().contains("exit code: 5"), "{how:?}: {e}");
        assert!(!tar.exists() && !dir.exists(), "{how:?} left output behind");
    }
}
