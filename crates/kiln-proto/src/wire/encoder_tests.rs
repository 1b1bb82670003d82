//! The Go rules of the hand-written encoders: whole, sorted map entries,
//! oneofs last, raw definitions forwarded untouched, and lossless round
//! trips through prost.

use std::collections::{BTreeMap, HashMap};

use prost::Message;

use super::{DefinitionBytes, GoEncode, WithDefinition};
use crate::moby::buildkit::v1::sourcepolicy;
use crate::{control, gateway, google, pb};

/// What Go's `llb.WriteTo` wrote (map entries in Go's random order, so not
/// what any re-encoding gives).
const GO_WRITTEN: &[u8] = include_bytes!("../../tests/fixtures/go-llb/image_run.pb");
const DIGEST: &str = "sha256:325521c814056e5b3ab7ed876967146cb5fe7bdd46d03a5d51fb69bdca1e1c78";

/// The top-level fields of `b`: (tag, wire type, payload of a
/// length-delimited field or the varint's bytes).
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

fn tags(b: &[u8]) -> Vec<u32> {
    fields(b).into_iter().map(|(t, _)| t).collect()
}

/// `key` as a map entry's length-delimited field 1.
fn key(k: &str) -> Vec<u8> {
    let mut v = vec![0x0a, u8::try_from(k.len()).expect("short key")];
    v.extend_from_slice(k.as_bytes());
    v
}

#[test]
fn an_empty_string_map_value_is_written() {
    let op = pb::SourceOp {
        identifier: "local://context".into(),
        attrs: BTreeMap::from([("local.unique".to_string(), String::new())]),
    };
    let go = op.to_go_bytes();
    let mut entry = key("local.unique");
    entry.extend_from_slice(&[0x12, 0x00]);
    assert_eq!(fields(&go)[1], (2, entry.clone()));
    // prost leaves the value out, so the daemon's re-marshaled op (and its
    // digest) would differ from what kiln sent.
    let prost_entry = &fields(&op.encode_to_vec())[1].1;
    assert_eq!(prost_entry, &key("local.unique"));
    // Inside an op too: the op digest is taken over these bytes.
    let whole = pb::Op {
        op: Some(pb::op::Op::Source(op.clone())),
        ..Default::default()
    };
    assert_eq!(fields(&super::encode_op(&whole)), [(3, go)]);
}

#[test]
fn an_empty_message_map_value_is_written() {
    let source = pb::Source {
        locations: BTreeMap::from([(DIGEST.to_string(), pb::Locations::default())]),
        infos: vec![],
    };
    let go = source.to_go_bytes();
    let mut entry = key(DIGEST);
    entry.extend_from_slice(&[0x12, 0x00]);
    assert_eq!(fields(&go), [(1, entry)]);
    assert_ne!(go, source.encode_to_vec(), "prost drops the empty value");
    // Decoded by prost it is the same map: Go's bytes lose nothing.
    assert_eq!(pb::Source::decode(go.as_slice()).expect("decode"), source);
}

#[test]
fn a_false_bool_value_and_an_empty_key_are_written() {
    let md = pb::OpMetadata {
        caps: BTreeMap::from([(String::new(), false), ("platform".to_string(), true)]),
        ..Default::default()
    };
    let go = md.to_go_bytes();
    let mut platform = key("platform");
    platform.extend_from_slice(&[0x10, 0x01]);
    assert_eq!(
        fields(&go),
        [(5, vec![0x0a, 0x00, 0x10, 0x00]), (5, platform)]
    );
}

#[test]
fn maps_are_written_sorted_by_key() {
    let keys: Vec<String> = (0..64).map(|i| format!("k{:02}", (i * 37) % 64)).collect();
    let forward: HashMap<String, String> = keys.iter().map(|k| (k.clone(), k.clone())).collect();
    let backward: HashMap<String, String> =
        keys.iter().rev().map(|k| (k.clone(), k.clone())).collect();
    let exporter = |attrs| control::Exporter {
        r#type: "image".into(),
        attrs,
    };
    let go = exporter(forward).to_go_bytes();
    assert_eq!(go, exporter(backward).to_go_bytes());
    let written: Vec<Vec<u8>> = fields(&go)
        .into_iter()
        .filter(|(t, _)| *t == 2)
        .map(|(_, entry)| fields(&entry)[0].1.clone())
        .collect();
    let mut sorted = written.clone();
    sorted.sort();
    assert_eq!(written.len(), 64);
    assert_eq!(written, sorted);
}

