//! Everything a build decides before it talks to a daemon: the flags
//! merged over kiln.toml, go.mod, git facts, the lock, secrets, ssh, known
//! hosts and outputs, parsed once into typed values.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::go_release::SourceKind;
use kiln_client::kiln_proto::attrs::exporter as ex;
use kiln_client::kiln_session::{SecretId, SecretSpec};
use kiln_client::ExporterSpec;
use kiln_go::recipe::{select_known_hosts, GoBuildOptions, PROXY_ENV_NAMES};
use kiln_go::{GoMod, GoSpec};
use kiln_image::{ImageRef, Platform};

use crate::config::{KilnToml, DEFAULT_BASE_IMAGE, DEFAULT_BUILDER_IMAGE, DEFAULT_DISTRO};
use crate::error::BuildError;
use crate::go_cache::GoCacheSpec;
use crate::lock::{self, Lock};
use crate::session::SessionSpec;
use crate::spec::{parse_ssh, AttestFlags, Attestations, CacheKind, CacheSpec, OutputSpec};

/// The options of a build as a user gives them (flags; kiln.toml fills in
/// what is not given). The `kiln build` flags map onto these one to one.
#[derive(Clone, Debug, Default)]
pub struct BuildFlags {
    /// The Go module root.
    pub dir: PathBuf,
    /// Target platforms (`linux/amd64`, …); default the daemon's.
    pub platforms: Vec<String>,
    /// `auto` or a Go version.
    pub go: Option<String>,
    /// Where `auto` looks up Go releases.
    pub go_source: Option<SourceKind>,
    pub builder_image: Option<String>,
    pub distro: Option<String>,
    pub base_image: Option<String>,
    pub mains: Vec<String>,
    pub cgo: bool,
    pub ldflags: Option<String>,
    pub go_tags: Vec<String>,
    pub apt: Vec<String>,
    pub goprivate: Option<String>,
    /// `--ssh` values.
    pub ssh: Vec<String>,
    pub git_ssh_hosts: Vec<String>,
    pub known_hosts: Option<PathBuf>,
    /// Module fetches on the host network.
    pub host_network: Option<bool>,
    pub goenv: bool,
    /// `--netrc` (`Some(None)`: `~/.netrc`).
    pub netrc: Option<Option<PathBuf>>,
    pub proxy_from_env: bool,
    pub ca_bundle: Option<PathBuf>,
    pub cmd: Vec<String>,
    pub user: Option<String>,
    /// `KEY=VALUE` labels.
    pub labels: Vec<String>,
    pub source_date_epoch: Option<u64>,
    pub no_cache: bool,
    /// `-t` names.
    pub tags: Vec<String>,
    pub push: bool,
    /// `--builder PLATFORM=ADDR` values.
    pub builders: Vec<String>,
    pub outputs: Vec<OutputSpec>,
    /// `--cache-from` / `--cache-to` values (over kiln.toml's `[cache]`).
    pub cache_from: Vec<String>,
    pub cache_to: Vec<String>,
    /// Fail unless kiln.lock matches.
    pub locked: bool,
    /// `--provenance`, `--sbom`, `--attest` (over kiln.toml's keys).
    pub attest: AttestFlags,
    /// `--go-cache-from` / `--go-cache-to` values (over kiln.toml's `[go-cache]`).
    pub go_cache_from: Vec<String>,
    pub go_cache_to: Vec<String>,
    /// How long the daemon may stay silent before the build is cancelled
    /// (`None`: [`crate::stall::DEFAULT_STALL_TIMEOUT`]; zero: forever).
    pub stall_timeout: Option<std::time::Duration>,
}

