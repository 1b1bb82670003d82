//! The secrets sweep (issue 16, item 4): `kiln build` with every kind of
//! secret it takes — file secrets (`--goenv`, `--ca-bundle`), an env secret
//! (`ALL_PROXY`), proxy credentials in `HTTPS_PROXY`, a `.netrc`, an ssh
//! key served by kiln's own agent, and the credentials of a registry that
//! requires a login — once succeeding and once failing on purpose, in every
//! progress mode; then every place kiln writes or sends something is
//! searched for each value (raw, its random core, base64 at any alignment,
//! URL-encoded): the Definition, every exported layer and config, the
//! registry's stored blobs, attestations, the exported caches, the metadata
//! and iid files, the output of every run and the daemon's log.
//!
//! Docker's classic image store has no tarball exporters, no cache
//! exporter but the inline one and no attestations: there the image is read
//! back from the store (`GET /images/{name}/get`) and from the registry.
//!
//! The failing build also proves the secrets were there: a `-toolexec`
//! probe (set through the GOENV file's GOFLAGS) prints their sha256 inside
//! the `go build` step and exits non-zero. Without it, a kiln that stopped
//! passing secrets at all would pass the sweep.

use std::collections::BTreeSet;
use std::path::Path;

use kiln_image::registry::RegistryClient;
use kiln_image::ImageRef;
use kiln_test_support::DaemonKind;

use crate::build::{build_args, go_template, go_version, sample_module};
use crate::common::*;
use crate::session_auth::{docker_config, forget_image, start_registry, USER};
use crate::session_common::{base64, free_port, sha256_hex};
use crate::session_ssh::keygen;

/// Every progress mode `kiln build --progress` accepts, and whether the run
/// also asks for `--debug` (debug logs and the full error chain).
const PROGRESS: [(&str, bool); 5] = [
    ("plain", true),
    ("rawjson", true),
    ("tty", false),
    ("quiet", false),
    ("auto", false),
];

/// One secret: what it is and every form in which a leak would show.
struct Secret {
    kind: &'static str,
    /// (name of the form, bytes).
    forms: Vec<(String, Vec<u8>)>,
}

impl Secret {
    /// A secret whose value is `value` (containing the random `core`).
    fn new(kind: &'static str, value: &str, core: &str) -> Secret {
        let mut s = Secret {
            kind,
            forms: vec![
                ("value".into(), value.as_bytes().to_vec()),
                ("random core".into(), core.as_bytes().to_vec()),
            ],
        };
        s.add_base64("value", value.as_bytes());
        let encoded = url_encoded(value);
        if encoded != value {
            s.forms.push(("URL-encoded".into(), encoded.into_bytes()));
        }
        s
    }

