//! Loading kiln's images into podman through its API socket
//! (`kiln_image::podman`), checked with podman's own CLI: every platform
//! listed, the host's runs, a rebuild replaces the image, a failed load
//! leaves nothing behind and the previous image keeps its name. And what
//! `podman load` makes of kiln's tarballs.
//!
//! The podman service is the harness's (`KILN_TEST_PODMAN`, its socket).
//! By hand: `podman --root /tmp/p/root --runroot /tmp/p/runroot system
//! service --time=0 unix:///tmp/p/podman.sock &` and
//! `KILN_TEST_PODMAN=/tmp/p/podman.sock`. Tests of several rows run at the
//! same time against the one podman: every test uses its own names and
//! content, and checks only those.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use kiln_image::layout::Layout;
use kiln_image::manifest::Descriptor;
use kiln_image::podman::{Podman, PodmanError};
use kiln_image::{Digest, ImageRef, LayoutError};
use kiln_test_support::DaemonKind;

use crate::build::{build_args, sample_module};
use crate::common::*;

/// The harness's podman socket; outside CI without one, `None` after
/// saying how to start one.
fn podman_socket() -> Option<PathBuf> {
    let var = std::env::var("KILN_TEST_PODMAN")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| harness().var("KILN_TEST_PODMAN"));
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    let Some(var) = var else {
        let how = "start podman's API service and point KILN_TEST_PODMAN at its socket: \
                   `podman --root /tmp/p/root --runroot /tmp/p/runroot system service --time=0 unix:///tmp/p/podman.sock &` \
                   then `KILN_TEST_PODMAN=/tmp/p/podman.sock` (scripts/harness.sh up does this)";
        if ci {
            panic!("KILN_TEST_PODMAN is not set. CI=true: a missing daemon is a failure. {how}");
        }
        eprintln!("podman tests need podman: {how}");
        return None;
    };
    let path = PathBuf::from(var.strip_prefix("unix://").unwrap_or(&var));
    assert!(
        path.exists(),
        "KILN_TEST_PODMAN={var}: no socket there (is the harness's podman running? `./scripts/harness.sh up`)"
    );
    Some(path)
}

/// podman's remote client on `sock`.
fn podman(sock: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new("podman")
        .arg("--url")
        .arg(format!("unix://{}", sock.display()))
        .args(args)
        .output()
        .expect("the podman CLI runs")
}

/// `podman images --all --format json`. Podman 4 fails a listing when an
/// image goes meanwhile (other tests run): asked again a few times.
fn podman_images(sock: &Path) -> Vec<serde_json::Value> {
    let mut last = String::new();
    for attempt in 1..=8 {
        let out = podman(sock, &["images", "--all", "--format", "json"]);
        if out.status.success() {
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            return v.as_array().unwrap().clone();
        }
        last = String::from_utf8_lossy(&out.stderr).into_owned();
        std::thread::sleep(std::time::Duration::from_millis(100 * attempt));
    }
    panic!("podman images failed 8 times: {last}");
}

