use std::path::Path;

use super::*;

#[test]
fn a_missing_namespace_names_the_existing_ones_and_the_fix() {
    let socket = Path::new("/run/k3s/containerd/containerd.sock");
    let e = namespace_check(socket, "k8s-io", vec!["default".into(), "k8s.io".into()])
        .expect_err("missing");
    assert_eq!(
        e.to_string(),
        "containerd at /run/k3s/containerd/containerd.sock has no namespace \"k8s-io\" \
         (it has: default, k8s.io): create it with \
         `ctr -a /run/k3s/containerd/containerd.sock namespaces create k8s-io`, \
         or pass namespace= of an existing one"
    );
    let e = namespace_check(socket, "builds", Vec::new()).expect_err("none at all");
    assert!(e.to_string().contains("(it has: none)"), "{e}");
    namespace_check(socket, "k8s.io", vec!["k8s.io".into()]).expect("exists");
    // A fresh containerd lists no namespace until one is used.
    namespace_check(socket, "default", Vec::new()).expect("default");
}

#[test]
fn only_k8s_io_images_are_labelled_for_cri() {
    assert_eq!(
        image_labels("k8s.io"),
        HashMap::from([("io.cri-containerd.image".to_string(), "managed".to_string())])
    );
    assert!(image_labels("default").is_empty());
    assert!(image_labels("k8s.io.x").is_empty());
}

#[test]
fn socket_errors_say_what_to_do() {
    let e = ContainerdError::NoSocket {
        socket: "/run/containerd/containerd.sock".into(),
    };
    assert_eq!(
        e.to_string(),
        "no containerd socket at /run/containerd/containerd.sock: is containerd running? \
         pass address=/path/to/containerd.sock \
         (k3s: address=/run/k3s/containerd/containerd.sock, namespace=k8s.io)"
    );
    let e = ContainerdError::PermissionDenied {
        socket: "/run/containerd/containerd.sock".into(),
    };
    assert!(
        e.to_string()
            .starts_with("permission denied on /run/containerd/containerd.sock: run as root"),
        "{e}"
    );
}

#[tokio::test]
async fn a_missing_or_dead_socket_is_told_apart() {
    let tmp = tempfile::tempdir().expect("tmp");
    let missing = tmp.path().join("absent.sock");
    let e = client::probe(&missing).await.expect_err("missing");
    assert!(matches!(e, ContainerdError::NoSocket { .. }), "{e:?}");

    // A socket file nobody listens on any more.
    let dead = tmp.path().join("dead.sock");
    drop(std::os::unix::net::UnixListener::bind(&dead).expect("bind"));
    let e = client::probe(&dead).await.expect_err("dead");
    assert!(matches!(e, ContainerdError::Connect { .. }), "{e:?}");
    assert!(e.to_string().contains("is containerd running?"), "{e}");

    // And load fails the same way before touching anything.
    let containerd = Containerd {
        socket: missing.clone(),
        namespace: "default".into(),
    };
    let layout_path = tmp.path().join("l.tar");
    crate::layout::testing::write_tar(
        &layout_path,
        &crate::layout::testing::layout_files(b"layer", "amd64").files,
    );
    let layout = Layout::open(&layout_path).expect("layout");
    let name = ImageRef::parse("app").expect("name");
    let e = containerd
        .load(&layout, &name)
        .await
        .expect_err("no socket");
    assert!(matches!(e, ContainerdError::NoSocket { .. }), "{e:?}");
}

#[test]
fn chunks_are_full_until_the_end() {
    let data = vec![7u8; CHUNK + 10];
    let mut r: &[u8] = &data;
    assert_eq!(read_chunk(&mut r).expect("1").len(), CHUNK);
    assert_eq!(read_chunk(&mut r).expect("2").len(), 10);
    assert!(read_chunk(&mut r).expect("3").is_empty());
}

#[test]
fn a_socket_this_user_may_not_open_is_permission_denied() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().expect("tmp");
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let socket = tmp.path().join("containerd.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind");
    let root = rustix::process::getuid().is_root();
    // containerd's own mode; root may open anything, so the check runs on
    // a thread that is `nobody` (thread credentials: the rest of the test
    // process stays root).
    let mode = if root { 0o660 } else { 0o000 };
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(mode)).expect("chmod");
    let probed = socket.clone();
    let e = std::thread::spawn(move || {
        if root {
            let nobody_gid = rustix::process::Gid::from_raw(65534);
            let nobody_uid = rustix::process::Uid::from_raw(65534);
            rustix::thread::set_thread_groups(&[]).expect("groups");
            rustix::thread::set_thread_res_gid(nobody_gid, nobody_gid, nobody_gid).expect("gid");
            rustix::thread::set_thread_res_uid(nobody_uid, nobody_uid, nobody_uid).expect("uid");
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(client::probe(&probed))
    })
    .join()
    .expect("thread")
    .expect_err("EACCES");
    assert!(
        matches!(e, ContainerdError::PermissionDenied { .. }),
        "{e:?}"
    );
    assert!(
        e.to_string().starts_with(&format!(
            "permission denied on {}: run as root",
            socket.display()
        )),
        "{e}"
    );
}
