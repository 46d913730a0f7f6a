//! The plan's decision table: TLS mode × DANE setting × DNS facts (MX security, TLSA lookup) →
//! pre-connect action, requirement, reference identities and explanation; plus the fail-closed
//! cases.

use dane_verify::DnssecStatus::{self, Bogus, Insecure, Secure};
use dane_verify::TlsaRecord;
use dane_verify::{DaneAction, DeferReason, HostFacts, LookupFailure, NoDaneReason, TlsaLookup};

use super::*;
use crate::delivery::{DeliveryAction, DeliveryOptions, EhloOutcome, Step};
use crate::destination::{
    ConfiguredDane, DestinationControls, DestinationEntry, DestinationPolicy, TlsMode,
};

const USABLE: &str = "3 1 1 0000000000000000000000000000000000000000000000000000000000000000";
const UNUSABLE: &str = "0 0 1 0000000000000000000000000000000000000000000000000000000000000000";

fn policy(tls: TlsMode, dane: ConfiguredDane) -> DestinationPolicy {
    DestinationControls::builder()
        .default_entry(DestinationEntry::new(tls, dane))
        .unwrap()
        .build()
        .lookup("example.com")
        .unwrap()
}

fn record(text: &str) -> TlsaRecord {
    text.parse().unwrap()
}

/// The DNS situations of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dns {
    MxInsecure,
    Usable,
    OnlyUnusable,
    NoTlsa,
    TlsaServFail,
    MxBogus,
}

const DNS: [Dns; 6] = [
    Dns::MxInsecure,
    Dns::Usable,
    Dns::OnlyUnusable,
    Dns::NoTlsa,
    Dns::TlsaServFail,
    Dns::MxBogus,
];

fn facts(dns: Dns) -> HostFacts {
    let (mx, tlsa) = match dns {
        Dns::MxInsecure => (Insecure, TlsaLookup::NotQueried),
        Dns::Usable => (
            Secure,
            TlsaLookup::Found {
                records: vec![record(USABLE)],
                status: Secure,
            },
        ),
        Dns::OnlyUnusable => (
            Secure,
            TlsaLookup::Found {
                records: vec![record(UNUSABLE)],
                status: Secure,
            },
        ),
        Dns::NoTlsa => (Secure, TlsaLookup::NotFound { status: Secure }),
        Dns::TlsaServFail => (Secure, TlsaLookup::Failed(LookupFailure::ServFail)),
        Dns::MxBogus => (Bogus, TlsaLookup::NotQueried),
    };
    HostFacts {
        next_hop: "example.com".into(),
        mx_host: "mx.example.net".into(),
        mx_status: mx,
        address_status: mx,
        tlsa_base: "mx.example.net".into(),
        tlsa,
    }
}

const MODES: [TlsMode; 6] = [
    TlsMode::No,
    TlsMode::Preferred,
    TlsMode::Required,
    TlsMode::PreferredVerify,
    TlsMode::RequiredVerify,
    TlsMode::RequiredVerifyHostedDomains,
];

fn base(tls: TlsMode) -> &'static str {
    match tls {
        TlsMode::No => "plaintext",
        TlsMode::Preferred => "opportunistic",
        TlsMode::PreferredVerify => "opportunistic-verify",
        TlsMode::Required => "encrypted",
        TlsMode::RequiredVerify => "verified",
        _ => "verified-hosted-domains",
    }
}

/// The plain reference: (pre-connect, requirement, decided by) written from RFC 7672 §2.2 and
/// the seed's Table 2, independently of the plan's code.
fn expected(tls: TlsMode, dane: ConfiguredDane, dns: Dns) -> (&'static str, Option<&'static str>) {
    let dane = if tls == TlsMode::No {
        ConfiguredDane::None
    } else {
        dane
    };
    let mandatory = dane == ConfiguredDane::Mandatory;
    if dane == ConfiguredDane::None {
        return ("connect", Some(base(tls)));
    }
    match dns {
        Dns::MxBogus => ("defer", None),
        Dns::MxInsecure if mandatory => ("defer", None),
        Dns::MxInsecure => ("connect", Some(base(tls))),
        Dns::Usable => ("connect", Some("dane")),
        Dns::OnlyUnusable | Dns::NoTlsa if mandatory => ("skip-host", None),
        Dns::OnlyUnusable => match base(tls) {
            "opportunistic" | "opportunistic-verify" => ("connect", Some("encrypted")),
            b => ("connect", Some(b)),
        },
        Dns::NoTlsa => ("connect", Some(base(tls))),
        Dns::TlsaServFail => ("skip-host", None),
    }
}