/// A build's inputs, gathered and checked.
#[derive(Clone, Debug)]
pub struct Request {
    pub dir: PathBuf,
    pub go_mod: GoMod,
    pub options: GoBuildOptions,
    pub go: GoSpec,
    pub go_source: SourceKind,
    pub builder_template: String,
    pub distro: String,
    pub base: String,
    pub platforms: Vec<String>,
    /// `--builder` values.
    pub builders: Vec<String>,
    /// Whether images are pushed (`--push`).
    pub push: bool,
    pub outputs: Vec<OutputSpec>,
    /// Layer cache sources and destinations.
    pub cache_from: Vec<CacheSpec>,
    pub cache_to: Vec<CacheSpec>,
    /// Provenance and SBOM attached to each platform's image.
    pub attestations: Attestations,
    /// Go build cache sources and destinations.
    pub go_cache_from: Vec<GoCacheSpec>,
    pub go_cache_to: Vec<GoCacheSpec>,
    /// The Go cache each platform imports (by platform), found before
    /// planning ([`crate::build::Build::prepare`]).
    pub go_cache_in: BTreeMap<String, crate::go_cache::PlatformCache>,
    /// What the Go cache lookup found missing (said after the build).
    pub go_cache_notes: Vec<String>,
    pub session: SessionSpec,
    /// The lock, when the build must use it.
    pub locked: Option<Lock>,
    /// Warnings for the user (a stale lock ignored, …).
    pub warnings: Vec<String>,
    /// How an existing kiln.lock disagrees with the settings (empty: it
    /// does not, or there is none): the build runs without it and rewrites
    /// it when it succeeds.
    pub stale_lock: Vec<String>,
    /// How long the daemon may stay silent mid-build (zero: forever).
    pub stall_timeout: std::time::Duration,
}

impl Request {
    /// Reads go.mod and kiln.toml in `flags.dir`, merges the flags over
    /// them, checks the main packages, reads git facts, the secrets' and
    /// known_hosts' sources, and (with `use_lock`) kiln.lock.
    ///
    /// # Errors
    /// [`BuildError`] naming the flag, file or setting that is wrong.
    pub fn gather(flags: &BuildFlags, use_lock: bool) -> Result<Request, BuildError> {
        let dir = flags
            .dir
            .canonicalize()
            .map_err(|e| BuildError::file("read the module directory", &flags.dir, e))?;
        let go_mod = read_go_mod(&dir)?;
        let toml = KilnToml::load(&dir)?;
        let mut o = toml.build.clone().unwrap_or_default();
        o.module_name = go_mod
            .module
            .as_deref()
            .map(module_binary_name)
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| {
                dir.file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_else(|| "app".into())
            });
        if !flags.mains.is_empty() {
            o.mains = flags.mains.clone();
        }
        o.cgo |= flags.cgo;
        if flags.ldflags.is_some() {
            o.ldflags = flags.ldflags.clone();
        }
        if !flags.go_tags.is_empty() {
            o.tags = flags.go_tags.clone();
        }
        o.apt_packages
            .extend(flags.apt.iter().filter(|p| !p.is_empty()).cloned());
        if flags.goprivate.is_some() {
            o.goprivate = flags.goprivate.clone();
        }
        o.git_ssh_hosts.extend(flags.git_ssh_hosts.iter().cloned());
        if !flags.cmd.is_empty() {
            o.cmd = flags.cmd.clone();
        }
        if flags.user.is_some() {
            o.user = flags.user.clone();
        }
        for l in &flags.labels {
            let (k, v) = l
                .split_once('=')
                .ok_or_else(|| BuildError::invalid(format!("--label {l:?}"), "not KEY=VALUE"))?;
            o.labels.insert(k.to_string(), v.to_string());
        }
        o.no_cache |= flags.no_cache;
        if let Some(h) = flags.host_network {
            o.host_network = h;
        }
        check_mains(&dir, &o.mains)?;
        let need_commit = flags.source_date_epoch.is_none()
            && o.source_date_epoch.is_none()
            && std::env::var_os("SOURCE_DATE_EPOCH").is_none()
            || o.revision.is_none();
        let git = GitFacts::read(&dir, need_commit, o.source_url.is_none());
        o.source_date_epoch = flags
            .source_date_epoch
            .or(o.source_date_epoch)
            .or_else(|| {
                std::env::var("SOURCE_DATE_EPOCH")
                    .ok()
                    .and_then(|v| v.trim().parse().ok())
            })
            .or(git.commit_time);
        if o.source_date_epoch.is_none() {
            // Not a git checkout and no SOURCE_DATE_EPOCH: the image is
            // created now (its digest then changes with every build).
            o.created = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .ok()
                .map(|d| d.as_secs());
        }
        if o.revision.is_none() {
            o.revision = git.revision;
        }
        if o.source_url.is_none() {
            // Credentials in a remote URL never reach a label.
            o.source_url = git
                .remote_url
                .filter(|u| !u.contains('@') || u.starts_with("git@"));
        }

