//! `kiln`: a daemon-less BuildKit client that builds Go modules into small,
//! reproducible images. This binary is thin: it parses arguments, calls the
//! library crates and renders their results.

#[macro_use]
mod output;
mod cli;
mod cmd;
mod progress;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    init_tracing(cli.global.debug);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let debug = cli.global.debug;
    let result = runtime.block_on(cmd::run(cli));
    // Blocking work still running (a cancelled export's writer notices
    // within a packet) gets a bounded time: Ctrl-C must end kiln promptly.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    // Connection helpers (`podman exec …`) end their sessions before kiln
    // exits (at most 3 s each, then they are killed).
    kiln_client::transport::wait_for_closing_helpers();
    match result {
        Ok(code) => code,
        Err(err) if output::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) if err.downcast_ref::<cmd::report::Reported>().is_some() => ExitCode::from(
            err.downcast_ref::<cmd::report::Reported>()
                .map_or(1, |r| r.code),
        ),
        Err(err) => {
            output::print_error(&err, debug);
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(debug: bool) {
    let default = if debug {
        "kiln=debug,kiln_client=debug,kiln_session=debug,info"
    } else {
        "warn"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("KILN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
