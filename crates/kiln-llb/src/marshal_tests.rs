//! Tests of whole-graph marshaling: order, de-duplication, metadata,
//! determinism, deep graphs, source maps and decoding.

use serde_json::json;

use crate::testutil::{amd64, def};
use crate::*;

fn alpine() -> State {
    image("alpine").expect("valid")
}

/// Every op's inputs are listed before it; the terminal op is last and has
/// exactly one input; no digest is listed twice.
fn assert_well_formed(d: &Definition) {
    let ops = d.ops().expect("decode");
    let mut seen = std::collections::BTreeSet::new();
    for (i, op) in ops.iter().enumerate() {
        for input in &op.op.inputs {
            assert!(
                seen.contains(&input.digest),
                "op {i} uses {} before it is listed",
                input.digest
            );
        }
        assert!(
            seen.insert(op.digest.to_string()),
            "{} listed twice",
            op.digest
        );
        assert!(op.metadata.is_some(), "every op has metadata");
    }
    let last = ops.last().expect("not empty");
    assert!(last.op.op.is_none());
    assert_eq!(last.op.inputs.len(), 1);
}

#[test]
fn ops_are_deduplicated_by_digest_and_ordered() {
    // Two separately built but identical image states are one op.
    let a = alpine();
    let b = alpine().dir("/elsewhere");
    let left = a
        .run(ExecOptions::shell("make a").mount(Mount::scratch("/out")))
        .get_mount("/out");
    let right = b.run(ExecOptions::shell("make b"));
    let st = merge(&[left, right.root(), alpine()]);
    let d = def(&st);
    assert_well_formed(&d);
    let kinds: Vec<String> = dump::to_json(&d)["ops"]
        .as_array()
        .expect("ops")
        .iter()
        .map(|o| o["op"]["kind"].as_str().unwrap_or("?").to_string())
        .collect();
    // Go's order: depth-first through the merge inputs.
    assert_eq!(kinds, ["source", "exec", "exec", "merge", "terminal"]);
}

#[test]
fn metadata_of_identical_ops_is_merged() {
    let a = image_with("alpine", ImageOptions::new().custom_name("first")).expect("valid");
    let b = image_with(
        "alpine",
        ImageOptions::new().custom_name("second").ignore_cache(),
    )
    .expect("valid");
    let d = def(&merge(&[a, b]));
    let ops = d.ops().expect("decode");
    assert_eq!(ops.len(), 3, "one image op, the merge, the terminal");
    let md = ops[0].metadata.as_ref().expect("metadata");
    assert_eq!(md.description["llb.customname"], "second");
    assert!(md.ignore_cache);
}

#[test]
fn terminal_caps_follow_what_ops_use() {
    let plain = def(&alpine());
    let last = plain.ops().expect("decode").pop().expect("terminal");
    let caps: Vec<&String> = last.metadata.as_ref().expect("md").caps.keys().collect();
    assert_eq!(caps, ["constraints", "platform"]);

    let st = image_with(
        "alpine",
        ImageOptions::new().custom_name("x").export_cache(true),
    )
    .expect("valid")
    .run(ExecOptions::shell("true").ignore_cache())
    .root();
    let d = def(&st);
    let last = d.ops().expect("decode").pop().expect("terminal");
    let caps: Vec<&String> = last.metadata.as_ref().expect("md").caps.keys().collect();
    assert_eq!(
        caps,
        [
            "constraints",
            "meta.description",
            "meta.exportcache",
            "meta.ignorecache",
            "platform"
        ]
    );
}

#[test]
fn marshal_constraints_apply_to_every_op() {
    let c = amd64()
        .require("node.labels.fast==true")
        .description("kiln.build", "1")
        .ignore_cache();
    let st = alpine().run(ExecOptions::shell("true")).root();
    let json = dump::to_json(&st.marshal(&c).expect("marshal"));
    for op in json["ops"].as_array().expect("ops").iter().take(2) {
        assert_eq!(op["worker_constraints"], json!(["node.labels.fast==true"]));
        assert_eq!(op["metadata"]["description"]["kiln.build"], "1");
        assert_eq!(op["metadata"]["ignore_cache"], true);
    }
    // The terminal op has no platform and no worker constraints, as in Go.
    assert!(json["ops"][2].get("worker_constraints").is_none());
    assert!(json["ops"][2].get("platform").is_none());
}

