//! `kiln build` as a library: a Go module and [`BuildFlags`] in, an image
//! out, on one daemon ([`Build`]) or fanned out to several ([`FanOut`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), kiln_build::BuildError> {
//! use kiln_build::build::{connect, Build, BuildFlags, Connect, Request};
//! let flags = BuildFlags {
//!     dir: "./my-service".into(),
//!     tags: vec!["registry.example.com/team/my-service:1".into()],
//!     push: true,
//!     ..Default::default()
//! };
//! let request = Request::gather(&flags, true)?;
//! let client = connect(&Connect::default()).await?;
//! let build = Build::prepare(request, client).await?;
//! let (events, mut progress) = tokio::sync::mpsc::unbounded_channel();
//! tokio::spawn(async move { while progress.recv().await.is_some() {} });
//! let built = build.run(events, Default::default()).await?;
//! println!("{}", built.digest.unwrap_or_default());
//! # Ok(()) }
//! ```

mod endpoint;
pub mod fanout;
mod plan;
pub(crate) mod probe;
pub mod request;
pub mod resolve;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kiln_client::kiln_proto::attrs::response;
use kiln_client::kiln_session::Session;
use kiln_client::{resolve_address, Client, DaemonInfo, TlsOptions};
use kiln_image::{Digest, ImageRef, Platform};

pub use endpoint::{Events, ExecCommands, Outcome};
pub use fanout::{FanOut, Joined};
pub use plan::{plan, GoChoice, Plan, PlatformPlan, CONTEXT};
pub use request::{check_mains, BuildFlags, Request};
pub use resolve::{GatewayResolver, ImageResolver, Resolved, Unresolvable};

use crate::error::BuildError;
use crate::lock::{self, Lock, LockedImage};
use crate::outputs::{discard, fit, fit_caches, run_after, Fitted};
use crate::session::DaemonOutput;
use crate::spec::{CacheKind, OutputSpec};
use crate::SyncDirOptions;

/// How to reach the default daemon.
#[derive(Clone, Debug, Default)]
pub struct Connect {
    /// `--addr`; `None`: `BUILDKIT_HOST`, else `docker://` if a Docker
    /// Engine answers, else the buildkitd socket.
    pub addr: Option<String>,
    /// TLS for `tcp://` addresses (every endpoint of a fan-out).
    pub tls: TlsOptions,
}

/// Connects to the daemon `c` names.
///
/// # Errors
/// [`BuildError::Daemon`] when the address is bad or nothing answers.
pub async fn connect(c: &Connect) -> Result<Client, BuildError> {
    let (address, _) = resolve_address(c.addr.as_deref()).await?;
    Ok(Client::connect(address, &c.tls).await?)
}

/// The daemon's own platform: the first platform of its first worker.
///
/// # Errors
/// [`BuildError::Daemon`] when the call fails, [`BuildError::Invalid`]
/// when the daemon reports no platform kiln knows.
pub async fn daemon_platform(client: &Client) -> Result<Platform, BuildError> {
    let workers = client.list_workers().await?;
    let first = workers
        .iter()
        .flat_map(|w| w.platforms.iter())
        .next()
        .ok_or_else(|| BuildError::invalid("the daemon", "it reports no worker platforms"))?;
    Ok(Platform::parse(first)
        .map_err(|e| {
            BuildError::invalid(
                "the daemon",
                format!("its platform {first:?} is not a platform kiln knows: {e}"),
            )
        })?
        .normalize())
}

/// The session of a build: the module directory as the `context` local
/// (with `.dockerignore`), plus the request's secrets and ssh, and outputs.
pub(crate) fn context_session(
    request: &Request,
    outputs: &[DaemonOutput],
) -> Result<Session, BuildError> {
    let mut spec = request.session.clone();
    spec.locals.push((
        CONTEXT.to_string(),
        request.dir.clone(),
        SyncDirOptions::default().dockerignore(true),
    ));
    spec.build(outputs)
}

/// A build on one daemon, connected, with its outputs fitted to the daemon.
pub struct Build {
    request: Request,
    client: Client,
    daemon: DaemonInfo,
    build_platform: Platform,
    targets: Vec<Platform>,
}

