//! `kiln du` and `kiln prune` against the real daemon: prune frees what du showed.

use kiln_client::SolveRequest;
use kiln_proto::pb;
use prost::Message;

use crate::common::*;

/// A two-op graph (image + mkfile) by hand, so this test does not depend on
/// kiln-llb: its mkfile result is a cache record unique to this test.
fn unique_graph(image: &str, marker: &str) -> pb::Definition {
    let platform = Some(pb::Platform {
        architecture: "amd64".into(),
        os: "linux".into(),
        ..Default::default()
    });
    let src = pb::Op {
        op: Some(pb::op::Op::Source(pb::SourceOp {
            identifier: format!("docker-image://{image}"),
            attrs: Default::default(),
        })),
        platform: platform.clone(),
        constraints: Some(pb::WorkerConstraints::default()),
        ..Default::default()
    };
    let src_bytes = src.encode_to_vec();
    let digest = |b: &[u8]| {
        use sha2::Digest as _;
        format!("sha256:{}", hex::encode(sha2::Sha256::digest(b)))
    };
    let file = pb::Op {
        inputs: vec![pb::Input {
            digest: digest(&src_bytes),
            index: 0,
        }],
        op: Some(pb::op::Op::File(pb::FileOp {
            actions: vec![pb::FileAction {
                input: 0,
                secondary_input: -1,
                output: 0,
                action: Some(pb::file_action::Action::Mkfile(pb::FileActionMkFile {
                    path: format!("/{marker}"),
                    mode: 0o644,
                    data: vec![b'x'; 64 * 1024],
                    owner: None,
                    timestamp: -1,
                })),
            }],
        })),
        platform,
        constraints: Some(pb::WorkerConstraints::default()),
    };
    let file_bytes = file.encode_to_vec();
    let term = pb::Op {
        inputs: vec![pb::Input {
            digest: digest(&file_bytes),
            index: 0,
        }],
        ..Default::default()
    };
    pb::Definition {
        def: vec![src_bytes, file_bytes, term.encode_to_vec()],
        ..Default::default()
    }
}

/// Whether the record with `id` is still listed by the daemon.
async fn listed(id: &str) -> bool {
    let du = kiln_d(&["du", "--format", "json"]).await;
    du.success();
    du.json()["records"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["id"] == id)
}

#[tokio::test(flavor = "multi_thread")]
async fn prune_frees_what_du_showed() {
    // Other tests prune the same daemon (README's `kiln prune
    // --keep-duration 24h` example, the other buildkitd row): when one of
    // them removed our record first, start over with a new one.
    for attempt in 1..=3 {
        match prune_attempt().await {
            Ok(()) => return,
            Err(why) => eprintln!("attempt {attempt}: {why}; again with a new record"),
        }
    }
    panic!("another prune removed the record three times in a row");
}

/// One run of the du/prune check; `Err` when a concurrent prune removed
/// the record before this one could (failures of kiln's own assert).
async fn prune_attempt() -> Result<(), String> {
    let h = harness();
    let marker = format!("kiln-du-{}", uuid::Uuid::new_v4().simple());
    let client = daemon().client().await;
    client
        .solve(
            SolveRequest {
                definition: Some(unique_graph(&h.static_image, &marker).into()),
                ..Default::default()
            },
            None,
        )
        .await
        .expect("solve the unique graph");

    // The daemon releases the solve's result shortly after the Solve
    // returned (under load, later): wait until our record is no longer in
    // use, as a filtered listing and a prune see only settled records.
    let mut tries = 0;
    let records = loop {
        let du = kiln_d(&["du", "--format", "json"]).await;
        du.success();
        let records = du.json()["records"].as_array().unwrap().clone();
        let settled = records.iter().any(|r| {
            r["description"].as_str().unwrap_or("").contains(&marker) && r["in_use"] != true
        });
        tries += 1;
        if settled || tries == 50 {
            break records;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let ours: Vec<&serde_json::Value> = records
        .iter()
        .filter(|r| r["description"].as_str().unwrap_or("").contains(&marker))
        .collect();
    if ours.is_empty() {
        return Err(format!(
            "the record of {marker} vanished before du listed it"
        ));
    }
    assert_eq!(ours.len(), 1, "one record for {marker} in {records:#?}");
    let id = ours[0]["id"].as_str().unwrap().to_string();
    let size = ours[0]["size"].as_i64().unwrap();
    assert!(
        size >= 64 * 1024,
        "the record holds the 64 KiB file: {size}"
    );

    // Text output lists it too.
    let du_text = kiln_d(&["du", "--verbose", "--filter", &format!("id=={id}")]).await;
    du_text.success();
    if !du_text.stdout.contains(&id) && !listed(&id).await {
        return Err(format!("record {id} vanished before du --filter"));
    }
    assert!(du_text.stdout.contains(&id), "{}", du_text.stdout);
    assert!(du_text.stdout.contains(&marker), "{}", du_text.stdout);

    // The record is shared with the image store, so only --all removes it.
    // A record still held (the daemon releases it late under load, or
    // another row's prune on the same buildkitd holds the prune lock) is
    // left alone by a prune: try again for a while.
    let mut tries = 0;
    let (pruned, removed) = loop {
        let pruned = kiln_d(&[
            "prune",
            "--all",
            "--format",
            "json",
            "--filter",
            &format!("id=={id}"),
        ])
        .await;
        pruned.success();
        let removed = pruned.json()["removed"].as_array().unwrap().clone();
        tries += 1;
        if !removed.is_empty() || tries == 20 {
            break (pruned, removed);
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    };
    if removed.is_empty() && !listed(&id).await {
        return Err(format!("record {id} vanished before kiln prune"));
    }
    assert!(
        removed.iter().any(|r| r["id"] == id.as_str()),
        "prune removed {removed:#?}, not {id}"
    );
    assert!(pruned.json()["total"].as_i64().unwrap() >= size);

    assert!(!listed(&id).await, "record {id} still there after prune");
    Ok(())
}

#[tokio::test]
async fn prune_rejects_bad_durations_and_sizes() {
    let r = run(kiln(), &["prune", "--keep-duration", "soon"]).await;
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("not a duration"), "{}", r.stderr);
    let r = run(kiln(), &["prune", "--keep-storage", "lots"]).await;
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("not a size"), "{}", r.stderr);
}
