//! Definitions written by BuildKit's Go `client/llb` (v0.29.0), decoded and
//! encoded again through kiln-proto: the bytes must be Go's deterministic
//! encoding, byte for byte (see `fixtures/go-llb/README.md`).

use std::path::PathBuf;

use kiln_proto::prost::Message;
use kiln_proto::wire::{self, GoEncode};
use kiln_proto::{control, pb};
use serde_json::Value;
use sha2::{Digest, Sha256};

const CASES: [&str; 3] = ["image_run", "run_cache_locked", "local_copy_include"];

struct Case {
    name: &'static str,
    /// As Go's `llb.WriteTo` wrote it (map entries in random order).
    written: Vec<u8>,
    /// protobuf-go's deterministic encoding of the same definition.
    canonical: Vec<u8>,
    json: Value,
}

fn load(name: &'static str) -> Case {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/go-llb");
    let read = |file: String| {
        std::fs::read(dir.join(&file)).unwrap_or_else(|e| panic!("read {file}: {e}"))
    };
    Case {
        name,
        written: read(format!("{name}.pb")),
        canonical: read(format!("{name}.canonical.pb")),
        json: serde_json::from_slice(&read(format!("{name}.json"))).expect("fixture JSON"),
    }
}

fn sha256(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|s| s.as_str().expect("string").to_string())
        .collect()
}

#[test]
fn fixtures_are_what_the_readme_describes() {
    for case in CASES.map(load) {
        assert_eq!(case.json["case"], case.name);
        assert_eq!(
            sha256(&case.written),
            case.json["pb_sha256"],
            "{}",
            case.name
        );
        assert_eq!(
            sha256(&case.canonical),
            case.json["canonical_pb_sha256"],
            "{}",
            case.name
        );
        assert_eq!(case.written.len(), case.canonical.len());
    }
}

#[test]
fn re_encoding_gives_gos_canonical_bytes() {
    for case in CASES.map(load) {
        let from_canonical = pb::Definition::decode(case.canonical.as_slice()).expect("decode");
        assert_eq!(
            from_canonical.to_go_bytes(),
            case.canonical,
            "{}: canonical decoded and encoded again",
            case.name
        );
        let from_written = pb::Definition::decode(case.written.as_slice()).expect("decode");
        assert_eq!(from_written, from_canonical);
        assert_eq!(
            from_written.to_go_bytes(),
            case.canonical,
            "{}: as written by llb.WriteTo, decoded and encoded",
            case.name
        );
        // What kiln did before: prost drops the empty `Locations` values.
        let prost = from_written.encode_to_vec();
        assert_eq!(
            case.canonical.len() - prost.len(),
            2 * case.json["source"]["location_keys"]
                .as_array()
                .expect("keys")
                .len(),
            "{}: prost leaves out one `12 00` per location entry",
            case.name
        );
    }
}

#[test]
fn op_digests_and_metadata_are_gos() {
    for case in CASES.map(load) {
        let def = pb::Definition::decode(case.canonical.as_slice()).expect("decode");
        let digests: Vec<String> = def.def.iter().map(|op| sha256(op)).collect();
        assert_eq!(digests, strings(&case.json["op_digests"]), "{}", case.name);
        for (i, bytes) in def.def.iter().enumerate() {
            // Each op, decoded and encoded again, keeps its bytes (and so
            // its digest): kiln's op encoding is Go's.
            let op = pb::Op::decode(bytes.as_slice()).expect("op");
            assert_eq!(&wire::encode_op(&op), bytes, "{} op {i}", case.name);
            let caps: Vec<String> = def.metadata[&digests[i]].caps.keys().cloned().collect();
            assert_eq!(caps, strings(&case.json["caps"][i]), "{} op {i}", case.name);
        }
        let keys: Vec<String> = def.metadata.keys().cloned().collect();
        assert_eq!(keys, strings(&case.json["metadata_keys"]));
        let source = def.source.as_ref().expect("Go always writes a source");
        assert!(source.infos.is_empty());
        let location_keys: Vec<String> = source.locations.keys().cloned().collect();
        assert_eq!(
            location_keys,
            strings(&case.json["source"]["location_keys"])
        );
        assert!(source.locations.values().all(|l| l.locations.is_empty()));
    }
}

#[test]
fn a_go_written_definition_travels_untouched_in_a_solve_request() {
    for case in CASES.map(load) {
        let req = wire::WithDefinition::new(
            control::SolveRequest {
                r#ref: "kiln-test".into(),
                session: "s".into(),
                ..Default::default()
            },
            Some(wire::DefinitionBytes::Raw(case.written.clone().into())),
        );
        let bytes = req.to_go_bytes();
        let needle = {
            let mut v = vec![0x12];
            kiln_proto::prost::encoding::encode_varint(case.written.len() as u64, &mut v);
            v.extend_from_slice(&case.written);
            v
        };
        assert!(
            bytes.windows(needle.len()).any(|w| w == needle),
            "{}: the file's bytes are inside the request",
            case.name
        );
        let decoded = control::SolveRequest::decode(bytes.as_slice()).expect("decode");
        assert_eq!(
            decoded.definition.expect("definition").to_go_bytes(),
            case.canonical
        );
    }
}
