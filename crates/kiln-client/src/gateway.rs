//! A client-side frontend: a `Control.Solve` started with no definition and
//! no frontend, then driven through `LLBBridge` calls carrying the
//! `buildkit-controlapi-buildid` metadata. kiln uses it to resolve image
//! configs through the daemon (its registry access, mirrors and the
//! session's credentials), to solve lazily, and to return multi-platform
//! results that the exporters turn into one image index.
//!
//! Requests that carry definitions, results or maps (`Solve`, `Return`,
//! `ResolveImageConfig`) are encoded as Go encodes them
//! ([`kiln_proto::wire`]); `Ping` and `ReadFile` hold neither.

use std::collections::BTreeMap;
use std::time::Duration;

use kiln_proto::gateway::{self, llb_bridge_client::LlbBridgeClient};
use kiln_proto::wire::{DefinitionBytes, WithDefinition};
use kiln_proto::{headers, methods, pb};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::client::Client;
use crate::error::Error;
use crate::progress::StatusEvent;
use crate::solve::{go_unary, new_build_ref, SolveRequest, SolveResponse};

/// How image resolution may use the registry.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum ResolveMode {
    /// The daemon's default (local store first where it has one).
    #[default]
    Default,
    /// Always ask the registry.
    Pull,
    /// Only the daemon's local store.
    Local,
}

impl ResolveMode {
    fn wire(self) -> &'static str {
        match self {
            ResolveMode::Default => kiln_proto::attrs::image::RESOLVE_MODE_DEFAULT,
            ResolveMode::Pull => kiln_proto::attrs::image::RESOLVE_MODE_PULL,
            ResolveMode::Local => kiln_proto::attrs::image::RESOLVE_MODE_LOCAL,
        }
    }
}

/// An image's digest and config, as the daemon resolved them.
#[derive(Clone, Debug)]
pub struct ResolvedImage {
    /// The digest the reference resolved to (for a multi-platform image,
    /// the index); `None` when the daemon answered from a local store
    /// without one.
    pub digest: Option<String>,
    /// The image config JSON.
    pub config: Vec<u8>,
}

/// Adds the build id to every LLBBridge call.
#[derive(Clone)]
pub struct BuildIdInterceptor(tonic::metadata::MetadataValue<tonic::metadata::Ascii>);

impl tonic::service::Interceptor for BuildIdInterceptor {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut()
            .insert(headers::CONTROL_API_BUILD_ID, self.0.clone());
        Ok(req)
    }
}

type Bridge = LlbBridgeClient<InterceptedService<Channel, BuildIdInterceptor>>;
/// The same connection for calls made with the Go codec.
type GoBridge = tonic::client::Grpc<InterceptedService<Channel, BuildIdInterceptor>>;

/// One result to return: a ref per platform, plus image configs.
#[derive(Clone, Debug, Default)]
pub struct GatewayResult {
    /// `(platform id, ref id, platform)` in order.
    pub refs: Vec<(String, String, pb::Platform)>,
    /// `containerimage.config/<platform id>` (or `containerimage.config` for one ref).
    pub image_configs: BTreeMap<String, Vec<u8>>,
    /// Extra metadata.
    pub metadata: BTreeMap<String, Vec<u8>>,
    /// In-toto attestations per platform id (the keys of `refs`; the only
    /// ref's id for a single-platform result).
    pub attestations: BTreeMap<String, Vec<InTotoAttestation>>,
}

/// An in-toto statement's predicate, read by the exporter from a file of
/// a solved ref; its subject is the platform's image (BuildKit's `Self`
/// subject), and it lands in the image index as an attestation manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InTotoAttestation {
    /// The ref holding the predicate file.
    pub ref_id: String,
    /// The file's path in it.
    pub path: String,
    /// e.g. `https://spdx.dev/Document`.
    pub predicate_type: String,
    /// BuildKit's attestation metadata (`reason` = `sbom`/`provenance`).
    pub metadata: BTreeMap<String, Vec<u8>>,
}

