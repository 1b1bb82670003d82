//! Which messages kiln sends need a hand-written Go encoder, derived from
//! BuildKit's `.proto` files, read where the `bollard-buildkit-proto` crate
//! we depend on ships them (its `resources/`, found with `cargo metadata`),
//! so the rules follow the very protos our wire types were generated from.
//!
//! prost writes fields in tag order, leaves out proto3 defaults, packs
//! repeated scalars and writes repeated elements whole, as Go does. It
//! differs from Go in three ways only: a map entry whose key or value is
//! empty (prost leaves it out, Go writes it), map order (a `HashMap`'s), and
//! a oneof with a tag below a regular field's (Go writes oneofs last). So a
//! message needs a hand-written encoder exactly when it has a map or such a
//! oneof, or holds (at any depth) a message that does. Every other message
//! is left to prost, whose bytes are then Go's.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The messages `kiln_proto::wire` encodes by hand.
const HAND_ENCODED: &[&str] = &[
    "pb.Op",
    "pb.SourceOp",
    "pb.BuildOp",
    "pb.Definition",
    "pb.OpMetadata",
    "pb.Source",
    "pb.SourceInfo",
    "moby.buildkit.v1.SolveRequest",
    "moby.buildkit.v1.CacheOptions",
    "moby.buildkit.v1.CacheOptionsEntry",
    "moby.buildkit.v1.Exporter",
    "moby.buildkit.v1.sourcepolicy.Policy",
    "moby.buildkit.v1.sourcepolicy.Rule",
    "moby.buildkit.v1.sourcepolicy.Update",
    "moby.buildkit.v1.frontend.SolveRequest",
    "moby.buildkit.v1.frontend.CacheOptionsEntry",
    "moby.buildkit.v1.frontend.ReturnRequest",
    "moby.buildkit.v1.frontend.Result",
    "moby.buildkit.v1.frontend.RefMapDeprecated",
    "moby.buildkit.v1.frontend.Ref",
    "moby.buildkit.v1.frontend.RefMap",
    "moby.buildkit.v1.frontend.Attestations",
    "moby.buildkit.v1.frontend.Attestation",
    "moby.buildkit.v1.frontend.ResolveImageConfigRequest",
];

/// What kiln sends through the Go codec (and every op it digests).
const GO_ROOTS: &[&str] = &[
    "pb.Op",
    "pb.Definition",
    "moby.buildkit.v1.SolveRequest",
    "moby.buildkit.v1.frontend.SolveRequest",
    "moby.buildkit.v1.frontend.ReturnRequest",
    "moby.buildkit.v1.frontend.ResolveImageConfigRequest",
];

/// What kiln sends through prost's codec: none of it may need Go's rules.
const PROST_ROOTS: &[&str] = &[
    "moby.buildkit.v1.StatusRequest",
    "moby.buildkit.v1.InfoRequest",
    "moby.buildkit.v1.ListWorkersRequest",
    "moby.buildkit.v1.DiskUsageRequest",
    "moby.buildkit.v1.PruneRequest",
    "moby.buildkit.v1.frontend.PingRequest",
    "moby.buildkit.v1.frontend.ReadFileRequest",
];

const SCALARS: &[&str] = &[
    "double", "float", "int32", "int64", "uint32", "uint64", "sint32", "sint64", "fixed32",
    "fixed64", "sfixed32", "sfixed64", "bool", "string", "bytes",
];

#[derive(Debug)]
struct Field {
    /// The type as written (the value type for a map).
    ty: String,
    number: u32,
    map: bool,
    oneof: bool,
}

#[derive(Debug)]
struct Message {
    /// The enclosing scope (`package` or `package.Outer`), for type lookup.
    scope: String,
    fields: Vec<Field>,
}

#[derive(Default)]
struct Protos {
    messages: BTreeMap<String, Message>,
    enums: BTreeSet<String>,
}

fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut last = ' ';
                for c in chars.by_ref() {
                    if last == '*' && c == '/' {
                        break;
                    }
                    last = c;
                }
            }
            '"' => {
                let mut s = String::from('"');
                for c in chars.by_ref() {
                    s.push(c);
                    if c == '"' {
                        break;
                    }
                }
                out.push(s);
            }
            '{' | '}' | ';' | '=' | '<' | '>' | ',' | '[' | ']' | '(' | ')' => {
                out.push(c.to_string());
            }
            c if c.is_whitespace() => {}
            c => {
                let mut s = String::from(c);
                while let Some(&n) = chars.peek() {
                    if n.is_alphanumeric() || n == '_' || n == '.' {
                        s.push(n);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push(s);
            }
        }
    }
    out
}

