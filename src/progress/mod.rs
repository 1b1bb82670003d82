//! Rendering BuildKit progress: `tty` (live view), `plain` (numbered steps,
//! for CI logs), `rawjson` (one JSON object per status batch, for tools) and
//! `quiet`. The library emits typed [`StatusEvent`]s; this module only draws.

pub use kiln_client::steps as state;

use std::io::IsTerminal;

use clap::ValueEnum;
use kiln_client::progress::StatusEvent;
use kiln_client::render;
use tokio::sync::mpsc;

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
                if std::io::stderr().is_terminal() && term_ok && !ci && width() >= MIN_TTY_WIDTH {
                    Mode::Tty
                } else {
                    Mode::Plain
                }
            }
            Mode::Tty
                if std::env::var("TERM").is_ok_and(|t| t == "dumb") || width() < MIN_TTY_WIDTH =>
            {
                Mode::Plain
            }
            m => m,
        }
    }
}

/// Consumes status events until the sender side closes, drawing them as
/// `mode` says on stderr, and returns what was learned (for error reports).
pub async fn drive(rx: mpsc::UnboundedReceiver<StatusEvent>, mode: Mode) -> State {
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let err = || -> render::Sink { Box::new(std::io::stderr()) };
    let r: Box<dyn render::Render> = match mode.resolve() {
        Mode::Tty => Box::new(render::Tty::new(
            err(),
            Box::new(|| (width(), height())),
            color,
        )),
        Mode::Plain | Mode::Auto => Box::new(render::Plain::new(err())),
        Mode::Rawjson => Box::new(render::RawJson::new(err())),
        Mode::Quiet => Box::new(render::Quiet),
    };
    render::drive(rx, r).await
}

/// The terminal's width (COLUMNS overrides), 80 if unknown.
pub fn width() -> usize {
    if let Some(w) = std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()) {
        return w;
    }
    terminal_size::terminal_size_of(std::io::stderr())
        .map(|(w, _)| usize::from(w.0))
        .unwrap_or(80)
}

fn height() -> usize {
    if let Some(h) = std::env::var("LINES").ok().and_then(|c| c.parse().ok()) {
        return h;
    }
    terminal_size::terminal_size_of(std::io::stderr())
        .map(|(_, h)| usize::from(h.0))
        .unwrap_or(24)
}