        // Session: secrets and ssh for the recipe's mounts.
        let mut session = SessionSpec::default();
        for s in &flags.ssh {
            let spec = parse_ssh(s)?;
            if !o.ssh.contains(&spec.id) {
                o.ssh.push(spec.id.clone());
            }
            session.ssh.push(spec);
        }
        let secret = |id: &str,
                      file: Option<PathBuf>,
                      env: Option<String>|
         -> Result<SecretSpec, BuildError> {
            Ok(SecretSpec {
                id: SecretId::new(id)
                    .map_err(|e| BuildError::invalid("a secret id", e.to_string()))?,
                file,
                env,
            })
        };
        if flags.goenv {
            let path = goenv_path();
            if !path.is_file() {
                return Err(BuildError::invalid(
                    "--goenv",
                    format!(
                        "{} does not exist (`go env -w KEY=VALUE` creates it)",
                        path.display()
                    ),
                ));
            }
            session.secrets.push(secret("goenv", Some(path), None)?);
            o.goenv_secret = Some("goenv".into());
        }
        if let Some(n) = &flags.netrc {
            let path = n.clone().unwrap_or_else(|| home().join(".netrc"));
            if !path.is_file() {
                return Err(BuildError::invalid(
                    "--netrc",
                    format!("{} does not exist", path.display()),
                ));
            }
            session.secrets.push(secret("netrc", Some(path), None)?);
            o.netrc_secret = Some("netrc".into());
        }
        if flags.proxy_from_env {
            let pairs = proxy_secrets(|v| std::env::var(v).ok().filter(|x| !x.is_empty()));
            if pairs.is_empty() {
                return Err(BuildError::invalid(
                    "--proxy-from-env",
                    format!("none of {} is set", PROXY_ENV_NAMES.join(", ")),
                ));
            }
            for (id, from) in pairs {
                session
                    .secrets
                    .push(secret(id, None, Some(from.to_string()))?);
                o.proxy_env_secrets.push(id.to_string());
            }
        }
        if let Some(ca) = &flags.ca_bundle {
            if !ca.is_file() {
                return Err(BuildError::invalid(
                    "--ca-bundle",
                    format!("{} does not exist", ca.display()),
                ));
            }
            session
                .secrets
                .push(secret("ca-bundle", Some(ca.clone()), None)?);
            o.ca_bundle_secret = Some("ca-bundle".into());
        }
        if !o.git_ssh_hosts.is_empty() && o.known_hosts.is_empty() {
            let file = flags
                .known_hosts
                .clone()
                .unwrap_or_else(|| home().join(".ssh/known_hosts"));
            let text = std::fs::read_to_string(&file).map_err(|e| {
                BuildError::invalid(
                    "--git-ssh-host",
                    format!(
                        "it needs known_hosts entries, but {} cannot be read ({e}); pass --known-hosts FILE",
                        file.display()
                    ),
                )
            })?;
            o.known_hosts = select_known_hosts(&text, &o.git_ssh_hosts).map_err(|e| {
                BuildError::invalid("--git-ssh-host", format!("{e} (in {})", file.display()))
            })?;
        }

        // Layer cache: flags, else kiln.toml's [cache].
        let cache = toml.cache.clone().unwrap_or_default();
        let pick = |flag: &Vec<String>, file: &Vec<String>| {
            if flag.is_empty() {
                file.clone()
            } else {
                flag.clone()
            }
        };
        let mut cache_from = pick(&flags.cache_from, &cache.from)
            .iter()
            .map(|s| CacheSpec::import(s))
            .collect::<Result<Vec<_>, _>>()?;
        let cache_to = pick(&flags.cache_to, &cache.to)
            .iter()
            .map(|s| CacheSpec::export(s))
            .collect::<Result<Vec<_>, _>>()?;

        // Local cache directories travel through the session's content
        // store; an import names the cache manifest by digest, from the
        // directory's index.json (as BuildKit's Go client does).
        for c in cache_from.iter_mut().filter(|c| c.kind == CacheKind::Local) {
            let src = c.attrs.get("src").cloned().unwrap_or_default();
            if !c.attrs.contains_key("digest") {
                let tag = c
                    .attrs
                    .get("tag")
                    .cloned()
                    .unwrap_or_else(|| "latest".into());
                let digest = crate::cache_dir::tagged(Path::new(&src), &tag)?;
                c.attrs.insert("digest".into(), digest.to_string());
            }
            session
                .local_caches
                .push((src.clone(), PathBuf::from(&src), false));
        }
        for c in cache_to.iter().filter(|c| c.kind == CacheKind::Local) {
            let dest = c.attrs.get("dest").cloned().unwrap_or_default();
            if !flags.builders.is_empty() {
                return Err(BuildError::invalid(
                    format!("--cache-to type=local,dest={dest}"),
                    "a fanned-out build (--builder) exports one cache per endpoint; use type=registry,ref=IMAGE (each endpoint gets its own tag)",
                ));
            }
            session
                .local_caches
                .push((dest.clone(), PathBuf::from(&dest), true));
        }

