//! `kiln build`: a Go module to a distroless image, no Dockerfile.
//!
//! The flow: read go.mod and kiln.toml, connect, start a gateway build with
//! the session (context, secrets, ssh, credentials, outputs) attached,
//! resolve the Go version and the builder and base images through the
//! daemon, plan the LLB per target platform (kiln-go), solve each lazily,
//! and return them as one (multi-platform) result for the exporters.

mod args;
mod fanout;
mod inputs;
mod oci_merge;

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use kiln_client::gateway::{GatewayResult, ResolveMode};
use kiln_client::{SessionTransport, SolveRequest};
use kiln_go::recipe::{self, RecipeInput, ResolvedImage};
use kiln_image::{Digest, ImageRef, Platform};

pub use args::BuildArgs;
pub use kiln_build::config::TEMPLATE;
pub use kiln_build::Lock;

use crate::cli::Global;
use crate::cmd::run::{with_progress, StepError};
use inputs::Inputs;

/// The local source name the module directory is served under.
const CONTEXT: &str = "context";

pub async fn run(global: &Global, args: &BuildArgs) -> anyhow::Result<ExitCode> {
    let inputs = Inputs::gather(args, true)?;
    if !args.builders.is_empty() {
        if args.print_llb.is_none() {
            return fanout::run(global, args, &inputs).await;
        }
        eprintln!("note: --print-llb plans on the default builder (--addr); --builder is not used");
    }
    let (client, _) = super::connect(global).await?;
    let build_platform = daemon_platform(&client).await?;
    let targets = inputs.targets(&build_platform)?;
    let daemon = client.daemon_info().await?;
    let fitted = if args.print_llb.is_some() {
        super::outputs::Fitted::default()
    } else {
        super::outputs::fit(
            &daemon,
            &client.address().to_string(),
            inputs.outputs.clone(),
            targets.len(),
        )?
    };
    let session = context_session(&inputs, &fitted.outputs)?;
    let mut exporters: Vec<kiln_client::ExporterSpec> =
        fitted.outputs.iter().map(|o| o.exporter.clone()).collect();
    for e in &mut exporters {
        inputs.decorate_exporter(e);
    }
    let print_llb = args.print_llb;
    let commands = Arc::new(Mutex::new(Default::default()));
    let cmds = commands.clone();
    let outcome = with_progress(args.progress, commands, global.debug, |tx| {
        build_on(Endpoint {
            client: &client,
            inputs: &inputs,
            build_platform: &build_platform,
            targets: &targets,
            session,
            exporters,
            print_llb,
            label_platforms: false,
            tx,
            commands: cmds,
        })
    })
    .await;
    let outcome = match (outcome, client.engine()) {
        (Ok((o, _)), _) => o,
        (Err(e), Some(engine)) => {
            super::outputs::discard(&engine, &fitted.after).await;
            return Err(e);
        }
        (Err(e), None) => return Err(e),
    };
    let mut pushed = None;
    if let (Outcome::Built(..), Some(engine)) = (&outcome, client.engine()) {
        pushed = super::outputs::run_after(&engine, &fitted.after).await?;
    }
    match outcome {
        Outcome::Printed(fmt, plan) => {
            let Some(first) = plan.platforms.first() else {
                anyhow::bail!("no platform to print");
            };
            super::llb::print(&first.definition, fmt)?;
        }
        Outcome::Built(resp, plan) => {
            let quiet = args.progress == crate::progress::Mode::Quiet;
            for n in plan.notes.iter().chain(&fitted.notes).filter(|_| !quiet) {
                eprintln!("note: {n}");
            }
            // An Engine push (classic image store) reports the registry's digest.
            let digest = pushed.or_else(|| {
                resp.exporter_response
                    .get(kiln_proto::attrs::response::IMAGE_DIGEST)
                    .cloned()
            });
            let platforms: Vec<String> = plan
                .platforms
                .iter()
                .map(|p| p.target.to_string())
                .collect();
            if !quiet {
                eprintln!(
                    "built {} with Go {} for {}",
                    plan.module,
                    plan.go_version,
                    platforms.join(", ")
                );
            }
            if !plan.has_outputs {
                eprintln!("note: no -o/-t given: the image was built but not exported (use -t NAME to store it in the daemon's image store, --push to push it, or -o type=oci,dest=FILE)");
            }
            if let Some(d) = digest {
                outln!("{d}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

enum Outcome {
    Printed(super::llb::LlbFormat, Plan),
    Built(kiln_client::SolveResponse, Plan),
}

/// The session of a build: the module directory as the `context` local
/// (with `.dockerignore`), plus secrets, ssh, credentials and outputs.
fn context_session(
    inputs: &Inputs,
    outputs: &[super::session_opts::Output],
) -> anyhow::Result<kiln_session::Session> {
    super::session_opts::build_session(
        &inputs.session_args,
        outputs,
        &[(
            CONTEXT.to_string(),
            inputs.dir.clone(),
            kiln_session::SyncDirOptions::default().dockerignore(true),
        )],
    )
}

/// One build on one daemon: what [`build_on`] needs.
struct Endpoint<'a> {
    client: &'a kiln_client::Client,
    inputs: &'a Inputs,
    build_platform: &'a Platform,
    targets: &'a [Platform],
    session: kiln_session::Session,
    exporters: Vec<kiln_client::ExporterSpec>,
    print_llb: Option<super::llb::LlbFormat>,
    /// Label every step with its platform even for one target (several
    /// endpoints' steps share one progress view).
    label_platforms: bool,
    tx: crate::cmd::run::Events,
    commands: crate::cmd::run::Commands,
}

/// Attaches the session, starts a gateway build, plans every target
/// platform through the daemon, solves each lazily and returns them as one
/// (multi-platform) result to the exporters.
async fn build_on(e: Endpoint<'_>) -> Result<Outcome, StepError> {
    let session_id = e.session.id().to_string();
    let attached = e.client.attach(e.session, SessionTransport::Auto).await?;
    let gw = e
        .client
        .gateway(
            SolveRequest {
                session_id: Some(session_id.clone()),
                exporters: if e.print_llb.is_some() {
                    vec![]
                } else {
                    e.exporters
                },
                entitlements: if e.inputs.options.host_network {
                    vec!["network.host".to_string()]
                } else {
                    vec![]
                },
                // The exporters compare the result's platforms with these.
                frontend_attrs: BTreeMap::from([(
                    "platform".to_string(),
                    e.targets
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(","),
                )]),
                ..Default::default()
            },
            Some(e.tx),
        )
        .await?;
    let plan = plan_all(
        &gw,
        e.inputs,
        e.build_platform,
        e.targets,
        &session_id,
        e.label_platforms,
    )
    .await;
    let plan = match plan {
        Ok(p) => p,
        Err(err) => {
            let _ = gw.fail("kiln: planning failed").await;
            attached.close().await;
            return Err(err);
        }
    };
    if let Some(fmt) = e.print_llb {
        let _ = gw.fail("kiln: --print-llb").await;
        attached.close().await;
        return Ok(Outcome::Printed(fmt, plan));
    }
    let mut result = GatewayResult::default();
    let single = plan.platforms.len() == 1;
    for p in &plan.platforms {
        if let Ok(mut m) = e.commands.lock() {
            m.extend(super::report::exec_commands(p.definition.as_pb()));
        }
        let r = gw.solve(p.definition.as_pb().clone(), false).await?;
        let pid = p.target.to_string();
        let key = if single {
            kiln_proto::attrs::result::IMAGE_CONFIG.to_string()
        } else {
            format!("{}/{pid}", kiln_proto::attrs::result::IMAGE_CONFIG)
        };
        result.image_configs.insert(key, p.image_config.clone());
        result.refs.push((pid, r, to_pb(&p.target)));
    }
    let resp = gw.finish(result).await;
    attached.close().await;
    Ok(Outcome::Built(resp?, plan))
}

/// Resolves an image's config and digest through the daemon. Docker's
/// classic image store answers an image it has locally from the store,
/// without a digest; kiln pins every image, so it asks the registry then.
async fn resolve_pinnable(
    gw: &kiln_client::gateway::GatewayBuild,
    reference: &str,
    platform: &Platform,
    session_id: &str,
) -> Result<kiln_client::gateway::ResolvedImage, kiln_client::Error> {
    let first = gw
        .resolve_image_config(
            reference,
            Some(to_pb(platform)),
            ResolveMode::Default,
            Some(session_id),
        )
        .await?;
    if first.digest.is_some() {
        return Ok(first);
    }
    gw.resolve_image_config(
        reference,
        Some(to_pb(platform)),
        ResolveMode::Pull,
        Some(session_id),
    )
    .await
}

/// Everything planned for one build.
pub struct Plan {
    pub module: String,
    pub go_version: String,
    pub platforms: Vec<PlatformPlan>,
    pub notes: Vec<String>,
    pub has_outputs: bool,
    pub builder: (ImageRef, Option<String>),
    pub base: (ImageRef, Option<String>),
}

pub struct PlatformPlan {
    pub target: Platform,
    pub definition: kiln_llb::Definition,
    pub image_config: Vec<u8>,
}

fn to_pb(p: &Platform) -> kiln_proto::pb::Platform {
    kiln_proto::pb::Platform {
        os: p.os.clone(),
        architecture: p.architecture.clone(),
        variant: p.variant.clone().unwrap_or_default(),
        ..Default::default()
    }
}

/// The daemon's own platform: the first platform of its first worker.
async fn daemon_platform(client: &kiln_client::Client) -> anyhow::Result<Platform> {
    let workers = client.list_workers().await?;
    let first = workers
        .iter()
        .flat_map(|w| w.platforms.iter())
        .next()
        .context("the daemon reports no worker platforms")?;
    Ok(Platform::parse(first)
        .with_context(|| format!("the daemon's platform {first:?} is not a platform kiln knows"))?
        .normalize())
}

/// Resolves the Go version and images through the daemon, then plans each platform.
async fn plan_all(
    gw: &kiln_client::gateway::GatewayBuild,
    inputs: &Inputs,
    build_platform: &Platform,
    targets: &[Platform],
    session_id: &str,
    label_platforms: bool,
) -> Result<Plan, StepError> {
    let mut notes = Vec::new();
    // Go version (and the builder image that has it).
    let (go_version, builder_ref) = match &inputs.locked {
        Some(lock) => (
            lock.go.clone(),
            ImageRef::parse(&lock.builder.name)
                .map_err(|e| anyhow::anyhow!("kiln.lock builder {}: {e}", lock.builder.name))?,
        ),
        None => {
            inputs
                .resolve_go(gw, build_platform, session_id, &mut notes)
                .await?
        }
    };
    // Builder: config for the build platform, pinned by digest.
    // With a lock, resolve exactly the locked digests (a moved tag changes nothing).
    let locked_ref = |r: &ImageRef, d: Option<&str>| -> Result<String, StepError> {
        match d.filter(|d| !d.is_empty()) {
            Some(d) => {
                let d: Digest = d
                    .parse()
                    .map_err(|e| anyhow::anyhow!("kiln.lock: bad digest {d:?} for {r}: {e}"))?;
                Ok(r.with_digest(d).to_string())
            }
            None => Ok(r.to_string()),
        }
    };
    let builder_lookup = locked_ref(
        &builder_ref,
        inputs.locked.as_ref().map(|l| l.builder.digest.as_str()),
    )?;
    let base_lookup_digest = inputs.locked.as_ref().map(|l| l.base.digest.clone());
    let builder = resolve_pinnable(gw, &builder_lookup, build_platform, session_id)
        .await
        .map_err(|e| image_error("builder", &builder_ref, build_platform, e))?;
    let builder_pinned = pin(
        &builder_ref,
        builder.digest.as_deref(),
        inputs.locked.as_ref().map(|l| l.builder.digest.as_str()),
    )?;
    // Base: the index digest must be the same for every platform.
    let base_ref = inputs.base_image()?;
    let mut platforms = Vec::new();
    let mut base_digest: Option<String> = inputs.locked.as_ref().map(|l| l.base.digest.clone());
    let options = inputs.options.clone();
    for target in targets {
        let mut options = options.clone();
        if targets.len() > 1 || label_platforms {
            // Parallel platform builds: label every step with its platform.
            options.step_label = Some(target.to_string());
        }
        let base = resolve_pinnable(
            gw,
            &locked_ref(&base_ref, base_lookup_digest.as_deref())?,
            target,
            session_id,
        )
        .await
        .map_err(|e| image_error("base", &base_ref, target, e))?;
        if let (Some(locked), Some(got)) = (&base_digest, &base.digest) {
            if locked != got && inputs.locked.is_none() {
                return Err(anyhow::anyhow!(
                    "base image {base_ref} resolved to {got} for {target} but to {locked} for another platform; it changed during the build, try again"
                )
                .into());
            }
        }
        if base_digest.is_none() {
            base_digest = base.digest.clone();
        }
        let base_pinned = pin(&base_ref, base_digest.as_deref(), None)?;
        let input = RecipeInput {
            context_name: CONTEXT.to_string(),
            go_version: go_version.clone(),
            builder: ResolvedImage {
                reference: builder_pinned.clone(),
                config_json: builder.config.clone(),
            },
            base: ResolvedImage {
                reference: base_pinned,
                config_json: base.config.clone(),
            },
            build_platform: build_platform.clone(),
            target: target.clone(),
            options: options.clone(),
        };
        let planned = recipe::plan(&input).map_err(|e| {
            anyhow::Error::new(e).context(format!("cannot plan the build for {target}"))
        })?;
        // local.unique keyed on the module's absolute path: BuildKit merges
        // identical vertices of concurrent builds, so without it two builds
        // of different directories could read each other's files. It is
        // stable for one directory, so the graph stays deterministic.
        let definition = planned
            .final_state
            .marshal(
                &kiln_llb::Constraints::new(target.clone())
                    .local_unique_id(local_unique_id(&inputs.dir)),
            )
            .map_err(|e| anyhow::Error::new(e).context("cannot marshal the build graph"))?;
        platforms.push(PlatformPlan {
            target: target.clone(),
            definition,
            image_config: planned.image_config,
        });
    }
    Ok(Plan {
        module: inputs.options.module_name.clone(),
        go_version,
        platforms,
        notes,
        has_outputs: !inputs.outputs.is_empty(),
        builder: (builder_ref, builder.digest),
        base: (base_ref, base_digest),
    })
}

/// A stable id for a context directory on this machine.
fn local_unique_id(dir: &std::path::Path) -> String {
    use sha2::Digest as _;
    let host = std::fs::read_to_string("/etc/machine-id").unwrap_or_default();
    let h = sha2::Sha256::digest(format!("{}\n{}", host.trim(), dir.display()).as_bytes());
    format!("kiln-{}", &hex::encode(h)[..24])
}

/// `name@digest`; never pins with an empty digest.
fn pin(r: &ImageRef, digest: Option<&str>, locked: Option<&str>) -> Result<ImageRef, StepError> {
    if let (Some(l), Some(d)) = (locked, digest) {
        if l != d {
            return Err(anyhow::anyhow!(
                "--locked: {r} now resolves to {d}, but kiln.lock has {l}; run `kiln lock --update` to accept the new image"
            )
            .into());
        }
    }
    match locked.or(digest) {
        Some(d) if !d.is_empty() => {
            let d: Digest = d
                .parse()
                .map_err(|e| anyhow::anyhow!("{r}: the daemon returned a bad digest {d:?}: {e}"))?;
            Ok(r.with_digest(d))
        }
        _ => Ok(r.clone()),
    }
}

fn image_error(role: &str, r: &ImageRef, p: &Platform, e: kiln_client::Error) -> StepError {
    let msg = e.to_string();
    if msg.contains("no match for platform") {
        return anyhow::anyhow!("the {role} image {r} has no {p} variant; pick a base that supports {p} or drop it from --platform").into();
    }
    if super::probe::is_not_found(&e) {
        return anyhow::anyhow!("the {role} image {r} was not found ({msg})").into();
    }
    StepError::Daemon(e)
}

/// `kiln init`: writes a commented kiln.toml.
pub fn init(dir: &std::path::Path, force: bool) -> anyhow::Result<ExitCode> {
    let path = dir.join(kiln_build::config::FILE);
    if path.exists() && !force {
        anyhow::bail!(
            "{} already exists; pass --force to overwrite it",
            path.display()
        );
    }
    if !dir.join("go.mod").is_file() {
        anyhow::bail!(
            "{} has no go.mod: kiln init goes in a Go module's root",
            dir.display()
        );
    }
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        kiln_build::config::FILE,
        std::process::id()
    ));
    std::fs::write(&tmp, TEMPLATE).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args, Debug, Clone)]
#[command(
    after_help = "Examples:\n  kiln lock            # resolve and write kiln.lock\n  kiln lock --update   # re-resolve (new Go patch, new base digest)\n  kiln build --locked  # fail unless kiln.lock matches"
)]
pub struct LockArgs {
    #[command(flatten)]
    pub build: BuildArgs,
    /// Re-resolve and rewrite an existing kiln.lock.
    #[arg(long)]
    pub update: bool,
}

