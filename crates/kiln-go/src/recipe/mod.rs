//! The Go recipe: a pure function from build options to BuildKit LLB and an
//! image config — the Dockerfile that `kiln build` never asks you to write.
//!
//! [`plan`] encodes the multi-stage practice of a careful Go Containerfile
//! (cache mounts, `go mod download` on `go.mod`/`go.sum` alone, the source
//! bind-mounted rather than copied, SSH forwarding for private git modules,
//! secrets for `go env`, `.netrc`, proxies and a CA bundle, a distroless
//! base pinned by digest) and adds what a Dockerfile cannot express well:
//! cross-compilation on the build platform (never emulation), reproducible
//! timestamps from `SOURCE_DATE_EPOCH`, and typed validation of every
//! option. It does no I/O: the caller resolves images and reads
//! `known_hosts`, then solves the states it gets back.
//!
//! # The graph
//!
//! Builder (every exec on [`RecipeInput::build_platform`]):
//! 1. `[builder 1/M] FROM <builder>` with the builder config's `Env` and
//!    `WorkingDir` applied, and `HOME=/root`.
//! 2. *(apt-packages)* one exec: drop `docker-clean`, keep downloaded
//!    packages, `apt-get update && apt-get install -y --no-install-recommends …`,
//!    with locked cache mounts on `/var/cache/apt` and `/var/lib/apt`
//!    (ids `kiln-apt-cache-<distro>-<platform>`, `kiln-apt-lib-…`).
//! 3. *(git-ssh-hosts)* a file op writing `/root/.ssh/known_hosts` (0644, in
//!    a 0700 `/root/.ssh`) from the caller's lines, then one exec of
//!    `git config --global url."ssh://git@HOST[:PORT]/".insteadOf "https://HOST/"`.
//!    (With `buildvcs`, the exec also marks `/src` as a git `safe.directory`.)
//! 4. Go environment: `GOMODCACHE=/go/pkg/mod`, `GOCACHE=/root/.cache/go-build`,
//!    `CGO_ENABLED`, `GOTOOLCHAIN=local`, `GOPRIVATE`/`GONOSUMDB`, `GOENV`.
//! 5. `go mod download` in `/src`, a read-only bind of the context filtered
//!    to [`GO_MOD_PATTERNS`], so only `go.mod`/`go.sum` edits re-run it (a
//!    vendored module skips the download).
//! 6. `go build [-trimpath] [-buildvcs=false] [-ldflags=…] [-tags=…] -o /out/<name> <main>`
//!    per main, on step 5's root, with the whole context bound read-only at
//!    `/src`, `GOOS`/`GOARCH`/`GOARM`… of the target, and `/out` a scratch
//!    mount passed from one build to the next.
//!
//! Steps 5 and 6 share the cache mounts `kiln-gomod` and `kiln-gobuild`
//! (shared), the SSH agents, the go env / `.netrc` secrets, and — like step
//! 2 — the proxy variables (secret env vars, never plain env) and the CA
//! bundle (a secret file with `SSL_CERT_FILE`/`GIT_SSL_CAINFO` pointing at it).
//! With `no-cache`, every builder exec and file op (and the final copy)
//! ignores the cache.
//!
//! Final (on [`RecipeInput::target`]):
//! 1. `[final 1/2] FROM <base>@<index digest>`.
//! 2. `[final 2/2] COPY`: `/app` (0755) and the binaries — `/app/bin` for a
//!    single main, `/app/<name>` for several — 0755, owned by 0:0, stamped
//!    with `SOURCE_DATE_EPOCH` when given (`/app` too: it is laid out on
//!    scratch and copied in whole, so its time is set after its files
//!    land). Nothing else is added.
//!
//! The image config keeps the base's `Env`, `WorkingDir` and `User`, sets
//! `Entrypoint` to the first binary (`["/app/bin"]` for one main), `Cmd`,
//! `User` when asked, and the `org.opencontainers.image.*` labels `source`,
//! `revision`, `created`, `base.name` and `base.digest` (user labels win).
//!
//! # Example
//!
//! ```
//! use kiln_go::recipe::{plan, GoBuildOptions, RecipeInput, ResolvedImage};
//! use kiln_image::{Digest, ImageRef, Platform};
//! use kiln_llb::{dump, Constraints};
//!
//! // What the caller resolved through the daemon.
//! let builder = ResolvedImage {
//!     reference: ImageRef::parse("golang:1.24.7-bookworm")?,
//!     config_json: br#"{"architecture":"amd64","os":"linux",
//!         "config":{"Env":["PATH=/go/bin:/usr/local/go/bin:/usr/bin:/bin","GOPATH=/go"],"WorkingDir":"/go"},
//!         "rootfs":{"type":"layers","diff_ids":[]}}"#.to_vec(),
//! };
//! let base = ResolvedImage {
//!     reference: ImageRef::parse("gcr.io/distroless/static-debian12:nonroot")?
//!         .with_digest(Digest::sha256_of(b"the index manifest")),
//!     config_json: br#"{"architecture":"arm64","os":"linux",
//!         "config":{"Env":["PATH=/usr/bin:/bin"],"User":"65532","WorkingDir":"/home/nonroot"},
//!         "rootfs":{"type":"layers","diff_ids":[]}}"#.to_vec(),
//! };
//!
//! let mut options = GoBuildOptions::default();
//! options.mains = vec!["./cmd/api".into()];
//! options.module_name = "example.com/shop".into();
//! options.ldflags = Some("-s -w".into());
//! options.ssh = vec!["default".into()];
//! options.goprivate = Some("git.example.com".into());
//! options.git_ssh_hosts = vec!["git.example.com".into()];
//! options.known_hosts = vec!["git.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl".into()];
//! options.proxy_env_secrets = vec!["HTTPS_PROXY".into()];
//! options.source_date_epoch = Some(1_700_000_000);
//!
//! let recipe = plan(&RecipeInput {
//!     context_name: "context".into(),
//!     go_version: "1.24.7".into(),
//!     builder,
//!     base,
//!     build_platform: Platform::linux_amd64(),
//!     target: Platform::linux_arm64(),
//!     options,
//!     go_cache_in: None,
//!     go_cache_out: false,
//!     go_cache_modules: false,
//! })?;
//!
//! // Solve `recipe.final_state` with `recipe.image_config` as the image config.
//! let def = recipe.final_state.marshal(&Constraints::new(Platform::linux_amd64()))?;
//! assert!(dump::to_json(&def)["ops"].as_array().is_some_and(|ops| ops.len() > 5));
//! let config: serde_json::Value = serde_json::from_slice(&recipe.image_config)?;
//! assert_eq!(config["config"]["Entrypoint"], serde_json::json!(["/app/bin"]));
//! assert_eq!(config["architecture"], "arm64");
//! assert_eq!(config["created"], "2023-11-14T22:13:20Z");
//! assert_eq!(recipe.secret_ids, ["HTTPS_PROXY"]);
//! assert_eq!(recipe.ssh_ids, ["default"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod builder;
pub mod error;
mod final_stage;
mod options;
mod ssh;
mod validate;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_errors;

