use proptest::prelude::*;

use super::*;
use crate::{SelfSignedRequest, Subject, create_self_signed};

fn make_certs(n: usize) -> Vec<CertificateDer<'static>> {
    (0..n)
        .map(|i| {
            let req = SelfSignedRequest::new(Subject::new(format!("host{i}.example.com")));
            CertificateDer::from(
                create_self_signed(&req, time::OffsetDateTime::now_utc())
                    .unwrap()
                    .cert_der,
            )
        })
        .collect()
}

#[test]
fn pem_and_der_bundles_parse() {
    let certs = make_certs(2);
    let pem = certs_to_pem(&certs);
    let got = parse_bundle(pem.as_bytes(), BadEntryPolicy::Reject).unwrap();
    assert_eq!(got.certs, certs);
    let der: Vec<u8> = certs.iter().flat_map(|c| c.as_ref().to_vec()).collect();
    assert_eq!(
        parse_bundle(&der, BadEntryPolicy::Reject).unwrap().certs,
        certs
    );
}

#[test]
fn every_bad_entry_is_reported_with_its_position() {
    let certs = make_certs(2);
    let good = certs_to_pem(&certs[..1]);
    let good_lines = good.lines().count();
    let text = format!(
        "# comment\n{good}-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n\
         -----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n\
         -----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n{}\
         -----BEGIN CERTIFICATE-----\nMIIB\n",
        certs_to_pem(&certs[1..])
    );
    let err = parse_bundle(text.as_bytes(), BadEntryPolicy::Reject).unwrap_err();
    let Error::BadBundle { bad } = err else {
        panic!("{err:?}")
    };
    let positions: Vec<(usize, Location)> = bad.iter().map(|b| (b.entry, b.at)).collect();
    let crl_line = 2 + good_lines;
    assert_eq!(
        positions,
        vec![
            (2, Location::Line(crl_line)),
            (3, Location::Line(crl_line + 3)),
            (4, Location::Line(crl_line + 6)),
            (6, Location::Line(crl_line + 9 + good_lines)),
        ]
    );
    assert_eq!(
        bad[0].reason,
        BadEntryReason::NotACertificate {
            label: "X509 CRL".into()
        }
    );
    assert_eq!(bad[1].reason, BadEntryReason::BadBase64);
    assert!(matches!(
        bad[2].reason,
        BadEntryReason::MalformedCertificate { .. }
    ));
    assert_eq!(bad[3].reason, BadEntryReason::MissingEnd);
    // Under SkipBad the two good certificates load.
    let skipped = parse_bundle(text.as_bytes(), BadEntryPolicy::SkipBad).unwrap();
    assert_eq!(skipped.certs, certs);
    assert_eq!(skipped.skipped, bad);
}

#[test]
fn empty_and_oversized_inputs_are_errors() {
    assert_eq!(
        parse_bundle(b"", BadEntryPolicy::SkipBad),
        Err(Error::NoCertificate)
    );
    assert!(matches!(
        parse_bundle(b"# only text\n", BadEntryPolicy::SkipBad),
        Err(Error::BadBundle { .. })
    ));
    let big = vec![b'a'; MAX_BUNDLE_BYTES + 1];
    assert!(matches!(
        parse_bundle(&big, BadEntryPolicy::SkipBad),
        Err(Error::TooLarge { .. })
    ));
}

#[test]
fn truncated_der_is_reported_at_its_offset() {
    let certs = make_certs(2);
    let mut der = certs[0].as_ref().to_vec();
    let first = der.len();
    der.extend_from_slice(&certs[1].as_ref()[..40]);
    let Err(Error::BadBundle { bad }) = parse_bundle(&der, BadEntryPolicy::Reject) else {
        panic!("truncated DER accepted")
    };
    assert_eq!((bad[0].entry, bad[0].at), (2, Location::Offset(first)));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// PEM round trip: any selection of certificates, any comment text between blocks and any
    /// line ending, parses back to the same certificates in the same order.
    #[test]
    fn pem_round_trip(picks in proptest::collection::vec(0usize..3, 0..6),
                      junk in "[a-z #:=]{0,20}", crlf in any::<bool>()) {
        let pool = POOL.with(|p| p.clone());
        let chosen: Vec<_> = picks.iter().map(|i| pool[*i].clone()).collect();
        let mut text = String::new();
        for c in &chosen {
            text.push_str(&junk);
            text.push('\n');
            text.push_str(&certs_to_pem([c]));
        }
        if crlf {
            text = text.replace('\n', "\r\n");
        }
        let got = parse_bundle(text.as_bytes(), BadEntryPolicy::Reject);
        if chosen.is_empty() {
            prop_assert_eq!(got, Err(Error::NoCertificate));
        } else {
            prop_assert_eq!(got.unwrap().certs, chosen);
        }
    }

    /// Arbitrary bytes never panic, and anything accepted re-encodes to the same certificates.
    #[test]
    fn arbitrary_input_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(b) = parse_bundle(&data, BadEntryPolicy::SkipBad) {
            let again = parse_bundle(certs_to_pem(&b.certs).as_bytes(), BadEntryPolicy::Reject);
            prop_assert_eq!(again.unwrap().certs, b.certs);
        }
    }
}

thread_local! {
    static POOL: Vec<CertificateDer<'static>> = make_certs(3);
}
