//! The shape of the planned graph, decoded from marshaled LLB, and the
//! image config.

use kiln_image::{Digest, ImageRef, Platform};
use kiln_llb::{dump, Constraints, State};
use serde_json::{json, Value};

use super::*;

pub(super) const KEY: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
const CUSTOM_NAME: &str = "llb.customname";
/// A proxy password the recipe must never see or write.
const FAKE_SECRET_VALUE: &str = "hunter2-proxy-password";

pub(super) fn input() -> RecipeInput {
    let builder = ResolvedImage {
        reference: ImageRef::parse("golang:1.24.7-bookworm").expect("ref"),
        config_json: br#"{"architecture":"amd64","os":"linux",
            "config":{"Env":["PATH=/go/bin:/usr/local/go/bin:/usr/bin:/bin","GOLANG_VERSION=1.24.7","GOPATH=/go"],"WorkingDir":"/go"},
            "rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec(),
    };
    let base = ResolvedImage {
        reference: ImageRef::parse("gcr.io/distroless/static-debian12:nonroot")
            .expect("ref")
            .with_digest(Digest::sha256_of(b"index")),
        config_json: br#"{"architecture":"arm64","os":"linux",
            "config":{"Env":["PATH=/usr/bin:/bin","SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"],
                      "User":"65532","WorkingDir":"/home/nonroot","Volumes":{"/data":{}},"Cmd":["/bin/sh"]},
            "rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec(),
    };
    let options = GoBuildOptions {
        mains: vec!["./cmd/app".into()],
        module_name: "example.com/shop".into(),
        ..GoBuildOptions::default()
    };
    RecipeInput {
        context_name: "context".into(),
        go_version: "1.24.7".into(),
        builder,
        base,
        build_platform: Platform::linux_amd64(),
        target: Platform::linux_arm64(),
        options,
        go_cache_in: None,
        go_cache_out: false,
        go_cache_modules: false,
    }
}

/// Every option that adds steps, secrets or SSH.
fn full_input() -> RecipeInput {
    let mut i = input();
    let o = &mut i.options;
    o.apt_packages = vec!["git-lfs".into(), "openssh-client".into()];
    o.ssh = vec!["default".into()];
    o.git_ssh_hosts = vec!["git.example.com".into(), "gitlab.corp:2222".into()];
    o.known_hosts = vec![
        format!("git.example.com ssh-ed25519 {KEY}"),
        format!("[gitlab.corp]:2222 ssh-ed25519 {KEY}"),
    ];
    o.goprivate = Some("git.example.com,gitlab.corp".into());
    o.goenv_secret = Some("goenv".into());
    o.netrc_secret = Some("netrc".into());
    o.proxy_env_secrets = PROXY_ENV_NAMES.iter().map(|s| s.to_string()).collect();
    o.ca_bundle_secret = Some("certs".into());
    o.ldflags = Some("-s -w -X main.version=1.2.3".into());
    o.tags = vec!["netgo".into(), "osusergo".into()];
    o.cmd = vec!["--listen".into(), ":8080".into()];
    o.source_date_epoch = Some(1_700_000_000);
    o.revision = Some("0123abcd".into());
    o.source_url = Some("https://git.example.com/shop".into());
    o.labels
        .insert("org.example.team".into(), "payments".into());
    i
}

/// A marshaled state, decoded.
struct Graph(Value);

impl Graph {
    fn of(st: &State) -> Graph {
        let def = st
            .marshal(&Constraints::new(Platform::linux_amd64()))
            .expect("marshal");
        Graph(dump::to_json(&def))
    }

    fn ops(&self) -> &[Value] {
        self.0["ops"].as_array().expect("ops")
    }

    fn name(op: &Value) -> &str {
        op["metadata"]["description"][CUSTOM_NAME]
            .as_str()
            .unwrap_or_default()
    }

    fn names(&self) -> Vec<&str> {
        self.ops()
            .iter()
            .map(Graph::name)
            .filter(|n| !n.is_empty())
            .collect()
    }

    /// The op whose custom name contains `what`.
    fn named(&self, what: &str) -> &Value {
        let found: Vec<&Value> = self
            .ops()
            .iter()
            .filter(|op| Graph::name(op).contains(what))
            .collect();
        assert_eq!(found.len(), 1, "ops named {what:?}: {:?}", self.names());
        found[0]
    }

