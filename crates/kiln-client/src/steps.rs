//! A build's steps as the daemon's status events describe them: numbered in
//! the order they start, their timings, cache hits, errors and a tail of
//! their logs. Renderers (a live view, plain lines, a failure report) read
//! it; [`State::apply`] says what changed with each event.

use std::collections::{HashMap, VecDeque};

use crate::progress::StatusEvent;

/// How many log lines of each step are kept for error reports.
pub const LOG_TAIL: usize = 20;

#[derive(Clone, Debug, Default)]
pub struct Step {
    /// 1-based number in the order steps started (or first showed output,
    /// were cached or failed); 0 while the step has not shown up. The daemon
    /// lists a graph's steps in no particular order before they run, so
    /// numbering them then would put them out of order, as buildx never does.
    pub number: usize,
    pub digest: String,
    pub name: String,
    pub label: Option<String>,
    pub started: Option<i128>,
    pub completed: Option<i128>,
    pub cached: bool,
    pub error: String,
    /// Last lines of output.
    pub tail: VecDeque<String>,
    /// A log line still waiting for its newline.
    pub partial: String,
    /// Lines seen in all.
    pub lines: usize,
    /// The daemon said it clipped this step's log.
    pub clipped: bool,
}

impl Step {
    /// The name as shown, with the solve's label (platform) if any.
    pub fn display_name(&self) -> String {
        match &self.label {
            Some(l) if !self.name.starts_with('[') => format!("[{l}] {}", self.name),
            Some(l) => format!("[{l}] {}", self.name),
            None => self.name.clone(),
        }
    }

    /// Seconds between start and completion (or `now`).
    pub fn elapsed(&self, now: i128) -> f64 {
        match (self.started, self.completed) {
            (Some(s), Some(c)) => (c - s).max(0) as f64 / 1e9,
            (Some(s), None) => (now - s).max(0) as f64 / 1e9,
            _ => 0.0,
        }
    }

    pub fn is_done(&self) -> bool {
        self.completed.is_some() || self.cached
    }
}

/// A change the renderers may want to show.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    Started(usize),
    Log(usize, String),
    Done(usize),
    Cached(usize),
    Failed(usize),
    Warning(usize, String),
    Transfer {
        step: usize,
        id: String,
        current: i64,
        total: i64,
        done: bool,
    },
}

#[derive(Debug, Default)]
pub struct State {
    steps: Vec<Step>,
    by_key: HashMap<(Option<String>, String), usize>,
    /// Earliest start seen (for the total time).
    pub first_start: Option<i128>,
    /// Steps numbered so far.
    shown: usize,
    pub last_completed: Option<i128>,
}

/// The daemon's marker for a clipped log.
const CLIP_MARKERS: [&str; 2] = ["[output clipped, log limit", "output clipped"];

impl State {
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    fn index(&mut self, label: &Option<String>, digest: &str) -> usize {
        let key = (label.clone(), digest.to_string());
        if let Some(&i) = self.by_key.get(&key) {
            return i;
        }
        let i = self.steps.len();
        self.steps.push(Step {
            digest: digest.to_string(),
            label: label.clone(),
            ..Default::default()
        });
        self.by_key.insert(key, i);
        i
    }

    /// Gives step `i` its number when it first shows up.
    fn show(&mut self, i: usize) {
        if self.steps[i].number == 0 {
            self.shown += 1;
            self.steps[i].number = self.shown;
        }
    }

    /// The steps that have shown up, in the order they did.
    pub fn shown_steps(&self) -> Vec<&Step> {
        let mut v: Vec<&Step> = self.steps.iter().filter(|s| s.number > 0).collect();
        v.sort_by_key(|s| s.number);
        v
    }

