//! Criterion benchmarks: gate decision per command, delivery machine per attempt, destination
//! lookup and EHLO reply parsing, each beside a baseline measured in the same run.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use dane_verify::DaneSetting;
use smtp_tls_policy::delivery::*;
use smtp_tls_policy::destination::*;
use smtp_tls_policy::listener::{Gate, ListenerCertificate, ListenerTls};
use smtp_tls_policy::smtp::{EhloCapabilities, parse_command, parse_reply};

const COMMANDS: [&[u8]; 4] = [
    b"EHLO client.example\r\n",
    b"MAIL FROM:<a@example.org>\r\n",
    b"NOOP\r\n",
    b"STARTTLS\r\n",
];

fn gate(c: &mut Criterion) {
    let mut g = c.benchmark_group("listener_gate_per_command");
    g.bench_function("baseline: smtp-proto parse only", |b| {
        b.iter(|| {
            for line in COMMANDS {
                let _ = black_box(smtp_proto::Request::parse(&mut black_box(line).iter()));
            }
        })
    });
    g.bench_function("parse + gate decision", |b| {
        b.iter(|| {
            let mut gate = Gate::new(ListenerTls::Required, ListenerCertificate::Configured);
            for line in COMMANDS {
                let cmd = parse_command(black_box(line)).unwrap();
                let _ = black_box(gate.on_command(cmd.kind));
            }
        })
    });
    g.finish();
}

fn attempt(c: &mut Criterion) {
    let mut g = c.benchmark_group("delivery_attempt");
    g.bench_function("baseline: requirement only", |b| {
        b.iter(|| {
            black_box(Requirement::new(
                black_box(DeliveryTls::RequiredVerify),
                DaneSetting::None,
                &TlsaStatus::NotApplicable,
            ))
        })
    });
    g.bench_function("full attempt (EHLO, STARTTLS, handshake, verified)", |b| {
        b.iter(|| {
            let mut a = DeliveryAttempt::new(
                "example.com",
                black_box(DeliveryTls::RequiredVerify),
                DaneSetting::None,
                TlsaStatus::NotApplicable,
                DeliveryOptions::new(RequiredTlsAlerts::Send),
            );
            let _ = a.preflight();
            let _ = a.on_ehlo(EhloOutcome::Esmtp { starttls: true });
            let _ = a.on_starttls_reply(220);
            black_box(
                a.on_handshake(HandshakeOutcome::Established(PeerVerification::new(
                    PkixOutcome::Verified,
                    None,
                ))),
            )
        })
    });
    g.bench_function(
        "full attempt (STARTTLS not advertised → defer + alert)",
        |b| {
            b.iter(|| {
                let mut a = DeliveryAttempt::new(
                    "example.com",
                    black_box(DeliveryTls::Required),
                    DaneSetting::None,
                    TlsaStatus::NotApplicable,
                    DeliveryOptions::new(RequiredTlsAlerts::Send),
                );
                let _ = a.preflight();
                black_box(a.on_ehlo(EhloOutcome::Esmtp { starttls: false }))
            })
        },
    );
    g.finish();
}

fn lookup(c: &mut Criterion) {
    let mut b = DestinationControls::builder();
    let mut keys = Vec::new();
    for i in 0..10_000 {
        let k = if i % 2 == 0 {
            format!("d{i}.example")
        } else {
            format!(".p{i}.example")
        };
        b = b
            .entry(
                &k,
                DestinationEntry::new(TlsMode::Required, ConfiguredDane::Default),
            )
            .unwrap();
        keys.push(k);
    }
    let table = b.build();
    let domain = "mx.a.p9999.example";
    let mut g = c.benchmark_group("destination_lookup_10k");
    g.bench_function("baseline: linear scan", |bch| {
        bch.iter(|| {
            let d = black_box(domain);
            keys.iter().find(|k| *k == d).or_else(|| {
                keys.iter()
                    .filter(|k| k.starts_with('.') && d.ends_with(k.as_str()))
                    .max_by_key(|k| k.len())
            })
        })
    });
    g.bench_function("table lookup (hash, most specific)", |bch| {
        bch.iter(|| black_box(table.lookup(black_box(domain))))
    });
    g.finish();
}

fn ehlo(c: &mut Criterion) {
    let reply: &[u8] = b"250-mx.example.com Hello\r\n250-PIPELINING\r\n250-SIZE 52428800\r\n\
250-ETRN\r\n250-STARTTLS\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250 CHUNKING\r\n";
    let mut g = c.benchmark_group("ehlo_reply");
    g.bench_function("baseline: smtp-proto EhloResponse::parse", |b| {
        b.iter(|| {
            black_box(smtp_proto::EhloResponse::parse(
                &mut black_box(reply).iter(),
            ))
        })
    });
    g.bench_function("bounded framing + capabilities", |b| {
        b.iter(|| {
            let (r, _) = parse_reply(black_box(reply)).unwrap();
            black_box(EhloCapabilities::from_reply(&r))
        })
    });
    g.finish();
}

criterion_group!(benches, gate, attempt, lookup, ehlo);
criterion_main!(benches);
