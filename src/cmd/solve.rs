//! `kiln solve`: solve a marshaled LLB Definition, as `buildctl build` does.

use std::process::ExitCode;

use clap::Args;
use kiln_build::solve::{read_definition, Entitlement, SolveJob};

use crate::cli::Global;
use crate::progress::Mode;

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  kiln build --print-llb=pb > build.llb     # or any program's llb.Definition.WriteTo\n  kiln solve -f build.llb --local context=. --progress plain\n  kiln solve --local context=. < build.llb\n\nThe input is a protobuf pb.Definition, the format Go's llb.Definition.WriteTo writes and `buildctl build` reads on stdin (e.g. `go run ./mkllb | kiln solve`)."
)]
pub struct SolveArgs {
    /// The Definition to solve (`-` for stdin).
    #[arg(short = 'f', long = "file", default_value = "-", value_name = "FILE")]
    pub file: String,
    /// Progress output.
    #[arg(long, value_enum, default_value_t = Mode::Auto, env = "KILN_PROGRESS")]
    pub progress: Mode,
    /// Grants an entitlement the Definition's steps need (repeatable): a
    /// step on the host network needs `network.host`, a privileged step
    /// `security.insecure`. The daemon must permit it too.
    #[arg(long = "allow", value_name = "ENTITLEMENT", value_parser = parse_entitlement)]
    pub allow: Vec<Entitlement>,
    #[command(flatten)]
    pub session: super::session_opts::SessionArgs,
    #[command(flatten)]
    pub output: super::session_opts::OutputArgs,
}

fn parse_entitlement(s: &str) -> Result<Entitlement, String> {
    Entitlement::parse(s).ok_or_else(|| format!("{s:?} is not network.host or security.insecure"))
}

pub async fn run(global: &Global, args: &SolveArgs) -> anyhow::Result<ExitCode> {
    let job = SolveJob {
        outputs: args.output.parse()?,
        definition: read_definition(&args.file)?,
        session: args.session.spec(Vec::new())?,
        allow: args.allow.clone(),
        stall_timeout: global
            .stall_timeout()
            .unwrap_or(kiln_build::stall::DEFAULT_STALL_TIMEOUT),
    };
    // Bad flags fail before any daemon is asked.
    job.check()?;
    let (client, _) = super::connect(global).await?;
    let commands = std::sync::Arc::new(std::sync::Mutex::new(
        job.definition.definition.exec_commands(),
    ));
    let (solved, _state) = super::run::with_progress(args.progress, commands, global.debug, |tx| {
        let (client, job) = (client.clone(), &job);
        async move { job.run(&client, tx).await }
    })
    .await?;
    if args.progress != Mode::Quiet {
        for n in &solved.notes {
            eprintln!("note: {n}");
        }
    }
    if let Some(d) = solved.digest {
        outln!("{d}");
    }
    Ok(ExitCode::SUCCESS)
}