#[test]
fn every_mode_dane_setting_and_dns_situation() {
    let mut rows = 0;
    for tls in MODES {
        for dane in [
            ConfiguredDane::None,
            ConfiguredDane::Opportunistic,
            ConfiguredDane::Mandatory,
        ] {
            if tls == TlsMode::No && dane != ConfiguredDane::None {
                continue; // a configuration error (DANE needs TLS)
            }
            for dns in DNS {
                rows += 1;
                let case = format!("{tls:?} {dane:?} {dns:?}");
                let p = policy(tls, dane);
                let f = facts(dns);
                let plan = HopPlan::new(&p, &f, PlanOptions::new());
                let e = plan.explanation();
                let (pre, req) = expected(tls, dane, dns);
                assert_eq!(plan.pre_connect().as_str(), pre, "{case}");
                assert_eq!(e.pre_connect.action, pre, "{case}");
                assert_eq!(e.requirement, req, "{case}");
                assert_eq!(
                    plan.requirement().map(explain::requirement_name),
                    req,
                    "{case}"
                );
                // The plan and the machine it builds agree.
                let attempt = plan.attempt(DeliveryOptions::default());
                assert_eq!(attempt.is_some(), pre == "connect", "{case}");
                if let Some(mut a) = attempt {
                    assert!(a.preflight().is_none(), "{case}");
                    assert_eq!(a.requirement(), plan.requirement(), "{case}");
                }
                // Plaintext only where the machine's permit exists; never for required modes.
                let permitted = plan.requirement().and_then(Requirement::plaintext_permit);
                assert_eq!(e.plaintext.permitted, permitted.is_some(), "{case}");
                if p.tls.is_required() || req == Some("dane") {
                    assert!(!e.plaintext.permitted, "{case}");
                }
                // Explanation: the destination rule first, DNSSEC statuses, decided-by.
                assert_eq!(e.rules[0].source, Source::DefaultEntry, "{case}");
                assert_eq!(e.rules[0].effect, Effect::SetsTlsMode, "{case}");
                assert_eq!(e.destination.matched, "default", "{case}");
                assert_eq!(e.destination.tls_mode, p.tls.as_str(), "{case}");
                assert_eq!(e.dnssec.mx, f.mx_status.as_str(), "{case}");
                let dane_decides = pre != "connect" || req == Some("dane");
                // Unusable records raising `preferred*` to mandatory TLS is DANE's decision too.
                let raised = req == Some("encrypted") && !p.tls.is_required();
                let expected_source = if dane_decides || raised {
                    Source::Dane
                } else {
                    Source::DefaultEntry
                };
                assert_eq!(e.decided_by, expected_source, "{case}");
                assert_eq!(
                    e.authentication,
                    match req {
                        Some("dane") => Authentication::Dane,
                        Some("verified" | "verified-hosted-domains") => Authentication::Pkix,
                        _ => Authentication::None,
                    },
                    "{case}"
                );
                // SNI: the TLSA base domain under DANE, else the MX host; none without TLS.
                let sni = match req {
                    None | Some("plaintext") => None,
                    _ => Some("mx.example.net".to_owned()),
                };
                assert_eq!(e.sni, sni, "{case}");
            }
        }
    }
    assert_eq!(rows, 6 * 6 + 5 * 2 * 6);
}

#[test]
fn reference_ids_follow_the_mode_and_the_mx_security() {
    for (tls, security, ids) in [
        (
            TlsMode::RequiredVerify,
            Insecure,
            &["example.com", "mx.example.net"][..],
        ),
        (
            TlsMode::PreferredVerify,
            Insecure,
            &["example.com", "mx.example.net"][..],
        ),
        (
            TlsMode::RequiredVerifyHostedDomains,
            Insecure,
            &["example.com"][..],
        ),
        (
            TlsMode::RequiredVerifyHostedDomains,
            Secure,
            &["example.com", "mx.example.net"][..],
        ),
        (
            TlsMode::Required,
            Secure,
            &["example.com", "mx.example.net"][..],
        ),
        (
            TlsMode::Preferred,
            Insecure,
            &["example.com", "mx.example.net"][..],
        ),
        (TlsMode::No, Insecure, &[][..]),
    ] {
        let mut f = facts(Dns::NoTlsa);
        f.mx_status = security;
        let plan = HopPlan::new(&policy(tls, ConfiguredDane::None), &f, PlanOptions::new());
        let got: Vec<String> = plan
            .reference_ids()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(got, ids, "{tls:?} {security:?}");
        assert_eq!(plan.explanation().reference_ids.pkix, ids, "{tls:?}");
        let algorithm = plan.explanation().reference_ids.pkix_algorithm;
        let want = match tls {
            TlsMode::RequiredVerifyHostedDomains => Some("hosted-verify"),
            TlsMode::No => None,
            _ => Some("verify"),
        };
        assert_eq!(algorithm, want, "{tls:?}");
    }
}