/// What a build produced.
#[derive(Debug)]
pub struct Built {
    pub plan: Plan,
    /// The image digest an exporter (or an Engine push) reported.
    pub digest: Option<String>,
    /// Things the user should know (the Go version picked, an image kept in
    /// buildkitd's store, …).
    pub notes: Vec<String>,
    /// Whether any output was asked for.
    pub has_outputs: bool,
    /// What the exporters reported (`containerimage.digest`, …).
    pub exporter_response: BTreeMap<String, String>,
    /// The pushed image as the registry has it, when kiln pushed it itself
    /// (classic image store).
    pub descriptor: Option<kiln_image::manifest::Descriptor>,
    /// One line per image loaded into podman or containerd.
    pub loaded: Vec<String>,
}

impl Build {
    /// Asks the daemon what it is and its platform.
    ///
    /// # Errors
    /// [`BuildError::Daemon`], or a `--platform` that does not parse.
    pub async fn prepare(mut request: Request, client: Client) -> Result<Build, BuildError> {
        let build_platform = daemon_platform(&client).await?;
        let targets = request.targets(&build_platform)?;
        let daemon = client.daemon_info().await?;
        prepare_go_cache(
            &mut request,
            &targets,
            &daemon,
            &client.address().to_string(),
        )
        .await?;
        Ok(Build {
            request,
            client,
            daemon,
            build_platform,
            targets,
        })
    }

    /// The request.
    #[must_use]
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// The daemon this build runs on.
    #[must_use]
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// What this build attaches, fitted to the daemon: nothing on the
    /// classic image store, which cannot keep attestations (an error when
    /// asked for explicitly, see [`Build::run`]).
    fn attestations(&self) -> crate::spec::Attestations {
        if crate::outputs::classic_store(&self.daemon) {
            return crate::spec::Attestations::default();
        }
        self.request.attestations
    }

    fn fitted(&self) -> Result<Fitted, BuildError> {
        crate::outputs::fit_attestations(
            &self.daemon,
            &self.client.address().to_string(),
            &self.request.attestations,
        )?;
        fit_caches(
            &self.daemon,
            &self.client.address().to_string(),
            &self.request.cache_to,
        )?;
        let mut f = fit(
            &self.daemon,
            &self.client.address().to_string(),
            &self.request.outputs,
            self.targets.len(),
        )?;
        for o in &mut f.outputs {
            self.request.decorate_exporter(&mut o.exporter);
        }
        Ok(f)
    }

    /// Plans every platform through the daemon without solving anything.
    ///
    /// # Errors
    /// As [`Build::run`], before anything is built.
    pub async fn plan(&self, events: Events, commands: ExecCommands) -> Result<Plan, BuildError> {
        let session = context_session(&self.request, &[])?;
        let outcome = self
            .endpoint(session, Vec::new(), true, events, commands)
            .run()
            .await?;
        match outcome {
            Outcome::Planned(p) | Outcome::Built(_, p) => Ok(p),
        }
    }

