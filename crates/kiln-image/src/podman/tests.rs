//! Unit tests: where the socket is, the per-platform archives, names, the
//! list check and the error messages. The loads themselves are tested
//! against a real podman in `tests/it/podman.rs`.

use std::collections::BTreeSet;
use std::path::Path;

use super::archive::PlatformImage;
use super::fake;
use super::*;
use crate::layout::testing::{blob, entries, index_of, layout_files, write_tar};
use crate::manifest::Descriptor;
use crate::media_type;

#[test]
fn errors_stay_small() {
    assert!(std::mem::size_of::<PodmanError>() <= 128);
}

#[test]
fn the_socket_is_the_address_else_container_host_else_roots_or_the_users() {
    let run = Some(Path::new("/run/user/1000"));
    let at = |a: Option<&str>, host: Option<&str>, euid: u32, dir: Option<&Path>| {
        socket_for(a, host, euid, dir)
    };
    // An address wins, in either spelling.
    assert_eq!(
        at(Some("unix:///tmp/p.sock"), Some("unix:///c.sock"), 0, run).unwrap(),
        Path::new("/tmp/p.sock")
    );
    assert_eq!(
        at(Some("/tmp/p.sock"), None, 1000, None).unwrap(),
        Path::new("/tmp/p.sock")
    );
    // Then CONTAINER_HOST, for root and users alike; an empty one is unset.
    for euid in [0, 1000] {
        assert_eq!(
            at(None, Some("unix:///c/podman.sock"), euid, run).unwrap(),
            Path::new("/c/podman.sock")
        );
    }
    assert_eq!(at(None, Some(""), 0, run).unwrap(), Path::new(ROOT_SOCKET));
    // Root's service, else the user's under XDG_RUNTIME_DIR.
    assert_eq!(
        at(None, None, 0, run).unwrap(),
        Path::new("/run/podman/podman.sock")
    );
    assert_eq!(
        at(None, None, 1000, run).unwrap(),
        Path::new("/run/user/1000/podman/podman.sock")
    );
    let e = at(None, None, 1000, None).unwrap_err();
    assert!(matches!(e, PodmanError::NoRuntimeDir), "{e:?}");
    assert!(e.to_string().contains("XDG_RUNTIME_DIR"), "{e}");
    let e = at(None, None, 1000, Some(Path::new(""))).unwrap_err();
    assert!(matches!(e, PodmanError::NoRuntimeDir), "{e:?}");

    // Anything but a unix socket is refused, saying where it came from.
    let e = at(
        None,
        Some("ssh://core@host:22/run/podman/podman.sock"),
        0,
        run,
    )
    .unwrap_err();
    assert!(
        matches!(&e, PodmanError::UnsupportedAddress { from_env: true, .. }),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(text.contains("(from CONTAINER_HOST)"), "{text}");
    assert!(text.contains("unix:///path/to/podman.sock"), "{text}");
    for bad in [
        "tcp://127.0.0.1:8080",
        "unix://relative.sock",
        "podman.sock",
        "",
    ] {
        let e = at(Some(bad), None, 0, run).unwrap_err();
        assert!(
            matches!(
                &e,
                PodmanError::UnsupportedAddress {
                    from_env: false,
                    ..
                }
            ),
            "{bad}: {e:?}"
        );
        assert!(!e.to_string().contains("CONTAINER_HOST"), "{e}");
    }
}

#[test]
fn from_env_takes_an_address_as_given() {
    let p = Podman::from_env(Some("unix:///tmp/kiln-test/podman.sock")).unwrap();
    assert_eq!(p.socket, Path::new("/tmp/kiln-test/podman.sock"));
    assert!(Podman::from_env(Some("tcp://localhost:1")).is_err());
}

/// A layout tarball whose index lists an amd64 and an arm64 image, sharing
/// nothing, each with an unreferenced blob beside it.
fn multi_layout(dir: &Path) -> (std::path::PathBuf, Descriptor, Descriptor) {
    let mut files = layout_files(b"amd-layer", "amd64");
    let amd = files.root.clone();
    let arm = layout_files(b"arm-layer", "arm64");
    files.files.extend(
        arm.files
            .iter()
            .filter(|(p, _)| p.starts_with("blobs/"))
            .cloned(),
    );
    let index = index_of(&[(amd.clone(), "amd64"), (arm.root.clone(), "arm64")]);
    let index_digest = blob(&mut files.files, index.clone());
    files.set_index_json(&index_digest, media_type::OCI_INDEX, index.len());
    let path = dir.join("multi.tar");
    write_tar(&path, &files.files);
    (path, amd, arm.root)
}

#[test]
fn each_platform_becomes_an_archive_of_its_own_image_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let (path, amd, arm) = multi_layout(tmp.path());
    let layout = Layout::open(&path).unwrap();
    let images = layout.images().unwrap();
    assert_eq!(images.len(), 2);
    let arm_image = PlatformImage::read(&layout, &images[1]).unwrap();
    assert_eq!(arm_image.platform, Platform::linux_arm64());
    assert_eq!(arm_image.descriptor.digest, arm.digest);

    let out = tmp.path().join("arm.tar");
    arm_image
        .write(
            &layout,
            "localhost/kiln-load-x:linux-arm64",
            std::fs::File::create(&out).unwrap(),
        )
        .unwrap();
    let files = entries(&out);
    // The marker, an index of the arm64 manifest alone, and its three blobs:
    // not amd64's, not the unreferenced ones.
    let arm_layer = Digest::sha256_of(b"arm-layer");
    let blobs: Vec<&String> = files.keys().filter(|p| p.starts_with("blobs/")).collect();
    assert_eq!(blobs.len(), 3, "{blobs:?}");
    assert!(files.contains_key(&crate::layout::blob_path(&arm.digest)));
    assert!(files.contains_key(&crate::layout::blob_path(&arm_layer)));
    assert!(!files.contains_key(&crate::layout::blob_path(&amd.digest)));
    assert!(!files.contains_key(&crate::layout::blob_path(&Digest::sha256_of(b"amd-layer"))));
    assert_eq!(files["oci-layout"], crate::layout::OCI_LAYOUT_CONTENT);
    let index: serde_json::Value = serde_json::from_slice(&files["index.json"]).unwrap();
    assert_eq!(index["mediaType"], media_type::OCI_INDEX);
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["digest"], arm.digest.to_string());
    assert_eq!(entries[0]["mediaType"], media_type::OCI_MANIFEST);
    assert_eq!(entries[0]["size"], arm.size);
    assert_eq!(
        entries[0]["platform"],
        serde_json::json!({"architecture": "arm64", "os": "linux"})
    );
    // Named by both annotations podman reads a name from.
    assert_eq!(
        entries[0]["annotations"],
        serde_json::json!({
            "io.containerd.image.name": "localhost/kiln-load-x:linux-arm64",
            "org.opencontainers.image.ref.name": "localhost/kiln-load-x:linux-arm64",
        })
    );

    // It is a layout of its own: one image, arm64, with its config.
    let single = Layout::open(&out).unwrap();
    let only = single.images().unwrap();
    assert_eq!(only.len(), 1);
    assert_eq!(only[0].platform, Some(Platform::linux_arm64()));
    let img = single.image(&Platform::linux_arm64()).unwrap();
    assert_eq!(img.config.architecture().to_string(), "arm64");
    assert_eq!(img.manifest.layers()[0].digest, arm_layer);
}

