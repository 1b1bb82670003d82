//! What [`plan`](super::plan) takes: the resolved images and platforms the
//! caller found out, and the user's [`GoBuildOptions`].

use std::collections::BTreeMap;

use kiln_image::{ImageRef, Platform};
use kiln_llb::State;
use serde::{Deserialize, Serialize};

/// An image the caller resolved through the daemon: the reference to put
/// into the graph (pinned to a digest when known) and its image config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedImage {
    /// The reference, e.g. `docker.io/library/golang:1.24.7-bookworm@sha256:…`.
    /// For the final-stage base this must carry the **index** digest, so that
    /// every platform of a multi-platform build starts from the same base.
    pub reference: ImageRef,
    /// The image config JSON (as BuildKit's `ResolveImageConfig` returns it)
    /// for the platform the image is used on: the build platform for the
    /// builder, the target platform for the base.
    pub config_json: Vec<u8>,
}

/// Everything [`plan`](super::plan) needs for one target platform. Building
/// several platforms means calling `plan` once per target with the same
/// builder (resolved for the build platform) and the base config resolved
/// for each target.
#[derive(Clone, Debug)]
pub struct RecipeInput {
    /// The name the session serves the module directory under (the `--local`
    /// name), e.g. `context`.
    pub context_name: String,
    /// The Go release the builder image ships, already resolved (`1.24.7`).
    pub go_version: String,
    /// The builder image (`golang:<go>-<distro>`), resolved for `build_platform`.
    pub builder: ResolvedImage,
    /// The final-stage base (e.g. `gcr.io/distroless/static-debian12`),
    /// pinned to its index digest, with its config for `target`.
    pub base: ResolvedImage,
    /// Where the builder runs: the daemon's own platform. Every builder exec
    /// runs on it, so no build step ever needs emulation.
    pub build_platform: Platform,
    /// The platform of the image; Go cross-compiles for it (`GOOS`,
    /// `GOARCH`, `GOARM`, …).
    pub target: Platform,
    /// The user's build options.
    pub options: GoBuildOptions,
    /// An imported Go build cache (`gocache/` and its `kiln-go-cache`
    /// stamp at the state's root), filled into the build cache mount before
    /// `go build` where that is empty or older.
    pub go_cache_in: Option<State>,
    /// Also plan the Go build cache's export ([`Recipe::go_cache`]).
    pub go_cache_out: bool,
    /// The export also holds the module cache's downloads (`modules=true`).
    pub go_cache_modules: bool,
}

