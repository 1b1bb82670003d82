//! The failure report: which step failed, its command, its exit code and
//! its last log lines, then one summary line.

use std::collections::HashMap;
use std::fmt;

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
    hint: Option<String>,
    debug: bool,
) {
    let mut out = std::io::stderr().lock();
    kiln_client::render::report::failure(&mut out, state, commands, err, hint, debug);
}