use std::collections::BTreeMap;

use kiln_image::config::parse_config;
use kiln_image::Digest;
use kiln_llb::State;

pub use error::{ImageRole, MainProblem, RecipeError};
pub use final_stage::keys;
pub use options::{GoBuildOptions, RecipeInput, ResolvedImage, PROXY_ENV_NAMES};
pub use ssh::select_known_hosts;

use crate::version::GoVersion;
use ssh::SshHost;
use validate::MainPackage;

/// Where the source is mounted in the builder.
pub const SRC_DIR: &str = "/src";
/// The scratch mount the binaries are built into.
pub const OUT_DIR: &str = "/out";
/// Where the binaries land in the image.
pub const APP_DIR: &str = "/app";
/// `GOMODCACHE` (a cache mount with id [`GOMOD_CACHE_ID`]).
pub const GOMODCACHE_DIR: &str = "/go/pkg/mod";
/// `GOCACHE` (a cache mount with id [`GOBUILD_CACHE_ID`]).
pub const GOCACHE_DIR: &str = "/root/.cache/go-build";
/// The cache mount id of the module cache.
pub const GOMOD_CACHE_ID: &str = "kiln-gomod";
/// The cache mount id of the build cache.
pub const GOBUILD_CACHE_ID: &str = "kiln-gobuild";
/// Where the `goenv-secret` is mounted (and `GOENV` points).
pub const GOENV_PATH: &str = "/root/.config/go/env";
/// Where the `netrc-secret` is mounted.
pub const NETRC_PATH: &str = "/root/.netrc";
/// Where the `ca-bundle-secret` is mounted (and `SSL_CERT_FILE` points).
pub const CA_BUNDLE_PATH: &str = "/etc/ssl/certs/kiln-ca-bundle.crt";
/// The `known_hosts` file written for `git-ssh-hosts`.
pub const KNOWN_HOSTS_PATH: &str = "/root/.ssh/known_hosts";
/// What `go mod download` sees of the context: the module's `go.mod` and
/// `go.sum`, the `go.mod` of nested modules a `replace` may point at, and
/// `vendor/modules.txt` (a vendored module needs no download).
pub const GO_MOD_PATTERNS: [&str; 4] = ["go.mod", "go.sum", "**/go.mod", "vendor/modules.txt"];

