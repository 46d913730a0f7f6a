//! The RFC 7672 matrix against the real DNSSEC lab (knot + unbound), through the resolver
//! adapter, both validation ways: MX secure/insecure/bogus x TLSA present/unusable-only/
//! secure-absent/bogus/SERVFAIL x DANE opportunistic/mandatory. Expected actions are the table
//! in the crate documentation.
#![cfg(feature = "resolver")]

use std::time::Duration;

use dane_verify::DnssecStatus;
use dane_verify::resolver::{DaneResolver, Limits, Validation, ValidationState};
use dane_verify::{DaneAction, DaneSetting, DeferReason, LookupFailure, NoDaneReason, TlsaLookup};
use test_support::dnssec_lab::Lab;
use test_support::free_port;

fn limits() -> Limits {
    Limits {
        timeout: Duration::from_secs(5),
        ..Limits::default()
    }
}

/// Both validation ways, not probed yet (statuses masked until a probe succeeds).
fn unprobed(lab: &Lab) -> Vec<(&'static str, DaneResolver)> {
    vec![
        (
            "trust-ad",
            DaneResolver::new(
                Validation::TrustAd {
                    resolver: lab.validating(),
                },
                limits(),
            )
            .unwrap(),
        ),
        (
            "in-process",
            DaneResolver::new(
                Validation::in_process_from_file(lab.non_validating(), &lab.trust_anchor_file())
                    .unwrap(),
                limits(),
            )
            .unwrap(),
        ),
    ]
}

/// Both validation ways, each proven by a probe of the lab's signed `test.` zone.
async fn resolvers(lab: &Lab) -> Vec<(&'static str, DaneResolver)> {
    let rs = unprobed(lab);
    for (way, r) in &rs {
        r.probe("test.")
            .await
            .unwrap_or_else(|e| panic!("{way}: probe: {e}"));
        assert_eq!(r.validation_state(), ValidationState::Validating, "{way}");
    }
    rs
}

