//! MTA-STS (RFC 8461), REQUIRETLS and `TLS-Required: No` (RFC 8689) as policy sources of the
//! hop plan, through the public API: a table over (local setting × STS mode × host listed ×
//! TLSA × certificate × TLS request) against a small independent model of the precedence; a
//! proptest that STS `enforce` never yields plaintext or an unauthenticated success for a
//! listed host (unless `TLS-Required: No`); REQUIRETLS on an insecure route; `mta_sts =
//! "ignore"`; the explanation as JSON.

mod pki;

use dane_verify::DnssecStatus::{Insecure, Secure};
use dane_verify::{HostFacts, TlsaLookup, TlsaRecord};
use pki::{Pki, pki};
use proptest::prelude::*;
use rustls::pki_types::{CertificateDer, UnixTime};
use smtp_tls_policy::chain::TrustAnchors;
use smtp_tls_policy::delivery::{RequireTlsRoute, TlsRequest};
use smtp_tls_policy::destination::{
    ConfiguredDane, DestinationControls, DestinationEntry, DestinationPolicy, MtaStsSetting,
    TlsMode,
};
use smtp_tls_policy::mta_sts::{Policy, StsFailureKind, StsHostVerdict, host_verdict};
use smtp_tls_policy::plan::{Authentication, HoldReason, Source};
use smtp_tls_policy::{HopPlan, PlanOptions, PreConnect};

