//! Two separate processes marshal the same graph to the same bytes: nothing
//! in a definition depends on the process (hash seeds, addresses, time).

use std::process::Command;

use kiln_llb::{
    diff, image, local_with, merge, scratch, Constraints, Copy, ExecOptions, LocalOptions, Mkfile,
    Mount, Platform, SecretMount, State,
};

const CHILD_ENV: &str = "KILN_LLB_DETERMINISM_CHILD";
const MARKER: &str = "KILN-LLB-DEFINITION ";

fn graph() -> State {
    let ctx = local_with(
        "context",
        LocalOptions::new().include_patterns(["go.mod", "go.sum", "**/*.go"]),
    );
    let go = image("golang:1.24")
        .expect("valid")
        .dir("/src")
        .add_env("CGO_ENABLED", "0");
    let build = go.run(
        ExecOptions::shell("go build -trimpath -o /out/app ./cmd/app")
            .mount(Mount::bind("/src", &ctx).readonly())
            .mount(Mount::cache("/root/.cache/go-build", "go-build"))
            .mount(Mount::scratch("/out"))
            .secret(SecretMount::file("netrc", "/root/.netrc"))
            .custom_name("go build"),
    );
    let app = scratch()
        .mkfile(Mkfile::new(
            "/etc/passwd",
            0o644,
            "nobody:x:65534:65534::/:/sbin/nologin\n",
        ))
        .copy(Copy::new(build.get_mount("/out"), "/app", "/app").created_time(0));
    let base = image("alpine:3.20").expect("valid");
    merge(&[base.clone(), diff(&base, &app)])
}

fn definition_hex() -> String {
    let c = Constraints::new(Platform::parse("linux/arm64").expect("platform"));
    hex::encode(graph().marshal(&c).expect("marshal").to_bytes())
}

/// Runs only inside the child processes started below.
#[test]
fn child_prints_its_definition() {
    if std::env::var_os(CHILD_ENV).is_some() {
        println!("{MARKER}{}", definition_hex());
    }
}

#[test]
fn two_processes_produce_identical_bytes() {
    let exe = std::env::current_exe().expect("test binary path");
    let run = || {
        let out = Command::new(&exe)
            .args([
                "--exact",
                "child_prints_its_definition",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, "1")
            .output()
            .expect("run the test binary");
        assert!(
            out.status.success(),
            "child failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        stdout
            .lines()
            .find_map(|l| l.split_once(MARKER).map(|(_, hex)| hex.trim().to_string()))
            .expect("child printed a definition")
    };
    let first = run();
    let second = run();
    assert_eq!(first, second);
    assert_eq!(first, definition_hex(), "and the same as this process");
}