/// Skips a `{ … }` block starting at `t[i] == "{"`; returns the index after it.
fn skip_block(t: &[String], mut i: usize) -> usize {
    let mut depth = 0;
    loop {
        match t[i].as_str() {
            "{" => depth += 1,
            "}" => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
}

/// One field statement `t[i..]` up to `;`, options removed.
fn field(t: &[String], mut i: usize, oneof: bool) -> (Field, usize) {
    let mut words = Vec::new();
    let mut in_options = false;
    while t[i] != ";" {
        match t[i].as_str() {
            "[" => in_options = true,
            "]" => in_options = false,
            w if !in_options => words.push(w.to_string()),
            _ => {}
        }
        i += 1;
    }
    let eq = words.iter().position(|w| w == "=").expect("field number");
    let number: u32 = words[eq + 1].parse().expect("number");
    let f = if words[0] == "map" {
        // map < K , V > name = N
        Field {
            ty: words[4].clone(),
            number,
            map: true,
            oneof,
        }
    } else {
        let before: Vec<&String> = words[..eq]
            .iter()
            .filter(|w| !(eq == 3 && (*w == "repeated" || *w == "optional")))
            .collect();
        assert_eq!(before.len(), 2, "type and name: {words:?}");
        Field {
            ty: before[0].clone(),
            number,
            map: false,
            oneof,
        }
    };
    (f, i + 1)
}

impl Protos {
    fn parse_file(&mut self, text: &str) {
        let t = tokens(text);
        let mut package = String::new();
        let mut i = 0;
        while i < t.len() {
            match t[i].as_str() {
                "package" => {
                    package = t[i + 1].clone();
                    i += 3;
                }
                "message" => i = self.message(&t, i, &package),
                "enum" => {
                    self.enums.insert(format!("{package}.{}", t[i + 1]));
                    i = skip_block(&t, i + 2);
                }
                "service" => i = skip_block(&t, i + 2),
                _ => {
                    while t[i] != ";" {
                        i += 1;
                    }
                    i += 1;
                }
            }
        }
    }

    /// Parses `message Name { … }` at `t[i]`; returns the index after it.
    fn message(&mut self, t: &[String], i: usize, scope: &str) -> usize {
        let full = format!("{scope}.{}", t[i + 1]);
        let mut fields = Vec::new();
        let mut i = i + 3;
        while t[i] != "}" {
            match t[i].as_str() {
                "message" => i = self.message(t, i, &full),
                "enum" => {
                    self.enums.insert(format!("{full}.{}", t[i + 1]));
                    i = skip_block(t, i + 2);
                }
                "oneof" => {
                    i += 3;
                    while t[i] != "}" {
                        if t[i] == "option" {
                            while t[i] != ";" {
                                i += 1;
                            }
                            i += 1;
                            continue;
                        }
                        let (f, next) = field(t, i, true);
                        fields.push(f);
                        i = next;
                    }
                    i += 1;
                }
                "reserved" | "option" => {
                    while t[i] != ";" {
                        i += 1;
                    }
                    i += 1;
                }
                _ => {
                    let (f, next) = field(t, i, false);
                    fields.push(f);
                    i = next;
                }
            }
        }
        self.messages.insert(
            full,
            Message {
                scope: scope.to_string(),
                fields,
            },
        );
        i + 1
    }

    /// The full name of message type `ty` used in `m` (protobuf's scoping:
    /// innermost scope first); `None` for scalars and enums.
    fn resolve(&self, m: &Message, ty: &str) -> Option<String> {
        if SCALARS.contains(&ty) {
            return None;
        }
        let ty = ty.trim_start_matches('.');
        let mut scope = m.scope.clone();
        loop {
            let candidate = if scope.is_empty() {
                ty.to_string()
            } else {
                format!("{scope}.{ty}")
            };
            if self.messages.contains_key(&candidate) {
                return Some(candidate);
            }
            if self.enums.contains(&candidate) {
                return None;
            }
            if scope.is_empty() {
                panic!("unknown type {ty} in scope {}", m.scope);
            }
            scope = scope
                .rsplit_once('.')
                .map(|(s, _)| s.to_string())
                .unwrap_or_default();
        }
    }

    /// The message types `name`'s fields hold.
    fn children(&self, name: &str) -> Vec<String> {
        let m = &self.messages[name];
        m.fields
            .iter()
            .filter_map(|f| self.resolve(m, &f.ty))
            .collect()
    }

    /// Where prost's bytes are not Go's by themselves: a map, or a oneof
    /// with a tag below a regular field's.
    fn differs_itself(&self, name: &str) -> bool {
        let m = &self.messages[name];
        let max_regular = m.fields.iter().filter(|f| !f.oneof).map(|f| f.number).max();
        let min_oneof = m.fields.iter().filter(|f| f.oneof).map(|f| f.number).min();
        m.fields.iter().any(|f| f.map)
            || matches!((min_oneof, max_regular), (Some(o), Some(r)) if o < r)
    }

    fn reachable(&self, roots: &[&str]) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<String> = roots.iter().map(|r| r.to_string()).collect();
        while let Some(n) = todo.pop() {
            assert!(self.messages.contains_key(&n), "unknown message {n}");
            if seen.insert(n.clone()) {
                todo.extend(self.children(&n));
            }
        }
        seen
    }

    /// Messages that need Go's rules, themselves or through what they hold.
    fn needs_go_rules(&self, among: &BTreeSet<String>) -> BTreeSet<String> {
        let mut needs: BTreeSet<String> = among
            .iter()
            .filter(|n| self.differs_itself(n))
            .cloned()
            .collect();
        loop {
            let more: Vec<String> = among
                .iter()
                .filter(|n| !needs.contains(*n))
                .filter(|n| self.children(n).iter().any(|c| needs.contains(c)))
                .cloned()
                .collect();
            if more.is_empty() {
                return needs;
            }
            needs.extend(more);
        }
    }
}

/// The `resources/` folder of the `bollard-buildkit-proto` crate in use:
/// its version from the workspace's Cargo.lock, its sources in cargo's
/// registry (`$CARGO_HOME`, else `~/.cargo`).
fn proto_dir() -> std::path::PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).expect("Cargo.lock");
    let version = lock
        .split("[[package]]")
        .find(|p| p.contains("name = \"bollard-buildkit-proto\""))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = ")))
        .map(|v| v.trim_matches('"').to_string())
        .expect("bollard-buildkit-proto in Cargo.lock");
    let home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
        .expect("CARGO_HOME or HOME");
    let name = format!("bollard-buildkit-proto-{version}");
    std::fs::read_dir(home.join("registry/src"))
        .expect("cargo's registry sources")
        .filter_map(Result::ok)
        .map(|d| d.path().join(&name).join("resources"))
        .find(|p| p.is_dir())
        .unwrap_or_else(|| panic!("{name}/resources not found under {}", home.display()))
}

