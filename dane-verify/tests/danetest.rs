//! OpenSSL's DANE test vectors (`test/danetest.in`, see tests/data/openssl-danetest/README.md)
//! run on the library in generic mode: outcome and depth of every case must equal OpenSSL's,
//! except the cases listed, with a reason, in `divergences.txt`.
//! `cargo test -p dane-verify --test danetest -- --nocapture` prints the counts.

use std::time::Duration;

use dane_verify::{DaneEeNames, DaneMatcher, TlsaRecord};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, UnixTime};

#[path = "data/openssl-danetest/cases.rs"]
mod cases;

const DATA: &str = include_str!("data/openssl-danetest/danetest.in");
const DIVERGENCES: &str = include_str!("data/openssl-danetest/divergences.txt");

fn cert(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).expect("PEM certificate")
}

#[test]
fn openssl_danetest_on_the_library() {
    let all = cases::parse(DATA);
    assert_eq!(all.len(), 50, "danetest.in has 50 cases");
    let known = cases::divergences(DIVERGENCES);
    let store = vec![cert(&cases::root_ca(&all))];
    let now = UnixTime::since_unix_epoch(Duration::from_secs(cases::AT_UNIX));
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    let mut problems = Vec::new();
    for case in &all {
        if case.digest_order_matters() {
            skipped += 1;
            println!(
                "case {}: skipped (depends on the SHA-256/SHA-512 order)",
                case.number
            );
            continue;
        }
        let names = if case.no_name_checks {
            DaneEeNames::Skip
        } else {
            DaneEeNames::Check
        };
        let matcher = DaneMatcher::generic([cases::BASE_DOMAIN], store.clone(), names).unwrap();
        let records: Vec<TlsaRecord> = case.tlsa.iter().map(|t| t.parse().unwrap()).collect();
        let chain: Vec<CertificateDer<'static>> = case.chain.iter().map(|p| cert(p)).collect();
        let v = matcher.verify(&records, &chain, now);
        let agrees = v.outcome.as_str() == case.outcome() && v.depth == case.depth;
        let listed = known.contains(&case.number);
        if agrees {
            passed += 1;
        } else {
            failed += 1;
        }
        if agrees == listed {
            problems.push(format!(
                "case {} ({}): expected {} depth {}, got {} depth {} ({:?})",
                case.number,
                if listed {
                    "listed divergence now agrees"
                } else {
                    "unexpected"
                },
                case.outcome(),
                case.depth,
                v.outcome.as_str(),
                v.depth,
                v.reason
            ));
        }
    }
    println!("OpenSSL danetest: {passed} passed, {failed} failed, {skipped} skipped");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
