//! Rendering helpers shared by the commands: errors, sizes, durations.

/// `println!` that returns an error (e.g. a closed pipe) instead of panicking.
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($t)*).map_err($crate::output::StdoutError)?;
    }};
}

/// Writing to stdout failed (only this, not a socket's broken pipe, means
/// "the reader went away").
#[derive(Debug)]
pub struct StdoutError(pub std::io::Error);

impl std::fmt::Display for StdoutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot write to stdout: {}", self.0)
    }
}

impl std::error::Error for StdoutError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// Whether the error is stdout closing under us (`kiln info | head`).
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<StdoutError>()
            .is_some_and(|e| e.0.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Prints an error as `error: …` plus a `hint: …` line when kiln knows one.
pub fn print_error(err: &anyhow::Error, debug: bool) {
    eprintln!("error: {}", one_line(&chain_text(err)));
    if debug {
        for cause in err.chain().skip(1) {
            eprintln!("  caused by: {cause}");
        }
        if let Some(status) = client_error(err).and_then(kiln_client::Error::status) {
            eprintln!("  grpc status: {:?} {}", status.code(), status.message());
        }
    }
    let hint = match err.downcast_ref::<kiln_build::BuildError>() {
        Some(b) => b.hint(),
        None => client_error(err).and_then(kiln_client::Error::hint),
    };
    if let Some(hint) = hint {
        eprintln!("hint: {hint}");
    }
}

/// The daemon connection's error in `err`, directly or inside kiln-build's.
fn client_error(err: &anyhow::Error) -> Option<&kiln_client::Error> {
    err.downcast_ref::<kiln_client::Error>().or_else(|| {
        err.downcast_ref::<kiln_build::BuildError>()
            .and_then(kiln_build::BuildError::daemon)
    })
}

/// The error and those causes whose text it does not already include
/// (typed errors often print their source themselves).
fn chain_text(err: &anyhow::Error) -> String {
    let mut msg = err.to_string();
    for cause in err.chain().skip(1) {
        let t = cause.to_string();
        if !msg.contains(&t) {
            msg.push_str(": ");
            msg.push_str(&t);
        }
    }
    msg
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
