//! The failure report of a build: which step failed, its command, its exit
//! code and its last log lines, then one summary line.

use std::collections::HashMap;
use std::io::Write;

use crate::steps::State;

/// Writes the report for a failed solve: the failing step, its command,
/// exit code and last log lines, then one summary line and the hint.
pub fn failure(
    out: &mut dyn Write,
    state: &State,
    commands: &HashMap<String, Vec<String>>,
    err: &crate::Error,
    hint: Option<String>,
    debug: bool,
) {
    let status = err.status();
    let failure = status.map(crate::solve_failure).unwrap_or_default();
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
        Some(s) => crate::error::describe_status(s),
        None => err.to_string(),
    };
    let _ = writeln!(out, "error: build failed: {}", one_line(&summary));
    if debug {
        if let Some(s) = status {
            let _ = writeln!(out, "  grpc status: {:?}", s.code());
            let _ = writeln!(out, "  details: {failure:?}");
        }
    } else if let Some(h) = hint.or_else(|| err.hint()) {
        let _ = writeln!(out, "hint: {h}");
    }
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