/// Every option of `kiln build`, as read from `kiln.toml` (kebab-case keys,
/// unknown keys refused) or the command line.
///
/// ```
/// use kiln_go::recipe::GoBuildOptions;
/// let o = GoBuildOptions::default();
/// assert_eq!(o.mains, ["."]);
/// assert!(o.trimpath && !o.cgo);
///
/// let o: GoBuildOptions = serde_json::from_str(r#"{"mains": ["./cmd/api"], "ssh": ["default"]}"#)?;
/// assert_eq!(o.mains, ["./cmd/api"]);
/// assert!(o.trimpath); // defaults fill the rest
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct GoBuildOptions {
    /// Main packages, as paths relative to the module directory (`.`,
    /// `./cmd/api`, `cmd/worker`). Each becomes one binary named after the
    /// last path element, like `go build` names it (a trailing major-version
    /// element such as `v2` is skipped). Default `["."]`.
    pub mains: Vec<String>,
    /// The binary name for the main package `.`: the module path from
    /// `go.mod` or its last element (`example.com/app/v2` → `app`).
    pub module_name: String,
    /// Builds with cgo (`CGO_ENABLED=1`); default `false` (static binaries).
    /// Needs the target's architecture to equal the build platform's: kiln
    /// sets up no C cross compiler.
    pub cgo: bool,
    /// `-ldflags`, passed as one argument (e.g. `-s -w -X main.version=1.2.3`).
    pub ldflags: Option<String>,
    /// Build tags (`-tags a,b`).
    pub tags: Vec<String>,
    /// `-trimpath` (default `true`): no builder paths in the binary.
    pub trimpath: bool,
    /// Go's VCS stamping (`-buildvcs`). Default `false`: the revision goes
    /// into a label instead, and the build does not depend on a `.git`
    /// directory (whose files a root builder would find "dubious").
    pub buildvcs: bool,
    /// Debian packages to install into the builder (e.g. `git-lfs`).
    pub apt_packages: Vec<String>,
    /// `GOPRIVATE` (and `GONOSUMDB`) for the Go steps.
    pub goprivate: Option<String>,
    /// SSH agent ids (`default`, …) forwarded into the steps that fetch
    /// modules (`go mod download`, `go build`), and only those.
    pub ssh: Vec<String>,
    /// Git hosts reached over SSH: `HOST` or `HOST:PORT`. Each gets
    /// `url."ssh://git@HOST[:PORT]/".insteadOf "https://HOST/"`.
    pub git_ssh_hosts: Vec<String>,
    /// `known_hosts` lines for `git_ssh_hosts`, taken by the caller from
    /// `~/.ssh/known_hosts` or `--known-hosts` (kiln never runs
    /// `ssh-keyscan`). Written to `/root/.ssh/known_hosts` in the builder.
    /// Hashed entries (`|1|salt|hash`) are fine.
    pub known_hosts: Vec<String>,
    /// Secret id of a `go env` file, mounted at `GOENV` (`/root/.config/go/env`).
    pub goenv_secret: Option<String>,
    /// Secret id of a `.netrc`, mounted at `/root/.netrc`.
    pub netrc_secret: Option<String>,
    /// Secret ids that become environment variables of the same name
    /// (`HTTP_PROXY`, `https_proxy`, …) in the steps that reach the network.
    /// They never appear in the LLB env or cache keys.
    pub proxy_env_secrets: Vec<String>,
    /// Secret id of a CA bundle, mounted at
    /// `/etc/ssl/certs/kiln-ca-bundle.crt`; `SSL_CERT_FILE`, `GIT_SSL_CAINFO`
    /// and apt's `Acquire::https::CaInfo` point at it. It replaces the
    /// system roots for those tools, so it must hold every root needed.
    pub ca_bundle_secret: Option<String>,
    /// Default arguments (`Cmd`) of the image.
    pub cmd: Vec<String>,
    /// The user the image runs as; unset keeps the base image's user.
    pub user: Option<String>,
    /// Extra image labels (they override kiln's `org.opencontainers.*` ones).
    pub labels: BTreeMap<String, String>,
    /// Extra manifest annotations (returned in [`Recipe::annotations`](super::Recipe::annotations)).
    pub annotations: BTreeMap<String, String>,
    /// `SOURCE_DATE_EPOCH`: the image's `created` time and the timestamp of
    /// the files kiln adds. Without it the binaries keep the time they were
    /// built at and `created` is [`GoBuildOptions::created`].
    pub source_date_epoch: Option<u64>,
    /// The image's `created` time (seconds) when there is no
    /// `source_date_epoch` (kiln build: the time of the build). Not
    /// reproducible by design; without either, `created` is left out.
    #[serde(skip)]
    pub created: Option<u64>,
    /// The VCS revision (`org.opencontainers.image.revision`).
    pub revision: Option<String>,
    /// Where the source lives (`org.opencontainers.image.source`).
    pub source_url: Option<String>,
    /// Runs every builder step again instead of using the cache.
    pub no_cache: bool,
    /// Runs the steps that reach the network (`apt-get`, `go mod download`,
    /// `go build`) on the host's network instead of BuildKit's sandbox, for
    /// git servers or proxies only the build host can reach. Needs the
    /// daemon to grant `network.host`.
    pub host_network: bool,
    /// A label prefixed to every step name (`[linux/arm64 builder 3/3] …`),
    /// so the steps of parallel per-platform builds can be told apart. Set
    /// by the caller, not read from kiln.toml.
    #[serde(skip)]
    pub step_label: Option<String>,
}

impl Default for GoBuildOptions {
    fn default() -> Self {
        GoBuildOptions {
            mains: vec![".".to_string()],
            module_name: String::new(),
            cgo: false,
            ldflags: None,
            tags: Vec::new(),
            trimpath: true,
            buildvcs: false,
            apt_packages: Vec::new(),
            goprivate: None,
            ssh: Vec::new(),
            git_ssh_hosts: Vec::new(),
            known_hosts: Vec::new(),
            goenv_secret: None,
            netrc_secret: None,
            proxy_env_secrets: Vec::new(),
            ca_bundle_secret: None,
            cmd: Vec::new(),
            user: None,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            source_date_epoch: None,
            created: None,
            revision: None,
            source_url: None,
            no_cache: false,
            host_network: false,
            step_label: None,
        }
    }
}

/// The names of the proxy variables a corporate proxy setup usually needs,
/// in both spellings (pairs: upper-case, then lower-case), for
/// [`GoBuildOptions::proxy_env_secrets`].
pub const PROXY_ENV_NAMES: [&str; 8] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];
