//! What kiln-client puts on the wire, read by an in-process gRPC server
//! that keeps the raw request bytes: a definition read from a file travels
//! untouched, and `Control.Solve`, `LLBBridge.Solve` and `LLBBridge.Return`
//! are encoded as Go encodes them (whole, sorted map entries; oneofs last).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::marker::PhantomData;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Buf, BufMut};
use kiln_client::gateway::GatewayResult;
use kiln_client::{Address, Client, ExporterSpec, SolveRequest, TlsOptions};
use kiln_proto::wire::{DefinitionBytes, GoEncode, WithDefinition};
use kiln_proto::{control, gateway, headers, methods, pb};
use prost::Message;
use tonic::body::Body;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::server::{NamedService, UnaryService};
use tonic::Status;

const PING: &str = "/moby.buildkit.v1.frontend.LLBBridge/Ping";

/// What Go's `llb.WriteTo` wrote (map entries in Go's random order).
fn go_written() -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../kiln-proto/tests/fixtures/go-llb/image_run.pb");
    std::fs::read(path).expect("fixture")
}

/// One request as it arrived.
#[derive(Clone, Debug)]
struct Call {
    path: String,
    body: Vec<u8>,
    build_id: Option<String>,
}

/// A daemon stand-in: records every request's bytes; a gateway build's
/// `Control.Solve` (no definition) returns once `LLBBridge.Return` came.
#[derive(Clone, Default)]
struct Daemon {
    calls: Arc<Mutex<Vec<Call>>>,
    returned: Arc<tokio::sync::Notify>,
}

impl Daemon {
    fn calls(&self, path: &str) -> Vec<Call> {
        let calls = self.calls.lock().expect("lock");
        calls.iter().filter(|c| c.path == path).cloned().collect()
    }

    async fn handle(self, req: http::Request<Body>) -> http::Response<Body> {
        let path = req.uri().path().to_string();
        let build_id = req
            .headers()
            .get(headers::CONTROL_API_BUILD_ID)
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let record = {
            let daemon = self.clone();
            let path = path.clone();
            move |body: &[u8]| {
                daemon.calls.lock().expect("lock").push(Call {
                    path,
                    body: body.to_vec(),
                    build_id,
                });
            }
        };
        match path.as_str() {
            methods::CONTROL_SOLVE => {
                let returned = self.returned.clone();
                unary(req, move |body| {
                    record(&body);
                    let gateway_build = control::SolveRequest::decode(body.as_slice())
                        .map(|r| r.definition.is_none())
                        .unwrap_or(false);
                    async move {
                        if gateway_build {
                            returned.notified().await;
                        }
                        control::SolveResponse {
                            exporter_response: [("k".to_string(), "v".to_string())].into(),
                        }
                    }
                })
                .await
            }
            PING => {
                unary(req, move |body| {
                    record(&body);
                    async { gateway::PongResponse::default() }
                })
                .await
            }
            methods::LLB_BRIDGE_SOLVE => {
                unary(req, move |body| {
                    record(&body);
                    async {
                        gateway::SolveResponse {
                            r#ref: String::new(),
                            result: Some(gateway::Result {
                                result: Some(gateway::result::Result::Ref(gateway::Ref {
                                    id: "ref-1".into(),
                                    def: None,
                                })),
                                ..Default::default()
                            }),
                        }
                    }
                })
                .await
            }
            methods::LLB_BRIDGE_RETURN => {
                let returned = self.returned.clone();
                unary(req, move |body| {
                    record(&body);
                    returned.notify_one();
                    async { gateway::ReturnResponse {} }
                })
                .await
            }
            _ => Status::unimplemented(path).into_http(),
        }
    }
}

/// Serves one unary call: the request's raw bytes in, `reply`'s message out.
async fn unary<R, F, Fut>(req: http::Request<Body>, reply: F) -> http::Response<Body>
where
    R: Message + Default + Send + 'static,
    F: FnOnce(Vec<u8>) -> Fut + Send + 'static,
    Fut: Future<Output = R> + Send + 'static,
{
    struct Once<F>(Option<F>);
    impl<R, F, Fut> UnaryService<Vec<u8>> for Once<F>
    where
        R: Send + 'static,
        F: FnOnce(Vec<u8>) -> Fut + Send + 'static,
        Fut: Future<Output = R> + Send + 'static,
    {
        type Response = R;
        type Future = Pin<Box<dyn Future<Output = Result<tonic::Response<R>, Status>> + Send>>;
        fn call(&mut self, req: tonic::Request<Vec<u8>>) -> Self::Future {
            let reply = self.0.take();
            Box::pin(async move {
                let reply = reply.ok_or_else(|| Status::internal("called twice"))?;
                Ok(tonic::Response::new(reply(req.into_inner()).await))
            })
        }
    }
    tonic::server::Grpc::new(RawCodec::<R>(PhantomData))
        .unary(Once(Some(reply)), req)
        .await
}

