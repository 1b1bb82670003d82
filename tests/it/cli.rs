//! CLI polish: help, version, completions, bad flags.

use crate::common::*;

#[tokio::test]
async fn version_names_the_commit() {
    let r = run(kiln(), &["--version"]).await;
    r.success();
    assert!(r.stdout.starts_with("kiln 0."), "{}", r.stdout);
    assert!(
        r.stdout.contains('(') && r.stdout.contains(')'),
        "{}",
        r.stdout
    );
    assert!(
        !r.stdout.contains("(unknown)"),
        "built from git, so the commit is known: {}",
        r.stdout
    );
}

#[tokio::test]
async fn help_has_examples_and_environment() {
    let r = run(kiln(), &["--help"]).await;
    r.success();
    for want in [
        "Examples:",
        "BUILDKIT_HOST",
        "KILN_PROGRESS",
        "NO_COLOR",
        "DOCKER_CONFIG",
        "DOCKER_HOST",
        "info",
        "solve",
        "completion",
    ] {
        assert!(
            r.stdout.contains(want),
            "--help lacks {want}:\n{}",
            r.stdout
        );
    }
    let r = run(kiln(), &["solve", "--help"]).await;
    r.success();
    assert!(r.stdout.contains("Examples:"), "{}", r.stdout);
    assert!(r.stdout.contains("--progress"), "{}", r.stdout);
}

#[tokio::test]
async fn completions_for_each_shell() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef kiln"),
        ("fish", "complete -c kiln"),
    ] {
        let r = run(kiln(), &["completion", shell]).await;
        r.success();
        assert!(
            r.stdout.contains(marker),
            "{shell}: {}",
            &r.stdout[..r.stdout.len().min(300)]
        );
        assert!(
            r.stdout.contains("prune"),
            "{shell} completion lacks subcommands"
        );
    }
    let r = run(kiln(), &["completion", "tcsh"]).await;
    assert_eq!(r.code, Some(2));
    assert!(r.stderr.contains("invalid value 'tcsh'"), "{}", r.stderr);
}

#[tokio::test]
async fn output_to_a_closed_pipe_is_not_a_panic() {
    // `kiln completion bash | head -1`: stdout closes early.
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{} completion bash | head -1",
            env!("CARGO_BIN_EXE_kiln")
        ))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
}