#[test]
fn the_result_oneof_comes_after_metadata_and_attestations() {
    let result = gateway::Result {
        metadata: HashMap::from([
            ("b".to_string(), b"2".to_vec()),
            ("a".to_string(), Vec::new()),
        ]),
        attestations: HashMap::from([("linux/amd64".to_string(), Default::default())]),
        result: Some(gateway::result::Result::Ref(gateway::Ref {
            id: "ref".into(),
            def: None,
        })),
    };
    let go = result.to_go_bytes();
    assert_eq!(tags(&go), [10, 10, 12, 3]);
    assert_eq!(
        tags(&result.encode_to_vec())[0],
        3,
        "prost writes tag order"
    );
    // An empty oneof member has presence: it is written.
    let empty = gateway::Result {
        result: Some(gateway::result::Result::RefDeprecated(String::new())),
        ..Default::default()
    };
    assert_eq!(empty.to_go_bytes(), [0x0a, 0x00]);
}

#[test]
fn a_raw_definition_is_forwarded_untouched_in_a_control_solve_request() {
    let canonical = pb::Definition::decode(GO_WRITTEN)
        .expect("decode")
        .to_go_bytes();
    assert_ne!(canonical, GO_WRITTEN, "Go wrote its maps in random order");
    let req = WithDefinition::new(
        full_control_request(),
        Some(DefinitionBytes::Raw(GO_WRITTEN.to_vec().into())),
    );
    let bytes = req.to_go_bytes();
    let written = fields(&bytes);
    let defs: Vec<&Vec<u8>> = written
        .iter()
        .filter(|(t, _)| *t == 2)
        .map(|(_, v)| v)
        .collect();
    assert_eq!(defs, [&GO_WRITTEN.to_vec()], "the file's bytes, once");
    // Everything else is what the request alone gives.
    let mut without = req.request.clone();
    without.definition = None;
    let rest: Vec<(u32, Vec<u8>)> = written.into_iter().filter(|(t, _)| *t != 2).collect();
    assert_eq!(rest, fields(&without.to_go_bytes()));
    assert_eq!(
        DefinitionBytes::from(GO_WRITTEN.to_vec()).to_bytes(),
        GO_WRITTEN
    );
}

#[test]
fn a_raw_definition_is_forwarded_untouched_in_a_gateway_solve_request() {
    let req = WithDefinition::new(
        gateway::SolveRequest {
            allow_result_return: true,
            evaluate: true,
            ..Default::default()
        },
        Some(DefinitionBytes::from(GO_WRITTEN.to_vec())),
    );
    let bytes = req.to_go_bytes();
    assert_eq!(fields(&bytes)[0], (1, GO_WRITTEN.to_vec()));
    assert_eq!(tags(&bytes), [1, 5, 14]);
}

#[test]
fn a_given_definition_replaces_the_requests_own() {
    let own = pb::Definition {
        def: vec![b"own".to_vec()],
        ..Default::default()
    };
    let given = pb::Definition {
        def: vec![b"given".to_vec()],
        ..Default::default()
    };
    let request = control::SolveRequest {
        definition: Some(own.clone()),
        ..Default::default()
    };
    let with = |d: Option<DefinitionBytes>| WithDefinition::new(request.clone(), d).to_go_bytes();
    let decode = |b: Vec<u8>| control::SolveRequest::decode(b.as_slice()).expect("decode");
    assert_eq!(decode(with(None)).definition, Some(own));
    assert_eq!(
        decode(with(Some(given.clone().into()))).definition,
        Some(given)
    );
    assert_eq!(
        WithDefinition::from(request.clone()).to_go_bytes(),
        request.to_go_bytes()
    );
}

/// Decoding Go's bytes with prost and encoding them again gives the same
/// bytes and the same value, for every hand-encoded message with every
/// field set (empty map values included).
#[test]
fn prost_decoding_and_go_encoding_round_trip() {
    fn check<M: Message + GoEncode + Default + PartialEq + std::fmt::Debug>(m: &M) {
        let go = m.to_go_bytes();
        let back = M::decode(go.as_slice()).expect("decode");
        assert_eq!(&back, m);
        assert_eq!(back.to_go_bytes(), go);
    }
    check(&full_control_request());
    check(&full_gateway_request());
    check(&full_resolve_request());
    for result in [
        gateway::result::Result::RefDeprecated("id".into()),
        gateway::result::Result::RefsDeprecated(gateway::RefMapDeprecated {
            refs: HashMap::from([
                ("linux/amd64".into(), "a".into()),
                ("x".into(), String::new()),
            ]),
        }),
        gateway::result::Result::Ref(gateway::Ref {
            id: "id".into(),
            def: Some(full_definition()),
        }),
        gateway::result::Result::Refs(gateway::RefMap {
            refs: HashMap::from([
                ("linux/amd64".into(), gateway::Ref::default()),
                (
                    "linux/arm64".into(),
                    gateway::Ref {
                        id: "b".into(),
                        def: Some(full_definition()),
                    },
                ),
            ]),
        }),
    ] {
        check(&full_return_request(result));
    }
    check(&build_op());
    // The raw definition inside a request decodes to Go's definition.
    let req = WithDefinition::new(
        control::SolveRequest::default(),
        Some(GO_WRITTEN.to_vec().into()),
    );
    let decoded = control::SolveRequest::decode(req.to_go_bytes().as_slice()).expect("decode");
    assert_eq!(
        decoded.definition,
        Some(pb::Definition::decode(GO_WRITTEN).expect("decode"))
    );
}