/// Decodes nothing (keeps the request's bytes), encodes replies with prost.
struct RawCodec<R>(PhantomData<fn() -> R>);

impl<R: Message + Send + 'static> Codec for RawCodec<R> {
    type Encode = R;
    type Decode = Vec<u8>;
    type Encoder = RawCodec<R>;
    type Decoder = RawCodec<R>;
    fn encoder(&mut self) -> Self::Encoder {
        RawCodec(PhantomData)
    }
    fn decoder(&mut self) -> Self::Decoder {
        RawCodec(PhantomData)
    }
}

impl<R: Message> Encoder for RawCodec<R> {
    type Item = R;
    type Error = Status;
    fn encode(&mut self, item: R, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item.encode_to_vec());
        Ok(())
    }
}

impl<R> Decoder for RawCodec<R> {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

macro_rules! named_service {
    ($name:ident, $service:literal) => {
        #[derive(Clone)]
        struct $name(Daemon);
        impl NamedService for $name {
            const NAME: &'static str = $service;
        }
        impl tower_service::Service<http::Request<Body>> for $name {
            type Response = http::Response<Body>;
            type Error = Infallible;
            type Future =
                Pin<Box<dyn Future<Output = Result<http::Response<Body>, Infallible>> + Send>>;
            fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
                Poll::Ready(Ok(()))
            }
            fn call(&mut self, req: http::Request<Body>) -> Self::Future {
                let daemon = self.0.clone();
                Box::pin(async move { Ok(daemon.handle(req).await) })
            }
        }
    };
}

named_service!(ControlService, "moby.buildkit.v1.Control");
named_service!(BridgeService, "moby.buildkit.v1.frontend.LLBBridge");

/// A temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Starts the stand-in on a fresh unix socket and connects a client to it.
async fn start() -> (Daemon, Client, TempDir) {
    let dir = std::env::temp_dir().join(format!(
        "kiln-go-wire-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let socket = dir.join("buildkitd.sock");
    let listener = tokio::net::UnixListener::bind(&socket).expect("bind");
    let daemon = Daemon::default();
    let server = tonic::transport::Server::builder()
        .add_service(ControlService(daemon.clone()))
        .add_service(BridgeService(daemon.clone()))
        .serve_with_incoming(tokio_stream::wrappers::UnixListenerStream::new(listener));
    tokio::spawn(server);
    let client = Client::connect(Address::Unix(socket), &TlsOptions::default())
        .await
        .expect("connect");
    (daemon, client, TempDir(dir))
}

/// The top-level length-delimited fields of `b`: (tag, payload).
fn fields(mut b: &[u8]) -> Vec<(u32, Vec<u8>)> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let (tag, wire) = prost::encoding::decode_key(&mut b).expect("key");
        let before = b;
        if wire == prost::encoding::WireType::LengthDelimited {
            let len = prost::encoding::decode_varint(&mut b).expect("len");
            let len = usize::try_from(len).expect("len");
            out.push((tag, b[..len].to_vec()));
            b = &b[len..];
        } else {
            prost::encoding::skip_field(wire, tag, &mut b, Default::default()).expect("skip");
            out.push((tag, before[..before.len() - b.len()].to_vec()));
        }
    }
    out
}

