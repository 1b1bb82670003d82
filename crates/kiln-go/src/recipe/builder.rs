//! The builder stage: the Go image, optional apt packages and git-over-SSH
//! setup, `go mod download` on `go.mod`/`go.sum` alone, and one `go build`
//! per main package into a scratch `/out`.

use kiln_image::Platform;
use kiln_llb::{
    image_ref, local_with, CacheSharing, ExecOptions, ExecState, FileAction, FileOptions,
    ImageOptions, LocalOptions, Mkdir, Mkfile, Mount, SecretMount, SshMount, State,
};

use super::error::RecipeError;
use super::validate::{platform_slug, sh_quote};
use super::{
    Checked, RecipeInput, CA_BUNDLE_PATH, GOBUILD_CACHE_ID, GOCACHE_DIR, GOENV_PATH,
    GOMODCACHE_DIR, GOMOD_CACHE_ID, GO_MOD_PATTERNS, KNOWN_HOSTS_PATH, NETRC_PATH, OUT_DIR,
    SRC_DIR,
};

/// Numbers the steps of one stage: `[builder 3/6] …`.
pub(crate) struct Steps {
    stage: String,
    done: usize,
    total: usize,
}

impl Steps {
    /// `label` (e.g. a platform) goes before the stage name when given.
    pub fn new(stage: &'static str, total: usize, label: Option<&str>) -> Self {
        Steps {
            stage: match label {
                Some(l) if !l.is_empty() => format!("{l} {stage}"),
                _ => stage.to_string(),
            },
            done: 0,
            total,
        }
    }

    pub fn next(&mut self, what: impl std::fmt::Display) -> String {
        self.done += 1;
        format!("[{} {}/{}] {what}", self.stage, self.done, self.total)
    }
}

/// The builder stage's results.
pub(crate) struct Builder {
    /// `/out` after the last `go build`: every binary at `/<name>`.
    pub binaries: State,
    /// The Go build cache after `go build`, when exporting it.
    pub go_cache: Option<State>,
}

/// Settings every builder exec shares: platform, name, cache policy.
struct ExecCommon<'a> {
    platform: &'a Platform,
    no_cache: bool,
}

impl ExecCommon<'_> {
    fn apply(&self, opts: ExecOptions, name: String) -> ExecOptions {
        let opts = opts.platform(self.platform.clone()).custom_name(name);
        if self.no_cache {
            opts.ignore_cache()
        } else {
            opts
        }
    }
}

/// The proxy variables, the CA bundle and the host network when asked
/// for: for every step that reaches the network (apt, `go mod download`,
/// `go build`), so a proxy or server only the host reaches (a local
/// cntlm on 127.0.0.1) serves them all. Proxy values only ever travel as
/// secrets.
fn network_access(opts: ExecOptions, input: &RecipeInput) -> ExecOptions {
    let o = &input.options;
    let opts = if o.host_network {
        opts.network(kiln_llb::NetMode::Host)
    } else {
        opts
    };
    let mut opts = o
        .proxy_env_secrets
        .iter()
        .fold(opts, |opts, id| opts.secret(SecretMount::env(id, id)));
    if let Some(id) = &o.ca_bundle_secret {
        // World-readable: apt fetches as the unprivileged `_apt` user.
        opts = opts
            .secret(SecretMount::file(id, CA_BUNDLE_PATH).mode(0o444))
            .env("SSL_CERT_FILE", CA_BUNDLE_PATH)
            .env("GIT_SSL_CAINFO", CA_BUNDLE_PATH);
    }
    opts
}

/// Everything a step that fetches Go modules needs: network access, the
/// go env file, `.netrc`, the SSH agents and the Go caches.
fn module_access(opts: ExecOptions, input: &RecipeInput) -> ExecOptions {
    let o = &input.options;
    let mut opts = go_caches(network_access(opts, input));
    if let Some(id) = &o.goenv_secret {
        opts = opts.secret(SecretMount::file(id, GOENV_PATH));
    }
    if let Some(id) = &o.netrc_secret {
        opts = opts.secret(SecretMount::file(id, NETRC_PATH));
    }
    o.ssh
        .iter()
        .fold(opts, |opts, id| opts.ssh(SshMount::new().id(id)))
}

/// The Go module and build caches, as every Go step mounts them: the
/// go-cache fill and export steps must use these very mounts (BuildKit
/// keys a cache mount by id, sharing and owner).
fn go_caches(opts: ExecOptions) -> ExecOptions {
    opts.mount(Mount::cache(GOMODCACHE_DIR, GOMOD_CACHE_ID).sharing(CacheSharing::Shared))
        .mount(Mount::cache(GOCACHE_DIR, GOBUILD_CACHE_ID).sharing(CacheSharing::Shared))
}