    /// Adds `data` in base64 at each of the three alignments it can have
    /// inside a longer base64 text (only the characters that depend on
    /// `data` alone).
    fn add_base64(&mut self, what: &str, data: &[u8]) {
        for shift in 0..3usize {
            let mut padded = vec![0u8; shift];
            padded.extend_from_slice(data);
            let text = base64(&padded);
            let (first, end) = ((8 * shift).div_ceil(6), 8 * padded.len() / 6);
            self.forms.push((
                format!("base64 of the {what} (alignment {shift})"),
                text.as_bytes()[first..end].to_vec(),
            ));
        }
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn url_encoded(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The secrets, and every hit found so far.
struct Sweep {
    secrets: Vec<Secret>,
    /// Hex digests of the fixture images' layers: blobs that existed before
    /// this test made its secrets, left out of the search (they are most of
    /// the bytes of a `mode=max` cache).
    base_layers: BTreeSet<String>,
    hits: Vec<String>,
    /// Places searched and their total size, to show the sweep saw data.
    places: usize,
    bytes: usize,
}

impl Sweep {
    fn search(&mut self, place: &str, bytes: &[u8]) {
        self.places += 1;
        self.bytes += bytes.len();
        for s in &self.secrets {
            let forms: Vec<&str> = s
                .forms
                .iter()
                .filter(|(_, needle)| crate::session_common::contains_bytes(bytes, needle))
                .map(|(form, _)| form.as_str())
                .collect();
            if !forms.is_empty() {
                self.hits.push(format!(
                    "{} leaked into {place} (as: {})",
                    s.kind,
                    forms.join(", ")
                ));
            }
        }
    }

    /// Searches every file under `dir`, compressed ones decompressed, but
    /// the base images' layers and tarballs (searched unpacked).
    fn search_dir(&mut self, what: &str, dir: &Path) {
        let base = self.base_layers.clone();
        let keep = |path: &Path| {
            path.extension().is_none_or(|x| x != "tar")
                && !path
                    .components()
                    .any(|c| base.contains(c.as_os_str().to_string_lossy().as_ref()))
        };
        each_plain_file(dir, keep, |path, bytes| {
            let rel = path.strip_prefix(dir).unwrap_or(path);
            self.search(&format!("{what}: {}", rel.display()), bytes);
        });
    }

    fn search_run(&mut self, what: &str, r: &Run) {
        self.search(&format!("{what}: stdout"), r.stdout.as_bytes());
        self.search(&format!("{what}: stderr"), r.stderr.as_bytes());
    }
}

/// The ed25519 private key's 32 secret bytes, from an OpenSSH key file.
fn ed25519_seed(key: &Path) -> Vec<u8> {
    let text = std::fs::read_to_string(key).unwrap();
    let key = ssh_key::PrivateKey::from_openssh(&text).unwrap();
    key.key_data()
        .ed25519()
        .expect("an ed25519 key")
        .private
        .to_bytes()
        .to_vec()
}

/// Fetches `name` from the Docker Engine's image store as `docker save`
/// does (`GET /images/{name}/get`) into `dest`.
fn save_image(name: &str, dest: &Path) {
    let sock = daemon().docker_sock();
    let out = std::process::Command::new("curl")
        .args(["-sS", "--fail", "-o"])
        .arg(dest)
        .arg("--unix-socket")
        .arg(sock)
        .arg(format!("http://localhost/images/{name}/get"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "GET /images/{name}/get: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The hex digests of every layer of the builder and base fixture images,
/// all platforms.
async fn base_layers() -> BTreeSet<String> {
    let registry = RegistryClient::new().unwrap();
    let go = go_template()
        .replace("{go}", &go_version())
        .replace("{distro}", "trixie");
    let mut out = BTreeSet::new();
    for image in [go, harness().static_image.clone()] {
        let image = ImageRef::parse(&image).unwrap();
        let top = registry.get_manifest(&image).await.unwrap();
        let mut manifests = vec![top.manifest.clone()];
        for (_, d) in top.manifest.platforms() {
            let m = registry
                .get_manifest(&image.with_digest(d.digest))
                .await
                .unwrap();
            manifests.push(m.manifest);
        }
        for m in manifests {
            out.extend(m.layers().into_iter().map(|l| l.digest.hex().to_owned()));
        }
    }
    assert!(!out.is_empty(), "the fixture images have layers");
    out
}

/// The go build probe: prints the sha256 of every secret the step sees,
/// then fails the build (it lets `go tool compile -V=full` through, which
/// Go asks for before it compiles anything).
const PROBE: &str = r#"case "$2" in -V=full) exec "$@";; esac
h() { printf %s "$1" | sha256sum | cut -c1-64; }
f() { sha256sum < "$1" | cut -c1-64; }
echo "kiln-probe netrc=$(f /root/.netrc)"
echo "kiln-probe goenv=$(f "$GOENV")"
echo "kiln-probe ca-bundle=$(f "$SSL_CERT_FILE")"
echo "kiln-probe https-proxy=$(h "$HTTPS_PROXY") all-proxy=$(h "$ALL_PROXY")"
echo "kiln-probe ssh=$(ssh-add -l 2>&1)"
echo "kiln-probe failing on purpose"
exit 3"#;

#[tokio::test(flavor = "multi_thread")]
async fn secrets_sweep_finds_no_value_anywhere() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let kind = daemon().kind;
    let classic = kind == DaemonKind::DockerClassic;
    let u = unique();

    // The values: each with its own random core.
    let (goenv_core, ca_core, env_core, proxy_core, netrc_core, reg_core) =
        (unique(), unique(), unique(), unique(), unique(), unique());
    let goenv_pw = format!("kiln-goenv-{goenv_core}");
    let ca_body = format!("kiln-ca-{ca_core}");
    let env_pw = format!("kiln-all-proxy-{env_core}");
    // A '/' in the password: the URL carries it percent-encoded.
    let proxy_pw = format!("kiln/proxy-{proxy_core}");
    let netrc_pw = format!("kiln-netrc-{netrc_core}");
    let reg_pw = format!("kiln-registry-{reg_core}");

    // Their files and environment.
    let reg = start_registry(root, &reg_pw).await;
    let config = docker_config(&root.join("docker-config"), &reg.addr, &reg_pw);
    let key = root.join("id_ed25519");
    let fingerprint = keygen(&key, "kiln-sweep");
    let netrc = root.join("netrc");
    let netrc_text = format!("machine goproxy.invalid login kiln password {netrc_pw}\n");
    std::fs::write(&netrc, &netrc_text).unwrap();
    let goenv_text = format!("GOPROXY=https://kiln:{goenv_pw}@goproxy.invalid,direct\n");
    let goenv = root.join("goenv");
    std::fs::write(&goenv, &goenv_text).unwrap();
    let goenv_fail = root.join("goenv-fail");
    let goenv_fail_text = format!("{goenv_text}GOFLAGS=-toolexec=/src/probe.sh\n");
    std::fs::write(&goenv_fail, &goenv_fail_text).unwrap();
    let ca = root.join("ca.pem");
    let ca_text = format!("-----BEGIN CERTIFICATE-----\n{ca_body}\n-----END CERTIFICATE-----\n");
    std::fs::write(&ca, &ca_text).unwrap();
    // Nothing listens on these ports: the vendored module fetches nothing.
    let https_proxy = format!(
        "http://kiln:{}@127.0.0.1:{}",
        url_encoded(&proxy_pw),
        free_port()
    );
    let all_proxy = format!("socks5h://kiln:{env_pw}@127.0.0.1:{}", free_port());

    let mut sweep = Sweep {
        secrets: vec![
            Secret::new("the goenv file secret", &goenv_pw, &goenv_core),
            Secret::new("the ca-bundle file secret", &ca_body, &ca_core),
            Secret::new("the env secret (ALL_PROXY)", &env_pw, &env_core),
            Secret::new(
                "the proxy credentials (HTTPS_PROXY)",
                &proxy_pw,
                &proxy_core,
            ),
            Secret::new("the netrc password", &netrc_pw, &netrc_core),
            Secret::new("the registry password", &reg_pw, &reg_core),
        ],
        base_layers: base_layers().await,
        hits: Vec::new(),
        places: 0,
        bytes: 0,
    };
    // Basic auth as a proxy and the registry get it, and a Docker config's
    // `auth`.
    sweep.secrets[3].add_base64("Proxy-Authorization", format!("kiln:{proxy_pw}").as_bytes());
    sweep.secrets[5].add_base64("registry login", format!("{USER}:{reg_pw}").as_bytes());
    let seed = ed25519_seed(&key);
    let mut ssh = Secret {
        kind: "the ssh private key",
        forms: vec![
            ("raw bytes".into(), seed.clone()),
            ("hex".into(), hex::encode(&seed).into_bytes()),
        ],
    };
    ssh.add_base64("private key", &seed);
    // The key file's base64 body past the header and public key.
    let key_text = std::fs::read_to_string(&key).unwrap();
    for (i, line) in key_text.lines().enumerate().skip(3) {
        if line.len() == 70 {
            ssh.forms.push((format!("key file line {i}"), line.into()));
        }
    }
    assert!(ssh.forms.len() > 6, "key file lines: {key_text}");
    sweep.secrets.push(ssh);

    // The two modules: one that builds, one whose go build fails in the probe.
    let ok = sample_module(&root.join("ok"), &u);
    let fail = sample_module(&root.join("fail"), &format!("{u}-fail"));
    script(&fail.join("probe.sh"), PROBE);

    let name = format!("{}/kiln-sweep/app:{u}", reg.addr);
    let key_spec = format!("default={}", key.display());
    let secret_flags: Vec<String> = [
        "--netrc",
        netrc.to_str().unwrap(),
        "--goenv",
        "--proxy-from-env",
        "--ca-bundle",
        ca.to_str().unwrap(),
        "--ssh",
        &key_spec,
    ]
    .map(String::from)
    .to_vec();
    let kiln_with = |goenv: &Path| {
        let mut c = kiln();
        for v in kiln_go::recipe::PROXY_ENV_NAMES {
            c.env_remove(v);
        }
        // kiln's own registry client honours ALL_PROXY too; loopback
        // registries are reached directly, as in a CI job's environment.
        c.env("HTTPS_PROXY", &https_proxy)
            .env("ALL_PROXY", &all_proxy)
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("GOENV", goenv)
            .env("DOCKER_CONFIG", &config)
            .env_remove("SSH_AUTH_SOCK");
        c
    };
    let build = |dir: &Path, goenv: &Path, extra: Vec<String>| {
        let mut args = build_args(dir, &[]);
        args.extend(secret_flags.iter().cloned());
        args.extend(extra);
        let cmd = kiln_with(goenv);
        async move { run_owned(cmd, &args).await }
    };

    // 1. The Definition, in each form kiln prints (pb is what it sends).
    for (dir, env, what) in [
        (&ok, &goenv, "build"),
        (&fail, &goenv_fail, "failing build"),
    ] {
        for format in ["pb", "json", "dot"] {
            let r = build(dir, env, vec![format!("--print-llb={format}")]).await;
            r.success();
            sweep.search_run(&format!("the {what}'s --print-llb={format}"), &r);
            if format == "json" {
                for id in ["\"netrc\"", "\"goenv\"", "\"ca-bundle\"", "\"HTTPS_PROXY\""] {
                    assert!(r.stdout.contains(id), "secret {id} not mounted");
                }
                assert!(r.stdout.contains("\"ssh\""), "no ssh mount");
            }
        }
    }

    // 2. Build in every progress mode. The plain run writes every output
    // this daemon has; the others render the same build (from the cache)
    // with a push and the metadata file.
    let outputs = |dir: &Path, full: bool| -> Vec<String> {
        std::fs::create_dir_all(dir).unwrap();
        let p = |f: &str| dir.join(f).display().to_string();
        let mut v = vec![
            "-t".into(),
            name.clone(),
            "--push".into(),
            "--metadata-file".into(),
            p("metadata.json"),
        ];
        if !full {
            return v;
        }
        v.extend([
            "--iidfile".into(),
            p("iid"),
            "--go-cache-to".into(),
            format!("type=local,dest={},modules=true", p("go-cache")),
        ]);
        if classic {
            // Docker's classic store: no tarball exporters, only the inline
            // cache, no attestations (kiln refuses them there). The loaded
            // image is fetched from the store below instead.
            v.extend(["--cache-to".into(), "type=inline".into()]);
        } else {
            v.extend([
                "-o".into(),
                format!("type=oci,dest={}", p("image.oci.tar")),
                "-o".into(),
                format!("type=docker,dest={},name={name}", p("image.docker.tar")),
                "--cache-to".into(),
                format!("type=local,dest={},mode=max", p("cache")),
                "--cache-to".into(),
                format!(
                    "type=registry,ref={}/kiln-sweep/cache:{u},mode=max",
                    reg.addr
                ),
                "--provenance=mode=max".into(),
                "--sbom".into(),
            ]);
        }
        v
    };
    let with_progress = |mut v: Vec<String>, mode: &str, debug: bool| {
        v.extend(["--progress".into(), mode.into()]);
        if debug {
            v.push("--debug".into());
        }
        v
    };
    let out = root.join("out");
    for (mode, debug) in PROGRESS {
        let dir = out.join(format!("ok-{mode}"));
        let extra = with_progress(outputs(&dir, mode == "plain"), mode, debug);
        let r = build(&ok, &goenv, extra).await;
        r.success();
        sweep.search_run(&format!("the build's --progress {mode} output"), &r);
        if kind.is_docker() && mode == "plain" {
            // The image as the daemon's store keeps it.
            save_image(&name, &dir.join("store.tar"));
        }
    }

    // 3. The failing build, in every mode: the probe's hashes show the
    // secrets were there; the values show nowhere.
    let want = [
        format!("kiln-probe netrc={}", sha256_hex(netrc_text.as_bytes())),
        format!(
            "kiln-probe goenv={}",
            sha256_hex(goenv_fail_text.as_bytes())
        ),
        format!("kiln-probe ca-bundle={}", sha256_hex(ca_text.as_bytes())),
        format!(
            "kiln-probe https-proxy={} all-proxy={}",
            sha256_hex(https_proxy.as_bytes()),
            sha256_hex(all_proxy.as_bytes())
        ),
        format!("kiln-probe ssh=256 {fingerprint} kiln-sweep (ED25519)"),
    ];
    for (mode, debug) in PROGRESS {
        let dir = out.join(format!("fail-{mode}"));
        let extra = with_progress(outputs(&dir, mode == "plain"), mode, debug);
        let r = build(&fail, &goenv_fail, extra).await;
        r.failure();
        for w in &want {
            assert!(
                r.stderr.contains(w.as_str()),
                "--progress {mode}: the probe did not see the secret ({w}):\n{}",
                r.stderr
            );
        }
        sweep.search_run(&format!("the failing build's --progress {mode} output"), &r);
    }

    // 4. Everything written: tarballs unpacked, layers decompressed.
    for run in std::fs::read_dir(&out).unwrap() {
        let run = run.unwrap().path();
        for tar in ["image.oci.tar", "image.docker.tar", "store.tar"] {
            let tar = run.join(tar);
            if tar.is_file() {
                untar(&tar, &tar.with_extension("unpacked"));
            }
        }
    }
    sweep.search_dir("the outputs", &out);
    // The registry's storage: the pushed images, attestations and cache.
    sweep.search_dir("the registry's storage", &root.join("data"));
    if !kind.is_docker() {
        if let Some(log) = harness().var("KILN_TEST_BUILDKITD_LOG") {
            sweep.search("buildkitd's log", &std::fs::read(log).unwrap());
        }
    }
    if kind.is_docker() {
        forget_image(&name);
    }

    assert!(
        sweep.hits.is_empty(),
        "{} leak(s):\n{}",
        sweep.hits.len(),
        sweep.hits.join("\n")
    );
    // The sweep saw the real thing: Go binaries, attestations, the cache.
    let ok_dir = out.join("ok-plain");
    let registry_bytes = all_bytes(&root.join("data")).len();
    assert!(
        registry_bytes > 1_000_000,
        "registry holds {registry_bytes} bytes"
    );
    assert!(ok_dir.join("metadata.json").is_file());
    if !classic {
        assert!(ok_dir.join("cache/index.json").is_file());
        let image =
            crate::build::plain_blobs(&ok_dir.join("image.oci.tar"), &root.join("oci-check"));
        // Provenance in mode=max carries the Definition as the daemon got
        // it (`llbDefinition`): what kiln sent was searched too.
        for predicate in [
            "https://slsa.dev/provenance/v1",
            "\"llbDefinition\"",
            "https://spdx.dev/Document",
        ] {
            assert!(
                crate::session_common::contains_bytes(&image, predicate.as_bytes()),
                "no {predicate} attestation in the image"
            );
        }
    }
    eprintln!(
        "secrets sweep: {} secrets in {} forms, {} places, {} MB, no hit",
        sweep.secrets.len(),
        sweep.secrets.iter().map(|s| s.forms.len()).sum::<usize>(),
        sweep.places,
        sweep.bytes / 1_000_000
    );
}

#[test]
fn base64_forms_are_found_at_every_alignment() {
    let value = "kiln-secret-1234567890";
    let mut s = Secret::new("test", value, "1234567890");
    s.add_base64("login", format!("user:{value}").as_bytes());
    for prefix in ["", "a", "ab", "abc", "Basic user:"] {
        let text = base64(format!("{prefix}{value}!").as_bytes());
        assert!(
            s.forms
                .iter()
                .any(|(_, f)| crate::session_common::contains_bytes(text.as_bytes(), f)),
            "base64 after {prefix:?} not found: {text}"
        );
    }
    // Long enough never to match by chance.
    assert!(s.forms.iter().all(|(_, f)| f.len() >= 10), "{:?}", s.forms);
    assert_eq!(url_encoded("a/b c"), "a%2Fb%20c");
}
