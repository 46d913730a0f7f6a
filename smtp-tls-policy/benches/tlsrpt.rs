//! Criterion benchmarks: the TLS-RPT counter path per delivery (the session's policy and
//! result, its counter update: SHA-256 bucket id and escaped field, and the in-memory count),
//! beside a baseline that builds the session only, in the same run.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use smtp_tls_policy::mta_sts::Policy;
use smtp_tls_policy::tlsrpt::{
    Aggregate, CounterUpdate, Endpoints, ReportedPolicy, Session, SessionResult, TlsOutcome,
};
use time::macros::date;

const STS: &[u8] = b"version: STSv1\nmode: enforce\nmx: mx1.example.com\nmx: *.mail.example.com\nmax_age: 604800\n";

fn session(policy: &Policy, outcome: TlsOutcome) -> Session {
    let endpoints = Endpoints::new(
        Some("192.0.2.1".parse().unwrap()),
        Some("198.51.100.25".parse().unwrap()),
        Some("mx1.example.com"),
    )
    .with_helo("mx1.example.com");
    Session::new(
        ReportedPolicy::sts("example.com", Some(policy)),
        SessionResult::new(outcome, endpoints),
    )
}

fn counter_path(c: &mut Criterion) {
    let policy = Policy::parse(STS).unwrap();
    let day = date!(2026 - 12 - 04);
    let mut g = c.benchmark_group("tlsrpt_counter_path_per_delivery");
    for (name, outcome) in [
        ("success", TlsOutcome::Success),
        ("failure", TlsOutcome::CertificateExpired),
    ] {
        g.bench_function(format!("baseline: session only ({name})"), |b| {
            b.iter(|| black_box(session(black_box(&policy), outcome)))
        });
        g.bench_function(format!("session + counter update ({name})"), |b| {
            b.iter(|| {
                let s = session(black_box(&policy), outcome);
                black_box(CounterUpdate::of(day, &s))
            })
        });
        let mut aggregate = Aggregate::new();
        g.bench_function(format!("session + in-memory record ({name})"), |b| {
            b.iter(|| {
                let s = session(black_box(&policy), outcome);
                black_box(aggregate.record(day, &s))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, counter_path);
criterion_main!(benches);
