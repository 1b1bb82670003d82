//! Everything `kiln build` decides before it talks to the daemon: flags
//! merged over kiln.toml, the lock, secrets, ssh, known hosts, outputs.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use kiln_client::gateway::GatewayBuild;
use kiln_client::ExporterSpec;
use kiln_go::recipe::GoBuildOptions;
use kiln_go::version::{Cache, GoSpec, Resolver, Source, SourceKind};
use kiln_go::GoMod;
use kiln_image::{ImageRef, Platform};
use kiln_proto::attrs::exporter as ex;

use super::args::BuildArgs;
use crate::cmd::run::StepError;
use crate::cmd::session_opts::{parse_output, Output, SessionArgs};
use kiln_build::config::{KilnToml, DEFAULT_BASE_IMAGE, DEFAULT_BUILDER_IMAGE, DEFAULT_DISTRO};
use kiln_build::Lock;

/// Proxy variables `--proxy-from-env` passes as secret env vars.
pub const PROXY_VARS: [&str; 6] = [
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
];

pub struct Inputs {
    pub dir: PathBuf,
    pub go_mod: GoMod,
    pub options: GoBuildOptions,
    pub go: GoSpec,
    pub go_source: SourceKind,
    pub builder_template: String,
    pub distro: String,
    pub base: String,
    pub platforms: Vec<String>,
    pub outputs: Vec<Output>,
    pub session_args: SessionArgs,
    /// The lock, when the build must use it.
    pub locked: Option<Lock>,
}

