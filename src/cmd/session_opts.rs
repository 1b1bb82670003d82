//! Session-related flags shared by `kiln solve` and `kiln build`: local
//! dirs, secrets, ssh agents and outputs.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use kiln_client::ExporterSpec;
use kiln_proto::attrs::exporter as ex;
use kiln_session::{
    DockerAuth, ExportTarget, SecretSpec, SecretStore, Session, SshAgents, SshSpec, SyncDirOptions,
};

#[derive(Args, Debug, Clone, Default)]
pub struct SessionArgs {
    /// A local directory the build reads as `local://NAME` (repeatable).
    #[arg(long = "local", value_name = "NAME=DIR")]
    pub locals: Vec<String>,
    /// A secret: id=ID[,src=FILE | ,env=VAR] (repeatable). Without src/env:
    /// the variable ID if set, else the file ID.
    #[arg(long = "secret", value_name = "SPEC")]
    pub secrets: Vec<String>,
    /// An ssh agent to forward: default (= $SSH_AUTH_SOCK), ID=SOCKET, or
    /// ID=KEYFILE[,KEYFILE] (repeatable).
    #[arg(long = "ssh", value_name = "SPEC")]
    pub ssh: Vec<String>,
    /// An OCI image layout directory the build reads as `oci-layout://`
    /// sources with `oci.store=ID` (repeatable).
    #[arg(long = "oci-layout", value_name = "ID=DIR")]
    pub oci_layouts: Vec<String>,
}

#[derive(Args, Debug, Clone, Default)]
pub struct OutputArgs {
    /// Where the result goes (repeatable): type=tar,dest=FILE|- ;
    /// type=local,dest=DIR ; type=oci,dest=FILE[,name=REF] ;
    /// type=docker,dest=FILE,name=REF ; type=image,name=REF[,push=true].
    /// Shorthands: `-o DIR` (local), `-o -` (tar to stdout).
    #[arg(
        short = 'o',
        long = "output",
        value_name = "SPEC",
        help_heading = "Outputs"
    )]
    pub outputs: Vec<String>,
}

/// One parsed `-o` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    pub exporter: ExporterSpec,
    /// Where the session writes it, for client-side exporters.
    pub target: Option<Target>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    File(String),
    Dir(PathBuf),
}

/// Parses `-o` values.
pub fn parse_output(spec: &str) -> anyhow::Result<Output> {
    let spec = spec.trim();
    if spec == "-" {
        return parse_output("type=tar,dest=-");
    }
    if !spec.contains('=') {
        return parse_output(&format!("type=local,dest={spec}"));
    }
    let mut fields = BTreeMap::new();
    for part in spec.split(',') {
        let (k, v) = part.split_once('=').with_context(|| {
            format!("output {spec:?}: {part:?} is not KEY=VALUE (e.g. type=tar,dest=out.tar)")
        })?;
        fields.insert(k.trim().to_string(), v.trim().to_string());
    }
    let kind = fields.remove("type").with_context(|| {
        format!("output {spec:?} has no type= (tar, local, oci, docker, image)")
    })?;
    let dest = fields.remove("dest");
    let need_dest = |what: &str| -> anyhow::Result<String> {
        match &dest {
            Some(d) if !d.is_empty() => Ok(d.clone()),
            _ => bail!("output {spec:?}: type={kind} needs dest={what}"),
        }
    };
    let target = match kind.as_str() {
        ex::TYPE_TAR | ex::TYPE_OCI | ex::TYPE_DOCKER => {
            Some(Target::File(need_dest("FILE or -")?))
        }
        ex::TYPE_LOCAL => {
            let d = need_dest("DIR")?;
            if d == "-" {
                bail!("output {spec:?}: a local export needs a directory, not stdout; use type=tar,dest=- for a stream");
            }
            Some(Target::Dir(PathBuf::from(d)))
        }
        ex::TYPE_IMAGE => {
            if dest.is_some() {
                bail!("output {spec:?}: type=image has no dest; it goes to the daemon's image store or, with push=true, to the registry named in name=");
            }
            if !fields.contains_key(ex::NAME) {
                bail!("output {spec:?}: type=image needs name=REF");
            }
            None
        }
        other => {
            bail!("output {spec:?}: unknown type {other:?}; use tar, local, oci, docker or image")
        }
    };
    if kind == ex::TYPE_DOCKER && !fields.contains_key(ex::NAME) {
        bail!("output {spec:?}: type=docker needs name=REF (docker load tags the image with it)");
    }
    Ok(Output {
        exporter: ExporterSpec {
            kind,
            attrs: fields,
        },
        target,
    })
}