/// Where the fill step sees the imported Go cache.
const GO_CACHE_IN: &str = "/kiln/go-cache-in";
/// The fill step's marker output, mounted read-only into `go build` so it
/// runs after the fill (its content is constant: `go build`'s cache key
/// does not change with the imported cache).
const GO_CACHE_FILLED: &str = "/kiln/go-cache-filled";
/// Where the export step writes the cache to export.
const GO_CACHE_OUT: &str = "/kiln/go-cache-out";
/// The binaries the export step waits for.
const GO_CACHE_BUILT: &str = "/kiln/built";

/// Fills `GOCACHE` from an imported cache (`gocache/` and its
/// `kiln-go-cache` stamp, seconds since 1970 of the export) only where the
/// mount is empty (no Go `README`) or older than the import: a daemon's
/// own warmer cache is kept. Never fails the build.
const FILL_SCRIPT: &str = r#"in=/kiln/go-cache-in; got=$(cat "$in/kiln-go-cache" 2>/dev/null || true)
case "$got" in
  ''|*[!0-9]*) echo "kiln: the imported Go cache has no stamp: building without it" ;;
  *) have=$(cat "$GOCACHE/kiln-go-cache" 2>/dev/null || echo 0)
     case "$have" in ''|*[!0-9]*) have=0 ;; esac
     if [ -d "$in/gocache" ] && { [ ! -f "$GOCACHE/README" ] || [ "$have" -lt "$got" ]; }; then
       if cp -a "$in/gocache/." "$GOCACHE/"; then
         echo "$got" > "$GOCACHE/kiln-go-cache"
         echo "kiln: Go build cache filled from the import ($(du -sh "$in/gocache" | cut -f1))"
       else
         echo "kiln: copying the imported Go cache failed: building without it"
       fi
     else
       echo "kiln: the daemon's Go build cache is as new as the import: kept"
     fi ;;
esac
if [ -d "$in/gomodcache" ]; then
  if cp -an "$in/gomodcache/." "$GOMODCACHE/" 2>/dev/null; then
    echo "kiln: Go module cache filled from the import ($(du -sh "$in/gomodcache" | cut -f1))"
  else
    echo "kiln: copying the imported module cache failed: downloading instead"
  fi
fi
echo filled > /kiln/go-cache-filled/done"#;