impl Inputs {
    pub fn gather(args: &BuildArgs, use_lock: bool) -> anyhow::Result<Inputs> {
        let dir = args
            .dir
            .canonicalize()
            .with_context(|| format!("{} is not a directory kiln can read", args.dir.display()))?;
        let go_mod = GoMod::read_dir(&dir).map_err(|e| anyhow::anyhow!("{e}"))?;
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
        if !args.mains.is_empty() {
            o.mains = args.mains.clone();
        }
        o.cgo |= args.cgo;
        if args.ldflags.is_some() {
            o.ldflags = args.ldflags.clone();
        }
        if !args.go_tags.is_empty() {
            o.tags = args.go_tags.clone();
        }
        o.apt_packages
            .extend(args.apt.iter().filter(|p| !p.is_empty()).cloned());
        if args.goprivate.is_some() {
            o.goprivate = args.goprivate.clone();
        }
        o.git_ssh_hosts.extend(args.git_ssh_hosts.iter().cloned());
        if !args.cmd.is_empty() {
            o.cmd = args.cmd.clone();
        }
        if args.user.is_some() {
            o.user = args.user.clone();
        }
        for l in &args.labels {
            let (k, v) = l
                .split_once('=')
                .with_context(|| format!("--label {l:?} is not KEY=VALUE"))?;
            o.labels.insert(k.to_string(), v.to_string());
        }
        o.no_cache |= args.no_cache;
        if let Some(n) = &args.network {
            o.host_network = n == "host";
        }
        check_mains(&dir, &o.mains)?;
        o.source_date_epoch = args
            .source_date_epoch
            .or(o.source_date_epoch)
            .or_else(|| {
                std::env::var("SOURCE_DATE_EPOCH")
                    .ok()
                    .and_then(|v| v.trim().parse().ok())
            })
            .or_else(|| git(&dir, &["log", "-1", "--format=%ct"]).and_then(|v| v.parse().ok()));
        if o.revision.is_none() {
            o.revision = git(&dir, &["rev-parse", "HEAD"]);
        }
        if o.source_url.is_none() {
            // Credentials in a remote URL never reach a label.
            o.source_url = git(&dir, &["config", "--get", "remote.origin.url"])
                .filter(|u| !u.contains('@') || u.starts_with("git@"));
        }

        // Session: secrets and ssh for the recipe's mounts.
        let mut session_args = SessionArgs {
            locals: vec![],
            secrets: vec![],
            ssh: args.ssh.clone(),
            oci_layouts: vec![],
        };
        for s in &args.ssh {
            let id = s.split_once('=').map_or(s.as_str(), |(id, _)| id);
            let id = if id.is_empty() { "default" } else { id };
            if !o.ssh.iter().any(|x| x == id) {
                o.ssh.push(id.to_string());
            }
        }
        if args.goenv {
            let path = goenv_path();
            if !path.is_file() {
                bail!(
                    "--goenv: {} does not exist (`go env -w KEY=VALUE` creates it)",
                    path.display()
                );
            }
            session_args
                .secrets
                .push(format!("id=goenv,src={}", path.display()));
            o.goenv_secret = Some("goenv".into());
        }
        if let Some(n) = &args.netrc {
            let path = if n.is_empty() {
                home().join(".netrc")
            } else {
                PathBuf::from(n)
            };
            if !path.is_file() {
                bail!("--netrc: {} does not exist", path.display());
            }
            session_args
                .secrets
                .push(format!("id=netrc,src={}", path.display()));
            o.netrc_secret = Some("netrc".into());
        }
        if args.proxy_from_env {
            let present: Vec<&str> = PROXY_VARS
                .iter()
                .copied()
                .filter(|v| std::env::var(v).is_ok_and(|x| !x.is_empty()))
                .collect();
            if present.is_empty() {
                bail!("--proxy-from-env: none of {} is set", PROXY_VARS.join(", "));
            }
            for v in present {
                session_args.secrets.push(format!("id={v},env={v}"));
                o.proxy_env_secrets.push(v.to_string());
            }
        }
        if let Some(ca) = &args.ca_bundle {
            if !ca.is_file() {
                bail!("--ca-bundle: {} does not exist", ca.display());
            }
            session_args
                .secrets
                .push(format!("id=ca-bundle,src={}", ca.display()));
            o.ca_bundle_secret = Some("ca-bundle".into());
        }
        if !o.git_ssh_hosts.is_empty() && o.known_hosts.is_empty() {
            let file = args
                .known_hosts
                .clone()
                .unwrap_or_else(|| home().join(".ssh/known_hosts"));
            o.known_hosts = known_hosts_for(&file, &o.git_ssh_hosts)?;
        }

        // Outputs: -o specs plus -t names.
        let mut outputs = args
            .output
            .outputs
            .iter()
            .map(|s| parse_output(s))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut names = args.image_tags.clone();
        if names.is_empty() && args.push {
            names = toml.images.clone();
        }
        if args.push && names.is_empty() {
            bail!(
                "--push needs an image name: -t REGISTRY/REPO:TAG (or images = [...] in kiln.toml)"
            );
        }
        for n in &names {
            let r = ImageRef::parse(n).map_err(|e| anyhow::anyhow!("-t {n:?}: {e}"))?;
            let mut attrs =
                std::collections::BTreeMap::from([(ex::NAME.to_string(), r.to_string())]);
            if args.push {
                attrs.insert(ex::PUSH.to_string(), "true".into());
            }
            outputs.push(Output {
                exporter: ExporterSpec {
                    kind: ex::TYPE_IMAGE.into(),
                    attrs,
                },
                target: None,
            });
        }

        let locked = match if use_lock { Lock::load(&dir)? } else { None } {
            Some(l) => Some(l),
            None if args.locked && use_lock => bail!(
                "--locked: there is no {} in {}; create it with `kiln lock`",
                kiln_build::lock::FILE,
                dir.display()
            ),
            None => None,
        };
        let go: GoSpec = args
            .go
            .clone()
            .or_else(|| toml.go.clone())
            .unwrap_or_else(|| "auto".into())
            .parse()
            .map_err(|e| anyhow::anyhow!("--go: {e} (or auto)"))?;
        let go_source = match (args.go_source, toml.go_source.as_deref()) {
            (Some(s), _) => s.into(),
            (None, None | Some("proxy")) => SourceKind::Proxy,
            (None, Some("godev")) => SourceKind::Godev,
            (None, Some("git")) => SourceKind::Git,
            (None, Some(other)) => {
                bail!("kiln.toml: go-source {other:?} is not proxy, godev or git")
            }
        };
        let inputs = Inputs {
            builder_template: args
                .builder_image
                .clone()
                .or_else(|| toml.builder_image.clone())
                .unwrap_or_else(|| DEFAULT_BUILDER_IMAGE.into()),
            distro: args
                .distro
                .clone()
                .or_else(|| toml.distro.clone())
                .unwrap_or_else(|| DEFAULT_DISTRO.into()),
            base: args
                .base_image
                .clone()
                .or_else(|| toml.base_image.clone())
                .unwrap_or_else(|| DEFAULT_BASE_IMAGE.into()),
            platforms: if args.platforms.is_empty() {
                toml.platforms.clone()
            } else {
                args.platforms.clone()
            },
            dir,
            go_mod,
            options: o,
            go,
            go_source,
            outputs,
            session_args,
            locked,
        };
        if let Some(l) = &inputs.locked {
            inputs.check_lock(l, args.locked)?;
        }
        Ok(inputs)
    }