    /// Builds and exports; on a classic-store Docker, kiln then pushes or
    /// saves what the `moby` exporter stored.
    ///
    /// # Errors
    /// [`BuildError::Daemon`] when the daemon fails the build (its status
    /// names the failing step), others for outputs that cannot be made.
    pub async fn run(&self, events: Events, commands: ExecCommands) -> Result<Built, BuildError> {
        let fitted = self.fitted()?;
        crate::outputs::preflight(&fitted.after).await?;
        let session = context_session(&self.request, &fitted.outputs)?;
        let exporters = fitted.outputs.iter().map(|o| o.exporter.clone()).collect();
        let engine = self.client.engine();
        // What the image outputs' names point at now, to tell afterwards
        // what a failed build left behind.
        let before = match &engine {
            Some(engine) => image_ids(engine, &fitted.outputs).await,
            None => BTreeMap::new(),
        };
        let go_cache_events = events.clone();
        let outcome = match self
            .endpoint(session, exporters, false, events, commands)
            .run()
            .await
        {
            Ok(o) => o,
            Err(e) => {
                let e = refused_push(&self.request, e).await;
                let e = failed_cache_export(&self.request, e).await;
                crate::outputs::discard_files(&fitted.after);
                let Some(engine) = &engine else {
                    return Err(e);
                };
                discard(engine, &fitted.after).await;
                // An image exporter stores before it pushes: a failed push
                // leaves the new tag. Say so, from what the Engine reports.
                return Err(partial(e, changed(engine, &fitted.outputs, &before).await));
            }
        };
        let (resp, plan) = match outcome {
            Outcome::Built(r, p) => (r, p),
            Outcome::Planned(p) => {
                return Err(BuildError::invalid(
                    format!("the build of {}", p.module),
                    "it was planned but not built",
                ))
            }
        };
        let mut digest = resp.exporter_response.get(response::IMAGE_DIGEST).cloned();
        let mut descriptor = None;
        if let Some(engine) = &engine {
            // An Engine push (classic image store) reports the registry's digest.
            match run_after(engine, &fitted.after).await {
                Ok(Some(d)) => {
                    descriptor = pushed_descriptor(&self.request, &d).await;
                    digest = Some(d);
                }
                Ok(None) => {}
                Err(e) => {
                    crate::outputs::discard_files(&fitted.after);
                    let e = refused_push(&self.request, e).await;
                    return Err(partial(e, changed(engine, &fitted.outputs, &before).await));
                }
            }
        }
        let loaded = crate::outputs::finish(&fitted.after, &go_cache_events).await?;
        let mut notes = plan.notes.clone();
        notes.extend(fitted.notes);
        notes.extend(self.request.go_cache_notes.iter().cloned());
        notes.extend(export_go_cache(&self.client, &self.request, &plan, go_cache_events).await?);
        // type=local cache exports: the daemon wrote the blobs through the
        // session; the index names the cache manifest, as the Go client does.
        for c in self
            .request
            .cache_to
            .iter()
            .filter(|c| c.kind == CacheKind::Local)
        {
            let dest = c.attrs.get("dest").map(PathBuf::from).unwrap_or_default();
            match resp.exporter_response.get("cache.manifest") {
                Some(desc) => {
                    let tag = c.attrs.get("tag").map_or("latest", String::as_str);
                    crate::cache_dir::record(&dest, desc, tag)?;
                }
                None => notes.push(format!(
                    "the daemon exported no cache to {} (nothing to export, or ignore-error=true hid a failure)",
                    dest.display()
                )),
            }
        }
        notes.extend(ignored_cache_failures(&self.request).await);
        notes.extend(relock(&self.request, &plan).await);
        Ok(Built {
            plan,
            digest,
            notes,
            has_outputs: !self.request.outputs.is_empty(),
            exporter_response: resp.exporter_response,
            descriptor,
            loaded,
        })
    }

    fn endpoint(
        &self,
        session: Session,
        exporters: Vec<kiln_client::ExporterSpec>,
        plan_only: bool,
        events: Events,
        commands: ExecCommands,
    ) -> endpoint::Endpoint<'_> {
        endpoint::Endpoint {
            client: &self.client,
            request: &self.request,
            build_platform: &self.build_platform,
            targets: &self.targets,
            session,
            exporters,
            plan_only,
            label_platforms: false,
            cache_scope: None,
            events,
            commands,
            attestations: self.attestations(),
        }
    }
}

/// The image names of `outputs` (`image`/`moby` exporters) and the image
/// ids they point at in the Engine's store.
async fn image_ids(
    engine: &kiln_client::Engine,
    outputs: &[DaemonOutput],
) -> BTreeMap<String, Option<String>> {
    let mut ids = BTreeMap::new();
    for o in outputs {
        if !matches!(o.exporter.kind.as_str(), "image" | "moby") {
            continue;
        }
        let Some(names) = o
            .exporter
            .attrs
            .get(kiln_client::kiln_proto::attrs::exporter::NAME)
        else {
            continue;
        };
        for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name.starts_with("kiln-export/") {
                continue; // kiln's own temporary name
            }
            if let Ok(id) = engine.image_id(name).await {
                ids.insert(name.to_string(), id);
            }
        }
    }
    ids
}

/// The outputs' image names that point at another image than `before`:
/// what a failed build left in the store (a push fails after the store).
async fn changed(
    engine: &kiln_client::Engine,
    outputs: &[DaemonOutput],
    before: &BTreeMap<String, Option<String>>,
) -> Vec<String> {
    image_ids(engine, outputs)
        .await
        .into_iter()
        .filter(|(name, id)| id.is_some() && before.get(name) != Some(id))
        .map(|(name, _)| format!("the image {name} in the daemon's image store"))
        .collect()
}

