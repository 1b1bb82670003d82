//! One module per subcommand.

pub mod build;
mod cache;
pub mod go_version;
pub mod imagetools;
mod info;
pub mod llb;
pub mod report;
pub mod run;
pub mod session_opts;
pub mod solve;

use std::process::ExitCode;

use kiln_client::{resolve_address, Address, AddressSource, Client, TlsOptions};

use crate::cli::{Cli, Command, Global};

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Info(args) => info::run(&cli.global, &args).await,
        Command::Du(args) => cache::du(&cli.global, &args).await,
        Command::Prune(args) => cache::prune(&cli.global, &args).await,
        Command::Solve(args) => solve::run(&cli.global, &args).await,
        Command::Llb(args) => llb::run(&args),
        Command::Build(args) => build::run(&cli.global, &args).await,
        Command::Init { dir, force } => build::init(&dir, force),
        Command::Lock(args) => build::lock(&cli.global, &args).await,
        Command::GoVersion(args) => go_version::run(&cli.global, &args).await,
        Command::Imagetools(args) => imagetools::run(&args).await,
        Command::Completion { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            // Generated into memory: clap_complete panics on a closed stdout.
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut cmd, "kiln", &mut buf);
            use std::io::Write as _;
            std::io::stdout()
                .lock()
                .write_all(&buf)
                .map_err(crate::output::StdoutError)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Resolves the address and connects.
pub async fn connect(global: &Global) -> Result<(Client, AddressSource), kiln_client::Error> {
    let (address, source): (Address, AddressSource) =
        resolve_address(global.addr.as_deref()).await?;
    let tls = connect_options(global).tls;
    if let Some(w) = address.plaintext_warning(tls.is_set()) {
        eprintln!("{w}");
    }
    let client = Client::connect(address, &tls).await?;
    Ok((client, source))
}

/// The daemon address and TLS options the global flags give.
pub fn connect_options(global: &Global) -> kiln_build::build::Connect {
    kiln_build::build::Connect {
        addr: global.addr.clone(),
        tls: TlsOptions {
            ca_cert: global.tlscacert.clone(),
            cert: global.tlscert.clone(),
            key: global.tlskey.clone(),
            server_name: global.tlsservername.clone(),
        },
    }
}
