//! The sending side of TLS-RPT (RFC 8460): the verdict → result type table, and the policy a
//! session counts under (TLSA, STS, no-policy-found) from the hop plan and the delivery state
//! machine's decisions. Shared setup: `common/tlsrpt.rs`.

use dane_verify::DnssecStatus::{Bogus, Insecure, Secure};
use dane_verify::{DeferReason, HostFacts, LookupFailure, NoDaneReason, TlsaLookup};
use rustls_pki_types::UnixTime;
use smtp_tls_policy::chain::TrustAnchors;
use smtp_tls_policy::delivery::{
    DeliveryAttempt, DeliveryOptions, EhloOutcome, RequiredTlsAlerts, Step,
};
use smtp_tls_policy::destination::DestinationControls;
use smtp_tls_policy::mta_sts::{Policy as StsPolicy, StsFailure, StsFailureKind, host_verdict};
use smtp_tls_policy::plan::{HoldReason, HopPlan, PlanOptions};
use smtp_tls_policy::tlsrpt::{PolicyType, ReportedPolicy, ResultType, TlsOutcome};

mod common {
    pub mod tlsrpt;
}
use common::tlsrpt::{STS_ENFORCE, USABLE};

const UNUSABLE: &str = "0 0 1 0000000000000000000000000000000000000000000000000000000000000000";

fn plan(tls: &str, dane: &str, tlsa: TlsaLookup, mx_status: dane_verify::DnssecStatus) -> HopPlan {
    let toml = format!("[default]\ntls = \"{tls}\"\ndane = \"{dane}\"\n");
    let controls = DestinationControls::from_toml("d.toml", &toml).unwrap();
    let facts = HostFacts {
        next_hop: "Example.COM.".into(),
        mx_host: "mx.example.net".into(),
        mx_status,
        address_status: mx_status,
        tlsa_base: "mx.example.net".into(),
        tlsa,
    };
    HopPlan::new(
        &controls.lookup("example.com").unwrap(),
        &facts,
        PlanOptions::new(),
    )
}

fn plain_plan(tls: &str) -> HopPlan {
    plan(tls, "opportunistic", TlsaLookup::NotQueried, Insecure)
}

fn found(text: &str) -> TlsaLookup {
    TlsaLookup::Found {
        records: vec![text.parse().unwrap()],
        status: Secure,
    }
}

/// An attempt on `p` past EHLO (STARTTLS offered) and the `220` to STARTTLS: the handshake
/// is next.
fn at_handshake(p: &HopPlan, options: DeliveryOptions) -> DeliveryAttempt {
    let mut attempt = p.attempt(options).unwrap();
    assert!(attempt.preflight().is_none());
    assert_eq!(
        attempt.on_ehlo(EhloOutcome::Esmtp { starttls: true }),
        Step::SendStartTls
    );
    assert_eq!(attempt.on_starttls_reply(220), Step::StartHandshake);
    attempt
}

#[test]
fn the_outcome_table_has_one_row_per_outcome() {
    use ResultType as R;
    use TlsOutcome as O;
    let table: Vec<(TlsOutcome, Option<(ResultType, &str)>)> = vec![
        (O::Success, None),
        (
            O::StarttlsNotSupported,
            Some((R::StarttlsNotSupported, "starttls-not-offered")),
        ),
        (
            O::HandshakeFailed,
            Some((R::ValidationFailure, "tls-handshake-failed")),
        ),
        (
            O::CertificateHostMismatch,
            Some((R::CertificateHostMismatch, "certificate-host-mismatch")),
        ),
        (
            O::CertificateExpired,
            Some((R::CertificateExpired, "certificate-expired")),
        ),
        (
            O::CertificateNotTrusted,
            Some((R::CertificateNotTrusted, "certificate-not-trusted")),
        ),
        (
            O::CertificateInvalid,
            Some((R::ValidationFailure, "certificate-invalid")),
        ),
        (O::TlsaNoMatch, Some((R::TlsaInvalid, "dane-no-match"))),
        (O::TlsaUnusable, Some((R::TlsaInvalid, "tlsa-unusable"))),
        (O::DnssecInvalid, Some((R::DnssecInvalid, "dnssec-invalid"))),
        (O::DaneRequired, Some((R::DaneRequired, "dane-required"))),
        (
            O::Sts(StsFailureKind::StsPolicyFetchError),
            Some((R::StsPolicyFetchError, "sts-policy-fetch-error")),
        ),
        (
            O::Sts(StsFailureKind::StsPolicyInvalid),
            Some((R::StsPolicyInvalid, "sts-policy-invalid")),
        ),
        (
            O::Sts(StsFailureKind::StsWebpkiInvalid),
            Some((R::StsWebpkiInvalid, "sts-webpki-invalid")),
        ),
        (
            O::Sts(StsFailureKind::CertificateHostMismatch),
            Some((R::CertificateHostMismatch, "certificate-host-mismatch")),
        ),
        (
            O::Sts(StsFailureKind::CertificateExpired),
            Some((R::CertificateExpired, "certificate-expired")),
        ),
        (
            O::Sts(StsFailureKind::CertificateNotTrusted),
            Some((R::CertificateNotTrusted, "certificate-not-trusted")),
        ),
        (
            O::Sts(StsFailureKind::ValidationFailure),
            Some((R::ValidationFailure, "validation-failure")),
        ),
    ];
    for (outcome, expected) in &table {
        let got = outcome.classify();
        assert_eq!(
            got.as_ref().map(|(r, c)| (r, *c)),
            expected.as_ref().map(|(r, c)| (r, *c)),
            "{outcome:?}"
        );
    }
    // Every known result type is reachable from some outcome.
    for known in ResultType::KNOWN {
        assert!(
            table
                .iter()
                .any(|(_, e)| e.as_ref().is_some_and(|(r, _)| *r == known)),
            "{known} unreachable"
        );
    }
}