/// Where no map value is empty and no oneof is out of place, Go's bytes are
/// prost's: the hand-written encoders add nothing and drop nothing.
#[test]
fn without_empty_values_go_bytes_equal_prost_bytes() {
    let mut def = full_definition();
    def.metadata
        .retain(|_, md| *md != pb::OpMetadata::default());
    for md in def.metadata.values_mut() {
        md.description.retain(|_, v| !v.is_empty());
        md.caps.retain(|_, on| *on);
    }
    if let Some(src) = &mut def.source {
        src.locations.retain(|_, l| !l.locations.is_empty());
        for info in &mut src.infos {
            info.definition = None;
        }
    }
    assert_ne!(def, full_definition());
    assert_eq!(def.to_go_bytes(), def.encode_to_vec());
    let exporter = control::Exporter {
        r#type: "image".into(),
        attrs: HashMap::from([("name".into(), "x".into())]),
    };
    assert_eq!(exporter.to_go_bytes(), exporter.encode_to_vec());
}

fn full_definition() -> pb::Definition {
    let op = pb::Op {
        inputs: vec![pb::Input {
            digest: DIGEST.into(),
            index: 1,
        }],
        platform: Some(pb::Platform {
            architecture: "arm64".into(),
            os: "linux".into(),
            variant: "v8".into(),
            ..Default::default()
        }),
        constraints: Some(pb::WorkerConstraints {
            filter: vec!["a==b".into()],
        }),
        op: Some(pb::op::Op::Source(pb::SourceOp {
            identifier: "local://context".into(),
            attrs: BTreeMap::from([
                ("local.unique".into(), "x".into()),
                ("local.followpaths".into(), String::new()),
            ]),
        })),
    };
    let locations = pb::Locations {
        locations: vec![pb::Location {
            source_index: 0,
            ranges: vec![pb::Range {
                start: Some(pb::Position {
                    line: 1,
                    character: 0,
                }),
                end: Some(pb::Position {
                    line: 2,
                    character: 3,
                }),
            }],
        }],
    };
    pb::Definition {
        def: vec![super::encode_op(&op), Vec::new()],
        metadata: BTreeMap::from([
            (
                DIGEST.into(),
                pb::OpMetadata {
                    ignore_cache: true,
                    description: BTreeMap::from([
                        ("llb.customname".into(), "step".into()),
                        ("empty".into(), String::new()),
                    ]),
                    export_cache: Some(pb::ExportCache { value: true }),
                    caps: BTreeMap::from([("source.local".into(), true), ("off".into(), false)]),
                    progress_group: Some(pb::ProgressGroup {
                        id: "g".into(),
                        name: "group".into(),
                        weak: true,
                    }),
                },
            ),
            ("sha256:empty".into(), pb::OpMetadata::default()),
        ]),
        source: Some(pb::Source {
            locations: BTreeMap::from([
                (DIGEST.into(), locations),
                ("sha256:empty".into(), pb::Locations::default()),
            ]),
            infos: vec![pb::SourceInfo {
                filename: "kiln.toml".into(),
                data: b"[build]\n".to_vec(),
                definition: Some(pb::Definition {
                    def: vec![vec![0x0a, 0x00]],
                    metadata: BTreeMap::from([("sha256:x".into(), pb::OpMetadata::default())]),
                    source: Some(pb::Source::default()),
                }),
                language: "toml".into(),
            }],
        }),
    }
}

fn attrs() -> HashMap<String, String> {
    HashMap::from([
        ("ref".into(), "registry:5000/cache".into()),
        ("mode".into(), "max".into()),
        ("empty".into(), String::new()),
    ])
}

