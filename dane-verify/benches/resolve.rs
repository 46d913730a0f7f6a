//! Cold resolution of a 2-MX domain (two.dane.test) against the DNSSEC lab with 20 ms injected
//! per DNS query (a delaying UDP forwarder in front of the validating unbound), MX hosts looked
//! up concurrently vs one after the other (baseline), and the cost of a cached lookup.
//! `cargo bench -p dane-verify --features resolver --bench resolve -- --warm-up-time 1 --measurement-time 3`

#![allow(missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use dane_verify::resolver::{DaneResolver, Limits, Validation};
use test_support::dnssec_lab::Lab;
use tokio::net::UdpSocket;

const DELAY: Duration = Duration::from_millis(20);

/// Forwards each datagram to `upstream` after `DELAY`, relaying the answer back.
async fn delaying_forwarder(upstream: SocketAddr) -> SocketAddr {
    let sock = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let addr = sock.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, client)) = sock.recv_from(&mut buf).await else {
                return;
            };
            let query = buf[..n].to_vec();
            let sock = sock.clone();
            tokio::spawn(async move {
                tokio::time::sleep(DELAY).await;
                let up = UdpSocket::bind("127.0.0.1:0").await.unwrap();
                up.send_to(&query, upstream).await.unwrap();
                let mut resp = vec![0u8; 4096];
                if let Ok(Ok(m)) =
                    tokio::time::timeout(Duration::from_secs(5), up.recv(&mut resp)).await
                {
                    let _ = sock.send_to(&resp[..m], client).await;
                }
            });
        }
    });
    addr
}

fn bench(c: &mut Criterion) {
    let lab = Lab::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let fwd = rt.block_on(delaying_forwarder(lab.validating()));
    let resolver =
        DaneResolver::new(Validation::TrustAd { resolver: fwd }, Limits::default()).unwrap();
    // until validation is proven every status is indeterminate and no TLSA lookup is made
    rt.block_on(resolver.probe("test.")).unwrap();
    let mut g = c.benchmark_group("resolve_two_mx_20ms");
    g.sample_size(10);
    g.bench_function("cold, MX hosts concurrent", |b| {
        b.iter(|| {
            resolver.clear_cache();
            let f = rt
                .block_on(resolver.destination("two.dane.test", 25))
                .unwrap();
            assert_eq!(f.hosts.len(), 2);
        })
    });
    g.bench_function("baseline: cold, MX hosts one after the other", |b| {
        b.iter(|| {
            resolver.clear_cache();
            rt.block_on(async {
                let mx = resolver
                    .destination("nxdomain.dane.test", 25)
                    .await
                    .unwrap(); // MX query cost
                let _ = mx;
                for h in ["mx.dane.test", "mx-ta.dane.test"] {
                    let f = resolver
                        .host_facts("two.dane.test", h, dane_verify::DnssecStatus::Secure, 25)
                        .await;
                    assert!(f.address_status.is_secure());
                }
            })
        })
    });
    g.bench_function("baseline: one MX host alone (cold)", |b| {
        b.iter(|| {
            resolver.clear_cache();
            rt.block_on(resolver.destination("ta.dane.test", 25))
                .unwrap()
        })
    });
    g.finish();
    let mut g = c.benchmark_group("resolve_cached");
    rt.block_on(resolver.destination("two.dane.test", 25))
        .unwrap();
    g.bench_function("cached two.dane.test", |b| {
        b.iter(|| {
            rt.block_on(resolver.destination("two.dane.test", 25))
                .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
