//! Whole verification (smtp-tls-policy: webpki path + structural checks + identity) against bare
//! rustls-webpki (path + `verify_is_valid_for_subject_name`) on the same CA -> intermediate ->
//! leaf chain, in the same run.
#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use rustls_pki_types::{CertificateDer, ServerName, TrustAnchor, UnixTime};
use smtp_tls_policy::chain::{ChainProfile, TrustAnchors, supported_algorithms};
use smtp_tls_policy::identity::{DeliveryTarget, IdentityAlgorithm};
use smtp_tls_policy::{VerificationPolicy, verify_server_certificate};

fn chain() -> (CertificateDer<'static>, Vec<CertificateDer<'static>>) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "Bench Root");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let root = rcgen::Issuer::new(ca, ca_key);
    let int_key = rcgen::KeyPair::generate().unwrap();
    let mut int = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    int.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    int.distinguished_name
        .push(rcgen::DnType::CommonName, "Bench Intermediate");
    int.use_authority_key_identifier_extension = true;
    let int_cert = int.signed_by(&int_key, &root).unwrap();
    let intermediate = rcgen::Issuer::new(int, int_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let mut leaf = rcgen::CertificateParams::new(vec!["mx1.example.net".to_string()]).unwrap();
    leaf.use_authority_key_identifier_extension = true;
    leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_cert = leaf.signed_by(&leaf_key, &intermediate).unwrap();
    (
        ca_cert.der().clone(),
        vec![leaf_cert.der().clone(), int_cert.der().clone()],
    )
}

fn bench(c: &mut Criterion) {
    let (ca, chain) = chain();
    let anchors = TrustAnchors::from_certificates([ca.clone()]).unwrap();
    let bare_anchors: Vec<TrustAnchor<'static>> = anchors.anchors().to_vec();
    let target = DeliveryTarget::builder("example.com")
        .with_mx_host("mx1.example.net")
        .build()
        .unwrap();
    let now = UnixTime::now();
    let name = ServerName::try_from("mx1.example.net").unwrap();
    let mut group = c.benchmark_group("whole_verification");
    group.bench_function("bare_rustls_webpki", |b| {
        b.iter(|| {
            let ee = webpki::EndEntityCert::try_from(black_box(&chain[0])).unwrap();
            ee.verify_for_usage(
                supported_algorithms(),
                &bare_anchors,
                &chain[1..],
                now,
                webpki::KeyUsage::server_auth(),
                None,
                None,
            )
            .unwrap();
            ee.verify_is_valid_for_subject_name(&name).unwrap();
        })
    });
    for (label, profile) in [
        ("smtp_tls_policy_webpki_only", ChainProfile::WebpkiOnly),
        ("smtp_tls_policy_rfc5280", ChainProfile::Rfc5280),
    ] {
        let policy = VerificationPolicy::new(IdentityAlgorithm::Verify).with_profile(profile);
        assert!(verify_server_certificate(&policy, &target, &chain, &anchors, now).is_verified());
        group.bench_function(label, |b| {
            b.iter(|| verify_server_certificate(&policy, &target, black_box(&chain), &anchors, now))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
