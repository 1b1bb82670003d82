//! `kiln info` through every transport, against the real daemon.

use crate::common::*;

#[tokio::test]
async fn the_daemon_at_its_own_address() {
    // docker:///…sock, unix:///…buildkitd.sock or tcp://… with mutual TLS.
    let d = daemon();
    let r = kiln_d(&["info", "--format", "json"]).await;
    assert_info(&r, &d.addr);
    assert_eq!(r.json()["address_source"], "flag");
}

#[tokio::test]
async fn buildkitd_plain_tcp() {
    // buildkitd also listens on plain TCP (the harness forwards a port to its socket).
    let d = daemon();
    let Some(tcp) = harness().var("KILN_TEST_BUILDKITD_TCP") else {
        assert!(
            d.kind.is_docker(),
            "the harness wrote no KILN_TEST_BUILDKITD_TCP for {}",
            d.kind
        );
        eprintln!("skipped on {}: no standalone buildkitd set up", d.kind);
        return;
    };
    assert_info(&kiln_at(&tcp, &["info", "--format", "json"]).await, &tcp);
}

#[tokio::test]
async fn docker_default_uses_docker_host() {
    let d = daemon();
    if !d.supports(Need::DockerEngine) {
        return;
    }
    let mut cmd = kiln();
    cmd.env("DOCKER_HOST", d.docker_host());
    let r = run(cmd, &["info", "--format", "json"]).await;
    assert_info(&r, &d.addr);
    assert_eq!(r.json()["address_source"], "default-docker");

    // Text mode says where the address came from.
    let mut cmd = kiln();
    cmd.env("DOCKER_HOST", d.docker_host());
    let r = run(cmd, &["info"]).await;
    r.success();
    assert!(
        r.stdout.contains("default: a Docker Engine answered"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("linux/amd64"), "{}", r.stdout);
}

#[tokio::test]
async fn buildkit_host_env() {
    let d = daemon();
    let mut cmd = kiln();
    cmd.env("BUILDKIT_HOST", &d.addr);
    let args = d.kiln_args();
    // The TLS flags without --addr: the address comes from the environment.
    let mut all: Vec<&str> = args.iter().skip(2).map(String::as_str).collect();
    all.extend(["info", "--format", "json"]);
    let r = run(cmd, &all).await;
    assert_info(&r, &d.addr);
    assert_eq!(r.json()["address_source"], "env");
}

#[tokio::test(flavor = "multi_thread")]
async fn unix_socket() {
    let relay = Relay::for_daemon(RelayOptions::default()).await;
    let addr = format!("unix://{}", relay.unix.display());
    assert_info(&kiln_at(&addr, &["info", "--format", "json"]).await, &addr);
}

#[tokio::test(flavor = "multi_thread")]
async fn tcp_plain() {
    let relay = Relay::for_daemon(RelayOptions::default()).await;
    let addr = format!("tcp://{}", relay.tcp);
    assert_info(&kiln_at(&addr, &["info", "--format", "json"]).await, &addr);
}

#[tokio::test(flavor = "multi_thread")]
async fn tcp_mutual_tls() {
    let relay = Relay::for_daemon(RelayOptions::default()).await;
    let addr = format!("tcp://{}", relay.tls);
    let p = &relay.pki;
    let r = kiln_at(
        &addr,
        &[
            "--tlscacert",
            p.ca_cert.to_str().unwrap(),
            "--tlscert",
            p.client_cert.to_str().unwrap(),
            "--tlskey",
            p.client_key.to_str().unwrap(),
            "info",
            "--format",
            "json",
        ],
    )
    .await;
    assert_info(&r, &addr);

    // The same with a server name that the certificate holds, on another name's address.
    let addr_by_name = format!("tcp://localhost:{}", relay.tls.port());
    let r = kiln_at(
        &addr_by_name,
        &[
            "--tlscacert",
            p.ca_cert.to_str().unwrap(),
            "--tlscert",
            p.client_cert.to_str().unwrap(),
            "--tlskey",
            p.client_key.to_str().unwrap(),
            "--tlsservername",
            "buildkitd.test",
            "info",
            "--format",
            "json",
        ],
    )
    .await;
    assert_info(&r, &addr_by_name);
}

#[tokio::test(flavor = "multi_thread")]
async fn stdio_helper_docker_container() {
    // docker-container:// runs `docker exec -i NAME buildctl dial-stdio`; a
    // stand-in `docker` on PATH records its arguments and bridges stdio to
    // the relay's unix socket with socat, as dial-stdio would.
    let relay = Relay::for_daemon(RelayOptions::default()).await;
    let bin = tempfile::tempdir().unwrap();
    let args_file = bin.path().join("args");
    script(
        &bin.path().join("docker"),
        &format!(
            "echo \"$@\" > {}\nexec socat - UNIX-CONNECT:{}",
            args_file.display(),
            relay.unix.display()
        ),
    );
    let mut cmd = kiln();
    cmd.env(
        "PATH",
        format!(
            "{}:{}",
            bin.path().display(),
            std::env::var("PATH").unwrap_or_default()
        ),
    );
    let r = run(
        cmd,
        &[
            "--addr",
            "docker-container://bk0",
            "info",
            "--format",
            "json",
        ],
    )
    .await;
    assert_info(&r, "docker-container://bk0");
    let args = std::fs::read_to_string(&args_file).unwrap();
    assert_eq!(args.trim(), "exec -i bk0 buildctl dial-stdio");
}

#[tokio::test(flavor = "multi_thread")]
async fn stdio_helpers_kube_pod_ssh_podman_nerdctl_build_the_right_commands() {
    // nerdctl is packaged neither in Debian bookworm nor in sid: its helper is
    // checked here, through a stand-in, only (podman's also runs for real in
    // podman_container.rs).
    let relay = Relay::for_daemon(RelayOptions::default()).await;
    let bin = tempfile::tempdir().unwrap();
    for tool in ["kubectl", "ssh", "podman", "nerdctl"] {
        script(
            &bin.path().join(tool),
            &format!(
                "echo \"$@\" > {}/{tool}.args\nexec socat - UNIX-CONNECT:{}",
                bin.path().display(),
                relay.unix.display()
            ),
        );
    }
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for (addr, tool, want) in [
        (
            "kube-pod://buildkitd-0?namespace=ci&context=prod&container=bk",
            "kubectl",
            "--context prod --namespace ci exec -i buildkitd-0 -c bk -- buildctl dial-stdio",
        ),
        (
            "ssh://builder@10.9.8.7:2222",
            "ssh",
            "-p 2222 builder@10.9.8.7 -- buildctl dial-stdio",
        ),
        (
            "podman-container://kiln-bk",
            "podman",
            "exec -i kiln-bk buildctl dial-stdio",
        ),
        (
            "nerdctl-container://buildkitd",
            "nerdctl",
            "exec -i buildkitd buildctl dial-stdio",
        ),
        (
            "nerdctl-container://buildkitd?namespace=k8s.io",
            "nerdctl",
            "--namespace k8s.io exec -i buildkitd buildctl dial-stdio",
        ),
    ] {
        let mut cmd = kiln();
        cmd.env("PATH", &path);
        let r = run(cmd, &["--addr", addr, "info", "--format", "json"]).await;
        assert_info(&r, addr);
        let args = std::fs::read_to_string(bin.path().join(format!("{tool}.args"))).unwrap();
        assert_eq!(args.trim(), want);
    }
}
