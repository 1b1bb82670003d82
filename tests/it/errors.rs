//! Bad addresses and broken daemons: one clear line, a hint, exit 1, no hang.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

use crate::common::*;

#[tokio::test]
async fn unreachable_unix_socket() {
    let r = kiln_at("unix:///nonexistent/buildkitd.sock", &["info"]).await;
    r.failure();
    assert!(
        r.stderr
            .contains("cannot connect to BuildKit at unix:///nonexistent/buildkitd.sock"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("No such file"), "{}", r.stderr);
    assert!(r.stderr.contains("hint: start buildkitd"), "{}", r.stderr);
}

#[tokio::test]
async fn unreachable_tcp_port() {
    // Bind then drop to get a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("tcp://127.0.0.1:{port}");
    let r = kiln_at(&addr, &["du"]).await;
    r.failure();
    assert!(
        r.stderr
            .contains(&format!("cannot connect to BuildKit at {addr}")),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("refused"), "{}", r.stderr);
}

#[tokio::test]
async fn unknown_scheme_and_malformed_addresses() {
    for (addr, want) in [
        ("http://127.0.0.1:1234", "unknown scheme \"http\""),
        ("127.0.0.1:1234", "has no scheme"),
        ("tcp://127.0.0.1", "missing port"),
        ("unix://relative.sock", "absolute socket path"),
    ] {
        let r = kiln_at(addr, &["info"]).await;
        r.failure();
        assert!(r.stderr.contains(want), "{addr}: {}", r.stderr);
        assert!(r.stderr.contains("hint:"), "{addr}: {}", r.stderr);
        assert_eq!(
            r.stderr.lines().filter(|l| l.starts_with("error:")).count(),
            1
        );
    }
    // BUILDKIT_HOST is parsed the same way.
    let mut cmd = kiln();
    cmd.env("BUILDKIT_HOST", "ftp://x");
    let r = run(cmd, &["info"]).await;
    r.failure();
    assert!(r.stderr.contains("unknown scheme \"ftp\""), "{}", r.stderr);
}

/// A unix socket whose server answers every connection with `reply` and closes.
fn fake_server(dir: &std::path::Path, reply: &'static [u8]) -> std::path::PathBuf {
    let path = dir.join("fake.sock");
    let l = UnixListener::bind(&path).unwrap();
    tokio::spawn(async move {
        while let Ok((mut c, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = tokio::time::timeout(Duration::from_millis(200), c.read(&mut buf)).await;
                let _ = c.write_all(reply).await;
                let _ = c.shutdown().await;
            });
        }
    });
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_upgrade_refused() {
    let dir = tempfile::tempdir().unwrap();
    let sock = fake_server(
        dir.path(),
        b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 18\r\n\r\npage not found ...",
    );
    let addr = format!("docker://{}", sock.display());
    let r = kiln_at(&addr, &["info"]).await;
    r.failure();
    assert!(
        r.stderr.contains("answered 404 Not Found to POST /grpc"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("page not found"), "{}", r.stderr);
    assert!(
        r.stderr.contains("hint: the socket is not a Docker Engine"),
        "{}",
        r.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn socket_that_is_not_buildkit() {
    let dir = tempfile::tempdir().unwrap();
    let sock = fake_server(dir.path(), b"SSH-2.0-OpenSSH_9.2\r\n");
    // As a buildkitd: not gRPC.
    let addr = format!("unix://{}", sock.display());
    let r = kiln_at(&addr, &["info"]).await;
    r.failure();
    assert!(r.stderr.contains(&addr), "{}", r.stderr);
    assert!(r.stderr.contains("hint:"), "{}", r.stderr);
    assert!(r.elapsed < Duration::from_secs(10), "took {:?}", r.elapsed);
    // As a Docker Engine: not HTTP.
    let addr = format!("docker://{}", sock.display());
    let r = kiln_at(&addr, &["info"]).await;
    r.failure();
    assert!(
        r.stderr.contains("did not answer as a Docker Engine"),
        "{}",
        r.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_scheme_on_a_buildkitd_socket() {
    let relay = Relay::for_daemon(RelayOptions::default()).await;
    let addr = format!("docker://{}", relay.unix.display());
    let r = kiln_at(&addr, &["info"]).await;
    r.failure();
    assert!(
        r.stderr.contains("did not answer as a Docker Engine"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("use unix:// or tcp://"), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_failures() {
    let relay = Relay::for_daemon(RelayOptions::default()).await;
    let addr = format!("tcp://{}", relay.tls);
    let p = &relay.pki;
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();

    // Wrong CA: the daemon's certificate is not trusted.
    let r = kiln_at(&addr, &["--tlscacert", &s(&p.other_ca_cert), "info"]).await;
    r.failure();
    assert!(r.stderr.contains("TLS handshake failed"), "{}", r.stderr);
    assert!(r.stderr.contains("UnknownIssuer"), "{}", r.stderr);

    // Wrong server name.
    let r = kiln_at(
        &addr,
        &[
            "--tlscacert",
            &s(&p.ca_cert),
            "--tlsservername",
            "other.example",
            "info",
        ],
    )
    .await;
    r.failure();
    assert!(
        r.stderr.contains("not valid for name \"other.example\""),
        "{}",
        r.stderr
    );

    // An expired server certificate (from the right CA, with the right name).
    let r = kiln_at(
        &format!("tcp://{}", relay.tls_expired),
        &[
            "--tlscacert",
            &s(&p.ca_cert),
            "--tlscert",
            &s(&p.client_cert),
            "--tlskey",
            &s(&p.client_key),
            "info",
        ],
    )
    .await;
    r.failure();
    assert!(r.stderr.contains("TLS handshake failed"), "{}", r.stderr);
    assert!(r.stderr.contains("expired"), "{}", r.stderr);

    // No client certificate where the daemon requires one.
    let r = kiln_at(&addr, &["--tlscacert", &s(&p.ca_cert), "info"]).await;
    r.failure();
    assert!(
        r.stderr.contains("may require a client certificate"),
        "{}",
        r.stderr
    );

    // A client certificate from a CA the daemon does not trust.
    let r = kiln_at(
        &addr,
        &[
            "--tlscacert",
            &s(&p.ca_cert),
            "--tlscert",
            &s(&p.rogue_client_cert),
            "--tlskey",
            &s(&p.rogue_client_key),
            "info",
        ],
    )
    .await;
    r.failure();
    assert!(r.stderr.contains("error: Info on"), "{}", r.stderr);
    assert!(
        r.stderr.contains("may not accept this client certificate"),
        "{}",
        r.stderr
    );

    // Half a client identity, or a client identity without a CA: refused before dialling.
    let r = kiln_at(
        &addr,
        &[
            "--tlscacert",
            &s(&p.ca_cert),
            "--tlscert",
            &s(&p.client_cert),
            "info",
        ],
    )
    .await;
    r.failure();
    assert!(
        r.stderr.contains("--tlscert and --tlskey go together"),
        "{}",
        r.stderr
    );
    let r = kiln_at(
        &addr,
        &[
            "--tlscert",
            &s(&p.client_cert),
            "--tlskey",
            &s(&p.client_key),
            "info",
        ],
    )
    .await;
    r.failure();
    assert!(
        r.stderr
            .contains("never connects with TLS verification off"),
        "{}",
        r.stderr
    );
    // A CA file that is not PEM.
    let r = kiln_at(&addr, &["--tlscacert", "/etc/hostname", "info"]).await;
    r.failure();
    assert!(
        r.stderr.contains("/etc/hostname holds no CA certificate"),
        "{}",
        r.stderr
    );
    // TLS options on a non-tcp address.
    let r = kiln_at("unix:///x.sock", &["--tlscacert", &s(&p.ca_cert), "info"]).await;
    r.failure();
    assert!(r.stderr.contains("only to tcp://"), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn daemon_dropping_the_connection_mid_call_fails_fast() {
    // Cuts in the HTTP/2 preface, in the Info answer and in ListWorkers (the
    // smallest answers, from the classic-store Docker, are ~500 bytes in all).
    for limit in [40u64, 200, 350] {
        let relay = Relay::for_daemon(RelayOptions {
            drop_after_bytes: Some(limit),
            ..Default::default()
        })
        .await;
        let addr = format!("unix://{}", relay.unix.display());
        let r = kiln_at(&addr, &["info"]).await;
        r.failure();
        assert!(
            r.elapsed < Duration::from_secs(10),
            "limit {limit}: took {:?}",
            r.elapsed
        );
        assert!(r.stderr.contains(&addr), "limit {limit}: {}", r.stderr);
        assert!(
            r.stderr.starts_with("error: "),
            "limit {limit}: {}",
            r.stderr
        );
    }
}

/// A daemon that stops answering mid-build (the relay stops forwarding, as
/// a SIGSTOPped daemon or a dead network path would) is noticed within the
/// default 30 s: the build is cancelled with an error naming the address.
/// Without the watchdog kiln waits forever on the open streams.
#[tokio::test(flavor = "multi_thread")]
async fn a_daemon_that_stops_answering_is_noticed_within_30_seconds() {
    use tokio::io::AsyncBufReadExt;
    let stall = kiln_test_support::relay::Stall::default();
    let relay = Relay::for_daemon(RelayOptions {
        stall: stall.clone(),
        ..Default::default()
    })
    .await;
    let addr = format!("unix://{}", relay.unix.display());
    let tmp = tempfile::tempdir().unwrap();
    let marker = unique();
    let state = go_image().run(
        kiln_llb::ExecOptions::shell(format!("echo started {marker}; sleep 120"))
            .custom_name("[test] a long step"),
    );
    let def = write_llb(tmp.path(), "def.llb", &state.root());
    let mut child = kiln()
        .env_remove("KILN_STALL_TIMEOUT")
        .args([
            "--addr",
            &addr,
            "solve",
            "-f",
            def.to_str().unwrap(),
            "--progress",
            "plain",
        ])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    // Wait for the step to run, then stall every connection.
    tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(l) = lines.next_line().await.unwrap() {
            seen.push_str(&l);
            seen.push('\n');
            if l.contains(&format!("started {marker}")) {
                return;
            }
        }
        panic!("kiln ended before the step started:\n{seen}");
    })
    .await
    .unwrap_or_else(|_| panic!("the step did not start:\n{seen}"));
    stall.now();
    let stalled_at = std::time::Instant::now();
    let rest = tokio::time::timeout(Duration::from_secs(60), async {
        let mut rest = String::new();
        while let Ok(Some(l)) = lines.next_line().await {
            rest.push_str(&l);
            rest.push('\n');
        }
        (rest, child.wait().await.unwrap())
    })
    .await;
    let (rest, status) =
        rest.unwrap_or_else(|_| panic!("kiln still waits 60 s after the daemon stalled:\n{seen}"));
    let waited = stalled_at.elapsed();
    assert!(!status.success(), "{rest}");
    assert!(
        waited < Duration::from_secs(40),
        "noticed after {waited:?}:\n{rest}"
    );
    assert!(rest.contains("stopped answering"), "{rest}");
    assert!(
        rest.contains(&addr),
        "the error does not name {addr}:\n{rest}"
    );
    assert!(rest.contains("--stall-timeout"), "{rest}");
}

/// Plain TCP to another machine is said out loud before anything is sent;
/// loopback is not.
#[tokio::test]
async fn plain_tcp_to_another_machine_warns() {
    // This machine's address on its outbound interface (no packet is sent).
    let probe = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    probe.connect("10.255.255.255:9").unwrap();
    let ip = probe.local_addr().unwrap().ip();
    assert!(!ip.is_loopback(), "no non-loopback address here: {ip}");
    // A port nobody listens on: the connection is refused at once.
    let port = std::net::TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("tcp://{ip}:{port}");
    let r = kiln_at(&addr, &["info"]).await;
    r.failure();
    assert!(
        r.stderr
            .contains(&format!("warning: {addr} is plain TCP to another machine")),
        "{}",
        r.stderr
    );
    let local = kiln_at(&format!("tcp://127.0.0.1:{port}"), &["info"]).await;
    local.failure();
    assert!(!local.stderr.contains("plain TCP"), "{}", local.stderr);
}

/// Breaks a build's connections during its context sync; returns kiln's
/// stderr after the break. Checks kiln fails within 10 s, exit 1, naming
/// the daemon, without the netrc's password, writing nothing.
async fn break_during_sync() -> String {
    use tokio::io::AsyncBufReadExt;
    let cut = kiln_test_support::relay::Cut::default();
    // The relay's plain unix socket in front of every daemon (on the TLS
    // row too: what is tested is the connection breaking, not TLS).
    let relay = Relay::for_daemon(RelayOptions {
        cut: cut.clone(),
        ..Default::default()
    })
    .await;
    let addr = format!("unix://{}", relay.unix.display());
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let m = unique();
    let dir = crate::cancel::big_module(tmp.path(), &m);
    let netrc = tmp.path().join("netrc");
    let password = format!("netrc-password-{m}");
    std::fs::write(
        &netrc,
        format!("machine git.example.com login kiln password {password}\n"),
    )
    .unwrap();
    // A local export (every daemon has it; behind the relay kiln cannot
    // tell a classic-store Docker Engine).
    let mut extra = vec![
        "-o".to_string(),
        format!("type=local,dest={}", out.join("result").display()),
    ];
    extra.extend(["--netrc", netrc.to_str().unwrap(), "--progress", "plain"].map(String::from));
    let refs: Vec<&str> = extra.iter().map(String::as_str).collect();
    // The harness's daemon address replaced by the relay's.
    let mut args = vec!["--addr".to_string(), addr.clone()];
    args.extend(
        crate::build::build_args(&dir, &refs)
            .into_iter()
            .skip(daemon().kiln_args().len()),
    );
    let mut child = kiln()
        .args(&args)
        .env("KILN_LOG", "warn")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(l) = lines.next_line().await.unwrap() {
            seen.push_str(&l);
            seen.push('\n');
            if l.contains("load module source") {
                return;
            }
        }
        panic!("kiln ended before the module source was sent:\n{seen}");
    })
    .await
    .unwrap_or_else(|_| panic!("the module source was never sent:\n{seen}"));
    // The sync of 3 GiB is under way: break every connection.
    tokio::time::sleep(Duration::from_millis(500)).await;
    cut.now();
    let cut_at = std::time::Instant::now();
    let (rest, status) = tokio::time::timeout(Duration::from_secs(30), async {
        let mut rest = String::new();
        while let Ok(Some(l)) = lines.next_line().await {
            rest.push_str(&l);
            rest.push('\n');
        }
        (rest, child.wait().await.unwrap())
    })
    .await
    .unwrap_or_else(|_| panic!("kiln still runs 30 s after its connection broke:\n{seen}"));
    assert_eq!(status.code(), Some(1), "{seen}{rest}");
    assert!(
        cut_at.elapsed() < Duration::from_secs(10),
        "took {:?}",
        cut_at.elapsed()
    );
    assert!(
        rest.contains(&addr),
        "the error does not name the daemon {addr}:\n{rest}"
    );
    assert!(
        !rest.contains(&password),
        "the netrc's password leaked:\n{rest}"
    );
    crate::cancel::assert_nothing_written(&out, &[]);
    rest
}

/// The session's connection breaks during the context sync (the relay
/// closes every connection, as a restarted daemon or a load balancer
/// dropping its flows would): kiln fails at once with a clear error naming
/// the daemon, without the netrc's password, and writes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn the_session_breaking_during_the_context_sync_fails_clearly() {
    break_during_sync().await;
}

/// A session whose connection breaks is re-attached to the same daemon,
/// and never to another one answering at the same address afterwards (its
/// secrets, ssh agents and files are served only to the daemon it was
/// attached to): kiln asks the daemon who it is (its worker ids) first.
#[tokio::test(flavor = "multi_thread")]
async fn a_session_is_never_re_attached_to_another_daemon() {
    use kiln_client::kiln_session::Session;
    use kiln_client::kiln_session::{SecretId, SecretSource, SecretStore};
    use kiln_client::{Address, Client, SessionTransport, TlsOptions};
    use kiln_test_support::relay::{Cut, Upstream};
    // A daemon of the other kind: Docker's BuildKit for the buildkitd rows,
    // the standalone buildkitd for the Docker rows.
    let another = match daemon().upstream() {
        Upstream::Grpc(_) => Upstream::Docker(harness().docker_sock.clone()),
        Upstream::Docker(_) => Upstream::Grpc(
            harness()
                .var("KILN_TEST_BUILDKITD_SOCK")
                .expect("the harness runs buildkitd")
                .into(),
        ),
    };
    for after_cut in [None, Some(another)] {
        let to_another = after_cut.is_some();
        let cut = Cut::default();
        let relay = Relay::for_daemon(RelayOptions {
            cut: cut.clone(),
            after_cut,
            ..Default::default()
        })
        .await;
        let addr = Address::parse(&format!("unix://{}", relay.unix.display())).unwrap();
        let client = Client::connect(addr, &TlsOptions::default()).await.unwrap();
        let mut secrets = SecretStore::new();
        secrets
            .insert(
                SecretId::new("token").unwrap(),
                SecretSource::Value(format!("kiln-secret-{}", unique()).into_bytes().into()),
            )
            .unwrap();
        let session = Session::builder().secrets(secrets).build().unwrap();
        let attached = client
            .attach(session, SessionTransport::Control)
            .await
            .unwrap();
        // Let the first connection settle (kiln learns who the daemon is).
        tokio::time::sleep(Duration::from_millis(500)).await;
        cut.now();
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        let outcome = loop {
            let r = attached.reattach();
            if r.reattached > 0 || r.refused.is_some() {
                break r;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "nothing became of the lost session in 15 s: {r:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        if to_another {
            assert_eq!(
                outcome.reattached, 0,
                "re-attached to another daemon: {outcome:?}"
            );
            let why = outcome.refused.unwrap_or_default();
            assert!(why.contains("another one"), "{why}");
        } else {
            assert!(outcome.refused.is_none(), "{outcome:?}");
            assert!(outcome.reattached > 0, "{outcome:?}");
        }
        attached.close().await;
    }
}

/// A file that keeps growing while the module's source is sent (a log an
/// editor or a tool writes into the context): the build fails with an
/// error naming the file, instead of building from a mixture of versions.
///
/// The file starts at 16 MiB, so that reading it takes long enough for the
/// writer to append meanwhile; on a loaded machine the writer may still
/// not run between kiln listing the file and reading it (then kiln sends
/// what it listed, a consistent build): such a run is tried again.
#[tokio::test(flavor = "multi_thread")]
async fn a_file_changing_during_the_context_sync_fails_the_build() {
    use std::io::Write;
    use std::sync::atomic::{AtomicBool, Ordering};
    let tmp = tempfile::tempdir().unwrap();
    let m = unique();
    let dir = crate::build::sample_module(tmp.path(), &m);
    let log = dir.join("growing.log");
    std::fs::write(&log, vec![b'.'; 16 << 20]).unwrap();
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, log) = (stop.clone(), log.clone());
        std::thread::spawn(move || {
            let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
            while !stop.load(Ordering::Relaxed) {
                f.write_all(&[b'x'; 512]).unwrap();
                std::thread::sleep(Duration::from_micros(100));
            }
        })
    };
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let dest = format!("type=local,dest={}", out.join("result").display());
    let mut failed = None;
    for attempt in 1..=3 {
        let r = crate::build::kiln_build(&dir, &["-o", &dest, "--progress", "plain"]).await;
        if r.code == Some(0) {
            eprintln!("attempt {attempt}: the file did not change while it was read");
            let _ = std::fs::remove_dir_all(out.join("result"));
            continue;
        }
        failed = Some(r);
        break;
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let r = failed.expect("three builds never saw the file change while it was sent");
    r.failure();
    assert!(
        r.stderr
            .contains("changed while the build context was being sent")
            && r.stderr.contains("growing.log"),
        "{}",
        r.stderr
    );
    crate::cancel::assert_nothing_written(&out, &[]);
}
