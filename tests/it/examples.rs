//! Every example kiln shows runs: the `Examples:` of each `--help` and the
//! commands of README's `sh` and `console` blocks, executed by a shell as
//! written, in a directory that holds what they name (a Go module with a
//! kiln.toml naming the harness's fixture images, certificates, a
//! Definition). A changed or new example that this file does not know how
//! to run fails here, so the help and README cannot drift from what works.

use std::path::{Path, PathBuf};

use crate::common::*;
use crate::go_version::{git_repo_with_tags, Server, LIST_PATH, TOOLCHAINS};
use crate::session_ssh::{keygen, start_agent};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The `Examples:` lines of `kiln [sub] --help` (comments kept: the shell
/// ignores them).
fn help_examples(sub: &[&str]) -> Vec<String> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(sub)
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success(), "kiln {sub:?} --help");
    let help = String::from_utf8(out.stdout).unwrap();
    let Some((_, rest)) = help.split_once("Examples:\n") else {
        return Vec::new();
    };
    rest.lines()
        .take_while(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_string())
        .collect()
}

/// The subcommands `kiln --help` lists.
fn subcommands() -> Vec<String> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    let (_, rest) = help.split_once("Commands:\n").expect("a Commands: section");
    rest.lines()
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect()
}

/// A directory to run examples in: a copy of examples/hello with a
/// kiln.toml naming the fixture images, a `kiln` on PATH that talks to this
/// row's daemon unless the example names its own `--addr`, and a HOME of
/// its own.
struct Sandbox {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    bin: PathBuf,
    home: PathBuf,
    env: Vec<(String, String)>,
    /// Set: the repositories the examples name in the harness's registry
    /// (`127.0.0.1:5000/svc`) are this run's own, under this prefix.
    registry_prefix: Option<String>,
}

/// The harness's registry as the examples spell it.
const EXAMPLE_REGISTRY: &str = "127.0.0.1:5000/";

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

fn kiln_toml() -> String {
    format!(
        "builder-image = \"{}\"\ndistro = \"trixie\"\ngo = \"{}\"\nbase-image = \"{}\"\n",
        crate::build::go_template(),
        crate::build::go_version(),
        harness().static_image
    )
}

/// examples/hello with a kiln.toml naming the fixture images, at `dir`.
fn module_at(dir: &Path) {
    copy_dir(&Path::new(ROOT).join("examples/hello"), dir);
    std::fs::write(dir.join("kiln.toml"), kiln_toml()).unwrap();
}

impl Sandbox {
    fn new(module_dir: &str) -> Sandbox {
        Sandbox::at(module_dir, &daemon().kiln_args())
    }

    /// A sandbox whose `kiln` talks to the daemon `daemon_args` name.
    fn at(module_dir: &str, daemon_args: &[String]) -> Sandbox {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join(module_dir);
        module_at(&dir);
        let bin = tmp.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let daemon_args: Vec<String> = daemon_args.iter().map(|a| format!("'{a}'")).collect();
        script_file(
            &bin.join("kiln"),
            &format!(
                "case \"$1\" in --addr) exec {real} \"$@\" ;; esac\nexec {real} {} \"$@\"",
                daemon_args.join(" "),
                real = env!("CARGO_BIN_EXE_kiln")
            ),
        );
        let home = tmp.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        Sandbox {
            _tmp: tmp,
            dir,
            bin,
            home,
            env: Vec::new(),
            registry_prefix: None,
        }
    }

    /// Gives the examples' registry repositories a prefix of this run's
    /// own: the four rows, and tests within a row, run the same examples
    /// at once, and two writers linking the same blob into one repository
    /// of docker-registry's filesystem store race (the manifest push then
    /// fails with DIGEST_INVALID and MANIFEST_BLOB_UNKNOWN). Returns the
    /// prefix, as `127.0.0.1:5000/PREFIX/`.
    fn own_repositories(&mut self) -> String {
        let prefix = format!("kiln-it-{}", &unique()[..12]);
        let full = format!("{EXAMPLE_REGISTRY}{prefix}/");
        self.registry_prefix = Some(prefix);
        full
    }

