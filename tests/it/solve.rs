//! `kiln solve` with local dirs and outputs against the real daemon.

use kiln_llb::{Copy, ExecOptions, Mkfile, Mount};

use crate::common::*;

#[tokio::test(flavor = "multi_thread")]
async fn local_context_to_tar_and_local_outputs() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    std::fs::create_dir_all(ctx.join("sub")).unwrap();
    std::fs::write(ctx.join("hello.txt"), "hello from the context\n").unwrap();
    std::fs::write(ctx.join("sub/nested.txt"), unique()).unwrap();
    let marker = unique();
    let state = go_image()
        .run(
            ExecOptions::shell(format!(
                "cat /ctx/hello.txt > /out/copied.txt && echo {marker} > /out/marker && ls /ctx/sub > /out/listing"
            ))
            // Unique per test: BuildKit merges identical local sources of
            // concurrent builds and may serve one from another's session.
            .mount(
                Mount::bind(
                    "/ctx",
                    &kiln_llb::local_with("context", kiln_llb::LocalOptions::new().unique_id(unique())),
                )
                .readonly(),
            )
            .mount(Mount::scratch("/out")),
        )
        .get_mount("/out");
    let def = write_llb(tmp.path(), "def.llb", &state);
    let tar = tmp.path().join("out.tar");
    let dir = tmp.path().join("outdir");
    let r = kiln_d(&[
        "solve",
        "-f",
        def.to_str().unwrap(),
        "--progress",
        "plain",
        "--local",
        &format!("context={}", ctx.display()),
        "-o",
        &format!("type=tar,dest={}", tar.display()),
        "-o",
        &format!("type=local,dest={}", dir.display()),
    ])
    .await;
    r.success();
    let mut entries = tar_list(&tar);
    entries.sort();
    assert_eq!(
        entries,
        vec!["copied.txt", "listing", "marker"],
        "{}",
        r.stderr
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("copied.txt")).unwrap(),
        "hello from the context\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("marker")).unwrap().trim(),
        marker
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("listing")).unwrap().trim(),
        "nested.txt"
    );
    // No temporary files left next to the outputs.
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_build_leaves_no_output_and_reports_the_step() {
    let tmp = tempfile::tempdir().unwrap();
    let marker = unique();
    let state = go_image().run(
        ExecOptions::shell(format!(
            "echo start {marker}; for i in $(seq 1 30); do echo line $i; done; echo oops; exit 3"
        ))
        .custom_name("[test 1/1] a step that fails"),
    );
    let def = write_llb(tmp.path(), "def.llb", &state.root());
    let tar = tmp.path().join("out.tar");
    let r = kiln_d(&[
        "solve",
        "-f",
        def.to_str().unwrap(),
        "--progress",
        "plain",
        "-o",
        &format!("type=tar,dest={}", tar.display()),
    ])
    .await;
    r.failure();
    assert!(!tar.exists(), "a failed build left {}", tar.display());
    let e = &r.stderr;
    assert!(e.contains("error: step #"), "{e}");
    assert!(
        e.contains("[test 1/1] a step that fails failed with exit code 3"),
        "{e}"
    );
    assert!(
        e.contains(&format!("command: /bin/sh -c 'echo start {marker}")),
        "{e}"
    );
    assert!(e.contains("last 20 lines of its output (of 32)"), "{e}");
    assert!(e.contains("│ line 30") && e.contains("│ oops"), "{e}");
    assert!(
        !e.contains("│ line 11\n") && e.contains("│ line 12\n"),
        "only the last 20 lines: {e}"
    );
    let last = e.lines().rfind(|l| !l.starts_with("hint:")).unwrap();
    assert!(
        last.starts_with("error: build failed:") && last.contains("exit code: 3"),
        "{last}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_definitions_and_outputs_are_refused_before_solving() {
    let tmp = tempfile::tempdir().unwrap();
    let junk = tmp.path().join("junk.llb");
    std::fs::write(&junk, b"\xff\xff\xff not protobuf").unwrap();
    let r = run(
        kiln(),
        &[
            "--addr",
            "unix:///nonexistent.sock",
            "solve",
            "-f",
            junk.to_str().unwrap(),
        ],
    )
    .await;
    r.failure();
    assert!(
        r.stderr.contains("is not a marshaled LLB Definition"),
        "{}",
        r.stderr
    );

    let empty = tmp.path().join("empty.llb");
    std::fs::write(&empty, b"").unwrap();
    let r = run(
        kiln(),
        &[
            "--addr",
            "unix:///nonexistent.sock",
            "solve",
            "-f",
            empty.to_str().unwrap(),
        ],
    )
    .await;
    r.failure();
    assert!(r.stderr.contains("empty LLB Definition"), "{}", r.stderr);

    let ok = write_llb(
        tmp.path(),
        "ok.llb",
        &kiln_llb::scratch().mkfile(Mkfile::new("/x", 0o644, "x")),
    );
    let r = run(
        kiln(),
        &[
            "--addr",
            "unix:///nonexistent.sock",
            "solve",
            "-f",
            ok.to_str().unwrap(),
            "-o",
            "type=zip,dest=x",
        ],
    )
    .await;
    r.failure();
    assert!(r.stderr.contains("unknown type \"zip\""), "{}", r.stderr);
    let r = run(
        kiln(),
        &[
            "--addr",
            "unix:///nonexistent.sock",
            "solve",
            "-f",
            ok.to_str().unwrap(),
            "--local",
            "context=/nonexistent",
        ],
    )
    .await;
    r.failure();
    assert!(r.stderr.contains("not a directory"), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn llb_json_and_dot_dumps() {
    let tmp = tempfile::tempdir().unwrap();
    let st = kiln_llb::scratch().copy(Copy::new(kiln_llb::local("context"), "/a", "/b"));
    let def = write_llb(tmp.path(), "d.llb", &st);
    let r = run(kiln(), &["llb", "-f", def.to_str().unwrap()]).await;
    r.success();
    let v = r.json();
    let ops = v["ops"].as_array().expect("ops");
    assert!(
        ops.iter()
            .all(|o| o["digest"].as_str().unwrap().starts_with("sha256:")),
        "{v}"
    );
    let r = run(
        kiln(),
        &["llb", "-f", def.to_str().unwrap(), "--format", "dot"],
    )
    .await;
    r.success();
    assert!(r.stdout.starts_with("digraph"), "{}", r.stdout);
    assert!(r.stdout.contains("local://context"), "{}", r.stdout);
}
