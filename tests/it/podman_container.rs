//! `podman-container://NAME`: kiln reaches a buildkitd inside a podman
//! container through `podman exec -i NAME buildctl dial-stdio`, as BuildKit's
//! `connhelper/podmancontainer` does. The harness runs that buildkitd in the
//! container `KILN_TEST_PODMAN_BUILDKIT`, in podman storage of its own
//! (`CONTAINERS_CONF`/`CONTAINERS_STORAGE_CONF` from its env file point the
//! podman CLI there).
//!
//! These tests run in the `buildkitd` row only: the podman container is one
//! daemon, the same whichever row the suite runs for, so running them in the
//! four rows would build the same thing four times on the same buildkitd
//! (and the rows run at once on two cores) without testing anything more.

use std::process::Command;

use kiln_test_support::DaemonKind;

use crate::build::{build_args_at, json_blob, layer_files, manifests, sample_module, unpack_oci};
use crate::common::*;

/// The row that runs these tests (see the module docs).
const ROW: DaemonKind = DaemonKind::Buildkitd;

/// Whether this row runs the podman tests; prints why not when it does not.
fn this_row() -> bool {
    if daemon().kind == ROW {
        return true;
    }
    eprintln!(
        "skipped on {}: the podman container's buildkitd is the same in every row; it is tested in the {ROW} row",
        daemon().kind
    );
    false
}

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// A `KILN_TEST_PODMAN*` value. Without it: a failure in CI, a line saying
/// what is missing elsewhere (`None`).
fn podman_var(name: &str) -> Option<String> {
    let v = harness().var(name);
    if v.is_none() {
        assert!(
            !ci(),
            "CI=true but {name} is not set: the harness must run podman and the buildkitd in it \
             (`./scripts/harness.sh up` with podman in KILN_HARNESS_DAEMONS and ../shared/buildkit present)"
        );
        eprintln!(
            "skipped: {name} is not set (the harness runs no podman{}); `./scripts/harness.sh up` starts it",
            if name == "KILN_TEST_PODMAN_BUILDKIT" {
                " buildkitd: ../shared/buildkit is missing?"
            } else {
                ""
            }
        );
    }
    v
}

/// The podman configuration the harness wrote, for a child process: from
/// the environment (`scripts/test.sh` sources the env file) or the env file.
fn podman_env() -> Vec<(String, String)> {
    ["CONTAINERS_CONF", "CONTAINERS_STORAGE_CONF"]
        .into_iter()
        .filter_map(|k| {
            std::env::var(k)
                .ok()
                .filter(|v| !v.is_empty())
                .or_else(|| harness().var(k))
                .map(|v| (k.to_string(), v))
        })
        .collect()
}

/// `kiln` with the harness's podman configuration.
fn kiln_podman() -> tokio::process::Command {
    let mut c = kiln();
    c.envs(podman_env());
    c
}

/// The podman CLI on the harness's storage.
fn podman(args: &[&str]) -> std::process::Output {
    Command::new("podman")
        .envs(podman_env())
        .args(args)
        .output()
        .expect("podman CLI")
}

