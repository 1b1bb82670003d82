//! ssh-agent forwarding (`RUN --mount=type=ssh`): a real `ssh-agent`, key
//! files served in-process, and a private Go module fetched over ssh from a
//! local `sshd` through the forwarded agent.

use std::path::{Path, PathBuf};

use kiln_client::SessionTransport;
use kiln_llb::{ExecOptions, Mkdir, Mkfile, Mount, NetMode, SshMount};
use kiln_session::{ExportTarget, Session, SshAgents, SyncDirOptions};

use crate::common::*;
use crate::session_common::*;

/// Generates an unencrypted ed25519 key at `path` and returns its SHA256
/// fingerprint.
pub(crate) fn keygen(path: &Path, comment: &str) -> String {
    host(
        std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
            .arg(path),
    );
    fingerprint(path)
}

fn fingerprint(key: &Path) -> String {
    let out = host(
        std::process::Command::new("ssh-keygen")
            .arg("-lf")
            .arg(pub_path(key)),
    );
    out.split_whitespace()
        .nth(1)
        .expect("a fingerprint")
        .to_owned()
}

fn pub_path(key: &Path) -> PathBuf {
    let mut p = key.as_os_str().to_owned();
    p.push(".pub");
    PathBuf::from(p)
}

/// A running `ssh-agent` holding one key.
pub(crate) struct Agent {
    pub(crate) sock: PathBuf,
    _proc: Background,
}

pub(crate) async fn start_agent(dir: &Path, key: &Path) -> Agent {
    let sock = dir.join("agent.sock");
    let mut cmd = tokio::process::Command::new("ssh-agent");
    cmd.arg("-D").arg("-a").arg(&sock);
    let mut proc = Background::spawn("ssh-agent", cmd, &dir.join("agent.log"));
    let s = sock.clone();
    // The socket file appears at bind(), before listen(): wait until it
    // accepts a connection (under load ssh-add was refused in between).
    proc.wait_until(move || std::os::unix::net::UnixStream::connect(&s).is_ok())
        .await;
    host(
        std::process::Command::new("ssh-add")
            .arg(key)
            .env("SSH_AUTH_SOCK", &sock),
    );
    Agent { sock, _proc: proc }
}

/// Lists the forwarded agent's keys (and where `SSH_AUTH_SOCK` points).
fn list_keys_graph(id: &str) -> kiln_llb::State {
    go_image()
        .run(
            ExecOptions::shell(format!(
                "echo {} && echo \"$SSH_AUTH_SOCK\" > /out/sock && ssh-add -l > /out/keys",
                unique()
            ))
            .ssh(SshMount::new().id(id))
            .mount(Mount::scratch("/out")),
        )
        .get_mount("/out")
}

#[tokio::test(flavor = "multi_thread")]
async fn session_ssh_forwards_an_agent_and_key_files() {
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("id_ed25519");
    let fp = keygen(&key, "kiln-agent-key");
    let agent = start_agent(tmp.path(), &key).await;

    // --ssh default: $SSH_AUTH_SOCK's agent.
    let def = write_llb(tmp.path(), "default.llb", &list_keys_graph("default"));
    let out = tmp.path().join("out-default");
    let mut cmd = kiln_on();
    cmd.env("SSH_AUTH_SOCK", &agent.sock);
    let r = run(
        cmd,
        &[
            "solve",
            "-f",
            def.to_str().unwrap(),
            "--progress",
            "plain",
            "--ssh",
            "default",
            "-o",
            &format!("type=local,dest={}", out.display()),
        ],
    )
    .await;
    r.success();
    let keys = std::fs::read_to_string(out.join("keys")).unwrap();
    assert!(keys.contains(&fp), "{fp} not in {keys}");
    assert!(keys.contains("kiln-agent-key"), "{keys}");
    assert_eq!(
        std::fs::read_to_string(out.join("sock")).unwrap().trim(),
        "/run/buildkit/ssh_agent.0"
    );

    // --ssh mykey=KEYFILE: an in-process agent with that key only.
    let other = tmp.path().join("other_key");
    let other_fp = keygen(&other, "kiln-file-key");
    let def = write_llb(tmp.path(), "mykey.llb", &list_keys_graph("mykey"));
    let out = tmp.path().join("out-mykey");
    let r = kiln_d(&[
        "solve",
        "-f",
        def.to_str().unwrap(),
        "--progress",
        "plain",
        "--ssh",
        &format!("mykey={}", other.display()),
        "-o",
        &format!("type=local,dest={}", out.display()),
    ])
    .await;
    r.success();
    let keys = std::fs::read_to_string(out.join("keys")).unwrap();
    assert!(keys.contains(&other_fp), "{other_fp} not in {keys}");
    assert!(!keys.contains(&fp), "only the key file is served: {keys}");

    // An id the session does not forward: a clear failure.
    let def = write_llb(tmp.path(), "missing.llb", &list_keys_graph("nosuchid"));
    let r = kiln_d(&[
        "solve",
        "-f",
        def.to_str().unwrap(),
        "--ssh",
        &format!("mykey={}", other.display()),
    ])
    .await;
    r.failure();
    assert!(r.stderr.contains("nosuchid"), "{}", r.stderr);
}