/// Copies the Go build cache entries used in the last five days (what Go
/// itself keeps; older ones it trims) into the export, with a stamp; with
/// `modules`, the module cache's downloads too (`cache/download`: what
/// `go mod download` fetches and extracts again offline).
fn export_script(modules: bool) -> String {
    let mut script = String::from(
        r#"set -e
out=/kiln/go-cache-out; mkdir -p "$out/gocache"
cd "$GOCACHE"
find . -type f -mmin -7200 ! -name kiln-go-cache -print0 | tar --null -T - -cf - | tar -C "$out/gocache" -xf -
echo "kiln: Go build cache to export: $(du -sh "$out/gocache" | cut -f1) in $(find "$out/gocache" -type f | wc -l) files"
"#,
    );
    if modules {
        script.push_str(
            r#"mkdir -p "$out/gomodcache"
if [ -d "$GOMODCACHE/cache/download" ]; then
  mkdir -p "$out/gomodcache/cache" && cp -a "$GOMODCACHE/cache/download" "$out/gomodcache/cache/"
fi
echo "kiln: Go module cache to export: $(du -sh "$out/gomodcache" | cut -f1)"
"#,
        );
    }
    script.push_str(r#"date +%s > "$out/kiln-go-cache""#);
    script
}

/// The distro part of a builder tag (`1.24.7-bookworm` → `bookworm`), so
/// apt caches of different releases stay apart.
fn distro_of(input: &RecipeInput) -> String {
    let tag = input.builder.reference.tag().unwrap_or_default();
    match tag.rsplit_once('-') {
        Some((_, d)) if d.starts_with(|c: char| c.is_ascii_alphabetic()) => d
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect(),
        _ => "default".to_string(),
    }
}

/// The number of builder steps for these options (for `[builder N/M]`).
pub(crate) fn step_count(input: &RecipeInput, checked: &Checked) -> usize {
    1 + usize::from(!input.options.apt_packages.is_empty())
        + usize::from(checked.known_hosts.is_some())
        + usize::from(!git_commands(input, checked).is_empty())
        + 1
        + checked.mains.len()
}

/// `git config` commands: the SSH rewrites, and `safe.directory` when Go
/// stamps VCS data (the bound source belongs to the caller's uid, not root).
fn git_commands(input: &RecipeInput, checked: &Checked) -> Vec<String> {
    let mut cmds: Vec<String> = checked
        .ssh_hosts
        .iter()
        .map(|h| h.git_config_command())
        .collect();
    if input.options.buildvcs {
        cmds.push(format!(
            "git config --global --add safe.directory {SRC_DIR}"
        ));
    }
    cmds
}

/// Builds the builder stage.
pub(crate) fn builder(input: &RecipeInput, checked: &Checked) -> Result<Builder, RecipeError> {
    let o = &input.options;
    let build = &input.build_platform;
    let mut steps = Steps::new(
        "builder",
        step_count(input, checked),
        o.step_label.as_deref(),
    );
    let common = ExecCommon {
        platform: build,
        no_cache: o.no_cache,
    };
    let reference = &input.builder.reference;

    // 1. The Go image, with its ENV (PATH, GOPATH, …) and WORKDIR.
    let from = image_ref(
        reference,
        ImageOptions::new()
            .platform(build.clone())
            .custom_name(steps.next(format_args!("FROM {reference}"))),
    );
    let mut st = from
        .with_image_config(&input.builder.config_json)
        .map_err(|source| RecipeError::BuilderEnv {
            reference: reference.to_string(),
            source: Box::new(source),
        })?
        // The config may name another platform; the builder runs on ours.
        .platform(build.clone())
        // The secrets, known_hosts and git config below live under /root.
        .add_env("HOME", "/root");

    // 2. apt packages, with the apt caches kept between builds.
    if !o.apt_packages.is_empty() {
        let ca = if o.ca_bundle_secret.is_some() {
            format!(" -o Acquire::https::CaInfo={CA_BUNDLE_PATH}")
        } else {
            String::new()
        };
        let pkgs: Vec<String> = o.apt_packages.iter().map(|p| sh_quote(p)).collect();
        let cmd = format!(
            "rm -f /etc/apt/apt.conf.d/docker-clean \
             && echo 'Binary::apt::APT::Keep-Downloaded-Packages \"true\";' > /etc/apt/apt.conf.d/keep-cache \
             && apt-get{ca} update \
             && apt-get{ca} install -y --no-install-recommends {}",
            pkgs.join(" ")
        );
        let slug = format!("{}-{}", distro_of(input), platform_slug(build));
        let opts = ExecOptions::shell(cmd)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .mount(
                Mount::cache("/var/cache/apt", format!("kiln-apt-cache-{slug}"))
                    .sharing(CacheSharing::Locked),
            )
            .mount(
                Mount::cache("/var/lib/apt", format!("kiln-apt-lib-{slug}"))
                    .sharing(CacheSharing::Locked),
            );
        let name = steps.next(format_args!("apt-get install {}", o.apt_packages.join(" ")));
        st = st
            .run(common.apply(network_access(opts, input), name))
            .root();
    }

    // 3. Git over SSH: known_hosts as a file op (never ssh-keyscan), then
    //    the insteadOf rewrites.
    let hosts: Vec<&str> = checked.ssh_hosts.iter().map(|h| h.given.as_str()).collect();
    if let Some(file) = &checked.known_hosts {
        let action = FileAction::from(Mkdir::new("/root/.ssh", 0o700).parents(true))
            .mkfile(Mkfile::new(KNOWN_HOSTS_PATH, 0o644, file.as_bytes()));
        let mut fo = FileOptions::new().custom_name(steps.next(format_args!(
            "write {KNOWN_HOSTS_PATH} ({})",
            hosts.join(", ")
        )));
        if o.no_cache {
            fo = fo.ignore_cache();
        }
        st = st.file_with(action, fo);
    }
    let git = git_commands(input, checked);
    if !git.is_empty() {
        let what = if hosts.is_empty() {
            "git config safe.directory".to_string()
        } else {
            format!("git config: ssh for {}", hosts.join(", "))
        };
        let name = steps.next(what);
        st = st
            .run(common.apply(ExecOptions::shell(git.join(" && ")), name))
            .root();
    }

    // 4. The environment of the Go steps.
    st = st
        .add_env("GOMODCACHE", GOMODCACHE_DIR)
        .add_env("GOCACHE", GOCACHE_DIR)
        .add_env("CGO_ENABLED", if o.cgo { "1" } else { "0" })
        .add_env("GOTOOLCHAIN", "local");
    if o.goenv_secret.is_some() {
        st = st.add_env("GOENV", GOENV_PATH);
    }
    if let Some(p) = o.goprivate.as_deref().filter(|p| !p.is_empty()) {
        st = st.add_env("GOPRIVATE", p).add_env("GONOSUMDB", p);
    }

    // 5. go mod download, on go.mod and go.sum alone: editing a .go file
    //    keeps this step cached. A vendored module needs no download.
    let ctx = &input.context_name;
    let go_mod = local_with(
        ctx,
        LocalOptions::new()
            .include_patterns(GO_MOD_PATTERNS)
            .shared_key_hint(format!("{ctx}:go.mod"))
            .custom_name(format!("[context] load {}", GO_MOD_PATTERNS.join(" "))),
    );
    let download = ExecOptions::shell(
        "if [ -f vendor/modules.txt ]; then echo 'vendor/modules.txt found: using the vendored modules'; else go mod download; fi",
    )
    .dir(SRC_DIR)
    .mount(Mount::bind(SRC_DIR, &go_mod).readonly());
    // 5a. With an imported Go cache: fill the caches first (the module
    //     cache helps go mod download, the build cache go build).
    let filled = input.go_cache_in.as_ref().map(|cache| {
        let fill = go_caches(
            ExecOptions::shell(FILL_SCRIPT)
                .mount(Mount::bind(GO_CACHE_IN, cache).readonly())
                .mount(Mount::scratch(GO_CACHE_FILLED)),
        );
        st.run(common.apply(fill, "[go cache] fill GOCACHE from the import".into()))
            .get_mount(GO_CACHE_FILLED)
    });
    let download = match &filled {
        Some(filled) => download.mount(Mount::bind(GO_CACHE_FILLED, filled).readonly()),
        None => download,
    };
    let name = steps.next("go mod download");
    let downloaded = st.run(common.apply(module_access(download, input), name));

    // 6. go build, one exec per main, cross-compiling on the build platform.
    //    Each writes into the previous one's /out, so the last /out holds
    //    every binary.
    let mut source_opts = LocalOptions::new()
        .shared_key_hint(ctx.clone())
        .custom_name("[context] load module source");
    if !o.buildvcs {
        // Nothing reads the repository's history then; a real .git is often
        // bigger than the module and would be sent on every first sync.
        source_opts = source_opts.exclude_patterns([".git"]);
    }
    let source = local_with(ctx, source_opts);
    let mut out: Option<State> = None;
    for main in &checked.mains {
        let target = format!("{OUT_DIR}/{}", main.name);
        let mut args: Vec<String> = vec!["go".into(), "build".into()];
        if o.trimpath {
            args.push("-trimpath".into());
        }
        if !o.buildvcs {
            args.push("-buildvcs=false".into());
        }
        if let Some(ldflags) = &o.ldflags {
            args.push(format!("-ldflags={ldflags}"));
        }
        if !o.tags.is_empty() {
            args.push(format!("-tags={}", o.tags.join(",")));
        }
        args.extend(["-o".into(), target.clone(), main.arg.clone()]);
        let out_mount = match &out {
            None => Mount::scratch(OUT_DIR),
            Some(prev) => Mount::bind(OUT_DIR, prev),
        };
        let mut opts = input
            .target
            .go_env()
            .into_iter()
            .fold(ExecOptions::new(args), |opts, (k, v)| opts.env(k, v))
            .dir(SRC_DIR)
            .mount(Mount::bind(SRC_DIR, &source).readonly())
            .mount(out_mount);
        if let Some(filled) = &filled {
            opts = opts.mount(Mount::bind(GO_CACHE_FILLED, filled).readonly());
        }
        let name = steps.next(format_args!("go build -o {target} {}", main.arg));
        let built: ExecState = downloaded
            .root()
            .run(common.apply(module_access(opts, input), name));
        out = Some(built.get_mount(OUT_DIR));
    }
    // `mains` is never empty (checked), so `out` is set.
    let binaries = out.unwrap_or_else(kiln_llb::scratch);
    // 7. With a Go cache export: copy the build cache out, after go build.
    let go_cache = input.go_cache_out.then(|| {
        let export = go_caches(
            ExecOptions::shell(export_script(input.go_cache_modules))
                .mount(Mount::bind(GO_CACHE_BUILT, &binaries).readonly())
                .mount(Mount::scratch(GO_CACHE_OUT)),
        );
        downloaded
            .root()
            .run(common.apply(export, "[go cache] export GOCACHE".into()))
            .get_mount(GO_CACHE_OUT)
    });
    Ok(Builder { binaries, go_cache })
}
