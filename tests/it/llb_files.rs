//! File actions, merge and diff solved against the real daemon, checked in
//! the exported trees (contents, modes and owners from the tar export,
//! modification times from the local export).

use kiln_llb::{Chown, Copy, CopyMode, ExecOptions, FileAction, Mkdir, Mkfile, Rm, Symlink};

use crate::common::*;
use crate::llb_util::*;

/// A source tree used by the copy tests.
fn source() -> kiln_llb::State {
    kiln_llb::scratch().file(
        FileAction::from(Mkdir::new("/dir/sub", 0o755).parents(true))
            .mkfile(Mkfile::new("/dir/a.txt", 0o644, "a"))
            .mkfile(Mkfile::new("/dir/b.txt", 0o644, "b"))
            .mkfile(Mkfile::new("/dir/c.md", 0o644, "c"))
            .mkfile(Mkfile::new("/dir/sub/d.txt", 0o644, "d"))
            .mkfile(Mkfile::new("/real", 0o600, "real contents"))
            .symlink(Symlink::new("/real", "/link"))
            .mkfile(Mkfile::new("/uniq", 0o644, unique())),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn llb_file_mkdir_and_mkfile_modes_owners_and_parents() {
    let tmp = tempfile::tempdir().unwrap();
    let marker = unique();
    let st = kiln_llb::scratch().file(
        FileAction::from(
            Mkdir::new("/a/b/c", 0o750)
                .parents(true)
                .owner(Chown::ids(1000, 1001)),
        )
        .mkdir(Mkdir::new("/plain", 0o700))
        .mkfile(Mkfile::new("/a/b/c/f", 0o640, marker.clone()).owner(Chown::ids(123, 456)))
        .mkfile(Mkfile::new("/exec", 0o755, "#!/bin/sh\n")),
    );
    let s = solve_ok(tmp.path(), "mk", &st, &[]).await;
    assert_eq!(
        s.entries(),
        vec!["a", "a/b", "a/b/c", "a/b/c/f", "exec", "plain"]
    );
    assert_eq!(s.read("a/b/c/f"), marker);
    assert_eq!(s.mode("a/b/c"), 0o750);
    assert_eq!(s.mode("plain"), 0o700);
    assert_eq!(s.mode("a/b/c/f"), 0o640);
    assert_eq!(s.mode("exec"), 0o755);
    // Parents created by `parents(true)` get the same owner.
    assert_eq!(s.tar_owner("a/b/c"), "1000/1001");
    assert_eq!(s.tar_owner("a"), "1000/1001");
    assert_eq!(s.tar_owner("a/b/c/f"), "123/456");
    assert_eq!(s.tar_owner("plain"), "0/0");

    // Owner by name, resolved in the target's /etc/passwd.
    let st = go_image()
        .mkfile(Mkfile::new("/owned", 0o644, unique()).owner(Chown::parse("nobody:nogroup")))
        .mkdir(Mkdir::new("/owned-dir", 0o755).owner(Chown::parse("nobody")));
    let probe_st = probe(&st, "stat -c '%u:%g' /owned /owned-dir > /out/owners");
    let s = solve_ok(tmp.path(), "named", &probe_st, &[]).await;
    assert_eq!(s.read("owners"), "65534:65534\n65534:65534\n");

    // Without parents a missing parent fails.
    let st = kiln_llb::scratch().mkdir(Mkdir::new(format!("/missing-{}/x", unique()), 0o755));
    let s = solve_in(tmp.path(), "noparents", &st, &[]).await;
    s.run.failure();
    assert!(
        s.run.stderr.contains("no such file or directory"),
        "{}",
        s.run.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn llb_file_rm_wildcard_and_allow_not_found() {
    let tmp = tempfile::tempdir().unwrap();
    let base = kiln_llb::scratch().file(
        FileAction::from(Mkfile::new("/a.log", 0o644, "a"))
            .mkfile(Mkfile::new("/b.log", 0o644, "b"))
            .mkfile(Mkfile::new("/keep.txt", 0o644, unique())),
    );
    let st = base.file(
        FileAction::from(Rm::new("/*.log").allow_wildcard())
            .rm(Rm::new("/not-there").allow_not_found()),
    );
    let s = solve_ok(tmp.path(), "rm", &st, &[]).await;
    assert_eq!(s.entries(), vec!["keep.txt"]);

    let st = base.rm(Rm::new("/not-there"));
    let s = solve_in(tmp.path(), "rm-missing", &st, &[]).await;
    s.run.failure();
    assert!(s.run.stderr.contains("not-there"), "{}", s.run.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn llb_file_copy_options() {
    let tmp = tempfile::tempdir().unwrap();
    let src = source();
    let st = kiln_llb::scratch().file(
        FileAction::from(Mkdir::new("/whole", 0o755))
            // The directory itself into an existing directory.
            .copy(Copy::new(&src, "/dir", "/whole/"))
            // Only its contents.
            .copy(Copy::new(&src, "/dir", "/contents").dir_contents_only())
            // A symlink followed, and kept.
            .copy(Copy::new(&src, "/link", "/followed").follow_symlinks())
            .copy(Copy::new(&src, "/link", "/kept"))
            // Into a path that does not exist yet.
            .copy(Copy::new(&src, "/dir/a.txt", "/x/y/z/a.txt").create_dest_path())
            // A wildcard, and one that matches nothing.
            .copy(
                Copy::new(&src, "/dir/*.txt", "/wild/")
                    .allow_wildcard()
                    .create_dest_path(),
            )
            .copy(
                Copy::new(&src, "/dir/*.nomatch", "/empty/")
                    .allow_wildcard()
                    .allow_empty_wildcard()
                    .create_dest_path(),
            )
            // Include and exclude patterns.
            .copy(
                Copy::new(&src, "/dir", "/filtered")
                    .dir_contents_only()
                    .include_patterns(["*.txt", "sub/*"])
                    .exclude_patterns(["b.txt"]),
            )
            // Mode override and owner.
            .copy(
                Copy::new(&src, "/dir/c.md", "/mode-bits")
                    .mode(CopyMode::Bits(0o711))
                    .owner(Chown::ids(42, 43)),
            ),
    );
    let s = solve_ok(tmp.path(), "copy", &st, &[]).await;
    let e = s.entries();
    let under = |p: &str| -> Vec<String> {
        e.iter()
            .filter(|x| x.starts_with(&format!("{p}/")))
            .cloned()
            .collect()
    };
    assert_eq!(
        under("whole"),
        vec![
            "whole/dir",
            "whole/dir/a.txt",
            "whole/dir/b.txt",
            "whole/dir/c.md",
            "whole/dir/sub",
            "whole/dir/sub/d.txt"
        ]
    );
    assert_eq!(
        under("contents"),
        vec![
            "contents/a.txt",
            "contents/b.txt",
            "contents/c.md",
            "contents/sub",
            "contents/sub/d.txt"
        ]
    );
    assert!(s.out.join("followed").symlink_metadata().unwrap().is_file());
    assert_eq!(s.read("followed"), "real contents");
    assert!(s
        .out
        .join("kept")
        .symlink_metadata()
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        std::fs::read_link(s.out.join("kept")).unwrap().to_str(),
        Some("/real")
    );
    assert_eq!(s.read("x/y/z/a.txt"), "a");
    assert_eq!(under("wild"), vec!["wild/a.txt", "wild/b.txt"]);
    assert!(under("empty").is_empty(), "{e:?}");
    assert_eq!(
        under("filtered"),
        vec!["filtered/a.txt", "filtered/sub", "filtered/sub/d.txt"]
    );
    assert_eq!(s.mode("mode-bits"), 0o711);
    assert_eq!(s.tar_owner("mode-bits"), "42/43");
    assert_eq!(s.tar_owner("contents/a.txt"), "0/0");

    // A symbolic mode, sent as Go sends it (no per-action cap: Go's
    // FileOp declares only file.base).
    let st = kiln_llb::scratch()
        .copy(Copy::new(&src, "/real", "/mode-sym").mode(CopyMode::Symbolic("g+r,o+r".into())));
    let s = solve_in(tmp.path(), "mode-sym", &st, &[]).await;
    s.run.success();
    assert_eq!(s.mode("mode-sym"), 0o644, "/real is 0600; g+r,o+r");

    // The failing counterparts.
    for (name, c) in [
        (
            "no-create",
            Copy::new(&src, "/dir/a.txt", format!("/p{}/q/a.txt", unique())),
        ),
        (
            "empty-wildcard",
            Copy::new(&src, "/dir/*.nomatch", format!("/e{}/", unique()))
                .allow_wildcard()
                .create_dest_path(),
        ),
    ] {
        let s = solve_in(tmp.path(), name, &kiln_llb::scratch().copy(c), &[]).await;
        s.run.failure();
        assert!(s.run.stderr.contains("error:"), "{name}: {}", s.run.stderr);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn llb_file_chained_actions_are_one_op() {
    let tmp = tempfile::tempdir().unwrap();
    let marker = unique();
    let st = kiln_llb::scratch().file(
        FileAction::from(Mkdir::new("/app/tmp", 0o755).parents(true))
            .mkfile(Mkfile::new("/app/tmp/scratch", 0o644, "x"))
            .mkfile(Mkfile::new("/app/VERSION", 0o644, marker.clone()))
            .copy(Copy::new(source(), "/dir/a.txt", "/app/a.txt"))
            .rm(Rm::new("/app/tmp")),
    );
    let def = write_llb(tmp.path(), "chain.llb", &st);
    let r = run(kiln(), &["llb", "-f", def.to_str().unwrap()]).await;
    r.success();
    let v = r.json();
    let file_ops: Vec<_> = v["ops"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["op"]["kind"] == "file")
        .filter(|o| o["op"]["actions"].as_array().unwrap().len() == 5)
        .collect();
    assert_eq!(file_ops.len(), 1, "one op with the five actions: {v}");
    let s = solve_ok(tmp.path(), "chain", &st, &[]).await;
    assert_eq!(s.entries(), vec!["app", "app/VERSION", "app/a.txt"]);
    assert_eq!(s.read("app/VERSION"), marker);
}

#[tokio::test(flavor = "multi_thread")]
async fn llb_file_created_time_sets_mtime() {
    let tmp = tempfile::tempdir().unwrap();
    let t: i64 = 1_234_567_890;
    let nanos = t * 1_000_000_000;
    let st = go_image().file(
        FileAction::from(Mkdir::new("/stamped", 0o755).created_time(nanos))
            .mkfile(Mkfile::new("/stamped/f", 0o644, unique()).created_time(nanos))
            .copy(
                Copy::new(source(), "/dir/a.txt", "/stamped/copied")
                    .created_time(nanos + 1_000_000_000),
            ),
    );
    let st = probe(&st, "stat -c %Y /stamped/f /stamped/copied > /out/mtimes");
    let s = solve_ok(tmp.path(), "mtime", &st, &[]).await;
    assert_eq!(s.read("mtimes"), format!("{t}\n{}\n", t + 1));

    // In the export too.
    let st = kiln_llb::scratch().mkfile(Mkfile::new("/f", 0o644, unique()).created_time(nanos));
    let s = solve_ok(tmp.path(), "export", &st, &[]).await;
    assert_eq!(s.mtime("f"), t);
}

#[tokio::test(flavor = "multi_thread")]
async fn llb_merge_and_diff_trees() {
    if !daemon().supports(Need::MergeDiff) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let a = kiln_llb::scratch().file(
        FileAction::from(Mkfile::new("/a", 0o644, "from a"))
            .mkfile(Mkfile::new("/both", 0o644, "a wins? no"))
            .mkfile(Mkfile::new("/u", 0o644, unique())),
    );
    let b = kiln_llb::scratch().file(
        FileAction::from(Mkdir::new("/dir", 0o755))
            .mkfile(Mkfile::new("/dir/b", 0o644, "from b"))
            .mkfile(Mkfile::new("/both", 0o644, "b wins")),
    );
    let s = solve_ok(tmp.path(), "merge", &kiln_llb::merge(&[a.clone(), b]), &[]).await;
    assert_eq!(s.entries(), vec!["a", "both", "dir", "dir/b", "u"]);
    assert_eq!(s.read("a"), "from a");
    assert_eq!(s.read("dir/b"), "from b");
    assert_eq!(s.read("both"), "b wins", "later inputs win");

    // diff(base, base + files) holds the added files only.
    let upper = a.file(
        FileAction::from(Mkdir::new("/new", 0o755))
            .mkfile(Mkfile::new("/new/x", 0o644, "x"))
            .mkfile(Mkfile::new("/y", 0o644, "y")),
    );
    let s = solve_ok(tmp.path(), "diff", &kiln_llb::diff(&a, &upper), &[]).await;
    assert_eq!(s.entries(), vec!["new", "new/x", "y"]);

    // The same over a RUN on the go image: nothing of the image itself.
    let base = go_image();
    let upper = base
        .run(ExecOptions::shell(format!(
            "mkdir -p /added && echo {} > /added/x",
            unique()
        )))
        .root();
    let s = solve_ok(tmp.path(), "diff-run", &kiln_llb::diff(&base, &upper), &[]).await;
    let e = s.entries();
    assert!(e.contains(&"added/x".to_string()), "{e:?}");
    assert!(
        e.iter()
            .all(|x| !x.starts_with("usr") && !x.starts_with("bin")),
        "{e:?}"
    );
    assert!(e.len() < 10, "only the RUN's changes: {e:?}");
}