/// `e`, saying what was `written` before it happened, if anything.
fn partial(e: BuildError, written: Vec<String>) -> BuildError {
    if written.is_empty() {
        e
    } else {
        BuildError::Partial {
            written,
            source: Box::new(e),
        }
    }
}

/// What `kiln lock` wrote, and what it could not record.
#[derive(Debug)]
pub struct Locked {
    pub lock: Lock,
    pub path: PathBuf,
    pub warnings: Vec<String>,
}

/// Resolves what a build would use (through `client`) and writes kiln.lock.
///
/// # Errors
/// [`BuildError::Lock`] when a lock exists and `update` is false, or an
/// image has no digest; others from planning.
pub async fn lock(request: &Request, client: &Client, update: bool) -> Result<Locked, BuildError> {
    let path = request.dir.join(lock::FILE);
    if Lock::load(&request.dir)?.is_some() && !update {
        return Err(BuildError::Lock {
            path,
            reason: "it already exists; `kiln lock --update` re-resolves it".into(),
        });
    }
    let build_platform = daemon_platform(client).await?;
    let targets = request.targets(&build_platform)?;
    let gw = client
        .gateway(kiln_client::SolveRequest::default(), None)
        .await?;
    let plan = endpoint::plan_through(&gw, request, &build_platform, &targets, "", false).await;
    let _ = gw.fail("kiln lock: done").await;
    write_lock(request, &plan?).await
}

/// Records what `plan` resolved to (and the settings that picked it) in
/// kiln.lock, per-platform digests from the registry where it answers.
async fn write_lock(request: &Request, plan: &Plan) -> Result<Locked, BuildError> {
    let path = request.dir.join(lock::FILE);
    // Per-platform digests of private images need the same credentials the
    // daemon used to resolve them.
    let registry = crate::registry::client_for([&plan.builder.0, &plan.base.0], &[]).await?;
    let digest = |img: &kiln_image::ImageRef, d: &Option<Digest>| {
        d.clone().ok_or_else(|| BuildError::Lock {
            path: path.clone(),
            reason: format!("the daemon returned no digest for {img}; kiln cannot lock it"),
        })
    };
    let mut locked = Lock {
        go: plan.go_version.clone(),
        inputs: request.lock_inputs(),
        builder: LockedImage {
            name: plan.builder.0.to_string(),
            digest: digest(&plan.builder.0, &plan.builder.1)?.to_string(),
            platforms: BTreeMap::new(),
        },
        base: LockedImage {
            name: plan.base.0.to_string(),
            digest: digest(&plan.base.0, &plan.base.1)?.to_string(),
            platforms: BTreeMap::new(),
        },
    };
    let mut warnings = Vec::new();
    for (img, entry) in [
        (&plan.builder.0, &mut locked.builder),
        (&plan.base.0, &mut locked.base),
    ] {
        match registry.resolve_platforms(img).await {
            Ok(list) => {
                for (p, d) in list {
                    entry.platforms.insert(p.to_string(), d.to_string());
                }
            }
            Err(e) => warnings.push(format!("per-platform digests of {img} not recorded: {e}")),
        }
    }
    locked.save(&request.dir)?;
    Ok(Locked {
        lock: locked,
        path,
        warnings,
    })
}

/// The descriptor of what kiln pushed through the Engine, as the registry
/// has it (for the metadata file); `None` if the registry cannot be asked.
async fn pushed_descriptor(
    request: &Request,
    digest: &str,
) -> Option<kiln_image::manifest::Descriptor> {
    let name = request.outputs.iter().find_map(|o| match o {
        OutputSpec::Image {
            names, push: true, ..
        } => names.first(),
        _ => None,
    })?;
    let digest: Digest = digest.parse().ok()?;
    let registry = crate::registry::client_for([name], &[]).await.ok()?;
    registry
        .head_manifest(&name.with_digest(digest))
        .await
        .ok()?
}

/// A build that pushed and failed: asks each registry it pushed to whether
/// it takes a push with these credentials (the daemon reports a refusal
/// only as text), and names the ones that refuse.
async fn refused_push(request: &Request, e: BuildError) -> BuildError {
    let names: Vec<&ImageRef> = request
        .outputs
        .iter()
        .filter_map(|o| match o {
            OutputSpec::Image {
                names, push: true, ..
            } => Some(names.iter()),
            _ => None,
        })
        .flatten()
        .collect();
    if names.is_empty() {
        return e;
    }
    let Ok(registry) = crate::registry::client_for(names.iter().copied(), &[]).await else {
        return e;
    };
    let mut refused: Vec<String> = Vec::new();
    for name in names {
        let host = name.domain().to_string();
        if !refused.contains(&host) && matches!(registry.may_push(name).await, Ok(false)) {
            refused.push(host);
        }
    }
    if refused.is_empty() {
        e
    } else {
        BuildError::PushRefused {
            registries: refused,
            source: Box::new(e),
        }
    }
}

