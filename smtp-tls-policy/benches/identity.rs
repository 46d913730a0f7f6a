//! Name matching per (certificate, reference set): the identity algorithms over a parsed
//! certificate, and the extraction of presented identities from DER.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use smtp_tls_policy::identity::{
    DeliveryTarget, IdentityAlgorithm, MxSecurity, PresentedIdentities, check_identity,
};

fn leaf_der() -> Vec<u8> {
    let key = rcgen::KeyPair::generate().unwrap();
    // A typical hosting certificate: CN plus ten SAN dNSNames, one wildcard, the match last.
    let mut names: Vec<String> = (0..9).map(|i| format!("mx{i}.hosting.example")).collect();
    names.push("*.mail.example.com".into());
    let mut params = rcgen::CertificateParams::new(names).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "mx0.hosting.example");
    params.self_signed(&key).unwrap().der().to_vec()
}

fn bench(c: &mut Criterion) {
    let der = leaf_der();
    let ids = PresentedIdentities::from_der(&der).unwrap();
    let target = DeliveryTarget::builder("example.com")
        .with_mx_host("mx1.example.net")
        .with_mx_host("in.mail.example.com")
        .with_route_host("relay.example.org")
        .with_mx_security(MxSecurity::Secure)
        .build()
        .unwrap();
    let mut group = c.benchmark_group("name_matching");
    #[allow(unused_mut)]
    let mut algorithms = vec![IdentityAlgorithm::Verify, IdentityAlgorithm::HostedVerify];
    #[cfg(feature = "limbo")]
    algorithms.push(IdentityAlgorithm::Strict);
    for alg in algorithms {
        let refs = target.reference_ids(alg);
        assert!(check_identity(&ids, &refs, alg).matched.is_some());
        group.bench_function(alg.name(), |b| {
            b.iter(|| check_identity(black_box(&ids), black_box(&refs), alg))
        });
    }
    group.bench_function("extract_presented_identities", |b| {
        b.iter(|| PresentedIdentities::from_der(black_box(&der)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
