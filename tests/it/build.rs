//! `kiln build` end to end: a Go module to an image on the real daemon, run
//! with the real Docker Engine.

use std::path::{Path, PathBuf};

use crate::common::*;

/// A module with two packages and one vendored external module. `greeting`
/// also goes into go.mod, so concurrent tests share no step: a `--no-cache`
/// build that re-runs a step with the same content key starts a new cache
/// chain under it, and a warm rebuild elsewhere would then miss.
pub fn sample_module(root: &Path, greeting: &str) -> PathBuf {
    let dir = root.join("svc");
    let w = |p: &str, body: &str| {
        let path = dir.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    };
    w(
        "go.mod",
        &format!("// {greeting}\nmodule example.com/svc\n\ngo 1.24\n\nrequire example.org/quote v1.2.0\n"),
    );
    w("go.sum", "");
    w(
        "main.go",
        &format!(
            "package main\n\nimport (\n\t\"fmt\"\n\n\t\"example.com/svc/internal/greet\"\n\t\"example.org/quote\"\n)\n\nfunc main() {{\n\tfmt.Println(greet.Greet(\"{greeting}\"))\n\tfmt.Println(quote.Go())\n}}\n"
        ),
    );
    w("internal/greet/greet.go", "package greet\n\n// Greet greets.\nfunc Greet(s string) string { return \"greetings, \" + s }\n");
    w(
        "vendor/modules.txt",
        "# example.org/quote v1.2.0\n## explicit\nexample.org/quote\n",
    );
    w("vendor/example.org/quote/quote.go", "package quote\n\n// Go returns a proverb.\nfunc Go() string { return \"Don't communicate by sharing memory, share memory by communicating.\" }\n");
    dir
}

/// `kiln build DIR` with the harness's fixture images.
pub fn build_args(dir: &Path, extra: &[&str]) -> Vec<String> {
    build_args_at(daemon().kiln_args(), dir, extra)
}

/// [`build_args`] on another daemon: `daemon_args` are `--addr ADDR` and
/// what else reaching it takes.
pub fn build_args_at(daemon_args: Vec<String>, dir: &Path, extra: &[&str]) -> Vec<String> {
    let h = harness();
    let mut v = daemon_args;
    v.extend([
        "build".into(),
        dir.display().to_string(),
        "--builder-image".into(),
        go_template(),
        "--distro".into(),
        "trixie".into(),
        "--go".into(),
        go_version(),
        "--base-image".into(),
        h.static_image.clone(),
    ]);
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

pub fn go_template() -> String {
    std::env::var("KILN_TEST_GO_TEMPLATE").unwrap_or_else(|_| {
        format!(
            "{}/kiln-fixtures/golang:{{go}}-{{distro}}",
            harness().registry
        )
    })
}

pub fn go_version() -> String {
    std::env::var("KILN_TEST_GO_VERSION").unwrap_or_else(|_| {
        let env = std::fs::read_to_string(harness().dir.join("env")).unwrap_or_default();
        env.lines()
            .find_map(|l| {
                l.strip_prefix("export KILN_TEST_GO_VERSION=")
                    .map(str::to_string)
            })
            .expect("KILN_TEST_GO_VERSION in the harness env")
    })
}

pub async fn kiln_build(dir: &Path, extra: &[&str]) -> Run {
    let args = build_args(dir, extra);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    run(kiln(), &refs).await
}

/// Unpacks an OCI layout tar and returns (index.json, dir).
pub(crate) fn unpack_oci(tar: &Path, into: &Path) -> serde_json::Value {
    untar(tar, into);
    serde_json::from_slice(&std::fs::read(into.join("index.json")).unwrap()).unwrap()
}

/// The bytes of every blob of an OCI layout tar, gzip layers decompressed.
pub(crate) fn plain_blobs(tar: &Path, into: &Path) -> Vec<u8> {
    unpack_oci(tar, into);
    let mut all = Vec::new();
    each_plain_file(
        &into.join("blobs/sha256"),
        |_| true,
        |_, b| all.extend_from_slice(b),
    );
    assert!(all.len() > 1_000_000, "the image holds a Go binary");
    all
}

fn blob(dir: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").unwrap();
    std::fs::read(dir.join("blobs/sha256").join(hex)).unwrap()
}

pub(crate) fn json_blob(dir: &Path, digest: &str) -> serde_json::Value {
    serde_json::from_slice(&blob(dir, digest)).unwrap()
}

/// Lists the files of a gzipped layer blob.
pub(crate) fn layer_files(dir: &Path, digest: &str) -> Vec<String> {
    let hex = digest.strip_prefix("sha256:").unwrap();
    let out = std::process::Command::new("tar")
        .arg("-tf")
        .arg(dir.join("blobs/sha256").join(hex))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim_end_matches('/').to_string())
        .collect()
}