/// Before planning: finds each target's Go cache import (the first
/// `--go-cache-from` that has one for the platform; a missing one is a
/// note, never an error) and checks each registry `--go-cache-to` can be
/// pushed to (unless `ignore-error=true`), so a bad destination fails
/// before anything is built.
pub(crate) async fn prepare_go_cache(
    request: &mut Request,
    targets: &[Platform],
    daemon: &DaemonInfo,
    address: &str,
) -> Result<(), BuildError> {
    use crate::go_cache::{local_cache_present, PlatformCache};
    if request.go_cache_from.is_empty() && request.go_cache_to.is_empty() {
        return Ok(());
    }
    let refs: Vec<ImageRef> = request
        .go_cache_from
        .iter()
        .chain(&request.go_cache_to)
        .filter_map(|s| match &s.dest {
            crate::go_cache::GoCacheDest::Registry(r) => Some(r.clone()),
            crate::go_cache::GoCacheDest::Local(_) => None,
        })
        .collect();
    let registry = crate::registry::client_for(refs.iter(), &[]).await?;
    for spec in &request.go_cache_to {
        let crate::go_cache::GoCacheDest::Registry(r) = &spec.dest else {
            continue;
        };
        if crate::outputs::classic_store(daemon) {
            return Err(BuildError::Unsupported {
                address: address.to_string(),
                daemon: daemon.describe(),
                reason: format!(
                    "{} {}: its classic image store cannot push an image by itself; use type=local,dest=DIR",
                    spec.flag, spec.spec
                ),
            });
        }
        if spec.ignore_error {
            continue;
        }
        let why = match registry.may_push(r).await {
            Ok(true) => continue,
            Ok(false) => format!(
                "{} refuses to take a push from these credentials",
                r.domain()
            ),
            Err(kiln_image::RegistryError::Unreachable { registry, .. }) => {
                format!("the registry {registry} cannot be reached")
            }
            Err(e) => e.to_string(),
        };
        return Err(BuildError::invalid(
            format!("{} {}", spec.flag, spec.spec),
            format!("{why}; fix it, or add ignore-error=true to export when it can"),
        ));
    }
    for target in targets {
        let mut found = None;
        for spec in &request.go_cache_from {
            match spec.for_platform(target) {
                PlatformCache::Local(dir) => {
                    if local_cache_present(&dir) {
                        found = Some(PlatformCache::Local(dir));
                        break;
                    }
                    request.go_cache_notes.push(format!(
                        "{} {}: no Go cache for {target} in {}: building without it",
                        spec.flag,
                        spec.spec,
                        dir.display()
                    ));
                }
                PlatformCache::Registry(r) => match registry.head_manifest(&r).await {
                    Ok(Some(d)) => {
                        found = Some(PlatformCache::Registry(r.with_digest(d.digest)));
                        break;
                    }
                    Ok(None) => request.go_cache_notes.push(format!(
                        "{} {}: no Go cache for {target} at {r}: building without it",
                        spec.flag, spec.spec
                    )),
                    Err(e) => request.go_cache_notes.push(format!(
                        "{} {}: cannot read {r} ({e}): building without it",
                        spec.flag, spec.spec
                    )),
                },
            }
        }
        if let Some(found) = found {
            if let PlatformCache::Local(dir) = &found {
                request.session.locals.push((
                    go_cache_local_name(target),
                    dir.clone(),
                    SyncDirOptions::default(),
                ));
            }
            request.go_cache_in.insert(target.to_string(), found);
        }
    }
    Ok(())
}

