//! Solving a marshaled LLB definition as `buildctl build` does: the bytes a
//! Go program's `llb.WriteTo` wrote, forwarded untouched, with a session and
//! outputs fitted to the daemon.

use std::io::Read;
use std::path::PathBuf;

use kiln_client::kiln_proto::pb;
use kiln_client::kiln_proto::prost::Message;
use kiln_client::kiln_proto::wire::DefinitionBytes;
use kiln_client::progress::StatusEvent;
use kiln_client::{Client, SessionTransport, SolveRequest};
use kiln_llb::Definition;
use tokio::sync::mpsc;

use crate::error::BuildError;
use crate::outputs::{discard, fit, run_after};
use crate::session::SessionSpec;
use crate::spec::OutputSpec;

/// A step needs this grant (`--allow`) before it may run.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Entitlement {
    /// A step on the host's network (`network.host`).
    NetworkHost,
    /// A privileged step (`security.insecure`).
    SecurityInsecure,
}

impl Entitlement {
    /// The name BuildKit uses.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Entitlement::NetworkHost => "network.host",
            Entitlement::SecurityInsecure => "security.insecure",
        }
    }

    /// Parses `network.host` or `security.insecure`.
    #[must_use]
    pub fn parse(s: &str) -> Option<Entitlement> {
        [Entitlement::NetworkHost, Entitlement::SecurityInsecure]
            .into_iter()
            .find(|e| e.name() == s)
    }
}

/// A definition as read from a file or stdin: its exact bytes and their decoding.
#[derive(Clone, Debug)]
pub struct DefinitionFile {
    /// The bytes exactly as read.
    pub bytes: Vec<u8>,
    pub definition: Definition,
}

/// Reads a definition from `file` (`-` for stdin) and checks that it
/// decodes, op by op.
///
/// # Errors
/// [`BuildError::File`] when it cannot be read, [`BuildError::Invalid`]
/// when it is not a `pb.Definition` or is empty.
pub fn read_definition(file: &str) -> Result<DefinitionFile, BuildError> {
    let (bytes, name) = if file == "-" {
        let mut b = Vec::new();
        std::io::stdin()
            .read_to_end(&mut b)
            .map_err(|e| BuildError::file("read the Definition from", "stdin", e))?;
        (b, "stdin".to_string())
    } else {
        let p = PathBuf::from(file);
        let b = std::fs::read(&p).map_err(|e| BuildError::file("read", &p, e))?;
        (b, p.display().to_string())
    };
    decode_definition(bytes, &name)
}

/// Decodes the bytes of a definition as [`read_definition`] does (`name`
/// says where they came from, in errors): a `pb.Definition` whose every op
/// is a `pb.Op`, and not empty.
///
/// # Errors
/// [`BuildError::Invalid`] when it is not a `pb.Definition` or is empty.
pub fn decode_definition(bytes: Vec<u8>, name: &str) -> Result<DefinitionFile, BuildError> {
    let name = name.to_string();
    let def = pb::Definition::decode(bytes.as_slice()).map_err(|e| {
        BuildError::invalid(
            name.clone(),
            format!("this is not a marshaled LLB Definition (protobuf pb.Definition, as Go's llb.Definition.WriteTo writes): {e}"),
        )
    })?;
    if def.def.is_empty() {
        return Err(BuildError::invalid(
            name,
            "an empty LLB Definition: there is nothing to solve",
        ));
    }
    for (i, op) in def.def.iter().enumerate() {
        pb::Op::decode(op.as_slice()).map_err(|e| {
            BuildError::invalid(
                name.clone(),
                format!("op #{i} of the Definition is not a pb.Op: {e}"),
            )
        })?;
    }
    Ok(DefinitionFile {
        bytes,
        definition: Definition::from_pb(def),
    })
}