/// The manifests of an OCI layout, by platform.
pub(crate) fn manifests(dir: &Path, index: &serde_json::Value) -> Vec<(String, serde_json::Value)> {
    let mut out = Vec::new();
    for m in index["manifests"].as_array().unwrap() {
        let doc = json_blob(dir, m["digest"].as_str().unwrap());
        if doc["manifests"].is_array() {
            for inner in doc["manifests"].as_array().unwrap() {
                let p = &inner["platform"];
                if p["os"] == "unknown" {
                    continue;
                }
                let name = format!(
                    "{}/{}",
                    p["os"].as_str().unwrap(),
                    p["architecture"].as_str().unwrap()
                );
                out.push((name, json_blob(dir, inner["digest"].as_str().unwrap())));
            }
        } else {
            let cfg = json_blob(dir, doc["config"]["digest"].as_str().unwrap());
            let name = format!(
                "{}/{}",
                cfg["os"].as_str().unwrap(),
                cfg["architecture"].as_str().unwrap()
            );
            out.push((name, doc));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn builds_a_module_into_a_minimal_image_that_runs() {
    let h = harness();
    let tmp = tempfile::tempdir().unwrap();
    let m = unique();
    let dir = sample_module(tmp.path(), &m);
    let oci = tmp.path().join("svc.oci.tar");
    let name = format!("{}/kiln-test/svc:{m}", h.registry);
    let r = kiln_build(
        &dir,
        &[
            "-o",
            &format!("type=oci,dest={}", oci.display()),
            "-t",
            &name,
            "--push",
            "--progress",
            "plain",
        ],
    )
    .await;
    r.success();
    let digest = r.stdout.trim();
    assert!(digest.starts_with("sha256:"), "{}", r.stdout);

    // The pushed image runs and prints what the module says.
    let out = docker(&["run", "--rm", "--pull", "always", &name]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "docker run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&format!("greetings, {m}")), "{stdout}");
    assert!(stdout.contains("share memory by communicating"), "{stdout}");

    // The OCI tarball: only the base's files plus /app/bin; Entrypoint set.
    let lay = tmp.path().join("layout");
    let index = unpack_oci(&oci, &lay);
    let ms = manifests(&lay, &index);
    assert_eq!(ms.len(), 1, "{index}");
    let (platform, manifest) = &ms[0];
    assert_eq!(platform, "linux/amd64");
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(
        layers.len(),
        2,
        "base layer + the binary's layer: {manifest}"
    );
    let app = layer_files(&lay, layers[1]["digest"].as_str().unwrap());
    let mut app: Vec<&str> = app
        .iter()
        .map(|s| s.trim_start_matches("./"))
        .filter(|s| !s.is_empty())
        .collect();
    app.sort();
    assert_eq!(
        app,
        vec!["app", "app/bin"],
        "the second layer holds only /app/bin"
    );
    let cfg = json_blob(&lay, manifest["config"]["digest"].as_str().unwrap());
    assert_eq!(cfg["config"]["Entrypoint"], serde_json::json!(["/app/bin"]));
    assert!(cfg["config"]["Volumes"].is_null(), "{cfg}");
    assert!(
        cfg["config"]["User"].is_null() || cfg["config"]["User"] == "",
        "no USER switch: {cfg}"
    );
    assert_eq!(
        cfg["config"]["Labels"]["org.opencontainers.image.base.name"],
        h.static_image.as_str()
    );
    // Size: base + binary + < 100 KB of overhead.
    let sizes: Vec<i64> = layers.iter().map(|l| l["size"].as_i64().unwrap()).collect();
    let bin_size = {
        let x = tmp.path().join("x");
        std::fs::create_dir_all(&x).unwrap();
        let hex = layers[1]["digest"]
            .as_str()
            .unwrap()
            .strip_prefix("sha256:")
            .unwrap();
        std::process::Command::new("tar")
            .arg("-xf")
            .arg(lay.join("blobs/sha256").join(hex))
            .arg("-C")
            .arg(&x)
            .status()
            .unwrap();
        std::fs::metadata(x.join("app/bin")).unwrap().len() as i64
    };
    let total: i64 = sizes.iter().sum::<i64>() + manifest["config"]["size"].as_i64().unwrap();
    assert!(
        total < sizes[0] + bin_size + 100_000,
        "image {total} B > base {} + binary {bin_size} + 100 KB",
        sizes[0]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tagged_image_loads_into_the_daemons_store_and_runs() {
    // `-t NAME` without --push: the `image` exporter on Docker's containerd
    // store, `moby` on the classic store; a standalone buildkitd keeps it in
    // its own store and says so.
    let tmp = tempfile::tempdir().unwrap();
    let m = unique();
    let dir = sample_module(tmp.path(), &m);
    let name = format!("kiln-test/load:{m}");
    let r = kiln_build(&dir, &["-t", &name, "--progress", "plain"]).await;
    r.success();
    assert!(!r.stderr.contains("could not be found"), "{}", r.stderr);
    if !daemon().supports(Need::DockerEngine) {
        assert!(
            r.stderr.contains("keeps images in its own store") && r.stderr.contains("--push"),
            "{}",
            r.stderr
        );
        return;
    }
    let out = docker(&["run", "--rm", &name]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "docker run {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&format!("greetings, {m}")), "{stdout}");
    let _ = docker(&["image", "rm", &name]);
}

#[tokio::test(flavor = "multi_thread")]
async fn rebuilds_reuse_the_cache_step_by_step() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = sample_module(tmp.path(), &unique());
    let first = kiln_build(&dir, &["--progress", "plain"]).await;
    first.success();
    let step = |r: &Run, name: &str| -> String {
        let e = &r.stderr;
        let n = e
            .lines()
            .find(|l| l.starts_with('#') && l.contains(name))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_else(|| panic!("no step {name}:\n{e}"))
            .to_string();
        if e.contains(&format!("{n} CACHED")) {
            "CACHED".into()
        } else if e.contains(&format!("{n} DONE")) {
            "DONE".into()
        } else {
            panic!("step {name} neither CACHED nor DONE:\n{e}")
        }
    };
    // Nothing changed: everything from cache.
    let warm = kiln_build(&dir, &["--progress", "plain"]).await;
    warm.success();
    assert_eq!(step(&warm, "go mod download"), "CACHED", "{}", warm.stderr);
    assert_eq!(step(&warm, "go build"), "CACHED", "{}", warm.stderr);
    // One .go file edited: only go build runs again.
    std::fs::write(
        dir.join("internal/greet/greet.go"),
        "package greet\n\n// Greet greets.\nfunc Greet(s string) string { return \"hi again, \" + s }\n",
    )
    .unwrap();
    let edited = kiln_build(&dir, &["--progress", "plain"]).await;
    edited.success();
    assert_eq!(
        step(&edited, "go mod download"),
        "CACHED",
        "{}",
        edited.stderr
    );
    assert_eq!(step(&edited, "go build"), "DONE", "{}", edited.stderr);
    // go.sum edited: go mod download runs again.
    std::fs::write(dir.join("go.sum"), "\n").unwrap();
    let sum = kiln_build(&dir, &["--progress", "plain"]).await;
    sum.success();
    assert_eq!(step(&sum, "go mod download"), "DONE", "{}", sum.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn arm64_from_an_amd64_daemon_without_emulation() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = sample_module(tmp.path(), &unique());
    // The plan: every builder exec runs on linux/amd64 while GOARCH=arm64.
    let p = kiln_build(&dir, &["--platform", "linux/arm64", "--print-llb=json"]).await;
    p.success();
    let llb = p.json();
    let execs: Vec<&serde_json::Value> = llb["ops"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["op"]["exec"].is_object() || o["op"]["meta"].is_object())
        .collect();
    assert!(!execs.is_empty(), "{llb}");
    for e in &execs {
        assert_eq!(
            e["platform"]["architecture"], "amd64",
            "an exec not on the build platform: {e}"
        );
    }
    assert!(llb.to_string().contains("GOARCH=arm64"), "{llb}");

    let oci = tmp.path().join("arm.tar");
    let r = kiln_build(
        &dir,
        &[
            "--platform",
            "linux/arm64",
            "-o",
            &format!("type=oci,dest={}", oci.display()),
        ],
    )
    .await;
    r.success();
    let lay = tmp.path().join("l");
    let index = unpack_oci(&oci, &lay);
    let ms = manifests(&lay, &index);
    assert_eq!(
        ms.iter().map(|m| m.0.as_str()).collect::<Vec<_>>(),
        vec!["linux/arm64"]
    );
    let layers = ms[0].1["layers"].as_array().unwrap();
    let x = tmp.path().join("x");
    std::fs::create_dir_all(&x).unwrap();
    let hex = layers.last().unwrap()["digest"]
        .as_str()
        .unwrap()
        .strip_prefix("sha256:")
        .unwrap();
    std::process::Command::new("tar")
        .arg("-xf")
        .arg(lay.join("blobs/sha256").join(hex))
        .arg("-C")
        .arg(&x)
        .status()
        .unwrap();
    let elf = std::fs::read(x.join("app/bin")).unwrap();
    assert_eq!(&elf[..4], b"\x7fELF");
    assert_eq!(
        u16::from_le_bytes([elf[18], elf[19]]),
        0xB7,
        "e_machine is not aarch64"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn multi_platform_build_is_one_index() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = sample_module(tmp.path(), &unique());
    let oci = tmp.path().join("multi.tar");
    let r = kiln_build(
        &dir,
        &[
            "--platform",
            "linux/amd64,linux/arm64",
            "-o",
            &format!("type=oci,dest={}", oci.display()),
            "--progress",
            "plain",
        ],
    )
    .await;
    if daemon().kind == kiln_test_support::DaemonKind::DockerClassic {
        // One platform per image there, and no oci exporter: refused before
        // anything is built, naming the store and the ways out.
        r.failure();
        for want in [
            "classic image store",
            "2-platform",
            "containerd-snapshotter",
            "buildkitd",
        ] {
            assert!(r.stderr.contains(want), "{want}: {}", r.stderr);
        }
        assert!(!r.stderr.contains("could not be found"), "{}", r.stderr);
        assert!(!r.stderr.contains("#1 "), "nothing ran: {}", r.stderr);
        assert!(!oci.exists());
        return;
    }
    r.success();
    let lay = tmp.path().join("l");
    let index = unpack_oci(&oci, &lay);
    let mut plats: Vec<String> = manifests(&lay, &index).into_iter().map(|m| m.0).collect();
    plats.sort();
    assert_eq!(plats, vec!["linux/amd64", "linux/arm64"]);
    // Both final stages start from the same base, pinned by its index digest.
    let base_pins: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.contains("final 1/2] FROM"))
        .collect();
    assert!(
        !base_pins.is_empty() && base_pins.iter().all(|l| l.contains("@sha256:")),
        "{base_pins:?}"
    );
    // The per-platform steps are labelled with their platform.
    for p in ["linux/amd64", "linux/arm64"] {
        assert!(
            r.stderr.contains(&format!("[{p} builder ")),
            "no {p} steps:\n{}",
            r.stderr
        );
        assert!(
            r.stderr.contains(&format!("[{p} final 2/2]")),
            "no {p} final step:\n{}",
            r.stderr
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_no_cache_builds_give_the_same_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = sample_module(tmp.path(), "reproducible");
    let mut digests = Vec::new();
    for i in 0..2 {
        let oci = tmp.path().join(format!("r{i}.tar"));
        let r = kiln_build(
            &dir,
            &[
                "--no-cache",
                "--source-date-epoch",
                "1700000000",
                "-o",
                &format!("type=oci,dest={}", oci.display()),
            ],
        )
        .await;
        r.success();
        digests.push(r.stdout.trim().to_string());
    }
    if digests[0] != digests[1] {
        panic!(
            "two --no-cache builds differ: {} and {}; {}",
            digests[0],
            digests[1],
            layout_difference(&tmp.path().join("r0.tar"), &tmp.path().join("r1.tar"))
        );
    }
    assert!(digests[0].starts_with("sha256:"));
    // Every entry kiln adds carries the epoch, not the time the daemon
    // wrote it (/app once had the wall clock: equal digests held only
    // while the daemon reused its cached copy).
    let lay = tmp.path().join("l");
    let index = unpack_oci(&tmp.path().join("r0.tar"), &lay);
    let (_, manifest) = manifests(&lay, &index).remove(0);
    let top = manifest["layers"].as_array().unwrap().last().unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let mut file = std::fs::File::open(lay.join("blobs/sha256").join(&top[7..])).unwrap();
    let entries = layer_entries(&mut file);
    assert_eq!(entries.len(), 2, "/app and /app/bin: {entries:#?}");
    for e in &entries {
        assert!(
            e.contains(" mode=755 uid=0 gid=0 mtime=1700000000 "),
            "not stamped with the epoch: {entries:#?}"
        );
    }
}

/// What differs between two OCI layout tarballs: the blobs only one holds,
/// with the JSON documents among them (a failure message).
fn layout_difference(a: &Path, b: &Path) -> String {
    use kiln_image::layout::Layout;
    let (Ok(la), Ok(lb)) = (Layout::open(a), Layout::open(b)) else {
        return "(the tarballs cannot be read)".into();
    };
    let only = |x: &Layout, y: &Layout| -> Vec<String> {
        x.blobs()
            .filter(|(d, _)| !y.contains(d))
            .map(|(d, size)| match x.document(d) {
                Some(doc) => format!("{d} ({size} B): {}", String::from_utf8_lossy(doc)),
                None => format!("{d} ({size} B, a layer)"),
            })
            .collect()
    };
    // For the layers only one holds: their tar entries, and the entries
    // that differ between the two sides (what made the layers differ).
    let entries = |x: &Layout, y: &Layout| -> Vec<String> {
        let mut out = Vec::new();
        let _ = x.for_each_blob(|d, _, r| {
            if !y.contains(d) && x.document(d).is_none() {
                out.extend(layer_entries(r));
            }
            Ok(())
        });
        out
    };
    let (ea, eb) = (entries(&la, &lb), entries(&lb, &la));
    let differ = |x: &[String], y: &[String]| -> Vec<String> {
        x.iter().filter(|e| !y.contains(e)).cloned().collect()
    };
    format!(
        "only in the first: {:#?}\nonly in the second: {:#?}\n\
         layer entries only in the first: {:#?}\nlayer entries only in the second: {:#?}",
        only(&la, &lb),
        only(&lb, &la),
        differ(&ea, &eb),
        differ(&eb, &ea)
    )
}

/// One line per entry of a layer (gzip, or a plain tar as the classic
/// store saves them): path, type, mode, owner, mtime, size, PAX records
/// and the content's sha256.
fn layer_entries(r: &mut dyn std::io::Read) -> Vec<String> {
    use sha2::Digest as _;
    use std::io::Read as _;
    let mut magic = [0u8; 2];
    if r.read_exact(&mut magic).is_err() {
        return vec!["(an empty layer)".into()];
    }
    let whole = std::io::Cursor::new(magic).chain(r);
    let plain: Box<dyn std::io::Read + '_> = if magic == [0x1f, 0x8b] {
        Box::new(flate2::read::GzDecoder::new(whole))
    } else {
        Box::new(whole)
    };
    let mut lines = Vec::new();
    let mut tar = tar::Archive::new(plain);
    let Ok(entries) = tar.entries() else {
        return vec!["(not a tar)".into()];
    };
    for entry in entries {
        let Ok(mut e) = entry else {
            lines.push("(a broken entry)".into());
            break;
        };
        let h = e.header().clone();
        let pax: Vec<String> = match e.pax_extensions() {
            Ok(Some(p)) => p
                .filter_map(Result::ok)
                .map(|x| format!("{}={}", x.key().unwrap_or("?"), x.value().unwrap_or("?")))
                .collect(),
            _ => Vec::new(),
        };
        let mut hasher = sha2::Sha256::new();
        let _ = std::io::copy(&mut e, &mut hasher);
        lines.push(format!(
            "{} {:?} mode={:o} uid={} gid={} mtime={} size={} pax={:?} link={:?} sha256={}",
            e.path()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            h.entry_type(),
            h.mode().unwrap_or(0),
            h.uid().unwrap_or(0),
            h.gid().unwrap_or(0),
            h.mtime().unwrap_or(0),
            h.size().unwrap_or(0),
            pax,
            h.link_name()
                .ok()
                .flatten()
                .map(|l| l.display().to_string()),
            hex::encode(hasher.finalize()),
        ));
    }
    lines
}

/// Two, then eight, builds of one module at once against one daemon all
/// succeed and make the same image (the daemon shares the steps; each
/// build's output is its own file).
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_builds_of_one_module_agree() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = sample_module(tmp.path(), &unique());
    for n in [2usize, 8] {
        let mut set = tokio::task::JoinSet::new();
        for i in 0..n {
            let dir = dir.clone();
            let oci = tmp.path().join(format!("c{n}-{i}.tar"));
            set.spawn(async move {
                let o = format!("type=oci,dest={}", oci.display());
                let r = kiln_build(&dir, &["--source-date-epoch", "1700000000", "-o", &o]).await;
                (r, oci)
            });
        }
        let mut digests = std::collections::BTreeSet::new();
        while let Some(done) = set.join_next().await {
            let (r, oci) = done.unwrap();
            r.success();
            assert!(oci.exists(), "{} missing", oci.display());
            digests.insert(r.stdout.trim().to_string());
        }
        assert_eq!(digests.len(), 1, "{n} concurrent builds made {digests:?}");
    }
}

/// Four builds at once with `--apt`, none cached: two install one
/// package, two another, so two different apt steps run at the same time
/// on the same apt cache mounts. The mounts are locked (apt's own locks
/// would fail a second apt-get otherwise): all four succeed, and the two
/// builds of each kind make one image.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_builds_with_apt_agree() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = sample_module(tmp.path(), &unique());
    let mut set = tokio::task::JoinSet::new();
    for (i, pkg) in ["jq", "tree", "jq", "tree"].into_iter().enumerate() {
        let dir = dir.clone();
        let oci = tmp.path().join(format!("apt-{i}.tar"));
        set.spawn(async move {
            let o = format!("type=oci,dest={}", oci.display());
            let r = kiln_build(
                &dir,
                &[
                    "--apt",
                    pkg,
                    "--no-cache",
                    "--source-date-epoch",
                    "1700000000",
                    "--progress",
                    "plain",
                    "-o",
                    &o,
                ],
            )
            .await;
            (r, oci, pkg)
        });
    }
    let mut digests = std::collections::BTreeMap::<&str, std::collections::BTreeSet<String>>::new();
    while let Some(done) = set.join_next().await {
        let (r, oci, pkg) = done.unwrap();
        r.success();
        assert!(
            r.stderr.contains(&format!("Setting up {pkg}")),
            "{pkg} was not installed:\n{}",
            r.stderr
        );
        assert!(oci.exists(), "{} missing", oci.display());
        digests
            .entry(pkg)
            .or_default()
            .insert(r.stdout.trim().to_string());
    }
    // The same build, made twice at once, is the same image.
    for (pkg, d) in &digests {
        assert_eq!(d.len(), 1, "the builds with {pkg} made {d:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn print_llb_dot_names_steps_and_mounts() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = sample_module(tmp.path(), "dot");
    let r = kiln_build(&dir, &["--print-llb=dot"]).await;
    r.success();
    let dot = &r.stdout;
    assert!(dot.starts_with("digraph"), "{dot}");
    for want in [
        "go mod download",
        "go build",
        "[final",
        "kiln-gomod",
        "kiln-gobuild",
    ] {
        assert!(dot.contains(want), "dot lacks {want}:\n{dot}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_one_clear_error_and_no_output() {
    let h = harness();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.tar");
    let o = format!("type=oci,dest={}", out.display());

    // No go.mod.
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let r = kiln_build(&empty, &["-o", &o]).await;
    r.failure();
    assert!(r.stderr.contains("go.mod"), "{}", r.stderr);

    // No go directive.
    let nogo = tmp.path().join("nogo");
    std::fs::create_dir_all(&nogo).unwrap();
    std::fs::write(nogo.join("go.mod"), "module example.com/nogo\n").unwrap();
    let r = kiln_build(&nogo, &["-o", &o]).await;
    r.failure();
    assert!(
        r.stderr.contains("go directive")
            || r.stderr.contains("`go` directive")
            || r.stderr.contains("no go line"),
        "{}",
        r.stderr
    );

    // A main that is not a main package: refused before any build step.
    let dir = sample_module(tmp.path(), "x");
    let r = kiln_build(
        &dir,
        &[
            "--main",
            "./internal/greet",
            "-o",
            &o,
            "--progress",
            "plain",
        ],
    )
    .await;
    r.failure();
    assert!(
        r.stderr
            .contains("--main ./internal/greet is package greet, not a main package"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("#1 "), "no build step ran: {}", r.stderr);

    // A main package that does not compile: fails at go build with its log lines.
    std::fs::write(
        dir.join("broken.go"),
        "package main\n\nfunc broken() { undefined_thing() }\n",
    )
    .unwrap();
    let r = kiln_build(&dir, &["-o", &o, "--progress", "plain"]).await;
    r.failure();
    assert!(
        r.stderr.contains("go build") && r.stderr.contains("failed with exit code 1"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("│") && r.stderr.contains("undefined: undefined_thing"),
        "the step's last log lines: {}",
        r.stderr
    );
    std::fs::remove_file(dir.join("broken.go")).unwrap();

    // An unknown platform.
    let r = kiln_build(&dir, &["--platform", "linux/nonsense", "-o", &o]).await;
    r.failure();
    assert!(r.stderr.contains("linux/nonsense"), "{}", r.stderr);

    // A base image without that platform.
    let r = kiln_build(&dir, &["--platform", "linux/s390x", "-o", &o]).await;
    r.failure();
    assert!(r.stderr.contains("s390x"), "{}", r.stderr);

    // An unreachable registry.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut args = build_args(&dir, &["-o", &o]);
    let bi = args.iter().position(|a| a == "--base-image").unwrap();
    args[bi + 1] = format!("127.0.0.1:{port}/nothing/here:1");
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = run(kiln(), &refs).await;
    r.failure();
    assert!(
        r.stderr.contains(&format!("127.0.0.1:{port}")),
        "{}",
        r.stderr
    );

    assert!(!out.exists(), "a failed build left {}", out.display());
    let _ = h;
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_are_mounted_but_never_in_the_graph_image_or_logs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = sample_module(tmp.path(), &unique());
    let values: Vec<String> = (0..4).map(|i| format!("s3cr3t-{i}-{}", unique())).collect();
    let netrc = tmp.path().join("netrc");
    std::fs::write(
        &netrc,
        format!("machine git.example login me password {}\n", values[0]),
    )
    .unwrap();
    let ca = tmp.path().join("ca.pem");
    std::fs::write(
        &ca,
        format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            values[1]
        ),
    )
    .unwrap();
    // A GOENV file's secret is typically a proxy credential. (GOFLAGS would be
    // a bad carrier: Go records -tags and -ldflags in the binary's build
    // info by design, so they are part of the image whatever kiln does.)
    let goenv = tmp.path().join("goenv");
    std::fs::write(
        &goenv,
        format!(
            "GOPROXY=https://me:{}@goproxy.invalid,direct\nGONOSUMDB=example.org\n",
            values[2]
        ),
    )
    .unwrap();
    let proxy = format!("http://user:{}@proxy.invalid:3128", values[3]);
    let secret_flags = [
        "--netrc",
        netrc.to_str().unwrap(),
        "--ca-bundle",
        ca.to_str().unwrap(),
        "--goenv",
        "--proxy-from-env",
    ];
    let with_env = |mut c: tokio::process::Command| {
        c.env("GOENV", &goenv)
            .env("HTTPS_PROXY", &proxy)
            .env_remove("HTTP_PROXY")
            .env_remove("http_proxy");
        c
    };
    // The graph mounts them as secrets (ids only).
    let mut args = build_args(&dir, &secret_flags);
    args.push("--print-llb=json".into());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let p = run(with_env(kiln()), &refs).await;
    p.success();
    let llb = p.stdout.clone();
    for id in ["\"netrc\"", "\"ca-bundle\"", "\"goenv\"", "\"HTTPS_PROXY\""] {
        assert!(llb.contains(id), "secret {id} not mounted:\n{llb}");
    }
    // Build for real, exporting the image, with full logs.
    let oci = tmp.path().join("img.tar");
    let mut args = build_args(&dir, &secret_flags);
    args.extend([
        "-o".to_string(),
        format!("type=oci,dest={}", oci.display()),
        "--progress".into(),
        "rawjson".into(),
        "--debug".into(),
    ]);
    // Provenance (with the build's parameters) and the SBOM too, where the
    // store keeps attestations: they are searched with the image.
    let attest = daemon().supports(Need::Attestations);
    if attest {
        args.extend(["--provenance=mode=max".to_string(), "--sbom".into()]);
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = run(with_env(kiln()), &refs).await;
    r.success();
    // Every blob, layers decompressed: a gzip stream would hide the bytes.
    let image = plain_blobs(&oci, &tmp.path().join("img"));
    if attest {
        for predicate in [
            "https://slsa.dev/provenance/v1",
            "https://spdx.dev/Document",
        ] {
            assert!(
                image
                    .windows(predicate.len())
                    .any(|w| w == predicate.as_bytes()),
                "no {predicate} attestation in the image"
            );
        }
    }
    for v in &values {
        assert!(!llb.contains(v.as_str()), "a secret value is in the LLB");
        assert!(
            !r.stderr.contains(v.as_str()) && !r.stdout.contains(v.as_str()),
            "a secret value is in the logs"
        );
        assert!(
            !image.windows(v.len()).any(|w| w == v.as_bytes()),
            "a secret value is in the image"
        );
    }
}

/// With kiln.lock, the images are named by digest: their configs come from
/// kiln's own cache after the first build, and the daemon is asked nothing
/// about them (each question is a registry round trip on its side).
#[tokio::test(flavor = "multi_thread")]
async fn a_locked_build_resolves_its_images_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = sample_module(tmp.path(), &unique());
    let cache = tmp.path().join("xdg-cache");
    let lock_args = build_args(&dir, &[]);
    let mut lock_args: Vec<&str> = lock_args.iter().map(String::as_str).collect();
    let at = lock_args.iter().position(|a| *a == "build").unwrap();
    lock_args[at] = "lock";
    run(kiln(), &lock_args).await.success();
    let build = |env: Option<(&'static str, &'static str)>| {
        let args = build_args(
            &dir,
            &[
                "--locked",
                "--source-date-epoch",
                "1700000000",
                "--progress",
                "plain",
            ],
        );
        let cache = cache.clone();
        async move {
            let mut c = kiln();
            c.env("XDG_CACHE_HOME", &cache);
            if let Some((k, v)) = env {
                c.env(k, v);
            }
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            let r = run(c, &refs).await;
            r.success();
            r
        }
    };
    let resolves = |r: &Run| r.stderr.matches("resolve image config for").count();
    let first = build(None).await;
    assert!(
        resolves(&first) >= 2,
        "the first build asks for both:\n{}",
        first.stderr
    );
    let second = build(None).await;
    assert_eq!(resolves(&second), 0, "asked again:\n{}", second.stderr);
    assert_eq!(
        first.stdout.trim(),
        second.stdout.trim(),
        "the cached configs made another image"
    );
    let off = build(Some(("KILN_IMAGE_CONFIG_CACHE", "off"))).await;
    assert!(
        resolves(&off) >= 2,
        "the cache was not turned off:\n{}",
        off.stderr
    );
    assert_eq!(first.stdout.trim(), off.stdout.trim());
}

#[tokio::test(flavor = "multi_thread")]
async fn kiln_toml_and_the_lock_file() {
    let h = harness();
    let tmp = tempfile::tempdir().unwrap();
    let dir = sample_module(tmp.path(), &unique());
    let d = dir.to_str().unwrap();
    // kiln init writes a commented kiln.toml, and refuses to overwrite it.
    run(kiln(), &["init", d]).await.success();
    assert!(std::fs::read_to_string(dir.join("kiln.toml"))
        .unwrap()
        .contains("[build]"));
    let r = run(kiln(), &["init", d]).await;
    r.failure();
    assert!(r.stderr.contains("already exists"), "{}", r.stderr);
    // Options come from kiln.toml.
    let good = format!(
        "go = \"{}\"\nbuilder-image = \"{}\"\ndistro = \"trixie\"\nbase-image = \"{}\"\n[build]\ncmd = [\"--flag\"]\n",
        go_version(),
        go_template(),
        h.static_image
    );
    std::fs::write(dir.join("kiln.toml"), &good).unwrap();
    let r = kiln_d(&["build", d, "--print-llb=json"]).await;
    r.success();
    assert!(
        r.stdout.contains(&h.static_image),
        "kiln.toml base image not used"
    );
    // A typo in kiln.toml is an error naming the key.
    std::fs::write(dir.join("kiln.toml"), good.replace("distro", "distor")).unwrap();
    let r = kiln_d(&["build", d, "--print-llb"]).await;
    r.failure();
    assert!(r.stderr.contains("distor"), "{}", r.stderr);
    std::fs::write(dir.join("kiln.toml"), &good).unwrap();

    // --locked without a lock fails; kiln lock writes one with digests.
    let r = kiln_d(&["build", d, "--locked", "--print-llb"]).await;
    r.failure();
    assert!(r.stderr.contains("kiln lock"), "{}", r.stderr);
    kiln_d(&["lock", d]).await.success();
    let lock = std::fs::read_to_string(dir.join("kiln.lock")).unwrap();
    assert!(
        lock.contains(&format!("go = \"{}\"", go_version())),
        "{lock}"
    );
    assert_eq!(lock.matches("digest = \"sha256:").count(), 2, "{lock}");
    assert!(
        lock.contains("\"linux/arm64\" = \"sha256:"),
        "per-platform base digests: {lock}"
    );
    // A second `kiln lock` refuses to overwrite without --update.
    let r = kiln_d(&["lock", d]).await;
    r.failure();
    assert!(r.stderr.contains("--update"), "{}", r.stderr);
    // --locked builds with the lock's inputs.
    let oci = tmp.path().join("l.tar");
    let o = format!("type=oci,dest={}", oci.display());
    kiln_d(&["build", d, "--locked", "-o", &o]).await.success();
    assert!(oci.exists());
    // A stale lock (the base image changed) fails --locked with the reason.
    let other = format!("{}/kiln-fixtures/static:latest", h.registry);
    std::fs::write(dir.join("kiln.toml"), good.replace(&h.static_image, &other)).unwrap();
    let r = kiln_d(&["build", d, "--locked", "--print-llb"]).await;
    r.failure();
    assert!(
        r.stderr.contains("stale") && r.stderr.contains("lock --update"),
        "{}",
        r.stderr
    );
    // A flag that disagrees with the lock: --locked names the field and
    // both values (the lock records the distro, not just the digests).
    std::fs::write(dir.join("kiln.toml"), &good).unwrap();
    let r = kiln_d(&[
        "build",
        d,
        "--distro",
        "bookworm",
        "--locked",
        "--print-llb",
    ])
    .await;
    r.failure();
    assert!(
        r.stderr.contains("distro") && r.stderr.contains("bookworm") && r.stderr.contains("trixie"),
        "{}",
        r.stderr
    );
    // Without --locked, a build from changed settings succeeds, rewrites
    // kiln.lock to what it used, and says what changed.
    std::fs::write(dir.join("kiln.toml"), good.replace(&h.static_image, &other)).unwrap();
    let oci2 = tmp.path().join("l2.tar");
    let o2 = format!("type=oci,dest={}", oci2.display());
    let r = kiln_d(&["build", d, "-o", &o2]).await;
    r.success();
    assert!(
        r.stderr.contains("updated") && r.stderr.contains("kiln.lock"),
        "{}",
        r.stderr
    );
    let relocked = std::fs::read_to_string(dir.join("kiln.lock")).unwrap();
    assert!(
        relocked.contains(&format!("name = \"{other}\"")),
        "{relocked}"
    );
    assert!(
        relocked.contains("[inputs]") && relocked.contains("distro = \"trixie\""),
        "{relocked}"
    );
    // ... and --locked builds from it again.
    kiln_d(&["build", d, "--locked", "--print-llb"])
        .await
        .success();
}

/// A main module `example.test/app` in `root/app` that requires `module`
/// v0.1.0 (whose go.mod is `go_mod` and whose one other file is `file`)
/// with the go.sum a developer would have committed, and prints its
/// `Hello()`.
pub(crate) fn app_requiring(
    root: &Path,
    module: &str,
    go_mod: &str,
    file: (&str, &str),
) -> PathBuf {
    let app = root.join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(
        app.join("go.mod"),
        format!("module example.test/app\n\ngo 1.24\n\nrequire {module} v0.1.0\n"),
    )
    .unwrap();
    let prefix = format!("{module}@v0.1.0");
    let sum_zip = go_hash1(&[
        (format!("{prefix}/go.mod"), go_mod.as_bytes().to_vec()),
        (format!("{prefix}/{}", file.0), file.1.as_bytes().to_vec()),
    ]);
    let sum_mod = go_hash1(&[("go.mod".to_string(), go_mod.as_bytes().to_vec())]);
    std::fs::write(
        app.join("go.sum"),
        format!("{module} v0.1.0 {sum_zip}\n{module} v0.1.0/go.mod {sum_mod}\n"),
    )
    .unwrap();
    std::fs::write(
        app.join("main.go"),
        format!("package main\n\nimport (\n\t\"fmt\"\n\n\tlib \"{module}\"\n)\n\nfunc main() {{ fmt.Println(lib.Hello()) }}\n"),
    )
    .unwrap();
    app
}

/// Go's `dirhash.Hash1` over `(name, content)` pairs: the `h1:` of go.sum.
pub(crate) fn go_hash1(files: &[(String, Vec<u8>)]) -> String {
    use sha2::Digest as _;
    let mut files = files.to_vec();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    let mut summary = String::new();
    for (name, content) in &files {
        summary.push_str(&format!(
            "{}  {name}\n",
            hex::encode(sha2::Sha256::digest(content))
        ));
    }
    format!(
        "h1:{}",
        crate::session_common::base64(&sha2::Sha256::digest(summary.as_bytes()))
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn private_module_over_ssh_through_the_forwarded_agent() {
    use crate::session_ssh::{keygen, start_agent, start_sshd};
    let tmp = tempfile::tempdir().unwrap();
    // The repository path is part of the module path, so keep it lower-case.
    let root = std::path::PathBuf::from(format!("/tmp/kilnpriv-{}", unique()));
    std::fs::create_dir_all(&root).unwrap();
    struct Cleanup(std::path::PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _cleanup = Cleanup(root.clone());
    let key = tmp.path().join("id_ed25519");
    keygen(&key, "kiln-build-private");
    let agent = start_agent(tmp.path(), &key).await;
    let sshd = start_sshd(tmp.path(), &key).await;

    // The private module: a bare repo on the ssh host, tagged v0.1.0.
    let module = format!("127.0.0.1{}/lib.git", root.display());
    let greeting = format!("private hello {}", unique());
    let src = root.join("src");
    std::fs::create_dir_all(&src).unwrap();
    let go_mod = format!("module {module}\n\ngo 1.24\n");
    let lib_go = format!("// Package lib is private.\npackage lib\n\n// Hello greets.\nfunc Hello() string {{ return {greeting:?} }}\n");
    std::fs::write(src.join("go.mod"), &go_mod).unwrap();
    std::fs::write(src.join("lib.go"), &lib_go).unwrap();
    let git = |args: &[&str], cwd: &std::path::Path| {
        let st = std::process::Command::new("git")
            .args([
                "-c",
                "user.name=kiln",
                "-c",
                "user.email=kiln@example.test",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args)
            .current_dir(cwd)
            .status()
            .unwrap();
        assert!(st.success(), "git {args:?}");
    };
    git(&["init", "-q"], &src);
    git(&["add", "."], &src);
    git(&["commit", "-q", "-m", "lib"], &src);
    git(&["tag", "v0.1.0"], &src);
    git(
        &["clone", "-q", "--bare", src.to_str().unwrap(), "lib.git"],
        &root,
    );

    // The app, with the go.sum a developer would have committed.
    let app = app_requiring(tmp.path(), &module, &go_mod, ("lib.go", &lib_go));
    let known_hosts = tmp.path().join("known_hosts");
    std::fs::write(&known_hosts, &sshd.host_key_line).unwrap();

    let oci = tmp.path().join("app.tar");
    let host = format!("root@127.0.0.1:{}", sshd.port);
    let flags = [
        "--ssh",
        "default",
        "--goprivate",
        "127.0.0.1",
        "--git-ssh-host",
        host.as_str(),
        "--known-hosts",
        known_hosts.to_str().unwrap(),
        "--network",
        "host",
        "--progress",
        "plain",
    ];
    // First, with an agent holding another key: the fetch is refused (and,
    // the module never having been fetched, nothing is in the module cache).
    let other = tmp.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let wrong_key = other.join("id_other");
    keygen(&wrong_key, "not-authorized");
    let wrong_agent = start_agent(&other, &wrong_key).await;
    let mut cmd = kiln();
    cmd.env("SSH_AUTH_SOCK", &wrong_agent.sock);
    let args = build_args(&app, &flags);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = run(cmd, &refs).await;
    r.failure();
    assert!(
        r.stderr.contains("go mod download") && r.stderr.contains("failed with exit code"),
        "{}",
        r.stderr
    );
    // Without any agent: refused before building, saying what to add.
    let no_ssh: Vec<&str> = flags
        .iter()
        .copied()
        .filter(|f| *f != "--ssh" && *f != "default")
        .collect();
    let args = build_args(&app, &no_ssh);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = run(kiln(), &refs).await;
    r.failure();
    assert!(r.stderr.contains("needs an SSH agent"), "{}", r.stderr);

    let mut args = build_args(&app, &flags);
    args.extend(["-o".to_string(), format!("type=oci,dest={}", oci.display())]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut cmd = kiln();
    cmd.env("SSH_AUTH_SOCK", &agent.sock);
    let r = run(cmd, &refs).await;
    r.success();
    assert!(r.stderr.contains("go mod download"), "{}", r.stderr);
    // The fetch went through sshd with the agent's key.
    let log = std::fs::read_to_string(tmp.path().join("sshd.log")).unwrap_or_default();
    assert!(
        log.contains("Accepted publickey"),
        "sshd saw no key login:\n{log}"
    );
    // The binary carries the private module's code: run it from the OCI layout.
    let lay = tmp.path().join("l");
    let index = unpack_oci(&oci, &lay);
    let ms = manifests(&lay, &index);
    let hexd = ms[0].1["layers"].as_array().unwrap().last().unwrap()["digest"]
        .as_str()
        .unwrap()
        .strip_prefix("sha256:")
        .unwrap()
        .to_string();
    let x = tmp.path().join("x");
    std::fs::create_dir_all(&x).unwrap();
    std::process::Command::new("tar")
        .arg("-xf")
        .arg(lay.join("blobs/sha256").join(hexd))
        .arg("-C")
        .arg(&x)
        .status()
        .unwrap();
    let out = std::process::Command::new(x.join("app/bin"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), greeting);
    drop(sshd);
}

/// A second BuildKit endpoint for fan-out tests: the daemon behind a relay
/// on plain TCP, as a remote buildkitd would be. With mutual TLS, the TLS
/// flags apply to every tcp:// builder, so the second endpoint is the
/// daemon's own TLS address (a second connection and session all the same).
pub(crate) fn second_endpoint(relay: &Relay) -> String {
    if daemon().tls.is_some() {
        daemon().addr.clone()
    } else {
        format!("tcp://{}", relay.tcp)
    }
}

/// `kiln build` for linux/amd64 and linux/arm64 with `--builder
/// arm_builder`, pushed as `name` and merged into the `joined` tarball.
/// Without the push's default provenance: the registry's index would list
/// attestation manifests the merged tarball does not (the fan-out test of
/// attestations is in tests/it/imagetools.rs).
async fn fan_out(dir: &Path, arm_builder: &str, name: &str, joined: &Path) -> Run {
    let o = format!("type=oci,dest={}", joined.display());
    kiln_build(
        dir,
        &[
            "--platform",
            "linux/amd64,linux/arm64",
            "--builder",
            arm_builder,
            "-t",
            name,
            "--push",
            "-o",
            &o,
            "--progress",
            "plain",
            "--provenance=false",
        ],
    )
    .await
}

/// Fan-out where one endpoint fails mid-build (its connection is cut after
/// a few KiB): the build fails, and nothing is tagged or written: no index
/// under the name, no tarball.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_platform_pushes_no_index() {
    use kiln_image::registry::RegistryClient;
    use kiln_image::ImageRef;
    let h = harness();
    if daemon().kind == kiln_test_support::DaemonKind::DockerClassic {
        // The classic store refuses fan-out up front (tested above); there is
        // no index to withhold.
        return;
    }
    let relay = Relay::for_daemon(RelayOptions {
        drop_after_bytes: Some(24 * 1024),
        ..Default::default()
    })
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let m = unique();
    let dir = sample_module(tmp.path(), &m);
    let name = format!("{}/kiln-test/fanout-fail:{m}", h.registry);
    // On the TLS row the daemon's TLS flags meet the relay's plain TCP: the
    // arm64 endpoint fails at its handshake instead.
    let arm_builder = format!("linux/arm64=tcp://{}", relay.tcp);
    let joined = tmp.path().join("joined.tar");
    let r = fan_out(&dir, &arm_builder, &name, &joined).await;
    r.failure();
    // The error names the endpoint that failed: its platform and address
    // (not only "connection lost").
    assert!(
        r.stderr.contains("builder for linux/arm64") && r.stderr.contains(&relay.tcp.to_string()),
        "the error does not name the failed endpoint:\n{}",
        r.stderr
    );
    assert!(!joined.exists(), "a tarball was written");
    let registry = RegistryClient::new().unwrap();
    let tag = ImageRef::parse(&name).unwrap();
    assert!(
        registry.get_manifest(&tag).await.is_err(),
        "{name} was pushed although arm64 failed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn platforms_fanned_out_to_two_builders_join_in_one_index() {
    use kiln_image::registry::RegistryClient;
    use kiln_image::{Digest, ImageRef};
    let h = harness();
    // The arm64 builder is "another daemon" reached over plain gRPC on TCP,
    // as a remote buildkitd would be (here: the harness's daemon behind a
    // relay); amd64 builds on the default docker:// endpoint.
    let relay = Relay::for_daemon(RelayOptions::default()).await;
    let tmp = tempfile::tempdir().unwrap();
    let m = unique();
    let dir = sample_module(tmp.path(), &m);
    let name = format!("{}/kiln-test/fanout:{m}", h.registry);
    let arm_addr = second_endpoint(&relay);
    let arm_builder = format!("linux/arm64={arm_addr}");
    let joined = tmp.path().join("joined.tar");
    let r = fan_out(&dir, &arm_builder, &name, &joined).await;
    if daemon().kind == kiln_test_support::DaemonKind::DockerClassic {
        // Refused up front, naming the store: nothing is built or tagged.
        r.failure();
        assert!(
            r.stderr.contains("classic image store") && r.stderr.contains("--builder"),
            "{}",
            r.stderr
        );
        assert!(!r.stderr.contains("could not be found"), "{}", r.stderr);
        assert!(!joined.exists());
        return;
    }
    r.success();
    assert!(
        r.stderr
            .contains(&format!("built linux/arm64 on {arm_addr}"))
            && r.stderr
                .contains("built linux/amd64 on the default builder"),
        "{}",
        r.stderr
    );
    // Both endpoints' steps share one progress view, labelled by platform.
    for p in ["linux/amd64", "linux/arm64"] {
        assert!(
            r.stderr.contains(&format!("[{p} builder "))
                && r.stderr.contains(&format!("[{p} final ")),
            "no {p} steps:\n{}",
            r.stderr
        );
    }
    let digest: Digest = r.stdout.trim().parse().expect("index digest on stdout");

    // The tag holds one OCI index, amd64 then arm64, whose digest kiln printed.
    let registry = RegistryClient::new().unwrap();
    let tag = ImageRef::parse(&name).unwrap();
    let index = registry.get_manifest(&tag).await.unwrap();
    assert_eq!(index.digest, digest);
    assert!(index.manifest.is_index());
    let plats: Vec<String> = index
        .manifest
        .platforms()
        .iter()
        .map(|(p, _)| p.to_string())
        .collect();
    assert_eq!(plats, ["linux/amd64", "linux/arm64"]);
    // Each entry is the platform's own image: its config says so.
    let resolved = registry.resolve_platforms(&tag).await.unwrap();
    for (p, d) in resolved {
        let per = registry
            .resolve_platforms(&tag.with_digest(d.clone()))
            .await
            .unwrap();
        assert_eq!(per.len(), 1);
        assert_eq!(per[0].0, p, "the {p} entry {d} is a {} image", per[0].0);
    }

    // It runs (the amd64 entry, picked by the Engine from the index).
    let out = docker(&["run", "--rm", "--pull", "always", &name]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "docker run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&format!("greetings, {m}")), "{stdout}");

    // The OCI tarball holds the same index (same digest: same entries, same
    // bytes) and every blob it reaches.
    let lay = tmp.path().join("joined");
    let top = unpack_oci(&joined, &lay);
    assert_eq!(top["manifests"][0]["digest"], digest.to_string());
    let ms = manifests(&lay, &top);
    let plats: Vec<&str> = ms.iter().map(|m| m.0.as_str()).collect();
    assert_eq!(plats, ["linux/amd64", "linux/arm64"]);
    for (p, m) in &ms {
        let cfg = json_blob(&lay, m["config"]["digest"].as_str().unwrap());
        assert_eq!(
            format!("linux/{}", cfg["architecture"].as_str().unwrap()),
            *p
        );
        for l in m["layers"].as_array().unwrap() {
            assert!(!blob(&lay, l["digest"].as_str().unwrap()).is_empty());
        }
    }

    // Outputs kiln cannot join (a plain tar, -t without --push) are refused
    // up front.
    let plain = tmp.path().join("x.tar");
    let r = kiln_build(
        &dir,
        &[
            "--platform",
            "linux/amd64,linux/arm64",
            "--builder",
            &arm_builder,
            "-o",
            &format!("type=tar,dest={}", plain.display()),
        ],
    )
    .await;
    r.failure();
    assert!(r.stderr.contains("-o type=oci"), "{}", r.stderr);
    assert!(!plain.exists());
    let r = kiln_build(&dir, &["--builder", "linux/arm64", "-t", &name, "--push"]).await;
    r.failure();
    assert!(r.stderr.contains("is not PLATFORM=ADDR"), "{}", r.stderr);

    // An unreachable endpoint fails before anything is built or tagged.
    let other = format!("{}/kiln-test/fanout:unreachable-{m}", h.registry);
    let r = kiln_build(
        &dir,
        &[
            "--platform",
            "linux/amd64,linux/arm64",
            "--builder",
            "linux/arm64=tcp://127.0.0.1:1",
            "-t",
            &other,
            "--push",
        ],
    )
    .await;
    r.failure();
    assert!(
        r.stderr
            .contains("cannot reach the builder for linux/arm64"),
        "{}",
        r.stderr
    );
    let missing = registry
        .get_manifest(&ImageRef::parse(&other).unwrap())
        .await;
    assert!(missing.is_err(), "nothing tagged: {missing:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn fanned_out_push_to_a_registry_that_needs_a_login() {
    if !daemon().supports(Need::PushByDigest) {
        return;
    }
    use crate::session_auth::{docker_config, start_registry, USER};
    use kiln_image::registry::{Credentials, RegistryClient};
    use kiln_image::{Digest, ImageRef};
    let relay = Relay::for_daemon(RelayOptions::default()).await;
    let tmp = tempfile::tempdir().unwrap();
    let password = format!("pw-{}", unique());
    let reg = start_registry(tmp.path(), &password).await;
    let config = docker_config(&tmp.path().join("docker-config"), &reg.addr, &password);
    let m = unique();
    let dir = sample_module(tmp.path(), &m);
    let name = format!("{}/kiln-test/fanout-auth:{m}", reg.addr);
    let arm_addr = second_endpoint(&relay);
    let arm_builder = format!("linux/arm64={arm_addr}");
    let args = build_args(
        &dir,
        &[
            "--platform",
            "linux/amd64,linux/arm64",
            "--builder",
            &arm_builder,
            "-t",
            &name,
            "--push",
            "--progress",
            "plain",
        ],
    );
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut cmd = kiln();
    cmd.env("DOCKER_CONFIG", &config);
    let r = run(cmd, &refs).await;
    r.success();
    assert!(
        !r.stderr.contains(&password),
        "the password leaked:\n{}",
        r.stderr
    );
    let digest: Digest = r.stdout.trim().parse().expect("index digest on stdout");

    // The index is there for the logged-in user, and nobody else.
    let tag = ImageRef::parse(&name).unwrap();
    let pw = password.clone();
    let logged_in = RegistryClient::builder()
        .credentials(move |_: &str| Some(Credentials::basic(USER, pw.clone())))
        .build()
        .unwrap();
    let index = logged_in.get_manifest(&tag).await.unwrap();
    assert_eq!(index.digest, digest);
    let plats: Vec<String> = index
        .manifest
        .platforms()
        .iter()
        .map(|(p, _)| p.to_string())
        .collect();
    assert_eq!(plats, ["linux/amd64", "linux/arm64"]);
    assert!(RegistryClient::new()
        .unwrap()
        .get_manifest(&tag)
        .await
        .is_err());
}

/// A `--builder` endpoint over plain TCP on another machine is warned
/// about before anything is built, like the global address; loopback is
/// not. (The endpoint here is this machine's outbound address, forwarded
/// to the test relay in front of the daemon.)
#[tokio::test(flavor = "multi_thread")]
async fn a_plain_tcp_builder_on_another_machine_is_warned_about() {
    use kiln_test_support::relay::{Relay, RelayOptions};
    let kind = daemon().kind;
    if kind == kiln_test_support::DaemonKind::DockerClassic {
        // The classic store refuses fan-out before any endpoint is reached.
        return;
    }
    if kind == kiln_test_support::DaemonKind::BuildkitdTls {
        // The TLS flags apply to every endpoint: no endpoint is plain TCP
        // (and the relay's plain port fails their handshake).
        return;
    }
    let relay = Relay::for_daemon(RelayOptions::default()).await;
    // This machine's address on its outbound interface (no packet is sent).
    let probe = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    probe.connect("10.255.255.255:9").unwrap();
    let ip = probe.local_addr().unwrap().ip();
    assert!(!ip.is_loopback(), "no non-loopback address here: {ip}");
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let outer = listener.local_addr().unwrap();
    let to = relay.tcp;
    let forwarder = tokio::spawn(async move {
        while let Ok((mut c, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(mut r) = tokio::net::TcpStream::connect(to).await {
                    let _ = tokio::io::copy_bidirectional(&mut c, &mut r).await;
                }
            });
        }
    });
    let tmp = tempfile::tempdir().unwrap();
    let m = unique();
    let dir = sample_module(tmp.path(), &m);
    let name = format!("{}/kiln-test/fanout-plain:{m}", harness().registry);
    let joined = tmp.path().join("joined.tar");
    let endpoint = format!("tcp://{outer}");
    let r = fan_out(&dir, &format!("linux/arm64={endpoint}"), &name, &joined).await;
    forwarder.abort();
    r.success();
    let warning = format!("warning: {endpoint} is plain TCP to another machine");
    assert!(r.stderr.contains(&warning), "{}", r.stderr);
    // Said before the build began (its first step).
    let at = r.stderr.find(&warning).unwrap();
    let first_step = r.stderr.find("#1 ").unwrap_or(usize::MAX);
    assert!(
        at < first_step,
        "warned after the build began:\n{}",
        r.stderr
    );
    // The loopback relay itself is not warned about.
    let local = fan_out(
        &dir,
        &format!("linux/arm64=tcp://{}", relay.tcp),
        &name,
        &joined,
    )
    .await;
    local.success();
    assert!(!local.stderr.contains("plain TCP"), "{}", local.stderr);
}
