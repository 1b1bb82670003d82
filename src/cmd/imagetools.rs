//! `kiln imagetools`: join manifests already in a registry into one index,
//! and show what a reference holds (the library: `kiln_build::imagetools`).

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use kiln_build::imagetools::{self, CopyEvent, CreateRequest};
use kiln_image::ImageRef;

use crate::cli::Format;

#[derive(Args, Debug)]
#[command(after_help = "Examples:
  kiln imagetools create -t 127.0.0.1:5000/svc:1 127.0.0.1:5000/svc:amd64 127.0.0.1:5000/svc:arm64
  kiln imagetools create --dry-run -t 127.0.0.1:5000/svc:1 127.0.0.1:5000/svc:amd64
  kiln imagetools create --append -t 127.0.0.1:5000/svc:1 127.0.0.1:5000/svc:arm64
  kiln imagetools create -t 127.0.0.1:5000/mirror/svc:1 127.0.0.1:5000/svc:1  # blobs mounted
  kiln imagetools inspect 127.0.0.1:5000/svc:1
  kiln imagetools inspect 127.0.0.1:5000/svc:1 --format json
  kiln imagetools inspect 127.0.0.1:5000/svc:1 --raw

Sources may be tags or digests (REPO@sha256:…, e.g. from a build's --metadata-file
after -o type=image,name=REPO,push-by-digest=true,push=true).")]
pub struct ImagetoolsArgs {
    #[command(subcommand)]
    pub command: ImagetoolsCommand,
}

#[derive(Subcommand, Debug)]
pub enum ImagetoolsCommand {
    /// Join manifests and indexes (tags or digests) into one index and push it; blobs are mounted, not pulled.
    Create(CreateArgs),
    /// Show a manifest or index: each platform's digest and size, and the attestations.
    Inspect(InspectArgs),
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// The manifests or indexes to join (REPO:TAG or REPO@DIGEST); an index brings all its entries, attestations included.
    #[arg(value_name = "SOURCE")]
    pub sources: Vec<String>,
    /// Where to push the index (repeatable).
    #[arg(short = 't', long = "tag", value_name = "REF")]
    pub tags: Vec<String>,
    /// Keep the entries of the index already under the first --tag.
    #[arg(long)]
    pub append: bool,
    /// Print the index as it would be pushed; push nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// The image (REPO:TAG or REPO@DIGEST).
    #[arg(value_name = "REF")]
    pub reference: String,
    /// Print the manifest or index exactly as the registry has it.
    #[arg(long, conflicts_with = "format")]
    pub raw: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

fn parse_ref(flag: &str, s: &str) -> anyhow::Result<ImageRef> {
    ImageRef::parse(s).with_context(|| format!("{flag} {s:?} is not an image reference"))
}

pub async fn run(args: &ImagetoolsArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        ImagetoolsCommand::Create(a) => create(a).await,
        ImagetoolsCommand::Inspect(a) => inspect(a).await,
    }
}

async fn create(args: &CreateArgs) -> anyhow::Result<ExitCode> {
    let sources = args
        .sources
        .iter()
        .map(|s| parse_ref("source", s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let tags = args
        .tags
        .iter()
        .map(|s| parse_ref("--tag", s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let request = CreateRequest {
        sources,
        tags,
        append: args.append,
    };
    let client =
        kiln_build::registry::client_for(request.tags.iter().chain(&request.sources), &[]).await?;
    let plan = imagetools::plan_create(&client, &request).await?;
    if args.dry_run {
        std::io::stdout()
            .lock()
            .write_all(&plan.index)
            .map_err(crate::output::StdoutError)?;
        return Ok(ExitCode::SUCCESS);
    }
    let digest = imagetools::push_index(&client, &plan, &request.tags, |event| match event {
        CopyEvent::Manifest {
            digest,
            from,
            to,
            mounted,
            copied,
        } => eprintln!(
            "copied {digest} from {from} to {to} ({mounted} blobs mounted, {copied} copied)"
        ),
        CopyEvent::Tagged { reference, .. } => eprintln!("pushed {reference}"),
    })
    .await?;
    outln!("{digest}");
    Ok(ExitCode::SUCCESS)
}

async fn inspect(args: &InspectArgs) -> anyhow::Result<ExitCode> {
    let image = parse_ref("REF", &args.reference)?;
    let client = kiln_build::registry::client_for([&image], &[]).await?;
    let (inspection, raw) = imagetools::inspect(&client, &image).await?;
    if args.raw {
        std::io::stdout()
            .lock()
            .write_all(&raw)
            .map_err(crate::output::StdoutError)?;
        return Ok(ExitCode::SUCCESS);
    }
    match args.format {
        Format::Json => outln!("{}", serde_json::to_string_pretty(&inspection)?),
        Format::Text => {
            outln!("Name:      {}", inspection.name);
            outln!("MediaType: {}", inspection.media_type);
            outln!("Digest:    {}", inspection.digest);
            if let Some(p) = &inspection.platform {
                outln!("Platform:  {p}");
            }
            if !inspection.manifests.is_empty() {
                outln!();
                outln!("Manifests:");
            }
            for m in &inspection.manifests {
                outln!("  Name:        {}", m.name);
                outln!("  MediaType:   {}", m.media_type);
                outln!("  Size:        {}", m.size);
                match &m.attestation_for {
                    Some(subject) => {
                        outln!("  Platform:    {}", m.platform);
                        outln!("  Attestation: for {subject}");
                        for t in &m.predicate_types {
                            outln!("    {t}");
                        }
                    }
                    None => outln!("  Platform:    {}", m.platform),
                }
                outln!();
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