fn policy() -> sourcepolicy::Policy {
    sourcepolicy::Policy {
        version: 1,
        rules: vec![sourcepolicy::Rule {
            action: sourcepolicy::PolicyAction::Convert as i32,
            selector: Some(sourcepolicy::Selector {
                identifier: "docker-image://alpine*".into(),
                match_type: 1,
                constraints: vec![sourcepolicy::AttrConstraint {
                    key: "k".into(),
                    value: "v".into(),
                    condition: 1,
                }],
            }),
            updates: Some(sourcepolicy::Update {
                identifier: "docker-image://alpine@sha256:0".into(),
                attrs: attrs(),
            }),
        }],
    }
}

fn full_control_request() -> control::SolveRequest {
    let entry = |t: &str| control::CacheOptionsEntry {
        r#type: t.into(),
        attrs: attrs(),
    };
    control::SolveRequest {
        r#ref: "kiln-1".into(),
        definition: Some(full_definition()),
        exporter_deprecated: "image".into(),
        exporter_attrs_deprecated: attrs(),
        session: "session".into(),
        frontend: "dockerfile.v0".into(),
        frontend_attrs: attrs(),
        cache: Some(control::CacheOptions {
            export_ref_deprecated: "r".into(),
            import_refs_deprecated: vec!["a".into(), String::new()],
            export_attrs_deprecated: attrs(),
            exports: vec![entry("registry")],
            imports: vec![entry("local"), entry("gha")],
        }),
        entitlements: vec!["network.host".into()],
        frontend_inputs: HashMap::from([
            ("context".into(), full_definition()),
            ("empty".into(), pb::Definition::default()),
        ]),
        internal: true,
        source_policy: Some(policy()),
        exporters: vec![control::Exporter {
            r#type: "tar".into(),
            attrs: attrs(),
        }],
        enable_session_exporter: true,
        source_policy_session: "sps".into(),
    }
}

fn full_gateway_request() -> gateway::SolveRequest {
    gateway::SolveRequest {
        definition: Some(full_definition()),
        frontend: "dockerfile.v0".into(),
        frontend_opt: attrs(),
        allow_result_return: true,
        allow_result_array_ref: true,
        r#final: true,
        exporter_attr: b"{}".to_vec(),
        cache_imports: vec![gateway::CacheOptionsEntry {
            r#type: "registry".into(),
            attrs: attrs(),
        }],
        frontend_inputs: HashMap::from([("context".into(), full_definition())]),
        evaluate: true,
        source_policies: vec![policy(), sourcepolicy::Policy::default()],
    }
}

fn full_resolve_request() -> gateway::ResolveImageConfigRequest {
    gateway::ResolveImageConfigRequest {
        r#ref: "alpine".into(),
        platform: Some(pb::Platform {
            architecture: "amd64".into(),
            os: "linux".into(),
            ..Default::default()
        }),
        resolve_mode: "pull".into(),
        log_name: "resolve".into(),
        resolver_type: 1,
        session_id: "s".into(),
        store_id: "store".into(),
        source_policies: vec![policy()],
    }
}

fn full_return_request(result: gateway::result::Result) -> gateway::ReturnRequest {
    gateway::ReturnRequest {
        result: Some(gateway::Result {
            metadata: HashMap::from([
                ("containerimage.config".into(), b"{}".to_vec()),
                ("empty".into(), Vec::new()),
            ]),
            attestations: HashMap::from([(
                "linux/amd64".into(),
                gateway::Attestations {
                    attestation: vec![gateway::Attestation {
                        kind: 1,
                        metadata: HashMap::from([("k".into(), Vec::new())]),
                        r#ref: Some(gateway::Ref {
                            id: "att".into(),
                            def: Some(full_definition()),
                        }),
                        path: "/sbom.json".into(),
                        in_toto_predicate_type: "https://spdx.dev/Document".into(),
                        in_toto_subjects: vec![gateway::InTotoSubject {
                            kind: 1,
                            digest: vec![DIGEST.into()],
                            name: "x".into(),
                        }],
                    }],
                },
            )]),
            result: Some(result),
        }),
        error: Some(google::rpc::Status {
            code: 2,
            message: "failed".into(),
            details: vec![],
        }),
    }
}

fn build_op() -> pb::Op {
    pb::Op {
        inputs: vec![],
        platform: None,
        constraints: Some(pb::WorkerConstraints::default()),
        op: Some(pb::op::Op::Build(pb::BuildOp {
            builder: -1,
            inputs: BTreeMap::from([
                ("a".into(), pb::BuildInput::default()),
                ("b".into(), pb::BuildInput { input: 1 }),
            ]),
            def: Some(full_definition()),
            attrs: BTreeMap::from([("llbfilename".into(), String::new())]),
        })),
    }
}