#[test]
fn dane_plan_names_sni_and_dane_reference_names() {
    let mut f = facts(Dns::Usable);
    f.tlsa_base = "mx.cname-target.example".into();
    let plan = HopPlan::new(
        &policy(TlsMode::Preferred, ConfiguredDane::Opportunistic),
        &f,
        PlanOptions::new(),
    );
    assert_eq!(plan.requirement(), Some(Requirement::Dane));
    assert_eq!(
        plan.server_name().map(|n| n.to_str().into_owned()),
        Some("mx.cname-target.example".into())
    );
    assert_eq!(
        plan.dane_reference_names(),
        ["mx.cname-target.example", "mx.example.net", "example.com"]
    );
    let e = plan.explanation();
    assert_eq!(e.dnssec.tlsa_base, "mx.cname-target.example");
    assert_eq!(e.dane.action, "dane");
    assert_eq!(e.dane.records, [USABLE]);
    assert_eq!(e.rules[1].source, Source::Dane);
    assert_eq!(e.rules[1].effect, Effect::Authenticates);
    assert!(plan.is_authenticated());
}

#[test]
fn facts_for_another_domain_defer() {
    let mut f = facts(Dns::MxInsecure);
    f.next_hop = "example.org".into();
    let plan = HopPlan::new(
        &policy(TlsMode::Preferred, ConfiguredDane::None),
        &f,
        PlanOptions::new(),
    );
    assert!(matches!(
        plan.pre_connect(),
        PreConnect::Defer {
            reason: HoldReason::DomainMismatch { .. }
        }
    ));
    assert!(plan.attempt(DeliveryOptions::default()).is_none());
    let e = plan.explanation();
    assert_eq!(e.decided_by, Source::HopFacts);
    assert_eq!(e.pre_connect.reason, Some("domain-mismatch"));
    assert!(!e.plaintext.permitted);
    // Case and a trailing dot do not matter.
    f.next_hop = "EXAMPLE.com.".into();
    let plan = HopPlan::new(
        &policy(TlsMode::Preferred, ConfiguredDane::None),
        &f,
        PlanOptions::new(),
    );
    assert!(plan.may_connect());
}

#[test]
fn implicit_mx_must_be_the_domain() {
    let p = policy(TlsMode::RequiredVerifyHostedDomains, ConfiguredDane::None);
    let options = PlanOptions::new().with_host_source(HostSource::ImplicitMx);
    let plan = HopPlan::new(&p, &facts(Dns::MxInsecure), options);
    assert!(matches!(
        plan.pre_connect(),
        PreConnect::SkipHost {
            reason: HoldReason::ImplicitMxHost { .. }
        }
    ));
    let mut f = facts(Dns::MxInsecure);
    f.mx_host = "example.com".into();
    let plan = HopPlan::new(&p, &f, options);
    assert!(plan.may_connect());
    assert_eq!(plan.explanation().host_source, HostSource::ImplicitMx);
    let ids: Vec<String> = plan
        .reference_ids()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(ids, ["example.com"]);
}

#[test]
fn route_host_is_a_reference_identity_of_its_own() {
    let p = policy(TlsMode::RequiredVerifyHostedDomains, ConfiguredDane::None);
    let mut f = facts(Dns::MxInsecure);
    f.mx_host = "relay.provider.example".into();
    let plan = HopPlan::new(
        &p,
        &f,
        PlanOptions::new().with_host_source(HostSource::Route),
    );
    let ids: Vec<String> = plan
        .reference_ids()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(ids, ["example.com", "relay.provider.example"]);
    // An IP literal route host: SNI-less IP server name, IP reference identity.
    f.mx_host = "192.0.2.1".into();
    let plan = HopPlan::new(
        &p,
        &f,
        PlanOptions::new().with_host_source(HostSource::Route),
    );
    assert!(plan.may_connect());
    assert!(matches!(plan.server_name(), Some(ServerName::IpAddress(_))));
}