    /// Runs `line` with `sh -c` in `cwd`.
    async fn sh(&self, cwd: &Path, line: &str) -> Run {
        let line = match &self.registry_prefix {
            Some(p) => line.replace(EXAMPLE_REGISTRY, &format!("{EXAMPLE_REGISTRY}{p}/")),
            None => line.to_string(),
        };
        let mut c = tokio::process::Command::new("sh");
        c.arg("-c")
            .arg(line)
            .current_dir(cwd)
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    self.bin.display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .env("HOME", &self.home)
            .env("NO_COLOR", "1")
            .env("XDG_CACHE_HOME", self.home.join(".cache"))
            .env_remove("BUILDKIT_HOST")
            .env_remove("DOCKER_HOST")
            .env_remove("SSH_AUTH_SOCK")
            .kill_on_drop(true);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        let t = std::time::Instant::now();
        let out = c.output().await.unwrap();
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            elapsed: t.elapsed(),
        }
    }
}

/// Asserts `r` succeeded, naming the example.
#[track_caller]
fn ok(example: &str, r: &Run) {
    assert_eq!(
        r.code,
        Some(0),
        "the example `{example}` failed\nstdout:\n{}\nstderr:\n{}",
        r.stdout,
        r.stderr
    );
}

/// Whether the example builds several platforms into one image, which the
/// classic image store refuses (kiln says so before building).
fn multi_platform_into_classic_store(example: &str) -> bool {
    daemon().kind == kiln_test_support::DaemonKind::DockerClassic
        && example.contains("linux/amd64,linux/arm64")
}