    /// A lock that no longer matches the inputs is stale: `--locked` fails,
    /// a plain build ignores it with a warning.
    fn check_lock(&self, lock: &Lock, strict: bool) -> anyhow::Result<()> {
        let mut stale = Vec::new();
        if let Ok(v) = lock.go.parse::<kiln_go::GoVersion>() {
            if v.minor_line() != self.go_mod.go.minor_line() {
                stale.push(format!(
                    "go.mod asks for Go {} but the lock has {}",
                    self.go_mod.go, lock.go
                ));
            }
        }
        if let GoSpec::Pinned(p) = &self.go {
            if p.to_string() != lock.go {
                stale.push(format!("--go {p} differs from the lock's {}", lock.go));
            }
        }
        let base = self.base_image()?.to_string();
        if lock.base.name != base {
            stale.push(format!(
                "the base image is {base} but the lock has {}",
                lock.base.name
            ));
        }
        if stale.is_empty() {
            return Ok(());
        }
        if strict {
            bail!(
                "--locked: kiln.lock is stale: {}; run `kiln lock --update`",
                stale.join("; ")
            );
        }
        eprintln!(
            "warning: ignoring stale kiln.lock ({}); run `kiln lock --update`",
            stale.join("; ")
        );
        Ok(())
    }

    pub fn base_image(&self) -> anyhow::Result<ImageRef> {
        ImageRef::parse(&self.base).map_err(|e| anyhow::anyhow!("base image {:?}: {e}", self.base))
    }

    /// The target platforms, default the daemon's.
    pub fn targets(&self, build: &Platform) -> anyhow::Result<Vec<Platform>> {
        if self.platforms.is_empty() {
            return Ok(vec![build.clone()]);
        }
        let mut out: Vec<Platform> = Vec::new();
        for p in &self.platforms {
            let parsed = Platform::parse(p)
                .map_err(|e| {
                    anyhow::anyhow!(
                        "--platform {p:?}: {e} (e.g. linux/amd64, linux/arm64, linux/arm/v7)"
                    )
                })?
                .normalize();
            if parsed.os != "linux" {
                bail!("--platform {p}: kiln builds Linux images only");
            }
            if !out.contains(&parsed) {
                out.push(parsed);
            }
        }
        Ok(out)
    }

    /// Adds kiln's defaults to an exporter: OCI media types and, with a
    /// SOURCE_DATE_EPOCH, reproducible timestamps.
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
                e.attrs
                    .entry(ex::REWRITE_TIMESTAMP.into())
                    .or_insert_with(|| "true".into());
            }
        }
    }

    /// Resolves `--go auto` (checking the builder image exists through the
    /// daemon) or takes a pinned version.
    pub async fn resolve_go(
        &self,
        gw: &GatewayBuild,
        build_platform: &Platform,
        session_id: &str,
        notes: &mut Vec<String>,
    ) -> Result<(String, ImageRef), StepError> {
        match &self.go {
            GoSpec::Pinned(v) => {
                let image =
                    kiln_go::version::builder_image(&self.builder_template, v, &self.distro)
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                Ok((v.to_string(), image))
            }
            GoSpec::Auto => {
                let source =
                    Source::from_env(self.go_source).map_err(|e| anyhow::anyhow!("{e}"))?;
                let resolver = Resolver::new(source)
                    .map_err(|e| anyhow::anyhow!("{e}"))?
                    .cache(Cache::from_env());
                let probe = crate::cmd::probe::DaemonProbe {
                    gateway: gw,
                    platform: Some(super::to_pb(build_platform)),
                    session_id: Some(session_id.to_string()),
                };
                let r = resolver
                    .resolve_with_image(&self.go_mod, &self.builder_template, &self.distro, &probe)
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot pick the Go version: {e}"))?;
                notes.extend(r.notes.iter().cloned());
                for w in &r.warnings {
                    eprintln!("warning: {w}");
                }
                let image = match &r.image {
                    Some(i) => ImageRef::parse(i).map_err(|e| anyhow::anyhow!("{i}: {e}"))?,
                    None => kiln_go::version::builder_image(
                        &self.builder_template,
                        &r.version,
                        &self.distro,
                    )
                    .map_err(|e| anyhow::anyhow!("{e}"))?,
                };
                Ok((r.version.to_string(), image))
            }
        }
    }
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

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
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

