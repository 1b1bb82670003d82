//! `Control.Solve` with its `Control.Status` stream.
//!
//! The request is encoded as Go encodes it ([`kiln_proto::wire`]): map
//! entries whole and sorted, and a definition read from a file forwarded
//! byte for byte ([`DefinitionBytes::Raw`]).

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use kiln_proto::wire::{DefinitionBytes, GoCodec, GoEncode, WithDefinition};
use kiln_proto::{control, methods};
use prost::Message;
use tokio::sync::mpsc;
use tonic::codegen::{Body, Bytes, StdError};

use crate::client::Client;
use crate::error::Error;
use crate::progress::StatusEvent;

/// One exporter of a solve (`type=tar`, `type=image,name=…,push=true`, …).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExporterSpec {
    pub kind: String,
    pub attrs: BTreeMap<String, String>,
}

/// One cache import or export (`type=registry,ref=…`, `type=local,dest=…`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CacheSpec {
    pub kind: String,
    pub attrs: BTreeMap<String, String>,
}

/// What to solve and what to do with the result.
#[derive(Clone, Debug, Default)]
pub struct SolveRequest {
    /// The LLB to solve; `None` with an empty frontend starts a gateway
    /// build. A [`DefinitionBytes::Raw`] (e.g. a file Go's `llb.WriteTo`
    /// wrote) reaches the daemon untouched; a decoded one
    /// (`pb::Definition`, `kiln_llb::Definition`, both `.into()`) is encoded
    /// as Go encodes it.
    pub definition: Option<DefinitionBytes>,
    /// A frontend (`dockerfile.v0`, `gateway.v0`), empty for plain LLB.
    pub frontend: String,
    pub frontend_attrs: BTreeMap<String, String>,
    pub exporters: Vec<ExporterSpec>,
    /// The session serving local files, secrets, ssh and outputs.
    pub session_id: Option<String>,
    pub cache_imports: Vec<CacheSpec>,
    pub cache_exports: Vec<CacheSpec>,
    /// e.g. `network.host`, `security.insecure`.
    pub entitlements: Vec<String>,
    /// The build's id; a fresh one when `None`.
    pub build_ref: Option<String>,
}

/// A finished solve.
#[derive(Clone, Debug, Default)]
pub struct SolveResponse {
    pub build_ref: String,
    /// What the exporters reported (`containerimage.digest`, …).
    pub exporter_response: BTreeMap<String, String>,
}

/// Details BuildKit attaches to a failed solve.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SolveFailure {
    /// The failing step's digest.
    pub vertex: Option<String>,
    /// The failing process's exit code.
    pub exit_code: Option<i64>,
}

/// A fresh build id.
#[must_use]
pub fn new_build_ref() -> String {
    format!("kiln-{}", uuid::Uuid::new_v4().simple())
}

fn hashmap(m: &BTreeMap<String, String>) -> std::collections::HashMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn cache_entry(c: &CacheSpec) -> control::CacheOptionsEntry {
    control::CacheOptionsEntry {
        r#type: c.kind.clone(),
        attrs: hashmap(&c.attrs),
    }
}

/// The same entry for the gateway's own solves (another proto package).
pub(crate) fn gateway_cache_entry(c: &CacheSpec) -> kiln_proto::gateway::CacheOptionsEntry {
    kiln_proto::gateway::CacheOptionsEntry {
        r#type: c.kind.clone(),
        attrs: hashmap(&c.attrs),
    }
}

/// A unary call whose request is encoded as Go encodes it (see
/// [`kiln_proto::wire`]) and whose reply is decoded by prost.
pub(crate) async fn go_unary<T, E, D>(
    mut grpc: tonic::client::Grpc<T>,
    path: &'static str,
    request: E,
) -> Result<tonic::Response<D>, tonic::Status>
where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<StdError>,
    T::ResponseBody: Body<Data = Bytes> + Send + 'static,
    <T::ResponseBody as Body>::Error: Into<StdError> + Send,
    E: GoEncode + Send + Sync + 'static,
    D: Message + Default + Send + 'static,
{
    grpc.ready().await.map_err(|e| {
        tonic::Status::unknown(format!("the connection is not ready: {}", e.into()))
    })?;
    grpc.unary(
        tonic::Request::new(request),
        http::uri::PathAndQuery::from_static(path),
        GoCodec::<E, D>::default(),
    )
    .await
}