#[test]
fn a_single_manifest_layout_gives_one_image() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("single.tar");
    let files = layout_files(b"layer", "amd64");
    write_tar(&path, &files.files);
    let layout = Layout::open(&path).unwrap();
    let images = layout.images().unwrap();
    assert_eq!(images.len(), 1);
    let image = PlatformImage::read(&layout, &images[0]).unwrap();
    assert_eq!(image.platform, Platform::linux_amd64());
    let mut out = Vec::new();
    image.write(&layout, "n:t", &mut out).unwrap();
    let tar_path = tmp.path().join("out.tar");
    std::fs::write(&tar_path, &out).unwrap();
    assert_eq!(
        entries(&tar_path)
            .keys()
            .filter(|p| p.starts_with("blobs/"))
            .count(),
        3
    );
}

#[test]
fn a_damaged_or_missing_blob_stops_the_archive() {
    let tmp = tempfile::tempdir().unwrap();
    // The layer's bytes changed, under its old digest.
    let mut files = layout_files(b"the layer", "amd64");
    let layer = crate::layout::blob_path(&Digest::sha256_of(b"the layer"));
    for (p, data) in &mut files.files {
        if *p == layer {
            *data = b"the layeR".to_vec();
        }
    }
    let path = tmp.path().join("damaged.tar");
    write_tar(&path, &files.files);
    let layout = Layout::open(&path).unwrap();
    let image = PlatformImage::read(&layout, &layout.images().unwrap()[0]).unwrap();
    let e = image.write(&layout, "n:t", Vec::new()).unwrap_err();
    assert!(matches!(e, LayoutError::DigestMismatch { .. }), "{e:?}");

    // The layer is not there at all: found before anything is sent.
    files.files.retain(|(p, _)| *p != layer);
    write_tar(&path, &files.files);
    let layout = Layout::open(&path).unwrap();
    let e = PlatformImage::read(&layout, &layout.images().unwrap()[0]).unwrap_err();
    assert!(
        matches!(&e, LayoutError::MissingBlob { digest, .. } if *digest == Digest::sha256_of(b"the layer")),
        "{e:?}"
    );
}

