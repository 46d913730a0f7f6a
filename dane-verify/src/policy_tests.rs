//! Table of (setting, MX, address, TLSA) -> action cases for [`decide`].

use super::*;
use DnssecStatus::{Bogus, Indeterminate, Insecure, Secure};

fn usable() -> Vec<TlsaRecord> {
    vec![format!("3 1 1 {}", "ab".repeat(32)).parse().unwrap()]
}

fn unusable() -> Vec<TlsaRecord> {
    vec![format!("1 1 1 {}", "ab".repeat(32)).parse().unwrap()]
}

fn facts(mx: DnssecStatus, addr: DnssecStatus, tlsa: TlsaLookup) -> HostFacts {
    HostFacts {
        next_hop: "example.net".into(),
        mx_host: "mx.example.net".into(),
        mx_status: mx,
        address_status: addr,
        tlsa_base: "mx.example.net".into(),
        tlsa,
    }
}

#[test]
fn decision_table() {
    use DaneSetting::{Mandatory as M, Opportunistic as O};
    let found = |records, status| TlsaLookup::Found { records, status };
    let dane = || DaneAction::UseDane {
        records: usable(),
        sni: "mx.example.net".into(),
        reference_names: vec!["mx.example.net".into(), "example.net".into()],
    };
    let cfg = DaneAction::ConfiguredTls;
    let req = |r| DaneAction::Defer(DeferReason::DaneRequired(r));
    let cases: Vec<(DaneSetting, HostFacts, DaneAction)> = vec![
        (O, facts(Secure, Secure, found(usable(), Secure)), dane()),
        (M, facts(Secure, Secure, found(usable(), Secure)), dane()),
        (
            O,
            facts(Secure, Secure, found(unusable(), Secure)),
            DaneAction::TlsMandatoryUnauthenticated,
        ),
        (
            M,
            facts(Secure, Secure, found(unusable(), Secure)),
            req(NoDaneReason::OnlyUnusable),
        ),
        (
            O,
            facts(Secure, Secure, TlsaLookup::NotFound { status: Secure }),
            cfg(NoDaneReason::NoTlsa),
        ),
        (
            M,
            facts(Secure, Secure, TlsaLookup::NotFound { status: Secure }),
            req(NoDaneReason::NoTlsa),
        ),
        (
            O,
            facts(Secure, Secure, found(usable(), Insecure)),
            cfg(NoDaneReason::TlsaInsecure),
        ),
        (
            O,
            facts(Secure, Secure, found(usable(), Bogus)),
            DaneAction::Defer(DeferReason::TlsaBogus(Bogus)),
        ),
        (
            O,
            facts(
                Secure,
                Secure,
                TlsaLookup::NotFound {
                    status: Indeterminate,
                },
            ),
            DaneAction::Defer(DeferReason::TlsaBogus(Indeterminate)),
        ),
        (
            O,
            facts(Secure, Secure, TlsaLookup::Failed(LookupFailure::ServFail)),
            DaneAction::Defer(DeferReason::TlsaLookup(LookupFailure::ServFail)),
        ),
        (
            M,
            facts(Secure, Secure, TlsaLookup::Failed(LookupFailure::Timeout)),
            DaneAction::Defer(DeferReason::TlsaLookup(LookupFailure::Timeout)),
        ),
        (
            O,
            facts(Secure, Secure, TlsaLookup::NotQueried),
            DaneAction::Defer(DeferReason::Undetermined),
        ),
        // the Outlook case: insecure host, TLSA SERVFAIL -> not DANE, never blocked
        (
            O,
            facts(
                Secure,
                Insecure,
                TlsaLookup::Failed(LookupFailure::ServFail),
            ),
            cfg(NoDaneReason::AddressInsecure),
        ),
        (
            M,
            facts(
                Secure,
                Insecure,
                TlsaLookup::Failed(LookupFailure::ServFail),
            ),
            req(NoDaneReason::AddressInsecure),
        ),
        (
            O,
            facts(Secure, Bogus, found(usable(), Secure)),
            DaneAction::Defer(DeferReason::AddressLookup(Bogus)),
        ),
        (
            O,
            facts(Insecure, Secure, found(usable(), Secure)),
            cfg(NoDaneReason::MxInsecure),
        ),
        (
            M,
            facts(Insecure, Secure, found(usable(), Secure)),
            req(NoDaneReason::MxInsecure),
        ),
        (
            O,
            facts(Bogus, Secure, found(usable(), Secure)),
            DaneAction::Defer(DeferReason::MxLookup(Bogus)),
        ),
        (
            M,
            facts(Indeterminate, Secure, found(usable(), Secure)),
            DaneAction::Defer(DeferReason::MxLookup(Indeterminate)),
        ),
        (
            DaneSetting::None,
            facts(Bogus, Bogus, TlsaLookup::Failed(LookupFailure::ServFail)),
            cfg(NoDaneReason::SettingNone),
        ),
    ];
    for (i, (setting, f, want)) in cases.iter().enumerate() {
        assert_eq!(&decide(*setting, f), want, "case {i}: {setting:?} {f:?}");
    }
    assert_eq!(
        DaneAction::default(),
        DaneAction::Defer(DeferReason::Undetermined)
    );
}

#[test]
fn cname_fallback_order() {
    let secure_found = TlsaLookup::Found {
        records: usable(),
        status: Secure,
    };
    let (l, original) = secure_found.clone().cname_fallback(|| unreachable!());
    assert_eq!((l, original), (secure_found.clone(), false));
    let (l, original) =
        TlsaLookup::NotFound { status: Secure }.cname_fallback(|| secure_found.clone());
    assert_eq!((l, original), (secure_found.clone(), true));
    let failed = TlsaLookup::Failed(LookupFailure::ServFail);
    let (l, original) = failed.clone().cname_fallback(|| secure_found.clone());
    assert_eq!((l, original), (failed, false));
}
