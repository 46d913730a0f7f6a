//! Table tests for the dane-verify → delivery machine conversions.
use dane_verify::{DaneMatcher, DnssecStatus, TlsaRecord};
use dane_verify::{DaneSetting, HostFacts, TlsaLookup, decide};
use rustls_pki_types::{CertificateDer, UnixTime};

use super::*;
use crate::delivery::{
    DeliveryAction as Next, DeliveryAttempt, DeliveryOptions, EhloOutcome, HandshakeOutcome,
    PeerVerification, PkixOutcome, Reason, RequiredTlsAlerts, Requirement, Step,
};
use crate::destination::DeliveryTls;

const Z: &str = "0000000000000000000000000000000000000000000000000000000000000000";
const EE: &str = "3 1 1 0000000000000000000000000000000000000000000000000000000000000000";
const TA: &str = "2 1 1 0000000000000000000000000000000000000000000000000000000000000000";
const PKIX_TA: &str = "0 1 1 0000000000000000000000000000000000000000000000000000000000000000";

fn use_dane() -> DaneAction {
    DaneAction::UseDane {
        records: vec![EE.parse().unwrap()],
        sni: "mx.example".into(),
        reference_names: vec!["mx.example".into(), "example".into()],
    }
}

const NO_DANE: [NoDaneReason; 7] = [
    NoDaneReason::SettingNone,
    NoDaneReason::MxInsecure,
    NoDaneReason::AddressInsecure,
    NoDaneReason::NoTlsa,
    NoDaneReason::TlsaInsecure,
    NoDaneReason::OnlyUnusable,
    NoDaneReason::ValidationUnproven,
];

fn defer(reason: &str) -> TlsaStatus {
    TlsaStatus::Defer {
        reason: reason.into(),
    }
}

/// Every dane-verify action (every defer and no-DANE reason) → the machine's TLSA status.
fn action_table() -> Vec<(DaneAction, TlsaStatus)> {
    use DnssecStatus::{Bogus, Indeterminate};
    let mut t = vec![
        (use_dane(), TlsaStatus::Usable),
        (
            DaneAction::TlsMandatoryUnauthenticated,
            TlsaStatus::Unusable,
        ),
        (
            DaneAction::Defer(DeferReason::Undetermined),
            defer("DANE status undetermined (TLSA not looked up)"),
        ),
        (
            DaneAction::Defer(DeferReason::MxLookup(Bogus)),
            defer("MX lookup bogus"),
        ),
        (
            DaneAction::Defer(DeferReason::AddressLookup(Indeterminate)),
            defer("address lookup of the MX host indeterminate"),
        ),
        (
            DaneAction::Defer(DeferReason::TlsaBogus(Bogus)),
            defer("TLSA answer bogus"),
        ),
        (
            DaneAction::Defer(DeferReason::TlsaLookup(LookupFailure::ServFail)),
            defer("TLSA lookup SERVFAIL"),
        ),
        (
            DaneAction::Defer(DeferReason::TlsaLookup(LookupFailure::Timeout)),
            defer("TLSA lookup timeout"),
        ),
        (
            DaneAction::Defer(DeferReason::TlsaLookup(LookupFailure::Other)),
            defer("TLSA lookup error"),
        ),
        (
            DaneAction::default(),
            defer("DANE status undetermined (TLSA not looked up)"),
        ),
    ];
    for r in NO_DANE {
        t.push((DaneAction::ConfiguredTls(r), TlsaStatus::NotApplicable));
        t.push((
            DaneAction::Defer(DeferReason::DaneRequired(r)),
            defer(&format!(
                "DANE mandatory but the host is not DANE-protected: {}",
                no_dane_text(r)
            )),
        ));
    }
    t
}

#[test]
fn every_action_maps_to_its_tlsa_status() {
    let table = action_table();
    assert_eq!(table.len(), 24);
    for (action, want) in table {
        assert_eq!(tlsa_status(&action), want, "{action:?}");
        assert_eq!(TlsaStatus::from(&action), want, "{action:?}");
        assert_eq!(TlsaStatus::from(action.clone()), want, "{action:?}");
    }
}

const TLS_MODES: [DeliveryTls; 5] = [
    DeliveryTls::Preferred,
    DeliveryTls::Required,
    DeliveryTls::PreferredVerify,
    DeliveryTls::RequiredVerify,
    DeliveryTls::RequiredVerifyHostedDomains,
];