#[test]
fn an_aborted_archive_ends_its_body_with_an_error() {
    let (tx, mut rx) = mpsc::channel(64);
    let w = std::thread::spawn(move || {
        let mut w = ChannelWriter::new(tx, super::Stop::default());
        std::io::Write::write_all(&mut w, &[7u8; 300 * 1024]).unwrap();
        w.abort();
    });
    w.join().unwrap();
    let mut chunks = Vec::new();
    while let Ok(c) = rx.try_recv() {
        chunks.push(c);
    }
    assert!(chunks.len() >= 2, "{}", chunks.len());
    assert!(chunks[0].is_ok());
    assert!(
        chunks.last().unwrap().is_err(),
        "the body must not end cleanly"
    );
}

#[test]
fn loaded_ids_and_temporary_tags() {
    let id = "0123456789abcdef".repeat(4);
    assert_eq!(as_id(&format!("sha256:{id}")), Some(id.as_str()));
    assert_eq!(as_id(&id), None);
    assert_eq!(as_id("sha256:0123"), None);
    assert_eq!(as_id("localhost/kiln-load-x:linux-amd64"), None);
    assert_eq!(platform_tag(&Platform::linux_amd64()), "linux-amd64");
    assert_eq!(
        platform_tag(&Platform::parse("linux/arm/v6").unwrap()),
        "linux-arm-v6"
    );
}

#[test]
fn names_are_tags_and_each_platform_gets_its_own() {
    let t = Target::new(&ImageRef::parse("app").unwrap()).unwrap();
    assert_eq!(t.full(), "docker.io/library/app:latest");
    assert_eq!(t.repo, "docker.io/library/app");
    assert_eq!(
        t.instance_tag(&Platform::linux_arm64()).unwrap(),
        "latest-linux-arm64"
    );
    assert_eq!(
        t.instance_tag(&Platform::parse("linux/arm/v7").unwrap())
            .unwrap(),
        "latest-linux-arm-v7"
    );
    let t = Target::new(&ImageRef::parse("localhost:5000/team/app:v1.2").unwrap()).unwrap();
    assert_eq!(t.full(), "localhost:5000/team/app:v1.2");

    // A digest: refused before anything is sent, saying what to type.
    let pinned = ImageRef::parse("app:v1")
        .unwrap()
        .with_digest(Digest::sha256_of(b"m"));
    let e = Target::new(&pinned).unwrap_err();
    assert!(matches!(e, PodmanError::NameHasDigest { .. }), "{e:?}");
    let text = e.to_string();
    assert!(text.contains("`-t app:v1`"), "{text}");
    assert!(text.contains("has a digest"), "{text}");

    // A tag that leaves no room for the platform.
    let long = "t".repeat(120);
    let t = Target::new(&ImageRef::parse(&format!("app:{long}")).unwrap()).unwrap();
    let e = t.instance_tag(&Platform::linux_arm64()).unwrap_err();
    assert!(matches!(e, PodmanError::InstanceTag { .. }), "{e:?}");
    assert!(e.to_string().contains("use a shorter tag"), "{e}");
    assert!(e.to_string().contains("linux/arm64"), "{e}");
}

