//! TXT lookups with their DNSSEC status against the DNSSEC lab (knot + unbound), both
//! validation ways: the MTA-STS (`_mta-sts`) and TLS-RPT (`_smtp._tls`) records of
//! `scripts/dnssec-lab.sh` in the secure, insecure and bogus zones.
#![cfg(feature = "resolver")]

use std::time::Duration;

use dane_verify::DnssecStatus;
use dane_verify::resolver::{DaneResolver, Limits, Validation, ValidationState};
use dane_verify::{LookupFailure, TxtLookup, TxtRecord};
use test_support::dnssec_lab::{Lab, sts};

fn limits() -> Limits {
    Limits {
        timeout: Duration::from_secs(5),
        ..Limits::default()
    }
}

/// Both validation ways with `limits`, not probed.
fn unprobed(lab: &Lab, limits: Limits) -> Vec<(&'static str, DaneResolver)> {
    vec![
        (
            "trust-ad",
            DaneResolver::new(
                Validation::TrustAd {
                    resolver: lab.validating(),
                },
                limits,
            )
            .unwrap(),
        ),
        (
            "in-process",
            DaneResolver::new(
                Validation::in_process_from_file(lab.non_validating(), &lab.trust_anchor_file())
                    .unwrap(),
                limits,
            )
            .unwrap(),
        ),
    ]
}

fn one(text: &str) -> Vec<TxtRecord> {
    vec![TxtRecord::new(vec![text.as_bytes().to_vec()])]
}

