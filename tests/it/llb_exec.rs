//! Exec options solved against the real daemon, each checked by its
//! effect inside the container.

use kiln_llb::{Copy, ExecOptions, Mount, NetMode, ProxyEnv, SecurityMode};

use crate::common::*;
use crate::llb_util::*;

#[tokio::test(flavor = "multi_thread")]
async fn llb_exec_args_form_is_not_a_shell_and_env_reaches_both_forms() {
    let tmp = tempfile::tempdir().unwrap();
    let base = go_image().add_env("FROM_STATE", "state-value");
    // Args form: no shell, so `$FROM_RUN` and `*` stay literal.
    let args = base
        .run(
            ExecOptions::new(["/usr/bin/touch", "/out/$FROM_RUN *"])
                .env("FROM_RUN", "run-value")
                .env("UNIQUE", unique())
                .mount(kiln_llb::Mount::scratch("/out")),
        )
        .get_mount("/out");
    let s = solve_ok(tmp.path(), "args", &args, &[]).await;
    assert_eq!(s.entries(), vec!["$FROM_RUN *"]);

    // Shell form: expanded, and both the state's and the run's env are set.
    let shell = probe_with(
        &base,
        "touch \"/out/$FROM_RUN\"; echo \"$FROM_STATE $FROM_RUN\" > /out/env; echo \"$PATH\" > /out/path",
        |o| o.env("FROM_RUN", "run-value"),
    );
    let s = solve_ok(tmp.path(), "shell", &shell, &[]).await;
    assert_eq!(s.entries(), vec!["env", "path", "run-value"]);
    assert_eq!(s.read("env"), "state-value run-value\n");
    assert!(
        s.read("path").contains("/usr/bin"),
        "default PATH: {}",
        s.read("path")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn llb_exec_cwd_relative_dirs_resolve_and_are_created() {
    let tmp = tempfile::tempdir().unwrap();
    // State dir /work then relative "sub"; the run's own relative dir on top.
    let base = go_image().dir("/work").dir("sub");
    let st = probe(&base, "pwd > /out/state");
    let s = solve_ok(tmp.path(), "state", &st, &[]).await;
    assert_eq!(s.read("state"), "/work/sub\n");
    let st = probe_with(&base, "pwd > /out/run", |o| o.dir("deeper/x"));
    let s = solve_ok(tmp.path(), "run", &st, &[]).await;
    assert_eq!(s.read("run"), "/work/sub/deeper/x\n");
    let st = probe_with(&base, "pwd > /out/abs", |o| o.dir("/abs"));
    let s = solve_ok(tmp.path(), "abs", &st, &[]).await;
    assert_eq!(s.read("abs"), "/abs\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn llb_exec_user_and_hostname() {
    let tmp = tempfile::tempdir().unwrap();
    // /out in the root filesystem, writable by anyone; copied out after.
    let base = go_image()
        .run(ExecOptions::shell(format!(
            "mkdir -m 777 /o # {}",
            unique()
        )))
        .root();
    let collect = |e: kiln_llb::ExecState| {
        kiln_llb::scratch().copy(Copy::new(e.root(), "/o", "/").dir_contents_only())
    };
    let named = base.run(
        ExecOptions::shell(format!(
            "# {}\nid -u > /o/uid; id -g > /o/gid; hostname > /o/hostname",
            unique()
        ))
        .user("nobody")
        .hostname("kiln-llb-host"),
    );
    let s = solve_ok(tmp.path(), "nobody", &collect(named), &[]).await;
    assert_eq!(s.read("uid"), "65534\n");
    assert_eq!(s.read("gid"), "65534\n");
    assert_eq!(s.read("hostname"), "kiln-llb-host\n");

    // Numeric user:group from the state, not in /etc/passwd.
    let numeric = base.user("1234:5678").run(ExecOptions::shell(format!(
        "# {}\nid -u > /o/uid; id -g > /o/gid; hostname > /o/hostname",
        unique()
    )));
    let s = solve_ok(tmp.path(), "numeric", &collect(numeric), &[]).await;
    assert_eq!(s.read("uid"), "1234\n");
    assert_eq!(s.read("gid"), "5678\n");
    assert_ne!(s.read("hostname"), "kiln-llb-host\n");
}

/// Interface names in `/proc/net/dev`.
fn interfaces(dev: &str) -> Vec<String> {
    let mut v: Vec<String> = dev
        .lines()
        .skip(2)
        .filter_map(|l| l.split_once(':').map(|(n, _)| n.trim().to_string()))
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn llb_exec_network_none_has_only_loopback() {
    let tmp = tempfile::tempdir().unwrap();
    let none = probe_with(&go_image(), "cat /proc/net/dev > /out/dev", |o| {
        o.network(NetMode::None)
    });
    let s = solve_ok(tmp.path(), "none", &none, &[]).await;
    assert_eq!(interfaces(&s.read("dev")), vec!["lo"], "{}", s.read("dev"));
    // The default sandbox has an interface besides lo.
    let sandbox = probe(&go_image(), "cat /proc/net/dev > /out/dev");
    let s = solve_ok(tmp.path(), "sandbox", &sandbox, &[]).await;
    let ifs = interfaces(&s.read("dev"));
    assert!(ifs.iter().any(|i| i != "lo"), "sandbox network: {ifs:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn llb_exec_valid_exit_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let script = "echo done > /out/f; exit 3";
    let ok = probe_with(&go_image(), script, |o| o.valid_exit_codes([0, 3]));
    let s = solve_ok(tmp.path(), "ok", &ok, &[]).await;
    assert_eq!(s.read("f"), "done\n");

    // Exit 3 is not in [0, 4]: the step fails.
    let bad = probe_with(&go_image(), script, |o| o.valid_exit_codes([0, 4]));
    let s = solve_in(tmp.path(), "bad", &bad, &[]).await;
    s.run.failure();
    assert!(s.run.stderr.contains("exit code: 3"), "{}", s.run.stderr);
    // And exit 0 fails when only 3 is valid.
    let only3 = probe_with(&go_image(), "true", |o| o.valid_exit_codes([3]));
    let s = solve_in(tmp.path(), "only3", &only3, &[]).await;
    s.run.failure();
    assert!(s.run.stderr.contains("exit code: 0"), "{}", s.run.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn llb_exec_a_run_sees_the_previous_runs_files() {
    let tmp = tempfile::tempdir().unwrap();
    let marker = unique();
    let first = go_image()
        .run(ExecOptions::shell(format!(
            "mkdir -p /data && echo {marker} > /data/first"
        )))
        .root();
    let second = probe(
        &first,
        "cat /data/first > /out/seen && echo second >> /data/first && cat /data/first > /out/both",
    );
    let s = solve_ok(tmp.path(), "chain", &second, &[]).await;
    assert_eq!(s.read("seen"), format!("{marker}\n"));
    assert_eq!(s.read("both"), format!("{marker}\nsecond\n"));
}

/// Fetches `http://127.0.0.1:PORT/FILE` with bash's /dev/tcp (the fixture
/// image has no curl) into /out/got, or writes "unreachable".
fn fetch_script(port: u16, file: &str) -> String {
    format!(
        "cat > /tmp/fetch.sh <<'EOS'\n\
         if exec 3<>/dev/tcp/127.0.0.1/{port}; then\n\
           printf 'GET /{file} HTTP/1.0\\r\\n\\r\\n' >&3; tail -n 1 <&3 > /out/got\n\
         else echo unreachable > /out/got; fi\n\
         EOS\n\
         bash /tmp/fetch.sh 2>/dev/null || true"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn llb_exec_host_network_needs_allow_and_reaches_the_host() {
    let tmp = tempfile::tempdir().unwrap();
    let srv = tmp.path().join("srv");
    let marker = unique();
    tree(&srv, &[("probe", marker.as_str())]);
    let (_server, port) = crate::llb_sources::http_server(&srv, &tmp.path().join("http.log")).await;

    let host = probe_with(&go_image(), &fetch_script(port, "probe"), |o| {
        o.network(NetMode::Host)
    });
    // Without --allow: refused before anything is sent, naming the flag.
    let s = solve_in(tmp.path(), "denied", &host, &[]).await;
    s.run.failure();
    assert!(
        s.run.stderr.contains("--allow network.host"),
        "{}",
        s.run.stderr
    );
    assert!(!s.out.exists(), "nothing exported");

    let s = solve_ok(tmp.path(), "host", &host, &["--allow", "network.host"]).await;
    assert_eq!(s.read("got"), marker, "host network reaches 127.0.0.1");

    // The sandbox network cannot reach the host's loopback.
    if !daemon().supports(Need::IsolatedNetwork) {
        return;
    }
    let sandbox = probe(&go_image(), &fetch_script(port, "probe"));
    let s = solve_ok(tmp.path(), "sandbox", &sandbox, &[]).await;
    assert_eq!(s.read("got"), "unreachable\n");
}

/// The effective capabilities of a RUN (`CapEff` of /proc/self/status).
fn cap_eff(status: &str) -> u64 {
    let line = status
        .lines()
        .find(|l| l.starts_with("CapEff:"))
        .unwrap_or_else(|| panic!("no CapEff in {status}"));
    u64::from_str_radix(line["CapEff:".len()..].trim(), 16).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn llb_exec_insecure_security_mode_is_privileged() {
    let tmp = tempfile::tempdir().unwrap();
    let script = "cat /proc/self/status > /out/status";
    let insecure = probe_with(&go_image(), script, |o| o.security(SecurityMode::Insecure));
    let s = solve_in(tmp.path(), "denied", &insecure, &[]).await;
    s.run.failure();
    assert!(
        s.run.stderr.contains("--allow security.insecure"),
        "{}",
        s.run.stderr
    );

    let s = solve_ok(
        tmp.path(),
        "insecure",
        &insecure,
        &["--allow", "security.insecure"],
    )
    .await;
    let privileged = cap_eff(&s.read("status"));
    let s = solve_ok(tmp.path(), "sandbox", &probe(&go_image(), script), &[]).await;
    let sandboxed = cap_eff(&s.read("status"));
    // CAP_SYS_ADMIN (bit 21) only in the privileged step.
    assert_ne!(privileged & (1 << 21), 0, "insecure: {privileged:x}");
    assert_eq!(sandboxed & (1 << 21), 0, "sandbox: {sandboxed:x}");
    assert!(privileged.count_ones() > sandboxed.count_ones());
}

#[tokio::test(flavor = "multi_thread")]
async fn llb_exec_proxy_env_and_extra_hosts() {
    let tmp = tempfile::tempdir().unwrap();
    let proxy = ProxyEnv {
        http_proxy: "http://proxy.example:3128".into(),
        https_proxy: "http://proxy.example:3129".into(),
        no_proxy: "localhost,.corp".into(),
        ..Default::default()
    };
    let st = probe_with(
        &go_image(),
        "env | grep -i _proxy | sort > /out/env; cat /etc/hosts > /out/hosts",
        |o| {
            o.proxy_env(proxy)
                .add_extra_host("registry.corp", "10.1.2.3".parse().unwrap())
                .add_extra_host("mirror.corp", "fd00::7".parse().unwrap())
        },
    );
    let s = solve_ok(tmp.path(), "proxy", &st, &[]).await;
    let env = s.read("env");
    for want in [
        "HTTP_PROXY=http://proxy.example:3128",
        "http_proxy=http://proxy.example:3128",
        "HTTPS_PROXY=http://proxy.example:3129",
        "NO_PROXY=localhost,.corp",
    ] {
        assert!(env.lines().any(|l| l == want), "{want} in:\n{env}");
    }
    let hosts = s.read("hosts");
    assert!(
        hosts
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["10.1.2.3", "registry.corp"]),
        "{hosts}"
    );
    assert!(
        hosts.contains("fd00::7") && hosts.contains("mirror.corp"),
        "{hosts}"
    );

    // Proxy settings stay out of the cache key: the same step with another
    // proxy is a cache hit (it does not run again).
    let other = ProxyEnv {
        http_proxy: "http://elsewhere.example:1".into(),
        ..Default::default()
    };
    let script = format!("# {}\ndate +%s%N > /out/t", unique());
    let with_proxy = |p: ProxyEnv| {
        go_image()
            .run(
                ExecOptions::shell(script.clone())
                    .mount(Mount::scratch("/out"))
                    .proxy_env(p),
            )
            .get_mount("/out")
    };
    let a = with_proxy(ProxyEnv {
        http_proxy: "http://proxy.example:3128".into(),
        ..Default::default()
    });
    let b = with_proxy(other);
    let first = solve_ok(tmp.path(), "a", &a, &[]).await.read("t");
    let second = solve_ok(tmp.path(), "b", &b, &[]).await.read("t");
    assert_eq!(first, second, "a proxy change must not re-run the step");
}