fn image(digest: &Digest, platform: &str) -> PlatformImage {
    let platform = Platform::parse(platform).unwrap();
    PlatformImage {
        descriptor: Descriptor {
            media_type: media_type::OCI_MANIFEST.into(),
            digest: digest.clone(),
            size: 1,
            platform: Some(platform.clone()),
        },
        platform,
        blobs: BTreeSet::new(),
    }
}

#[test]
fn the_list_must_list_each_image_with_its_platform() {
    let (a, b) = (Digest::sha256_of(b"a"), Digest::sha256_of(b"b"));
    let images = [image(&a, "linux/amd64"), image(&b, "linux/arm/v7")];
    let list = |entries: &[(&Digest, serde_json::Value)]| {
        let manifests: Vec<serde_json::Value> = entries
            .iter()
            .map(|(d, p)| serde_json::json!({"mediaType": media_type::OCI_MANIFEST, "size": 1, "digest": d.to_string(), "platform": p}))
            .collect();
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_type::DOCKER_MANIFEST_LIST,
            "manifests": manifests,
        }))
        .unwrap()
    };
    let amd = serde_json::json!({"architecture": "amd64", "os": "linux"});
    let arm = serde_json::json!({"architecture": "arm", "os": "linux", "variant": "v7"});
    check_list(
        &list(&[(&b, arm.clone()), (&a, amd.clone())]),
        &images,
        "app",
    )
    .unwrap();

    let e = check_list(&list(&[(&a, amd.clone())]), &images, "app").unwrap_err();
    assert!(matches!(e, PodmanError::ListMismatch { .. }), "{e:?}");
    assert!(
        e.to_string().contains("lists 1 images, kiln loaded 2"),
        "{e}"
    );
    let e = check_list(
        &list(&[(&a, amd.clone()), (&a, amd.clone())]),
        &images,
        "app",
    )
    .unwrap_err();
    assert!(e.to_string().contains("no linux/arm/v7 image"), "{e}");
    let arm_no_variant = serde_json::json!({"architecture": "arm", "os": "linux"});
    let e = check_list(&list(&[(&a, amd), (&b, arm_no_variant)]), &images, "app");
    // `linux/arm` normalises to `linux/arm/v7`: the same platform.
    assert!(e.is_ok(), "{e:?}");
    let e = check_list(b"{}", &images, "app").unwrap_err();
    assert!(e.to_string().contains("lists 0 images"), "{e}");
    let e = check_list(
        &list(&[
            (
                &a,
                serde_json::json!({"architecture": "arm64", "os": "linux"}),
            ),
            (&b, arm),
        ]),
        &images,
        "docker.io/library/app:latest",
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("podman's manifest list for docker.io/library/app:latest does not list what kiln loaded: the linux/amd64 image {a} is listed for linux/arm64")
    );
}

#[test]
fn the_lists_digest_is_the_stored_lists() {
    let (first, stored) = (Digest::sha256_of(b"empty list"), Digest::sha256_of(b"list"));
    let listed = ListedImage {
        id: "0".repeat(64),
        names: Some(vec!["docker.io/library/app:latest".into()]),
        digest: first.to_string(),
        repo_digests: Some(vec![
            format!("docker.io/library/app@{first}"),
            format!("docker.io/library/app@{stored}"),
            format!("docker.io/library/other@{}", Digest::sha256_of(b"x")),
        ]),
    };
    assert_eq!(
        list_digest(&listed, "docker.io/library/app").unwrap(),
        stored
    );
    let only = ListedImage {
        repo_digests: Some(vec![format!("docker.io/library/app@{first}")]),
        ..listed.clone()
    };
    assert_eq!(list_digest(&only, "docker.io/library/app").unwrap(), first);
    let none = ListedImage {
        repo_digests: None,
        ..listed
    };
    assert_eq!(list_digest(&none, "docker.io/library/app").unwrap(), first);
}

