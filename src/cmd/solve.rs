//! `kiln solve`: solve a marshaled LLB Definition, as `buildctl build` does.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use kiln_client::SolveRequest;
use kiln_proto::pb;
use prost::Message;

use crate::cli::Global;
use crate::progress::Mode;

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  kiln solve -f build.llb --progress plain\n  go run ./mkllb | kiln solve\n\nThe input is a protobuf pb.Definition, the format Go's llb.Definition.WriteTo writes and `buildctl build` reads on stdin."
)]
pub struct SolveArgs {
    /// The Definition to solve (`-` for stdin).
    #[arg(short = 'f', long = "file", default_value = "-", value_name = "FILE")]
    pub file: String,
    /// Progress output.
    #[arg(long, value_enum, default_value_t = Mode::Auto, env = "KILN_PROGRESS")]
    pub progress: Mode,
    #[command(flatten)]
    pub session: super::session_opts::SessionArgs,
    #[command(flatten)]
    pub output: super::session_opts::OutputArgs,
}

/// Reads and decodes a Definition from a file or stdin.
pub fn read_definition(file: &str) -> anyhow::Result<pb::Definition> {
    let (bytes, name) = if file == "-" {
        let mut b = Vec::new();
        std::io::stdin()
            .read_to_end(&mut b)
            .context("cannot read the Definition from stdin")?;
        (b, "stdin".to_string())
    } else {
        let p = PathBuf::from(file);
        let b = std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()))?;
        (b, p.display().to_string())
    };
    let def = pb::Definition::decode(bytes.as_slice()).map_err(|e| {
        anyhow::anyhow!(
            "{name} is not a marshaled LLB Definition (protobuf pb.Definition, as Go's llb.Definition.WriteTo writes): {e}"
        )
    })?;
    if def.def.is_empty() {
        anyhow::bail!("{name} holds an empty LLB Definition: there is nothing to solve");
    }
    for (i, op) in def.def.iter().enumerate() {
        pb::Op::decode(op.as_slice()).map_err(|e| {
            anyhow::anyhow!("{name}: op #{i} of the Definition is not a pb.Op: {e}")
        })?;
    }
    Ok(def)
}

pub async fn run(global: &Global, args: &SolveArgs) -> anyhow::Result<ExitCode> {
    let outputs = args
        .output
        .outputs
        .iter()
        .map(|o| super::session_opts::parse_output(o))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let def = read_definition(&args.file)?;
    let session = super::session_opts::build_session(&args.session, &outputs, &[])?;
    let (client, _) = super::connect(global).await?;
    let commands = std::sync::Arc::new(std::sync::Mutex::new(super::report::exec_commands(&def)));
    let req = SolveRequest {
        definition: Some(def),
        session_id: Some(session.id().to_string()),
        exporters: outputs.iter().map(|o| o.exporter.clone()).collect(),
        ..Default::default()
    };
    let (resp, _state) = super::run::with_progress(args.progress, commands, global.debug, |tx| {
        let client = client.clone();
        async move {
            let attached = client
                .attach(session, kiln_client::SessionTransport::Auto)
                .await?;
            let r = client.solve(req, Some(tx)).await;
            attached.close().await;
            r.map_err(super::run::StepError::from)
        }
    })
    .await?;
    if let Some(d) = resp
        .exporter_response
        .get(kiln_proto::attrs::response::IMAGE_DIGEST)
    {
        outln!("{d}");
    }
    Ok(ExitCode::SUCCESS)
}
