//! `kiln llb`: print a marshaled Definition as JSON or Graphviz DOT, or
//! write it again as Go would encode it.

use std::process::ExitCode;

use clap::{Args, ValueEnum};

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum LlbFormat {
    /// Each op decoded, with its digest, inputs and metadata.
    Json,
    /// A Graphviz graph (`kiln llb --format dot | dot -Tsvg > graph.svg`).
    Dot,
    /// The binary pb.Definition, encoded as Go encodes it (what `buildctl
    /// build` reads on stdin); refused on a terminal.
    Pb,
}

/// Prints `def` in `format` on stdout.
///
/// # Errors
/// Binary output to a terminal, or a failed write.
pub fn print(def: &kiln_build::llb::Definition, format: LlbFormat) -> anyhow::Result<()> {
    match format {
        LlbFormat::Json => outln!(
            "{}",
            serde_json::to_string_pretty(&kiln_build::llb::dump::to_json(def))?
        ),
        LlbFormat::Dot => outln!("{}", kiln_build::llb::dump::to_dot(def)),
        LlbFormat::Pb => {
            use std::io::{IsTerminal, Write};
            let mut out = std::io::stdout().lock();
            if out.is_terminal() {
                anyhow::bail!("--format pb writes binary protobuf: redirect it to a file or pipe it (e.g. `> build.llb`, `| buildctl build`)");
            }
            out.write_all(&def.to_bytes())?;
            out.flush()?;
        }
    }
    Ok(())
}

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  kiln llb -f build.llb\n  kiln llb -f build.llb --format dot > graph.dot   # render: dot -Tpng graph.dot > graph.png"
)]
pub struct LlbArgs {
    /// The Definition (`-` for stdin).
    #[arg(short = 'f', long = "file", default_value = "-", value_name = "FILE")]
    pub file: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = LlbFormat::Json)]
    pub format: LlbFormat,
}

pub fn run(args: &LlbArgs) -> anyhow::Result<ExitCode> {
    let def = kiln_build::solve::read_definition(&args.file)?.definition;
    print(&def, args.format)?;
    Ok(ExitCode::SUCCESS)
}