#[tokio::test(flavor = "multi_thread")]
async fn go_build_through_podman_container() {
    if !this_row() {
        return;
    }
    let Some(container) = podman_var("KILN_TEST_PODMAN_BUILDKIT") else {
        return;
    };
    let addr = format!("podman-container://{container}");
    let h = harness();
    let sessions_before = exec_sessions(&container);

    // kiln info names the address and the daemon in the container.
    let r = run(
        kiln_podman(),
        &["--addr", &addr, "info", "--format", "json"],
    )
    .await;
    assert_info(&r, &addr);

    // The standard Go build, to an OCI layout tarball.
    let tmp = tempfile::tempdir().unwrap();
    let m = unique();
    let dir = sample_module(tmp.path(), &m);
    let oci = tmp.path().join("svc.oci.tar");
    let args = build_args_at(
        vec!["--addr".into(), addr.clone()],
        &dir,
        &[
            "-o",
            &format!("type=oci,dest={}", oci.display()),
            "--progress",
            "plain",
        ],
    );
    let r = run_owned(kiln_podman(), &args).await;
    r.success();
    let digest = r.stdout.trim();
    assert!(digest.starts_with("sha256:"), "{}", r.stdout);

    // One linux/amd64 manifest: the base's layer and /app/bin's.
    let lay = tmp.path().join("layout");
    let index = unpack_oci(&oci, &lay);
    let ms = manifests(&lay, &index);
    assert_eq!(ms.len(), 1, "{index}");
    let (platform, manifest) = &ms[0];
    assert_eq!(platform, "linux/amd64");
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(
        layers.len(),
        2,
        "base layer + the binary's layer: {manifest}"
    );
    let mut app: Vec<String> = layer_files(&lay, layers[1]["digest"].as_str().unwrap())
        .into_iter()
        .map(|s| s.trim_start_matches("./").to_string())
        .filter(|s| !s.is_empty())
        .collect();
    app.sort();
    assert_eq!(
        app,
        ["app", "app/bin"],
        "the second layer holds only /app/bin"
    );
    let cfg = json_blob(&lay, manifest["config"]["digest"].as_str().unwrap());
    assert_eq!(cfg["config"]["Entrypoint"], serde_json::json!(["/app/bin"]));
    assert_eq!(
        cfg["config"]["Labels"]["org.opencontainers.image.base.name"],
        h.static_image.as_str()
    );

    // The image runs, in podman itself, and prints what the module says.
    let out = podman(&[
        "run",
        "--rm",
        "--network",
        "none",
        &format!("oci-archive:{}", oci.display()),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "podman run oci-archive:{}: {}",
        oci.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&format!("greetings, {m}")), "{stdout}");
    assert!(stdout.contains("share memory by communicating"), "{stdout}");
    // podman keeps the image it ran, by its config digest: drop it.
    let id = cfg_id(manifest);
    let _ = podman(&["rmi", "--force", &id]);

    // Every `podman exec` kiln started has ended its session: killed
    // instead of seeing its input close, it leaves `buildctl dial-stdio`
    // running in the container and the session in podman's records.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let left: Vec<String> = exec_sessions(&container)
            .into_iter()
            .filter(|id| !sessions_before.contains(id))
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "exec sessions kiln opened in {container} are still there 15 s after kiln exited: {left:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// The ids of the container's exec sessions (running, or left behind by a
/// killed `podman exec`).
fn exec_sessions(container: &str) -> Vec<String> {
    let out = podman(&["container", "inspect", "-f", "{{json .ExecIDs}}", container]);
    assert!(
        out.status.success(),
        "podman container inspect {container}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Option<Vec<String>>>(&out.stdout)
        .unwrap_or_else(|e| {
            panic!(
                "podman's ExecIDs ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
        .unwrap_or_default()
}

/// The image id podman gives an image: its config's digest, without `sha256:`.
fn cfg_id(manifest: &serde_json::Value) -> String {
    manifest["config"]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_podman_container_is_a_clear_error() {
    if !this_row() {
        return;
    }
    if podman_var("KILN_TEST_PODMAN").is_none() {
        return;
    }
    let name = format!("kiln-no-such-container-{}", unique());
    let addr = format!("podman-container://{name}");
    let r = run(kiln_podman(), &["--addr", &addr, "info"]).await;
    r.failure();
    // The error names the address and passes on what podman exec said.
    assert!(r.stderr.contains(&addr), "{}", r.stderr);
    assert!(
        r.stderr
            .contains(&format!("no container with name or ID \"{name}\" found")),
        "podman exec's stderr is in the error: {}",
        r.stderr
    );
    assert_eq!(
        r.stderr.matches("error:").count(),
        1,
        "one error: {}",
        r.stderr
    );
}
