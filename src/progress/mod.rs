//! Rendering BuildKit progress: `tty` (live view), `plain` (numbered steps,
//! for CI logs), `rawjson` (one JSON object per status batch, for tools) and
//! `quiet`. The library emits typed [`StatusEvent`]s; this module only draws.

mod plain;
pub use kiln_client::steps as state;
mod tty;

use std::io::{IsTerminal, Write};
use std::time::Duration;

use clap::ValueEnum;
use kiln_client::progress::StatusEvent;
use tokio::sync::mpsc;

use state::Change;
pub use state::State;

/// `--progress`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// tty on a terminal, plain otherwise (and in CI).
    Auto,
    /// A live view redrawn in place.
    Tty,
    /// Numbered steps and their logs, line by line.
    Plain,
    /// One JSON object per status event on stderr.
    Rawjson,
    /// Nothing but the result.
    Quiet,
}

/// The narrowest terminal the live view draws on.
const MIN_TTY_WIDTH: usize = 40;

impl Mode {
    /// Resolves `auto` against the environment: a terminal on stderr, not
    /// `TERM=dumb`, not `CI`, wide enough.
    pub fn resolve(self) -> Mode {
        match self {
            Mode::Auto => {
                let term_ok = std::env::var("TERM").map_or(true, |t| t != "dumb");
                let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
                if std::io::stderr().is_terminal()
                    && term_ok
                    && !ci
                    && tty::width() >= MIN_TTY_WIDTH
                {
                    Mode::Tty
                } else {
                    Mode::Plain
                }
            }
            Mode::Tty
                if std::env::var("TERM").is_ok_and(|t| t == "dumb")
                    || tty::width() < MIN_TTY_WIDTH =>
            {
                Mode::Plain
            }
            m => m,
        }
    }
}

/// Something that draws progress.
trait Render: Send {
    fn changes(&mut self, state: &State, changes: &[Change]);
    fn event(&mut self, _ev: &StatusEvent) {}
    fn tick(&mut self, _state: &State) {}
    fn finish(&mut self, state: &State);
}

struct Quiet;
impl Render for Quiet {
    fn changes(&mut self, _: &State, _: &[Change]) {}
    fn finish(&mut self, _: &State) {}
}

struct RawJson;
impl Render for RawJson {
    fn changes(&mut self, _: &State, _: &[Change]) {}
    fn event(&mut self, ev: &StatusEvent) {
        if let Ok(line) = serde_json::to_string(ev) {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "{line}");
        }
    }
    fn finish(&mut self, _: &State) {}
}

/// Consumes status events until the sender side closes, drawing them, and
/// returns what was learned (for error reports).
pub async fn drive(mut rx: mpsc::UnboundedReceiver<StatusEvent>, mode: Mode) -> State {
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let mut render: Box<dyn Render> = match mode.resolve() {
        Mode::Tty => Box::new(tty::Tty::new(color)),
        Mode::Plain | Mode::Auto => Box::new(plain::Plain::default()),
        Mode::Rawjson => Box::new(RawJson),
        Mode::Quiet => Box::new(Quiet),
    };
    let mut state = State::default();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            ev = rx.recv() => match ev {
                Some(ev) => {
                    render.event(&ev);
                    let changes = state.apply(&ev);
                    render.changes(&state, &changes);
                }
                None => break,
            },
            _ = tick.tick() => render.tick(&state),
        }
    }
    let changes = state.flush();
    render.changes(&state, &changes);
    render.finish(&state);
    state
}

/// Formats seconds like buildx: `0.3s`, `12.4s`.
pub fn secs(s: f64) -> String {
    format!("{s:.1}s")
}

/// Nanoseconds since the epoch, now.
pub fn now_nanos() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}