#[tokio::test(flavor = "multi_thread")]
async fn every_help_example_runs() {
    // Which subcommands show examples: a new one must be added below.
    let with_examples: Vec<String> = subcommands()
        .into_iter()
        .filter(|s| !help_examples(&[s.as_str()]).is_empty())
        .collect();
    assert_eq!(
        with_examples,
        [
            "build",
            "lock",
            "solve",
            "go-version",
            "imagetools",
            "llb",
            "completion"
        ],
        "subcommands with examples changed: teach tests/it/examples.rs to run them"
    );

    // kiln --help: the daemon, its TLS address with the harness's client
    // certificates under the names the example uses, du, prune. On a
    // buildkitd of their own: `kiln prune` must not take the records other
    // tests are using on the shared daemons.
    let bk_dir = tempfile::tempdir().unwrap();
    let (bk_addr, _bk) = crate::cache_export::fresh_buildkitd(bk_dir.path()).await;
    let s = Sandbox::at("svc", &["--addr".to_string(), bk_addr]);
    for (var, to) in [
        ("KILN_TEST_TLS_CA", "ca.pem"),
        ("KILN_TEST_TLS_CERT", "cert.pem"),
        ("KILN_TEST_TLS_KEY", "key.pem"),
    ] {
        let from = harness()
            .var(var)
            .unwrap_or_else(|| panic!("{var}: the harness's TLS files"));
        std::fs::copy(from, s.dir.join(to)).unwrap();
    }
    let top = help_examples(&[]);
    assert_eq!(top.len(), 4, "{top:?}");
    for e in &top {
        let r = s.sh(&s.dir, e).await;
        ok(e, &r);
        if e.ends_with(" info") {
            assert!(r.stdout.contains("Address:"), "{e}: {}", r.stdout);
        }
    }

    // kiln build --help, in a module (./svc is a second one).
    let mut s = Sandbox::new("app");
    s.own_repositories();
    module_at(&s.dir.join("svc"));
    // --ssh default needs an agent; --git-ssh-host a known_hosts line.
    let key = s.home.join("id_ed25519");
    keygen(&key, "kiln-example");
    let public = std::fs::read_to_string(s.home.join("id_ed25519.pub")).unwrap();
    let mut fields = public.split_whitespace();
    let (kind, b64) = (fields.next().unwrap(), fields.next().unwrap());
    std::fs::create_dir_all(s.home.join(".ssh")).unwrap();
    std::fs::write(
        s.home.join(".ssh/known_hosts"),
        format!("git.corp {kind} {b64}\n"),
    )
    .unwrap();
    let agent = start_agent(&s.home, &key).await;
    s.env
        .push(("SSH_AUTH_SOCK".into(), agent.sock.display().to_string()));
    let build = help_examples(&["build"]);
    assert_eq!(build.len(), 6, "{build:?}");
    for e in &build {
        let r = s.sh(&s.dir, e).await;
        if multi_platform_into_classic_store(e) {
            assert_eq!(r.code, Some(1), "{e}: {}", r.stderr);
            assert!(r.stderr.contains("containerd"), "{e}: {}", r.stderr);
            continue;
        }
        ok(e, &r);
    }
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.dir.join("build.json")).unwrap()).unwrap();
    let iid = std::fs::read_to_string(s.dir.join("build.iid")).unwrap();
    assert!(iid.starts_with("sha256:"), "{iid}");
    assert!(meta["kiln.go-version"].is_string(), "{meta}");
    let dot = std::fs::read_to_string(s.dir.join("build.dot")).unwrap();
    assert!(dot.starts_with("digraph"), "{dot}");
    if daemon().kind != kiln_test_support::DaemonKind::DockerClassic {
        assert!(tar_list(&s.dir.join("svc.tar")).contains(&"index.json".to_string()));
    }

    // kiln solve --help and kiln llb --help: a Definition kiln wrote.
    let s = Sandbox::new("app");
    let solve = help_examples(&["solve"]);
    assert_eq!(solve.len(), 3, "{solve:?}");
    for e in &solve {
        ok(e, &s.sh(&s.dir, e).await);
    }
    let llb = help_examples(&["llb"]);
    assert_eq!(llb.len(), 2, "{llb:?}");
    for e in &llb {
        let r = s.sh(&s.dir, e).await;
        ok(e, &r);
        if !e.contains("dot") {
            assert!(r.stdout.contains("go build"), "{e}: {}", r.stdout);
        }
    }
    assert!(std::fs::read_to_string(s.dir.join("graph.dot"))
        .unwrap()
        .starts_with("digraph"));

    // kiln lock --help, in order: lock, re-lock, a locked build.
    let s = Sandbox::new("app");
    let lock = help_examples(&["lock"]);
    assert_eq!(lock.len(), 3, "{lock:?}");
    for e in &lock {
        ok(e, &s.sh(&s.dir, e).await);
    }
    assert!(s.dir.join("kiln.lock").is_file());

    // kiln go-version --help: Go releases from a local module proxy and a
    // local copy of Go's repository, and ./service, a module of its own.
    let mut s = Sandbox::new("app");
    module_at(&s.dir.join("service"));
    let proxy = Server::start(&[(LIST_PATH, TOOLCHAINS)]).await;
    let repo = git_repo_with_tags(&s.home, &["go1.24.0", "go1.24.5", "go1.25rc1"]);
    s.env.push(("GOPROXY".into(), proxy.base.clone()));
    s.env
        .push(("KILN_GO_GIT_URL".into(), repo.display().to_string()));
    s.env.push(("GOENV".into(), "off".into()));
    let go = help_examples(&["go-version"]);
    assert_eq!(go.len(), 4, "{go:?}");
    for e in &go {
        let r = s.sh(&s.dir, e).await;
        ok(e, &r);
        assert!(r.stdout.contains("1.24."), "{e}: {}", r.stdout);
    }

    // kiln imagetools --help: the two runners' images first (svc:amd64,
    // svc:arm64, one platform each), then the examples in order, in
    // repositories of this run's own.
    let mut s = Sandbox::new("app");
    s.own_repositories();
    module_at(&s.dir.join("svc"));
    for arch in ["amd64", "arm64"] {
        let line =
            format!("kiln build ./svc -t 127.0.0.1:5000/svc:{arch} --push --platform linux/{arch}");
        ok(&line, &s.sh(&s.dir, &line).await);
    }
    let tools = help_examples(&["imagetools"]);
    assert_eq!(tools.len(), 7, "{tools:?}");
    for e in &tools {
        let r = s.sh(&s.dir, e).await;
        ok(e, &r);
        if e.contains("--dry-run") {
            let index: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
            assert!(index["manifests"].is_array(), "{e}: {}", r.stdout);
        }
        if e.contains("inspect") && e.ends_with(":1") {
            assert!(r.stdout.contains("linux/arm64"), "{e}: {}", r.stdout);
        }
    }

    // kiln completion --help: into the HOME the examples name.
    let s = Sandbox::new("app");
    for d in [
        ".local/share/bash-completion/completions",
        ".zfunc",
        ".config/fish/completions",
    ] {
        std::fs::create_dir_all(s.home.join(d)).unwrap();
    }
    let completion = help_examples(&["completion"]);
    assert_eq!(completion.len(), 3, "{completion:?}");
    for e in &completion {
        ok(e, &s.sh(&s.dir, e).await);
    }
    for f in [
        ".local/share/bash-completion/completions/kiln",
        ".zfunc/_kiln",
        ".config/fish/completions/kiln.fish",
    ] {
        let text = std::fs::read_to_string(s.home.join(f)).unwrap();
        assert!(text.contains("kiln"), "{f}");
    }
}