        // Outputs: -o specs plus -t names.
        let mut outputs = flags.outputs.clone();
        let mut names = flags.tags.clone();
        if names.is_empty() && flags.push {
            names = toml.images.clone();
        }
        if flags.push && names.is_empty() {
            return Err(BuildError::invalid(
                "--push",
                "it needs an image name: -t REGISTRY/REPO:TAG (or images = [...] in kiln.toml)",
            ));
        }
        let mut refs = Vec::new();
        for n in &names {
            refs.push(
                ImageRef::parse(n)
                    .map_err(|e| BuildError::invalid(format!("-t {n:?}"), e.to_string()))?,
            );
        }
        // Tarballs and loads without a name= take the first -t name, as
        // buildx does.
        if let Some(first) = refs.first() {
            for o in &mut outputs {
                if let OutputSpec::Oci { name, .. }
                | OutputSpec::Docker { name, .. }
                | OutputSpec::Podman { name, .. }
                | OutputSpec::Containerd { name, .. } = o
                {
                    if name.is_none() {
                        *name = Some(first.clone());
                    }
                }
            }
        }
        crate::outputs::check_destinations(&outputs)?;
        let loads = outputs
            .iter()
            .any(|o| matches!(o, OutputSpec::Podman { .. } | OutputSpec::Containerd { .. }));
        for o in &outputs {
            if let OutputSpec::Podman { name: None, .. }
            | OutputSpec::Containerd { name: None, .. } = o
            {
                let kind = o.load_kind().unwrap_or("podman");
                return Err(BuildError::invalid(
                    format!("-o type={kind}"),
                    format!("it needs the image's name: -t NAME (or -o type={kind},name=NAME)"),
                ));
            }
        }
        // -t with a load into podman or containerd names that image; the
        // daemon's own store gets it only when asked (-o type=image).
        if !refs.is_empty() && (!loads || flags.push) {
            outputs.push(OutputSpec::Image {
                names: refs,
                push: flags.push,
                attrs: BTreeMap::new(),
            });
        }

        // Go build cache: flags, else kiln.toml's [go-cache].
        let go_cache = toml.go_cache.clone().unwrap_or_default();
        let go_cache_from = pick(&flags.go_cache_from, &go_cache.from)
            .iter()
            .map(|s| GoCacheSpec::import(s))
            .collect::<Result<Vec<_>, _>>()?;
        let go_cache_to = pick(&flags.go_cache_to, &go_cache.to)
            .iter()
            .map(|s| GoCacheSpec::export(s))
            .collect::<Result<Vec<_>, _>>()?;

        let pushing = outputs.iter().any(|o| match o {
            OutputSpec::Image { push, attrs, .. } => {
                *push || attrs.get("push").is_some_and(|v| v == "true")
            }
            _ => false,
        });
        let attestations = flags
            .attest
            .resolve(toml.provenance.as_deref(), toml.sbom, pushing)?;