/// The entitlements the definition's steps need, each with the first step
/// (its arguments) that needs it.
#[must_use]
pub fn required_entitlements(def: &Definition) -> Vec<(Entitlement, String)> {
    let mut out: Vec<(Entitlement, String)> = Vec::new();
    for op in def.ops().unwrap_or_default() {
        let Some(pb::op::Op::Exec(exec)) = op.op.op else {
            continue;
        };
        let step = exec
            .meta
            .as_ref()
            .map(|m| m.args.join(" "))
            .unwrap_or_default();
        let mut need = |ent: Entitlement| {
            if !out.iter().any(|(e, _)| *e == ent) {
                out.push((ent, step.clone()));
            }
        };
        if exec.network == pb::NetMode::Host as i32 {
            need(Entitlement::NetworkHost);
        }
        if exec.security == pb::SecurityMode::Insecure as i32 {
            need(Entitlement::SecurityInsecure);
        }
    }
    out
}

/// Fails when a step needs an entitlement not in `allow`.
///
/// # Errors
/// [`BuildError::Invalid`] naming the step and the `--allow` to pass.
pub fn check_entitlements(def: &Definition, allow: &[Entitlement]) -> Result<(), BuildError> {
    for (ent, step) in required_entitlements(def) {
        if !allow.contains(&ent) {
            let what = match ent {
                Entitlement::NetworkHost => "runs on the host network",
                Entitlement::SecurityInsecure => "runs privileged (security mode insecure)",
            };
            let step: String = step.chars().take(80).collect();
            return Err(BuildError::invalid(
                "the Definition",
                format!(
                    "it has a step that {what} ({step:?}): pass --allow {} to grant it (the daemon must permit it too)",
                    ent.name()
                ),
            ));
        }
    }
    Ok(())
}

/// A solve of a definition file.
#[derive(Clone, Debug)]
pub struct SolveJob {
    pub definition: DefinitionFile,
    pub session: SessionSpec,
    pub outputs: Vec<OutputSpec>,
    pub allow: Vec<Entitlement>,
    /// How long the daemon may stay silent before the solve is cancelled
    /// (zero: forever).
    pub stall_timeout: std::time::Duration,
}

/// What a solve produced.
#[derive(Clone, Debug, Default)]
pub struct Solved {
    /// The image digest an exporter (or an Engine push) reported.
    pub digest: Option<String>,
    /// Things the user should know.
    pub notes: Vec<String>,
}

impl SolveJob {
    /// Checks everything that needs no daemon: entitlements, where files
    /// go, and the session.
    ///
    /// # Errors
    /// As [`check_entitlements`] and [`SessionSpec::build`].
    pub fn check(&self) -> Result<(), BuildError> {
        check_entitlements(&self.definition.definition, &self.allow)?;
        crate::outputs::check_destinations(&self.outputs)?;
        self.session.build(&[])?;
        Ok(())
    }

