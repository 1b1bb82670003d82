//! `--progress plain`: numbered steps, each log line prefixed with its step
//! and the seconds since the step started.

use std::io::Write;

use super::state::{Change, State};
use super::{secs, Render};

#[derive(Default)]
pub struct Plain {
    /// The step whose lines were printed last, to separate blocks with a blank line.
    last: Option<usize>,
}

impl Plain {
    fn header(&mut self, out: &mut impl Write, state: &State, i: usize) {
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
        let mut out = std::io::stderr().lock();
        for c in changes {
            match c {
                Change::Started(i) => self.header(&mut out, state, *i),
                Change::Log(i, line) => {
                    self.header(&mut out, state, *i);
                    let s = &state.steps()[*i];
                    let t = s
                        .started
                        .map_or(0.0, |st| (super::now_nanos() - st).max(0) as f64 / 1e9);
                    let _ = writeln!(out, "#{} {t:.3} {line}", s.number);
                }
                Change::Done(i) => {
                    self.header(&mut out, state, *i);
                    let s = &state.steps()[*i];
                    let _ = writeln!(out, "#{} DONE {}", s.number, secs(s.elapsed(0)));
                }
                Change::Cached(i) => {
                    self.header(&mut out, state, *i);
                    let _ = writeln!(out, "#{} CACHED", state.steps()[*i].number);
                }
                Change::Failed(i) => {
                    self.header(&mut out, state, *i);
                    let s = &state.steps()[*i];
                    let _ = writeln!(out, "#{} ERROR: {}", s.number, s.error);
                }
                Change::Warning(i, w) => {
                    self.header(&mut out, state, *i);
                    let _ = writeln!(out, "#{} WARNING: {w}", state.steps()[*i].number);
                }
                Change::Transfer {
                    step,
                    id,
                    current,
                    total,
                    done: true,
                } => {
                    self.header(&mut out, state, *step);
                    let n = state.steps()[*step].number;
                    if *total > 0 {
                        let _ = writeln!(
                            out,
                            "#{n} {id} {} / {} done",
                            crate::output::human_size(*current),
                            crate::output::human_size(*total)
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
        let mut out = std::io::stderr().lock();
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