#[test]
fn messages_say_what_to_do() {
    let e = PodmanError::Connect {
        socket: "/run/user/1000/podman/podman.sock".into(),
        source: std::io::Error::from(std::io::ErrorKind::NotFound),
    };
    let text = e.to_string();
    for want in [
        "/run/user/1000/podman/podman.sock",
        "systemctl --user start podman.socket",
        "podman system service --time=0 unix:///run/user/1000/podman/podman.sock",
        "address=unix:///path",
    ] {
        assert!(text.contains(want), "{want}: {text}");
    }
    let e = PodmanError::Leftovers {
        source: Box::new(PodmanError::Refused {
            action: "load the linux/arm64 image".into(),
            status: 500,
            message: "no space left on device".into(),
        }),
        leftovers: vec![
            "0123456789ab".into(),
            "localhost/kiln-load-x:linux-amd64".into(),
        ],
        lists: vec!["localhost/kiln-load-x:list".into()],
        problems: vec!["podman refused to remove image 0123456789ab (HTTP 409): image is in use by a container".into()],
    };
    let text = e.to_string();
    assert!(
        text.contains("`podman manifest rm localhost/kiln-load-x:list` and `podman rmi 0123456789ab localhost/kiln-load-x:linux-amd64`"),
        "{text}"
    );
    assert!(text.contains("image is in use by a container"), "{text}");
    let source = std::error::Error::source(&e).unwrap().to_string();
    assert!(source.contains("no space left on device"), "{source}");
}

#[tokio::test]
async fn a_late_failure_gives_the_names_back_and_removes_what_was_added() {
    let tmp = tempfile::tempdir().unwrap();
    let (path, _, _) = multi_layout(tmp.path());
    let layout = Layout::open(&path).unwrap();
    let sock = tmp.path().join("podman.sock");
    // `app` is a list from an earlier build, and so is its amd64 image's
    // name; the arm64 one has none yet. Every step works until the
    // temporary names are taken off: the very end.
    let (old_list, old_amd) = ("1".repeat(64), "2".repeat(64));
    let fake = fake::start(
        &sock,
        vec![
            (
                old_list.clone(),
                vec!["docker.io/library/app:latest".into()],
            ),
            (
                old_amd.clone(),
                vec!["docker.io/library/app:latest-linux-amd64".into()],
            ),
        ],
        |call| call.contains("/untag?repo=localhost/kiln-load-"),
    );
    let e = Podman {
        socket: sock.clone(),
    }
    .load(&layout, &ImageRef::parse("app").unwrap())
    .await
    .unwrap_err();
    assert!(
        matches!(&e, PodmanError::Refused { message, .. } if message == "boom"),
        "{e:?}"
    );

    let calls = fake.calls();
    let temp = calls
        .iter()
        .find_map(|c| c.strip_prefix("POST /manifests/"))
        .and_then(|n| n.strip_suffix(":list"))
        .expect("a temporary list")
        .to_string();
    let (amd, arm, list) = (
        fake::id(&format!("{temp}:linux-amd64")),
        fake::id(&format!("{temp}:linux-arm64")),
        fake::id(&format!("{temp}:list")),
    );
    let failed = calls
        .iter()
        .position(|c| c.starts_with(&format!("POST /images/{amd}/untag?repo={temp}")))
        .expect("the failing step");
    // Undone in reverse: `app` back to the old list, the amd64 name back to
    // the old image, the arm64 name taken off; the list and both images
    // (which were not there before) removed by their temporary names.
    assert_eq!(
        calls[failed + 1..],
        [
            format!("POST /images/{old_list}/tag?repo=docker.io/library/app&tag=latest"),
            format!("POST /images/{arm}/untag?repo=docker.io/library/app&tag=latest-linux-arm64"),
            format!("POST /images/{old_amd}/tag?repo=docker.io/library/app&tag=latest-linux-amd64"),
            format!("DELETE /manifests/{temp}:list"),
            format!("DELETE /images/{temp}:linux-arm64"),
            format!("DELETE /images/{temp}:linux-amd64"),
        ]
    );
    // And before that: the new names went to the new images and list.
    for want in [
        format!("POST /images/{amd}/tag?repo=docker.io/library/app&tag=latest-linux-amd64"),
        format!("POST /images/{arm}/tag?repo=docker.io/library/app&tag=latest-linux-arm64"),
        format!("POST /images/{list}/tag?repo=docker.io/library/app&tag=latest"),
    ] {
        assert!(calls[..failed].contains(&want), "{want}: {calls:#?}");
    }
}