#[tokio::test]
async fn control_solve_carries_the_files_bytes_untouched() {
    let (daemon, client, _dir) = start().await;
    let file = go_written();
    let resp = client
        .solve(
            SolveRequest {
                definition: Some(DefinitionBytes::Raw(file.clone().into())),
                build_ref: Some("kiln-test".into()),
                session_id: Some("session".into()),
                frontend_attrs: BTreeMap::from([
                    ("b".into(), "2".into()),
                    ("a".into(), String::new()),
                ]),
                exporters: vec![ExporterSpec {
                    kind: "image".into(),
                    attrs: BTreeMap::from([("push".into(), String::new())]),
                }],
                ..Default::default()
            },
            None,
        )
        .await
        .expect("solve");
    assert_eq!(resp.exporter_response["k"], "v");

    let calls = daemon.calls(methods::CONTROL_SOLVE);
    assert_eq!(calls.len(), 1);
    let body = &calls[0].body;
    let defs: Vec<Vec<u8>> = fields(body)
        .into_iter()
        .filter(|(t, _)| *t == 2)
        .map(|(_, v)| v)
        .collect();
    assert_eq!(defs.len(), 1, "one definition field");
    assert_eq!(defs[0], file, "holding the file's bytes");
    // The rest is Go's encoding of the request: decoding loses nothing, so
    // encoding the decoded request the Go way gives the same bytes.
    let mut decoded = control::SolveRequest::decode(body.as_slice()).expect("decode");
    assert_eq!(decoded.frontend_attrs["a"], "");
    decoded.definition = None;
    let again = WithDefinition::new(decoded, Some(DefinitionBytes::Raw(file.into())));
    assert_eq!(&again.to_go_bytes(), body);
    // An empty attr value is on the wire (`12 00`), not left out.
    assert!(body.windows(8).any(|w| w == b"\x0a\x04push\x12\x00"));
}

#[tokio::test]
async fn gateway_solve_and_return_are_encoded_as_go_does() {
    let (daemon, client, _dir) = start().await;
    let gw = client
        .gateway(
            SolveRequest {
                build_ref: Some("kiln-gw".into()),
                ..Default::default()
            },
            None,
        )
        .await
        .expect("gateway");
    let file = go_written();
    let id = gw
        .solve(DefinitionBytes::Raw(file.clone().into()), false)
        .await
        .expect("solve");
    assert_eq!(id, "ref-1");
    let platform = |arch: &str| pb::Platform {
        architecture: arch.into(),
        os: "linux".into(),
        ..Default::default()
    };
    let resp = gw
        .finish(GatewayResult {
            refs: vec![
                ("linux/arm64".into(), "ref-2".into(), platform("arm64")),
                ("linux/amd64".into(), "ref-1".into(), platform("amd64")),
            ],
            image_configs: BTreeMap::from([(
                "containerimage.config/linux/amd64".into(),
                b"{}".to_vec(),
            )]),
            metadata: BTreeMap::from([("empty".into(), Vec::new())]),
            attestations: BTreeMap::from([(
                "linux/amd64".into(),
                vec![kiln_client::gateway::InTotoAttestation {
                    ref_id: "ref-3".into(),
                    path: "/kiln.spdx.json".into(),
                    predicate_type: "https://spdx.dev/Document".into(),
                    metadata: BTreeMap::from([("reason".into(), b"sbom".to_vec())]),
                }],
            )]),
        })
        .await
        .expect("finish");
    assert_eq!(resp.build_ref, "kiln-gw");

    let solve = daemon.calls(methods::LLB_BRIDGE_SOLVE);
    assert_eq!(solve.len(), 1);
    assert_eq!(solve[0].build_id.as_deref(), Some("kiln-gw"));
    assert_eq!(fields(&solve[0].body)[0], (1, file));

    let ret = daemon.calls(methods::LLB_BRIDGE_RETURN);
    assert_eq!(ret.len(), 1);
    assert_eq!(ret[0].build_id.as_deref(), Some("kiln-gw"));
    let decoded = gateway::ReturnRequest::decode(ret[0].body.as_slice()).expect("decode");
    assert_eq!(
        decoded.to_go_bytes(),
        ret[0].body,
        "Go's bytes, nothing lost"
    );
    let result = &fields(&ret[0].body)[0].1;
    let tags: Vec<u32> = fields(result).into_iter().map(|(t, _)| t).collect();
    // Metadata entries (sorted), the attestations, then the refs oneof last.
    assert_eq!(tags, [10, 10, 10, 12, 4]);
    let att = &decoded.result.as_ref().expect("result").attestations["linux/amd64"].attestation[0];
    assert_eq!(att.r#ref.as_ref().map(|r| r.id.as_str()), Some("ref-3"));
    assert_eq!(att.path, "/kiln.spdx.json");
    assert_eq!(att.in_toto_predicate_type, "https://spdx.dev/Document");
    assert_eq!(att.metadata["reason"], b"sbom");
    let keys: Vec<Vec<u8>> = fields(result)
        .into_iter()
        .filter(|(t, _)| *t == 10)
        .map(|(_, entry)| fields(&entry)[0].1.clone())
        .collect();
    assert_eq!(
        keys,
        [
            b"containerimage.config/linux/amd64".to_vec(),
            b"empty".to_vec(),
            b"refs.platforms".to_vec()
        ]
    );
}
