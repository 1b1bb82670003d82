//! `--progress plain`: numbered steps, each log line prefixed with its step
//! and the seconds since the step started.

use std::io::Write;

use super::units::{human_size, now_nanos, secs};
use super::{Render, Sink};
use crate::steps::{Change, State};

/// `--progress plain`.
pub struct Plain {
    out: Sink,
    /// The step whose lines were printed last, to separate blocks with a blank line.
    last: Option<usize>,
}

impl Plain {
    /// Writes to `out`.
    #[must_use]
    pub fn new(out: Sink) -> Plain {
        Plain { out, last: None }
    }

    fn header(&mut self, state: &State, i: usize) {
        let out = &mut self.out;
        if self.last != Some(i) {
            let s = &state.steps()[i];
            if self.last.is_some() {
                let _ = writeln!(out);
            }
            let _ = writeln!(out, "#{} {}", s.number, s.display_name());
            self.last = Some(i);
        }
    }
}

impl Render for Plain {
    fn changes(&mut self, state: &State, changes: &[Change]) {
        for c in changes {
            match c {
                Change::Started(i) => self.header(state, *i),
                Change::Log(i, line) => {
                    self.header(state, *i);
                    let out = &mut self.out;
                    let s = &state.steps()[*i];
                    let t = s
                        .started
                        .map_or(0.0, |st| (now_nanos() - st).max(0) as f64 / 1e9);
                    let _ = writeln!(out, "#{} {t:.3} {line}", s.number);
                }
                Change::Done(i) => {
                    self.header(state, *i);
                    let out = &mut self.out;
                    let s = &state.steps()[*i];
                    let _ = writeln!(out, "#{} DONE {}", s.number, secs(s.elapsed(0)));
                }
                Change::Cached(i) => {
                    self.header(state, *i);
                    let out = &mut self.out;
                    let _ = writeln!(out, "#{} CACHED", state.steps()[*i].number);
                }
                Change::Failed(i) => {
                    self.header(state, *i);
                    let out = &mut self.out;
                    let s = &state.steps()[*i];
                    let _ = writeln!(out, "#{} ERROR: {}", s.number, s.error);
                }
                Change::Warning(i, w) => {
                    self.header(state, *i);
                    let out = &mut self.out;
                    let _ = writeln!(out, "#{} WARNING: {w}", state.steps()[*i].number);
                }
                Change::Transfer {
                    step,
                    id,
                    current,
                    total,
                    done: true,
                } => {
                    self.header(state, *step);
                    let out = &mut self.out;
                    let n = state.steps()[*step].number;
                    if *total > 0 {
                        let _ = writeln!(
                            out,
                            "#{n} {id} {} / {} done",
                            human_size(*current),
                            human_size(*total)
                        );
                    } else {
                        let _ = writeln!(out, "#{n} {id} done");
                    }
                }
                Change::Transfer { .. } => {}
            }
        }
    }

    fn finish(&mut self, state: &State) {
        let out = &mut self.out;
        for s in state.steps() {
            if s.clipped {
                let _ = writeln!(
                    out,
                    "note: the daemon clipped the log of #{} {} (its log limit); kiln shows all it received",
                    s.number,
                    s.display_name()
                );
            }
        }
    }
}
