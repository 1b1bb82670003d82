//! Mount types solved against the real daemon: bind (read-only, selector,
//! writable output), cache (persistence across solves, locked sharing),
//! tmpfs, secret file and secret env.
//!
//! ssh mounts are not repeated here: `session_ssh.rs` already solves a
//! graph with `kiln solve --ssh default` against a real `ssh-agent` and
//! checks `ssh-add -l` inside the RUN lists the key.

use kiln_llb::{CacheSharing, Copy, ExecOptions, FileAction, Mkdir, Mkfile, Mount, SecretMount};

use crate::common::*;
use crate::llb_util::*;
use crate::session_common::{contains_bytes, sha256_hex};

#[tokio::test(flavor = "multi_thread")]
async fn llb_mount_bind_readonly_selector_and_writable_output() {
    let tmp = tempfile::tempdir().unwrap();
    let marker = unique();
    let src = kiln_llb::scratch().file(
        FileAction::from(Mkdir::new("/dir", 0o755))
            .mkfile(Mkfile::new("/dir/a", 0o644, marker.clone()))
            .mkfile(Mkfile::new("/top", 0o644, "top")),
    );
    let st = probe_with(
        &go_image(),
        "cat /ro/a > /out/a; ls -A /ro > /out/ls; \
         if touch /ro/new 2>/out/err; then echo writable > /out/ro; else echo readonly > /out/ro; fi; \
         echo added > /rw/added",
        |o| {
            o.mount(Mount::bind("/ro", &src).selector("/dir").readonly())
                .mount(Mount::bind("/rw", &src))
        },
    );
    let s = solve_ok(tmp.path(), "ro", &st, &[]).await;
    assert_eq!(s.read("a"), marker);
    assert_eq!(s.read("ls"), "a\n", "the selector mounts /dir only");
    assert_eq!(s.read("ro"), "readonly\n");
    assert!(
        s.read("err").contains("Read-only file system"),
        "{}",
        s.read("err")
    );

    // The writable bind's result is an output: the source plus the write.
    let rw = go_image()
        .run(
            ExecOptions::shell(format!("echo added > /rw/added # {}", unique()))
                .mount(Mount::bind("/rw", &src)),
        )
        .get_mount("/rw");
    let s = solve_ok(tmp.path(), "rw", &rw, &[]).await;
    assert_eq!(s.entries(), vec!["added", "dir", "dir/a", "top"]);
    assert_eq!(s.read("added"), "added\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn llb_mount_cache_persists_between_solves_and_stays_out_of_results() {
    let tmp = tempfile::tempdir().unwrap();
    let id = format!("llb-cache-{}", unique());
    let marker = unique();
    let first = probe_with(
        &go_image(),
        &format!("echo {marker} > /cache/f; ls -A /cache > /out/before"),
        |o| o.mount(Mount::cache("/cache", &id)),
    );
    let s = solve_ok(tmp.path(), "first", &first, &[]).await;
    assert_eq!(s.entries(), vec!["before"]);
    assert_eq!(s.read("before"), "f\n");

    // Another solve, another command: the cache still holds the file.
    let second = probe_with(&go_image(), "cat /cache/f > /out/seen", |o| {
        o.mount(Mount::cache("/cache", &id))
    });
    let s = solve_ok(tmp.path(), "second", &second, &[]).await;
    assert_eq!(s.read("seen"), format!("{marker}\n"));

    // A different id is a different (empty) cache.
    let other = probe_with(&go_image(), "ls -A /cache > /out/ls", |o| {
        o.mount(Mount::cache("/cache", format!("llb-cache-{}", unique())))
    });
    let s = solve_ok(tmp.path(), "other", &other, &[]).await;
    assert_eq!(s.read("ls"), "");
}

/// Two RUNs in one graph appending start/end timestamps to a log in the
/// same cache mount; the result holds each run's copy of the log.
fn two_runs(id: &str, sharing: CacheSharing) -> kiln_llb::State {
    let run = |name: &str| {
        probe_with(
            &go_image(),
            &format!(
                "echo \"start {name} $(date +%s.%N)\" >> /cache/log; sleep 2; \
                 echo \"end {name} $(date +%s.%N)\" >> /cache/log; cp /cache/log /out/{name}"
            ),
            |o| o.mount(Mount::cache("/cache", id).sharing(sharing)),
        )
    };
    // Both runs feed one collecting step (not a MergeOp: Docker's classic
    // store has none), so one solve runs them concurrently.
    go_image()
        .run(
            ExecOptions::shell(format!("# {}\ncp /a/a /b/b /out/", unique()))
                .mount(Mount::bind("/a", &run("a")).readonly())
                .mount(Mount::bind("/b", &run("b")).readonly())
                .mount(Mount::scratch("/out")),
        )
        .get_mount("/out")
}

/// (start, end) per run name, from the log lines.
fn intervals(log: &str) -> Vec<(String, f64, f64)> {
    let mut v: Vec<(String, f64, f64)> = Vec::new();
    for line in log.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let t: f64 = f[2].parse().unwrap();
        match f[0] {
            "start" => v.push((f[1].to_string(), t, f64::NAN)),
            "end" => v.iter_mut().find(|r| r.0 == f[1]).unwrap().2 = t,
            other => panic!("{other}"),
        }
    }
    v
}