    /// Applies one status batch and returns what changed, in order.
    pub fn apply(&mut self, ev: &StatusEvent) -> Vec<Change> {
        let mut out = Vec::new();
        for v in &ev.vertexes {
            let i = self.index(&ev.label, &v.digest);
            let s = &mut self.steps[i];
            if !v.name.is_empty() {
                s.name = v.name.clone();
            }
            let was_started = s.started.is_some() || s.cached;
            let was_done = s.is_done() || !s.error.is_empty();
            if v.started.is_some() {
                s.started = v.started;
            }
            if v.completed.is_some() {
                s.completed = v.completed;
            }
            s.cached |= v.cached;
            if !v.error.is_empty() {
                s.error = v.error.clone();
            }
            if let Some(t) = v.started {
                self.first_start = Some(self.first_start.map_or(t, |f| f.min(t)));
            }
            if let Some(t) = v.completed {
                self.last_completed = Some(self.last_completed.map_or(t, |l| l.max(t)));
            }
            let s = &self.steps[i];
            let visible = s.started.is_some() || s.cached || !s.error.is_empty();
            if visible {
                self.show(i);
            }
            let s = &self.steps[i];
            if !was_started && (s.started.is_some() || s.cached) {
                out.push(Change::Started(i));
            }
            if !was_done {
                if !s.error.is_empty() {
                    out.push(Change::Failed(i));
                } else if s.cached {
                    out.push(Change::Cached(i));
                } else if s.completed.is_some() {
                    out.push(Change::Done(i));
                }
            }
        }
        for st in &ev.statuses {
            let i = self.index(&ev.label, &st.vertex);
            self.show(i);
            out.push(Change::Transfer {
                step: i,
                id: st.id.clone(),
                current: st.current,
                total: st.total,
                done: st.completed.is_some(),
            });
        }
        for l in &ev.logs {
            let i = self.index(&ev.label, &l.vertex);
            self.show(i);
            let s = &mut self.steps[i];
            let mut text = std::mem::take(&mut s.partial);
            text.push_str(&l.data);
            let mut rest = text.as_str();
            while let Some(pos) = rest.find('\n') {
                let line = rest[..pos].trim_end_matches('\r').to_string();
                rest = &rest[pos + 1..];
                if CLIP_MARKERS.iter().any(|m| line.contains(m)) {
                    s.clipped = true;
                }
                s.lines += 1;
                s.tail.push_back(line.clone());
                if s.tail.len() > LOG_TAIL {
                    s.tail.pop_front();
                }
                out.push(Change::Log(i, line));
            }
            s.partial = rest.to_string();
        }
        for w in &ev.warnings {
            let i = self.index(&ev.label, &w.vertex);
            self.show(i);
            out.push(Change::Warning(i, w.short.clone()));
        }
        out
    }

    /// Flushes unterminated log lines (at the end of the build).
    pub fn flush(&mut self) -> Vec<Change> {
        let mut out = Vec::new();
        for (i, s) in self.steps.iter_mut().enumerate() {
            if !s.partial.is_empty() {
                let line = std::mem::take(&mut s.partial);
                s.lines += 1;
                s.tail.push_back(line.clone());
                if s.tail.len() > LOG_TAIL {
                    s.tail.pop_front();
                }
                out.push(Change::Log(i, line));
            }
        }
        out
    }

