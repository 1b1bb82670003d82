//! What arrives in the build from a local directory: filters, symlinks,
//! empty directories, modes, owners, times and non-ASCII names.

use std::collections::BTreeSet;
use std::os::unix::fs::{chown, symlink, PermissionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime};

use kiln_llb::{ExecOptions, LocalOptions, Mount};
use kiln_session::{ExportTarget, Session, SyncDirOptions};

use crate::common::*;
use crate::session_common::*;

const MTIME: u64 = 1_600_000_000;

fn write(root: &Path, rel: &str, data: &str, mode: u32) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, data).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn mkdir(root: &Path, rel: &str, mode: u32) {
    let p = root.join(rel);
    std::fs::create_dir_all(&p).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The context every case reads. Returns nothing; see `ALL` for its entries.
fn make_context(root: &Path) {
    write(
        root,
        ".dockerignore",
        "ignored-dir\n**/*.tmp\n!keep.tmp\n",
        0o644,
    );
    write(root, "a.txt", "alpha\n", 0o644);
    std::fs::File::options()
        .write(true)
        .open(root.join("a.txt"))
        .unwrap()
        .set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(MTIME))
        .unwrap();
    write(root, "private.txt", "only me\n", 0o600);
    chown(root.join("private.txt"), Some(1234), Some(5678)).unwrap();
    write(root, "run.sh", "#!/bin/sh\necho run\n", 0o755);
    mkdir(root, "dir", 0o750);
    write(root, "dir/sub/deep.txt", "deep\n", 0o644);
    write(root, "dir/x.tmp", "scratch\n", 0o644);
    symlink("../a.txt", root.join("dir/link-up")).unwrap();
    write(root, "keep.tmp", "kept\n", 0o644);
    mkdir(root, "empty", 0o755);
    mkdir(root, "nest/empty2", 0o700);
    std::fs::set_permissions(root.join("nest"), std::fs::Permissions::from_mode(0o755)).unwrap();
    symlink("a.txt", root.join("link-rel")).unwrap();
    symlink("/etc/hostname", root.join("link-abs")).unwrap();
    symlink("dir", root.join("link-dir")).unwrap();
    symlink("does-not-exist", root.join("dangling")).unwrap();
    write(root, "日本語.txt", "こんにちは\n", 0o644);
    write(root, "café/menu.txt", "crème brûlée\n", 0o644);
    write(root, "ignored-dir/file", "ignored\n", 0o644);
    write(root, "build.log", "log\n", 0o644);
    write(root, "keep.log", "kept log\n", 0o644);
}

/// Every entry of the context as `find -printf '%p %m %y %U:%G %l'` prints it.
const ALL: &[&str] = &[
    "./.dockerignore 644 f 0:0 ",
    "./a.txt 644 f 0:0 ",
    "./build.log 644 f 0:0 ",
    "./café 755 d 0:0 ",
    "./café/menu.txt 644 f 0:0 ",
    "./dangling 777 l 0:0 does-not-exist",
    "./dir 750 d 0:0 ",
    "./dir/link-up 777 l 0:0 ../a.txt",
    "./dir/sub 755 d 0:0 ",
    "./dir/sub/deep.txt 644 f 0:0 ",
    "./dir/x.tmp 644 f 0:0 ",
    "./empty 755 d 0:0 ",
    "./ignored-dir 755 d 0:0 ",
    "./ignored-dir/file 644 f 0:0 ",
    "./keep.log 644 f 0:0 ",
    "./keep.tmp 644 f 0:0 ",
    "./link-abs 777 l 0:0 /etc/hostname",
    "./link-dir 777 l 0:0 dir",
    "./link-rel 777 l 0:0 a.txt",
    "./nest 755 d 0:0 ",
    "./nest/empty2 700 d 0:0 ",
    "./private.txt 600 f 1234:5678 ",
    "./run.sh 755 f 0:0 ",
    "./日本語.txt 644 f 0:0 ",
];

fn all_but(skip: &[&str]) -> BTreeSet<String> {
    ALL.iter()
        .filter(|l| !skip.iter().any(|s| l.starts_with(&format!("./{s} "))))
        .map(|l| (*l).to_owned())
        .collect()
}

fn only(keep: &[&str]) -> BTreeSet<String> {
    ALL.iter()
        .filter(|l| keep.iter().any(|s| l.starts_with(&format!("./{s} "))))
        .map(|l| (*l).to_owned())
        .collect()
}

/// Lists `source` inside a RUN: entries, a.txt's mtime and the regular
/// files' hashes.
fn listing_graph(source: &kiln_llb::State) -> kiln_llb::State {
    go_env(go_image())
        .run(
            ExecOptions::shell(format!(
                "echo {} && cd /ctx \
                 && find . -mindepth 1 -printf '%p %m %y %U:%G %l\\n' | sort > /out/listing \
                 && (stat -c %Y a.txt 2>/dev/null || echo none) > /out/mtime \
                 && find . -type f -print0 | sort -z | xargs -0 -r sha256sum > /out/sums",
                unique()
            ))
            .mount(Mount::bind("/ctx", source).readonly())
            .mount(Mount::scratch("/out")),
        )
        .get_mount("/out")
}

