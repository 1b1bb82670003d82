//! Typed progress events from `Control.Status`, for the CLI to render.
//!
//! These mirror BuildKit's `StatusResponse` closely (so nothing is lost) but
//! with plain Rust types, times as nanoseconds since the Unix epoch, and
//! serde field names that are stable for `--progress rawjson`.

use kiln_proto::control;
use serde::Serialize;

/// One batch of status updates.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct StatusEvent {
    /// A label for the solve this batch belongs to (e.g. a platform), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub vertexes: Vec<Vertex>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub statuses: Vec<VertexStatus>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<VertexLog>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<VertexWarning>,
}

/// A step of the build graph.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Vertex {
    /// The op digest (`sha256:…`), the same as kiln's marshaled op digest.
    pub digest: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<String>,
    pub name: String,
    pub cached: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started: Option<i128>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed: Option<i128>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub error: String,
}

/// Progress of a sub-task of a step (a layer download, a transfer).
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct VertexStatus {
    pub id: String,
    pub vertex: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    pub current: i64,
    pub total: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started: Option<i128>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed: Option<i128>,
}

/// Output of a step.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct VertexLog {
    pub vertex: String,
    /// 1 = stdout, 2 = stderr.
    pub stream: i64,
    /// The bytes, lossily decoded as UTF-8.
    pub data: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i128>,
}

/// A warning attached to a step.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct VertexWarning {
    pub vertex: String,
    pub level: i64,
    pub short: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub detail: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub url: String,
}

fn nanos(t: Option<kiln_proto::google::protobuf::Timestamp>) -> Option<i128> {
    t.map(|t| i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos))
}

impl From<control::StatusResponse> for StatusEvent {
    fn from(r: control::StatusResponse) -> Self {
        StatusEvent {
            label: None,
            vertexes: r
                .vertexes
                .into_iter()
                .map(|v| Vertex {
                    digest: v.digest,
                    inputs: v.inputs,
                    name: v.name,
                    cached: v.cached,
                    started: nanos(v.started),
                    completed: nanos(v.completed),
                    error: v.error,
                })
                .collect(),
            statuses: r
                .statuses
                .into_iter()
                .map(|s| VertexStatus {
                    id: s.id,
                    vertex: s.vertex,
                    name: s.name,
                    current: s.current,
                    total: s.total,
                    started: nanos(s.started),
                    completed: nanos(s.completed),
                })
                .collect(),
            logs: r
                .logs
                .into_iter()
                .map(|l| VertexLog {
                    vertex: l.vertex,
                    stream: l.stream,
                    data: String::from_utf8_lossy(&l.msg).into_owned(),
                    timestamp: nanos(l.timestamp),
                })
                .collect(),
            warnings: r
                .warnings
                .into_iter()
                .map(|w| VertexWarning {
                    vertex: w.vertex,
                    level: w.level,
                    short: String::from_utf8_lossy(&w.short).into_owned(),
                    detail: w
                        .detail
                        .iter()
                        .map(|d| String::from_utf8_lossy(d).into_owned())
                        .collect(),
                    url: w.url,
                })
                .collect(),
        }
    }
}