    fn digest(&self, digest: &Value) -> &Value {
        self.ops()
            .iter()
            .find(|op| op["digest"] == *digest)
            .expect("input op")
    }

    /// The exec mount at `dest`.
    fn mount<'a>(op: &'a Value, dest: &str) -> &'a Value {
        op["op"]["mounts"]
            .as_array()
            .expect("mounts")
            .iter()
            .find(|m| m["dest"] == dest)
            .unwrap_or_else(|| panic!("no mount at {dest}"))
    }

    fn has_mount(op: &Value, dest: &str) -> bool {
        op["op"]["mounts"]
            .as_array()
            .is_some_and(|ms| ms.iter().any(|m| m["dest"] == dest))
    }

    /// The op that feeds the exec mount at `dest`.
    fn mount_source(&self, op: &Value, dest: &str) -> &Value {
        let m = Graph::mount(op, dest);
        let index = m["input"].as_u64().expect("mount has an input") as usize;
        self.digest(&op["inputs"][index]["digest"])
    }

    /// Every op `op` depends on, itself included.
    fn ancestors<'a>(&'a self, op: &'a Value) -> Vec<&'a Value> {
        let mut out = vec![op];
        let mut i = 0;
        while i < out.len() {
            if let Some(inputs) = out[i]["inputs"].as_array() {
                for inp in inputs {
                    let o = self.digest(&inp["digest"]);
                    if !out.iter().any(|x| x["digest"] == o["digest"]) {
                        out.push(o);
                    }
                }
            }
            i += 1;
        }
        out
    }

    fn env(op: &Value) -> Vec<&str> {
        op["op"]["meta"]["env"]
            .as_array()
            .map(|e| e.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }

    fn secretenv(op: &Value) -> Vec<(&str, &str)> {
        op["op"]["secretenv"]
            .as_array()
            .map(|e| {
                e.iter()
                    .map(|s| {
                        (
                            s["id"].as_str().unwrap_or(""),
                            s["name"].as_str().unwrap_or(""),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn mounts_of_type<'a>(op: &'a Value, kind: &str) -> Vec<&'a Value> {
        op["op"]["mounts"]
            .as_array()
            .map(|ms| ms.iter().filter(|m| m["type"] == kind).collect())
            .unwrap_or_default()
    }

    fn execs(&self) -> Vec<&Value> {
        self.ops()
            .iter()
            .filter(|op| op["op"]["kind"] == "exec")
            .collect()
    }
}

#[test]
fn names_every_step() {
    let r = plan(&full_input()).expect("plan");
    let g = Graph::of(&r.final_state);
    let mut names = g.names();
    names.sort();
    assert_eq!(
        names,
        [
            "[builder 1/6] FROM docker.io/library/golang:1.24.7-bookworm",
            "[builder 2/6] apt-get install git-lfs openssh-client",
            "[builder 3/6] write /root/.ssh/known_hosts (git.example.com, gitlab.corp:2222)",
            "[builder 4/6] git config: ssh for git.example.com, gitlab.corp:2222",
            "[builder 5/6] go mod download",
            "[builder 6/6] go build -o /out/app ./cmd/app",
            "[context] load go.mod go.sum **/go.mod vendor/modules.txt",
            "[context] load module source",
            &format!(
                "[final 1/2] FROM gcr.io/distroless/static-debian12:nonroot@{}",
                Digest::sha256_of(b"index")
            ),
            "[final 2/2] COPY /app/bin",
        ]
    );
    // Without options the builder has three steps.
    let r = plan(&input()).expect("plan");
    let g = Graph::of(&r.builder_state);
    assert!(g
        .names()
        .contains(&"[builder 3/3] go build -o /out/app ./cmd/app"));
}

#[test]
fn go_mod_download_sees_only_go_mod_and_go_sum() {
    let r = plan(&full_input()).expect("plan");
    let g = Graph::of(&r.final_state);
    let download = g.named("go mod download");
    let src = Graph::mount(download, "/src");
    assert_eq!(src["readonly"], true);
    let local = g.mount_source(download, "/src");
    assert_eq!(local["op"]["identifier"], "local://context");
    let patterns: Vec<String> = serde_json::from_str(
        local["op"]["attrs"]["local.includepattern"]
            .as_str()
            .expect("set"),
    )
    .expect("json");
    assert_eq!(patterns, GO_MOD_PATTERNS);
    assert_eq!(
        local["op"]["attrs"]["local.sharedkeyhint"],
        "context:go.mod"
    );
    // The only local source download depends on is the filtered one.
    let locals: Vec<&Value> = g
        .ancestors(download)
        .into_iter()
        .filter(|op| {
            op["op"]["identifier"]
                .as_str()
                .is_some_and(|i| i.starts_with("local://"))
        })
        .collect();
    assert_eq!(locals.len(), 1);
    assert_eq!(locals[0]["digest"], local["digest"]);
    assert_eq!(download["op"]["meta"]["cwd"], "/src");
    let script = download["op"]["meta"]["args"][2].as_str().expect("sh -c");
    assert!(script.contains("go mod download"));
    assert!(script.contains("vendor/modules.txt"));
}

#[test]
fn go_mod_download_is_independent_of_build_only_options() {
    // What only go build uses must not touch the download step's digest,
    // just as editing a .go file must not.
    let a = plan(&input()).expect("plan");
    let mut other = input();
    other.options.mains = vec!["./cmd/other".into(), ".".into()];
    other.options.ldflags = Some("-s".into());
    other.options.tags = vec!["x".into()];
    other.options.trimpath = false;
    other.target = Platform::parse("linux/arm/v7").expect("platform");
    let b = plan(&other).expect("plan");
    let (ga, gb) = (Graph::of(&a.final_state), Graph::of(&b.final_state));
    assert_eq!(
        ga.named("go mod download")["digest"],
        gb.named("go mod download")["digest"]
    );
}

#[test]
fn go_build_binds_the_whole_context_read_only_after_download() {
    let r = plan(&full_input()).expect("plan");
    let g = Graph::of(&r.final_state);
    let build = g.named("go build");
    let download = g.named("go mod download");
    assert_eq!(Graph::mount(build, "/src")["readonly"], true);
    let local = g.mount_source(build, "/src");
    assert_eq!(local["op"]["identifier"], "local://context");
    assert!(local["op"]["attrs"].get("local.includepattern").is_none());
    assert_eq!(local["op"]["attrs"]["local.sharedkeyhint"], "context");
    // Without -buildvcs nothing reads .git: it is never sent.
    assert_eq!(local["op"]["attrs"]["local.excludepatterns"], "[\".git\"]");
    // The root is the download step's root: downloads come first.
    assert_eq!(g.mount_source(build, "/")["digest"], download["digest"]);
    assert_eq!(Graph::mount(build, "/")["output"], 0);
    // /out starts empty and is an output of its own.
    let out = Graph::mount(build, "/out");
    assert_eq!(out["input"], -1);
    assert_eq!(out["output"], 1);
    assert_eq!(build["op"]["meta"]["cwd"], "/src");
    assert_eq!(
        build["op"]["meta"]["args"],
        json!([
            "go",
            "build",
            "-trimpath",
            "-buildvcs=false",
            "-ldflags=-s -w -X main.version=1.2.3",
            "-tags=netgo,osusergo",
            "-o",
            "/out/app",
            "./cmd/app"
        ])
    );
}

#[test]
fn cache_mounts() {
    let r = plan(&full_input()).expect("plan");
    let g = Graph::of(&r.final_state);
    for step in ["go mod download", "go build"] {
        let op = g.named(step);
        let m = Graph::mount(op, GOMODCACHE_DIR);
        assert_eq!(m["type"], "cache");
        assert_eq!(m["cache"], json!({"id": "kiln-gomod", "sharing": "shared"}));
        let m = Graph::mount(op, GOCACHE_DIR);
        assert_eq!(
            m["cache"],
            json!({"id": "kiln-gobuild", "sharing": "shared"})
        );
        let env = Graph::env(op);
        for want in [
            "GOMODCACHE=/go/pkg/mod",
            "GOCACHE=/root/.cache/go-build",
            "CGO_ENABLED=0",
            "GOTOOLCHAIN=local",
            "GOPRIVATE=git.example.com,gitlab.corp",
            "GONOSUMDB=git.example.com,gitlab.corp",
            "GOENV=/root/.config/go/env",
            "HOME=/root",
            "GOPATH=/go",
        ] {
            assert!(env.contains(&want), "{step}: {want} missing from {env:?}");
        }
        assert!(!env.iter().any(|e| e.starts_with("GOFLAGS=")));
    }
}

#[test]
fn apt_step_keeps_its_caches_locked() {
    let r = plan(&full_input()).expect("plan");
    let g = Graph::of(&r.final_state);
    let apt = g.named("apt-get install");
    let script = apt["op"]["meta"]["args"][2].as_str().expect("sh -c");
    assert!(script.starts_with("rm -f /etc/apt/apt.conf.d/docker-clean && "));
    assert!(script.contains("Keep-Downloaded-Packages \"true\";"));
    assert!(script.contains("install -y --no-install-recommends git-lfs openssh-client"));
    assert!(script.contains("-o Acquire::https::CaInfo=/etc/ssl/certs/kiln-ca-bundle.crt"));
    assert_eq!(
        Graph::mount(apt, "/var/cache/apt")["cache"],
        json!({"id": "kiln-apt-cache-bookworm-linux-amd64", "sharing": "locked"})
    );
    assert_eq!(
        Graph::mount(apt, "/var/lib/apt")["cache"],
        json!({"id": "kiln-apt-lib-bookworm-linux-amd64", "sharing": "locked"})
    );
    assert!(Graph::env(apt).contains(&"DEBIAN_FRONTEND=noninteractive"));
}

#[test]
fn cross_compiles_on_the_build_platform() {
    let r = plan(&input()).expect("plan");
    let g = Graph::of(&r.final_state);
    let build = g.named("go build");
    let env = Graph::env(build);
    assert!(
        env.contains(&"GOOS=linux") && env.contains(&"GOARCH=arm64"),
        "{env:?}"
    );
    for exec in g.execs() {
        assert_eq!(
            exec["platform"],
            json!({"os": "linux", "architecture": "amd64"}),
            "every exec runs on the build platform"
        );
    }
    assert_eq!(
        g.named("FROM docker.io/library/golang")["platform"]["architecture"],
        "amd64"
    );
    assert_eq!(g.named("[final 1/2]")["platform"]["architecture"], "arm64");

    let mut arm = input();
    arm.target = Platform::parse("linux/arm/v7").expect("platform");
    let g = Graph::of(&plan(&arm).expect("plan").final_state);
    let env = Graph::env(g.named("go build"));
    assert!(
        env.contains(&"GOARCH=arm") && env.contains(&"GOARM=7"),
        "{env:?}"
    );
    assert_eq!(
        g.named("[final 1/2]")["platform"],
        json!({"os": "linux", "architecture": "arm", "variant": "v7"})
    );
}

#[test]
fn secrets_are_only_secret_mounts() {
    let r = plan(&full_input()).expect("plan");
    let def = r
        .final_state
        .marshal(&Constraints::new(Platform::linux_amd64()))
        .expect("marshal");
    let bytes = def.to_bytes();
    let text = dump::to_json(&def).to_string();
    let value = FAKE_SECRET_VALUE.as_bytes();
    assert!(!bytes.windows(value.len()).any(|w| w == value));
    assert!(!text.contains(FAKE_SECRET_VALUE));
    assert!(!r.image_config.windows(value.len()).any(|w| w == value));

    let g = Graph::of(&r.final_state);
    for exec in g.execs() {
        for e in Graph::env(exec) {
            let name = e.split('=').next().unwrap_or_default();
            assert!(
                !PROXY_ENV_NAMES.contains(&name),
                "{name} in the env of {}",
                Graph::name(exec)
            );
        }
    }
    let proxies: Vec<(&str, &str)> = PROXY_ENV_NAMES.iter().map(|n| (*n, *n)).collect();
    for step in ["apt-get install", "go mod download", "go build"] {
        let op = g.named(step);
        assert_eq!(Graph::secretenv(op), proxies, "{step}");
        let ca = Graph::mount(op, CA_BUNDLE_PATH);
        assert_eq!(ca["type"], "secret");
        assert_eq!(ca["secret"]["id"], "certs");
        let env = Graph::env(op);
        assert!(env.contains(&"SSL_CERT_FILE=/etc/ssl/certs/kiln-ca-bundle.crt"));
        assert!(env.contains(&"GIT_SSL_CAINFO=/etc/ssl/certs/kiln-ca-bundle.crt"));
    }
    for step in ["go mod download", "go build"] {
        let op = g.named(step);
        assert_eq!(Graph::mount(op, GOENV_PATH)["secret"]["id"], "goenv");
        assert_eq!(Graph::mount(op, NETRC_PATH)["secret"]["id"], "netrc");
    }
    for step in ["apt-get install", "git config"] {
        let op = g.named(step);
        assert!(!Graph::has_mount(op, GOENV_PATH) && !Graph::has_mount(op, NETRC_PATH));
    }
    // The git config step reaches no network and gets no secret at all.
    let git = g.named("git config");
    assert!(Graph::secretenv(git).is_empty());
    assert!(Graph::mounts_of_type(git, "secret").is_empty());
    assert_eq!(
        r.secret_ids,
        [
            "ALL_PROXY",
            "HTTPS_PROXY",
            "HTTP_PROXY",
            "NO_PROXY",
            "all_proxy",
            "certs",
            "goenv",
            "http_proxy",
            "https_proxy",
            "netrc",
            "no_proxy"
        ]
    );
}

#[test]
fn ssh_only_where_modules_are_fetched() {
    let r = plan(&full_input()).expect("plan");
    let g = Graph::of(&r.final_state);
    for exec in g.execs() {
        let ssh = Graph::mounts_of_type(exec, "ssh");
        let name = Graph::name(exec);
        if name.contains("go mod download") || name.contains("go build") {
            assert_eq!(ssh.len(), 1, "{name}");
            assert_eq!(ssh[0]["ssh"]["id"], "default");
            assert!(Graph::env(exec).contains(&"SSH_AUTH_SOCK=/run/buildkit/ssh_agent.0"));
        } else {
            assert!(ssh.is_empty(), "{name} must not get the agent");
        }
    }
    assert_eq!(r.ssh_ids, ["default"]);
}

#[test]
fn git_over_ssh_setup() {
    let r = plan(&full_input()).expect("plan");
    let g = Graph::of(&r.final_state);
    let file = g.named("write /root/.ssh/known_hosts");
    let actions = file["op"]["actions"].as_array().expect("actions");
    assert_eq!(actions[0]["mkdir"]["path"], "/root/.ssh");
    assert_eq!(actions[0]["mkdir"]["mode"], "700");
    assert_eq!(actions[1]["mkfile"]["path"], "/root/.ssh/known_hosts");
    assert_eq!(actions[1]["mkfile"]["mode"], "644");
    assert_eq!(
        actions[1]["mkfile"]["data"],
        format!("git.example.com ssh-ed25519 {KEY}\n[gitlab.corp]:2222 ssh-ed25519 {KEY}\n")
    );
    let git = g.named("git config");
    assert_eq!(
        git["op"]["meta"]["args"][2],
        "git config --global 'url.ssh://git@git.example.com/.insteadOf' https://git.example.com/ \
         && git config --global 'url.ssh://git@gitlab.corp:2222/.insteadOf' https://gitlab.corp/"
    );
    // known_hosts is written before git config, both before the Go steps.
    assert!(g
        .ancestors(git)
        .iter()
        .any(|op| op["digest"] == file["digest"]));
    assert!(g
        .ancestors(g.named("go mod download"))
        .iter()
        .any(|op| op["digest"] == git["digest"]));
}

#[test]
fn final_stage_holds_only_the_binary() {
    let r = plan(&full_input()).expect("plan");
    let g = Graph::of(&r.final_state);
    let base = g.named("[final 1/2]");
    assert_eq!(
        base["op"]["identifier"],
        format!(
            "docker-image://gcr.io/distroless/static-debian12:nonroot@{}",
            Digest::sha256_of(b"index")
        )
    );
    let copy = g.named("[final 2/2]");
    let actions = copy["op"]["actions"].as_array().expect("actions");
    assert_eq!(actions.len(), 2);
    let ns = 1_700_000_000i64 * 1_000_000_000;
    let owner = json!({"user": {"id": 0}, "group": {"id": 0}});
    // First /app is laid out on scratch: the binary under its image name…
    let c = &actions[0]["copy"];
    assert_eq!(actions[0]["input"], -1, "on scratch");
    assert_eq!(actions[0]["output"], -1, "not an output");
    assert_eq!(actions[0]["secondary_input"], 1, "from the binaries");
    assert_eq!(c["src"], "/app");
    assert_eq!(c["dest"], "/app/bin");
    assert_eq!(c["mode"], "755");
    assert_eq!(c["owner"], owner);
    assert_eq!(c["create_dest_path"], true);
    assert_eq!(c["timestamp"], ns);
    // …then that /app is copied into the base whole, so the directory is
    // stamped after its files land (a mkdir and copies into it left /app
    // with the build's wall-clock time).
    let c = &actions[1]["copy"];
    assert_eq!(actions[1]["input"], 0, "on the base");
    assert_eq!(actions[1]["output"], 0);
    assert_eq!(actions[1]["secondary_input"], 2, "from the first action");
    assert_eq!(c["src"], "/app");
    assert_eq!(c["dest"], "/app");
    assert_eq!(c["mode"], "755");
    assert_eq!(c["owner"], owner);
    assert_eq!(c["timestamp"], ns);
    assert!(c.get("dir_copy_contents").is_none() && c.get("create_dest_path").is_none());
    // The copy reads the last go build's /out.
    let build = g.named("go build");
    let bins = &copy["inputs"][1];
    assert_eq!(bins["digest"], build["digest"]);
    assert_eq!(bins["index"], 1);
    // The builder state is that same output.
    let b = Graph::of(&r.builder_state);
    assert_eq!(b.0["head"]["digest"], build["digest"]);
    assert_eq!(b.0["head"]["index"], 1);
}

#[test]
fn several_mains() {
    let mut i = input();
    i.options.mains = vec!["./cmd/api".into(), "cmd/worker/".into(), ".".into()];
    let r = plan(&i).expect("plan");
    let g = Graph::of(&r.final_state);
    let api = g.named("go build -o /out/api ./cmd/api");
    let worker = g.named("go build -o /out/worker ./cmd/worker");
    let shop = g.named("go build -o /out/shop .");
    // Chained through /out: the last /out holds every binary.
    assert_eq!(g.mount_source(worker, "/out")["digest"], api["digest"]);
    assert_eq!(g.mount_source(shop, "/out")["digest"], worker["digest"]);
    assert!(g.names().contains(&"[builder 5/5] go build -o /out/shop ."));
    let copy = g.named("[final 2/2] COPY /app/api /app/worker /app/shop");
    let dests: Vec<&Value> = copy["op"]["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .filter_map(|a| a.get("copy").map(|c| &c["dest"]))
        .collect();
    assert_eq!(dests, ["/app/api", "/app/worker", "/app/shop", "/app"]);
    let config: Value = serde_json::from_slice(&r.image_config).expect("json");
    assert_eq!(config["config"]["Entrypoint"], json!(["/app/api"]));
}

#[test]
fn image_config() {
    let r = plan(&full_input()).expect("plan");
    let c: Value = serde_json::from_slice(&r.image_config).expect("json");
    assert_eq!(c["architecture"], "arm64");
    assert_eq!(c["os"], "linux");
    assert_eq!(c["created"], "2023-11-14T22:13:20Z");
    let cfg = &c["config"];
    assert_eq!(cfg["Entrypoint"], json!(["/app/bin"]));
    assert_eq!(cfg["Cmd"], json!(["--listen", ":8080"]));
    assert_eq!(cfg["User"], "65532", "the base's user is kept");
    assert_eq!(cfg["WorkingDir"], "/home/nonroot");
    assert_eq!(
        cfg["Env"],
        json!([
            "PATH=/usr/bin:/bin",
            "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"
        ])
    );
    assert!(cfg.get("Volumes").is_none());
    let index = Digest::sha256_of(b"index").to_string();
    assert_eq!(
        cfg["Labels"],
        json!({
            "org.example.team": "payments",
            "org.opencontainers.image.base.digest": index,
            "org.opencontainers.image.base.name": "gcr.io/distroless/static-debian12:nonroot",
            "org.opencontainers.image.created": "2023-11-14T22:13:20Z",
            "org.opencontainers.image.revision": "0123abcd",
            "org.opencontainers.image.source": "https://git.example.com/shop",
        })
    );
    assert_eq!(c["history"][0]["created"], "2023-11-14T22:13:20Z");
    assert_eq!(
        r.annotations.get(keys::BASE_DIGEST).map(String::as_str),
        Some(index.as_str())
    );

    // A user label wins; `user` overrides the base's; no Cmd without `cmd`.
    let mut i = input();
    i.options.user = Some("0:0".into());
    i.options
        .labels
        .insert(keys::BASE_NAME.into(), "mirror/static".into());
    let c: Value = serde_json::from_slice(&plan(&i).expect("plan").image_config).expect("json");
    assert_eq!(c["config"]["User"], "0:0");
    assert_eq!(c["config"]["Labels"][keys::BASE_NAME], "mirror/static");
    assert!(c["config"].get("Cmd").is_none());
    assert!(c["config"]["Labels"].get(keys::CREATED).is_none());
    assert_eq!(c["created"], "1970-01-01T00:00:00Z");
}

#[test]
fn deterministic() {
    for i in [input(), full_input()] {
        let a = plan(&i).expect("plan");
        let b = plan(&i).expect("plan");
        let c = Constraints::new(Platform::linux_amd64());
        let da = a.final_state.marshal(&c).expect("marshal").to_bytes();
        let db = b.final_state.marshal(&c).expect("marshal").to_bytes();
        assert_eq!(da, db);
        assert_eq!(a.image_config, b.image_config);
        // The marshal platform does not leak in: every op names its own.
        let other = a
            .final_state
            .marshal(&Constraints::new(Platform::linux_arm64()))
            .expect("marshal")
            .to_bytes();
        assert_eq!(da, other);
    }
}

#[test]
fn no_cache_ignores_the_cache_of_every_step_but_the_images() {
    let mut i = full_input();
    i.options.no_cache = true;
    let g = Graph::of(&plan(&i).expect("plan").final_state);
    for op in g.ops() {
        let name = Graph::name(op);
        let ignored = op["metadata"]["ignore_cache"] == true;
        let step =
            (name.starts_with("[builder") || name.starts_with("[final")) && !name.contains("FROM");
        assert_eq!(ignored, step, "{name}");
    }
    let g = Graph::of(&plan(&full_input()).expect("plan").final_state);
    assert!(g
        .ops()
        .iter()
        .all(|op| op["metadata"].get("ignore_cache").is_none()));
}

#[test]
fn buildvcs_and_cgo() {
    let mut i = input();
    i.options.buildvcs = true;
    i.options.trimpath = false;
    i.options.cgo = true;
    i.target = Platform::linux_amd64();
    let g = Graph::of(&plan(&i).expect("plan").final_state);
    let build = g.named("go build");
    assert_eq!(
        build["op"]["meta"]["args"],
        json!(["go", "build", "-o", "/out/app", "./cmd/app"])
    );
    assert!(Graph::env(build).contains(&"CGO_ENABLED=1"));
    let git = g.named("git config safe.directory");
    assert_eq!(
        git["op"]["meta"]["args"][2],
        "git config --global --add safe.directory /src"
    );
}

#[test]
fn options_from_kiln_toml_keys() {
    let o: GoBuildOptions = serde_json::from_value(json!({
        "mains": ["./cmd/api"],
        "git-ssh-hosts": ["github.com"],
        "proxy-env-secrets": ["HTTPS_PROXY"],
        "source-date-epoch": 1
    }))
    .expect("options");
    assert_eq!(o.git_ssh_hosts, ["github.com"]);
    assert!(o.trimpath);
    assert!(serde_json::from_value::<GoBuildOptions>(json!({"main": ["x"]})).is_err());
}

#[test]
fn host_network_reaches_every_step_that_fetches() {
    let mut input = full_input();
    input.options.host_network = true;
    let r = plan(&input).expect("plan");
    let g = Graph::of(&r.final_state);
    // A proxy or git server only the host reaches serves apt as well as Go.
    for step in ["apt-get install", "go mod download", "go build"] {
        assert_eq!(g.named(step)["op"]["network"], "HOST", "{step}");
    }
    // The git config step reaches nothing: it stays in the sandbox.
    assert!(g.named("git config")["op"].get("network").is_none());
    // Without the option, no step leaves the sandbox.
    let r = plan(&full_input()).expect("plan");
    let g = Graph::of(&r.final_state);
    for exec in g.execs() {
        assert!(exec["op"].get("network").is_none(), "{}", Graph::name(exec));
    }
}

#[test]
fn an_imported_go_cache_fills_the_very_mounts_go_build_uses() {
    let mut input = full_input();
    let imported = kiln_llb::scratch().mkfile(kiln_llb::Mkfile::new("/kiln-go-cache", 0o644, "1"));
    input.go_cache_in = Some(imported);
    let r = plan(&input).expect("plan");
    let g = Graph::of(&r.final_state);
    let fill = g.named("[go cache] fill");
    let build = g.named("go build");
    // The same cache mounts (id, sharing, owner) as go build.
    for dest in [GOCACHE_DIR, GOMODCACHE_DIR] {
        assert_eq!(
            Graph::mount(fill, dest)["cache"],
            Graph::mount(build, dest)["cache"],
            "{dest}"
        );
    }
    // The import is read-only; no secret or agent reaches the fill step.
    assert_eq!(Graph::mount(fill, "/kiln/go-cache-in")["readonly"], true);
    let secrets_or_ssh = fill["op"]["mounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .filter(|m| m["type"] == "secret" || m["type"] == "ssh")
        .count();
    assert_eq!(secrets_or_ssh, 0, "{fill:#}");
    // go build runs after the fill: its marker is mounted read-only (a
    // constant content, so go build's cache key ignores the import).
    let marker = Graph::mount(build, "/kiln/go-cache-filled");
    assert_eq!(marker["readonly"], true);
    // ... and so does go mod download (the module cache is filled too).
    assert_eq!(
        Graph::mount(g.named("go mod download"), "/kiln/go-cache-filled")["readonly"],
        true
    );
    // Without an import, neither step nor mount.
    let plain = Graph::of(&plan(&full_input()).expect("plan").final_state);
    assert!(!plain.names().iter().any(|n| n.contains("[go cache]")));
    assert!(!Graph::has_mount(
        plain.named("go build"),
        "/kiln/go-cache-filled"
    ));
}

#[test]
fn the_go_cache_export_reads_the_build_cache_after_go_build() {
    let mut input = full_input();
    assert!(plan(&input).expect("plan").go_cache.is_none());
    input.go_cache_out = true;
    let r = plan(&input).expect("plan");
    let g = Graph::of(r.go_cache.as_ref().expect("a go cache state"));
    let export = g.named("[go cache] export GOCACHE");
    assert_eq!(
        Graph::mount(export, GOCACHE_DIR)["cache"],
        json!({"id": "kiln-gobuild", "sharing": "shared"})
    );
    // After go build: the binaries are its read-only input.
    assert_eq!(Graph::mount(export, "/kiln/built")["readonly"], true);
    assert!(g.names().iter().any(|n| n.contains("go build")));
    // No secret, netrc, GOENV file or agent is mounted into it.
    for m in export["op"]["mounts"].as_array().expect("mounts") {
        assert!(m["type"] != "secret" && m["type"] != "ssh", "{m}");
    }
    // modules=true: the module cache's downloads go along.
    let args = |input: &RecipeInput| {
        let r = plan(input).expect("plan");
        let g = Graph::of(r.go_cache.as_ref().expect("state"));
        g.named("[go cache] export")["op"]["meta"]["args"].to_string()
    };
    assert!(!args(&input).contains("gomodcache"));
    input.go_cache_modules = true;
    assert!(args(&input).contains("gomodcache"));
    // The image does not contain the cache.
    let image = Graph::of(&r.final_state);
    assert!(!image.names().iter().any(|n| n.contains("[go cache]")));
}
