//! Session and output flags shared by `kiln solve` and `kiln build`; parsed
//! by kiln-build into typed specs.

use std::path::PathBuf;

use clap::Args;
use kiln_build::session::{parse_named_dir, SessionSpec};
use kiln_build::spec::{parse_secret, parse_ssh, OutputSpec};
use kiln_build::SyncDirOptions;

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

impl SessionArgs {
    /// The session these flags ask for, plus `locals` a command adds.
    pub fn spec(
        &self,
        locals: Vec<(String, PathBuf, SyncDirOptions)>,
    ) -> anyhow::Result<SessionSpec> {
        let mut spec = SessionSpec {
            locals,
            ..Default::default()
        };
        for l in &self.locals {
            let (name, dir) = parse_named_dir("--local", l)?;
            spec.locals.push((name, dir, SyncDirOptions::default()));
        }
        for s in &self.secrets {
            spec.secrets.push(parse_secret(s)?);
        }
        for s in &self.ssh {
            spec.ssh.push(parse_ssh(s)?);
        }
        for l in &self.oci_layouts {
            spec.oci_layouts.push(parse_named_dir("--oci-layout", l)?);
        }
        Ok(spec)
    }
}

#[derive(Args, Debug, Clone, Default)]
pub struct OutputArgs {
    /// Where the result goes (repeatable): type=tar,dest=FILE|- ;
    /// type=local,dest=DIR ; type=oci,dest=FILE[,name=REF] ;
    /// type=docker,dest=FILE,name=REF ; type=image,name=REF[,push=true] ;
    /// type=registry,name=REF ; type=podman[,address=unix://SOCK] ;
    /// type=containerd[,address=SOCK][,namespace=NS] (loaded by kiln, every
    /// platform; the name from -t or name=). A dest ending .tar.gz/.tgz is
    /// gzip. Shorthands: `-o DIR` (local), `-o -` (tar to stdout). A value in
    /// double quotes may hold commas.
    #[arg(
        short = 'o',
        long = "output",
        value_name = "SPEC",
        help_heading = "Outputs"
    )]
    pub outputs: Vec<String>,
}

impl OutputArgs {
    /// The outputs, parsed.
    pub fn parse(&self) -> anyhow::Result<Vec<OutputSpec>> {
        Ok(self
            .outputs
            .iter()
            .map(|o| o.parse())
            .collect::<Result<Vec<OutputSpec>, _>>()?)
    }
}
