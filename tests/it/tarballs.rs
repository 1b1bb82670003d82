//! Tarballs that import everywhere (the seed's last step): `-o
//! type=docker|oci,dest=F.tar.gz` writes gzip, which `k3s ctr images
//! import` (containerd's `ctr`) takes, every platform of it.

use crate::build::{kiln_build, sample_module};
use crate::common::*;
use crate::containerd::ctr_output as ctr;
use crate::stores::{is_gzip, kiln_leftovers, ok};

/// The seed's flow with kiln's output: an arm64 image for a k3s node as a
/// gzip docker tarball (`scp` it, then `k3s ctr images import`); here
/// containerd's own `ctr` on an amd64 machine, which needs
/// `--platform linux/arm64` (on the arm64 node the plain import takes it).
#[tokio::test(flavor = "multi_thread")]
async fn an_arm64_docker_tar_gz_imports_into_containerd() {
    let Some(socket) = harness_socket("KILN_TEST_CONTAINERD", "containerd") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let m = unique();
    let dir = sample_module(tmp.path(), &format!("gz-{m}"));
    let file = tmp.path().join("app-arm64.tar.gz");
    let name = format!("kiln-test/seed-{m}:arm64");
    kiln_build(
        &dir,
        &[
            "--platform",
            "linux/arm64",
            "-t",
            &name,
            "-o",
            &format!("type=docker,dest={}", file.display()),
        ],
    )
    .await
    .success();
    assert!(is_gzip(&file), "a .tar.gz is gzip");
    assert_eq!(kiln_leftovers(tmp.path()), Vec::<String>::new());
    let line = import(
        &socket,
        &format!("kiln-test-{m}"),
        &["--platform", "linux/arm64"],
        &file,
        &format!("seed-{m}:arm64"),
    );
    assert!(line.contains("linux/arm64"), "{line}");
}

/// `ctr images import FLAGS FILE` into namespace `ns`, then the line of
/// `ctr images ls` naming `image`.
fn import(
    socket: &std::path::Path,
    ns: &str,
    flags: &[&str],
    file: &std::path::Path,
    image: &str,
) -> String {
    let file = file.display().to_string();
    let mut args = vec!["images", "import"];
    args.extend(flags);
    args.push(&file);
    ok(&ctr(socket, ns, &args), &format!("ctr {}", args.join(" ")));
    let ls = ok(&ctr(socket, ns, &["images", "ls"]), "ctr images ls");
    ls.lines()
        .find(|l| l.contains(image))
        .unwrap_or_else(|| panic!("{image} is not listed:\n{ls}"))
        .to_string()
}

/// A two-platform OCI tarball, gzip: `ctr images import --all-platforms`
/// keeps both (the plain import picks the host's only, containerd issues
/// 6441 and 10032). Docker's classic store holds one platform per image
/// and cannot write it (refused, tested in build.rs).
#[tokio::test(flavor = "multi_thread")]
async fn a_two_platform_oci_tar_gz_imports_with_every_platform() {
    if daemon().kind == kiln_test_support::DaemonKind::DockerClassic {
        eprintln!("the classic image store cannot export a multi-platform image");
        return;
    }
    let Some(socket) = harness_socket("KILN_TEST_CONTAINERD", "containerd") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let m = unique();
    let dir = sample_module(tmp.path(), &format!("gz2-{m}"));
    let file = tmp.path().join("app.tar.gz");
    let name = format!("kiln-test/multi-{m}:1");
    kiln_build(
        &dir,
        &[
            "--platform",
            "linux/amd64,linux/arm64",
            "-o",
            &format!("type=oci,dest={},name={name}", file.display()),
        ],
    )
    .await
    .success();
    assert!(is_gzip(&file), "a .tar.gz is gzip");
    let line = import(
        &socket,
        &format!("kiln-test-{m}"),
        &["--all-platforms"],
        &file,
        &format!("multi-{m}:1"),
    );
    assert!(
        line.contains("linux/amd64") && line.contains("linux/arm64"),
        "{line}"
    );
}
