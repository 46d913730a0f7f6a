//! Whole verification (smtp-tls-policy: webpki path + structural checks + identity) against bare
//! rustls-webpki (path + `verify_is_valid_for_subject_name`) on the same CA -> intermediate ->
//! leaf chain, with the same anchors and instant, in the same run; then a paired, interleaved
//! measurement of the same comparison (see [`paired_overhead`]).
#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::hint::black_box;
use std::time::Instant;

use criterion::{BatchSize, Criterion, criterion_group};
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

/// The shared inputs: one chain, one anchor set, one target, one instant, for every variant.
struct Fixture {
    chain: Vec<CertificateDer<'static>>,
    anchors: TrustAnchors,
    bare_anchors: Vec<TrustAnchor<'static>>,
    target: DeliveryTarget,
    name: ServerName<'static>,
    now: UnixTime,
}

impl Fixture {
    fn new() -> Self {
        let (ca, chain) = chain();
        let anchors = TrustAnchors::from_certificates([ca]).unwrap();
        let bare_anchors = anchors.anchors().to_vec();
        let target = DeliveryTarget::builder("example.com")
            .with_mx_host("mx1.example.net")
            .build()
            .unwrap();
        Self {
            chain,
            anchors,
            bare_anchors,
            target,
            name: ServerName::try_from("mx1.example.net").unwrap(),
            now: UnixTime::now(),
        }
    }

    /// Bare rustls-webpki: path validation plus its own name check.
    fn bare(&self) {
        let chain = black_box(&self.chain);
        let ee = webpki::EndEntityCert::try_from(&chain[0]).unwrap();
        ee.verify_for_usage(
            supported_algorithms(),
            &self.bare_anchors,
            &chain[1..],
            self.now,
            webpki::KeyUsage::server_auth(),
            None,
            None,
        )
        .unwrap();
        ee.verify_is_valid_for_subject_name(&self.name).unwrap();
    }

    /// smtp-tls-policy's whole verification (`Verify` algorithm) under `policy`.
    fn ours(&self, policy: &VerificationPolicy) -> bool {
        verify_server_certificate(
            policy,
            &self.target,
            black_box(&self.chain),
            &self.anchors,
            self.now,
        )
        .is_verified()
    }
}

const VARIANTS: [(&str, ChainProfile); 2] = [
    ("smtp_tls_policy_webpki_only", ChainProfile::WebpkiOnly),
    ("smtp_tls_policy_rfc5280", ChainProfile::Rfc5280),
];

fn bench(c: &mut Criterion) {
    let fx = Fixture::new();
    let mut group = c.benchmark_group("whole_verification");
    group.bench_function("bare_rustls_webpki", |b| b.iter(|| fx.bare()));
    for (label, profile) in VARIANTS {
        let policy = VerificationPolicy::new(IdentityAlgorithm::Verify).with_profile(profile);
        assert!(fx.ours(&policy));
        group.bench_function(label, |b| b.iter(|| fx.ours(&policy)));
    }
    // The first handshake through an intermediate: a fresh `TrustAnchors` clone (empty
    // intermediate memo) per iteration, cloned and dropped outside the timing.
    let policy = VerificationPolicy::new(IdentityAlgorithm::Verify);
    group.bench_function("smtp_tls_policy_rfc5280_cold_memo", |b| {
        b.iter_batched_ref(
            || fx.anchors.clone(),
            |anchors| {
                verify_server_certificate(
                    &policy,
                    &fx.target,
                    black_box(&fx.chain),
                    anchors,
                    fx.now,
                )
                .is_verified()
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// Paired comparison, robust to the load of a shared machine: blocks of bare rustls-webpki and of
/// each variant are interleaved (bare, variant, bare, variant, ...) so both see the same load at
/// the same time; the overhead is the median over blocks of (variant block time / adjacent bare
/// block time). Printed after criterion's own estimates; skipped in `cargo test` mode.
fn paired_overhead() {
    const BLOCKS: usize = 60;
    const PER_BLOCK: u32 = 25;
    let fx = Fixture::new();
    let time = |f: &dyn Fn()| {
        let start = Instant::now();
        for _ in 0..PER_BLOCK {
            f();
        }
        start.elapsed()
    };
    println!(
        "\nwhole_verification paired (same chain, anchors and instant; {BLOCKS} interleaved blocks of {PER_BLOCK}):"
    );
    for (label, profile) in VARIANTS {
        let policy = VerificationPolicy::new(IdentityAlgorithm::Verify).with_profile(profile);
        let (mut ratios, mut bare_us, mut ours_us) = (Vec::new(), Vec::new(), Vec::new());
        for block in 0..BLOCKS {
            // Alternate which runs first so neither always follows the other.
            let (bare, ours) = if block % 2 == 0 {
                let b = time(&|| fx.bare());
                (b, time(&|| assert!(fx.ours(&policy))))
            } else {
                let o = time(&|| assert!(fx.ours(&policy)));
                (time(&|| fx.bare()), o)
            };
            ratios.push(ours.as_secs_f64() / bare.as_secs_f64());
            bare_us.push(bare.as_secs_f64() * 1e6 / f64::from(PER_BLOCK));
            ours_us.push(ours.as_secs_f64() * 1e6 / f64::from(PER_BLOCK));
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        println!(
            "  {label:<30} bare {:>7.1} µs  ours {:>7.1} µs  overhead (median of block ratios) {:+.1} %",
            median(&mut bare_us),
            median(&mut ours_us),
            (median(&mut ratios) - 1.0) * 100.0
        );
    }
}

criterion_group!(benches, bench);

fn main() {
    benches();
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--profile-time") {
        paired_overhead();
    }
    Criterion::default().configure_from_args().final_summary();
}
