//! Build secrets: readable inside RUN from a file, an environment variable
//! or the `--secret id=X` shorthand, and their values appear nowhere else.

use std::path::Path;

use kiln_llb::{ExecOptions, SecretMount};

use crate::common::*;
use crate::llb_util::changes;
use crate::session_common::*;

/// Long random values that cannot occur by chance.
struct Values {
    file: String,
    env: String,
    bare_env: String,
    bare_file: String,
}

impl Values {
    fn new() -> Values {
        let v = |kind: &str| format!("kiln-secret-{kind}-{}{}{}", unique(), unique(), unique());
        Values {
            file: v("file"),
            env: v("env"),
            bare_env: v("bareenv"),
            bare_file: v("barefile"),
        }
    }

    fn all(&self) -> [&str; 4] {
        [&self.file, &self.env, &self.bare_env, &self.bare_file]
    }

    /// Fails if any value occurs in `bytes`.
    #[track_caller]
    fn assert_absent(&self, what: &str, bytes: &[u8]) {
        for v in self.all() {
            assert!(
                !contains_bytes(bytes, v.as_bytes()),
                "a secret value leaked into {what}"
            );
        }
    }
}

const BARE_ENV_ID: &str = "KILN_TEST_BARE_SECRET";
const BARE_FILE_ID: &str = "bare-secret-file";

/// Reads every secret and writes only their hashes (into the rootfs, so
/// the exported diff is everything the RUN changed).
fn secrets_graph(marker: &str, fail_with: Option<i32>) -> kiln_llb::State {
    let tail = match fail_with {
        Some(code) => format!(" && echo failing on purpose && exit {code}"),
        None => String::new(),
    };
    let base = go_env(go_image());
    let run = base.run(
        ExecOptions::shell(format!(
            "echo {marker} && mkdir -p /out \
             && sha256sum < /run/secrets/fromfile | cut -c1-64 > /out/file.sha \
             && printf %s \"$FROMENV\" | sha256sum | cut -c1-64 > /out/env.sha \
             && sha256sum < /run/secrets/bare | cut -c1-64 > /out/bare-env.sha \
             && sha256sum < /run/secrets/barefile | cut -c1-64 > /out/bare-file.sha \
             && stat -c '%a %u' /run/secrets/fromfile > /out/file.stat \
             && (test -e /run/secrets/absent && echo present || echo absent) > /out/absent{tail}"
        ))
        .secret(SecretMount::file("fromfile", "/run/secrets/fromfile"))
        .secret(SecretMount::env("fromenv", "FROMENV"))
        .secret(SecretMount::file(BARE_ENV_ID, "/run/secrets/bare"))
        .secret(SecretMount::file(BARE_FILE_ID, "/run/secrets/barefile"))
        .secret(SecretMount::file("absent", "/run/secrets/absent").optional()),
    );
    changes(&base, &run.root(), "/out")
}

/// `kiln solve` with the three kinds of `--secret`, in `dir` (where the
/// bare file secret lives).
async fn solve_with_secrets(dir: &Path, v: &Values, def: &Path, extra: &[&str]) -> Run {
    let src = dir.join("secret.txt");
    std::fs::write(&src, &v.file).unwrap();
    std::fs::write(dir.join(BARE_FILE_ID), &v.bare_file).unwrap();
    let mut cmd = kiln();
    cmd.current_dir(dir)
        .env("KILN_TEST_SECRET_ENV", &v.env)
        .env(BARE_ENV_ID, &v.bare_env);
    cmd.args(daemon().kiln_args());
    let file_spec = format!("id=fromfile,src={}", src.display());
    let bare_env = format!("id={BARE_ENV_ID}");
    let bare_file = format!("id={BARE_FILE_ID}");
    let mut args = vec![
        "solve",
        "-f",
        def.to_str().unwrap(),
        "--secret",
        &file_spec,
        "--secret",
        "id=fromenv,env=KILN_TEST_SECRET_ENV",
        "--secret",
        &bare_env,
        "--secret",
        &bare_file,
    ];
    args.extend_from_slice(extra);
    run(cmd, &args).await
}