fn protos() -> Protos {
    let dir = proto_dir();
    let mut p = Protos::default();
    for file in [
        "pb/ops.proto",
        "moby/buildkit/v1/control.proto",
        "moby/buildkit/v1/frontend/gateway.proto",
        "moby/buildkit/v1/sourcepolicy/policy.proto",
        "google/rpc/status.proto",
        "google/protobuf/any.proto",
    ] {
        let text = std::fs::read_to_string(dir.join(file)).expect("proto file");
        p.parse_file(&text);
    }
    p
}

#[test]
fn the_parser_sees_what_the_generated_types_have() {
    let p = protos();
    let op = &p.messages["pb.Op"];
    let oneof: Vec<u32> = op
        .fields
        .iter()
        .filter(|f| f.oneof)
        .map(|f| f.number)
        .collect();
    assert_eq!(oneof, [2, 3, 4, 5, 6, 7]);
    assert!(p.differs_itself("pb.Op"));
    assert!(p.differs_itself("moby.buildkit.v1.frontend.Result"));
    assert!(!p.differs_itself("pb.FileAction"), "its oneof is last");
    assert!(!p.differs_itself("pb.UserOpt"), "only a oneof");
    let source = &p.messages["pb.Source"];
    assert!(source.fields[0].map && source.fields[0].ty == "Locations");
    assert!(p.enums.contains("pb.CacheSharingOpt"));
}

#[test]
fn hand_encoded_messages_are_exactly_those_that_need_go_rules() {
    let p = protos();
    let sent = p.reachable(GO_ROOTS);
    let needs = p.needs_go_rules(&sent);
    let hand: BTreeSet<String> = HAND_ENCODED.iter().map(|s| s.to_string()).collect();
    assert_eq!(needs, hand);
    // What is left to prost inside them, for the record.
    let leaves: Vec<&String> = sent.difference(&needs).collect();
    for leaf in [
        "pb.ExecOp",
        "pb.FileOp",
        "pb.Locations",
        "pb.Platform",
        "google.rpc.Status",
    ] {
        assert!(leaves.iter().any(|l| *l == leaf), "{leaf} is a prost leaf");
    }
}

#[test]
fn requests_sent_with_prosts_codec_need_no_go_rules() {
    let p = protos();
    let sent = p.reachable(PROST_ROOTS);
    assert!(p.needs_go_rules(&sent).is_empty());
}