        let warnings = Vec::new();
        let locked = match if use_lock { Lock::load(&dir)? } else { None } {
            Some(l) => Some(l),
            None if flags.locked && use_lock => {
                return Err(BuildError::Lock {
                    path: dir.join(lock::FILE),
                    reason: "--locked, but there is none; create it with `kiln lock`".into(),
                })
            }
            None => None,
        };
        let go: GoSpec = flags
            .go
            .clone()
            .or_else(|| toml.go.clone())
            .unwrap_or_else(|| "auto".into())
            .parse()
            .map_err(|e| BuildError::invalid("--go", format!("{e} (or auto)")))?;
        let go_source = match (flags.go_source, toml.go_source.as_deref()) {
            (Some(s), _) => s,
            (None, None | Some("proxy")) => SourceKind::Proxy,
            (None, Some("godev")) => SourceKind::Godev,
            (None, Some("git")) => SourceKind::Git,
            (None, Some(other)) => {
                return Err(BuildError::invalid(
                    "kiln.toml: go-source",
                    format!("{other:?} is not proxy, godev or git"),
                ))
            }
        };
        let mut request = Request {
            builder_template: flags
                .builder_image
                .clone()
                .or_else(|| toml.builder_image.clone())
                .unwrap_or_else(|| DEFAULT_BUILDER_IMAGE.into()),
            distro: flags
                .distro
                .clone()
                .or_else(|| toml.distro.clone())
                .unwrap_or_else(|| DEFAULT_DISTRO.into()),
            base: flags
                .base_image
                .clone()
                .or_else(|| toml.base_image.clone())
                .unwrap_or_else(|| DEFAULT_BASE_IMAGE.into()),
            platforms: if flags.platforms.is_empty() {
                toml.platforms.clone()
            } else {
                flags.platforms.clone()
            },
            builders: flags.builders.clone(),
            push: flags.push,
            dir,
            go_mod,
            options: o,
            go,
            go_source,
            outputs,
            cache_from,
            cache_to,
            attestations,
            go_cache_from,
            go_cache_to,
            go_cache_in: BTreeMap::new(),
            go_cache_notes: Vec::new(),
            session,
            locked,
            warnings,
            stale_lock: Vec::new(),
            stall_timeout: flags
                .stall_timeout
                .unwrap_or(crate::stall::DEFAULT_STALL_TIMEOUT),
        };
        request.check_lock(flags.locked)?;
        Ok(request)
    }

    /// The settings a lock records, as this request has them.
    #[must_use]
    pub fn lock_inputs(&self) -> crate::lock::Inputs {
        crate::lock::Inputs {
            builder_image: self.builder_template.clone(),
            distro: self.distro.clone(),
            base_image: self.base.clone(),
            platforms: self.platforms.clone(),
        }
    }

    /// How `lock` disagrees with this request: one line per field, naming
    /// both values.
    fn lock_disagreements(&self, lock: &Lock) -> Vec<String> {
        let mut out = Vec::new();
        if let Ok(v) = lock.go.parse::<kiln_go::GoVersion>() {
            if v.minor_line() != self.go_mod.go.minor_line() {
                out.push(format!(
                    "Go: go.mod asks for {}, kiln.lock has {}",
                    self.go_mod.go, lock.go
                ));
            }
        }
        if let GoSpec::Pinned(p) = &self.go {
            if p.to_string() != lock.go {
                out.push(format!("Go: --go {p}, kiln.lock has {}", lock.go));
            }
        }
        let have = self.lock_inputs();
        let locked = &lock.inputs;
        if !locked.is_empty() {
            let mut field = |name: &str, now: String, then: String| {
                if now != then {
                    out.push(format!("{name}: now {now:?}, kiln.lock has {then:?}"));
                }
            };
            field(
                "builder-image",
                have.builder_image,
                locked.builder_image.clone(),
            );
            field("distro", have.distro, locked.distro.clone());
            field("base-image", have.base_image, locked.base_image.clone());
            field(
                "platforms",
                have.platforms.join(","),
                locked.platforms.join(","),
            );
        } else if let Ok(base) = self.base_image() {
            // A lock from before kiln recorded its inputs: its base name.
            if lock.base.name != base.to_string() {
                out.push(format!(
                    "base-image: now {base}, kiln.lock has {}",
                    lock.base.name
                ));
            }
        }
        out
    }

    /// A lock that no longer matches the inputs is stale: `--locked` fails
    /// naming every field and both values; a plain build does not use it
    /// (and rewrites it once it built), and says so.
    fn check_lock(&mut self, strict: bool) -> Result<(), BuildError> {
        let Some(lock) = &self.locked else {
            return Ok(());
        };
        let stale = self.lock_disagreements(lock);
        if stale.is_empty() {
            return Ok(());
        }
        if strict {
            return Err(BuildError::Lock {
                path: self.dir.join(lock::FILE),
                reason: format!(
                    "--locked, but it is stale: {}; drop --locked to build from the current settings (kiln.lock is then updated), or run `kiln lock --update`",
                    stale.join("; ")
                ),
            });
        }
        self.warnings.push(format!(
            "kiln.lock is stale ({}): building from the current settings; kiln.lock is updated when the build succeeds",
            stale.join("; ")
        ));
        self.locked = None;
        self.stale_lock = stale;
        Ok(())
    }

    /// The base image reference.
    ///
    /// # Errors
    /// [`BuildError::Invalid`] when it is not a reference.
    pub fn base_image(&self) -> Result<ImageRef, BuildError> {
        ImageRef::parse(&self.base)
            .map_err(|e| BuildError::invalid(format!("base image {:?}", self.base), e.to_string()))
    }

    /// The target platforms, default the daemon's.
    ///
    /// # Errors
    /// [`BuildError::Invalid`] for a platform that does not parse or is not Linux.
    pub fn targets(&self, build: &Platform) -> Result<Vec<Platform>, BuildError> {
        if self.platforms.is_empty() {
            return Ok(vec![build.clone()]);
        }
        let mut out: Vec<Platform> = Vec::new();
        for p in &self.platforms {
            let parsed = Platform::parse(p)
                .map_err(|e| {
                    BuildError::invalid(
                        format!("--platform {p:?}"),
                        format!("{e} (e.g. linux/amd64, linux/arm64, linux/arm/v7)"),
                    )
                })?
                .normalize();
            if parsed.os != "linux" {
                return Err(BuildError::invalid(
                    format!("--platform {p}"),
                    "kiln builds Linux images only",
                ));
            }
            if !out.contains(&parsed) {
                out.push(parsed);
            }
        }
        Ok(out)
    }

    /// The name an SBOM describes: the first image name, else the module.
    #[must_use]
    pub fn sbom_name(&self) -> String {
        self.outputs
            .iter()
            .find_map(|o| match o {
                OutputSpec::Image { names, .. } => names.first().map(ToString::to_string),
                OutputSpec::Oci { name, .. }
                | OutputSpec::Docker { name, .. }
                | OutputSpec::Podman { name, .. }
                | OutputSpec::Containerd { name, .. } => name.as_ref().map(ToString::to_string),
                _ => None,
            })
            .or_else(|| self.go_mod.module.clone())
            .unwrap_or_else(|| self.options.module_name.clone())
    }

    /// When the image was made, RFC 3339 (SOURCE_DATE_EPOCH or the last
    /// commit when known, so attestations are reproducible too).
    #[must_use]
    pub fn created_rfc3339(&self) -> String {
        let secs = self
            .options
            .source_date_epoch
            .or(self.options.created)
            .unwrap_or(0);
        kiln_image::config::rfc3339_utc(secs)
    }

    /// Adds kiln's defaults to an exporter: OCI media types and, with a
    /// SOURCE_DATE_EPOCH, the config's and history's times.
    ///
    /// Not `rewrite-timestamp`: kiln's one file op already stamps every file
    /// it writes with the epoch (the base's layers come as they are), and the
    /// rewrite re-reads and recompresses every layer on every export (about
    /// 100 ms of a 190 ms warm build on buildkitd v0.29).
    pub fn decorate_exporter(&self, e: &mut ExporterSpec) {
        if matches!(
            e.kind.as_str(),
            ex::TYPE_IMAGE | ex::TYPE_OCI | ex::TYPE_DOCKER
        ) {
            e.attrs
                .entry(ex::OCI_MEDIATYPES.into())
                .or_insert_with(|| "true".into());
            if let Some(epoch) = self.options.source_date_epoch {
                e.attrs
                    .entry(ex::SOURCE_DATE_EPOCH.into())
                    .or_insert_with(|| epoch.to_string());
            }
        }
    }
}

