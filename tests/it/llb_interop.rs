//! `kiln solve` and `kiln llb` with Definitions kiln's builder did not
//! write: `tests/fixtures/llb/encode.py` encodes them by hand (standard
//! library only) from a JSON description, and computes the op digests on
//! its own.

use std::path::{Path, PathBuf};

use crate::common::*;
use crate::llb_util::*;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/llb")
}

/// Runs encode.py on `json`, writing `out`; returns its summary.
fn encode(json: &Path, out: &Path) -> serde_json::Value {
    let o = std::process::Command::new("python3")
        .arg(fixtures().join("encode.py"))
        .arg(json)
        .arg("--out")
        .arg(out)
        .output()
        .expect("python3 runs");
    assert!(
        o.status.success(),
        "encode.py failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("encode.py prints JSON")
}

#[tokio::test(flavor = "multi_thread")]
async fn llb_interop_hand_encoded_definition_solves() {
    let tmp = tempfile::tempdir().unwrap();
    // The committed bytes are what the script writes today.
    let fresh = tmp.path().join("hand.llb");
    let summary = encode(&fixtures().join("hand.json"), &fresh);
    let committed = fixtures().join("hand.llb");
    assert_eq!(
        std::fs::read(&fresh).unwrap(),
        std::fs::read(&committed).unwrap(),
        "tests/fixtures/llb/hand.llb is stale: run python3 tests/fixtures/llb/encode.py"
    );
    // It names the harness's static fixture.
    assert!(
        std::fs::read_to_string(fixtures().join("hand.json"))
            .unwrap()
            .contains(&format!("docker-image://{}", harness().static_image)),
        "hand.json must use {}",
        harness().static_image
    );

    // `kiln llb` decodes it and agrees on every digest.
    let r = run(kiln(), &["llb", "-f", committed.to_str().unwrap()]).await;
    r.success();
    let v = r.json();
    let ours: Vec<&str> = v["ops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["digest"].as_str().unwrap())
        .collect();
    let theirs: Vec<&str> = summary["ops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["digest"].as_str().unwrap())
        .collect();
    assert_eq!(ours, theirs, "{v}");
    assert_eq!(
        v["head"]["digest"], summary["ops"][1]["digest"],
        "the head is the terminal op's input: {v}"
    );
    assert_eq!(
        v["ops"][1]["op"]["actions"][1]["mkfile"]["path"],
        "/hand/made-by-encode-py.txt"
    );

    // The daemon solves it: the image's files plus the hand-written one.
    let s = solve_def(tmp.path(), "hand", &committed, &[], kiln()).await;
    s.run.success();
    assert_eq!(
        s.read("hand/made-by-encode-py.txt"),
        "written by tests/fixtures/llb/encode.py, not by kiln\n"
    );
    assert_eq!(s.mode("hand/made-by-encode-py.txt"), 0o640);
    assert!(s.read("etc/passwd").contains("nonroot"));
}

#[tokio::test(flavor = "multi_thread")]
async fn llb_interop_terminal_op_pointing_at_a_missing_digest_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = format!("sha256:{}", sha256_of(&unique()));
    let json = tmp.path().join("missing.json");
    std::fs::write(
        &json,
        serde_json::json!({
            "ops": [
                {
                    "name": "file",
                    "file": {"actions": [{
                        "input": -1, "secondaryInput": -1, "output": 0,
                        "mkfile": {"path": "/x", "mode": 420, "data": unique()}
                    }]},
                    "platform": {"architecture": "amd64", "os": "linux"},
                    "constraints": true
                },
                {"name": "terminal", "inputs": [[missing, 0]]}
            ]
        })
        .to_string(),
    )
    .unwrap();
    let def = tmp.path().join("missing.llb");
    encode(&json, &def);
    let s = solve_def(tmp.path(), "missing", &def, &[], kiln()).await;
    s.run.failure();
    let e = &s.run.stderr;
    assert!(
        e.contains("failed to load LLB") && e.contains("missing input digest"),
        "a clear error: {e}"
    );
    assert!(e.contains(&missing), "the error names the digest: {e}");
    assert!(!s.out.exists() && !s.tar.exists(), "nothing exported");
}

fn sha256_of(s: &str) -> String {
    crate::session_common::sha256_hex(s.as_bytes())
}