    /// Solves on `client`, streaming progress into `events`.
    ///
    /// # Errors
    /// [`BuildError::Daemon`] when the daemon fails the build (use
    /// [`kiln_client::solve_failure`] on it for the failing step), others
    /// for outputs the daemon cannot produce or kiln cannot write.
    pub async fn run(
        &self,
        client: &Client,
        events: mpsc::UnboundedSender<StatusEvent>,
    ) -> Result<Solved, BuildError> {
        self.check()?;
        let daemon = client.daemon_info().await?;
        let fitted = fit(&daemon, &client.address().to_string(), &self.outputs, 1)?;
        crate::outputs::preflight(&fitted.after).await?;
        let session = self.session.build(&fitted.outputs)?;
        let req = SolveRequest {
            // The file's bytes, untouched: the daemon gets exactly what the
            // writer (e.g. Go's llb.WriteTo) wrote. If kiln ever changes a
            // read definition, it must send the changed one encoded by
            // kiln_proto::wire, as Go would.
            definition: Some(DefinitionBytes::Raw(self.definition.bytes.clone().into())),
            session_id: Some(session.id().to_string()),
            exporters: fitted.outputs.iter().map(|o| o.exporter.clone()).collect(),
            entitlements: self.allow.iter().map(|e| e.name().to_string()).collect(),
            ..Default::default()
        };
        let liveness = session.liveness();
        let outputs = session.outputs();
        let exports = session.clone();
        let attached = client.attach(session, SessionTransport::Auto).await?;
        // Kiln's own steps after the solve (gzip, loads) report here too.
        let kiln_events = events.clone();
        let r = crate::stall::watched(
            async {
                client
                    .solve(req, Some(events))
                    .await
                    .map_err(BuildError::from)
            },
            &liveness,
            self.stall_timeout,
            &client.address().to_string(),
        )
        .await;
        // The exports' last packets may trail the daemon's answer.
        let settled = match &r {
            Ok(_) => outputs.settle().await,
            Err(_) => Ok(()),
        };
        attached.close().await;
        settled?;
        let engine = client.engine();
        if let (Ok(_), Some(e)) = (&r, exports.take_export_failure()) {
            crate::outputs::discard_files(&fitted.after);
            return Err(BuildError::Export(Box::new(e)));
        }
        if r.is_err() {
            crate::outputs::discard_files(&fitted.after);
        }
        let resp = match (r, &engine) {
            // Files the daemon sent go into place only now the build
            // succeeded (a cancelled export ends its stream too).
            (Ok(r), _) => {
                outputs.commit().await?;
                r
            }
            (Err(e), Some(engine)) => {
                discard(engine, &fitted.after).await;
                return Err(e);
            }
            (Err(e), None) => return Err(e),
        };
        let mut digest = resp
            .exporter_response
            .get(kiln_client::kiln_proto::attrs::response::IMAGE_DIGEST)
            .cloned();
        if let Some(engine) = &engine {
            // An Engine push (classic image store) reports the registry's digest.
            match run_after(engine, &fitted.after).await {
                Ok(Some(d)) => digest = Some(d),
                Ok(None) => {}
                Err(e) => {
                    crate::outputs::discard_files(&fitted.after);
                    return Err(e);
                }
            }
        }
        let mut notes = fitted.notes;
        notes.extend(crate::outputs::finish(&fitted.after, &kiln_events).await?);
        Ok(Solved { digest, notes })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use kiln_llb::{Constraints, ExecOptions, NetMode, Platform, SecurityMode};

    fn def(state: &kiln_llb::State) -> Definition {
        state
            .marshal(&Constraints::new(Platform::linux_amd64()))
            .unwrap()
    }

    #[test]
    fn entitlements_are_found_and_checked() {
        let img = kiln_llb::image("alpine").unwrap();
        let host = img
            .run(ExecOptions::shell("wget http://127.0.0.1/").network(NetMode::Host))
            .root();
        let priv_ = host
            .run(ExecOptions::shell("mount -t tmpfs x /mnt").security(SecurityMode::Insecure))
            .root();
        let d = def(&priv_);
        let need: Vec<Entitlement> = required_entitlements(&d)
            .into_iter()
            .map(|(e, _)| e)
            .collect();
        assert_eq!(
            need,
            [Entitlement::NetworkHost, Entitlement::SecurityInsecure]
        );
        let e = check_entitlements(&d, &[Entitlement::NetworkHost])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--allow security.insecure") && e.contains("mount -t tmpfs"),
            "{e}"
        );
        check_entitlements(
            &d,
            &[Entitlement::NetworkHost, Entitlement::SecurityInsecure],
        )
        .unwrap();
        assert!(required_entitlements(&def(&img)).is_empty());
    }

    #[test]
    fn definitions_that_are_not_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk");
        std::fs::write(&junk, b"\xff\xff\xff not protobuf").unwrap();
        let e = read_definition(junk.to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("is not a marshaled LLB Definition")
                || e.contains("not a marshaled LLB Definition"),
            "{e}"
        );
        let empty = dir.path().join("empty");
        std::fs::write(&empty, b"").unwrap();
        let e = read_definition(empty.to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("empty LLB Definition"), "{e}");
        let ok = dir.path().join("ok");
        let d = def(&kiln_llb::image("alpine").unwrap());
        std::fs::write(&ok, d.to_bytes()).unwrap();
        let f = read_definition(ok.to_str().unwrap()).unwrap();
        assert_eq!(f.bytes, d.to_bytes(), "the bytes as read");
    }
}