/// Builds the session for these flags and outputs.
pub fn build_session(
    args: &SessionArgs,
    outputs: &[Output],
    extra_locals: &[(String, PathBuf, SyncDirOptions)],
) -> anyhow::Result<Session> {
    let mut b = Session::builder().shared_key(shared_key(args, extra_locals));
    for l in &args.locals {
        let (name, dir) = l
            .split_once('=')
            .with_context(|| format!("--local {l:?} is not NAME=DIR"))?;
        let dir = PathBuf::from(dir);
        if !dir.is_dir() {
            bail!("--local {name}={}: not a directory", dir.display());
        }
        b = b.sync_dir(name, dir, SyncDirOptions::default());
    }
    for (name, dir, opts) in extra_locals {
        b = b.sync_dir(name.clone(), dir.clone(), opts.clone());
    }
    if !args.secrets.is_empty() {
        let mut store = SecretStore::new();
        for s in &args.secrets {
            let spec: SecretSpec = s.parse().with_context(|| format!("--secret {s:?}"))?;
            store
                .add_spec(spec)
                .with_context(|| format!("--secret {s:?}"))?;
        }
        b = b.secrets(store);
    }
    if !args.ssh.is_empty() {
        let mut agents = SshAgents::new();
        for s in &args.ssh {
            let spec: SshSpec = s.parse().with_context(|| format!("--ssh {s:?}"))?;
            agents.add(spec).with_context(|| format!("--ssh {s:?}"))?;
        }
        b = b.ssh(agents);
    }
    for l in &args.oci_layouts {
        let (id, dir) = l
            .split_once('=')
            .with_context(|| format!("--oci-layout {l:?} is not ID=DIR"))?;
        let dir = PathBuf::from(dir);
        if !dir.is_dir() {
            bail!("--oci-layout {id}={}: not a directory", dir.display());
        }
        b = b.oci_layout(id, dir);
    }
    b = b.auth(DockerAuth::from_env());
    for (i, o) in outputs.iter().enumerate() {
        let index = u32::try_from(i).context("too many outputs")?;
        match &o.target {
            Some(Target::File(f)) => b = b.export(index, ExportTarget::from_dest(f)),
            Some(Target::Dir(d)) => b = b.export(index, ExportTarget::directory(d)),
            None => {}
        }
    }
    b.build().context("cannot set up the build session")
}

/// The daemon keeps one copy of a local dir per (name, hint, shared key):
/// the key is derived from the directories' absolute paths, so rebuilds of
/// the same dir send only changes while builds of different dirs never
/// share (and race on) one copy.
fn shared_key(args: &SessionArgs, extra: &[(String, PathBuf, SyncDirOptions)]) -> String {
    use sha2::Digest as _;
    let mut dirs: Vec<String> = args
        .locals
        .iter()
        .filter_map(|l| l.split_once('='))
        .map(|(n, d)| {
            let abs = std::fs::canonicalize(d)
                .map_or_else(|_| d.to_string(), |p| p.display().to_string());
            format!("{n}={abs}")
        })
        .chain(extra.iter().map(|(n, d, _)| format!("{n}={}", d.display())))
        .collect();
    dirs.sort();
    let h = sha2::Sha256::digest(dirs.join("\n").as_bytes());
    format!("kiln-{}", &hex::encode(h)[..24])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_outputs() {
        let o = parse_output("type=tar,dest=out.tar").unwrap();
        assert_eq!(o.exporter.kind, "tar");
        assert_eq!(o.target, Some(Target::File("out.tar".into())));
        assert_eq!(
            parse_output("-").unwrap().target,
            Some(Target::File("-".into()))
        );
        assert_eq!(
            parse_output("outdir").unwrap().target,
            Some(Target::Dir("outdir".into()))
        );
        let o = parse_output("type=image,name=127.0.0.1:5000/x:y,push=true").unwrap();
        assert_eq!(o.target, None);
        assert_eq!(
            o.exporter.attrs.get("push").map(String::as_str),
            Some("true")
        );
        let o = parse_output("type=oci,dest=o.tar,name=x").unwrap();
        assert_eq!(o.exporter.attrs.get("name").map(String::as_str), Some("x"));
    }

    #[test]
    fn rejects_bad_outputs_with_reasons() {
        for (spec, want) in [
            ("type=tar", "needs dest"),
            ("type=zip,dest=x", "unknown type"),
            ("dest=x", "no type="),
            ("type=image", "needs name"),
            ("type=local,dest=-", "needs a directory"),
            ("type=docker,dest=x.tar", "needs name"),
            ("type=tar,dest", "not KEY=VALUE"),
        ] {
            let e = parse_output(spec).unwrap_err().to_string();
            assert!(e.contains(want), "{spec}: {e}");
        }
    }
}
