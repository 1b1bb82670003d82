//! Loading kiln's images into containerd through its gRPC API
//! (`kiln_image::containerd`), checked with `ctr` against the containerd
//! the harness runs (`KILN_TEST_CONTAINERD`, its socket).

use std::path::{Path, PathBuf};
use std::process::Output;

use kiln_image::containerd::{Containerd, ContainerdError};
use kiln_image::layout::{blob_path, Layout};
use kiln_image::{media_type, Digest, ImageRef, LayoutError, Platform};

use crate::build::{kiln_build, sample_module};
use crate::common::*;

/// The harness's containerd socket. Without one: a failure in CI, else a
/// note on how to start one, and the test passes without checking anything.
fn socket() -> Option<PathBuf> {
    harness_socket("KILN_TEST_CONTAINERD", "containerd")
}

/// `ctr -a SOCKET -n NAMESPACE ARGS…`, which must succeed.
pub(crate) fn ctr(socket: &Path, namespace: &str, args: &[&str]) -> String {
    let out = ctr_output(socket, namespace, args);
    assert!(
        out.status.success(),
        "ctr {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(crate) fn ctr_output(socket: &Path, namespace: &str, args: &[&str]) -> Output {
    std::process::Command::new("ctr")
        .arg("-a")
        .arg(socket)
        .args(["-n", namespace])
        .args(args)
        .output()
        .expect("ctr runs")
}

/// A namespace of this test's own, so its images and leases are its own.
fn new_namespace(socket: &Path) -> String {
    let ns = format!("kiln-it-{}", &unique()[..12]);
    ctr(socket, "default", &["namespaces", "create", &ns]);
    ns
}

/// A namespace of this test's own, and the loader into it.
fn own_containerd(socket: &Path) -> (String, Containerd) {
    let ns = new_namespace(socket);
    let containerd = Containerd {
        socket: socket.to_path_buf(),
        namespace: ns.clone(),
    };
    (ns, containerd)
}

/// The image record's line in `ctr images ls`, if there is one.
fn image_line(socket: &Path, namespace: &str, name: &str) -> Option<String> {
    ctr(socket, namespace, &["images", "ls"])
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .map(str::to_string)
}

/// Leases this process's loads left in `namespace` (`kiln-load-PID-…`:
/// the other rows load into `k8s.io` at the same time).
fn kiln_leases(socket: &Path, namespace: &str) -> Vec<String> {
    let ours = format!("kiln-load-{}-", std::process::id());
    ctr(socket, namespace, &["leases", "ls", "-q"])
        .lines()
        .filter(|l| l.starts_with(&ours))
        .map(str::to_string)
        .collect()
}

/// Runs containerd's garbage collector now (deleting a lease with
/// `--sync` waits for a collection).
fn collect_garbage(socket: &Path, namespace: &str) {
    let id = format!("kiln-it-gc-{}", unique());
    ctr(socket, namespace, &["leases", "create", "--id", &id]);
    ctr(socket, namespace, &["leases", "rm", "--sync", &id]);
}

/// Every blob the layout's root reaches.
fn reachable(layout: &Layout) -> Vec<Digest> {
    let (root, manifest) = layout.root().unwrap();
    let mut all = vec![root.digest];
    for m in manifest.entries() {
        let doc = layout.manifest(&m).unwrap();
        all.push(m.digest);
        all.extend(doc.config().map(|c| c.digest));
        all.extend(doc.layers().into_iter().map(|l| l.digest));
    }
    all
}

#[tokio::test(flavor = "multi_thread")]
async fn a_multi_platform_build_loads_with_every_platform_and_runs() {
    let Some(socket) = socket() else { return };
    if daemon().kind != kiln_test_support::DaemonKind::Buildkitd {
        // Loading does not depend on the builder; one row builds for it.
        eprintln!("the buildkitd row checks loading into containerd");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let greeting = unique();
    let dir = sample_module(tmp.path(), &greeting);
    let oci = tmp.path().join("multi.tar");
    kiln_build(
        &dir,
        &[
            "--platform",
            "linux/amd64,linux/arm64",
            "-o",
            &format!("type=oci,dest={}", oci.display()),
        ],
    )
    .await
    .success();

    // k8s.io: where k3s's CRI looks, and where the CRI label goes.
    let ns = "k8s.io";
    let _ = ctr_output(&socket, "default", &["namespaces", "create", ns]);
    let name = ImageRef::parse(&format!("kiln-it/app-{}:v1", &greeting[..12])).unwrap();
    let full = name.to_string();
    assert!(full.starts_with("docker.io/kiln-it/app-"), "{full}");
    let layout = Layout::open(&oci).unwrap();
    let containerd = Containerd {
        socket: socket.clone(),
        namespace: ns.into(),
    };
    let loaded = containerd.load(&layout, &name).await.unwrap();
    assert_eq!(loaded.name, full);
    assert_eq!(loaded.digest, layout.root().unwrap().0.digest);
    assert_eq!(
        loaded.platforms,
        [Platform::linux_amd64(), Platform::linux_arm64()]
    );

    // The lease is gone, and a collection keeps every blob: the image's
    // labels reach them all, both platforms'.
    assert_eq!(kiln_leases(&socket, ns), Vec::<String>::new());
    collect_garbage(&socket, ns);
    let content = ctr(&socket, ns, &["content", "ls", "-q"]);
    for d in reachable(&layout) {
        assert!(content.lines().any(|l| l == d.as_str()), "{d} collected");
    }
    // The index names its manifests, as `ctr images import` labels them.
    let labels = ctr(&socket, ns, &["content", "ls"]);
    let root_line = labels
        .lines()
        .find(|l| l.starts_with(loaded.digest.as_str()))
        .expect("root listed");
    let (_, index) = layout.root().unwrap();
    for (i, m) in index.entries().iter().enumerate() {
        let label = format!("containerd.io/gc.ref.content.m.{i}={}", m.digest);
        assert!(root_line.contains(&label), "{label} not in {root_line}");
    }

    // Loading again changes nothing (every blob is there: only the record
    // is updated).
    let again = containerd.load(&layout, &name).await.unwrap();
    assert_eq!(again, loaded);

    let line = image_line(&socket, ns, &full).expect("image listed");
    for want in [
        loaded.digest.as_str(),
        "linux/amd64",
        "linux/arm64",
        "io.cri-containerd.image=managed",
        media_type::OCI_INDEX,
    ] {
        assert!(line.contains(want), "{want} not in: {line}");
    }

    // ctr unpacks by itself and runs the amd64 image.
    let id = format!("kiln-it-{}", &unique()[..12]);
    let run = ctr(
        &socket,
        ns,
        &["run", "--rm", "--platform", "linux/amd64", &full, &id],
    );
    assert!(
        run.contains(&format!("greetings, {greeting}")),
        "the app's output: {run}"
    );
    ctr(&socket, ns, &["images", "rm", "--sync", &full]);
}

/// A layout with one linux/amd64 image whose layer is `layer`; with
/// `corrupt`, the layer's file holds other bytes of the same length.
fn small_layout(path: &Path, layer: &[u8], corrupt: bool, missing: bool) -> Digest {
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut add = |data: Vec<u8>| {
        let d = Digest::sha256_of(&data);
        files.push((blob_path(&d), data));
        d
    };
    let l = add(layer.to_vec());
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{l}"]}}}}"#
    );
    let c = add(config.clone().into_bytes());
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{c}","size":{}}},"layers":[{{"mediaType":"{}","digest":"{l}","size":{}}}]}}"#,
        media_type::OCI_MANIFEST,
        media_type::OCI_CONFIG,
        config.len(),
        media_type::OCI_LAYER_TAR,
        layer.len()
    );
    let m = add(manifest.clone().into_bytes());
    if corrupt {
        files[0].1 = layer.iter().map(|b| b ^ 0xff).collect();
    }
    if missing {
        files.remove(0);
    }
    files.push((
        "index.json".into(),
        format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{}","digest":"{m}","size":{}}}]}}"#,
            media_type::OCI_MANIFEST,
            manifest.len()
        )
        .into_bytes(),
    ));
    let mut tar = tar::Builder::new(std::fs::File::create(path).unwrap());
    for (p, data) in &files {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        tar.append_data(&mut h, p, data.as_slice()).unwrap();
    }
    tar.finish().unwrap();
    m
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_load_leaves_the_image_record_as_it_was() {
    let Some(socket) = socket() else { return };
    let (ns, containerd) = own_containerd(&socket);
    let tmp = tempfile::tempdir().unwrap();
    let name = ImageRef::parse("kiln-it/small:v1").unwrap();
    let full = name.to_string();
    let layout = |file: &str, layer: &[u8], corrupt, missing| {
        let path = tmp.path().join(file);
        let manifest = small_layout(&path, layer, corrupt, missing);
        (Layout::open(&path).unwrap(), manifest)
    };

    // A corrupt layer: refused, and no image record is made.
    let (bad, _) = layout(
        "bad.tar",
        format!("bad {}", unique()).as_bytes(),
        true,
        false,
    );
    let e = containerd.load(&bad, &name).await.unwrap_err();
    assert!(
        matches!(
            &e,
            ContainerdError::Layout {
                source: LayoutError::DigestMismatch { .. }
            }
        ),
        "{e:?}"
    );
    assert_eq!(image_line(&socket, &ns, &full), None);
    assert_eq!(kiln_leases(&socket, &ns), Vec::<String>::new());

    // A good one loads; a second good one moves the name.
    let (first, first_digest) = layout("first.tar", unique().as_bytes(), false, false);
    let loaded = containerd.load(&first, &name).await.unwrap();
    assert_eq!(loaded.digest, first_digest);
    assert_eq!(loaded.platforms, [Platform::linux_amd64()]);
    let (second, second_digest) = layout("second.tar", unique().as_bytes(), false, false);
    containerd.load(&second, &name).await.unwrap();
    let line = image_line(&socket, &ns, &full).expect("listed");
    assert!(line.contains(second_digest.as_str()), "{line}");
    // Outside k8s.io there is no CRI label.
    assert!(!line.contains("io.cri-containerd.image"), "{line}");

    // A missing layer and a corrupt one: the name still points at the
    // second image.
    let (missing, _) = layout("missing.tar", unique().as_bytes(), false, true);
    let e = containerd.load(&missing, &name).await.unwrap_err();
    assert!(
        matches!(
            &e,
            ContainerdError::Layout {
                source: LayoutError::MissingBlob { .. }
            }
        ),
        "{e:?}"
    );
    let (bad, _) = layout("bad2.tar", unique().as_bytes(), true, false);
    containerd.load(&bad, &name).await.unwrap_err();
    let line = image_line(&socket, &ns, &full).expect("listed");
    assert!(line.contains(second_digest.as_str()), "{line}");
    assert_eq!(kiln_leases(&socket, &ns), Vec::<String>::new());
    ctr(&socket, &ns, &["images", "rm", "--sync", &full]);
    collect_garbage(&socket, &ns);
    ctr(&socket, "default", &["namespaces", "rm", &ns]);
}

