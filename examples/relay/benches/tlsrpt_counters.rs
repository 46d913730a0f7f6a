//! The cost per delivery of TLS-RPT counting in the relay, beside a baseline without
//! reporting, in the same run: the session from the outcome (baseline), then the session's
//! counter update (bucket id, encoded field) and the file backend's atomic increment (what
//! the recorder task does per session), and the in-memory aggregate instead of the store.
//! The file backend's journal is fsynced in batches by the backend; its directory is a temp
//! dir.
#![allow(missing_docs)]

use std::collections::HashSet;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use relay::state::{Counters, FileCounters};
use relay::tlsrpt::{Period, write_session};
use smtp_tls_policy::tlsrpt::{
    Aggregate, Endpoints, ReportedPolicy, Session, SessionResult, TlsOutcome,
};
use time::OffsetDateTime;

fn session(outcome: TlsOutcome) -> Session {
    let policy = ReportedPolicy::sts("example.com", None);
    let endpoints = Endpoints::new(
        Some("192.0.2.1".parse().expect("ip")),
        Some("198.51.100.25".parse().expect("ip")),
        Some("mx1.example.com"),
    );
    Session::new(policy, SessionResult::new(outcome, endpoints))
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let (file, _) = FileCounters::open(dir.path()).expect("file counters");
    let counters = Counters::File(file);
    let period = Period::of(OffsetDateTime::now_utc(), 86_400);
    let mut group = c.benchmark_group("tlsrpt_counters");
    for (name, outcome) in [
        ("success", TlsOutcome::Success),
        ("failure", TlsOutcome::StarttlsNotSupported),
    ] {
        group.bench_function(format!("baseline_session_only/{name}"), |b| {
            b.iter(|| black_box(session(black_box(outcome))));
        });
        let mut described = HashSet::new();
        group.bench_function(format!("session_and_file_store_incr/{name}"), |b| {
            b.iter(|| {
                let s = session(black_box(outcome));
                rt.block_on(write_session(&counters, &period, &s, &mut described))
                    .expect("incr");
            });
        });
        let mut aggregate = Aggregate::new();
        group.bench_function(format!("session_and_in_memory_aggregate/{name}"), |b| {
            b.iter(|| {
                let s = session(black_box(outcome));
                black_box(aggregate.record(period.date, &s));
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