/// Reads `DIR/go.mod`.
fn read_go_mod(dir: &Path) -> Result<GoMod, BuildError> {
    crate::go_mod::read_dir(dir)
}

/// `example.com/app/v2` → `app` (like `go build` names binaries).
fn module_binary_name(module: &str) -> String {
    let mut parts: Vec<&str> = module.split('/').collect();
    if parts.len() > 1 {
        if let Some(last) = parts.last() {
            if last.len() > 1
                && last.starts_with('v')
                && last[1..].chars().all(|c| c.is_ascii_digit())
            {
                parts.pop();
            }
        }
    }
    parts.last().map(|s| s.to_string()).unwrap_or_default()
}

/// What kiln reads from the module's git checkout (nothing when it is not
/// one, or git is missing).
#[derive(Default)]
struct GitFacts {
    /// The last commit's time (`%ct`).
    commit_time: Option<u64>,
    /// The last commit (`%H`).
    revision: Option<String>,
    remote_url: Option<String>,
}

impl GitFacts {
    /// Asks git only what is needed, both questions at once (each git
    /// process costs a few milliseconds of every build).
    fn read(dir: &Path, commit: bool, remote: bool) -> Self {
        let spawn = |args: &[&str]| {
            std::process::Command::new("git")
                .arg("-C")
                .arg(dir)
                .args(args)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .ok()
        };
        let log = commit
            .then(|| spawn(&["log", "-1", "--format=%ct%n%H"]))
            .flatten();
        let url = remote
            .then(|| spawn(&["config", "--get", "remote.origin.url"]))
            .flatten();
        let answer = |child: Option<std::process::Child>| {
            let out = child?.wait_with_output().ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
                .filter(|s| !s.is_empty())
        };
        let mut facts = Self {
            remote_url: answer(url),
            ..Self::default()
        };
        if let Some(log) = answer(log) {
            let mut lines = log.lines();
            facts.commit_time = lines.next().and_then(|t| t.trim().parse().ok());
            facts.revision = lines
                .next()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty());
        }
        facts
    }
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"))
}