/// What [`plan`] returns: the states to solve and the image config to
/// export them with.
#[derive(Clone, Debug)]
pub struct Recipe {
    /// The image's root filesystem: the base plus `/app/bin` (one main) or
    /// `/app/<name>` (several).
    pub final_state: State,
    /// The builder's output alone: `/out` holding every binary at
    /// `/<name>` (for `--print-llb` of the builder, and tests).
    pub builder_state: State,
    /// The final image config as canonical JSON (the exporter's
    /// `containerimage.config`).
    pub image_config: Vec<u8>,
    /// Manifest annotations: the `org.opencontainers.image.*` values of the
    /// labels, then the user's `annotations`.
    pub annotations: BTreeMap<String, String>,
    /// Every secret id the graph mounts, sorted: the session must provide them.
    pub secret_ids: Vec<String>,
    /// Every SSH agent id the graph mounts, sorted.
    pub ssh_ids: Vec<String>,
    /// With [`RecipeInput::go_cache_out`]: the Go build cache after
    /// `go build` (`gocache/` and a `kiln-go-cache` stamp), to solve and
    /// export apart from the image.
    pub go_cache: Option<State>,
}

/// The options after validation, in the shapes the stages use.
pub(crate) struct Checked {
    pub mains: Vec<MainPackage>,
    pub ssh_hosts: Vec<SshHost>,
    /// The `known_hosts` file, when there are SSH hosts.
    pub known_hosts: Option<String>,
    pub base_digest: Digest,
    /// `SOURCE_DATE_EPOCH` in nanoseconds, for file timestamps.
    pub epoch_nanos: Option<i64>,
}

fn non_empty(field: &'static str, value: &str) -> Result<(), RecipeError> {
    if value.is_empty() {
        Err(RecipeError::Empty { field })
    } else {
        Ok(())
    }
}