/// A running gateway build. Drop it to cancel.
pub struct GatewayBuild {
    client: Client,
    build_ref: String,
    bridge: Bridge,
    go_bridge: GoBridge,
    solve: Option<JoinHandle<Result<SolveResponse, Error>>>,
    /// The build's cache imports: every solve inside the build loads its
    /// steps' cache from them (BuildKit applies them per solve request).
    cache_imports: Vec<gateway::CacheOptionsEntry>,
}

impl std::fmt::Debug for GatewayBuild {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayBuild")
            .field("build_ref", &self.build_ref)
            .finish_non_exhaustive()
    }
}

impl Drop for GatewayBuild {
    fn drop(&mut self) {
        if let Some(t) = self.solve.take() {
            t.abort();
        }
    }
}

impl Client {
    /// Starts a gateway build: `req.definition` and `req.frontend` are
    /// ignored (the build's result comes from [`GatewayBuild::finish`]);
    /// exporters, session and cache options apply as in [`Client::solve`].
    ///
    /// # Errors
    /// [`Error::Rpc`] when the daemon refuses the build (e.g. an unknown
    /// exporter) before the gateway is ready.
    pub async fn gateway(
        &self,
        mut req: SolveRequest,
        events: Option<mpsc::UnboundedSender<StatusEvent>>,
    ) -> Result<GatewayBuild, Error> {
        let build_ref = req.build_ref.clone().unwrap_or_else(new_build_ref);
        req.build_ref = Some(build_ref.clone());
        req.definition = None;
        req.frontend = String::new();
        let cache_imports: Vec<gateway::CacheOptionsEntry> = req
            .cache_imports
            .iter()
            .map(crate::solve::gateway_cache_entry)
            .collect();
        let value = build_ref.parse().map_err(|_| Error::Handshake {
            address: self.address().to_string(),
            message: format!("build id {build_ref:?} is not valid metadata"),
            helper: String::new(),
        })?;
        let interceptor = BuildIdInterceptor(value);
        let bridge = LlbBridgeClient::with_interceptor(self.channel(), interceptor.clone())
            .max_decoding_message_size(kiln_proto::MAX_MESSAGE_SIZE)
            .max_encoding_message_size(kiln_proto::MAX_MESSAGE_SIZE);
        let go_bridge =
            tonic::client::Grpc::new(InterceptedService::new(self.channel(), interceptor))
                .max_decoding_message_size(kiln_proto::MAX_MESSAGE_SIZE)
                .max_encoding_message_size(kiln_proto::MAX_MESSAGE_SIZE);
        let client = self.clone();
        let mut solve = tokio::spawn(async move { client.solve(req, events).await });
        let mut build = GatewayBuild {
            client: self.clone(),
            build_ref,
            bridge,
            go_bridge,
            solve: None,
            cache_imports,
        };
        // Wait until the forwarder answers, watching the Solve for an early failure.
        let mut last = None;
        for _ in 0..50 {
            tokio::select! {
                r = &mut solve => {
                    return Err(match r {
                        Ok(Err(e)) => e,
                        Ok(Ok(_)) => build.client.rpc_error("Solve", tonic::Status::internal("the build ended before its frontend returned")),
                        Err(_) => build.client.rpc_error("Solve", tonic::Status::cancelled("the build task stopped")),
                    });
                }
                p = build.bridge.ping(gateway::PingRequest {}) => match p {
                    Ok(_) => {
                        build.solve = Some(solve);
                        return Ok(build);
                    }
                    Err(s) => last = Some(s),
                },
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        solve.abort();
        Err(self.rpc_error(
            "LLBBridge.Ping",
            last.unwrap_or_else(|| tonic::Status::deadline_exceeded("gateway not ready")),
        ))
    }
}

impl GatewayBuild {
    /// The build's id.
    #[must_use]
    pub fn build_ref(&self) -> &str {
        &self.build_ref
    }

    fn err(&self, method: &'static str, s: tonic::Status) -> Error {
        self.client.rpc_error(method, s)
    }

    /// The frontend capabilities the daemon offers (`ApiCap` ids that are enabled).
    ///
    /// # Errors
    /// [`Error::Rpc`].
    pub async fn caps(&self) -> Result<Vec<String>, Error> {
        let pong = self
            .bridge
            .clone()
            .ping(gateway::PingRequest {})
            .await
            .map_err(|s| self.err("LLBBridge.Ping", s))?
            .into_inner();
        Ok(pong
            .frontend_api_caps
            .into_iter()
            .filter(|c| c.enabled)
            .map(|c| c.id)
            .collect())
    }

    /// Resolves an image reference to its digest and config through the daemon.
    ///
    /// # Errors
    /// [`Error::Rpc`] (e.g. the image or tag does not exist, the registry
    /// is unreachable).
    pub async fn resolve_image_config(
        &self,
        reference: &str,
        platform: Option<pb::Platform>,
        mode: ResolveMode,
        session_id: Option<&str>,
    ) -> Result<ResolvedImage, Error> {
        let req = gateway::ResolveImageConfigRequest {
            r#ref: reference.to_string(),
            platform,
            resolve_mode: mode.wire().to_string(),
            log_name: format!("resolve image config for {reference}"),
            session_id: session_id.unwrap_or_default().to_string(),
            ..Default::default()
        };
        let resp = go_unary::<_, _, gateway::ResolveImageConfigResponse>(
            self.go_bridge.clone(),
            methods::LLB_BRIDGE_RESOLVE_IMAGE_CONFIG,
            req,
        )
        .await
        .map_err(|s| self.err("LLBBridge.ResolveImageConfig", s))?
        .into_inner();
        Ok(ResolvedImage {
            digest: Some(resp.digest).filter(|d| !d.is_empty()),
            config: resp.config,
        })
    }

    /// Solves a definition lazily and returns its ref id (errors may surface
    /// only at [`GatewayBuild::read_file`] or export unless `evaluate`).
    /// `definition` is a `pb::Definition`, a `kiln_llb::Definition` or raw
    /// bytes ([`DefinitionBytes`]), sent as in [`Client::solve`].
    ///
    /// # Errors
    /// [`Error::Rpc`].
    pub async fn solve(
        &self,
        definition: impl Into<DefinitionBytes>,
        evaluate: bool,
    ) -> Result<String, Error> {
        let req = WithDefinition::new(
            gateway::SolveRequest {
                allow_result_return: true,
                allow_result_array_ref: true,
                evaluate,
                cache_imports: self.cache_imports.clone(),
                ..Default::default()
            },
            Some(definition.into()),
        );
        let resp = go_unary::<_, _, gateway::SolveResponse>(
            self.go_bridge.clone(),
            methods::LLB_BRIDGE_SOLVE,
            req,
        )
        .await
        .map_err(|s| self.err("LLBBridge.Solve", s))?
        .into_inner();
        match resp.result.and_then(|r| r.result) {
            Some(gateway::result::Result::Ref(r)) => Ok(r.id),
            Some(gateway::result::Result::RefDeprecated(id)) => Ok(id),
            _ if !resp.r#ref.is_empty() => Ok(resp.r#ref),
            _ => Err(self.err(
                "LLBBridge.Solve",
                tonic::Status::internal("the daemon returned no ref for the definition"),
            )),
        }
    }

    /// Reads a file from a solved ref.
    ///
    /// # Errors
    /// [`Error::Rpc`] (missing file, or the ref's build failed).
    pub async fn read_file(&self, ref_id: &str, path: &str) -> Result<Vec<u8>, Error> {
        self.read(ref_id, path, None).await
    }

    async fn read(
        &self,
        ref_id: &str,
        path: &str,
        range: Option<gateway::FileRange>,
    ) -> Result<Vec<u8>, Error> {
        let resp = self
            .bridge
            .clone()
            .read_file(gateway::ReadFileRequest {
                r#ref: ref_id.to_string(),
                file_path: path.to_string(),
                range,
                ..Default::default()
            })
            .await
            .map_err(|s| self.err("LLBBridge.ReadFile", s))?
            .into_inner();
        Ok(resp.data)
    }

    /// Reads `length` bytes at `offset` of a file in a solved ref (fewer at
    /// its end): how a large file is looked into without sending it all.
    ///
    /// # Errors
    /// [`Error::Rpc`] (missing file, or the ref's build failed).
    pub async fn read_file_range(
        &self,
        ref_id: &str,
        path: &str,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>, Error> {
        let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let range = gateway::FileRange {
            offset: clamp(offset),
            length: clamp(length),
        };
        self.read(ref_id, path, Some(range)).await
    }

    /// Returns the result, lets the exporters run, and waits for the build.
    ///
    /// # Errors
    /// [`Error::Rpc`] from `Return` or from the build/export.
    pub async fn finish(mut self, result: GatewayResult) -> Result<SolveResponse, Error> {
        let mut metadata: std::collections::HashMap<String, Vec<u8>> =
            result.metadata.into_iter().collect();
        for (k, v) in result.image_configs {
            metadata.insert(k, v);
        }
        let wire = if result.refs.len() == 1 {
            let (_, id, _) = &result.refs[0];
            gateway::result::Result::Ref(gateway::Ref {
                id: id.clone(),
                def: None,
            })
        } else {
            let platforms: Vec<serde_json::Value> = result
                .refs
                .iter()
                .map(|(pid, _, p)| {
                    let mut plat = serde_json::json!({"architecture": p.architecture, "os": p.os});
                    if !p.variant.is_empty() {
                        plat["variant"] = p.variant.clone().into();
                    }
                    serde_json::json!({"ID": pid, "Platform": plat})
                })
                .collect();
            let json = serde_json::json!({ "Platforms": platforms });
            metadata.insert(
                kiln_proto::attrs::result::PLATFORMS.to_string(),
                json.to_string().into_bytes(),
            );
            gateway::result::Result::Refs(gateway::RefMap {
                refs: result
                    .refs
                    .iter()
                    .map(|(pid, id, _)| {
                        (
                            pid.clone(),
                            gateway::Ref {
                                id: id.clone(),
                                def: None,
                            },
                        )
                    })
                    .collect(),
            })
        };
        let attestations = result
            .attestations
            .into_iter()
            .map(|(pid, list)| {
                let list = list
                    .into_iter()
                    .map(|a| gateway::Attestation {
                        kind: gateway::AttestationKind::InToto as i32,
                        metadata: a.metadata.into_iter().collect(),
                        r#ref: Some(gateway::Ref {
                            id: a.ref_id,
                            def: None,
                        }),
                        path: a.path,
                        in_toto_predicate_type: a.predicate_type,
                        in_toto_subjects: Vec::new(),
                    })
                    .collect();
                (pid, gateway::Attestations { attestation: list })
            })
            .collect();
        self.r#return(gateway::ReturnRequest {
            result: Some(gateway::Result {
                metadata,
                attestations,
                result: Some(wire),
            }),
            error: None,
        })
        .await?;
        self.wait().await
    }

    /// Ends the build with an error (nothing is exported).
    ///
    /// # Errors
    /// [`Error::Rpc`] from `Return`.
    pub async fn fail(mut self, message: &str) -> Result<(), Error> {
        self.r#return(gateway::ReturnRequest {
            result: None,
            error: Some(kiln_proto::google::rpc::Status {
                code: tonic::Code::Unknown as i32,
                message: message.to_string(),
                details: vec![],
            }),
        })
        .await?;
        let _ = self.wait().await;
        Ok(())
    }

    async fn r#return(&self, req: gateway::ReturnRequest) -> Result<(), Error> {
        go_unary::<_, _, gateway::ReturnResponse>(
            self.go_bridge.clone(),
            methods::LLB_BRIDGE_RETURN,
            req,
        )
        .await
        .map_err(|s| self.err("LLBBridge.Return", s))?;
        Ok(())
    }

    async fn wait(&mut self) -> Result<SolveResponse, Error> {
        match self.solve.take() {
            Some(t) => match t.await {
                Ok(r) => r,
                Err(_) => {
                    Err(self.err("Solve", tonic::Status::cancelled("the build task stopped")))
                }
            },
            None => Err(self.err(
                "Solve",
                tonic::Status::internal("the build already finished"),
            )),
        }
    }
}