#[tokio::test(flavor = "multi_thread")]
async fn session_secrets_reach_the_run_and_leak_nowhere() {
    let tmp = tempfile::tempdir().unwrap();
    let v = Values::new();

    for progress in ["plain", "rawjson"] {
        let graph = secrets_graph(&unique(), None);
        let def_bytes = definition(&graph).to_bytes();
        v.assert_absent("the marshaled Definition", &def_bytes);
        let def = write_llb(tmp.path(), &format!("{progress}.llb"), &graph);
        let tar = tmp.path().join(format!("{progress}.tar"));
        let out = tmp.path().join(format!("{progress}-out"));
        let r = solve_with_secrets(
            tmp.path(),
            &v,
            &def,
            &[
                "--debug",
                "--progress",
                progress,
                "-o",
                &format!("type=tar,dest={}", tar.display()),
                "-o",
                &format!("type=local,dest={}", out.display()),
            ],
        )
        .await;
        r.success();
        v.assert_absent(
            &format!("--progress {progress} stderr"),
            r.stderr.as_bytes(),
        );
        v.assert_absent("stdout", r.stdout.as_bytes());
        v.assert_absent("the exported tar", &std::fs::read(&tar).unwrap());
        let read = |f: &str| std::fs::read_to_string(out.join("out").join(f)).unwrap();
        assert_eq!(read("file.sha").trim(), sha256_hex(v.file.as_bytes()));
        assert_eq!(read("env.sha").trim(), sha256_hex(v.env.as_bytes()));
        assert_eq!(
            read("bare-env.sha").trim(),
            sha256_hex(v.bare_env.as_bytes())
        );
        assert_eq!(
            read("bare-file.sha").trim(),
            sha256_hex(v.bare_file.as_bytes())
        );
        assert_eq!(
            read("file.stat").trim(),
            "400 0",
            "default secret file mode"
        );
        assert_eq!(read("absent").trim(), "absent", "optional missing secret");
        // The secrets were mounted, never written into the layer.
        let entries = tar_list(&tar);
        assert!(
            entries.iter().all(|e| !e.starts_with("run/secrets/")
                || e.trim_end_matches('/') == "run/secrets"),
            "{entries:?}"
        );
        let rawjson_lines = r.stderr.lines().filter(|l| l.starts_with('{')).count();
        if progress == "rawjson" {
            assert!(rawjson_lines > 0, "{}", r.stderr);
        }
    }

    // A failing build that mounts them: the report names the step, not the values.
    let def = write_llb(tmp.path(), "fail.llb", &secrets_graph(&unique(), Some(9)));
    for progress in ["plain", "rawjson"] {
        let r =
            solve_with_secrets(tmp.path(), &v, &def, &["--debug", "--progress", progress]).await;
        r.failure();
        assert!(r.stderr.contains("exit code: 9"), "{}", r.stderr);
        assert!(r.stderr.contains("failing on purpose"), "{}", r.stderr);
        v.assert_absent(
            &format!("a failure's {progress} stderr"),
            r.stderr.as_bytes(),
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn session_missing_secrets_optional_and_required() {
    let tmp = tempfile::tempdir().unwrap();

    // Optional and missing: the RUN runs without the file, also when the
    // session serves no secrets at all.
    let optional = go_image()
        .run(
            ExecOptions::shell(format!(
                "echo {} && test ! -e /run/secrets/nothere && mkdir /out && echo ran > /out/ran",
                unique()
            ))
            .secret(SecretMount::file("nothere", "/run/secrets/nothere").optional()),
        )
        .root();
    let def = write_llb(
        tmp.path(),
        "optional.llb",
        &changes(&go_image(), &optional, "/out"),
    );
    let out = tmp.path().join("optional-out");
    let r = kiln_d(&[
        "solve",
        "-f",
        def.to_str().unwrap(),
        "--progress",
        "plain",
        "-o",
        &format!("type=local,dest={}", out.display()),
    ])
    .await;
    r.success();
    assert_eq!(
        std::fs::read_to_string(out.join("out/ran")).unwrap(),
        "ran\n"
    );
    // … and when the session serves other secrets.
    let def = write_llb(
        tmp.path(),
        "optional2.llb",
        &go_image()
            .run(
                ExecOptions::shell(format!(
                    "echo {} && test ! -e /run/secrets/nothere",
                    unique()
                ))
                .secret(SecretMount::file("nothere", "/run/secrets/nothere").optional()),
            )
            .root(),
    );
    let other = tmp.path().join("other");
    std::fs::write(&other, "other").unwrap();
    let r = kiln_d(&[
        "solve",
        "-f",
        def.to_str().unwrap(),
        "--progress",
        "plain",
        "--secret",
        &format!("id=other,src={}", other.display()),
    ])
    .await;
    r.success();

    // Required and missing: a clear failure naming the secret.
    let required = go_image().run(
        ExecOptions::shell(format!("echo {} && cat /run/secrets/needed", unique()))
            .secret(SecretMount::file("needed", "/run/secrets/needed")),
    );
    let def = write_llb(tmp.path(), "required.llb", &required.root());
    for extra in [
        vec![],
        vec![
            "--secret".to_owned(),
            format!("id=other,src={}", other.display()),
        ],
    ] {
        let mut args = vec!["solve", "-f", def.to_str().unwrap(), "--progress", "plain"];
        args.extend(extra.iter().map(String::as_str));
        let r = kiln_d(&args).await;
        r.failure();
        let last = r
            .stderr
            .lines()
            .rfind(|l| l.starts_with("error:"))
            .unwrap_or_default()
            .to_owned();
        assert!(
            last.contains("secret needed") && last.contains("not found"),
            "with {extra:?}: {}",
            r.stderr
        );
    }

    // A `--secret` whose file does not exist is refused before solving.
    let r = kiln_d(&[
        "solve",
        "-f",
        def.to_str().unwrap(),
        "--secret",
        "id=needed,src=/nonexistent/kiln-secret",
    ])
    .await;
    r.failure();
    assert!(
        r.stderr.contains("/nonexistent/kiln-secret"),
        "{}",
        r.stderr
    );
}