/// A local sshd on 127.0.0.1 that accepts one key for root.
pub(crate) struct Sshd {
    pub(crate) port: u16,
    pub(crate) host_key_line: String,
    pub(crate) proc: Background,
}

pub(crate) async fn start_sshd(dir: &Path, authorized: &Path) -> Sshd {
    // OpenSSH refuses to start without its privilege separation directory.
    std::fs::create_dir_all("/run/sshd").unwrap();
    let host_key = dir.join("ssh_host_ed25519_key");
    keygen(&host_key, "kiln-test-host");
    let auth_keys = dir.join("authorized_keys");
    std::fs::copy(pub_path(authorized), &auth_keys).unwrap();
    let port = free_port();
    let config = dir.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile {}\n\
             AuthorizedKeysFile {}\nPermitRootLogin prohibit-password\nPubkeyAuthentication yes\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nStrictModes no\n\
             UsePAM no\nLogLevel VERBOSE\n",
            host_key.display(),
            dir.join("sshd.pid").display(),
            auth_keys.display()
        ),
    )
    .unwrap();
    let mut cmd = tokio::process::Command::new("/usr/sbin/sshd");
    cmd.arg("-D").arg("-e").arg("-f").arg(&config);
    let mut proc = Background::spawn("sshd", cmd, &dir.join("sshd.log"));
    proc.wait_for_port(&format!("127.0.0.1:{port}")).await;
    let public = std::fs::read_to_string(pub_path(&host_key)).unwrap();
    let mut fields = public.split_whitespace();
    let host_key_line = format!(
        "[127.0.0.1]:{port} {} {}\n",
        fields.next().unwrap(),
        fields.next().unwrap()
    );
    Sshd {
        port,
        host_key_line,
        proc,
    }
}

const LIB_MODULE: &str = "example.test/private/lib.git";

/// A bare repository holding the private module, tagged v0.1.0.
fn make_private_repo(dir: &Path, greeting: &str) -> PathBuf {
    let work = dir.join("lib-src");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(
        work.join("go.mod"),
        format!("module {LIB_MODULE}\n\ngo 1.24\n"),
    )
    .unwrap();
    std::fs::write(
        work.join("lib.go"),
        format!(
            "// Package lib is a private module served over ssh.\npackage lib\n\n\
             // Hello greets.\nfunc Hello() string {{ return {greeting:?} }}\n"
        ),
    )
    .unwrap();
    let git = |args: &[&str], cwd: &Path| {
        host(
            std::process::Command::new("git")
                .args(["-c", "user.name=kiln", "-c", "user.email=kiln@example.test"])
                .args(["-c", "init.defaultBranch=main"])
                .args(args)
                .current_dir(cwd),
        )
    };
    git(&["init", "-q"], &work);
    git(&["add", "."], &work);
    git(&["commit", "-q", "-m", "private lib"], &work);
    git(&["tag", "v0.1.0"], &work);
    let repos = dir.join("repos");
    std::fs::create_dir_all(&repos).unwrap();
    git(
        &["clone", "-q", "--bare", work.to_str().unwrap(), "lib.git"],
        &repos,
    );
    repos
}

/// The main module, importing the private one.
fn make_app(dir: &Path) -> PathBuf {
    let app = dir.join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(
        app.join("go.mod"),
        format!("module example.test/app\n\ngo 1.24\n\nrequire {LIB_MODULE} v0.1.0\n"),
    )
    .unwrap();
    std::fs::write(
        app.join("main.go"),
        format!(
            "package main\n\nimport (\n\t\"fmt\"\n\n\tlib \"{LIB_MODULE}\"\n)\n\n\
             func main() {{ fmt.Println(lib.Hello()) }}\n"
        ),
    )
    .unwrap();
    app
}

