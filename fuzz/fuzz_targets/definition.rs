//! LLB Definitions as `kiln llb` and `kiln solve` read them (another
//! program wrote them): decoding, the JSON and DOT dumps, the entitlement
//! check and the step names. Never a panic; what decodes encodes (as Go
//! would) to bytes that decode to the same Definition.
#![no_main]

use kiln_build::solve::{check_entitlements, decode_definition, required_entitlements};
use kiln_llb::{dump, Definition};
use libfuzzer_sys::fuzz_target;

/// Every line of the DOT output is one of to_dot's shapes once its quoted
/// strings are set aside: nothing from the Definition (names, paths, input
/// digests) can end a string and add attributes or statements (Graphviz
/// reads files named in `image=` or `fontpath=`).
fn check_dot(dot: &str) {
    const SHAPES: [&str; 7] = [
        "Q [label=Q];",
        "Q [label=Q, shape=doublecircle];",
        "Q [label=Q, color=red];",
        "Q -> Q [label=Q];",
        "Q [label=Q, shape=cylinder];",
        "Q [label=Q, shape=note];",
        "Q -> Q [label=Q, style=dashed];",
    ];
    let mut lines = dot.lines();
    assert_eq!(lines.next(), Some("digraph llb {"));
    let mut ended = false;
    for line in lines {
        assert!(!ended, "a line after the closing brace: {line:?}");
        if line == "}" {
            ended = true;
            continue;
        }
        if line.starts_with("  rankdir=") || line.starts_with("  node [") {
            continue;
        }
        // Quoted strings: `\` escapes the next character, `"` ends them.
        let mut shape = String::new();
        let mut chars = line.trim_start().chars();
        while let Some(c) = chars.next() {
            if c != '"' {
                shape.push(c);
                continue;
            }
            loop {
                match chars.next() {
                    Some('\\') => {
                        chars.next();
                    }
                    Some('"') => break,
                    Some(_) => {}
                    None => panic!("an unterminated string in {line:?}"),
                }
            }
            shape.push('Q');
        }
        assert!(
            SHAPES.contains(&shape.as_str()),
            "{line:?} has the shape {shape:?}"
        );
    }
    assert!(ended, "no closing brace");
}

fuzz_target!(|data: &[u8]| {
    let Ok(file) = decode_definition(data.to_vec(), "fuzz") else {
        return;
    };
    let def = &file.definition;
    // kiln llb --format json|dot|pb
    let json = dump::to_json(def);
    serde_json::to_string_pretty(&json).expect("the dump is JSON");
    check_dot(&dump::to_dot(def));
    let bytes = def.to_bytes();
    let back = Definition::from_bytes(&bytes).expect("kiln's own encoding decodes");
    assert_eq!(&back, def, "encoding changed the Definition");
    assert_eq!(back.to_bytes(), bytes, "encoding is not stable");
    // kiln solve, before it asks a daemon
    let _ = def.exec_commands();
    let needs = required_entitlements(def);
    assert_eq!(check_entitlements(def, &[]).is_ok(), needs.is_empty());
    let _ = def.head();
    let ops = def.ops().expect("every op decoded when it was read");
    assert_eq!(ops.len(), def.len());
});
