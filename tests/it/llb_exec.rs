//! Exec options solved against the real daemon, each checked by its
//! effect inside the container.

use kiln_llb::{Copy, ExecOptions, NetMode};

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