/// README's fenced blocks of `lang`, as lists of lines.
fn readme_blocks(lang: &str) -> Vec<Vec<String>> {
    let readme = std::fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap();
    let mut blocks = Vec::new();
    let mut current: Option<Vec<String>> = None;
    for line in readme.lines() {
        match (&mut current, line.strip_prefix("```")) {
            (None, Some(l)) if l == lang => current = Some(Vec::new()),
            (Some(_), Some("")) => blocks.extend(current.take()),
            (Some(b), _) => b.push(line.to_string()),
            (None, _) => {}
        }
    }
    blocks
}

/// A shell line without its trailing comment.
fn command(line: &str) -> &str {
    line.split("  #").next().unwrap_or(line).trim()
}

#[tokio::test(flavor = "multi_thread")]
async fn readme_sh_examples_run() {
    let blocks = readme_blocks("sh");
    let lines: Vec<&str> = blocks
        .iter()
        .flatten()
        .map(|l| command(l))
        .filter(|l| !l.is_empty())
        .collect();
    // What the blocks hold: a new command must be taught to this test.
    assert_eq!(
        lines,
        [
            "cargo install --path .",
            "cd my-go-service",
            "kiln build . -t my-service",
            "kiln build . -t registry.example.com/team/my-service:1 --push --platform linux/amd64,linux/arm64",
            "./scripts/try.sh",
            "./scripts/test.sh",
            "kiln build . --platform linux/amd64 -o type=image,name=127.0.0.1:5000/svc,push-by-digest=true,name-canonical=true,push=true --provenance=mode=max --sbom --metadata-file amd64.json --cache-to type=registry,ref=127.0.0.1:5000/svc:cache-amd64,mode=max --cache-from 127.0.0.1:5000/svc:cache-amd64 --go-cache-from type=local,src=go-cache --go-cache-to type=local,dest=go-cache",
            "kiln build . --platform linux/arm64 -o type=image,name=127.0.0.1:5000/svc,push-by-digest=true,name-canonical=true,push=true --attest type=provenance,mode=max --attest type=sbom --metadata-file arm64.json --iidfile arm64.iid --cache-to type=local,dest=cache-arm64",
            "kiln imagetools create --dry-run -t 127.0.0.1:5000/svc:1 127.0.0.1:5000/svc@$(jq -r '.\"containerimage.digest\"' amd64.json)",
            "kiln imagetools create -t 127.0.0.1:5000/svc:1 127.0.0.1:5000/svc@$(jq -r '.\"containerimage.digest\"' amd64.json) 127.0.0.1:5000/svc@$(jq -r '.\"containerimage.digest\"' arm64.json)",
            "kiln imagetools inspect 127.0.0.1:5000/svc:1",
            "./benches/bench.sh",
        ],
        "README's sh blocks changed: teach tests/it/examples.rs to run them"
    );
    // The bench takes half an hour: only its presence is checked here (its
    // Python half is a module the unit row compiles: `python3 -m py_compile`).
    let bench = Path::new(ROOT).join("benches/bench.sh");
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&bench).unwrap().permissions().mode();
        assert!(mode & 0o111 != 0, "{} is not executable", bench.display());
    }
    assert!(std::fs::read_to_string(&bench)
        .unwrap()
        .contains("benches/bench.py"));
    // try.sh, test.sh and the install: CI runs test.sh (.ci/run), which
    // runs try.sh after the suite and then `cargo install --path .` (with
    // try.sh's release build, into a root of its own): a test here would
    // wait on the unit row's cargo lock.
    let ci = std::fs::read_to_string(Path::new(ROOT).join(".ci/run")).unwrap();
    assert!(ci.contains("./scripts/test.sh"), "{ci}");
    let test_sh = std::fs::read_to_string(Path::new(ROOT).join("scripts/test.sh")).unwrap();
    assert!(test_sh.contains("\"$ROOT/scripts/try.sh\""));
    assert!(test_sh.contains("cargo install --path . "));

    // The quick start, in a Go module named my-go-service (its kiln.toml
    // names the fixture images; nothing can be pulled here), pushing to the
    // harness's registry instead of registry.example.com.
    let s = Sandbox::new("my-go-service");
    let parent = s.dir.parent().unwrap().to_path_buf();
    let quick = blocks
        .iter()
        .find(|b| b.iter().any(|l| l.starts_with("cd my-go-service")))
        .unwrap();
    let script: Vec<String> = quick
        .iter()
        .map(|l| command(l).replace("registry.example.com", &harness().registry))
        .collect();
    let multi = script.iter().any(|l| multi_platform_into_classic_store(l));
    let r = s
        .sh(&parent, &format!("set -e\n{}", script.join("\n")))
        .await;
    if multi {
        assert_eq!(r.code, Some(1), "{}", r.stderr);
        assert!(r.stderr.contains("containerd"), "{}", r.stderr);
        // ... after the one-platform build into the store succeeded.
        assert_eq!(r.stdout.matches("sha256:").count(), 1, "{}", r.stdout);
    } else {
        ok("quick start", &r);
        assert!(
            r.stdout.matches("sha256:").count() >= 2,
            "{}\n{}",
            r.stdout,
            r.stderr
        );
    }
}

