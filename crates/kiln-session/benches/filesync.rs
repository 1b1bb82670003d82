//! The file-sync hot paths: walking a 20,000-file context into STAT
//! packets (what an unchanged re-sync costs kiln), and encoding packets the
//! way the session stream does.

use std::path::Path;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use kiln_proto::fsutil::types::packet::PacketType;
use kiln_proto::fsutil::types::{Packet, Stat};
use kiln_session::filesync::{walk, Filter, CHUNK_SIZE};
use prost::Message as _;

const DIRS: usize = 200;
const FILES_PER_DIR: usize = 100;

fn context(root: &Path) {
    for d in 0..DIRS {
        let dir = root.join("src").join(format!("d{d:03}"));
        std::fs::create_dir_all(&dir).expect("create the bench context");
        for f in 0..FILES_PER_DIR {
            let size = 1 + (d * 131 + f * 17) % 1024;
            std::fs::write(dir.join(format!("f{f:04}.dat")), vec![b'x'; size])
                .expect("write the bench context");
        }
    }
}

/// Walks `root`, counting what the filter keeps.
fn count(root: &Path, filter: &Filter) -> u64 {
    let mut n = 0u64;
    walk(root, filter, &mut |_: Stat, _: &Path| {
        n += 1;
        Ok(())
    })
    .expect("walk");
    n
}

fn bench(c: &mut Criterion) {
    let tmp = tempfile::tempdir().expect("tempdir");
    context(tmp.path());
    let entries = (DIRS * (FILES_PER_DIR + 1) + 1) as u64;
    let mut g = c.benchmark_group("filesync");
    g.throughput(Throughput::Elements(entries));
    g.bench_function("walk 20k files", |b| {
        let filter = Filter::default();
        b.iter(|| assert_eq!(count(tmp.path(), &filter), entries));
    });
    g.bench_function("walk 20k files + encode STAT packets", |b| {
        let filter = Filter::default();
        let mut buf = Vec::with_capacity(256);
        b.iter(|| {
            let mut bytes = 0usize;
            walk(tmp.path(), &filter, &mut |stat: Stat, _: &Path| {
                let p = Packet {
                    r#type: PacketType::PacketStat as i32,
                    stat: Some(stat),
                    ..Packet::default()
                };
                buf.clear();
                p.encode(&mut buf).expect("a Vec grows");
                bytes += buf.len();
                Ok(())
            })
            .expect("walk");
            bytes
        });
    });
    g.bench_function("walk 20k files, excludes and a negation", |b| {
        let filter = Filter::new(
            tmp.path(),
            &[],
            &[
                "src/d1*".to_string(),
                "**/*.tmp".to_string(),
                "!src/d150".to_string(),
            ],
            &[],
        )
        .expect("filter");
        b.iter(|| count(tmp.path(), &filter));
    });
    g.finish();

    let mut g = c.benchmark_group("packets");
    g.throughput(Throughput::Bytes(CHUNK_SIZE as u64));
    g.bench_function("encode one DATA packet", |b| {
        let chunk = vec![7u8; CHUNK_SIZE];
        let mut buf = Vec::with_capacity(CHUNK_SIZE + 16);
        b.iter_batched(
            || chunk.clone(),
            |data| {
                let p = Packet {
                    r#type: PacketType::PacketData as i32,
                    id: 42,
                    data,
                    ..Packet::default()
                };
                buf.clear();
                p.encode(&mut buf).expect("a Vec grows");
                buf.len()
            },
            BatchSize::SmallInput,
        );
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
