//! The failure report: which step failed, its command, its exit code and
//! its last log lines, then one summary line.

use std::collections::HashMap;
use std::fmt;
use std::io::Write;

use crate::progress::State;

/// An error already reported to the user; `main` only sets the exit code.
#[derive(Debug)]
pub struct Reported {
    pub code: u8,
}

impl fmt::Display for Reported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "reported (exit {})", self.code)
    }
}

impl std::error::Error for Reported {}

/// Prints the report for a failed solve to stderr.
pub fn solve_failed(
    state: &State,
    commands: &HashMap<String, Vec<String>>,
    err: &kiln_client::Error,
    debug: bool,
) {
    let status = err.status();
    let failure = status.map(kiln_client::solve_failure).unwrap_or_default();
    let mut out = std::io::stderr().lock();
    let _ = writeln!(out);
    if let Some(step) = state.failed_step(failure.vertex.as_deref()) {
        let code = failure
            .exit_code
            .map(|c| format!(" with exit code {c}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "error: step #{} {} failed{code}",
            step.number,
            step.display_name()
        );
        if let Some(cmd) = commands
            .get(&step.digest)
            .or_else(|| commands.get(&step.name))
        {
            let _ = writeln!(out, "  command: {}", shell_words(cmd));
        }
        if !step.tail.is_empty() {
            let shown = step.tail.len();
            let _ = writeln!(
                out,
                "  last {shown} line{} of its output{}:",
                if shown == 1 { "" } else { "s" },
                if step.lines > shown {
                    format!(" (of {})", step.lines)
                } else {
                    String::new()
                }
            );
            for l in &step.tail {
                let _ = writeln!(out, "  │ {l}");
            }
        }
    }
    let summary = match status {
        Some(s) => kiln_client::error::describe_status(s),
        None => err.to_string(),
    };
    let _ = writeln!(out, "error: build failed: {}", one_line(&summary));
    if debug {
        if let Some(s) = status {
            let _ = writeln!(out, "  grpc status: {:?}", s.code());
            let _ = writeln!(out, "  details: {failure:?}");
        }
    } else if let Some(h) = err.hint().or_else(|| registry_hint(&summary)) {
        let _ = writeln!(out, "hint: {h}");
    }
}

/// A hint for registry failures the daemon reports (push/pull with bad or
/// missing credentials).
fn registry_hint(message: &str) -> Option<String> {
    if message.contains("401 Unauthorized") || message.contains("403 Forbidden") {
        let config = std::env::var("DOCKER_CONFIG").map_or_else(
            |_| "~/.docker/config.json".to_string(),
            |d| format!("{d}/config.json"),
        );
        return Some(format!(
            "the registry refused the credentials kiln offered from {config}: log in again (`docker login REGISTRY`) or fix that entry"
        ));
    }
    None
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if a.is_empty()
                || a.chars()
                    .any(|c| c.is_whitespace() || "'\"$`\\|&;<>()*?".contains(c))
            {
                format!("'{}'", a.replace('\'', "'\\''"))
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
