//! TLSA match cost per record, against the baseline of just hashing the leaf SPKI.
//! `cargo bench -p dane-verify --bench matching -- --warm-up-time 1 --measurement-time 3`

#![allow(missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use dane_verify::{DaneMatcher, TlsaRecord};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls_pki_types::UnixTime;
use sha2::{Digest, Sha256, Sha512};
use x509_parser::prelude::{FromDer, X509Certificate};

fn bench(c: &mut Criterion) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Bench CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["mx.example.net".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let chain = vec![leaf.der().clone(), ca.der().clone()];
    let spki = |der: &[u8]| {
        X509Certificate::from_der(der)
            .unwrap()
            .1
            .tbs_certificate
            .subject_pki
            .raw
            .to_vec()
    };
    let leaf_spki = spki(leaf.der());
    let ca_spki = spki(ca.der());
    let rec = |s: String| s.parse::<TlsaRecord>().unwrap();
    let cases = [
        (
            "3 1 1",
            rec(format!("3 1 1 {}", hex::encode(Sha256::digest(&leaf_spki)))),
        ),
        (
            "3 0 1",
            rec(format!("3 0 1 {}", hex::encode(Sha256::digest(leaf.der())))),
        ),
        (
            "3 1 2",
            rec(format!("3 1 2 {}", hex::encode(Sha512::digest(&leaf_spki)))),
        ),
        (
            "2 1 1 (path + name)",
            rec(format!("2 1 1 {}", hex::encode(Sha256::digest(&ca_spki)))),
        ),
    ];
    let matcher = DaneMatcher::smtp(["mx.example.net", "example.net"]).unwrap();
    let now = UnixTime::now();
    let mut g = c.benchmark_group("tlsa_match");
    g.bench_function("baseline: sha256(leaf SPKI) after x509 parse", |b| {
        b.iter(|| Sha256::digest(spki(std::hint::black_box(leaf.der()))))
    });
    for (name, r) in &cases {
        assert!(
            matcher
                .verify(std::slice::from_ref(r), &chain, now)
                .is_verified()
        );
        g.bench_function(*name, |b| {
            b.iter(|| matcher.verify(std::hint::black_box(std::slice::from_ref(r)), &chain, now))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