fn goenv_path() -> PathBuf {
    if let Ok(p) = std::env::var("GOENV") {
        if !p.is_empty() && p != "off" {
            return PathBuf::from(p);
        }
    }
    if let Some(out) = std::process::Command::new("go")
        .args(["env", "GOENV"])
        .output()
        .ok()
        .filter(|o| o.status.success())
    {
        let p = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !p.is_empty() {
            return PathBuf::from(p);
        }
    }
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".config"));
    config.join("go/env")
}

/// Checks each main is a directory holding `package main` (before any
/// daemon work), so a library package is refused with a clear error.
pub fn check_mains(dir: &Path, mains: &[String]) -> Result<(), BuildError> {
    for m in mains {
        let rel = m.trim_start_matches("./");
        let pkg = if rel.is_empty() || rel == "." {
            dir.to_path_buf()
        } else {
            dir.join(rel)
        };
        let entries = std::fs::read_dir(&pkg).map_err(|_| {
            BuildError::invalid(
                format!("--main {m}"),
                format!("{} is not a directory of the module", pkg.display()),
            )
        })?;
        let mut names = std::collections::BTreeSet::new();
        for e in entries.flatten() {
            let p = e.path();
            let file = p
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            if !file.ends_with(".go") || file.ends_with("_test.go") {
                continue;
            }
            if let Ok(text) = std::fs::read_to_string(&p) {
                if let Some(name) = package_clause(&text) {
                    names.insert(name);
                }
            }
        }
        if names.is_empty() {
            return Err(BuildError::invalid(
                format!("--main {m}"),
                format!("{} holds no Go files", pkg.display()),
            ));
        }
        if !names.contains("main") {
            return Err(BuildError::invalid(
                format!(
                    "--main {m} is package {}, not a main package",
                    names.into_iter().collect::<Vec<_>>().join(", ")
                ),
                "name a directory with `package main` (e.g. ./cmd/server)",
            ));
        }
    }
    Ok(())
}

/// The name in a Go file's `package` clause (skipping comments).
fn package_clause(text: &str) -> Option<String> {
    let mut in_block = false;
    for line in text.lines() {
        let mut l = line.trim();
        if in_block {
            match l.find("*/") {
                Some(i) => {
                    l = l[i + 2..].trim();
                    in_block = false;
                }
                None => continue,
            }
        }
        if l.starts_with("/*") {
            if !l.contains("*/") {
                in_block = true;
            }
            continue;
        }
        if l.is_empty() || l.starts_with("//") {
            continue;
        }
        return l
            .strip_prefix("package ")
            .map(|r| r.split_whitespace().next().unwrap_or("").to_string());
    }
    None
}