#[track_caller]
fn podman_ok(sock: &Path, args: &[&str]) -> String {
    let out = podman(sock, args);
    assert!(
        out.status.success(),
        "podman {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `podman run` of `image` for linux/amd64 (the host), as runc here allows.
fn run_amd64(sock: &Path, image: &str) -> String {
    podman_ok(
        sock,
        &[
            "run",
            "--rm",
            "--platform",
            "linux/amd64",
            "--network",
            "none",
            "--ulimit",
            "nofile=16384:16384",
            "--ulimit",
            "nproc=16384:16384",
            image,
        ],
    )
}

/// `podman manifest inspect name`: each entry's platform and digest.
fn list_entries(sock: &Path, name: &str) -> BTreeSet<(String, String)> {
    let doc: serde_json::Value =
        serde_json::from_str(&podman_ok(sock, &["manifest", "inspect", name])).unwrap();
    doc["manifests"]
        .as_array()
        .unwrap_or_else(|| panic!("{name} is not a manifest list: {doc}"))
        .iter()
        .map(|m| {
            let p = &m["platform"];
            (
                format!(
                    "{}/{}",
                    p["os"].as_str().unwrap(),
                    p["architecture"].as_str().unwrap()
                ),
                m["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The layout's platform images, as (platform, manifest digest).
fn layout_entries(layout: &Layout) -> BTreeSet<(String, String)> {
    layout
        .images()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d.platform.as_ref().unwrap().to_string(),
                d.digest.to_string(),
            )
        })
        .collect()
}

/// The names of the temporary manifest lists loads make.
fn temporary_lists(sock: &Path) -> Vec<String> {
    podman_images(sock)
        .iter()
        .flat_map(|i| i["Names"].as_array().cloned().unwrap_or_default())
        .filter_map(|n| n.as_str().map(str::to_string))
        .filter(|n| n.starts_with("localhost/kiln-load-") && n.ends_with(":list"))
        .collect()
}

fn exists(sock: &Path, image: &str) -> bool {
    podman(sock, &["image", "exists", image]).status.success()
}

/// Builds the sample module (greeting `greeting`) for `platforms` into an
/// OCI tarball with kiln. The classic Docker store cannot export several
/// platforms: that row builds on the harness's buildkitd.
async fn build_oci(root: &Path, greeting: &str, platforms: &str) -> PathBuf {
    let dir = sample_module(&root.join(greeting), greeting);
    let dest = root.join(format!("{greeting}.tar"));
    let out = format!("type=oci,dest={}", dest.display());
    let args = multi_platform_args(build_args(&dir, &["--platform", platforms, "-o", &out]));
    run_owned(kiln(), &args).await.success();
    dest
}

/// `args` (kiln's daemon flags first) for a build of several platforms:
/// the classic Docker store cannot export several, so that row builds on
/// the harness's buildkitd.
fn multi_platform_args(mut args: Vec<String>) -> Vec<String> {
    if daemon().kind == DaemonKind::DockerClassic {
        let sock = harness()
            .var("KILN_TEST_BUILDKITD_SOCK")
            .expect("KILN_TEST_BUILDKITD_SOCK in the harness env");
        let n = daemon().kiln_args().len();
        args.splice(0..n, ["--addr".to_string(), format!("unix://{sock}")]);
    }
    args
}

/// Removes what a test named (lists first), whatever state it is in.
struct Cleanup<'a> {
    sock: &'a Path,
    lists: Vec<String>,
    images: Vec<String>,
    /// Images (lists or not) that lost their names to a rebuild.
    ids: std::cell::RefCell<Vec<String>>,
}

impl<'a> Cleanup<'a> {
    fn new(sock: &'a Path, lists: Vec<String>, images: Vec<String>) -> Self {
        Cleanup {
            sock,
            lists,
            images,
            ids: Default::default(),
        }
    }

    /// Also removes the images that now have these names.
    fn add_holders(&self, names: &[String]) {
        for i in podman_images(self.sock) {
            let named = i["Names"]
                .as_array()
                .is_some_and(|ns| ns.iter().any(|n| names.iter().any(|w| n == w)));
            if named {
                self.ids
                    .borrow_mut()
                    .push(i["Id"].as_str().unwrap().to_string());
            }
        }
    }
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for l in &self.lists {
            let _ = podman(self.sock, &["manifest", "rm", l]);
        }
        // `podman rmi ID` does not take lists; `manifest rm ID` does.
        for id in self.ids.borrow().iter() {
            let _ = podman(self.sock, &["manifest", "rm", id]);
            let _ = podman(self.sock, &["rmi", "--ignore", id]);
        }
        for i in &self.images {
            let _ = podman(self.sock, &["rmi", "--ignore", i]);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_multi_platform_build_loads_as_a_list_that_podman_runs_and_a_rebuild_replaces() {
    let Some(sock) = podman_socket() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (g1, g2) = (format!("one{}", unique()), format!("two{}", unique()));
    let first = build_oci(tmp.path(), &g1, "linux/amd64,linux/arm64").await;
    let second = build_oci(tmp.path(), &g2, "linux/amd64,linux/arm64").await;
    let short = format!("kiln-it-{}", unique());
    let name = ImageRef::parse(&short).unwrap();
    let cleanup = Cleanup::new(
        &sock,
        vec![short.clone()],
        ["latest", "latest-linux-amd64", "latest-linux-arm64"]
            .iter()
            .map(|t| format!("{short}:{t}"))
            .collect(),
    );
    let p = Podman {
        socket: sock.clone(),
    };

    let layout = Layout::open(&first).unwrap();
    let loaded = p.load(&layout, &name).await.unwrap();
    assert_eq!(loaded.name, format!("docker.io/library/{short}:latest"));
    assert_eq!(
        loaded
            .platforms
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["linux/amd64", "linux/arm64"]
    );
    // `podman manifest inspect app` (the short name) lists both platforms,
    // each the very manifest kiln built.
    let want = layout_entries(&layout);
    assert_eq!(want.len(), 2);
    assert_eq!(list_entries(&sock, &short), want);
    // The list's digest is one podman resolves.
    let pinned = format!("{short}@{}", loaded.digest);
    assert_eq!(list_entries(&sock, &pinned), want, "{pinned}");
    // `podman run --platform linux/amd64 app` runs the app.
    let out = run_amd64(&sock, &short);
    assert!(out.contains(&format!("greetings, {g1}")), "{out}");
    // Each platform's image has a name of its own (so that `podman image
    // prune` keeps it: it removes unnamed images a list refers to) and is
    // the platform it says. (No prune here: it would race other tests.)
    for arch in ["amd64", "arm64"] {
        let image = format!("{short}:latest-linux-{arch}");
        let got = podman_ok(
            &sock,
            &[
                "image",
                "inspect",
                "--format",
                "{{.Os}}/{{.Architecture}}",
                &image,
            ],
        );
        assert_eq!(got.trim(), format!("linux/{arch}"));
    }
    // A rebuild under the same name replaces it.
    let ours: Vec<String> = ["latest", "latest-linux-amd64", "latest-linux-arm64"]
        .iter()
        .map(|t| format!("docker.io/library/{short}:{t}"))
        .collect();
    cleanup.add_holders(&ours);
    let layout2 = Layout::open(&second).unwrap();
    let again = p.load(&layout2, &name).await.unwrap();
    assert_ne!(again.digest, loaded.digest);
    assert_eq!(list_entries(&sock, &short), layout_entries(&layout2));
    let out = run_amd64(&sock, &short);
    assert!(out.contains(&format!("greetings, {g2}")), "{out}");
    // Loading the same again is fine too.
    cleanup.add_holders(&ours);
    p.load(&layout2, &name).await.unwrap();
    assert_eq!(list_entries(&sock, &short), layout_entries(&layout2));

    // And a single-platform build replaces the list.
    let g3 = format!("three{}", unique());
    let single = Layout::open(build_oci(tmp.path(), &g3, "linux/amd64").await).unwrap();
    cleanup.add_holders(&ours);
    let loaded = p.load(&single, &name).await.unwrap();
    assert_eq!(loaded.digest, single.images().unwrap()[0].digest);
    let out = run_amd64(&sock, &short);
    assert!(out.contains(&format!("greetings, {g3}")), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_single_platform_build_loads_as_one_image() {
    let Some(sock) = podman_socket() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let g = format!("single{}", unique());
    let tar = build_oci(tmp.path(), &g, "linux/amd64").await;
    let short = format!("kiln-it-{}", unique());
    let _cleanup = Cleanup::new(&sock, Vec::new(), vec![format!("{short}:v1")]);
    let layout = Layout::open(&tar).unwrap();
    let name = ImageRef::parse(&format!("{short}:v1")).unwrap();
    let loaded = Podman {
        socket: sock.clone(),
    }
    .load(&layout, &name)
    .await
    .unwrap();
    assert_eq!(loaded.name, format!("docker.io/library/{short}:v1"));
    let manifest = layout.images().unwrap()[0].digest.clone();
    assert_eq!(
        loaded.digest, manifest,
        "podman keeps the manifest kiln built"
    );
    let out = run_amd64(&sock, &format!("{short}:v1"));
    assert!(out.contains(&format!("greetings, {g}")), "{out}");
    // No per-platform names.
    assert!(!exists(&sock, &format!("{short}:v1-linux-amd64")));
}

/// A layout tarball's files, unpacked into `dir`.
struct Files {
    dir: PathBuf,
}

impl Files {
    fn unpack(tar: &Path, dir: &Path) -> Files {
        untar(tar, dir);
        Files {
            dir: dir.to_path_buf(),
        }
    }

    fn read(&self, d: &Digest) -> Vec<u8> {
        std::fs::read(self.dir.join(kiln_image::layout::blob_path(d))).unwrap()
    }

    fn json(&self, d: &Digest) -> serde_json::Value {
        serde_json::from_slice(&self.read(d)).unwrap()
    }

    fn add(&self, data: &[u8]) -> (Digest, u64) {
        let d = Digest::sha256_of(data);
        std::fs::write(self.dir.join(kiln_image::layout::blob_path(&d)), data).unwrap();
        (d, data.len() as u64)
    }

    /// Points the layout at a new root index listing `entries`.
    fn set_root(&self, entries: Vec<serde_json::Value>) {
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": entries,
        });
        let (d, size) = self.add(index.to_string().as_bytes());
        let top = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json", "digest": d.to_string(), "size": size}],
        });
        std::fs::write(self.dir.join("index.json"), top.to_string()).unwrap();
    }

    fn pack(&self, tar: &Path) -> Layout {
        let st = std::process::Command::new("tar")
            .arg("-C")
            .arg(&self.dir)
            .args(["-cf"])
            .arg(tar)
            .args(["oci-layout", "index.json", "blobs"])
            .status()
            .unwrap();
        assert!(st.success());
        Layout::open(tar).unwrap()
    }
}

fn entry(d: &Descriptor, os: &str, arch: &str) -> serde_json::Value {
    serde_json::json!({
        "mediaType": d.media_type,
        "digest": d.digest.to_string(),
        "size": d.size,
        "platform": {"os": os, "architecture": arch},
    })
}

/// The image ID podman gives a platform image: its config's digest.
fn config_id(layout: &Layout, d: &Descriptor) -> String {
    layout
        .manifest(d)
        .unwrap()
        .config()
        .unwrap()
        .digest
        .hex()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_load_leaves_nothing_and_the_previous_image_keeps_its_name() {
    let Some(sock) = podman_socket() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (g_old, g_new) = (format!("old{}", unique()), format!("new{}", unique()));
    let old_tar = build_oci(tmp.path(), &g_old, "linux/amd64,linux/arm64").await;
    let new_tar = build_oci(tmp.path(), &g_new, "linux/amd64,linux/arm64").await;
    let short = format!("kiln-it-{}", unique());
    let name = ImageRef::parse(&short).unwrap();
    let _cleanup = Cleanup::new(
        &sock,
        vec![short.clone()],
        ["latest-linux-amd64", "latest-linux-arm64"]
            .iter()
            .map(|t| format!("{short}:{t}"))
            .collect(),
    );
    let p = Podman {
        socket: sock.clone(),
    };
    let old = Layout::open(&old_tar).unwrap();
    p.load(&old, &name).await.unwrap();
    let old_entries = layout_entries(&old);

    let new = Layout::open(&new_tar).unwrap();
    let images = new.images().unwrap();
    let (amd, arm) = (images[0].clone(), images[1].clone());
    assert_eq!(amd.platform.as_ref().unwrap().architecture, "amd64");
    let new_ids = [config_id(&new, &amd), config_id(&new, &arm)];
    for id in &new_ids {
        assert!(!exists(&sock, id), "the new build is not in podman yet");
    }
    let files = Files::unpack(&new_tar, &tmp.path().join("new"));

    // What must hold after every failed load: the new images are gone, no
    // list lists them, and the name still is the old list, which runs.
    let unchanged = |what: &str| {
        for id in &new_ids {
            assert!(!exists(&sock, id), "{what}: image {id} was left behind");
        }
        // Other tests' images and temporary lists come and go; a list of
        // ours (it would list the new amd64 manifest) must not stay.
        for list in temporary_lists(&sock) {
            let out = podman(&sock, &["manifest", "inspect", &list]);
            if !out.status.success() && !exists(&sock, &list) {
                continue; // Another test's, gone since.
            }
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                !text.contains(amd.digest.as_str()),
                "{what}: the list {list} was left behind: {text}"
            );
        }
        assert_eq!(list_entries(&sock, &short), old_entries, "{what}");
        let out = run_amd64(&sock, &short);
        assert!(
            out.contains(&format!("greetings, {g_old}")),
            "{what}: {out}"
        );
    };

    // 1. Podman refuses the arm64 image (its layer is not a tarball) after
    //    the amd64 one loaded: podman's reason is reported.
    let manifest = files.json(&arm.digest);
    let mut bad = manifest.clone();
    let (garbage, size) = files.add(format!("not a layer {}", unique()).as_bytes());
    let layers = bad["layers"].as_array_mut().unwrap();
    let last = layers.len() - 1;
    layers[last]["digest"] = garbage.to_string().into();
    layers[last]["size"] = size.into();
    let (bad_digest, bad_size) = files.add(bad.to_string().as_bytes());
    let bad_arm = Descriptor {
        digest: bad_digest,
        size: bad_size,
        ..arm.clone()
    };
    files.set_root(vec![
        entry(&amd, "linux", "amd64"),
        entry(&bad_arm, "linux", "arm64"),
    ]);
    let layout = files.pack(&tmp.path().join("refused.tar"));
    let e = p.load(&layout, &name).await.unwrap_err();
    eprintln!("podman refused: {e}");
    match &e {
        PodmanError::Refused {
            action, message, ..
        } => {
            assert_eq!(action, "load the linux/arm64 image");
            assert!(!message.is_empty());
        }
        other => panic!("expected podman's refusal, got {other:?}"),
    }
    assert!(
        e.to_string()
            .starts_with("podman refused to load the linux/arm64 image (HTTP "),
        "{e}"
    );
    unchanged("podman refused a layer");

    // 2. A damaged arm64 layer (bytes that do not match its digest): kiln
    //    stops sending mid-archive; podman must not take the partial one.
    let layer = Digest::parse(manifest["layers"][last]["digest"].as_str().unwrap()).unwrap();
    let good = files.read(&layer);
    let mut bytes = good.clone();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(
        files.dir.join(kiln_image::layout::blob_path(&layer)),
        &bytes,
    )
    .unwrap();
    files.set_root(vec![
        entry(&amd, "linux", "amd64"),
        entry(&arm, "linux", "arm64"),
    ]);
    let layout = files.pack(&tmp.path().join("damaged.tar"));
    let e = p.load(&layout, &name).await.unwrap_err();
    assert!(
        matches!(&e, PodmanError::Layout(LayoutError::DigestMismatch { expected, .. }) if *expected == layer),
        "{e:?}"
    );
    unchanged("a damaged layer");
    std::fs::write(files.dir.join(kiln_image::layout::blob_path(&layer)), &good).unwrap();

    // 3. The list podman builds does not say what kiln loaded (here: one
    //    manifest offered as two platforms): found after the list was made
    //    and the images loaded; the list and the images go.
    files.set_root(vec![
        entry(&amd, "linux", "amd64"),
        entry(&amd, "linux", "arm64"),
    ]);
    let layout = files.pack(&tmp.path().join("mismatch.tar"));
    let e = p.load(&layout, &name).await.unwrap_err();
    assert!(matches!(&e, PodmanError::ListMismatch { .. }), "{e:?}");
    assert!(
        e.to_string().contains("does not list what kiln loaded"),
        "{e}"
    );
    unchanged("a list that does not match");
}

/// Ctrl-C while kiln loads a two-platform image into podman (one
/// platform's image is in, the other on its way): kiln undoes the load
/// before it exits 130, and no image, list or name of it is left.
#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_during_a_podman_load_leaves_nothing() {
    use tokio::io::AsyncReadExt;
    let Some(sock) = podman_socket() else { return };
    if daemon().kind != DaemonKind::Buildkitd {
        // The load runs after the build and does not depend on the builder
        // (the classic row builds several platforms on buildkitd anyway):
        // one row checks it, instead of four cold two-platform builds.
        eprintln!("the buildkitd row checks Ctrl-C during a podman load");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let greeting = format!("cancel{}", unique());
    let dir = sample_module(tmp.path(), &greeting);
    let platforms = ["--platform", "linux/amd64,linux/arm64"];
    let epoch = ["--source-date-epoch", "1700000000"];
    // Built once to know its images: the load below builds the same
    // (cached and reproducible) and loads it.
    let oci = tmp.path().join("images.tar");
    let out = format!("type=oci,dest={}", oci.display());
    let mut extra = vec!["-o", out.as_str()];
    extra.extend(platforms.iter().chain(&epoch));
    run_owned(kiln(), &multi_platform_args(build_args(&dir, &extra)))
        .await
        .success();
    let layout = Layout::open(&oci).unwrap();
    let images = layout.images().unwrap();
    let ids: Vec<String> = images.iter().map(|d| config_id(&layout, d)).collect();
    let short = format!("kiln-it-{}", unique());
    let instances: Vec<String> = ["latest-linux-amd64", "latest-linux-arm64"]
        .iter()
        .map(|t| format!("{short}:{t}"))
        .collect();
    let _cleanup = Cleanup::new(&sock, vec![short.clone()], instances.clone());
    let out = format!("type=podman,address=unix://{}", sock.display());
    let mut extra = vec!["-o", out.as_str(), "-t", &short, "--progress", "plain"];
    extra.extend(platforms.iter().chain(&epoch));
    let args = multi_platform_args(build_args(&dir, &extra));

    for attempt in 1..=3 {
        let mut child = kiln()
            .args(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let drain = tokio::spawn(async move {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s).await;
            s
        });
        // Interrupted once the first platform's image is in podman.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
        let mut interrupted = false;
        while child.try_wait().unwrap().is_none() {
            if ids.iter().any(|id| exists(&sock, id)) {
                std::process::Command::new("kill")
                    .args(["-INT", &pid.to_string()])
                    .status()
                    .unwrap();
                interrupted = true;
                break;
            }
            assert!(std::time::Instant::now() < deadline, "kiln never loaded");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let status = tokio::time::timeout(std::time::Duration::from_secs(30), child.wait())
            .await
            .expect("kiln still runs 30 s after SIGINT")
            .unwrap();
        let err = drain.await.unwrap();
        if status.success() {
            // The load ended before the signal reached it: again, from a
            // store without it.
            eprintln!(
                "attempt {attempt}: the load ended before it was interrupted ({interrupted})"
            );
            let _ = podman(&sock, &["manifest", "rm", &short]);
            for i in &instances {
                let _ = podman(&sock, &["rmi", "--ignore", i]);
            }
            continue;
        }
        assert_eq!(status.code(), Some(130), "{err}");
        assert!(err.contains("cancelled"), "{err}");
        assert!(!err.contains("still undoing"), "{err}");
        for id in &ids {
            assert!(!exists(&sock, id), "image {id} was left behind:\n{err}");
        }
        for name in instances.iter().chain([&short]) {
            assert!(!exists(&sock, name), "{name} was left behind:\n{err}");
        }
        // No temporary list of it (other tests' come and go).
        for list in temporary_lists(&sock) {
            let out = podman(&sock, &["manifest", "inspect", &list]);
            let text = String::from_utf8_lossy(&out.stdout);
            for d in &images {
                assert!(
                    !text.contains(d.digest.as_str()),
                    "the list {list} was left behind: {text}"
                );
            }
        }
        return;
    }
    panic!("three loads into podman ended before Ctrl-C reached them");
}

/// A tiny layout tarball (one image of its own, one empty layer), as a file.
fn tiny_layout(dir: &Path) -> Layout {
    let files = Files {
        dir: dir.to_path_buf(),
    };
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    // An empty tar archive: a layer podman can apply.
    let (layer, layer_size) = files.add(&[0u8; 1024]);
    // A label of its own: an image no other test (or row) shares.
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{"Labels":{{"kiln.test":"{}"}}}},"rootfs":{{"type":"layers","diff_ids":["{layer}"]}}}}"#,
        unique()
    );
    let (c, c_size) = files.add(config.as_bytes());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": c.to_string(), "size": c_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer.to_string(), "size": layer_size}],
    });
    let (m, m_size) = files.add(manifest.to_string().as_bytes());
    let d = Descriptor {
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        digest: m,
        size: m_size,
        platform: None,
    };
    files.set_root(vec![entry(&d, "linux", "amd64")]);
    files.pack(&dir.join("tiny.tar"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_socket_dockers_socket_and_a_pinned_name_say_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tiny_layout(&tmp.path().join("l"));
    let name = ImageRef::parse("app").unwrap();

    let absent = tmp.path().join("absent/podman.sock");
    let e = Podman {
        socket: absent.clone(),
    }
    .load(&layout, &name)
    .await
    .unwrap_err();
    assert!(matches!(e, PodmanError::Connect { .. }), "{e:?}");
    let text = e.to_string();
    assert!(text.contains(&absent.display().to_string()), "{text}");
    assert!(
        text.contains("systemctl --user start podman.socket"),
        "{text}"
    );
    assert!(text.contains("podman system service --time=0"), "{text}");

    // Docker's socket is not podman's.
    let docker_sock = PathBuf::from(&harness().docker_sock);
    let e = Podman {
        socket: docker_sock.clone(),
    }
    .load(&layout, &name)
    .await
    .unwrap_err();
    assert!(matches!(e, PodmanError::NotPodman { .. }), "{e:?}");
    assert!(
        e.to_string().starts_with(&format!(
            "{} is not podman's API socket",
            docker_sock.display()
        )),
        "{e}"
    );

    // Podman names images by tag: a digest is refused before podman is
    // asked anything (here: not even reachable).
    let pinned = ImageRef::parse(&format!("app:v1@{}", Digest::sha256_of(b"x"))).unwrap();
    let e = Podman { socket: absent }
        .load(&layout, &pinned)
        .await
        .unwrap_err();
    assert!(matches!(e, PodmanError::NameHasDigest { .. }), "{e:?}");
    assert!(e.to_string().contains("-t app:v1"), "{e}");

    // A socket that is not podman's.
    let e = Podman::from_env(Some("tcp://127.0.0.1:8080")).unwrap_err();
    assert!(e.to_string().contains("unix socket"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tag_with_no_room_for_the_platforms_is_refused_before_loading() {
    let Some(sock) = podman_socket() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let layout = tiny_layout(&tmp.path().join("l"));
    // A tag that takes all 128 characters a tag may have: podman takes it
    // for one platform, but there is no room to name the platform images of
    // several. Refused before anything is loaded. (Podman's own refusals are
    // reported as they come: see the failed-load test.)
    let tag = "t".repeat(128);
    let short = format!("kiln-it-{}", unique());
    let name = ImageRef::parse(&format!("{short}:{tag}")).unwrap();
    let p = Podman {
        socket: sock.clone(),
    };
    let _cleanup = Cleanup::new(&sock, Vec::new(), vec![format!("{short}:{tag}")]);
    let loaded = p.load(&layout, &name).await.unwrap();
    assert_eq!(loaded.name, format!("docker.io/library/{short}:{tag}"));
    assert!(exists(&sock, &format!("{short}:{tag}")));

    let files = Files {
        dir: tmp.path().join("l"),
    };
    let d = layout.images().unwrap()[0].clone();
    files.set_root(vec![
        entry(&d, "linux", "amd64"),
        entry(&d, "linux", "arm64"),
    ]);
    let two = files.pack(&tmp.path().join("two.tar"));
    let other = format!("kiln-it-{}", unique());
    let e = p
        .load(&two, &ImageRef::parse(&format!("{other}:{tag}")).unwrap())
        .await
        .unwrap_err();
    assert!(matches!(e, PodmanError::InstanceTag { .. }), "{e:?}");
    assert!(e.to_string().contains("use a shorter tag"), "{e}");
    assert!(!exists(&sock, &format!("{other}:{tag}")));
}

#[tokio::test(flavor = "multi_thread")]
async fn podman_load_takes_kilns_tarballs_but_keeps_one_platform() {
    let Some(sock) = podman_socket() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let g = format!("cli{}", unique());
    let dir = sample_module(&tmp.path().join(&g), &g);
    let short = format!("kiln-it-{}", unique());
    let _cleanup = Cleanup::new(
        &sock,
        Vec::new(),
        vec![format!("{short}:oci"), format!("{short}:docker")],
    );
    let build = |platforms: &str, out: String| {
        let mut args = build_args(&dir, &["--platform", platforms, "-o", &out]);
        if daemon().kind == DaemonKind::DockerClassic {
            let sock = harness().var("KILN_TEST_BUILDKITD_SOCK").unwrap();
            let n = daemon().kiln_args().len();
            args.splice(0..n, ["--addr".to_string(), format!("unix://{sock}")]);
        }
        args
    };

    // A multi-platform OCI tarball: `podman load` takes it, and keeps the
    // host's platform only (containers/podman#22882), under the name.
    let oci = tmp.path().join("multi-oci.tar");
    let args = build(
        "linux/amd64,linux/arm64",
        format!("type=oci,dest={},name={short}:oci", oci.display()),
    );
    run_owned(kiln(), &args).await.success();
    let out = podman_ok(&sock, &["load", "-i", oci.to_str().unwrap()]);
    assert!(
        out.contains(&format!("docker.io/library/{short}:oci")),
        "{out}"
    );
    let arch = podman_ok(
        &sock,
        &[
            "image",
            "inspect",
            "--format",
            "{{.Architecture}}",
            &format!("{short}:oci"),
        ],
    );
    assert_eq!(arch.trim(), "amd64");
    let layout = Layout::open(&oci).unwrap();
    let arm = layout.images().unwrap()[1].clone();
    assert_eq!(arm.platform.as_ref().unwrap().architecture, "arm64");
    assert!(
        !exists(&sock, &config_id(&layout, &arm)),
        "podman load left the arm64 image out"
    );
    let out = run_amd64(&sock, &format!("{short}:oci"));
    assert!(out.contains(&format!("greetings, {g}")), "{out}");

    // A docker-archive: BuildKit's docker exporter writes one platform (for
    // several it refuses: "docker exporter does not currently support
    // exporting manifest lists"); `podman load` takes it with its name.
    let docker = tmp.path().join("docker.tar");
    let args = build(
        "linux/amd64",
        format!("type=docker,dest={},name={short}:docker", docker.display()),
    );
    run_owned(kiln(), &args).await.success();
    let out = podman_ok(&sock, &["load", "-i", docker.to_str().unwrap()]);
    assert!(
        out.contains(&format!("docker.io/library/{short}:docker")),
        "{out}"
    );
    let out = run_amd64(&sock, &format!("{short}:docker"));
    assert!(out.contains(&format!("greetings, {g}")), "{out}");
}