/// After the image: solves each platform's Go cache export (the same
/// graph, every step cached, plus the copy out of the cache mount) and
/// exports it to every `--go-cache-to`. A failure is an error naming
/// the flag, or a note with `ignore-error=true`. Returns notes with what
/// was exported and its size.
pub(crate) async fn export_go_cache(
    client: &Client,
    request: &Request,
    plan: &Plan,
    events: Events,
) -> Result<Vec<String>, BuildError> {
    use crate::go_cache::{dir_size, PlatformCache};
    let mut notes = Vec::new();
    for p in &plan.platforms {
        let Some(def) = &p.go_cache else {
            continue;
        };
        for spec in &request.go_cache_to {
            let dest = spec.for_platform(&p.target);
            let (outputs, tmp) = match &dest {
                PlatformCache::Registry(r) => (
                    vec![OutputSpec::Image {
                        names: vec![r.clone()],
                        push: true,
                        attrs: BTreeMap::from([
                            ("compression".to_string(), "zstd".to_string()),
                            ("force-compression".to_string(), "true".to_string()),
                            ("oci-mediatypes".to_string(), "true".to_string()),
                            ("store".to_string(), "false".to_string()),
                        ]),
                    }],
                    None,
                ),
                PlatformCache::Local(dir) => {
                    let parent = dir.parent().unwrap_or(Path::new("."));
                    std::fs::create_dir_all(parent)
                        .map_err(|e| BuildError::file("create", parent, e))?;
                    let tmp = tempfile::Builder::new()
                        .prefix(".kiln-go-cache-")
                        .tempdir_in(parent)
                        .map_err(|e| BuildError::file("create a directory in", parent, e))?;
                    (
                        vec![OutputSpec::Local {
                            dir: tmp.path().to_path_buf(),
                        }],
                        Some(tmp),
                    )
                }
            };
            let mut session = request.session.clone();
            session.locals.push((
                CONTEXT.to_string(),
                request.dir.clone(),
                SyncDirOptions::default().dockerignore(true),
            ));
            let job = crate::solve::SolveJob {
                definition: crate::solve::DefinitionFile {
                    bytes: def.to_bytes(),
                    definition: def.clone(),
                },
                session,
                outputs,
                stall_timeout: request.stall_timeout,
                allow: if request.options.host_network {
                    vec![crate::solve::Entitlement::NetworkHost]
                } else {
                    Vec::new()
                },
            };
            let result = job.run(client, events.clone()).await;
            let result = match (result, &dest, tmp) {
                (Ok(_), PlatformCache::Local(dir), Some(tmp)) => {
                    // Replace the old cache whole: stale entries go.
                    let old = dir.with_extension("kiln-old");
                    let _ = std::fs::remove_dir_all(&old);
                    let moved = std::fs::rename(dir, &old).is_ok();
                    let kept = tmp.keep();
                    match std::fs::rename(&kept, dir) {
                        Ok(()) => {
                            if moved {
                                let _ = std::fs::remove_dir_all(&old);
                            }
                            Ok(format!(
                                "{} of Go build cache for {}",
                                human(dir_size(dir)),
                                p.target
                            ))
                        }
                        Err(e) => {
                            let _ = std::fs::remove_dir_all(&kept);
                            if moved {
                                let _ = std::fs::rename(&old, dir);
                            }
                            Err(BuildError::file("write", dir, e))
                        }
                    }
                }
                (Ok(_), PlatformCache::Registry(r), _) => {
                    Ok(format!("the Go build cache for {} ({})", p.target, r))
                }
                (Ok(_), _, _) => Ok(String::new()),
                (Err(e), _, _) => Err(e),
            };
            match result {
                Ok(what) => notes.push(format!("exported {what} to {dest}")),
                Err(e) if spec.ignore_error => notes.push(format!(
                    "{} {}: the Go cache export for {} failed ({e}); ignore-error=true let the build pass",
                    spec.flag, spec.spec, p.target
                )),
                Err(e) => {
                    return Err(BuildError::invalid(
                        format!("{} {}", spec.flag, spec.spec),
                        format!("the Go cache export for {} failed: {e}", p.target),
                    ))
                }
            }
        }
    }
    Ok(notes)
}

/// The session's name for a platform's local Go cache import.
pub(crate) fn go_cache_local_name(target: &Platform) -> String {
    format!("kiln-go-cache-{}", crate::go_cache::platform_slug(target))
}