impl Checked {
    fn new(input: &RecipeInput) -> Result<Checked, RecipeError> {
        let o = &input.options;
        non_empty("context-name", &input.context_name)?;
        input
            .go_version
            .parse::<GoVersion>()
            .map_err(RecipeError::GoVersion)?;
        validate::check_platform("build-platform", &input.build_platform)?;
        validate::check_platform("target", &input.target)?;
        if o.cgo && input.target.architecture != input.build_platform.architecture {
            return Err(RecipeError::CgoCrossCompile {
                target: input.target.to_string(),
                build: input.build_platform.to_string(),
            });
        }

        let mains = validate::main_packages(&o.mains, &o.module_name)?;
        for tag in &o.tags {
            validate::check_tag(tag)?;
        }
        if let Some(ldflags) = &o.ldflags {
            non_empty("ldflags", ldflags)?;
        }
        for pkg in &o.apt_packages {
            validate::check_apt_package(pkg)?;
        }

        for id in &o.ssh {
            validate::check_id("ssh", id)?;
        }
        validate::check_unique("ssh", &o.ssh)?;
        let ssh_hosts = o
            .git_ssh_hosts
            .iter()
            .map(|h| SshHost::parse(h))
            .collect::<Result<Vec<_>, _>>()?;
        let lookups: Vec<String> = ssh_hosts.iter().map(SshHost::known_hosts_name).collect();
        validate::check_unique("git-ssh-hosts", &lookups)?;
        if !ssh_hosts.is_empty() && o.ssh.is_empty() {
            return Err(RecipeError::SshHostsWithoutAgent {
                hosts: o.git_ssh_hosts.join(", "),
            });
        }
        let file = ssh::known_hosts_file(&ssh_hosts, &o.known_hosts)?;
        let known_hosts = (!ssh_hosts.is_empty()).then_some(file);

        let single = [
            ("goenv-secret", &o.goenv_secret),
            ("netrc-secret", &o.netrc_secret),
            ("ca-bundle-secret", &o.ca_bundle_secret),
        ];
        for (field, id) in single {
            if let Some(id) = id {
                validate::check_id(field, id)?;
            }
        }
        for name in &o.proxy_env_secrets {
            validate::check_env_name("proxy-env-secrets", name)?;
        }
        validate::check_unique("proxy-env-secrets", &o.proxy_env_secrets)?;

        if let Some(user) = &o.user {
            non_empty("user", user)?;
        }
        for (field, map) in [("labels", &o.labels), ("annotations", &o.annotations)] {
            if let Some(key) = map
                .keys()
                .find(|k| k.is_empty() || k.contains(char::is_whitespace))
            {
                return Err(RecipeError::Invalid {
                    field,
                    value: key.clone(),
                    expected: "a key without white space, e.g. org.example.team",
                });
            }
        }

        let base_digest =
            input
                .base
                .reference
                .digest()
                .cloned()
                .ok_or_else(|| RecipeError::BaseNotPinned {
                    reference: input.base.reference.to_string(),
                })?;
        let epoch_nanos = match o.source_date_epoch {
            None => None,
            Some(secs) => Some(
                i64::try_from(secs)
                    .ok()
                    .and_then(|s| s.checked_mul(1_000_000_000))
                    .ok_or_else(|| RecipeError::Invalid {
                        field: "source-date-epoch",
                        value: secs.to_string(),
                        expected: "seconds since 1970 before the year 2262",
                    })?,
            ),
        };
        Ok(Checked {
            mains,
            ssh_hosts,
            known_hosts,
            base_digest,
            epoch_nanos,
        })
    }
}

/// Plans the build of one image for [`RecipeInput::target`]: the LLB
/// states (see the [module docs](self) for the graph), the image config and
/// the ids of the secrets and SSH agents the session must provide.
///
/// Pure and deterministic: the same input gives states that marshal to the
/// same bytes and the same config bytes, on every run and every host.
///
/// # Errors
/// A [`RecipeError`] naming the option at fault: no or bad main packages
/// (absolute, escaping the module, patterns, bad or duplicate binary
/// names), a non-Linux or unknown platform, cgo while cross-compiling, a
/// bad Go version, malformed ids, package names, tags or SSH hosts,
/// `known_hosts` lines that match no SSH host (or an SSH host without one),
/// SSH hosts without an agent, an unpinned base, or an unreadable image
/// config.
pub fn plan(input: &RecipeInput) -> Result<Recipe, RecipeError> {
    let checked = Checked::new(input)?;
    let base_config =
        parse_config(&input.base.config_json).map_err(|source| RecipeError::ImageConfig {
            role: ImageRole::Base,
            reference: input.base.reference.to_string(),
            source,
        })?;
    parse_config(&input.builder.config_json).map_err(|source| RecipeError::ImageConfig {
        role: ImageRole::Builder,
        reference: input.builder.reference.to_string(),
        source,
    })?;

    let builder = builder::builder(input, &checked)?;
    let final_state = final_stage::final_state(input, &checked, &builder.binaries);
    let image_config = final_stage::image_config(input, &checked, &base_config)?;

    let o = &input.options;
    let mut secret_ids: Vec<String> = [&o.goenv_secret, &o.netrc_secret, &o.ca_bundle_secret]
        .into_iter()
        .flatten()
        .chain(&o.proxy_env_secrets)
        .cloned()
        .collect();
    secret_ids.sort();
    secret_ids.dedup();
    let mut ssh_ids = o.ssh.clone();
    ssh_ids.sort();

    Ok(Recipe {
        final_state,
        builder_state: builder.binaries,
        image_config,
        annotations: final_stage::annotations(input, &checked),
        secret_ids,
        ssh_ids,
        go_cache: builder.go_cache,
    })
}