/// Expected action name and a check of its detail, per (MX zone, TLSA kind, setting).
fn expected(zone: &str, tlsa: &str, setting: DaneSetting, action: &DaneAction) -> bool {
    use DaneSetting::Mandatory as M;
    match (zone, tlsa) {
        ("dane", "present") => {
            matches!(action, DaneAction::UseDane { records, .. } if records.len() == 2)
        }
        ("dane", "unusable") if setting == M => {
            *action == DaneAction::Defer(DeferReason::DaneRequired(NoDaneReason::OnlyUnusable))
        }
        ("dane", "unusable") => *action == DaneAction::TlsMandatoryUnauthenticated,
        ("dane", "absent") if setting == M => {
            *action == DaneAction::Defer(DeferReason::DaneRequired(NoDaneReason::NoTlsa))
        }
        ("dane", "absent") => *action == DaneAction::ConfiguredTls(NoDaneReason::NoTlsa),
        // bogus TLSA: hickory sees the bad signature (bogus), unbound answers SERVFAIL
        ("dane", "bogus") => matches!(
            action,
            DaneAction::Defer(
                DeferReason::TlsaBogus(DnssecStatus::Bogus)
                    | DeferReason::TlsaLookup(LookupFailure::ServFail)
            )
        ),
        ("dane", "servfail") => {
            *action == DaneAction::Defer(DeferReason::TlsaLookup(LookupFailure::ServFail))
        }
        ("unsigned", _) if setting == M => {
            *action == DaneAction::Defer(DeferReason::DaneRequired(NoDaneReason::MxInsecure))
        }
        ("unsigned", _) => *action == DaneAction::ConfiguredTls(NoDaneReason::MxInsecure),
        ("broken", _) => {
            matches!(action, DaneAction::Defer(DeferReason::MxLookup(s)) if s.is_failure())
        }
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc7672_matrix_against_the_lab() {
    let lab = Lab::start();
    let mut cells = 0;
    for (way, resolver) in resolvers(&lab).await {
        for zone in ["dane", "unsigned", "broken"] {
            for tlsa in ["present", "unusable", "absent", "bogus", "servfail"] {
                let domain = format!("{tlsa}.{zone}.test");
                let facts = resolver.destination(&domain, 25).await.unwrap();
                for setting in [DaneSetting::Opportunistic, DaneSetting::Mandatory] {
                    let actions = facts.actions(setting);
                    assert_eq!(actions.len(), 1, "{way} {domain}: {facts:?}");
                    let action = &actions[0].1;
                    assert!(
                        expected(zone, tlsa, setting, action),
                        "{way} {domain} {setting:?}: got {action:?}\nfacts: {facts:?}"
                    );
                    cells += 1;
                }
            }
        }
    }
    assert_eq!(cells, 2 * 3 * 5 * 2);
    println!("RFC 7672 matrix: {cells} cells passed (2 validation ways x 30)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_special_cases() {
    let lab = Lab::start();
    let spki = lab.var("SPKI_SHA256").to_string();
    let ca_spki = lab.var("CA_SPKI_SHA256").to_string();
    for (way, r) in resolvers(&lab).await {
        // CNAME'd MX host: nothing at the expanded name, so the original name's TLSA is used
        let f = r.destination("cname.dane.test", 25).await.unwrap();
        let h = &f.hosts[0];
        assert_eq!(h.address_status, DnssecStatus::Secure, "{way} {h:?}");
        assert_eq!(h.tlsa_base, "alias.dane.test", "{way}");
        match &h.tlsa {
            TlsaLookup::Found {
                records,
                status: DnssecStatus::Secure,
            } => {
                assert_eq!(records[0].to_string(), format!("3 1 1 {spki}"));
            }
            other => panic!("{way}: {other:?}"),
        }
        // secure NXDOMAIN for the domain: no MX host, nothing to defer on
        let f = r.destination("nxdomain.dane.test", 25).await.unwrap();
        assert_eq!(
            (f.mx_status, f.hosts.len()),
            (DnssecStatus::Secure, 0),
            "{way}"
        );
        assert!(f.actions(DaneSetting::Mandatory).is_empty());
        // Outlook case: secure MX, insecure host whose TLSA name SERVFAILs -> not blocked
        let f = r.destination("outlook.dane.test", 25).await.unwrap();
        assert_eq!(f.hosts[0].address_status, DnssecStatus::Insecure, "{way}");
        assert_eq!(f.hosts[0].tlsa, TlsaLookup::NotQueried);
        assert_eq!(
            f.actions(DaneSetting::Opportunistic)[0].1,
            DaneAction::ConfiguredTls(NoDaneReason::AddressInsecure)
        );
        // two MX hosts, looked up together, in preference order; DANE-TA only on the second
        let f = r.destination("two.dane.test", 25).await.unwrap();
        let names: Vec<_> = f.hosts.iter().map(|h| h.mx_host.as_str()).collect();
        assert_eq!(names, ["mx.dane.test", "mx-ta.dane.test"], "{way}");
        match &f.actions(DaneSetting::Mandatory)[1].1 {
            DaneAction::UseDane {
                records,
                sni,
                reference_names,
            } => {
                assert_eq!(records[0].to_string(), format!("2 1 1 {ca_spki}"));
                assert_eq!(sni, "mx-ta.dane.test");
                assert_eq!(reference_names, &["mx-ta.dane.test", "two.dane.test"]);
            }
            other => panic!("{way}: {other:?}"),
        }
        // setting None: whatever DNS says
        assert_eq!(
            r.destination("bogus.broken.test", 25)
                .await
                .unwrap()
                .actions(DaneSetting::None)[0]
                .1,
            DaneAction::Defer(DeferReason::MxLookup(DnssecStatus::Indeterminate))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_refuses_a_resolver_that_does_not_validate() {
    let lab = Lab::start();
    // the iterator-only unbound never sets AD: trusting it must not report DANE available
    let r = DaneResolver::new(
        Validation::TrustAd {
            resolver: lab.non_validating(),
        },
        limits(),
    )
    .unwrap();
    let err = r.probe("test.").await.unwrap_err();
    assert!(
        matches!(err, dane_verify::Error::NoValidation { .. }),
        "{err}"
    );
    // the validating one passes
    let r = DaneResolver::new(
        Validation::TrustAd {
            resolver: lab.validating(),
        },
        limits(),
    )
    .unwrap();
    r.probe("test.").await.unwrap();
    // AD bit from a non-loopback resolver is refused outright
    let err = DaneResolver::new(
        Validation::TrustAd {
            resolver: "192.0.2.1:53".parse().unwrap(),
        },
        limits(),
    )
    .unwrap_err();
    assert!(matches!(err, dane_verify::Error::Config { .. }));
    // in-process validation with the wrong anchor: the probe fails (bogus), never "available"
    let dir = std::env::temp_dir().join(format!("dv-anchor-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let wrong = dir.join("wrong.dnskeys");
    std::fs::write(
        &wrong,
        "test. 300 IN DNSKEY 257 3 13 mdsswUyr3DPW132mOi8V9xESWE8jTo0dxCjjnopKl+GqJxpVXckHAeF+KkxLbxILfDLUT0rAK9iUzy1L53eKGQ==\n",
    )
    .unwrap();
    let r = DaneResolver::new(
        Validation::in_process_from_file(lab.non_validating(), &wrong).unwrap(),
        limits(),
    )
    .unwrap();
    assert!(r.probe("test.").await.is_err());
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_and_cache() {
    let lab = Lab::start();
    let tight = Limits {
        max_mx_hosts: 1,
        max_tlsa_records: 1,
        ..limits()
    };
    let r = DaneResolver::new(
        Validation::TrustAd {
            resolver: lab.validating(),
        },
        tight,
    )
    .unwrap();
    r.probe("test.").await.unwrap();
    let f = r.destination("two.dane.test", 25).await.unwrap();
    assert_eq!((f.hosts.len(), f.ignored_mx_hosts), (1, 1));
    // mx.dane.test has two TLSA records: over the limit -> lookup failure -> defer
    assert_eq!(f.hosts[0].tlsa, TlsaLookup::Failed(LookupFailure::Other));
    // cached answers are reused: a second lookup works even with the lab resolver stopped
    let r = DaneResolver::new(
        Validation::TrustAd {
            resolver: lab.validating(),
        },
        limits(),
    )
    .unwrap();
    r.probe("test.").await.unwrap();
    let first = r.destination("present.dane.test", 25).await.unwrap();
    let unbound: i32 = lab.var("UNBOUND_PID").parse().unwrap();
    let _ = std::process::Command::new("kill")
        .arg("-STOP")
        .arg(unbound.to_string())
        .status();
    let second = tokio::time::timeout(
        Duration::from_secs(3),
        r.destination("present.dane.test", 25),
    )
    .await;
    let _ = std::process::Command::new("kill")
        .arg("-CONT")
        .arg(unbound.to_string())
        .status();
    assert_eq!(
        second
            .expect("cached lookup must not hit the network")
            .unwrap(),
        first
    );
    r.clear_cache();
}

/// Issue 11, finding 2 (RFC 7672 §2.2.2–2.2.3): an MX host that is a CNAME to a target with
/// AAAA records only. The expansion must come from whichever address answer carries it (here
/// not the A answer: NODATA), so TLSA is looked up at the expanded name and DANE applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cname_to_an_ipv6_only_target_keeps_dane() {
    let lab = Lab::start();
    let spki = lab.var("SPKI_SHA256").to_string();
    for (way, r) in resolvers(&lab).await {
        let f = r.destination("cname6.dane.test", 25).await.unwrap();
        let h = &f.hosts[0];
        assert_eq!(h.mx_host, "alias6.dane.test", "{way}");
        assert_eq!(h.address_status, DnssecStatus::Secure, "{way} {h:?}");
        assert_eq!(h.tlsa_base, "mx6-target.dane.test", "{way}: {h:?}");
        match &h.tlsa {
            TlsaLookup::Found {
                records,
                status: DnssecStatus::Secure,
            } => assert_eq!(records[0].to_string(), format!("3 1 1 {spki}")),
            other => panic!("{way}: {other:?}"),
        }
        match &f.actions(DaneSetting::Opportunistic)[0].1 {
            DaneAction::UseDane { sni, .. } => assert_eq!(sni, "mx6-target.dane.test", "{way}"),
            other => panic!("{way}: {other:?}"),
        }
        assert_eq!(
            r.addresses("alias6.dane.test").await.unwrap(),
            ["::1".parse::<std::net::IpAddr>().unwrap()],
            "{way}"
        );
    }
}

/// Issue 11, finding 3: a resolver whose validation is not proven never reports `Insecure`
/// (nor `Secure`): with `trust-ad` pointing at the lab's iterator-only unbound every answer
/// lacks the AD bit; before and after the failed probe each status is `Indeterminate`,
/// mandatory DANE defers and opportunistic DANE goes on without DANE. The validating unbound
/// is `Indeterminate` until its probe succeeds, then `Secure`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unproven_validation_is_indeterminate_never_insecure() {
    let lab = Lab::start();
    let noval = DaneResolver::new(
        Validation::TrustAd {
            resolver: lab.non_validating(),
        },
        limits(),
    )
    .unwrap();
    let check_unproven = |f: &dane_verify::resolver::DestinationFacts, state| {
        assert_eq!(f.validation, state, "{f:?}");
        assert_eq!(f.mx_status, DnssecStatus::Indeterminate, "{f:?}");
        for h in &f.hosts {
            assert_eq!(h.address_status, DnssecStatus::Indeterminate, "{h:?}");
        }
        assert_eq!(
            f.actions(DaneSetting::Mandatory)[0].1,
            DaneAction::Defer(DeferReason::MxLookup(DnssecStatus::Indeterminate))
        );
        assert_eq!(
            f.actions(DaneSetting::Opportunistic)[0].1,
            DaneAction::ConfiguredTls(NoDaneReason::ValidationUnproven)
        );
    };
    assert_eq!(noval.validation_state(), ValidationState::Unproven);
    let f = noval.destination("present.dane.test", 25).await.unwrap();
    check_unproven(&f, ValidationState::Unproven);
    let err = noval.probe("test.").await.unwrap_err();
    assert!(err.to_string().contains("insecure"), "{err}");
    assert_eq!(noval.validation_state(), ValidationState::NotValidating);
    for domain in ["present.dane.test", "present.unsigned.test"] {
        let f = noval.destination(domain, 25).await.unwrap();
        check_unproven(&f, ValidationState::NotValidating);
    }
    // a secure NXDOMAIN read through an unproven resolver is plain DNS: no host, nothing to do
    let f = noval.destination("nxdomain.dane.test", 25).await.unwrap();
    assert_eq!((f.hosts.len(), f.mx_failure), (0, None));
    assert!(f.actions(DaneSetting::Mandatory).is_empty());

    let good = DaneResolver::new(
        Validation::TrustAd {
            resolver: lab.validating(),
        },
        limits(),
    )
    .unwrap();
    let f = good.destination("present.dane.test", 25).await.unwrap();
    check_unproven(&f, ValidationState::Unproven);
    good.probe("test.").await.unwrap();
    assert_eq!(good.validation_state(), ValidationState::Validating);
    let f = good.destination("present.dane.test", 25).await.unwrap();
    assert_eq!(f.validation, ValidationState::Validating);
    assert_eq!(f.mx_status, DnssecStatus::Secure);
    assert_eq!(f.hosts[0].address_status, DnssecStatus::Secure);
    assert!(matches!(
        f.actions(DaneSetting::Mandatory)[0].1,
        DaneAction::UseDane { .. }
    ));
    let f = good.destination("present.unsigned.test", 25).await.unwrap();
    assert_eq!(f.mx_status, DnssecStatus::Insecure);
    // a probe that gets no answer (the resolver stopped) leaves a proven state as it is
    let dead = DaneResolver::new(
        Validation::TrustAd {
            resolver: format!("127.0.0.1:{}", free_port(&[])).parse().unwrap(),
        },
        Limits {
            timeout: Duration::from_millis(300),
            ..limits()
        },
    )
    .unwrap();
    assert!(dead.probe("test.").await.is_err());
    assert_eq!(dead.validation_state(), ValidationState::Unproven);
}

/// The default of the relay and the CLI (issue 11): in-process validation from trust anchors
/// asking a plain recursive resolver. Here the lab's anchor file and the lab's iterator-only
/// unbound as upstream: the probe succeeds and DANE applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_validation_with_an_anchor_file_validates() {
    let lab = Lab::start();
    let r = DaneResolver::new(
        Validation::in_process(vec![lab.non_validating()], Some(&lab.trust_anchor_file())).unwrap(),
        limits(),
    )
    .unwrap();
    r.probe("test.").await.unwrap();
    let f = r.destination("present.dane.test", 25).await.unwrap();
    assert_eq!(f.mx_status, DnssecStatus::Secure);
    assert!(matches!(
        f.actions(DaneSetting::Opportunistic)[0].1,
        DaneAction::UseDane { .. }
    ));
    // the built-in root anchors do not cover the lab's private `test.` anchor: the probe of
    // `test.` fails (never "validating"), and nothing reads secure
    let root = DaneResolver::new(
        Validation::in_process(vec![lab.non_validating()], None).unwrap(),
        limits(),
    )
    .unwrap();
    assert!(root.probe("test.").await.is_err());
    assert!(!root.validation_state().is_proven());
    let f = root.destination("present.dane.test", 25).await.unwrap();
    assert_ne!(f.mx_status, DnssecStatus::Secure);
    assert_ne!(f.mx_status, DnssecStatus::Insecure);
}