#[test]
fn holds_map_to_outcomes_or_to_no_session() {
    let sts = StsFailure::new(StsFailureKind::ValidationFailure, "not listed");
    let cases = [
        (
            HoldReason::Dane(DeferReason::TlsaBogus(Bogus)),
            Some(TlsOutcome::DnssecInvalid),
        ),
        (
            HoldReason::Dane(DeferReason::TlsaLookup(LookupFailure::ServFail)),
            Some(TlsOutcome::DnssecInvalid),
        ),
        (
            HoldReason::Dane(DeferReason::DaneRequired(NoDaneReason::NoTlsa)),
            Some(TlsOutcome::DaneRequired),
        ),
        (
            HoldReason::Dane(DeferReason::DaneRequired(NoDaneReason::OnlyUnusable)),
            Some(TlsOutcome::TlsaUnusable),
        ),
        (
            HoldReason::TooManyTlsaRecords {
                count: 40,
                limit: 32,
            },
            Some(TlsOutcome::TlsaUnusable),
        ),
        (
            HoldReason::MtaSts(sts),
            Some(TlsOutcome::Sts(StsFailureKind::ValidationFailure)),
        ),
        (HoldReason::Dane(DeferReason::MxLookup(Bogus)), None),
        (HoldReason::Undetermined, None),
        (
            HoldReason::DomainMismatch {
                policy: "a".into(),
                facts: "b".into(),
            },
            None,
        ),
    ];
    for (reason, expected) in cases {
        assert_eq!(TlsOutcome::of_hold(&reason), expected, "{reason:?}");
    }
}

#[test]
fn plans_held_by_dane_count_under_tlsa() {
    // Mandatory DANE, secure MX, no TLSA: dane-required under `tlsa`.
    let p = plan(
        "preferred",
        "mandatory",
        TlsaLookup::NotFound { status: Secure },
        Secure,
    );
    let reason = p.pre_connect().hold_reason().expect("held");
    assert_eq!(TlsOutcome::of_hold(reason), Some(TlsOutcome::DaneRequired));
    let policy = ReportedPolicy::for_plan(&p, None);
    assert_eq!(policy.policy_type, PolicyType::Tlsa);
    assert_eq!(policy.policy_domain, "example.com");
    // A bogus TLSA answer: dnssec-invalid.
    let p = plan(
        "preferred",
        "opportunistic",
        TlsaLookup::Found {
            records: vec![USABLE.parse().unwrap()],
            status: Bogus,
        },
        Secure,
    );
    let reason = p.pre_connect().hold_reason().expect("held");
    assert_eq!(TlsOutcome::of_hold(reason), Some(TlsOutcome::DnssecInvalid));
    assert_eq!(
        ReportedPolicy::for_plan(&p, None).policy_type,
        PolicyType::Tlsa
    );
}