/// How the machine treats each converted status, for both DANE modes and every TLS mode
/// that negotiates TLS (`no` with DANE is a configuration error; the machine ignores DANE).
#[test]
fn machine_treatment_of_every_action() {
    for (action, status) in action_table() {
        for dane in [DaneSetting::Opportunistic, DaneSetting::Mandatory] {
            for tls in TLS_MODES {
                let ctx = format!("{action:?} {dane:?} {tls:?}");
                let mut a = DeliveryAttempt::new(
                    "example",
                    tls,
                    dane,
                    status.clone(),
                    DeliveryOptions::new(RequiredTlsAlerts::Send),
                );
                let base =
                    Requirement::new(tls, DaneSetting::None, &TlsaStatus::NotApplicable).unwrap();
                match (&action, dane) {
                    (DaneAction::UseDane { .. }, _) => {
                        assert_eq!(a.requirement(), Some(Requirement::Dane), "{ctx}");
                        assert!(a.preflight().is_none(), "{ctx}");
                    }
                    (DaneAction::TlsMandatoryUnauthenticated, DaneSetting::Opportunistic) => {
                        let r = a.requirement().unwrap();
                        assert!(r.tls_mandatory() && !r.needs_dane(), "{ctx}");
                        assert!(a.preflight().is_none(), "{ctx}");
                    }
                    (DaneAction::ConfiguredTls(_), DaneSetting::Opportunistic) => {
                        assert_eq!(a.requirement(), Some(base), "{ctx}");
                        assert!(a.preflight().is_none(), "{ctx}");
                    }
                    (DaneAction::TlsMandatoryUnauthenticated | DaneAction::ConfiguredTls(_), _) => {
                        let d = a.preflight().expect(&ctx);
                        assert_eq!(d.action, Next::Defer, "{ctx}");
                        assert_eq!(d.reason, Reason::DaneNotSupported, "{ctx}");
                        assert_eq!(d.alert().unwrap().domain, "example", "{ctx}");
                    }
                    (DaneAction::Defer(_), _) => {
                        let d = a.preflight().expect(&ctx);
                        assert_eq!(d.action, Next::Defer, "{ctx}");
                        let TlsaStatus::Defer { reason } = &status else {
                            panic!("{ctx}")
                        };
                        assert_eq!(
                            d.reason,
                            Reason::TlsaLookupFailed {
                                reason: reason.clone()
                            },
                            "{ctx}"
                        );
                    }
                    _ => panic!("unexpected action {ctx}"),
                }
            }
        }
    }
}

fn facts(mx: DnssecStatus, addr: DnssecStatus, tlsa: TlsaLookup) -> HostFacts {
    HostFacts {
        next_hop: "example".into(),
        mx_host: "mx.example".into(),
        mx_status: mx,
        address_status: addr,
        tlsa_base: "mx.example".into(),
        tlsa,
    }
}

/// The machine's action when the peer does not offer STARTTLS, after `decide` → convert.
fn without_starttls(dane: DaneSetting, tls: DeliveryTls, f: &HostFacts) -> Next {
    let action = decide(dane, f);
    let mut a = DeliveryAttempt::new(
        "example",
        tls,
        dane,
        action.into(),
        DeliveryOptions::new(RequiredTlsAlerts::Send),
    );
    if let Some(d) = a.preflight() {
        return d.action;
    }
    match a.on_ehlo(EhloOutcome::Esmtp { starttls: false }) {
        Step::Done(d) => d.action,
        other => panic!("{other:?}"),
    }
}

/// The crate documentation's RFC 7672 matrix, end to end: `decide`, convert, machine, with
/// a peer that strips STARTTLS (the downgrade attack). Only "not DANE-protected" under
/// opportunistic DANE may fall back to the configured mode (`preferred`: plaintext).
#[test]
fn rfc7672_matrix_through_the_machine() {
    use DnssecStatus::{Bogus, Insecure, Secure};
    let found = |records: &[&str], status| TlsaLookup::Found {
        records: records
            .iter()
            .map(|r| r.parse::<TlsaRecord>().unwrap())
            .collect(),
        status,
    };
    let plain = |a: Next| a.is_plaintext();
    // (facts, opportunistic falls back to the configured mode?)
    let rows = [
        (facts(Secure, Secure, found(&[EE], Secure)), false),
        (facts(Secure, Secure, found(&[PKIX_TA], Secure)), false),
        (
            facts(Secure, Secure, TlsaLookup::NotFound { status: Secure }),
            true,
        ),
        (facts(Secure, Secure, found(&[EE], Bogus)), false),
        (
            facts(Secure, Secure, TlsaLookup::Failed(LookupFailure::ServFail)),
            false,
        ),
        (facts(Secure, Insecure, TlsaLookup::NotQueried), true),
        (facts(Insecure, Secure, TlsaLookup::NotQueried), true),
        (facts(Bogus, Secure, TlsaLookup::NotQueried), false),
    ];
    for (f, falls_back) in rows {
        let opp = without_starttls(DaneSetting::Opportunistic, DeliveryTls::Preferred, &f);
        assert_eq!(plain(opp), falls_back, "{f:?}");
        if !falls_back {
            assert_eq!(opp, Next::Defer, "{f:?}");
        }
        let mandatory = without_starttls(DaneSetting::Mandatory, DeliveryTls::Preferred, &f);
        assert_eq!(mandatory, Next::Defer, "{f:?}");
        // DANE none: the configured mode alone.
        assert!(plain(without_starttls(
            DaneSetting::None,
            DeliveryTls::Preferred,
            &f
        )));
    }
}