const DOMAIN: &str = "example.com";
const LISTED: &str = "mx1.mail.example.com";
/// One label too deep for `*.mail.example.com`.
const UNLISTED: &str = "a.b.mail.example.com";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sts {
    NoPolicy,
    Testing,
    Enforce,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dns {
    /// Unsigned MX, no TLSA lookup.
    Insecure,
    /// DNSSEC-secure MX, secure denial of TLSA.
    SecureNoTlsa,
    /// DNSSEC-secure MX and a usable `3 1 1` for the good leaf.
    SecureTlsa,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cert {
    /// Trusted; SAN dNSNames: the MX host and the domain.
    Good,
    /// Trusted; SAN names another host.
    WrongName,
    /// Trusted; the MX host only in the subject CN.
    CnOnly,
    /// SANs right, issued by a CA that is not trusted.
    Untrusted,
}

const CERTS: [Cert; 4] = [Cert::Good, Cert::WrongName, Cert::CnOnly, Cert::Untrusted];

/// A leaf with the right SANs from a CA of its own name ("Untrusted CA": not one of the
/// anchors, and not a namesake of one either).
fn untrusted(host: &str) -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca_params = pki::ca_params("Untrusted CA", None);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(vec![host.to_owned(), DOMAIN.to_owned()]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.use_authority_key_identifier_extension = true;
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let leaf = params.signed_by(&key, &issuer).unwrap();
    Pki {
        ca: ca.der().clone(),
        leaf: leaf.der().clone(),
        leaf_key: rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
    }
}

struct Fixtures {
    good: Pki,
    wrong: Pki,
    cn_only: Pki,
    untrusted: Pki,
    anchors: TrustAnchors,
    tlsa: TlsaRecord,
}

impl Fixtures {
    fn new(host: &str) -> Self {
        let good = pki(None, &[host, DOMAIN]);
        let wrong = pki(None, &["other.example.org"]);
        let cn_only = pki(Some(host), &[]);
        let untrusted = untrusted(host);
        let anchors = TrustAnchors::from_certificates([
            good.ca.clone(),
            wrong.ca.clone(),
            cn_only.ca.clone(),
        ])
        .unwrap();
        let tlsa = dane_verify::server_tlsa_records(&good.leaf, Some(&good.ca)).unwrap()[0].clone();
        Self {
            good,
            wrong,
            cn_only,
            untrusted,
            anchors,
            tlsa,
        }
    }

    fn chain(&self, c: Cert) -> Vec<CertificateDer<'static>> {
        let p = match c {
            Cert::Good => &self.good,
            Cert::WrongName => &self.wrong,
            Cert::CnOnly => &self.cn_only,
            Cert::Untrusted => &self.untrusted,
        };
        vec![p.leaf.clone()]
    }
}

fn policy_with(tls: TlsMode, dane: ConfiguredDane, mta_sts: MtaStsSetting) -> DestinationPolicy {
    DestinationControls::builder()
        .default_entry(DestinationEntry::new(
            TlsMode::Preferred,
            ConfiguredDane::None,
        ))
        .unwrap()
        .entry(
            DOMAIN,
            DestinationEntry::new(tls, dane).with_mta_sts(mta_sts),
        )
        .unwrap()
        .build()
        .lookup(DOMAIN)
        .unwrap()
}

fn facts(host: &str, dns: Dns, tlsa: &TlsaRecord) -> HostFacts {
    let (mx_status, tlsa) = match dns {
        Dns::Insecure => (Insecure, TlsaLookup::NotQueried),
        Dns::SecureNoTlsa => (Secure, TlsaLookup::NotFound { status: Secure }),
        Dns::SecureTlsa => (
            Secure,
            TlsaLookup::Found {
                records: vec![tlsa.clone()],
                status: Secure,
            },
        ),
    };
    HostFacts {
        next_hop: DOMAIN.into(),
        mx_host: host.into(),
        mx_status,
        address_status: mx_status,
        tlsa_base: host.into(),
        tlsa,
    }
}

fn sts_verdict(sts: Sts, host: &str) -> Option<StsHostVerdict> {
    let mode = match sts {
        Sts::NoPolicy => return None,
        Sts::Testing => "testing",
        Sts::Enforce => "enforce",
    };
    let text = format!("version: STSv1\nmode: {mode}\nmx: *.mail.example.com\nmax_age: 86400\n");
    let policy = Policy::parse(text.as_bytes()).unwrap();
    Some(host_verdict(Some(&policy), host).with_policy_id("20261204T000000"))
}

fn plan(
    local: TlsMode,
    mta_sts: MtaStsSetting,
    sts: Sts,
    host: &str,
    dns: Dns,
    request: TlsRequest,
    fx: &Fixtures,
) -> HopPlan {
    let policy = policy_with(local, ConfiguredDane::Opportunistic, mta_sts);
    let mut plan = HopPlan::new(&policy, &facts(host, dns, &fx.tlsa), PlanOptions::new());
    if let Some(v) = sts_verdict(sts, host) {
        plan = plan.with_mta_sts(v);
    }
    plan.with_tls_request(request)
}

/// What the model expects.
#[derive(Debug, PartialEq, Eq)]
struct Expected {
    pre_connect: &'static str,
    hold: Option<&'static str>,
    requirement: Option<&'static str>,
    plaintext: bool,
    satisfied: bool,
    sts_failure: Option<StsFailureKind>,
    pkix_required: Option<bool>,
    decided_by: Source,
}

/// The precedence of the plan module docs, written out independently.
fn model(
    local: TlsMode,
    sts: Sts,
    listed: bool,
    dns: Dns,
    cert: Cert,
    req: TlsRequest,
) -> Expected {
    let optional = req == TlsRequest::TlsOptional;
    let dane = dns == Dns::SecureTlsa && !optional;
    let enforce_listed = sts == Sts::Enforce && listed && !optional;
    let route_secure = dns != Dns::Insecure || enforce_listed;
    let local_name = match local {
        TlsMode::Preferred => "opportunistic",
        TlsMode::Required => "encrypted",
        _ => "verified",
    };
    let destination = Source::DestinationControl;
    let mut e = Expected {
        pre_connect: "connect",
        hold: None,
        requirement: None,
        plaintext: false,
        satisfied: false,
        sts_failure: None,
        pkix_required: match sts {
            Sts::NoPolicy => None,
            _ => Some(enforce_listed && !dane),
        },
        decided_by: destination,
    };
    if !optional && sts == Sts::Enforce && !listed {
        e.pre_connect = "skip-host";
        e.hold = Some("mta-sts-not-listed");
        e.sts_failure = Some(StsFailureKind::ValidationFailure);
        e.decided_by = Source::MtaSts;
        return e;
    }
    if req == TlsRequest::RequireTls && !route_secure {
        e.pre_connect = "skip-host";
        e.hold = Some("requiretls-route-insecure");
        // Known before connecting: a testing policy that does not list the host.
        e.sts_failure =
            (sts == Sts::Testing && !listed && !dane).then_some(StsFailureKind::ValidationFailure);
        e.decided_by = Source::RequireTls;
        return e;
    }
    // Local PKIX (Verify: CN or SAN; the MX host is a reference identity).
    let local_pkix_ok = matches!(cert, Cert::Good | Cert::CnOnly);
    let sts_ok = cert == Cert::Good;
    let (requirement, satisfied, decided_by) = if optional {
        ("opportunistic", true, Source::TlsRequiredHeader)
    } else if dane {
        ("dane", cert == Cert::Good, Source::Dane)
    } else if enforce_listed {
        let local_ok = local != TlsMode::RequiredVerify || local_pkix_ok;
        ("verified", sts_ok && local_ok, Source::MtaSts)
    } else if req == TlsRequest::RequireTls && local != TlsMode::RequiredVerify {
        ("verified", local_pkix_ok, Source::RequireTls)
    } else {
        let ok = local != TlsMode::RequiredVerify || local_pkix_ok;
        (local_name, ok, destination)
    };
    e.requirement = Some(requirement);
    e.plaintext = requirement == "opportunistic";
    e.satisfied = satisfied;
    e.decided_by = decided_by;
    let checked = !optional && !dane && (sts == Sts::Testing || enforce_listed);
    e.sts_failure = match (checked, sts == Sts::Testing && !listed, cert) {
        (false, _, _) => None,
        (true, true, _) => Some(StsFailureKind::ValidationFailure),
        (true, false, Cert::Good) => None,
        (true, false, Cert::WrongName | Cert::CnOnly) => {
            Some(StsFailureKind::CertificateHostMismatch)
        }
        (true, false, Cert::Untrusted) => Some(StsFailureKind::CertificateNotTrusted),
    };
    e
}

fn observe(plan: &HopPlan, fx: &Fixtures, cert: Cert) -> Expected {
    let x = plan.explanation();
    let v = plan.verify_peer(&fx.chain(cert), &fx.anchors, UnixTime::now());
    if !plan.may_connect() {
        assert_eq!(v, Default::default(), "no connection, no verdict");
    }
    if v.satisfies_requirement && plan.is_authenticated() {
        assert_ne!(v.authenticated_by, Authentication::None);
    }
    Expected {
        pre_connect: plan.pre_connect().as_str(),
        hold: plan.pre_connect().hold_reason().map(HoldReason::code),
        requirement: x.requirement,
        plaintext: x.plaintext.permitted,
        satisfied: v.satisfies_requirement,
        sts_failure: v.sts_failure.as_ref().map(|f| f.kind).or_else(|| {
            x.mta_sts
                .as_ref()
                .and_then(|m| m.failure.as_ref().map(|f| f.kind))
        }),
        pkix_required: x.mta_sts.as_ref().map(|m| m.pkix_required),
        decided_by: x.decided_by,
    }
}

#[test]
fn precedence_table() {
    let listed_fx = Fixtures::new(LISTED);
    let unlisted_fx = Fixtures::new(UNLISTED);
    let mut cases = 0;
    for local in [
        TlsMode::Preferred,
        TlsMode::Required,
        TlsMode::RequiredVerify,
    ] {
        for sts in [Sts::NoPolicy, Sts::Testing, Sts::Enforce] {
            for listed in [true, false] {
                let (host, fx) = if listed {
                    (LISTED, &listed_fx)
                } else {
                    (UNLISTED, &unlisted_fx)
                };
                for dns in [Dns::Insecure, Dns::SecureNoTlsa, Dns::SecureTlsa] {
                    for req in [
                        TlsRequest::Default,
                        TlsRequest::RequireTls,
                        TlsRequest::TlsOptional,
                    ] {
                        let p = plan(local, MtaStsSetting::Honor, sts, host, dns, req, fx);
                        for cert in CERTS {
                            let want = model(local, sts, listed, dns, cert, req);
                            let got = observe(&p, fx, cert);
                            assert_eq!(
                                got,
                                want,
                                "{local:?} {sts:?} listed={listed} {dns:?} {cert:?} {req:?}\n{}",
                                serde_json::to_string_pretty(p.explanation()).unwrap()
                            );
                            cases += 1;
                        }
                    }
                }
            }
        }
    }
    assert_eq!(cases, 3 * 3 * 2 * 3 * 3 * 4);
}

#[test]
fn unlisted_host_says_why_in_the_hold() {
    let fx = Fixtures::new(UNLISTED);
    let p = plan(
        TlsMode::Preferred,
        MtaStsSetting::Honor,
        Sts::Enforce,
        UNLISTED,
        Dns::SecureTlsa,
        TlsRequest::Default,
        &fx,
    );
    // The STS mx filter applies even when the host has usable TLSA records.
    let PreConnect::SkipHost { reason } = p.pre_connect() else {
        panic!("{:?}", p.pre_connect())
    };
    assert!(
        reason
            .to_string()
            .contains("pattern matches one label; host has two"),
        "{reason}"
    );
    assert_eq!(p.explanation().decided_by, Source::MtaSts);
}

#[test]
fn dane_precedence_is_shown() {
    let fx = Fixtures::new(LISTED);
    let p = plan(
        TlsMode::Preferred,
        MtaStsSetting::Honor,
        Sts::Enforce,
        LISTED,
        Dns::SecureTlsa,
        TlsRequest::Default,
        &fx,
    );
    let json = serde_json::to_value(p.explanation()).unwrap();
    assert_eq!(json["mta_sts"]["pkix_required"], false);
    assert_eq!(json["mta_sts"]["reason"], "dane-precedence");
    assert_eq!(json["mta_sts"]["mode"], "enforce");
    assert_eq!(json["mta_sts"]["action"], "require-pkix");
    assert_eq!(json["mta_sts"]["policy_id"], "20261204T000000");
    assert_eq!(json["decided_by"], "dane");
    // DANE failure is not rescued by a PKIX-valid, STS-valid certificate: the good leaf of
    // another key under a trusted CA.
    let other = pki(None, &[LISTED, DOMAIN]);
    let anchors = TrustAnchors::from_certificates([other.ca.clone()]).unwrap();
    let v = p.verify_peer(std::slice::from_ref(&other.leaf), &anchors, UnixTime::now());
    assert!(v.pkix.is_verified());
    assert!(!v.satisfies_requirement);
    assert_eq!(v.authenticated_by, Authentication::None);
}

#[test]
fn ignored_by_destination_control() {
    let fx = Fixtures::new(UNLISTED);
    let p = plan(
        TlsMode::Preferred,
        MtaStsSetting::Ignore,
        Sts::Enforce,
        UNLISTED,
        Dns::Insecure,
        TlsRequest::Default,
        &fx,
    );
    assert!(p.may_connect());
    assert!(p.explanation().plaintext.permitted);
    let json = serde_json::to_value(p.explanation()).unwrap();
    assert_eq!(json["mta_sts"]["ignored_by"], DOMAIN);
    let rules = json["rules"].as_array().unwrap();
    assert!(rules.iter().any(|r| r["source"] == "mta-sts"
        && r["effect"] == "no-effect"
        && r["reason"] == "mta-sts ignored by destination control example.com"));
    let toml = "[default]\ntls = \"preferred\"\ndane = \"none\"\nmta_sts = \"ignore\"\n\
                [destinations.\"example.com\"]\nmta_sts = \"honor\"\n";
    let c = DestinationControls::from_toml("d.toml", toml).unwrap();
    assert_eq!(
        c.lookup("example.com").unwrap().mta_sts,
        MtaStsSetting::Honor
    );
    assert_eq!(
        c.lookup("example.org").unwrap().mta_sts,
        MtaStsSetting::Ignore
    );
    let e = DestinationControls::from_toml("d.toml", "[default]\nmta_sts = \"off\"\n").unwrap_err();
    assert!(e.to_string().starts_with("d.toml:2:"), "{e}");
}

#[test]
fn requiretls_insecure_route_is_refused() {
    let fx = Fixtures::new(LISTED);
    for local in [TlsMode::Preferred, TlsMode::RequiredVerify] {
        for sts in [Sts::NoPolicy, Sts::Testing] {
            let p = plan(
                local,
                MtaStsSetting::Honor,
                sts,
                LISTED,
                Dns::Insecure,
                TlsRequest::RequireTls,
                &fx,
            );
            assert_eq!(p.requiretls_route(), RequireTlsRoute::Insecure);
            assert!(
                matches!(
                    p.pre_connect(),
                    PreConnect::SkipHost {
                        reason: HoldReason::RequireTls(_)
                    }
                ),
                "{:?}",
                p.pre_connect()
            );
            assert!(p.attempt(Default::default()).is_none());
            let json = serde_json::to_value(p.explanation()).unwrap();
            assert_eq!(json["requiretls_route"], "insecure");
            assert_eq!(json["tls_request"], "require-tls");
            assert_eq!(json["decided_by"], "requiretls");
        }
    }
    // MTA-STS enforce listing the host makes the route secure; `ignore` takes that away.
    let p = plan(
        TlsMode::Preferred,
        MtaStsSetting::Honor,
        Sts::Enforce,
        LISTED,
        Dns::Insecure,
        TlsRequest::RequireTls,
        &fx,
    );
    assert_eq!(p.requiretls_route(), RequireTlsRoute::Secure);
    assert!(p.may_connect() && p.is_authenticated());
    let p = plan(
        TlsMode::Preferred,
        MtaStsSetting::Ignore,
        Sts::Enforce,
        LISTED,
        Dns::Insecure,
        TlsRequest::RequireTls,
        &fx,
    );
    assert!(!p.may_connect());
}

#[test]
fn tls_required_no_relaxes_to_opportunistic() {
    let fx = Fixtures::new(LISTED);
    let p = plan(
        TlsMode::RequiredVerify,
        MtaStsSetting::Honor,
        Sts::Enforce,
        LISTED,
        Dns::SecureTlsa,
        TlsRequest::TlsOptional,
        &fx,
    );
    assert!(p.may_connect());
    assert!(p.explanation().plaintext.permitted);
    let json = serde_json::to_value(p.explanation()).unwrap();
    assert_eq!(json["requirement"], "opportunistic");
    assert_eq!(json["decided_by"], "tls-required-header");
    assert_eq!(json["tls_request"], "tls-optional");
    assert_eq!(json["mta_sts"]["reason"], "tls-required-header");
    let v = p.verify_peer(&fx.chain(Cert::Untrusted), &fx.anchors, UnixTime::now());
    assert!(v.satisfies_requirement && v.sts_failure.is_none());
}

fn tls_mode() -> impl Strategy<Value = TlsMode> {
    prop_oneof![
        Just(TlsMode::No),
        Just(TlsMode::Preferred),
        Just(TlsMode::PreferredVerify),
        Just(TlsMode::Required),
        Just(TlsMode::RequiredVerify),
        Just(TlsMode::RequiredVerifyHostedDomains),
    ]
}

fn dane_setting(tls: TlsMode) -> impl Strategy<Value = ConfiguredDane> {
    if tls == TlsMode::No {
        Just(ConfiguredDane::None).boxed()
    } else {
        prop_oneof![
            Just(ConfiguredDane::None),
            Just(ConfiguredDane::Opportunistic),
            Just(ConfiguredDane::Mandatory),
        ]
        .boxed()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// STS `enforce` for a listed host never permits plaintext and never succeeds
    /// unauthenticated, whatever the local setting, DANE, certificate and request — unless the
    /// sender said `TLS-Required: No`; an unlisted host is never connected to.
    #[test]
    fn enforce_never_plaintext_nor_unauthenticated(
        (tls, dane) in tls_mode().prop_flat_map(|t| (Just(t), dane_setting(t))),
        listed in any::<bool>(),
        dns in prop_oneof![Just(Dns::Insecure), Just(Dns::SecureNoTlsa), Just(Dns::SecureTlsa)],
        cert in prop_oneof![Just(Cert::Good), Just(Cert::WrongName), Just(Cert::CnOnly), Just(Cert::Untrusted)],
        req in prop_oneof![Just(TlsRequest::Default), Just(TlsRequest::RequireTls), Just(TlsRequest::TlsOptional)],
    ) {
        let host = if listed { LISTED } else { UNLISTED };
        let fx = Fixtures::new(host);
        let policy = policy_with(tls, dane, MtaStsSetting::Honor);
        let p = HopPlan::new(&policy, &facts(host, dns, &fx.tlsa), PlanOptions::new())
            .with_mta_sts(sts_verdict(Sts::Enforce, host).unwrap())
            .with_tls_request(req);
        prop_assume!(req != TlsRequest::TlsOptional);
        if !listed {
            prop_assert!(!p.may_connect());
            prop_assert!(p.attempt(Default::default()).is_none());
        }
        if p.may_connect() {
            prop_assert!(!p.explanation().plaintext.permitted);
            prop_assert!(p.requirement().unwrap().plaintext_permit().is_none());
            prop_assert!(p.is_authenticated());
            let v = p.verify_peer(&fx.chain(cert), &fx.anchors, UnixTime::now());
            if v.satisfies_requirement {
                prop_assert_ne!(v.authenticated_by, Authentication::None);
            }
            if cert != Cert::Good {
                prop_assert!(!v.satisfies_requirement, "{cert:?} accepted");
            }
        }
    }
}

/// The plan's rustls verifier enforces STS `enforce` in a real (in-memory) handshake: a
/// CN-only certificate that local `preferred` would take is refused; the SAN certificate
/// passes; under `testing` the CN-only one passes and the failure is recorded.
#[test]
fn verifier_enforces_sts_in_a_handshake() {
    let fx = Fixtures::new(LISTED);
    let anchors = std::sync::Arc::new(
        TrustAnchors::from_certificates([fx.good.ca.clone(), fx.cn_only.ca.clone()]).unwrap(),
    );
    for (sts, cert, completes) in [
        (Sts::Enforce, Cert::Good, true),
        (Sts::Enforce, Cert::CnOnly, false),
        (Sts::Testing, Cert::CnOnly, true),
        (Sts::NoPolicy, Cert::CnOnly, true),
    ] {
        let p = plan(
            TlsMode::Preferred,
            MtaStsSetting::Honor,
            sts,
            LISTED,
            Dns::Insecure,
            TlsRequest::Default,
            &fx,
        );
        let server = if cert == Cert::Good {
            &fx.good
        } else {
            &fx.cn_only
        };
        let verifier = std::sync::Arc::new(p.verifier(anchors.clone()));
        assert_eq!(
            pki::handshake(server, verifier.clone()),
            completes,
            "{sts:?} {cert:?}"
        );
        let last = verifier.last_verdict().expect("a verdict was recorded");
        let reported = last.sts_failure.map(|f| f.kind);
        let want = (sts != Sts::NoPolicy && cert == Cert::CnOnly)
            .then_some(StsFailureKind::CertificateHostMismatch);
        assert_eq!(reported, want, "{sts:?} {cert:?}");
    }
}