#[test]
fn dane_hosts_count_under_tlsa_with_their_records() {
    let p = plan("preferred", "opportunistic", found(USABLE), Secure);
    assert!(p.may_connect());
    let policy = ReportedPolicy::for_plan(&p, None);
    assert_eq!(policy.policy_type, PolicyType::Tlsa);
    assert_eq!(policy.policy_strings, vec![USABLE.to_owned()]);
    // An empty chain matches no TLSA record: tlsa-invalid.
    let verdict = p.verify_peer(&[], &TrustAnchors::empty(), UnixTime::now());
    assert_eq!(
        TlsOutcome::of_handshake(&p, &verdict),
        TlsOutcome::TlsaNoMatch
    );
    // Only unusable records: TLS without authentication, counted as tlsa-invalid.
    let p = plan("preferred", "opportunistic", found(UNUSABLE), Secure);
    assert!(p.may_connect());
    assert_eq!(
        ReportedPolicy::for_plan(&p, None).policy_type,
        PolicyType::Tlsa
    );
    let verdict = p.verify_peer(&[], &TrustAnchors::empty(), UnixTime::now());
    assert_eq!(
        TlsOutcome::of_handshake(&p, &verdict),
        TlsOutcome::TlsaUnusable
    );
}

#[test]
fn sts_hosts_count_under_sts_with_policy_text_and_patterns() {
    let sts = StsPolicy::parse(STS_ENFORCE).unwrap();
    let p = plain_plan("preferred").with_mta_sts(host_verdict(Some(&sts), "mx.example.net"));
    let policy = ReportedPolicy::for_plan(&p, Some(&sts));
    assert_eq!(policy.policy_type, PolicyType::Sts);
    assert_eq!(
        policy.policy_strings,
        [
            "version: STSv1",
            "mode: enforce",
            "mx: *.example.net",
            "max_age: 86400"
        ]
    );
    assert_eq!(policy.mx_hosts, ["*.example.net"]);
    // The certificate check fails on an empty chain: an STS failure, not a success.
    let verdict = p.verify_peer(&[], &TrustAnchors::empty(), UnixTime::now());
    assert!(matches!(
        TlsOutcome::of_handshake(&p, &verdict),
        TlsOutcome::Sts(_)
    ));
    // A host not listed under enforce: skipped, validation-failure under sts.
    let p = plan(
        "preferred",
        "opportunistic",
        TlsaLookup::NotQueried,
        Insecure,
    )
    .with_mta_sts(host_verdict(Some(&sts), "mx.example.net"));
    assert!(p.may_connect());
    let unlisted = {
        let controls = DestinationControls::from_toml(
            "d.toml",
            "[default]\ntls = \"preferred\"\ndane = \"opportunistic\"\n",
        )
        .unwrap();
        let facts = HostFacts {
            next_hop: "example.com".into(),
            mx_host: "mx.other.example".into(),
            mx_status: Insecure,
            address_status: Insecure,
            tlsa_base: "mx.other.example".into(),
            tlsa: TlsaLookup::NotQueried,
        };
        HopPlan::new(
            &controls.lookup("example.com").unwrap(),
            &facts,
            PlanOptions::new(),
        )
        .with_mta_sts(host_verdict(Some(&sts), "mx.other.example"))
    };
    let reason = unlisted.pre_connect().hold_reason().expect("skipped");
    assert_eq!(
        TlsOutcome::of_hold(reason),
        Some(TlsOutcome::Sts(StsFailureKind::ValidationFailure))
    );
    assert_eq!(
        ReportedPolicy::for_plan(&unlisted, Some(&sts)).policy_type,
        PolicyType::Sts
    );
}

#[test]
fn testing_mode_counts_under_sts_and_none_mode_under_no_policy_found() {
    let testing =
        StsPolicy::parse(b"version: STSv1\nmode: testing\nmx: *.other.example\nmax_age: 86400\n")
            .unwrap();
    let p = plain_plan("preferred").with_mta_sts(host_verdict(Some(&testing), "mx.example.net"));
    assert!(p.may_connect(), "testing never blocks");
    assert_eq!(
        ReportedPolicy::for_plan(&p, Some(&testing)).policy_type,
        PolicyType::Sts
    );
    let verdict = p.verify_peer(&[], &TrustAnchors::empty(), UnixTime::now());
    assert_eq!(
        TlsOutcome::of_handshake(&p, &verdict),
        TlsOutcome::Sts(StsFailureKind::ValidationFailure),
        "the unlisted host is reported although delivery goes on"
    );
    let none = StsPolicy::parse(b"version: STSv1\nmode: none\nmax_age: 86400\n").unwrap();
    let p = plain_plan("preferred").with_mta_sts(host_verdict(Some(&none), "mx.example.net"));
    assert_eq!(
        ReportedPolicy::for_plan(&p, Some(&none)),
        ReportedPolicy::no_policy_found("example.com")
    );
    assert_eq!(
        ReportedPolicy::for_plan(&plain_plan("preferred"), None).policy_type,
        PolicyType::NoPolicyFound
    );
}

