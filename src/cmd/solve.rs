//! `kiln solve`: solve a marshaled LLB Definition, as `buildctl build` does.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use kiln_client::SolveRequest;
use kiln_proto::pb;
use kiln_proto::wire::DefinitionBytes;
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
    /// Grants an entitlement the Definition's steps need (repeatable): a
    /// step on the host network needs `network.host`, a privileged step
    /// `security.insecure`. The daemon must permit it too.
    #[arg(long = "allow", value_name = "ENTITLEMENT", value_parser = [ENT_NETWORK_HOST, ENT_SECURITY_INSECURE])]
    pub allow: Vec<String>,
    #[command(flatten)]
    pub session: super::session_opts::SessionArgs,
    #[command(flatten)]
    pub output: super::session_opts::OutputArgs,
}

const ENT_NETWORK_HOST: &str = "network.host";
const ENT_SECURITY_INSECURE: &str = "security.insecure";

/// The entitlements the Definition's execs need, each with the first step
/// (its arguments) that needs it.
fn required_entitlements(def: &pb::Definition) -> Vec<(&'static str, String)> {
    let mut out: Vec<(&'static str, String)> = Vec::new();
    for bytes in &def.def {
        let Ok(op) = pb::Op::decode(bytes.as_slice()) else {
            continue;
        };
        let Some(pb::op::Op::Exec(exec)) = op.op else {
            continue;
        };
        let step = exec
            .meta
            .as_ref()
            .map(|m| m.args.join(" "))
            .unwrap_or_default();
        let mut need = |ent: &'static str| {
            if !out.iter().any(|(e, _)| *e == ent) {
                out.push((ent, step.clone()));
            }
        };
        if exec.network == pb::NetMode::Host as i32 {
            need(ENT_NETWORK_HOST);
        }
        if exec.security == pb::SecurityMode::Insecure as i32 {
            need(ENT_SECURITY_INSECURE);
        }
    }
    out
}

/// Fails before anything is sent when a step needs an entitlement the user
/// did not grant with `--allow`.
fn check_entitlements(def: &pb::Definition, allow: &[String]) -> anyhow::Result<()> {
    for (ent, step) in required_entitlements(def) {
        if !allow.iter().any(|a| a == ent) {
            let what = if ent == ENT_NETWORK_HOST {
                "runs on the host network"
            } else {
                "runs privileged (security mode insecure)"
            };
            let step: String = step.chars().take(80).collect();
            anyhow::bail!(
                "the Definition has a step that {what} ({step:?}): pass --allow {ent} to grant it (the daemon must permit it too)"
            );
        }
    }
    Ok(())
}

/// A Definition as read from a file or stdin: its bytes and their decoding.
pub struct DefinitionFile {
    /// The bytes exactly as read.
    pub bytes: Vec<u8>,
    pub definition: pb::Definition,
}

/// Reads and decodes a Definition from a file or stdin.
pub fn read_definition(file: &str) -> anyhow::Result<pb::Definition> {
    Ok(read_definition_file(file)?.definition)
}

/// Reads a Definition from a file or stdin and checks that it decodes.
pub fn read_definition_file(file: &str) -> anyhow::Result<DefinitionFile> {
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
    Ok(DefinitionFile {
        bytes,
        definition: def,
    })
}

pub async fn run(global: &Global, args: &SolveArgs) -> anyhow::Result<ExitCode> {
    let outputs = args
        .output
        .outputs
        .iter()
        .map(|o| super::session_opts::parse_output(o))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let DefinitionFile {
        bytes,
        definition: def,
    } = read_definition_file(&args.file)?;
    check_entitlements(&def, &args.allow)?;
    // Built once before connecting, so bad flags fail without a daemon.
    let mut session = super::session_opts::build_session(&args.session, &outputs, &[])?;
    let (client, _) = super::connect(global).await?;
    let daemon = client.daemon_info().await?;
    let fitted = super::outputs::fit(&daemon, &client.address().to_string(), outputs.clone(), 1)?;
    if fitted.outputs != outputs {
        session = super::session_opts::build_session(&args.session, &fitted.outputs, &[])?;
    }
    let outputs = fitted.outputs.clone();
    let commands = std::sync::Arc::new(std::sync::Mutex::new(super::report::exec_commands(&def)));
    let req = SolveRequest {
        // The file's bytes, untouched: the daemon gets exactly what the
        // writer (e.g. Go's llb.WriteTo) wrote. Decoding and encoding again
        // could change them (fields the generated types lack, map entries).
        // If kiln ever changes a read definition (e.g. adds constraints), it
        // must send the changed one encoded by kiln_proto::wire, as Go would.
        definition: Some(DefinitionBytes::Raw(bytes.into())),
        session_id: Some(session.id().to_string()),
        exporters: outputs.iter().map(|o| o.exporter.clone()).collect(),
        entitlements: args.allow.clone(),
        ..Default::default()
    };
    let solved = super::run::with_progress(args.progress, commands, global.debug, |tx| {
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
    .await;
    let engine = client.engine();
    let (resp, _state) = match (solved, &engine) {
        (Ok(r), _) => r,
        (Err(e), Some(engine)) => {
            super::outputs::discard(engine, &fitted.after).await;
            return Err(e);
        }
        (Err(e), None) => return Err(e),
    };
    let mut digest = resp
        .exporter_response
        .get(kiln_proto::attrs::response::IMAGE_DIGEST)
        .cloned();
    if let Some(engine) = &engine {
        // An Engine push (classic image store) reports the registry's digest.
        if let Some(d) = super::outputs::run_after(engine, &fitted.after).await? {
            digest = Some(d);
        }
    }
    if args.progress != Mode::Quiet {
        for n in &fitted.notes {
            eprintln!("note: {n}");
        }
    }
    if let Some(d) = digest {
        outln!("{d}");
    }
    Ok(ExitCode::SUCCESS)
}