/// The registry `--cache-to` specs (without `ignore-error=true`) and their refs.
fn registry_cache_refs(request: &Request, ignored: bool) -> Vec<(String, ImageRef)> {
    request
        .cache_to
        .iter()
        .filter(|c| c.kind == CacheKind::Registry)
        .filter(|c| c.attrs.get("ignore-error").is_some_and(|v| v == "true") == ignored)
        .filter_map(|c| {
            let r = ImageRef::parse(c.attrs.get("ref")?).ok()?;
            let spec: Vec<String> = std::iter::once("type=registry".to_string())
                .chain(c.attrs.iter().map(|(k, v)| format!("{k}={v}")))
                .collect();
            Some((format!("--cache-to {}", spec.join(",")), r))
        })
        .collect()
}

/// A failed build that exported cache to a registry: when that registry
/// refuses these credentials a push, or cannot be reached, says so naming
/// the `--cache-to` (asked of the registry, not read from the error).
async fn failed_cache_export(request: &Request, e: BuildError) -> BuildError {
    if e.failed_step().is_none() {
        return e;
    }
    let caches = registry_cache_refs(request, false);
    if caches.is_empty() {
        return e;
    }
    let Ok(registry) = crate::registry::client_for(caches.iter().map(|(_, r)| r), &[]).await else {
        return e;
    };
    for (flag, r) in caches {
        let why = match registry.may_push(&r).await {
            Ok(true) => continue,
            Ok(false) => format!(
                "{} refused to take a push from these credentials",
                r.domain()
            ),
            Err(kiln_image::RegistryError::Unreachable { registry, .. }) => {
                format!("the registry {registry} cannot be reached")
            }
            Err(_) => continue,
        };
        return BuildError::CacheExport {
            flag,
            why,
            source: Box::new(e),
        };
    }
    e
}

/// Notes for `--cache-to type=registry,…,ignore-error=true` exports that
/// left nothing in the registry (the export failed and was let pass).
async fn ignored_cache_failures(request: &Request) -> Vec<String> {
    let caches = registry_cache_refs(request, true);
    if caches.is_empty() {
        return Vec::new();
    }
    let Ok(registry) = crate::registry::client_for(caches.iter().map(|(_, r)| r), &[]).await else {
        return Vec::new();
    };
    let mut notes = Vec::new();
    for (flag, r) in caches {
        if !matches!(registry.head_manifest(&r).await, Ok(Some(_))) {
            notes.push(format!(
                "{flag}: no cache was exported (the export failed; ignore-error=true let the build pass)"
            ));
        }
    }
    notes
}

/// After a successful build from settings a stale kiln.lock disagreed
/// with: rewrites it from what this build used, and says so (or why not).
async fn relock(request: &Request, plan: &Plan) -> Vec<String> {
    if request.stale_lock.is_empty() {
        return Vec::new();
    }
    match write_lock(request, plan).await {
        Ok(l) => {
            let mut notes = vec![format!(
                "updated {} to this build's inputs (was: {})",
                l.path.display(),
                request.stale_lock.join("; ")
            )];
            notes.extend(l.warnings);
            notes
        }
        Err(e) => vec![format!(
            "kiln.lock is stale and was not updated: {e}; run `kiln lock --update`"
        )],
    }
}

/// Writes a commented kiln.toml into `dir` (a Go module's root).
///
/// # Errors
/// [`BuildError::Invalid`] when one exists (without `force`) or `dir` has
/// no go.mod, [`BuildError::File`] when it cannot be written.
pub fn init(dir: &Path, force: bool) -> Result<PathBuf, BuildError> {
    let path = dir.join(crate::config::FILE);
    if path.exists() && !force {
        return Err(BuildError::invalid(
            path.display().to_string(),
            "it already exists; pass --force to overwrite it",
        ));
    }
    if !dir.join("go.mod").is_file() {
        return Err(BuildError::invalid(
            dir.display().to_string(),
            "it has no go.mod: kiln init goes in a Go module's root",
        ));
    }
    crate::write_atomic(&path, crate::config::TEMPLATE.as_bytes())?;
    Ok(path)
}

/// `123456789` → `117.7 MiB`.
fn human(bytes: u64) -> String {
    let mut v = bytes as f64;
    for unit in ["B", "KiB", "MiB", "GiB"] {
        if v < 1024.0 || unit == "GiB" {
            return if unit == "B" {
                format!("{bytes} B")
            } else {
                format!("{v:.1} {unit}")
            };
        }
        v /= 1024.0;
    }
    format!("{bytes} B")
}