fn sts_record(domain: &str, id: &str) -> (String, Vec<TxtRecord>) {
    (
        format!("_mta-sts.{domain}"),
        one(&format!("v=STSv1; id={id}")),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn txt_records_with_their_dnssec_status() {
    let lab = Lab::start();
    for (way, r) in unprobed(&lab, limits()) {
        r.probe("test.")
            .await
            .unwrap_or_else(|e| panic!("{way}: probe: {e}"));
        assert_eq!(r.validation_state(), ValidationState::Validating, "{way}");
        let found = |status| {
            move |(name, records): (String, Vec<TxtRecord>)| {
                (name, TxtLookup::Found { records, status })
            }
        };
        let mut cases: Vec<(String, TxtLookup)> = vec![
            found(DnssecStatus::Secure)(sts_record(sts::SECURE, sts::SECURE_ID)),
            found(DnssecStatus::Insecure)(sts_record(sts::INSECURE, sts::INSECURE_ID)),
            found(DnssecStatus::Insecure)(sts_record(sts::TESTING, "20261204T2")),
            found(DnssecStatus::Insecure)((
                format!("_smtp._tls.{}", sts::INSECURE),
                one("v=TLSRPTv1; rua=mailto:tlsrpt@sts.unsigned.test"),
            )),
            found(DnssecStatus::Secure)((
                format!("_smtp._tls.{}", sts::SECURE),
                one("v=TLSRPTv1; rua=mailto:tlsrpt@sts.dane.test"),
            )),
            // secure NXDOMAIN, insecure NXDOMAIN, insecure NODATA (the name owns an MX only)
            (
                "_mta-sts.nxdomain.dane.test".into(),
                TxtLookup::NotFound {
                    status: DnssecStatus::Secure,
                },
            ),
            (
                "_mta-sts.nxdomain.unsigned.test".into(),
                TxtLookup::NotFound {
                    status: DnssecStatus::Insecure,
                },
            ),
            (
                sts::INSECURE.into(),
                TxtLookup::NotFound {
                    status: DnssecStatus::Insecure,
                },
            ),
            // one record of two character-strings: kept apart, joined on request
            (
                format!("_mta-sts.{}", sts::SPLIT),
                TxtLookup::Found {
                    records: vec![TxtRecord::new(vec![
                        b"v=STSv1; ".to_vec(),
                        b"id=split1".to_vec(),
                    ])],
                    status: DnssecStatus::Insecure,
                },
            ),
            // in-process validation sees the broken signature; unbound answers SERVFAIL
            (
                format!("_mta-sts.{}", sts::BOGUS),
                if way == "trust-ad" {
                    TxtLookup::Failed(LookupFailure::ServFail)
                } else {
                    TxtLookup::Bogus
                },
            ),
        ];
        // twice: the second round is answered from the cache
        cases.extend(cases.clone());
        for (name, want) in &cases {
            let got = r.txt(name).await.unwrap();
            assert_eq!(&got, want, "{way}: {name}");
        }
        let TxtLookup::Found { records, .. } =
            r.txt(&format!("_mta-sts.{}", sts::SPLIT)).await.unwrap()
        else {
            panic!("{way}: split record not found");
        };
        assert_eq!(records[0].concatenated(), b"v=STSv1; id=split1");
        // two records: both returned (MTA-STS then has no policy, RFC 8461 §3.1)
        let TxtLookup::Found {
            mut records,
            status,
        } = r.txt(&format!("_mta-sts.{}", sts::MULTI)).await.unwrap()
        else {
            panic!("{way}: multi records not found");
        };
        records.sort_by_key(TxtRecord::concatenated);
        assert_eq!(status, DnssecStatus::Insecure, "{way}");
        assert_eq!(
            records,
            [one("v=STSv1; id=multi1"), one("v=STSv1; id=multi2")].concat(),
            "{way}"
        );
        // the MTA-STS policy hosts' addresses (the bogus zone's A record is intact)
        for domain in [sts::INSECURE, sts::SECURE, sts::BOGUS, sts::SPLIT] {
            let host = format!("mta-sts.{domain}");
            assert_eq!(
                r.addresses(&host).await.unwrap(),
                [std::net::IpAddr::from([127, 0, 0, 1])],
                "{way}: {host}"
            );
        }
        assert!(
            r.addresses("mta-sts.nxdomain.dane.test")
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            r.txt("bad name").await,
            Err(dane_verify::Error::BadName {
                name: "bad name".into()
            })
        );
    }
}

/// Until a probe proves validation, no TXT answer is `Secure` or `Insecure` (an unvalidating
/// resolver makes everything look insecure); bogus stays bogus. Size limits fail the lookup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unproven_validation_is_indeterminate_and_over_limit_rrsets_are_too_large() {
    let lab = Lab::start();
    for (way, r) in unprobed(&lab, limits()) {
        assert_eq!(r.validation_state(), ValidationState::Unproven, "{way}");
        for name in [
            format!("_mta-sts.{}", sts::SECURE),
            format!("_mta-sts.{}", sts::INSECURE),
        ] {
            let got = r.txt(&name).await.unwrap();
            assert!(
                matches!(&got, TxtLookup::Found { records, status: DnssecStatus::Indeterminate } if records.len() == 1),
                "{way}: {name}: {got:?}"
            );
        }
        let got = r.txt("_mta-sts.nxdomain.dane.test").await.unwrap();
        assert_eq!(
            got,
            TxtLookup::NotFound {
                status: DnssecStatus::Indeterminate
            },
            "{way}"
        );
        let got = r.txt(&format!("_mta-sts.{}", sts::BOGUS)).await.unwrap();
        assert_eq!(
            got.status(),
            if way == "trust-ad" {
                DnssecStatus::Indeterminate
            } else {
                DnssecStatus::Bogus
            },
            "{way}: {got:?}"
        );
        assert!(
            !matches!(got, TxtLookup::Found { .. } | TxtLookup::NotFound { .. }),
            "{way}"
        );
    }
    let tight = Limits {
        max_txt_records: 1,
        max_txt_bytes: 18,
        ..limits()
    };
    for (way, r) in unprobed(&lab, tight) {
        r.probe("test.").await.unwrap();
        // two records > 1: an answer of its own, not a failed lookup
        assert!(
            matches!(
                r.txt(&format!("_mta-sts.{}", sts::MULTI)).await.unwrap(),
                TxtLookup::TooLarge { records: 2, .. }
            ),
            "{way}"
        );
        // "v=STSv1; id=split1" is 18 octets: at the limit
        assert!(
            matches!(
                r.txt(&format!("_mta-sts.{}", sts::SPLIT)).await.unwrap(),
                TxtLookup::Found { .. }
            ),
            "{way}"
        );
        // "v=STSv1; id=20261204T1" is 22 octets: over it
        assert!(
            matches!(
                r.txt(&format!("_mta-sts.{}", sts::INSECURE)).await.unwrap(),
                TxtLookup::TooLarge {
                    records: 1,
                    bytes: 22,
                    status: DnssecStatus::Insecure | DnssecStatus::Indeterminate,
                }
            ),
            "{way}"
        );
    }
}