#[tokio::test]
async fn undoing_that_fails_names_what_is_left() {
    let tmp = tempfile::tempdir().unwrap();
    let (path, _, _) = multi_layout(tmp.path());
    let layout = Layout::open(&path).unwrap();
    let sock = tmp.path().join("podman.sock");
    // The list cannot be made, and the images loaded cannot be removed.
    let _fake = fake::start(&sock, Vec::new(), |call| {
        call.starts_with("POST /manifests/") || call.starts_with("DELETE /images/")
    });
    let e = Podman { socket: sock }
        .load(&layout, &ImageRef::parse("app").unwrap())
        .await
        .unwrap_err();
    let PodmanError::Leftovers {
        source,
        leftovers,
        lists,
        problems,
    } = &e
    else {
        panic!("{e:?}")
    };
    assert!(
        source.to_string().contains("create the manifest list"),
        "{source}"
    );
    assert_eq!(leftovers.len(), 2, "{leftovers:?}");
    assert!(leftovers[0].ends_with(":linux-arm64"), "{leftovers:?}");
    assert!(leftovers[1].ends_with(":linux-amd64"), "{leftovers:?}");
    assert!(lists.is_empty(), "{lists:?}");
    assert_eq!(problems.len(), 2);
    assert!(
        e.to_string().contains("podman rmi localhost/kiln-load-"),
        "{e}"
    );
}

#[tokio::test]
async fn a_refused_load_is_tried_again_and_a_whole_load_names_everything() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let tmp = tempfile::tempdir().unwrap();
    let (path, _, _) = multi_layout(tmp.path());
    let layout = Layout::open(&path).unwrap();
    let sock = tmp.path().join("podman.sock");
    // The first load is refused (as podman 4 does when a layer it reuses
    // goes meanwhile); the second goes through.
    let loads = AtomicUsize::new(0);
    let fake = fake::start(&sock, Vec::new(), move |call| {
        call == "POST /images/load" && loads.fetch_add(1, Ordering::SeqCst) == 0
    });
    let loaded = Podman { socket: sock }
        .load(&layout, &ImageRef::parse("app:v1").unwrap())
        .await
        .unwrap();
    assert_eq!(loaded.name, "docker.io/library/app:v1");
    assert_eq!(
        loaded.platforms,
        [Platform::linux_amd64(), Platform::linux_arm64()]
    );
    let calls = fake.calls();
    assert_eq!(
        calls.iter().filter(|c| *c == "POST /images/load").count(),
        3,
        "{calls:#?}"
    );
    let temp = calls
        .iter()
        .find_map(|c| c.strip_prefix("POST /manifests/"))
        .and_then(|n| n.strip_suffix(":list"))
        .expect("a temporary list")
        .to_string();
    let (amd_id, arm_id, list) = (
        fake::id(&format!("{temp}:linux-amd64")),
        fake::id(&format!("{temp}:linux-arm64")),
        fake::id(&format!("{temp}:list")),
    );
    // The list is made of the two images, named, and the temporary names
    // go last; nothing is removed.
    let add = calls
        .iter()
        .position(|c| *c == format!("PUT /manifests/{temp}:list"))
        .expect("images added to the list");
    let tail: Vec<&str> = calls[add + 2..]
        .iter()
        .map(String::as_str)
        .filter(|c| !c.starts_with("GET /images/json"))
        .collect();
    assert_eq!(
        tail,
        [
            format!("POST /images/{amd_id}/tag?repo=docker.io/library/app&tag=v1-linux-amd64"),
            format!("POST /images/{arm_id}/tag?repo=docker.io/library/app&tag=v1-linux-arm64"),
            format!("POST /images/{list}/tag?repo=docker.io/library/app&tag=v1"),
            format!("POST /images/{amd_id}/untag?repo={temp}&tag=linux-amd64"),
            format!("POST /images/{arm_id}/untag?repo={temp}&tag=linux-arm64"),
            format!("DELETE /manifests/{temp}:list"),
        ]
    );
    assert!(
        !calls.iter().any(|c| c.starts_with("DELETE /images/")),
        "{calls:#?}"
    );
}