/// The longer of the two logs (the run that finished last saw everything).
fn full_log(s: &Solved) -> String {
    let (a, b) = (s.read("a"), s.read("b"));
    if a.lines().count() >= b.lines().count() {
        a
    } else {
        b
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn llb_mount_cache_locked_sharing_serialises_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let id = format!("llb-locked-{}", unique());
    let s = solve_ok(
        tmp.path(),
        "locked",
        &two_runs(&id, CacheSharing::Locked),
        &[],
    )
    .await;
    let log = full_log(&s);
    let iv = intervals(&log);
    assert_eq!(iv.len(), 2, "{log}");
    let (first, second) = if iv[0].1 <= iv[1].1 {
        (&iv[0], &iv[1])
    } else {
        (&iv[1], &iv[0])
    };
    assert!(
        second.1 >= first.2,
        "locked: the second run started before the first ended:\n{log}"
    );
    // Whole-line order: start, end, start, end.
    let kinds: Vec<&str> = log.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(kinds, vec!["start", "end", "start", "end"], "{log}");

    // Control: with shared sharing the daemon runs both at once, so the
    // same check would catch a lock that does nothing.
    let id = format!("llb-shared-{}", unique());
    let s = solve_ok(
        tmp.path(),
        "shared",
        &two_runs(&id, CacheSharing::Shared),
        &[],
    )
    .await;
    let log = full_log(&s);
    let iv = intervals(&log);
    assert_eq!(iv.len(), 2, "{log}");
    let overlap = iv[0].1 < iv[1].2 && iv[1].1 < iv[0].2;
    assert!(overlap, "shared runs were expected to overlap:\n{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn llb_mount_tmpfs_leaves_nothing_in_the_result() {
    let tmp = tempfile::tempdir().unwrap();
    let marker = unique();
    let root = go_image()
        .run(
            ExecOptions::shell(format!(
                "mkdir -p /o && echo {marker} > /tt/file && cat /tt/file > /o/seen && \
                 grep ' /tt ' /proc/mounts > /o/mounts"
            ))
            .mount(Mount::tmpfs("/tt")),
        )
        .root();
    // The next RUN looks at the rootfs the tmpfs RUN left behind.
    let st = probe(
        &root,
        "cp /o/* /out/; if [ -e /tt ]; then ls -A /tt > /out/after; else echo absent > /out/after; fi",
    );
    let s = solve_ok(tmp.path(), "tmpfs", &st, &[]).await;
    assert_eq!(s.read("seen"), format!("{marker}\n"));
    assert!(s.read("mounts").contains("tmpfs"), "{}", s.read("mounts"));
    let after = s.read("after");
    assert!(
        after.is_empty() || after == "absent\n",
        "the tmpfs's file is not in the rootfs: {after:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn llb_mount_secret_file_and_env_reach_the_run_only() {
    let tmp = tempfile::tempdir().unwrap();
    let file_secret = format!("file-secret-{}", unique());
    let env_secret = format!("env-secret-{}", unique());
    let f = tmp.path().join("s.txt");
    std::fs::write(&f, &file_secret).unwrap();
    let root = go_image()
        .run(
            ExecOptions::shell(format!(
                "# {}\nmkdir -p /o && sha256sum < /mnt/s/file > /o/file.sum && \
                 printf %s \"$MY_TOKEN\" | sha256sum > /o/env.sum && \
                 stat -c %a /mnt/s/file > /o/mode && env | cut -d= -f1 > /o/env-names",
                unique()
            ))
            .secret(SecretMount::file("fsec", "/mnt/s/file").mode(0o440))
            .secret(SecretMount::env("esec", "MY_TOKEN")),
        )
        .root();
    let st = kiln_llb::scratch()
        .copy(Copy::new(&root, "/o", "/o"))
        .copy(Copy::new(&root, "/mnt", "/mnt"));
    let mut cmd = kiln();
    cmd.env("KILN_LLB_ENV_SECRET", &env_secret);
    let def = write_llb(tmp.path(), "secret.llb", &st);
    let s = solve_def(
        tmp.path(),
        "secret",
        &def,
        &[
            "--secret",
            &format!("id=fsec,src={}", f.display()),
            "--secret",
            "id=esec,env=KILN_LLB_ENV_SECRET",
        ],
        cmd,
    )
    .await;
    s.run.success();
    let sum = |v: &str| format!("{}  -\n", sha256_hex(v.as_bytes()));
    assert_eq!(s.read("o/file.sum"), sum(&file_secret));
    assert_eq!(s.read("o/env.sum"), sum(&env_secret));
    assert_eq!(s.read("o/mode"), "440\n");
    assert!(s.read("o/env-names").lines().any(|l| l == "MY_TOKEN"));
    // Neither the secret file nor either secret's bytes are in the result.
    let entries = s.entries();
    assert!(
        !entries.iter().any(|e| e == "mnt/s/file"),
        "secret file in the result: {entries:?}"
    );
    let tar = std::fs::read(&s.tar).unwrap();
    assert!(!contains_bytes(&tar, file_secret.as_bytes()));
    assert!(!contains_bytes(&tar, env_secret.as_bytes()));
    for e in walk(&s.out) {
        let data = std::fs::read(&e).unwrap_or_default();
        assert!(!contains_bytes(&data, file_secret.as_bytes()), "{e:?}");
        assert!(!contains_bytes(&data, env_secret.as_bytes()), "{e:?}");
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