#[test]
fn an_unusable_host_name_skips_the_host() {
    let mut f = facts(Dns::MxInsecure);
    f.mx_host = "bad name.example".into();
    let plan = HopPlan::new(
        &policy(TlsMode::Required, ConfiguredDane::None),
        &f,
        PlanOptions::new(),
    );
    assert!(matches!(
        plan.pre_connect(),
        PreConnect::SkipHost {
            reason: HoldReason::InvalidName(_)
        }
    ));
}

#[test]
fn a_dane_defer_from_elsewhere_holds_even_with_dane_none() {
    // e.g. dane-verify's resolver: a failed MX lookup defers the destination whatever the
    // setting; the plan never lets the machine connect.
    let p = policy(TlsMode::Preferred, ConfiguredDane::None);
    let action = DaneAction::Defer(DeferReason::MxLookup(DnssecStatus::Indeterminate));
    let plan = HopPlan::with_dane_action(&p, &facts(Dns::MxInsecure), action, PlanOptions::new());
    assert!(matches!(plan.pre_connect(), PreConnect::Defer { .. }));
    assert!(plan.attempt(DeliveryOptions::default()).is_none());
    assert_eq!(plan.explanation().pre_connect.reason, Some("mx-lookup"));
    assert_eq!(plan.explanation().decided_by, Source::Dane);
}

#[test]
fn mandatory_dane_with_a_configured_tls_action_holds() {
    // An action decided under a weaker setting than the policy's: the machine's requirement
    // refuses, the plan says why.
    let p = policy(TlsMode::Required, ConfiguredDane::Mandatory);
    let action = DaneAction::ConfiguredTls(NoDaneReason::AddressInsecure);
    let plan = HopPlan::with_dane_action(&p, &facts(Dns::NoTlsa), action, PlanOptions::new());
    assert_eq!(
        plan.pre_connect(),
        &PreConnect::SkipHost {
            reason: HoldReason::Dane(DeferReason::DaneRequired(NoDaneReason::AddressInsecure))
        }
    );
}

#[test]
fn defaults_are_least_trusted() {
    assert!(matches!(PreConnect::default(), PreConnect::Defer { .. }));
    assert_eq!(HoldReason::default(), HoldReason::Undetermined);
    let v = PeerVerdict::default();
    assert!(!v.satisfies_requirement);
    assert_eq!(v.authenticated_by, Authentication::None);
}

#[test]
fn a_held_plan_verifies_nothing() {
    let plan = HopPlan::new(
        &policy(TlsMode::Required, ConfiguredDane::Opportunistic),
        &facts(Dns::TlsaServFail),
        PlanOptions::new(),
    );
    let v = plan.verify_peer(
        &[],
        &crate::chain::TrustAnchors::empty(),
        rustls_pki_types::UnixTime::now(),
    );
    assert_eq!(v, PeerVerdict::default());
}

#[test]
fn stripped_starttls_never_gives_plaintext_where_the_plan_forbids_it() {
    for tls in MODES {
        for dns in DNS {
            let dane = if tls == TlsMode::No {
                ConfiguredDane::None
            } else {
                ConfiguredDane::Opportunistic
            };
            let plan = HopPlan::new(&policy(tls, dane), &facts(dns), PlanOptions::new());
            let Some(mut a) = plan.attempt(DeliveryOptions::default()) else {
                continue;
            };
            assert!(a.preflight().is_none());
            let Step::Done(d) = a.on_ehlo(EhloOutcome::Esmtp { starttls: false }) else {
                panic!("{tls:?} {dns:?}: no decision")
            };
            assert_eq!(
                d.action.is_plaintext(),
                plan.explanation().plaintext.permitted,
                "{tls:?} {dns:?}"
            );
            if !plan.explanation().plaintext.permitted {
                assert_eq!(d.action, DeliveryAction::Defer);
            }
        }
    }
}