/// The proxy secrets `--proxy-from-env` passes: every proxy variable in
/// both cases, each read from the same-case variable when the user set it
/// and from the other case otherwise (apt reads only `http_proxy`, curl
/// only lower-case `http_proxy`, Go either), as `(secret id, variable)`.
fn proxy_secrets(is_set: impl Fn(&str) -> Option<String>) -> Vec<(&'static str, &'static str)> {
    let mut out = Vec::new();
    for pair in PROXY_ENV_NAMES.chunks(2) {
        let [upper, lower] = [pair[0], pair[1]];
        let (u, l) = (is_set(upper).is_some(), is_set(lower).is_some());
        if !u && !l {
            continue;
        }
        out.push((upper, if u { upper } else { lower }));
        out.push((lower, if l { lower } else { upper }));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    #[test]
    fn proxy_variables_are_passed_in_both_cases() {
        let env = |set: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                set.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        // Only upper-case HTTP_PROXY: both cases, both read from it (apt
        // reads only the lower-case one).
        assert_eq!(
            proxy_secrets(env(&[("HTTP_PROXY", "http://p:3128")])),
            [("HTTP_PROXY", "HTTP_PROXY"), ("http_proxy", "HTTP_PROXY")]
        );
        // Each case keeps its own value when both are set; a lower-case
        // no_proxy also gives NO_PROXY.
        assert_eq!(
            proxy_secrets(env(&[
                ("https_proxy", "a"),
                ("HTTPS_PROXY", "b"),
                ("no_proxy", "localhost"),
                ("all_proxy", "socks5://s"),
            ])),
            [
                ("HTTPS_PROXY", "HTTPS_PROXY"),
                ("https_proxy", "https_proxy"),
                ("NO_PROXY", "no_proxy"),
                ("no_proxy", "no_proxy"),
                ("ALL_PROXY", "all_proxy"),
                ("all_proxy", "all_proxy"),
            ]
        );
        assert!(proxy_secrets(env(&[("OTHER", "x")])).is_empty());
    }

    use super::*;

    #[test]
    fn binary_names() {
        assert_eq!(module_binary_name("example.com/app"), "app");
        assert_eq!(module_binary_name("example.com/app/v2"), "app");
        assert_eq!(module_binary_name("hello"), "hello");
    }

    /// A module with a kiln.lock made from the default settings.
    #[allow(clippy::unwrap_used)]
    fn module_with_lock() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("go.mod"),
            "module example.com/app\n\ngo 1.24\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("main.go"),
            "package main\n\nfunc main() {}\n",
        )
        .unwrap();
        let flags = BuildFlags {
            dir: dir.path().to_path_buf(),
            ..BuildFlags::default()
        };
        let request = Request::gather(&flags, false).unwrap();
        let digest = format!("sha256:{}", "a".repeat(64));
        Lock {
            go: "1.24.7".into(),
            inputs: request.lock_inputs(),
            builder: crate::lock::LockedImage {
                name: "golang:1.24.7-trixie".into(),
                digest: digest.clone(),
                platforms: BTreeMap::new(),
            },
            base: crate::lock::LockedImage {
                name: request.base.clone(),
                digest,
                platforms: BTreeMap::new(),
            },
        }
        .save(dir.path())
        .unwrap();
        dir
    }

    #[test]
    #[allow(clippy::unwrap_used)]
    fn a_lock_matching_the_settings_is_used() {
        let dir = module_with_lock();
        let flags = BuildFlags {
            dir: dir.path().to_path_buf(),
            locked: true,
            ..BuildFlags::default()
        };
        let r = Request::gather(&flags, true).unwrap();
        assert!(r.locked.is_some());
        assert!(r.stale_lock.is_empty(), "{:?}", r.stale_lock);
    }

    #[test]
    #[allow(clippy::unwrap_used)]
    fn a_changed_setting_makes_the_lock_stale() {
        let dir = module_with_lock();
        let mut flags = BuildFlags {
            dir: dir.path().to_path_buf(),
            distro: Some("trixie".into()),
            locked: true,
            ..BuildFlags::default()
        };
        // --locked: an error naming the field and both values.
        let err = Request::gather(&flags, true).unwrap_err().to_string();
        assert!(
            err.contains("distro") && err.contains("bookworm") && err.contains("trixie"),
            "{err}"
        );
        // Without it: built from the settings, the lock set aside, a warning.
        flags.locked = false;
        let r = Request::gather(&flags, true).unwrap();
        assert!(r.locked.is_none());
        assert_eq!(r.stale_lock.len(), 1, "{:?}", r.stale_lock);
        assert!(
            r.warnings
                .iter()
                .any(|w| w.contains("stale") && w.contains("trixie")),
            "{:?}",
            r.warnings
        );
        // Platforms are inputs too.
        flags.distro = None;
        flags.platforms = vec!["linux/arm64".into()];
        let r = Request::gather(&flags, true).unwrap();
        assert!(
            r.stale_lock.iter().any(|s| s.contains("platforms")),
            "{:?}",
            r.stale_lock
        );
    }
}