/// `go build` of the app with git rewritten to the local sshd; records the
/// exit status and output instead of failing, so a run without an agent
/// can be inspected.
fn go_build_graph(sshd: &Sshd, repos: &Path, session: &Session) -> kiln_llb::State {
    // The session id also keeps the two builds' RUNs apart in the cache.
    let marker = session.id();
    let base = go_env(go_image())
        .mkdir(Mkdir::new("/root/.ssh", 0o700).parents(true))
        .mkfile(Mkfile::new(
            "/root/.ssh/known_hosts",
            0o644,
            sshd.host_key_line.clone(),
        ));
    base.run(
        ExecOptions::shell(format!(
            "echo {marker} \
             && git config --global url.\"ssh://root@127.0.0.1:{port}{repos}/\".insteadOf \"https://example.test/private/\" \
             && (git ls-remote https://example.test/private/lib.git > /out/ls-remote.log 2>&1; echo $? > /out/ls-status) \
             && cp -r /ctx /app && cd /app \
             && (go build -o /out/app . > /out/build.log 2>&1; echo $? > /out/status) \
             && if [ -x /out/app ]; then /out/app > /out/output; fi",
            port = sshd.port,
            repos = repos.display(),
        ))
        .env("GOPRIVATE", "example.test/private")
        .env("GONOSUMDB", "example.test/private")
        .env("GOPROXY", "direct")
        .env("GOFLAGS", "-mod=mod")
        .env("GOTOOLCHAIN", "local")
        .env("GIT_TERMINAL_PROMPT", "0")
        .network(NetMode::Host)
        .ssh(SshMount::new().optional())
        .mount(Mount::bind("/ctx", &local_of("context", session)).readonly())
        .mount(Mount::cache("/root/.cache/go-build", "kiln-session-ssh-gocache"))
        .mount(Mount::scratch("/out")),
    )
    .get_mount("/out")
}

#[tokio::test(flavor = "multi_thread")]
async fn session_ssh_private_go_module_through_the_forwarded_agent() {
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("id_ed25519");
    let fp = keygen(&key, "kiln-private-module");
    let sshd = start_sshd(tmp.path(), &key).await;
    let agent = start_agent(tmp.path(), &key).await;
    let greeting = format!("hello from the private lib {}", unique());
    let repos = make_private_repo(tmp.path(), &greeting);
    let app = make_app(tmp.path());
    let client = client().await;

    let build = |ssh: Option<&Path>, out: &Path| {
        let mut b = Session::builder()
            .shared_key(unique())
            .sync_dir("context", &app, SyncDirOptions::default())
            .export(0, ExportTarget::directory(out));
        if let Some(sock) = ssh {
            let mut agents = SshAgents::new();
            agents
                .add(kiln_session::SshSpec {
                    id: "default".into(),
                    paths: vec![sock.to_path_buf()],
                })
                .unwrap();
            b = b.ssh(agents);
        }
        b.build().unwrap()
    };
    let read = |out: &Path, f: &str| std::fs::read_to_string(out.join(f)).unwrap_or_default();

    // Without the agent the same build cannot fetch the module.
    let out = tmp.path().join("out-noagent");
    let session = build(None, &out);
    solve_entitled(
        &client,
        &session,
        SessionTransport::Auto,
        &go_build_graph(&sshd, &repos, &session),
        vec![exporter("local")],
        &["network.host"],
    )
    .await
    .expect("the build runs (its go build fails)");
    assert_ne!(
        read(&out, "status").trim(),
        "0",
        "{}",
        read(&out, "build.log")
    );
    // Go hides git's error ("no secure protocol found"); git shows it.
    assert_ne!(read(&out, "ls-status").trim(), "0");
    let log = read(&out, "ls-remote.log");
    assert!(log.contains("Permission denied (publickey)"), "{log}");
    assert!(!out.join("app").exists());
    assert!(
        !sshd.proc.log().contains("Accepted publickey"),
        "{}",
        sshd.proc.log()
    );

    // With it, go fetches over ssh and the binary prints the lib's greeting.
    let out = tmp.path().join("out-agent");
    let session = build(Some(&agent.sock), &out);
    solve_entitled(
        &client,
        &session,
        SessionTransport::Auto,
        &go_build_graph(&sshd, &repos, &session),
        vec![exporter("local")],
        &["network.host"],
    )
    .await
    .expect("the build with the agent");
    assert_eq!(
        read(&out, "status").trim(),
        "0",
        "go build failed:\n{}\nsshd:\n{}",
        read(&out, "build.log"),
        sshd.proc.log()
    );
    assert_eq!(read(&out, "output").trim(), greeting);
    assert!(read(&out, "ls-remote.log").contains("refs/tags/v0.1.0"));
    // sshd saw the forwarded agent's key.
    let sshd_log = sshd.proc.log();
    assert!(
        sshd_log.contains("Accepted publickey for root") && sshd_log.contains(&fp),
        "{sshd_log}"
    );
}
