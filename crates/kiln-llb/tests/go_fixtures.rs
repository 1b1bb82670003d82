//! kiln-llb builds the graphs of the Go-written fixtures (BuildKit v0.29's
//! `client/llb`, kept in `kiln-proto/tests/fixtures/go-llb/`): the same op
//! digests and the same definition bytes (metadata and source map
//! included), but for one difference the tests name: kiln's execs declare
//! `exec.meta.setsdefaultpath` (Go's, marshaled without caps, declare
//! nothing and carry no PATH, which kiln cannot express). File ops carry no
//! platform, as Go's have not since BuildKit v0.12.

use std::path::PathBuf;

use kiln_llb::{
    local_with, pb, scratch, CacheSharing, Constraints, Copy, Definition, ExecOptions,
    LocalOptions, Mount, Platform, State,
};
use kiln_proto::caps;
use serde_json::Value;

const GOLANG: &str = "127.0.0.1:5000/library/golang:1.24-trixie";

struct Fixture {
    json: Value,
    canonical: Vec<u8>,
}

fn fixture(name: &str) -> Fixture {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../kiln-proto/tests/fixtures/go-llb");
    let read = |file: String| {
        std::fs::read(dir.join(&file)).unwrap_or_else(|e| panic!("read {file}: {e}"))
    };
    Fixture {
        json: serde_json::from_slice(&read(format!("{name}.json"))).expect("fixture JSON"),
        canonical: read(format!("{name}.canonical.pb")),
    }
}

/// Go marshaled with no daemon caps: its execs carry no default `PATH` and
/// declare no cap for it. kiln writes `PATH` unless it knows the daemon
/// sets it, so the fixtures are built with that cap known; the op bytes are
/// then Go's, and the exec's metadata has one cap more
/// (`exec.meta.setsdefaultpath`), which Go adds too once it knows the caps.
fn constraints() -> Constraints {
    Constraints::new(Platform::linux_amd64()).daemon_caps([caps::EXEC_META_SETS_DEFAULT_PATH])
}

fn golang() -> State {
    kiln_llb::image(GOLANG).expect("valid reference")
}

fn image_run() -> State {
    golang()
        .run(
            ExecOptions::new(["sh", "-c", "echo hi > /out.txt"])
                .dir("/work")
                .env("FOO", "bar")
                .user("root"),
        )
        .root()
}

fn run_cache_locked() -> State {
    golang()
        .run(
            ExecOptions::new([
                "sh",
                "-c",
                "date > /var/cache/apt/stamp && date > /root/.cache/shared/stamp && ls -la /var/cache/apt /root/.cache/shared",
            ])
            .mount(Mount::cache("/var/cache/apt", "apt-cache").sharing(CacheSharing::Locked))
            .mount(Mount::cache("/root/.cache/shared", "shared-cache")),
        )
        .root()
}

fn local_copy_include() -> State {
    let context = local_with(
        "context",
        LocalOptions::new()
            .include_patterns(["*.go", "go.mod"])
            .exclude_patterns(["vendor/"])
            .shared_key_hint("context")
            .unique_id("fixture"),
    );
    scratch().copy(
        Copy::new(&context, "/", "/src")
            .create_dest_path()
            .allow_wildcard(),
    )
}

fn digests(def: &Definition) -> Vec<String> {
    def.digests().iter().map(ToString::to_string).collect()
}

fn json_strings(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|s| s.as_str().expect("string").to_string())
        .collect()
}

/// The definition without the one cap Go leaves out (see [`constraints`]).
fn without_default_path_cap(def: &Definition) -> Definition {
    let mut pb = def.as_pb().clone();
    for md in pb.metadata.values_mut() {
        md.caps.remove(caps::EXEC_META_SETS_DEFAULT_PATH);
    }
    Definition::from_pb(pb)
}

fn cases() -> [(&'static str, State); 3] {
    [
        ("image_run", image_run()),
        ("run_cache_locked", run_cache_locked()),
        ("local_copy_include", local_copy_include()),
    ]
}

#[test]
fn op_digests_are_gos() {
    for (name, state) in cases() {
        let go = fixture(name);
        let def = state.marshal(&constraints()).expect("marshal");
        let want = json_strings(&go.json["op_digests"]);
        assert_eq!(digests(&def), want, "{name}");
        let (head, index) = def.head().expect("head").expect("not empty");
        assert_eq!(head.to_string(), go.json["terminal_input"], "{name}");
        assert_eq!(index, 0);
    }
}

#[test]
fn file_ops_carry_no_platform_as_in_go() {
    let def = local_copy_include()
        .marshal(&constraints())
        .expect("marshal");
    let ops = def.ops().expect("decode");
    assert!(matches!(ops[1].op.op, Some(pb::op::Op::File(_))));
    assert_eq!(ops[1].op.platform, None);
}

#[test]
fn definitions_are_gos_byte_for_byte_but_for_the_path_cap() {
    for (name, state) in cases() {
        let go = fixture(name);
        let def = state.marshal(&constraints()).expect("marshal");
        // Metadata (caps per op), the source map with an empty `Locations`
        // per op, and every byte of the encoding.
        assert_eq!(
            without_default_path_cap(&def).to_bytes(),
            go.canonical,
            "{name}"
        );
        let execs_declare_path = def
            .ops()
            .expect("decode")
            .iter()
            .filter(|op| matches!(op.op.op, Some(pb::op::Op::Exec(_))))
            .all(|op| {
                op.metadata
                    .as_ref()
                    .is_some_and(|m| m.caps.contains_key(caps::EXEC_META_SETS_DEFAULT_PATH))
            });
        assert!(execs_declare_path, "{name}");
    }
    // Without any exec, no daemon caps are needed.
    let def = local_copy_include()
        .marshal(&Constraints::new(Platform::linux_amd64()))
        .expect("marshal");
    assert_eq!(def.to_bytes(), fixture("local_copy_include").canonical);
}

#[test]
fn without_daemon_caps_kiln_writes_the_default_path_and_so_differs_from_go() {
    // The deliberate difference: with the daemon's caps unknown, kiln's
    // exec carries PATH (Go's carries none), so its digest is not Go's.
    let go = fixture("image_run");
    let def = image_run()
        .marshal(&Constraints::new(Platform::linux_amd64()))
        .expect("marshal");
    let ours = digests(&def);
    let theirs = json_strings(&go.json["op_digests"]);
    assert_eq!(ours[0], theirs[0], "the image source is the same");
    assert_ne!(ours[1], theirs[1], "the exec has PATH");
}