#[test]
fn op_constraints_add_worker_filters() {
    let st = alpine().run(ExecOptions::shell("x").require("a==b"));
    let h = crate::testutil::head_with(&st, &amd64().require("c==d"));
    assert_eq!(h["worker_constraints"], json!(["c==d", "a==b"]));
}

#[test]
fn marshaling_is_deterministic_200_times() {
    fn build() -> State {
        let ctx = local_with(
            "context",
            LocalOptions::new()
                .exclude_patterns(["target"])
                .shared_key_hint("c"),
        );
        let go = image("golang:1.24")
            .expect("valid")
            .dir("/src")
            .add_env("CGO_ENABLED", "0");
        let built = go.run(
            ExecOptions::shell("go build -o /out/app .")
                .mount(Mount::bind("/src", &ctx).readonly())
                .mount(Mount::cache("/root/.cache/go-build", "gobuild"))
                .mount(Mount::scratch("/out"))
                .secret(SecretMount::env("netrc", "NETRC")),
        );
        let bin = built.get_mount("/out");
        let rt = scratch()
            .file(
                FileAction::from(Mkdir::new("/etc", 0o755)).mkfile(Mkfile::new(
                    "/etc/passwd",
                    0o644,
                    "x",
                )),
            )
            .copy(Copy::new(&bin, "/app", "/app").created_time(0));
        merge(&[
            rt,
            diff(
                &alpine(),
                &alpine()
                    .run(ExecOptions::shell("apk add ca-certificates"))
                    .root(),
            ),
        ])
    }
    let c = amd64();
    let first = build().marshal(&c).expect("marshal").to_bytes();
    let same_graph = build();
    for _ in 0..200 {
        // A fresh graph every time (new allocations, new addresses) ...
        assert_eq!(build().marshal(&c).expect("marshal").to_bytes(), first);
        // ... and the same graph marshaled again.
        assert_eq!(same_graph.marshal(&c).expect("marshal").to_bytes(), first);
    }
}

/// Every op kiln writes is already in the byte order the daemon re-marshals
/// it to (Go's: the op oneof after inputs, platform and constraints), so
/// the daemon keeps kiln's digests. Decoding and re-encoding Go's way gives
/// the same bytes for every kind of op.
#[test]
fn every_op_is_written_in_gos_byte_order() {
    use kiln_proto::prost::Message;
    let ctx = local_with("context", LocalOptions::new().exclude_patterns(["x"]));
    let exec = alpine()
        .run(
            ExecOptions::shell("true")
                .mount(Mount::bind("/src", &ctx).readonly())
                .mount(Mount::cache("/c", "c"))
                .mount(Mount::tmpfs("/t"))
                .secret(SecretMount::env("s", "S")),
        )
        .root();
    let files = scratch().file(
        FileAction::from(Mkdir::new("/d", 0o755))
            .mkfile(Mkfile::new("/d/f", 0o644, "x"))
            .copy(Copy::new(&exec, "/etc", "/etc")),
    );
    let st = merge(&[
        files.clone(),
        diff(&alpine(), &exec),
        git("https://example.com/r.git", "main"),
        http("https://example.com/f"),
    ]);
    let d = def(&st);
    let mut kinds = std::collections::HashSet::new();
    for bytes in &d.as_pb().def {
        let op = kiln_proto::pb::Op::decode(bytes.as_slice()).expect("decode");
        if let Some(k) = &op.op {
            kinds.insert(std::mem::discriminant(k));
        }
        assert_eq!(&kiln_proto::wire::encode_op(&op), bytes);
    }
    assert_eq!(kinds.len(), 5, "source, exec, file, merge and diff ops");
}