/// A load dropped mid-way (as Ctrl-C drops a build's future) stops,
/// deletes its lease and makes no image record; containerd's next
/// collection takes what it wrote.
#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_load_leaves_no_record_and_no_lease() {
    let Some(socket) = socket() else { return };
    let (ns, containerd) = own_containerd(&socket);
    let tmp = tempfile::tempdir().unwrap();
    let name = ImageRef::parse("kiln-it/cancelled:v1").unwrap();
    let full = name.to_string();
    // A layer big enough to be caught while it is written; bigger if not.
    for mib in [32usize, 128, 512] {
        let mut layer = unique().into_bytes();
        layer.resize(mib << 20, 0);
        let path = tmp.path().join(format!("big{mib}.tar"));
        small_layout(&path, &layer, false, false);
        let layer_digest = Digest::sha256_of(&layer);
        drop(layer);
        let layout = Layout::open(&path).unwrap();
        let (c, n) = (containerd.clone(), name.clone());
        let load = tokio::spawn(async move { c.load(&layout, &n).await });
        while kiln_leases(&socket, &ns).is_empty() && !load.is_finished() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        if load.is_finished() {
            load.await.unwrap().unwrap();
            eprintln!("{mib} MiB loaded before it could be cancelled; bigger");
            ctr(&socket, &ns, &["images", "rm", "--sync", &full]);
            continue;
        }
        // Dropped, as the build's future is on Ctrl-C.
        load.abort();
        let _ = load.await;
        assert!(
            kiln_image::store::settle(std::time::Duration::from_secs(30)).await,
            "the cancelled load was still undoing itself after 30 s"
        );
        assert_eq!(kiln_leases(&socket, &ns), Vec::<String>::new());
        assert_eq!(image_line(&socket, &ns, &full), None);
        collect_garbage(&socket, &ns);
        let content = ctr(&socket, &ns, &["content", "ls", "-q"]);
        assert!(
            !content.lines().any(|l| l == layer_digest.as_str()),
            "the layer outlived its lease"
        );
        ctr(&socket, "default", &["namespaces", "rm", &ns]);
        return;
    }
    panic!("even 512 MiB loaded before it could be cancelled");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_namespace_is_an_error_not_created() {
    let Some(socket) = socket() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("small.tar");
    small_layout(&path, unique().as_bytes(), false, false);
    let layout = Layout::open(&path).unwrap();
    let ns = format!("k8s-io-{}", &unique()[..8]);
    let containerd =
        Containerd::from_env(Some(&format!("unix://{}", socket.display())), Some(&ns)).unwrap();
    let e = containerd
        .load(&layout, &ImageRef::parse("kiln-it/small").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(e, ContainerdError::NoNamespace { .. }), "{e:?}");
    let text = e.to_string();
    for want in [
        format!("has no namespace \"{ns}\""),
        format!("namespaces create {ns}"),
    ] {
        assert!(text.contains(&want), "{want}: {text}");
    }
    let namespaces = ctr(&socket, "default", &["namespaces", "ls", "-q"]);
    assert!(!namespaces.lines().any(|l| l == ns), "{namespaces}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_socket_says_to_start_containerd() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("small.tar");
    small_layout(&path, b"layer", false, false);
    let layout = Layout::open(&path).unwrap();
    let socket = tmp.path().join("containerd.sock");
    let containerd = Containerd::from_env(Some(socket.to_str().unwrap()), None).unwrap();
    let e = containerd
        .load(&layout, &ImageRef::parse("kiln-it/small").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(e, ContainerdError::NoSocket { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.starts_with(&format!(
            "no containerd socket at {}: is containerd running?",
            socket.display()
        )),
        "{text}"
    );
    assert!(
        text.contains("/run/k3s/containerd/containerd.sock"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_socket_that_is_not_containerd_says_so() {
    // buildkitd answers gRPC, but has no containerd services.
    let Some(buildkitd) = harness().var("KILN_TEST_BUILDKITD_SOCK") else {
        panic!("the harness sets KILN_TEST_BUILDKITD_SOCK");
    };
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("small.tar");
    small_layout(&path, b"layer", false, false);
    let layout = Layout::open(&path).unwrap();
    let containerd = Containerd::from_env(Some(&buildkitd), Some("default")).unwrap();
    let e = containerd
        .load(&layout, &ImageRef::parse("kiln-it/small").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(e, ContainerdError::NotContainerd { .. }), "{e:?}");
    assert!(e.to_string().contains("is not containerd's socket"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_loads_of_one_image_all_succeed() {
    let Some(socket) = socket() else { return };
    let ns = new_namespace(&socket);
    let tmp = tempfile::tempdir().unwrap();
    // A layer of several chunks, so that the loads overlap while writing
    // it: the later ones meet containerd's lock on its ref, or find it
    // written, and wait or go on.
    let seed = unique();
    let layer: Vec<u8> = (0..24 * 1024 * 1024)
        .map(|i: usize| seed.as_bytes()[i % seed.len()] ^ (i / 4096) as u8)
        .collect();
    let path = tmp.path().join("big.tar");
    let manifest = small_layout(&path, &layer, false, false);
    let layout = Layout::open(&path).unwrap();
    let containerd = Containerd {
        socket: socket.clone(),
        namespace: ns.clone(),
    };
    let loads = (0..3).map(|i| {
        let containerd = containerd.clone();
        let layout = layout.clone();
        tokio::spawn(async move {
            let name = ImageRef::parse(&format!("kiln-it/big-{i}:v1")).unwrap();
            containerd.load(&layout, &name).await
        })
    });
    for load in futures_join(loads).await {
        let loaded = load.unwrap().unwrap();
        assert_eq!(loaded.digest, manifest);
    }
    assert_eq!(kiln_leases(&socket, &ns), Vec::<String>::new());
    collect_garbage(&socket, &ns);
    let content = ctr(&socket, &ns, &["content", "ls", "-q"]);
    for d in reachable_single(&layout) {
        assert!(content.lines().any(|l| l == d.as_str()), "{d} collected");
    }
    for i in 0..3 {
        let full = format!("docker.io/kiln-it/big-{i}:v1");
        assert!(image_line(&socket, &ns, &full).is_some(), "{full}");
        ctr(&socket, &ns, &["images", "rm", "--sync", &full]);
    }
    collect_garbage(&socket, &ns);
    ctr(&socket, "default", &["namespaces", "rm", &ns]);
}

/// Awaits every task, in order.
async fn futures_join<T>(
    tasks: impl Iterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<Result<T, tokio::task::JoinError>> {
    let tasks: Vec<_> = tasks.collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await);
    }
    out
}

/// Every blob a single-manifest layout's root reaches.
fn reachable_single(layout: &Layout) -> Vec<Digest> {
    let (root, manifest) = layout.root().unwrap();
    let mut all = vec![root.digest];
    all.extend(manifest.config().map(|c| c.digest));
    all.extend(manifest.layers().into_iter().map(|l| l.digest));
    all
}