    /// The step that failed: by digest if the daemon named it, else the
    /// first with an error.
    pub fn failed_step(&self, digest: Option<&str>) -> Option<&Step> {
        if let Some(d) = digest {
            if let Some(s) = self.steps.iter().find(|s| s.digest == d) {
                return Some(s);
            }
        }
        self.steps.iter().find(|s| !s.error.is_empty())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::progress::{Vertex, VertexLog};

    fn ev(vertexes: Vec<Vertex>, logs: Vec<VertexLog>) -> StatusEvent {
        StatusEvent {
            vertexes,
            logs,
            ..Default::default()
        }
    }

    #[test]
    fn numbers_steps_and_splits_logs() {
        let mut st = State::default();
        let c = st.apply(&ev(
            vec![Vertex {
                digest: "sha256:a".into(),
                name: "[builder 1/2] RUN x".into(),
                started: Some(1_000_000_000),
                ..Default::default()
            }],
            vec![],
        ));
        assert_eq!(c, vec![Change::Started(0)]);
        let c = st.apply(&ev(
            vec![],
            vec![
                VertexLog {
                    vertex: "sha256:a".into(),
                    stream: 1,
                    data: "one\ntw".into(),
                    timestamp: None,
                },
                VertexLog {
                    vertex: "sha256:a".into(),
                    stream: 1,
                    data: "o\n".into(),
                    timestamp: None,
                },
            ],
        ));
        assert_eq!(
            c,
            vec![Change::Log(0, "one".into()), Change::Log(0, "two".into())]
        );
        let c = st.apply(&ev(
            vec![Vertex {
                digest: "sha256:a".into(),
                name: "[builder 1/2] RUN x".into(),
                started: Some(1_000_000_000),
                completed: Some(3_500_000_000),
                ..Default::default()
            }],
            vec![],
        ));
        assert_eq!(c, vec![Change::Done(0)]);
        assert!((st.steps()[0].elapsed(0) - 2.5).abs() < 1e-9);
        // A repeated completion is not reported twice.
        let c = st.apply(&ev(
            vec![Vertex {
                digest: "sha256:a".into(),
                completed: Some(3_500_000_000),
                ..Default::default()
            }],
            vec![],
        ));
        assert!(c.is_empty());
    }

    #[test]
    fn steps_are_numbered_in_the_order_they_start() {
        let mut st = State::default();
        let v = |d: &str, started: Option<i128>| Vertex {
            digest: d.into(),
            name: d.into(),
            started,
            ..Default::default()
        };
        // The daemon lists the graph first, in no order, nothing started.
        let c = st.apply(&ev(vec![v("c", None), v("a", None), v("b", None)], vec![]));
        assert!(c.is_empty());
        assert!(
            st.shown_steps().is_empty(),
            "nothing shown before it starts"
        );
        st.apply(&ev(vec![v("a", Some(1))], vec![]));
        st.apply(&ev(vec![v("b", Some(2))], vec![]));
        st.apply(&ev(vec![v("c", Some(3))], vec![]));
        let order: Vec<(&str, usize)> = st
            .shown_steps()
            .iter()
            .map(|s| (s.digest.as_str(), s.number))
            .collect();
        assert_eq!(order, [("a", 1), ("b", 2), ("c", 3)]);
        assert_eq!(st.steps().len(), 3, "every step is known for the total");
    }

    #[test]
    fn keeps_a_bounded_tail_and_flags_clipping() {
        let mut st = State::default();
        let data: String = (0..50).map(|i| format!("line {i}\n")).collect();
        st.apply(&ev(
            vec![],
            vec![VertexLog {
                vertex: "d".into(),
                data: data + "[output clipped, log limit 2MiB reached]\n",
                ..Default::default()
            }],
        ));
        let s = &st.steps()[0];
        assert_eq!(s.tail.len(), LOG_TAIL);
        assert_eq!(s.lines, 51);
        assert!(s.clipped);
        assert_eq!(s.tail.front().map(String::as_str), Some("line 31"));
    }

    #[test]
    fn labels_separate_identical_digests() {
        let mut st = State::default();
        for label in ["linux/amd64", "linux/arm64"] {
            st.apply(&StatusEvent {
                label: Some(label.into()),
                vertexes: vec![Vertex {
                    digest: "sha256:same".into(),
                    name: "copy".into(),
                    cached: true,
                    ..Default::default()
                }],
                ..Default::default()
            });
        }
        assert_eq!(st.steps().len(), 2);
        assert_eq!(st.steps()[1].display_name(), "[linux/arm64] copy");
        assert!(st.steps().iter().all(|s| s.cached));
    }
}