#[test]
fn deep_chains_do_not_overflow_the_stack() {
    // 20,000 ops in a line, marshaled and dropped on a test thread's stack.
    let mut st = alpine();
    for i in 0..10_000 {
        st = st.run(ExecOptions::new(["step", &i.to_string()])).root();
        st = st.mkfile(Mkfile::new(format!("/f{i}"), 0o644, ""));
    }
    let d = def(&st);
    assert_eq!(d.len(), 20_002);
    drop(st);
}

#[test]
fn source_locations_are_collected() {
    let map = SourceMap::new("kiln.toml", b"[build]\nmain = \"./cmd\"\n".to_vec()).language("toml");
    let st = alpine()
        .run(ExecOptions::shell("go build").location(map.location([Range::lines(2, 2)])))
        .root();
    let d = def(&st);
    let exec_digest = d.head().expect("head").expect("some").0;
    let json = dump::to_json(&d);
    assert_eq!(json["source"]["infos"][0]["filename"], "kiln.toml");
    assert_eq!(json["source"]["infos"][0]["language"], "toml");
    assert_eq!(
        json["source"]["locations"][exec_digest.as_str()],
        json!([{"source_index": 0, "ranges": [{"start": [2, 0], "end": [2, 0]}]}])
    );
}

#[test]
fn definition_round_trips_through_bytes() {
    let st = alpine().run(ExecOptions::shell("true")).root();
    let d = def(&st);
    let back = Definition::from_bytes(&d.to_bytes()).expect("decode");
    assert_eq!(back, d);
    assert_eq!(back.digests(), d.digests());
    let (head, index) = back.head().expect("head").expect("some");
    assert_eq!(index, 0);
    assert_eq!(
        back.metadata(&head)
            .map(|m| m.caps.contains_key("exec.meta.base")),
        Some(true)
    );
    assert!(matches!(
        Definition::from_bytes(&[0xff, 0xff]),
        Err(LlbError::Decode {
            what: "pb.Definition",
            ..
        })
    ));
    let broken = Definition::from_pb(pb::Definition {
        def: vec![vec![0x0a, 0x00]],
        ..Default::default()
    });
    assert!(matches!(broken.head(), Err(LlbError::Digest { .. })));
    let no_input = Definition::from_pb(pb::Definition {
        def: vec![Vec::new()],
        ..Default::default()
    });
    assert!(matches!(
        no_input.head(),
        Err(LlbError::MalformedDefinition { .. })
    ));
}

#[test]
fn dot_output_names_ops_mounts_and_secrets() {
    let st = alpine().run(
        ExecOptions::shell("go build")
            .custom_name("compile")
            .mount(Mount::cache("/root/.cache", "gocache"))
            .secret(SecretMount::env("tok", "TOKEN")),
    );
    let dot = dump::to_dot(&def(&st));
    assert!(dot.starts_with("digraph llb {"));
    assert!(dot.contains("label=\"compile\\n"));
    assert!(dot.contains("docker-image://docker.io/library/alpine:latest"));
    assert!(dot.contains("label=\"cache gocache\", shape=cylinder"));
    assert!(dot.contains("label=\"/root/.cache\", style=dashed"));
    assert!(dot.contains("label=\"$TOKEN\", style=dashed"));
    assert!(dot.contains("shape=doublecircle"));
    assert!(dot.trim_end().ends_with('}'));
}