/// The known_hosts lines for these `HOST[:PORT]`s (plain entries; `[host]:port` for other ports).
fn known_hosts_for(file: &Path, hosts: &[String]) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(file).with_context(|| {
        format!("--git-ssh-host needs known_hosts entries, but {} cannot be read; pass --known-hosts FILE", file.display())
    })?;
    let mut out = Vec::new();
    for h in hosts {
        let h = h.rsplit_once('@').map_or(h.as_str(), |(_, rest)| rest);
        let (host, port) = match h.rsplit_once(':') {
            Some((host, p)) if p.chars().all(|c| c.is_ascii_digit()) => {
                (host, p.parse::<u16>().ok())
            }
            _ => (h, None),
        };
        let name = match port {
            Some(p) if p != 22 => format!("[{host}]:{p}"),
            _ => host.to_string(),
        };
        let found: Vec<String> = text
            .lines()
            .filter(|l| {
                l.split_whitespace()
                    .next()
                    .is_some_and(|names| names.split(',').any(|n| n == name))
            })
            .map(str::to_string)
            .collect();
        if found.is_empty() {
            bail!(
                "no known_hosts entry for {name} in {}: add one (check its fingerprint) or pass --known-hosts FILE; kiln never scans host keys at build time",
                file.display()
            );
        }
        out.extend(found);
    }
    Ok(out)
}

/// Checks each main is a directory holding `package main` (before any
/// daemon work), so a library package is refused with a clear error.
pub fn check_mains(dir: &Path, mains: &[String]) -> anyhow::Result<()> {
    for m in mains {
        let rel = m.trim_start_matches("./");
        let pkg = if rel.is_empty() || rel == "." {
            dir.to_path_buf()
        } else {
            dir.join(rel)
        };
        let entries = std::fs::read_dir(&pkg).with_context(|| {
            format!(
                "--main {m}: {} is not a directory of the module",
                pkg.display()
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
            bail!("--main {m}: {} holds no Go files", pkg.display());
        }
        if !names.contains("main") {
            bail!(
                "--main {m} is package {}, not a main package: name a directory with `package main` (e.g. ./cmd/server)",
                names.into_iter().collect::<Vec<_>>().join(", ")
            );
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_names() {
        assert_eq!(module_binary_name("example.com/app"), "app");
        assert_eq!(module_binary_name("example.com/app/v2"), "app");
        assert_eq!(module_binary_name("hello"), "hello");
    }

    #[test]
    fn known_hosts_lookup() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("kh");
        std::fs::write(
            &f,
            "git.corp ssh-ed25519 AAAA\n[127.0.0.1]:2222 ssh-ed25519 BBBB\nother ssh-rsa CCCC\n",
        )
        .unwrap();
        assert_eq!(
            known_hosts_for(&f, &["git.corp".into()]).unwrap(),
            vec!["git.corp ssh-ed25519 AAAA"]
        );
        assert_eq!(
            known_hosts_for(&f, &["127.0.0.1:2222".into()]).unwrap(),
            vec!["[127.0.0.1]:2222 ssh-ed25519 BBBB"]
        );
        let e = known_hosts_for(&f, &["nope".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("no known_hosts entry for nope"), "{e}");
    }
}