fn verdict(outcome: DaneMatchOutcome) -> DaneVerdict {
    DaneVerdict {
        outcome,
        depth: -1,
        matched: None,
        reason: None,
    }
}

#[test]
fn every_verdict_maps_to_its_dane_outcome() {
    let failed = |r: &str| DaneOutcome::Failed { reason: r.into() };
    let table = [
        (verdict(DaneMatchOutcome::Verified), DaneOutcome::Verified),
        (
            verdict(DaneMatchOutcome::NoMatch),
            failed("no-match: no usable TLSA record matched the presented chain"),
        ),
        (
            DaneVerdict {
                depth: 1,
                matched: Some(TA.parse().unwrap()),
                reason: Some("not valid for mx.example".into()),
                ..verdict(DaneMatchOutcome::NameMismatch)
            },
            failed(&format!(
                "name-mismatch: a TLSA record matched but the certificate name does not \
                 (not valid for mx.example); matched TLSA 2 1 1 {Z} at depth 1"
            )),
        ),
        (
            DaneVerdict {
                reason: Some("expired".into()),
                ..verdict(DaneMatchOutcome::ChainError)
            },
            failed(
                "chain-error: a TLSA record matched but the chain does not validate to it \
                 (expired)",
            ),
        ),
        (
            verdict(DaneMatchOutcome::Unusable),
            failed("unusable: every TLSA record is unusable for SMTP"),
        ),
        (
            DaneVerdict::default(),
            dane_outcome(&verdict(DaneMatchOutcome::NoMatch)),
        ),
    ];
    for (v, want) in table {
        assert_eq!(dane_outcome(&v), want, "{v:?}");
        assert_eq!(DaneOutcome::from(&v), want, "{v:?}");
        assert_eq!(DaneOutcome::from(v.clone()), want, "{v:?}");
        // The machine with usable TLSA records: only a verified chain continues.
        let mut a = DeliveryAttempt::new(
            "example",
            DeliveryTls::Preferred,
            DaneSetting::Opportunistic,
            TlsaStatus::Usable,
            DeliveryOptions::new(RequiredTlsAlerts::DoNotSend),
        );
        assert!(a.preflight().is_none());
        assert_eq!(
            a.on_ehlo(EhloOutcome::Esmtp { starttls: true }),
            Step::SendStartTls
        );
        assert_eq!(a.on_starttls_reply(220), Step::StartHandshake);
        let Step::Done(d) = a.on_handshake(HandshakeOutcome::Established(PeerVerification::new(
            PkixOutcome::NotChecked,
            Some(want.clone()),
        ))) else {
            panic!()
        };
        match want {
            DaneOutcome::Verified => assert_eq!(d.action, Next::ContinueTls),
            DaneOutcome::Failed { reason } => {
                assert_eq!(d.action, Next::Defer);
                assert_eq!(d.reason, Reason::DaneVerificationFailed { reason });
            }
        }
    }
}

fn cert(name: &str) -> CertificateDer<'static> {
    let key = rcgen::KeyPair::generate().unwrap();
    rcgen::CertificateParams::new(vec![name.into()])
        .unwrap()
        .self_signed(&key)
        .unwrap()
        .der()
        .clone()
}

/// Real matcher verdicts (a DANE-EE record for a generated certificate) converted.
#[test]
fn real_matcher_verdicts() {
    let good = cert("mx.example");
    let other = cert("mx.example");
    let records = dane_verify::server_tlsa_records(&good, None).unwrap();
    let matcher = DaneMatcher::smtp(["mx.example", "example"]).unwrap();
    let now = UnixTime::now();
    let ok = matcher.verify(&records, std::slice::from_ref(&good), now);
    assert_eq!(DaneOutcome::from(&ok), DaneOutcome::Verified);
    let bad = matcher.verify(&records, &[other], now);
    let DaneOutcome::Failed { reason } = DaneOutcome::from(&bad) else {
        panic!("{bad:?}")
    };
    assert!(reason.starts_with("no-match: "), "{reason}");
}