/// Found by the `definition` fuzz target: an input digest holding a `"`
/// ended its DOT string, so a hostile Definition could add edges, nodes or
/// attributes (Graphviz reads the files named in `image=`).
#[test]
fn dot_escapes_input_digests() {
    let op = pb::Op {
        inputs: vec![pb::Input {
            digest: r#"x" -> "y"#.into(),
            index: 0,
        }],
        ..Default::default()
    };
    let d = Definition::from_pb(pb::Definition {
        def: vec![prost::Message::encode_to_vec(&op)],
        ..Default::default()
    });
    let dot = dump::to_dot(&d);
    let edge = dot.lines().find(|l| l.contains("->")).expect("an edge");
    assert!(edge.starts_with(r#"  "x\" -> \"y" -> ""#), "{edge}");
}

#[test]
fn state_metadata_accessors() {
    let st = scratch()
        .dir("/a")
        .dir("b/../c")
        .add_env("X", "1")
        .add_env("Y", "2")
        .add_env("X", "3")
        .user("app")
        .hostname("h")
        .network(NetMode::None)
        .security(SecurityMode::Insecure)
        .with_value("k", "v");
    assert_eq!(st.get_dir(), "/a/c");
    assert_eq!(
        st.env(),
        &[
            ("Y".to_string(), "2".to_string()),
            ("X".to_string(), "3".to_string())
        ]
    );
    assert_eq!(st.get_user(), Some("app"));
    assert_eq!(st.get_hostname(), Some("h"));
    assert_eq!(st.get_network(), NetMode::None);
    assert_eq!(st.get_security(), SecurityMode::Insecure);
    assert_eq!(st.value("k"), Some("v"));
    // Setters never change the original.
    let base = scratch();
    let _ = base.dir("/x").add_env("A", "B");
    assert_eq!(base.get_dir(), "/");
    assert!(base.env().is_empty());
}

#[test]
fn with_image_config_applies_env_dir_and_platform() {
    let config = br#"{"architecture":"arm64","os":"linux","config":{"Env":["PATH=/usr/local/go/bin:/usr/bin","GOPATH=/go","EMPTY"],"WorkingDir":"/go"}}"#;
    let st = alpine().with_image_config(config).expect("valid config");
    assert_eq!(st.get_env("GOPATH"), Some("/go"));
    assert_eq!(st.get_env("EMPTY"), Some(""));
    assert_eq!(st.get_dir(), "/go");
    assert_eq!(
        st.get_platform().map(ToString::to_string).as_deref(),
        Some("linux/arm64")
    );
    assert!(matches!(
        alpine().with_image_config(b"not json"),
        Err(LlbError::InvalidImageConfig { .. })
    ));
}

#[test]
fn reset_keeps_the_output_and_takes_other_metadata() {
    let a = alpine().dir("/a");
    let b = scratch().dir("/b").add_env("B", "1");
    let r = a.reset(&b);
    assert_eq!(r.get_dir(), "/b");
    assert_eq!(r.get_env("B"), Some("1"));
    assert_eq!(crate::testutil::head(&r)["op"]["kind"], "source");
}

/// As Go v0.29's collector: every op but the terminal one has a
/// `locations` entry, empty when it has no source location, and the entry
/// is written whole (`12 00`): a daemon that reads a nil `Locations` from a
/// dropped value crashes when that step fails.
#[test]
fn every_op_has_a_source_locations_entry_written_whole() {
    let map = SourceMap::new("kiln.toml", b"[build]\n".to_vec());
    let st = alpine()
        .run(ExecOptions::shell("go build").location(map.location([Range::lines(1, 1)])))
        .root();
    let d = def(&st);
    let ops = d.ops().expect("decode");
    let locations = &d.as_pb().source.as_ref().expect("source").locations;
    let keys: Vec<&str> = locations.keys().map(String::as_str).collect();
    let mut want = vec![ops[0].digest.as_str(), ops[1].digest.as_str()];
    want.sort_unstable();
    assert_eq!(keys, want, "the source and the exec, not the terminal op");
    assert!(locations[ops[0].digest.as_str()].locations.is_empty());
    assert_eq!(locations[ops[1].digest.as_str()].locations.len(), 1);

    let bytes = d.to_bytes();
    let mut entry = vec![0x0a, 71];
    entry.extend_from_slice(ops[0].digest.as_str().as_bytes());
    entry.extend_from_slice(&[0x12, 0x00]);
    assert!(bytes.windows(entry.len()).any(|w| w == entry));
    assert_eq!(Definition::from_bytes(&bytes).expect("decode"), d);
}