/// `kiln lock`: resolves what a build would use and writes kiln.lock.
pub async fn lock(global: &Global, args: &LockArgs) -> anyhow::Result<ExitCode> {
    let inputs = Inputs::gather(&args.build, false)?;
    if kiln_build::Lock::load(&inputs.dir)?.is_some() && !args.update {
        anyhow::bail!(
            "{} already exists; `kiln lock --update` re-resolves it",
            inputs.dir.join(kiln_build::lock::FILE).display()
        );
    }
    let (client, _) = super::connect(global).await?;
    let build_platform = daemon_platform(&client).await?;
    let targets = inputs.targets(&build_platform)?;
    let gw = client.gateway(SolveRequest::default(), None).await?;
    let plan = plan_all(&gw, &inputs, &build_platform, &targets, "", false).await;
    let _ = gw.fail("kiln lock: done").await;
    let plan = match plan {
        Ok(p) => p,
        Err(StepError::Daemon(e)) => return Err(e.into()),
        Err(StepError::Other(e)) => return Err(e),
    };
    // Per-platform digests of private images need the same credentials
    // the daemon used to resolve them.
    let registry = super::registry::client_for([&plan.builder.0, &plan.base.0], &[]).await?;
    let mut locked = Lock {
        go: plan.go_version.clone(),
        builder: kiln_build::LockedImage {
            name: plan.builder.0.to_string(),
            digest: plan.builder.1.clone().unwrap_or_default(),
            platforms: BTreeMap::new(),
        },
        base: kiln_build::LockedImage {
            name: plan.base.0.to_string(),
            digest: plan.base.1.clone().unwrap_or_default(),
            platforms: BTreeMap::new(),
        },
    };
    for (img, entry) in [
        (&plan.builder.0, &mut locked.builder),
        (&plan.base.0, &mut locked.base),
    ] {
        if entry.digest.is_empty() {
            anyhow::bail!("the daemon returned no digest for {img}; kiln cannot lock it");
        }
        match registry.resolve_platforms(img).await {
            Ok(list) => {
                for (p, d) in list {
                    entry.platforms.insert(p.to_string(), d.to_string());
                }
            }
            Err(e) => eprintln!("warning: per-platform digests of {img} not recorded: {e}"),
        }
    }
    locked.save(&inputs.dir)?;
    eprintln!(
        "wrote {}: Go {}, builder {}@{}, base {}@{}",
        inputs.dir.join(kiln_build::lock::FILE).display(),
        locked.go,
        locked.builder.name,
        locked.builder.digest,
        locked.base.name,
        locked.base.digest
    );
    Ok(ExitCode::SUCCESS)
}
