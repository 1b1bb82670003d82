//! Progress drawn for people and tools, over the step model of
//! [`crate::steps`]: [`Plain`] (numbered steps and their logs, for CI logs),
//! [`Tty`] (a live view redrawn in place), [`RawJson`] (one JSON object per
//! status event) and [`Quiet`]. Each writes to the sink it is given, so a
//! tool embedding kiln-build shows progress exactly as the `kiln` CLI does;
//! [`drive`] feeds one from a build's events.
//!
//! ```
//! use kiln_client::render::{drive, Plain};
//! # async fn example(rx: tokio::sync::mpsc::UnboundedReceiver<kiln_client::progress::StatusEvent>) {
//! let state = drive(rx, Box::new(Plain::new(Box::new(std::io::stderr())))).await;
//! println!("{} steps", state.steps().len());
//! # }
//! ```

pub mod cache;
mod plain;
pub mod report;
mod tty;
mod units;

use std::io::Write;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::progress::StatusEvent;
use crate::steps::{Change, State};

pub use plain::Plain;
pub use tty::{Size, Tty};
pub use units::{human_duration, human_size, now_nanos, parse_duration, parse_size, secs};

/// Where a renderer writes (the CLI: stderr).
pub type Sink = Box<dyn Write + Send>;

/// Something that draws progress.
pub trait Render: Send {
    /// Steps started, logged, finished, as the events were applied.
    fn changes(&mut self, state: &State, changes: &[Change]);
    /// Every raw event, before it is applied.
    fn event(&mut self, _ev: &StatusEvent) {}
    /// Ten times a second, for running timers.
    fn tick(&mut self, _state: &State) {}
    /// The build is over (the events ended).
    fn finish(&mut self, state: &State);
}

/// Draws nothing.
pub struct Quiet;

impl Render for Quiet {
    fn changes(&mut self, _: &State, _: &[Change]) {}
    fn finish(&mut self, _: &State) {}
}

/// One JSON object per status event, one per line (`--progress rawjson`).
pub struct RawJson {
    out: Sink,
}

impl RawJson {
    /// Writes to `out`.
    #[must_use]
    pub fn new(out: Sink) -> RawJson {
        RawJson { out }
    }
}

impl Render for RawJson {
    fn changes(&mut self, _: &State, _: &[Change]) {}
    fn event(&mut self, ev: &StatusEvent) {
        if let Ok(line) = serde_json::to_string(ev) {
            let _ = writeln!(self.out, "{line}");
        }
    }
    fn finish(&mut self, _: &State) {}
}

/// Consumes status events until the sender side closes, drawing them with
/// `render`, and returns what was learned (for failure reports).
pub async fn drive(
    mut rx: mpsc::UnboundedReceiver<StatusEvent>,
    mut render: Box<dyn Render>,
) -> State {
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A sink the test can read back.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn text(sink: &Shared) -> String {
        String::from_utf8(sink.0.lock().map(|v| v.clone()).unwrap_or_default()).unwrap_or_default()
    }

    /// Two steps: one run (started, then done), one cached.
    fn events() -> Vec<StatusEvent> {
        use crate::progress::Vertex;
        let v = |d: &str, name: &str, started, completed, cached| Vertex {
            digest: d.into(),
            name: name.into(),
            started,
            completed,
            cached,
            ..Default::default()
        };
        vec![
            StatusEvent {
                vertexes: vec![v(
                    "sha256:a",
                    "[builder 2/3] go build",
                    Some(1_000_000_000),
                    None,
                    false,
                )],
                ..Default::default()
            },
            StatusEvent {
                vertexes: vec![
                    v(
                        "sha256:a",
                        "[builder 2/3] go build",
                        Some(1_000_000_000),
                        Some(3_500_000_000),
                        false,
                    ),
                    v(
                        "sha256:b",
                        "[final 1/2] FROM static",
                        Some(1_000_000_000),
                        Some(1_000_000_000),
                        true,
                    ),
                ],
                ..Default::default()
            },
        ]
    }

    async fn render(r: impl FnOnce(Sink) -> Box<dyn Render>) -> String {
        let sink = Shared::default();
        let (tx, rx) = mpsc::unbounded_channel();
        for e in events() {
            let _ = tx.send(e);
        }
        drop(tx);
        drive(rx, r(Box::new(sink.clone()))).await;
        text(&sink)
    }

    #[tokio::test]
    async fn plain_numbers_steps_in_order_with_their_times() {
        let out = render(|s| Box::new(Plain::new(s))).await;
        assert_eq!(
            out,
            "#1 [builder 2/3] go build\n#1 DONE 2.5s\n\n#2 [final 1/2] FROM static\n#2 CACHED\n"
        );
    }

    #[tokio::test]
    async fn tty_draws_a_final_frame_without_colour_when_asked() {
        let out = render(|s| Box::new(Tty::new(s, Box::new(|| (60, 20)), false))).await;
        let last = out.rsplit("\x1b[J").next().unwrap_or(&out);
        assert!(last.contains("[+] Building 2.5s (2/2) FINISHED"), "{out:?}");
        assert!(last.contains("=> [builder 2/3] go build"), "{out:?}");
        assert!(
            last.contains("=> CACHED [final 1/2] FROM static"),
            "{out:?}"
        );
        assert!(!out.contains("\x1b[3"), "no colour: {out:?}");
    }

    #[tokio::test]
    async fn drive_feeds_a_renderer_until_the_events_end() {
        let sink = Shared::default();
        let (tx, rx) = mpsc::unbounded_channel();
        drop(tx);
        let state = drive(rx, Box::new(Plain::new(Box::new(sink.clone())))).await;
        assert!(state.steps().is_empty());
        let (tx, rx) = mpsc::unbounded_channel::<StatusEvent>();
        tx.send(StatusEvent::default()).unwrap_or_default();
        drop(tx);
        let raw = Shared::default();
        drive(rx, Box::new(RawJson::new(Box::new(raw.clone())))).await;
        let text = String::from_utf8(raw.0.lock().map(|v| v.clone()).unwrap_or_default())
            .unwrap_or_default();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.starts_with('{'), "{text}");
    }
}
