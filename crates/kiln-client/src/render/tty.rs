//! `--progress tty`: a live view redrawn in place at most ten times a second.

use std::io::Write;

use super::units::{now_nanos, secs};
use super::{Render, Sink};
use crate::steps::{Change, State, Step};

/// The terminal's size (columns, lines), asked before every frame.
pub type Size = Box<dyn Fn() -> (usize, usize) + Send>;

/// Log lines shown under a running step.
const TAIL_LINES: usize = 6;

/// `--progress tty`.
pub struct Tty {
    out: Sink,
    size: Size,
    color: bool,
    drawn: usize,
    dirty: bool,
    /// Steps already printed above the live area for good.
    settled: usize,
}

impl Tty {
    /// Draws on `out`, a terminal of `size`, in colour if `color`.
    #[must_use]
    pub fn new(out: Sink, size: Size, color: bool) -> Tty {
        Tty {
            out,
            size,
            color,
            drawn: 0,
            dirty: true,
            settled: 0,
        }
    }

    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }

    fn step_line(&self, s: &Step, now: i128, w: usize) -> String {
        let (tag, code) = if !s.error.is_empty() {
            ("ERROR ", "31")
        } else if s.cached {
            ("CACHED ", "34")
        } else if s.completed.is_some() {
            ("", "34")
        } else {
            ("", "0")
        };
        // No time for a cached step or one that has not started (buildx).
        let time = if s.cached || s.started.is_none() {
            String::new()
        } else {
            secs(s.elapsed(now))
        };
        let left = format!("=> {tag}{}", s.display_name());
        let room = w.saturating_sub(time.len() + 1);
        let left = truncate(&left, room);
        let pad = w.saturating_sub(left.chars().count() + time.len());
        self.paint(code, &format!("{left}{}{time}", " ".repeat(pad)))
    }

    fn draw(&mut self, state: &State, final_draw: bool) {
        let (w, h) = (self.size)();
        let (w, h) = (w.max(20), h.max(8));
        let now = now_nanos();
        let all = state.steps();
        let done = all.iter().filter(|s| s.is_done()).count();
        let total = all.len();
        // Only steps that have shown up, in the order they did.
        let steps = state.shown_steps();
        let total_secs = state.first_start.map_or(0.0, |f| {
            (if final_draw {
                state.last_completed.unwrap_or(now)
            } else {
                now
            } - f)
                .max(0) as f64
                / 1e9
        });
        let mut frame: Vec<u8> = Vec::new();
        let out = &mut frame;
        // Move back over the previous frame and clear it.
        if self.drawn > 0 {
            let _ = write!(out, "\x1b[{}A\x1b[J", self.drawn);
        }
        // Steps that finished before every running one scroll off for good.
        while self.settled < steps.len()
            && steps[self.settled].is_done()
            && !final_draw
            && steps.len() - self.settled > h.saturating_sub(4 + TAIL_LINES)
        {
            let _ = writeln!(out, "{}", self.step_line(steps[self.settled], now, w));
            self.settled += 1;
        }
        let mut lines = vec![self.paint(
            "1",
            &format!(
                "[+] Building {} ({done}/{total}){}",
                secs(total_secs),
                if final_draw { " FINISHED" } else { "" }
            ),
        )];
        for s in &steps[self.settled..] {
            lines.push(self.step_line(s, now, w));
            let running = s.started.is_some() && !s.is_done() && s.error.is_empty();
            if running && !final_draw {
                let skip = s.tail.len().saturating_sub(TAIL_LINES);
                for l in s.tail.iter().skip(skip) {
                    lines.push(self.paint("2", &truncate(&format!("=> => {l}"), w)));
                }
            }
        }
        for l in &lines {
            let _ = writeln!(out, "{l}");
        }
        // One write per frame: no half-drawn frames.
        let _ = self.out.write_all(&frame);
        let _ = self.out.flush();
        self.drawn = lines.len();
        self.dirty = false;
    }
}

fn truncate(s: &str, w: usize) -> String {
    if s.chars().count() <= w {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(w.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

impl Render for Tty {
    fn changes(&mut self, _state: &State, changes: &[Change]) {
        if !changes.is_empty() {
            self.dirty = true;
        }
    }

    fn tick(&mut self, state: &State) {
        // Redraw on change, and at least once a second for running timers.
        let running = state
            .steps()
            .iter()
            .any(|s| s.started.is_some() && !s.is_done());
        if self.dirty || running {
            self.draw(state, false);
        }
    }

    fn finish(&mut self, state: &State) {
        self.draw(state, true);
    }
}
