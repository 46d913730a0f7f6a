//! Spool accept throughput with fsync: group commit against one fsync round per message,
//! measured side by side in the same run (64 concurrent accepts of a 4 KiB message).
#![allow(missing_docs)]

use std::time::{Duration, Instant, SystemTime};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use relay::{CommitMode, Envelope, Spool, SpoolConfig};

const CONCURRENT: usize = 64;
const BODY: usize = 4096;

fn accept_batch(rt: &tokio::runtime::Runtime, spool: &Spool, iters: u64) -> Duration {
    let body = vec![b'x'; BODY];
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let spool = spool.clone();
        let body = body.clone();
        let (took, ids) = rt.block_on(async move {
            let start = Instant::now();
            let tasks: Vec<_> = (0..CONCURRENT)
                .map(|i| {
                    let spool = spool.clone();
                    let body = body.clone();
                    tokio::spawn(async move {
                        let env = Envelope::new(
                            "bench@a.example",
                            [format!("r{i}@b.example")],
                            SystemTime::now(),
                        );
                        spool.accept(env, body).await.expect("accept").id
                    })
                })
                .collect();
            let mut ids = Vec::with_capacity(CONCURRENT);
            for t in tasks {
                ids.push(t.await.expect("task"));
            }
            let took = start.elapsed();
            // Clean up outside the measured time so the directory stays small.
            for id in &ids {
                spool.remove(id).await.expect("remove");
            }
            (took, ids.len())
        });
        assert_eq!(ids, CONCURRENT);
        total += took;
    }
    total
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("spool_accept_fsync");
    g.throughput(Throughput::Elements(CONCURRENT as u64));
    g.sample_size(10);
    for (name, mode) in [
        ("group_commit", CommitMode::Group { max_batch: 256 }),
        ("per_message_fsync", CommitMode::PerMessage),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = SpoolConfig::default().with_commit(mode);
        let (spool, _) = rt.block_on(Spool::open(dir.path(), cfg)).unwrap();
        g.bench_function(name, |b| {
            b.iter_custom(|iters| accept_batch(&rt, &spool, iters))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
