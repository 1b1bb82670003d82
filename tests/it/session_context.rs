//! Sending a big build context through the session, and re-sending only
//! what changed.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use kiln_client::SessionTransport;
use kiln_llb::{ExecOptions, Mount};
use kiln_session::{ExportTarget, Session, SyncDirOptions};

use crate::common::*;
use crate::session_common::*;

const SMALL_FILES: usize = 20_000;
const DIRS: usize = 200;
const BIG_FILE: &str = "blob/big.bin";
const BIG_SIZE: usize = 200 * 1024 * 1024;

/// xorshift64*: deterministic bytes that do not compress.
struct Noise(u64);

impl Noise {
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let v = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// Writes 20,000 small files over 200 directories and one 200 MiB file;
/// returns the number of content bytes written.
fn generate_context(root: &Path) -> u64 {
    let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
    let mut total = 0u64;
    let mut buf = vec![0u8; 1024];
    for d in 0..DIRS {
        let dir = root.join(format!("src/d{d:03}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..SMALL_FILES / DIRS {
            // 1..=1024 bytes: never empty, so every file's data is requested.
            let len = 1 + (d * 131 + f * 17) % 1024;
            noise.fill(&mut buf[..len]);
            std::fs::write(dir.join(format!("f{f:04}.dat")), &buf[..len]).unwrap();
            total += len as u64;
        }
    }
    std::fs::create_dir_all(root.join("blob")).unwrap();
    let mut big = std::io::BufWriter::with_capacity(
        1 << 20,
        std::fs::File::create(root.join(BIG_FILE)).unwrap(),
    );
    let mut chunk = vec![0u8; 1 << 20];
    for _ in 0..BIG_SIZE / chunk.len() {
        noise.fill(&mut chunk);
        big.write_all(&chunk).unwrap();
    }
    big.flush().unwrap();
    total + BIG_SIZE as u64
}

/// The same numbers computed on the host and inside the build.
const MEASURE: &str = "find . -type f | wc -l > $OUT/count \
     && sha256sum blob/big.bin > $OUT/big.sha \
     && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum > $OUT/manifest";

fn measure_on_host(ctx: &Path, out: &Path) {
    std::fs::create_dir_all(out).unwrap();
    sh_in(ctx, &MEASURE.replace("$OUT", &out.display().to_string()));
}

fn measure_graph(marker: &str, session: &Session) -> kiln_llb::State {
    go_env(go_image())
        .run(
            ExecOptions::shell(format!(
                "echo {marker} && cd /ctx && {}",
                MEASURE.replace("$OUT", "/out")
            ))
            .mount(Mount::bind("/ctx", &local_of("context", session)).readonly())
            .mount(Mount::scratch("/out")),
        )
        .get_mount("/out")
}

#[track_caller]
fn assert_same_measurements(host: &Path, build: &Path) {
    for f in ["count", "big.sha", "manifest"] {
        let want = std::fs::read_to_string(host.join(f)).unwrap();
        let got = std::fs::read_to_string(build.join(f))
            .unwrap_or_else(|e| panic!("{f} missing from the export: {e}"));
        assert_eq!(got, want, "{f} differs between host and build");
    }
}

/// Polls the daemon's disk usage (at most 15 s) until no mutable local
/// source copy of at least `size` bytes is in use.
async fn wait_until_local_copies_released(client: &kiln_client::Client, size: u64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let records = client.disk_usage(vec![]).await.expect("disk usage");
        let busy = records.iter().any(|r| {
            r.record_type == "source.local" && r.mutable && r.in_use && r.size >= size as i64
        });
        if !busy || Instant::now() > deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn session_big_context_syncs_and_resyncs_only_the_edited_file() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    let written = generate_context(&ctx);
    let host1 = tmp.path().join("host1");
    measure_on_host(&ctx, &host1);
    assert_eq!(
        std::fs::read_to_string(host1.join("count")).unwrap().trim(),
        (SMALL_FILES + 1).to_string()
    );

    // A key of its own, so no other test's copy of "context" is diffed against.
    let shared_key = format!("session-big-{}", unique());
    let client = client().await;

    let out1 = tmp.path().join("out1");
    let s1 = Session::builder()
        .shared_key(&shared_key)
        .sync_dir("context", &ctx, SyncDirOptions::default())
        .export(0, ExportTarget::directory(&out1))
        .build()
        .unwrap();
    solve_with(
        &client,
        &s1,
        SessionTransport::Control,
        &measure_graph(&unique(), &s1),
        vec![exporter("local")],
    )
    .await
    .expect("first build");
    assert_same_measurements(&host1, &out1);
    let first = s1.sync_stats();
    assert_eq!(first.calls, 1, "{first:?}");
    assert_eq!(first.files, (SMALL_FILES + 1) as u64, "{first:?}");
    assert_eq!(first.bytes, written, "{first:?}");
    // Every file and directory (src, 200 dirs, blob) is listed.
    assert_eq!(
        first.entries,
        (SMALL_FILES + 1 + DIRS + 2) as u64,
        "{first:?}"
    );

    // The daemon releases build 1's copy of the context shortly after the
    // Solve returned; a build that starts before then finds it in use and
    // syncs everything into a new copy (seen under load on buildkitd, where
    // two suites share the daemon). Wait until no big local copy is in use.
    wait_until_local_copies_released(&client, written).await;

    // Edit one small file; a new session with the same shared key sends it alone.
    let edited = ctx.join("src/d042/f0013.dat");
    let new_content = format!("edited {}\n", unique());
    std::fs::write(&edited, &new_content).unwrap();
    let host2 = tmp.path().join("host2");
    measure_on_host(&ctx, &host2);
    assert_ne!(
        std::fs::read_to_string(host1.join("manifest")).unwrap(),
        std::fs::read_to_string(host2.join("manifest")).unwrap()
    );

    let out2 = tmp.path().join("out2");
    let s2 = Session::builder()
        .shared_key(&shared_key)
        .sync_dir("context", &ctx, SyncDirOptions::default())
        .export(0, ExportTarget::directory(&out2))
        .build()
        .unwrap();
    // The other transport where there is one: the daemon's copy does not depend on it.
    solve_with(
        &client,
        &s2,
        transports()[0],
        &measure_graph(&unique(), &s2),
        vec![exporter("local")],
    )
    .await
    .expect("second build");
    assert_same_measurements(&host2, &out2);
    let second = s2.sync_stats();
    assert_eq!(second.calls, 1, "{second:?}");
    assert_eq!(
        second.files, 1,
        "only the edited file is requested: {second:?}"
    );
    assert_eq!(
        second.bytes,
        new_content.len() as u64,
        "only the edited file's bytes are sent: {second:?}"
    );
}

/// Two builds at once, both reading `local://context` from their own
/// session. The sources name their session (`local.session`): without it
/// both are one shared vertex and the daemon syncs it from whichever
/// session it asks first, so one build silently gets the other's files
/// (seen with plain `local("context")`: both builds read build 0's context,
/// build 1's session was never called).
#[tokio::test(flavor = "multi_thread")]
async fn session_concurrent_builds_with_the_same_local_name_get_their_own_files() {
    let tmp = tempfile::tempdir().unwrap();
    let client = client().await;
    let mut builds = Vec::new();
    for i in 0..3 {
        let ctx = tmp.path().join(format!("ctx{i}"));
        std::fs::create_dir_all(&ctx).unwrap();
        let content = format!("context {i} {}\n", unique());
        std::fs::write(ctx.join("who"), &content).unwrap();
        let out = tmp.path().join(format!("out{i}"));
        let session = Session::builder()
            .sync_dir("context", &ctx, SyncDirOptions::default())
            .export(0, ExportTarget::directory(&out))
            .build()
            .unwrap();
        let graph = go_image()
            .run(
                ExecOptions::shell(format!("echo {} && cat /ctx/who > /out/who", unique()))
                    .mount(Mount::bind("/ctx", &local_of("context", &session)).readonly())
                    .mount(Mount::scratch("/out")),
            )
            .get_mount("/out");
        let client = client.clone();
        builds.push(tokio::spawn(async move {
            let ways = transports();
            let how = ways[i % ways.len()];
            solve_with(&client, &session, how, &graph, vec![exporter("local")])
                .await
                .unwrap_or_else(|e| panic!("build {i}: {e}"));
            (i, content, out, session.sync_stats())
        }));
    }
    for b in builds {
        let (i, content, out, stats) = b.await.unwrap();
        assert_eq!(
            std::fs::read_to_string(out.join("who")).unwrap(),
            content,
            "build {i} read another build's context"
        );
        assert_eq!(stats.bytes, content.len() as u64, "build {i}: {stats:?}");
    }
}
