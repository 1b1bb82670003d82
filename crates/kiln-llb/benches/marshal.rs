//! Marshaling a 10,000-op graph: a chain of execs and file ops with shared
//! sources, cache mounts and merges.

use criterion::{criterion_group, criterion_main, Criterion};
use kiln_llb::{
    image, local, merge, Constraints, Copy, ExecOptions, Mkfile, Mount, Platform, State,
};

fn graph(ops: usize) -> State {
    let ctx = local("context");
    let mut st = image("golang:1.24").expect("valid").dir("/src");
    let mut layers = Vec::new();
    // Each round adds an exec and a file op (plus an occasional merge).
    for i in 0..ops / 2 {
        let e = st.run(
            ExecOptions::shell(format!("step {i}"))
                .mount(Mount::bind("/ctx", &ctx).readonly())
                .mount(Mount::cache("/root/.cache", "cache"))
                .mount(Mount::scratch("/out")),
        );
        st = e
            .root()
            .file(Copy::new(e.get_mount("/out"), "/", "/artifacts/").create_dest_path());
        if i % 1000 == 999 {
            layers.push(st.mkfile(Mkfile::new(format!("/layer{i}"), 0o644, "x")));
        }
    }
    layers.push(st);
    merge(&layers)
}

fn bench(c: &mut Criterion) {
    let constraints = Constraints::new(Platform::linux_amd64());
    let g = graph(10_000);
    let len = g.marshal(&constraints).expect("marshal").len();
    assert!(len > 10_000, "{len} ops");
    c.bench_function("marshal 10k ops", |b| {
        b.iter(|| g.marshal(&constraints).expect("marshal"));
    });
    c.bench_function("build + marshal 10k ops", |b| {
        b.iter(|| graph(10_000).marshal(&constraints).expect("marshal"));
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
