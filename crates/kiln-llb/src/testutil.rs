//! Helpers for the unit tests: marshal a state, look at its head op, and
//! compare with golden JSON written inline.

use serde_json::Value;

use crate::{dump, Constraints, Definition, Platform, State};

pub fn amd64() -> Constraints {
    Constraints::new(Platform::linux_amd64())
}

pub fn def(state: &State) -> Definition {
    state.marshal(&amd64()).expect("marshal")
}

/// The dumped JSON of the op `state` points at (digest, inputs, platform,
/// op, metadata), marshaled for linux/amd64.
pub fn head(state: &State) -> Value {
    head_with(state, &amd64())
}

pub fn head_with(state: &State, c: &Constraints) -> Value {
    let def = state.marshal(c).expect("marshal");
    let json = dump::to_json(&def);
    let digest = json["head"]["digest"].clone();
    json["ops"]
        .as_array()
        .expect("ops")
        .iter()
        .find(|op| op["digest"] == digest)
        .cloned()
        .expect("head op listed")
}

/// Compares `actual` with the expected JSON text; on mismatch prints the
/// actual value under `name` so a reviewer can compare it with the Go code.
pub fn golden(name: &str, actual: &Value, expected: &str) {
    let want: Value = serde_json::from_str(expected).expect("golden is JSON");
    if *actual != want {
        let pretty = serde_json::to_string_pretty(actual).expect("json");
        panic!("golden {name} differs; actual:\nGOLDEN-BEGIN {name}\n{pretty}\nGOLDEN-END\n");
    }
}