/// What the build saw: (entries, a.txt mtime, `sha256sum` lines).
fn read_listing(out: &Path) -> (BTreeSet<String>, String, String) {
    let read = |f: &str| {
        std::fs::read_to_string(out.join(f)).unwrap_or_else(|e| panic!("{f} not exported: {e}"))
    };
    let entries = read("listing").lines().map(str::to_owned).collect();
    (entries, read("mtime").trim().to_owned(), read("sums"))
}

/// `sha256sum` lines for the regular files among `entries`, from the host.
fn host_sums(ctx: &Path, entries: &BTreeSet<String>) -> String {
    let mut files: Vec<&str> = entries
        .iter()
        .filter(|l| l.split(' ').nth(2) == Some("f"))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| {
            let data = std::fs::read(ctx.join(p.trim_start_matches("./"))).unwrap();
            format!("{}  {p}\n", sha256_hex(&data))
        })
        .collect()
}

#[track_caller]
fn assert_entries(got: &BTreeSet<String>, want: &BTreeSet<String>) {
    let missing: Vec<_> = want.difference(got).collect();
    let extra: Vec<_> = got.difference(want).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing: {missing:#?}\nunexpected: {extra:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn session_fidelity_library_with_dockerignore_and_excludes() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    make_context(&ctx);
    let client = client().await;
    for how in transports() {
        let out = tmp.path().join(format!("out-{how:?}"));
        let session = Session::builder()
            .shared_key(format!("fidelity-{}", unique()))
            .sync_dir("ctx", &ctx, SyncDirOptions::default().dockerignore(true))
            .export(0, ExportTarget::directory(&out))
            .build()
            .unwrap();
        let graph = listing_graph(&kiln_llb::local_with(
            "ctx",
            LocalOptions::new()
                .exclude_patterns(["*.log", "!keep.log"])
                .session_id(session.id()),
        ));
        solve_with(&client, &session, how, &graph, vec![exporter("local")])
            .await
            .unwrap_or_else(|e| panic!("{how:?}: {e}"));
        let (entries, mtime, sums) = read_listing(&out);
        // .dockerignore drops ignored-dir and *.tmp but keeps keep.tmp (and
        // itself); the LLB's excludes drop build.log but keep keep.log.
        let want = all_but(&["ignored-dir", "ignored-dir/file", "dir/x.tmp", "build.log"]);
        assert_entries(&entries, &want);
        assert_eq!(mtime, MTIME.to_string(), "{how:?}: a.txt's mtime");
        assert_eq!(sums, host_sums(&ctx, &want), "{how:?}: file contents");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn session_fidelity_cli_includes_excludes_and_no_dockerignore() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    make_context(&ctx);
    // Non-ASCII patterns travel URL-escaped in the DiffCopy metadata.
    let graph = listing_graph(&unique_local(
        "ctx",
        LocalOptions::new()
            .include_patterns(["dir", "café", "*.txt", "ignored-dir"])
            .exclude_patterns(["**/deep.txt"]),
    ));
    let def = write_llb(tmp.path(), "def.llb", &graph);
    let out = tmp.path().join("out");
    let r = kiln_d(&[
        "solve",
        "-f",
        def.to_str().unwrap(),
        "--progress",
        "plain",
        "--local",
        &format!("ctx={}", ctx.display()),
        "-o",
        &format!("type=local,dest={}", out.display()),
    ])
    .await;
    r.success();
    let (entries, mtime, sums) = read_listing(&out);
    // `kiln solve --local` sends the directory as `buildctl --local` does:
    // the .dockerignore is not applied (only a Dockerfile frontend reads it),
    // so dir/x.tmp and ignored-dir/file arrive. `*.txt` matches at the top
    // level only; the excluded deep.txt leaves dir/sub empty.
    let want = only(&[
        "a.txt",
        "café",
        "café/menu.txt",
        "dir",
        "dir/link-up",
        "dir/sub",
        "dir/x.tmp",
        "ignored-dir",
        "ignored-dir/file",
        "private.txt",
        "日本語.txt",
    ]);
    assert_entries(&entries, &want);
    assert_eq!(mtime, MTIME.to_string());
    assert_eq!(sums, host_sums(&ctx, &want));
}

#[test]
fn expectations_cover_the_whole_context() {
    let tmp = tempfile::tempdir().unwrap();
    make_context(tmp.path());
    let listed = sh_in(
        tmp.path(),
        "find . -mindepth 1 -printf '%p %m %y %U:%G %l\\n' | sort",
    );
    let host: BTreeSet<String> = listed.lines().map(str::to_owned).collect();
    // Directories created by the test get the umask; compare names and types only.
    let strip = |s: &BTreeSet<String>| -> BTreeSet<String> {
        s.iter()
            .map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                format!("{} {}", f[0], f[2])
            })
            .collect()
    };
    let all: BTreeSet<String> = ALL.iter().map(|l| (*l).to_owned()).collect();
    assert_eq!(strip(&host), strip(&all));
}