/// How long to wait for the last status batches after the solve returned.
const STATUS_DRAIN: Duration = Duration::from_secs(3);

impl Client {
    /// Runs a solve and streams its progress into `events` (if given) as it
    /// happens. Dropping the returned future cancels the build on the daemon.
    ///
    /// # Errors
    /// [`Error::Rpc`] when the daemon rejects or fails the build; use
    /// [`solve_failure`] on its status for the failing step and exit code.
    pub async fn solve(
        &self,
        req: SolveRequest,
        events: Option<mpsc::UnboundedSender<StatusEvent>>,
    ) -> Result<SolveResponse, Error> {
        let build_ref = req.build_ref.clone().unwrap_or_else(new_build_ref);
        let _registered = crate::inflight::Registered::new(self, &build_ref);
        let status_task = events
            .map(|tx| {
                // Aborted with this future, so a cancelled solve ends the stream too.
                let mut control = self.control();
                let build_ref = build_ref.clone();
                tokio::spawn(async move {
                    let Ok(resp) = control
                        .status(control::StatusRequest { r#ref: build_ref })
                        .await
                    else {
                        return;
                    };
                    let mut stream = resp.into_inner();
                    while let Some(Ok(batch)) = stream.next().await {
                        if tx.send(StatusEvent::from(batch)).is_err() {
                            break;
                        }
                    }
                })
            })
            .map(AbortOnDrop);
        let wire = WithDefinition::new(
            control::SolveRequest {
                r#ref: build_ref.clone(),
                frontend: req.frontend,
                frontend_attrs: hashmap(&req.frontend_attrs),
                session: req.session_id.unwrap_or_default(),
                entitlements: req.entitlements,
                exporters: req
                    .exporters
                    .iter()
                    .map(|e| control::Exporter {
                        r#type: e.kind.clone(),
                        attrs: hashmap(&e.attrs),
                    })
                    .collect(),
                cache: Some(control::CacheOptions {
                    exports: req.cache_exports.iter().map(cache_entry).collect(),
                    imports: req.cache_imports.iter().map(cache_entry).collect(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            req.definition,
        );
        let control = tonic::client::Grpc::new(self.channel())
            .max_decoding_message_size(kiln_proto::MAX_MESSAGE_SIZE)
            .max_encoding_message_size(kiln_proto::MAX_MESSAGE_SIZE);
        let result =
            go_unary::<_, _, control::SolveResponse>(control, methods::CONTROL_SOLVE, wire).await;
        if let Some(mut task) = status_task {
            // The status stream ends when the job is done; don't wait forever,
            // and drop the sender either way so the consumer sees the end.
            let _ = tokio::time::timeout(STATUS_DRAIN, &mut task.0).await;
        }
        let resp = result.map_err(|s| self.rpc_error("Solve", s))?.into_inner();
        Ok(SolveResponse {
            build_ref,
            exporter_response: resp.exporter_response.into_iter().collect(),
        })
    }
}

/// Decodes the failing vertex and exit code from a failed solve's status
/// (`grpc-status-details-bin`, a `google.rpc.Status` with typed details).
#[must_use]
pub fn solve_failure(status: &tonic::Status) -> SolveFailure {
    let mut out = SolveFailure::default();
    let Ok(rpc) = kiln_proto::google::rpc::Status::decode(status.details()) else {
        return out;
    };
    for any in rpc.details {
        let url = any.type_url.as_str();
        let Ok(json) = serde_json::from_slice::<serde_json::Value>(&any.value) else {
            continue;
        };
        if url.ends_with("errdefs.Vertex+json") {
            if let Some(d) = json.get("digest").and_then(|d| d.as_str()) {
                out.vertex = Some(d.to_string());
            }
        } else if url.contains("Exit") {
            let code = ["code", "Code", "exitCode", "ExitCode"]
                .iter()
                .find_map(|k| json.get(*k).and_then(serde_json::Value::as_i64));
            if code.is_some() {
                out.exit_code = code;
            }
        }
    }
    out
}

/// A task aborted when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
