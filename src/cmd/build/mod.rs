//! `kiln build`, `kiln lock`, `kiln init`: flags into kiln-build's types,
//! its results rendered. The build itself is `kiln_build::build`.

mod args;

use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use kiln_build::build::{lock as lock_build, Build, BuildFlags, FanOut, Request};
use kiln_build::metadata::Metadata;
use kiln_build::spec::OutputSpec;

pub use args::BuildArgs;

use crate::cli::Global;
use crate::cmd::run::with_progress;
use crate::progress::Mode;

pub async fn run(global: &Global, args: &BuildArgs) -> anyhow::Result<ExitCode> {
    let mut flags = args.flags()?;
    flags.stall_timeout = global.stall_timeout();
    let request = Request::gather(&flags, true)?;
    for (flag, file) in [
        ("--metadata-file", &args.metadata_file),
        ("--iidfile", &args.iidfile),
    ] {
        if let Some(path) = file {
            kiln_build::outputs::check_file_destination(
                &format!("{flag} {}", path.display()),
                path,
            )?;
        }
    }
    if args.iidfile.is_some()
        && args.print_llb.is_none()
        && request
            .outputs
            .iter()
            .all(|o| matches!(o, OutputSpec::Tar { .. } | OutputSpec::Local { .. }))
    {
        anyhow::bail!("--iidfile: this build exports no image; add -t NAME, --push or -o type=image|oci|docker,…");
    }
    // rawjson keeps stderr to JSON lines: the summary is one object at the end.
    let quiet = matches!(args.progress, Mode::Quiet | Mode::Rawjson);
    warn(&request.warnings);
    let commands = Arc::new(Mutex::new(Default::default()));
    if !request.builders.is_empty() {
        if args.print_llb.is_none() {
            let fan = FanOut::prepare(request, &super::connect_options(global)).await?;
            for w in fan.warnings() {
                eprintln!("{w}");
            }
            let cmds = commands.clone();
            let (joined, _state) = with_progress(args.progress, commands, global.debug, |tx| {
                let fan = &fan;
                async move { fan.run(tx, cmds).await }
            })
            .await?;
            if args.progress == Mode::Rawjson {
                summary_json(&serde_json::json!({
                    "built": joined.summary,
                    "platforms": joined.targets.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "wrote": joined.wrote,
                    "digest": joined.digest.as_ref().map(ToString::to_string),
                    "notes": joined.notes,
                }));
            }
            if !quiet {
                for n in &joined.notes {
                    eprintln!("note: {n}");
                }
                for s in &joined.summary {
                    eprintln!("built {s}");
                }
                for l in &joined.loaded {
                    eprintln!("{l}");
                }
                eprintln!(
                    "joined {} into one index: {}",
                    join(&joined.targets),
                    joined.wrote.join(", ")
                );
            }
            write_metadata(args, &Metadata::of_fanout(&joined, joined.plan.as_ref()))?;
            if let Some(d) = joined.digest {
                outln!("{d}");
            }
            return Ok(ExitCode::SUCCESS);
        }
        eprintln!("note: --print-llb plans on the default builder (--addr); --builder is not used");
    }
    let (client, _) = super::connect(global).await?;
    let build = Build::prepare(request, client).await?;
    if let Some(format) = args.print_llb {
        let cmds = commands.clone();
        let (plan, _state) = with_progress(args.progress, commands, global.debug, |tx| {
            let build = &build;
            async move { build.plan(tx, cmds).await }
        })
        .await?;
        let Some(first) = plan.platforms.first() else {
            anyhow::bail!("no platform to print");
        };
        super::llb::print(&first.definition, format)?;
        return Ok(ExitCode::SUCCESS);
    }
    let cmds = commands.clone();
    let (built, _state) = with_progress(args.progress, commands, global.debug, |tx| {
        let build = &build;
        async move { build.run(tx, cmds).await }
    })
    .await?;
    if args.progress == Mode::Rawjson {
        summary_json(&serde_json::json!({
            "module": built.plan.module,
            "go_version": built.plan.go_version,
            "platforms": built.plan.platforms.iter().map(|p| p.target.to_string()).collect::<Vec<_>>(),
            "digest": built.digest,
            "notes": built.notes,
            "loaded": built.loaded,
        }));
    }
    if !quiet {
        for n in &built.notes {
            eprintln!("note: {n}");
        }
        for l in &built.loaded {
            eprintln!("{l}");
        }
        eprintln!(
            "built {} with Go {} for {}",
            built.plan.module,
            built.plan.go_version,
            join(
                &built
                    .plan
                    .platforms
                    .iter()
                    .map(|p| p.target.clone())
                    .collect::<Vec<_>>()
            )
        );
    }
    if !built.has_outputs && !quiet {
        eprintln!("note: no -o/-t given: the image was built but not exported (use -t NAME to store it in the daemon's image store, --push to push it, or -o type=oci,dest=FILE)");
    }
    write_metadata(args, &Metadata::of_build(&built))?;
    if let Some(d) = built.digest {
        outln!("{d}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `--metadata-file` and `--iidfile`, each written whole or not at all.
fn write_metadata(args: &BuildArgs, m: &Metadata) -> anyhow::Result<()> {
    if let Some(path) = &args.metadata_file {
        m.write(path)?;
    }
    if let Some(path) = &args.iidfile {
        m.write_iid(path)?;
    }
    Ok(())
}

fn join(platforms: &[kiln_image::Platform]) -> String {
    platforms
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The one JSON summary object `--progress rawjson` ends with, on stderr.
fn summary_json(v: &serde_json::Value) {
    eprintln!("{}", serde_json::json!({ "summary": v }));
}

fn warn(warnings: &[String]) {
    for w in warnings {
        eprintln!("warning: {w}");
    }
}

/// `kiln init`: writes a commented kiln.toml.
pub fn init(dir: &std::path::Path, force: bool) -> anyhow::Result<ExitCode> {
    let path = kiln_build::build::init(dir, force)?;
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
    let request = Request::gather(&args.build.flags()?, false)?;
    warn(&request.warnings);
    let (client, _) = super::connect(global).await?;
    let locked = lock_build(&request, &client, args.update).await?;
    warn(&locked.warnings);
    let l = &locked.lock;
    eprintln!(
        "wrote {}: Go {}, builder {}@{}, base {}@{}",
        locked.path.display(),
        l.go,
        l.builder.name,
        l.builder.digest,
        l.base.name,
        l.base.digest
    );
    Ok(ExitCode::SUCCESS)
}

impl BuildArgs {
    /// The flags as kiln-build takes them.
    pub fn flags(&self) -> anyhow::Result<BuildFlags> {
        Ok(BuildFlags {
            dir: self.dir.clone(),
            platforms: self.platforms.clone(),
            go: self.go.clone(),
            go_source: self.go_source.map(Into::into),
            builder_image: self.builder_image.clone(),
            distro: self.distro.clone(),
            base_image: self.base_image.clone(),
            mains: self.mains.clone(),
            cgo: self.cgo,
            ldflags: self.ldflags.clone(),
            go_tags: self.go_tags.clone(),
            apt: self.apt.clone(),
            goprivate: self.goprivate.clone(),
            ssh: self.ssh.clone(),
            git_ssh_hosts: self.git_ssh_hosts.clone(),
            known_hosts: self.known_hosts.clone(),
            host_network: self.network.as_deref().map(|n| n == "host"),
            goenv: self.goenv,
            netrc: self
                .netrc
                .as_ref()
                .map(|n| (!n.is_empty()).then(|| std::path::PathBuf::from(n))),
            proxy_from_env: self.proxy_from_env,
            ca_bundle: self.ca_bundle.clone(),
            cmd: self.cmd.clone(),
            user: self.user.clone(),
            labels: self.labels.clone(),
            source_date_epoch: self.source_date_epoch,
            no_cache: self.no_cache,
            tags: self.image_tags.clone(),
            push: self.push,
            builders: self.builders.clone(),
            outputs: self.output.parse()?,
            cache_from: self.cache_from.clone(),
            cache_to: self.cache_to.clone(),
            go_cache_from: self.go_cache_from.clone(),
            go_cache_to: self.go_cache_to.clone(),
            attest: kiln_build::spec::AttestFlags {
                provenance: self.provenance.clone(),
                sbom: self.sbom.clone(),
                attest: self.attest.clone(),
            },
            locked: self.locked,
            stall_timeout: None,
        })
    }
}
