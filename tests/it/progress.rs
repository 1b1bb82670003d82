//! Progress output and cancellation, as a CI engineer sees them.

use std::time::{Duration, Instant};

use kiln_llb::{ExecOptions, Mount};

use crate::common::*;

/// Two named steps: the second reads what the first wrote.
fn two_steps(m: &str) -> kiln_llb::State {
    let first = go_image().run(
        ExecOptions::shell(format!("echo first-{m} > /out/one && echo wrote one"))
            .mount(Mount::scratch("/out"))
            .custom_name("[test 1/2] write one"),
    );
    go_image()
        .run(
            ExecOptions::shell("cat /in/one && cp /in/one /out/two && echo copied")
                .mount(Mount::bind("/in", &first.get_mount("/out")).readonly())
                .mount(Mount::scratch("/out"))
                .custom_name("[test 2/2] copy it"),
        )
        .get_mount("/out")
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_progress_numbers_steps_and_shows_cached_on_rebuild() {
    let tmp = tempfile::tempdir().unwrap();
    let m = unique();
    let def = write_llb(tmp.path(), "d.llb", &two_steps(&m));
    let args = ["solve", "-f", def.to_str().unwrap(), "--progress", "plain"];
    let r = kiln_d(&args).await;
    r.success();
    let e = &r.stderr;
    let num = |name: &str| -> String {
        e.lines()
            .find(|l| l.starts_with('#') && l.ends_with(name))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_else(|| panic!("no step line for {name}:\n{e}"))
            .to_string()
    };
    let (one, two) = (num("[test 1/2] write one"), num("[test 2/2] copy it"));
    assert!(e.contains(&format!("{one} DONE ")), "{e}");
    assert!(e.contains(&format!("{two} DONE ")), "{e}");
    // Log lines carry their step number and the seconds since it started.
    let log = e
        .lines()
        .find(|l| l.starts_with(&format!("{two} ")) && l.ends_with(&format!("first-{m}")))
        .unwrap_or_else(|| panic!("no log line of {two}:\n{e}"));
    let secs = log.split_whitespace().nth(1).unwrap();
    assert!(secs.parse::<f64>().is_ok(), "{log}");
    assert!(
        !e.contains("CACHED\n#") || e.contains("docker-image"),
        "{e}"
    );

    let again = kiln_d(&args).await;
    again.success();
    let e2 = &again.stderr;
    for name in ["[test 1/2] write one", "[test 2/2] copy it"] {
        let n = e2
            .lines()
            .find(|l| l.ends_with(name))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_else(|| panic!("{name} missing on rebuild:\n{e2}"))
            .to_string();
        assert!(
            e2.contains(&format!("{n} CACHED")),
            "{name} not CACHED on rebuild:\n{e2}"
        );
    }
    assert!(!e2.contains("wrote one"), "a cached step ran again:\n{e2}");
}

#[tokio::test(flavor = "multi_thread")]
async fn rawjson_progress_is_one_object_per_line_with_stable_fields() {
    let tmp = tempfile::tempdir().unwrap();
    let m = unique();
    let def = write_llb(tmp.path(), "d.llb", &two_steps(&m));
    let r = kiln_d(&[
        "solve",
        "-f",
        def.to_str().unwrap(),
        "--progress",
        "rawjson",
    ])
    .await;
    r.success();
    let events: Vec<serde_json::Value> = r
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(events.len() >= 4, "{}", r.stderr);
    let vertexes: Vec<&serde_json::Value> = events
        .iter()
        .filter_map(|e| e["vertexes"].as_array())
        .flatten()
        .collect();
    let named = |n: &str| {
        vertexes
            .iter()
            .filter(|v| v["name"] == n)
            .cloned()
            .collect::<Vec<_>>()
    };
    let two = named("[test 2/2] copy it");
    assert!(
        two.iter()
            .any(|v| v["completed"].is_number() && v["started"].is_number()),
        "{two:?}"
    );
    assert!(two
        .iter()
        .all(|v| v["digest"].as_str().unwrap().starts_with("sha256:") && v["cached"] == false));
    let logs: Vec<&serde_json::Value> = events
        .iter()
        .filter_map(|e| e["logs"].as_array())
        .flatten()
        .collect();
    assert!(
        logs.iter().any(|l| l["data"]
            .as_str()
            .unwrap_or("")
            .contains(&format!("first-{m}"))
            && l["stream"] == 1),
        "{logs:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn quiet_progress_prints_nothing_on_stderr() {
    let tmp = tempfile::tempdir().unwrap();
    let def = write_llb(tmp.path(), "d.llb", &two_steps(&unique()));
    let r = kiln_d(&["solve", "-f", def.to_str().unwrap(), "--progress", "quiet"]).await;
    r.success();
    assert!(r.stderr.trim().is_empty(), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn rawjson_of_a_failing_build_has_the_error_and_exit_code() {
    let tmp = tempfile::tempdir().unwrap();
    let st = go_image().run(
        ExecOptions::shell(format!("echo bad-{}; exit 7", unique())).custom_name("[test 1/1] fail"),
    );
    let def = write_llb(tmp.path(), "d.llb", &st.root());
    let r = kiln_d(&[
        "solve",
        "-f",
        def.to_str().unwrap(),
        "--progress",
        "rawjson",
    ])
    .await;
    r.failure();
    let json_lines: Vec<serde_json::Value> = r
        .stderr
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let errs: Vec<String> = json_lines
        .iter()
        .filter_map(|e| e["vertexes"].as_array())
        .flatten()
        .filter_map(|v| v["error"].as_str().map(String::from))
        .collect();
    assert!(
        errs.iter().any(|e| e.contains("exit code: 7")),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("failed with exit code 7"), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn tty_progress_under_a_real_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    let m = unique();
    let def = write_llb(tmp.path(), "d.llb", &two_steps(&m));
    let session = format!("kiln-tty-{m}");
    let script = tmp.path().join("run.sh");
    script_file(
        &script,
        &format!(
            "unset CI NO_COLOR\n{} {} solve -f {} --progress auto\necho \"EXIT=$?\"\nsleep 60",
            env!("CARGO_BIN_EXE_kiln"),
            daemon().kiln_args().join(" "),
            def.display()
        ),
    );
    let tmux = |args: &[&str]| {
        std::process::Command::new("tmux")
            .args(args)
            .output()
            .expect("tmux runs")
    };
    let started = tmux(&[
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        "100",
        "-y",
        "30",
        script.to_str().unwrap(),
    ]);
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    struct Kill(String);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = std::process::Command::new("tmux")
                .args(["kill-session", "-t", &self.0])
                .output();
        }
    }
    let _guard = Kill(session.clone());
    let deadline = Instant::now() + Duration::from_secs(90);
    let screen = loop {
        let cap = tmux(&["capture-pane", "-p", "-t", &session]);
        let text = String::from_utf8_lossy(&cap.stdout).to_string();
        if text.contains("EXIT=") {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "no result on the terminal:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(screen.contains("EXIT=0"), "{screen}");
    assert!(
        screen.contains("[+] Building") && screen.contains("FINISHED"),
        "{screen}"
    );
    assert!(screen.contains("=> [test 1/2] write one"), "{screen}");
    assert!(screen.contains("=> [test 2/2] copy it"), "{screen}");
    // The live view redraws in place: the header appears once on the final screen,
    // and no plain-mode lines were printed.
    assert_eq!(screen.matches("FINISHED").count(), 1, "{screen}");
    assert!(
        !screen.contains("#1 "),
        "plain output on a terminal:\n{screen}"
    );
    // Every line fits the 100-column terminal.
    assert!(screen.lines().all(|l| l.chars().count() <= 100), "{screen}");
}