#[test]
fn too_many_tlsa_records_skip_the_host() {
    let records = vec![record(USABLE); MAX_TLSA_RECORDS + 1];
    let mut f = facts(Dns::Usable);
    f.tlsa = TlsaLookup::Found {
        records,
        status: Secure,
    };
    let plan = HopPlan::new(
        &policy(TlsMode::Preferred, ConfiguredDane::Opportunistic),
        &f,
        PlanOptions::new(),
    );
    assert_eq!(
        plan.pre_connect(),
        &PreConnect::SkipHost {
            reason: HoldReason::TooManyTlsaRecords {
                count: MAX_TLSA_RECORDS + 1,
                limit: MAX_TLSA_RECORDS
            }
        }
    );
    assert_eq!(
        plan.explanation().pre_connect.reason,
        Some("too-many-tlsa-records")
    );
}

/// The driver's verdict for a presented chain (`io::negotiate`): the plan verifier's DANE match
/// (moved from the removed `io::DaneVerifier` glue for dane-verify's `DaneVerifier`).
#[cfg(feature = "tokio")]
#[test]
fn plan_verifier_is_the_drivers_dane_check() {
    use std::sync::Arc;

    use rustls_pki_types::CertificateDer;

    use crate::chain::TrustAnchors;
    use crate::delivery::DaneOutcome;

    fn cert(name: &str) -> CertificateDer<'static> {
        let key = rcgen::KeyPair::generate().unwrap();
        rcgen::CertificateParams::new(vec![name.into()])
            .unwrap()
            .self_signed(&key)
            .unwrap()
            .der()
            .clone()
    }
    let good = cert("mx.example.net");
    let mut f = facts(Dns::Usable);
    f.tlsa = TlsaLookup::Found {
        records: dane_verify::server_tlsa_records(&good, None).unwrap(),
        status: Secure,
    };
    let plan = HopPlan::new(
        &policy(TlsMode::Preferred, ConfiguredDane::Opportunistic),
        &f,
        PlanOptions::new(),
    );
    let v = plan
        .verifier(Arc::new(TrustAnchors::empty()))
        .record_and_continue();
    let verdict = v.verdict_for_chain(std::slice::from_ref(&good));
    assert_eq!(verdict.dane, Some(DaneOutcome::Verified));
    assert!(verdict.dane_detail.unwrap().is_verified());
    let Some(DaneOutcome::Failed { reason }) = v.verdict_for_chain(&[cert("mx.example.net")]).dane
    else {
        panic!()
    };
    assert!(reason.starts_with("no-match: "), "{reason}");
    let Some(DaneOutcome::Failed { reason }) = v.verdict_for_chain(&[]).dane else {
        panic!()
    };
    assert!(reason.starts_with("chain-error: "), "{reason}");
}

/// `PlanOptions::with_verification` is the one place for the certificate checks: they reach the
/// plan's PKIX policy as given, with the identity algorithm of the destination's TLS setting.
#[test]
fn options_checks_reach_the_pkix_policy_under_the_settings_algorithm() {
    use crate::identity::{FqdnValidation, X509Validation};
    let checks = VerificationPolicy::new(IdentityAlgorithm::Verify)
        .with_fqdn_validation(FqdnValidation::Enabled)
        .with_x509_validation(X509Validation::Enabled)
        .with_max_intermediates(2);
    let options = PlanOptions::new().with_verification(checks);
    for (tls, algorithm) in [
        (
            TlsMode::RequiredVerifyHostedDomains,
            IdentityAlgorithm::HostedVerify,
        ),
        (TlsMode::RequiredVerify, IdentityAlgorithm::Verify),
        (TlsMode::Preferred, IdentityAlgorithm::Verify),
    ] {
        let plan = HopPlan::new(
            &policy(tls, ConfiguredDane::None),
            &facts(Dns::NoTlsa),
            options,
        );
        let pkix = plan.pkix.expect("TLS is attempted");
        assert_eq!(pkix.algorithm, algorithm, "{tls:?}");
        assert_eq!(
            (pkix.fqdn, pkix.x509, pkix.max_intermediates),
            (FqdnValidation::Enabled, X509Validation::Enabled, 2),
            "{tls:?}"
        );
    }
    let defaults = HopPlan::new(
        &policy(TlsMode::RequiredVerify, ConfiguredDane::None),
        &facts(Dns::NoTlsa),
        PlanOptions::new(),
    );
    let pkix = defaults.pkix.expect("TLS is attempted");
    assert_eq!(
        (pkix.fqdn, pkix.x509),
        (FqdnValidation::Disabled, X509Validation::Disabled)
    );
}
