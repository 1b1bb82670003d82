//! The daemon's vertex digests are kiln's op digests: every op carries its
//! platform and constraints as Go's client/llb writes them, so the daemon
//! does not rewrite ops and progress maps back to kiln's graph.

use kiln_llb::{Copy, ExecOptions, Mkfile, Mount};

use crate::common::*;

#[tokio::test(flavor = "multi_thread")]
async fn status_vertex_digests_are_kiln_op_digests() {
    let h = harness();
    let tmp = tempfile::tempdir().unwrap();
    let m = unique();
    let files = kiln_llb::scratch().mkfile(Mkfile::new(format!("/{m}"), 0o644, m.clone()));
    let run = go_image()
        .run(
            ExecOptions::shell(format!("cat /in/{m} > /out/copy"))
                .mount(Mount::bind("/in", &files).readonly())
                .mount(Mount::scratch("/out")),
        )
        .get_mount("/out");
    let st = kiln_llb::scratch().copy(Copy::new(&run, "/copy", "/final"));
    let def_path = write_llb(tmp.path(), "d.llb", &st);

    let dump = run_kiln_llb(&def_path).await;
    let ops = dump["ops"].as_array().unwrap();
    // Every op but the terminal one is a vertex.
    let mut ours: Vec<String> = ops
        .iter()
        .map(|o| o["digest"].as_str().unwrap().to_string())
        .collect();
    ours.pop();
    ours.sort();

    let r = kiln_at(
        &h.docker_addr(),
        &[
            "solve",
            "-f",
            def_path.to_str().unwrap(),
            "--progress",
            "rawjson",
        ],
    )
    .await;
    r.success();
    let mut theirs: Vec<String> = r
        .stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .flat_map(|v| v["vertexes"].as_array().cloned().unwrap_or_default())
        .map(|v| v["digest"].as_str().unwrap().to_string())
        .collect();
    theirs.sort();
    theirs.dedup();
    assert_eq!(
        theirs, ours,
        "daemon vertex digests differ from kiln's op digests\n{}",
        r.stderr
    );
}

async fn run_kiln_llb(def: &std::path::Path) -> serde_json::Value {
    let r = run(kiln(), &["llb", "-f", def.to_str().unwrap()]).await;
    r.success();
    r.json()
}