/// README's CI matrix: two one-platform builds pushed by digest with
/// attestations, joined by `kiln imagetools create`, as written.
#[tokio::test(flavor = "multi_thread")]
async fn readme_ci_matrix_runs() {
    let blocks = readme_blocks("sh");
    let matrix = blocks
        .iter()
        .find(|b| b.iter().any(|l| l.contains("imagetools create -t")))
        .expect("README's CI matrix block");
    let mut s = Sandbox::new("app");
    let registry = s.own_repositories();
    let script: Vec<&str> = matrix.iter().map(|l| command(l)).collect();
    let r = s
        .sh(&s.dir, &format!("set -e\n{}", script.join("\n")))
        .await;
    if !daemon().supports(Need::PushByDigest) {
        // Refused before building, naming the store (it can neither push
        // by digest nor keep attestations).
        assert_eq!(r.code, Some(1), "{}", r.stderr);
        assert!(r.stderr.contains("classic image store"), "{}", r.stderr);
        assert!(!s.dir.join("amd64.json").exists());
        return;
    }
    ok("README's CI matrix", &r);
    // Each runner's digest is what the registry has, and the joined index
    // lists both platforms with their attestations.
    for f in ["amd64.json", "arm64.json"] {
        let j: serde_json::Value =
            serde_json::from_slice(&std::fs::read(s.dir.join(f)).unwrap()).unwrap();
        let d = j["containerimage.digest"].as_str().unwrap();
        assert!(r.stdout.contains(d), "{f}: {d} not in\n{}", r.stdout);
    }
    assert!(
        r.stdout.contains("linux/arm64") && r.stdout.contains("linux/amd64"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.matches("https://spdx.dev/Document").count() >= 2,
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.matches("https://slsa.dev/provenance/v1").count() >= 2,
        "{}",
        r.stdout
    );
    // The caches and the image ID the runners wrote.
    assert!(s.dir.join("cache-arm64/index.json").is_file());
    assert!(s.dir.join("go-cache/linux-amd64/kiln-go-cache").is_file());
    let iid = std::fs::read_to_string(s.dir.join("arm64.iid")).unwrap();
    assert!(iid.starts_with("sha256:"), "{iid}");
    let cache = kiln_image::ImageRef::parse(&format!("{registry}svc:cache-amd64")).unwrap();
    assert!(kiln_image::registry::RegistryClient::new()
        .unwrap()
        .head_manifest(&cache)
        .await
        .unwrap()
        .is_some());
}

/// README's example session: each `$` command runs in one shell, in order,
/// from a copy of the repository's examples; what it shows (apart from
/// progress, elisions and digests) must appear in what it prints, and a
/// shown `error:` must be its error.
#[tokio::test(flavor = "multi_thread")]
async fn readme_example_session_runs() {
    // The session names the containerd-store Docker and the plain-TCP
    // buildkitd of the harness by address; it runs once, on that row.
    if daemon().kind != kiln_test_support::DaemonKind::Docker {
        eprintln!(
            "skipped on {}: README's example session names the docker row's socket",
            daemon().kind
        );
        return;
    }
    let mut blocks = readme_blocks("console");
    assert_eq!(blocks.len(), 1, "one console block");
    // The session names the Go release of the harness's builder fixture,
    // which follows Debian's golang package: when the mirror has moved on,
    // read the session with the fixture's release (README is updated when
    // someone next runs it by hand).
    let shown_go = blocks[0]
        .iter()
        .find_map(|l| l.split("--go ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the session names a Go release with --go")
        .trim_end_matches('"')
        .to_string();
    let go = crate::build::go_version();
    if shown_go != go {
        eprintln!("note: README's session shows Go {shown_go}; the harness has {go}");
        for l in &mut blocks[0] {
            *l = l.replace(&shown_go, &go);
        }
    }
    let s = Sandbox::new("examples/hello");
    let root = s.dir.parent().unwrap().parent().unwrap().to_path_buf();
    std::fs::remove_file(s.dir.join("kiln.toml")).unwrap();
    // The real kiln, not the wrapper: the session sets its own address.
    let real_bin = root.join("real-bin");
    std::fs::create_dir_all(&real_bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_kiln"), real_bin.join("kiln")).unwrap();

    // Commands and the output shown after each.
    let mut steps: Vec<(String, Vec<String>)> = Vec::new();
    for line in &blocks[0] {
        match line.strip_prefix("$ ") {
            Some(cmd) => steps.push((cmd.to_string(), Vec::new())),
            None => steps
                .last_mut()
                .expect("output after a command")
                .1
                .push(line.clone()),
        }
    }
    assert!(steps.len() >= 5, "{steps:?}");
    // One shell for the whole session (exports carry over); each command's
    // output goes to its own files and its exit code is recorded.
    let mut script = String::new();
    for (i, (cmd, _)) in steps.iter().enumerate() {
        if cmd.starts_with('#') {
            continue; // a comment line of the session
        }
        script.push_str(&format!("{cmd} >out.{i} 2>err.{i}; echo $? >rc.{i}\n"));
    }
    let s2 = Sandbox {
        _tmp: tempfile::tempdir().unwrap(),
        dir: s.dir.clone(),
        bin: real_bin,
        home: s.home.clone(),
        env: Vec::new(),
        registry_prefix: None,
    };
    let r = s2.sh(&root, &script).await;
    ok("the example session", &r);
    for (i, (cmd, shown)) in steps.iter().enumerate() {
        if cmd.starts_with('#') {
            continue;
        }
        let read = |f: &str| std::fs::read_to_string(root.join(format!("{f}.{i}"))).unwrap();
        let (rc, out, err) = (read("rc"), read("out"), read("err"));
        let printed = format!("{out}{err}");
        let error = shown.iter().find(|l| l.starts_with("error:"));
        match error {
            Some(e) => {
                assert_eq!(rc.trim(), "1", "`{cmd}` should fail:\n{printed}");
                assert!(err.contains(e.as_str()), "`{cmd}`: {e:?} not in\n{err}");
            }
            None => assert_eq!(rc.trim(), "0", "`{cmd}` failed:\n{printed}"),
        }
        for l in shown {
            let checked = !(l.trim().is_empty()
                || l.contains('…')
                || l.starts_with('#')
                || l.starts_with("sha256:"));
            if checked {
                assert!(
                    printed.contains(l.as_str()),
                    "`{cmd}`: {l:?} not in\n{printed}"
                );
            }
        }
    }
}