#[test]
fn the_state_machine_decisions_map_to_outcomes() {
    let p = plain_plan("preferred");
    let options = DeliveryOptions::new(RequiredTlsAlerts::DoNotSend);
    let mut attempt = p.attempt(options).unwrap();
    assert!(attempt.preflight().is_none());
    let Step::Done(decision) = attempt.on_ehlo(EhloOutcome::Esmtp { starttls: false }) else {
        panic!("preferred without STARTTLS ends the attempt");
    };
    assert_eq!(
        TlsOutcome::of_decision(&p, &decision, None),
        Some(TlsOutcome::StarttlsNotSupported)
    );
    let mut attempt = p.attempt(options).unwrap();
    assert!(attempt.preflight().is_none());
    let Step::Done(decision) = attempt.on_ehlo(EhloOutcome::NoEsmtp) else {
        panic!("no ESMTP ends the attempt");
    };
    assert_eq!(
        TlsOutcome::of_decision(&p, &decision, None),
        Some(TlsOutcome::StarttlsNotSupported)
    );
    // A failed handshake.
    let p = plain_plan("required");
    let mut attempt = at_handshake(&p, options);
    let Step::Done(decision) =
        attempt.on_handshake(smtp_tls_policy::delivery::HandshakeOutcome::Failed {
            detail: "alert".into(),
        })
    else {
        panic!("a failed handshake ends the attempt");
    };
    assert_eq!(
        TlsOutcome::of_decision(&p, &decision, None),
        Some(TlsOutcome::HandshakeFailed)
    );
    // TLS `no`: not a session.
    let p = plan("no", "none", TlsaLookup::NotQueried, Insecure);
    let mut attempt = p.attempt(options).unwrap();
    let decision = match attempt.preflight() {
        Some(d) => d,
        None => match attempt.on_ehlo(EhloOutcome::Esmtp { starttls: true }) {
            Step::Done(d) => d,
            other => panic!("{other:?}"),
        },
    };
    assert_eq!(TlsOutcome::of_decision(&p, &decision, None), None);
}

#[test]
fn decisions_after_a_handshake_use_the_verdict_or_the_machines_reason() {
    use smtp_tls_policy::delivery::{HandshakeOutcome, PeerVerification, PkixOutcome};
    let p = plain_plan("required-verify");
    let options = DeliveryOptions::new(RequiredTlsAlerts::DoNotSend);
    let handshake = |pkix: PkixOutcome| {
        let mut attempt = at_handshake(&p, options);
        match attempt.on_handshake(HandshakeOutcome::Established(PeerVerification::new(
            pkix, None,
        ))) {
            Step::Done(d) => d,
            other => panic!("{other:?}"),
        }
    };
    let mismatch = handshake(PkixOutcome::NameMismatch {
        detail: "mx.example.net not in SAN".into(),
    });
    assert_eq!(
        TlsOutcome::of_decision(&p, &mismatch, None),
        Some(TlsOutcome::CertificateHostMismatch)
    );
    let verified = handshake(PkixOutcome::Verified);
    assert_eq!(
        TlsOutcome::of_decision(&p, &verified, None),
        Some(TlsOutcome::Success)
    );
    // With the plan's verdict, the verdict decides (here: an empty chain, not verified).
    let verdict = p.verify_peer(&[], &TrustAnchors::empty(), UnixTime::now());
    let untrusted = handshake(verdict.peer_verification().pkix.clone());
    assert_eq!(
        TlsOutcome::of_decision(&p, &untrusted, Some(&verdict)),
        Some(TlsOutcome::CertificateInvalid)
    );
}

#[test]
fn pkix_failures_under_required_verify_are_classified() {
    let p = plain_plan("required-verify");
    let verdict = p.verify_peer(&[], &TrustAnchors::empty(), UnixTime::now());
    assert!(!verdict.satisfies_requirement);
    assert_eq!(
        TlsOutcome::of_handshake(&p, &verdict),
        TlsOutcome::CertificateInvalid
    );
}
