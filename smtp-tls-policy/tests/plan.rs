//! The hop plan through the public API: `verify_peer` over rcgen chains (PKIX good / untrusted /
//! name mismatch under each mode, DANE-EE and DANE-TA match and mismatch, DANE taking precedence
//! over the mode), agreement with the state machine, the plan's verifier in a real in-memory
//! handshake, the JSON of a plan field by field, and "required never becomes plaintext" as a
//! proptest over the inputs.

use std::sync::Arc;

use dane_verify::DnssecStatus::{self, Bogus, Indeterminate, Insecure, Secure};
use dane_verify::TlsaRecord;
use dane_verify::{HostFacts, LookupFailure, TlsaLookup};
use proptest::prelude::*;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use smtp_tls_policy::chain::TrustAnchors;
use smtp_tls_policy::delivery::{
    DaneOutcome, DeliveryAction, DeliveryOptions, EhloOutcome, HandshakeOutcome, PkixOutcome, Step,
};
use smtp_tls_policy::destination::{
    ConfiguredDane, DestinationControls, DestinationEntry, DestinationPolicy, TlsMode,
};
use smtp_tls_policy::plan::{Authentication, HostSource};
use smtp_tls_policy::{HopPlan, PeerVerdict, PlanOptions};

const DOMAIN: &str = "example.com";
const MX: &str = "mx.example.net";

/// A CA and leaves it issued, made by rcgen.
struct Pki {
    ca: CertificateDer<'static>,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

struct Leaf {
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

impl Pki {
    fn new(name: &str) -> Self {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let ca = params.self_signed(&key).unwrap();
        Self {
            ca: ca.der().clone(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    fn leaf(&self, name: &str) -> Leaf {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.use_authority_key_identifier_extension = true;
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert: cert.der().clone(),
            key: PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        }
    }

    fn anchors(&self) -> TrustAnchors {
        TrustAnchors::from_certificates([self.ca.clone()]).unwrap()
    }
}

fn policy(tls: TlsMode, dane: ConfiguredDane) -> DestinationPolicy {
    DestinationControls::builder()
        .default_entry(DestinationEntry::new(
            TlsMode::Preferred,
            ConfiguredDane::None,
        ))
        .unwrap()
        .entry(DOMAIN, DestinationEntry::new(tls, dane))
        .unwrap()
        .build()
        .lookup(DOMAIN)
        .unwrap()
}

fn facts(mx_status: DnssecStatus, tlsa: TlsaLookup) -> HostFacts {
    HostFacts {
        next_hop: DOMAIN.into(),
        mx_host: MX.into(),
        mx_status,
        address_status: mx_status,
        tlsa_base: MX.into(),
        tlsa,
    }
}

fn insecure() -> HostFacts {
    facts(Insecure, TlsaLookup::NotQueried)
}

fn secure_tlsa(records: Vec<TlsaRecord>) -> HostFacts {
    facts(
        Secure,
        TlsaLookup::Found {
            records,
            status: Secure,
        },
    )
}

/// `3 1 1` for the leaf and `2 1 1` for its CA.
fn tlsa(leaf: &Leaf, ca: &Pki) -> (TlsaRecord, TlsaRecord) {
    let r = dane_verify::server_tlsa_records(&leaf.cert, Some(&ca.ca)).unwrap();
    (r[0].clone(), r[1].clone())
}

/// What the state machine does with the verdict after a completed handshake.
fn machine(plan: &HopPlan, v: &PeerVerdict) -> DeliveryAction {
    let mut a = plan.attempt(DeliveryOptions::default()).unwrap();
    assert!(a.preflight().is_none());
    assert_eq!(
        a.on_ehlo(EhloOutcome::Esmtp { starttls: true }),
        Step::SendStartTls
    );
    assert_eq!(a.on_starttls_reply(220), Step::StartHandshake);
    let Step::Done(d) = a.on_handshake(v.handshake_outcome()) else {
        panic!("machine not done")
    };
    d.action
}

fn check(plan: &HopPlan, chain: &[CertificateDer<'static>], anchors: &TrustAnchors) -> PeerVerdict {
    let v = plan.verify_peer(chain, anchors, UnixTime::now());
    // The verdict's own claim agrees with the state machine that consumes it.
    assert_eq!(
        machine(plan, &v) == DeliveryAction::ContinueTls,
        v.satisfies_requirement,
        "{v:?}"
    );
    v
}

#[test]
fn pkix_under_each_verifying_mode() {
    let pki = Pki::new("Plan CA");
    let anchors = pki.anchors();
    let good = pki.leaf(MX);
    let mismatch = pki.leaf("other.example.org");
    let untrusted = Pki::new("Other CA").leaf(MX);
    for (mode, enforced) in [
        (TlsMode::PreferredVerify, false),
        (TlsMode::RequiredVerify, true),
        (TlsMode::RequiredVerifyHostedDomains, true),
    ] {
        // Hosted-domain verification trusts the MX host name only from a secure MX answer.
        let f = if mode == TlsMode::RequiredVerifyHostedDomains {
            facts(Secure, TlsaLookup::NotFound { status: Secure })
        } else {
            insecure()
        };
        let plan = HopPlan::new(&policy(mode, ConfiguredDane::None), &f, PlanOptions::new());
        let v = check(&plan, std::slice::from_ref(&good.cert), &anchors);
        assert_eq!(v.pkix, PkixOutcome::Verified, "{mode:?}");
        assert_eq!(v.authenticated_by, Authentication::Pkix);
        assert!(v.satisfies_requirement);
        assert_eq!(v.dane, None);

        let v = check(&plan, std::slice::from_ref(&untrusted.cert), &anchors);
        assert!(
            matches!(v.pkix, PkixOutcome::UntrustedChain { .. }),
            "{mode:?}: {v:?}"
        );
        assert_eq!(v.satisfies_requirement, !enforced, "{mode:?}");
        assert_eq!(v.authenticated_by, Authentication::None);

        let v = check(&plan, std::slice::from_ref(&mismatch.cert), &anchors);
        assert!(
            matches!(v.pkix, PkixOutcome::NameMismatch { .. }),
            "{mode:?}: {v:?}"
        );
        assert_eq!(v.satisfies_requirement, !enforced, "{mode:?}");
    }
}

#[test]
fn hosted_domains_refuse_an_mx_name_from_insecure_dns() {
    let pki = Pki::new("Plan CA");
    let leaf = pki.leaf(MX);
    let plan = HopPlan::new(
        &policy(TlsMode::RequiredVerifyHostedDomains, ConfiguredDane::None),
        &insecure(),
        PlanOptions::new(),
    );
    let v = check(&plan, &[leaf.cert], &pki.anchors());
    assert!(matches!(v.pkix, PkixOutcome::NameMismatch { .. }), "{v:?}");
    assert!(!v.satisfies_requirement);
}

#[test]
fn modes_that_do_not_verify_report_only() {
    let leaf = Pki::new("Other CA").leaf("whatever.example");
    for mode in [TlsMode::Preferred, TlsMode::Required] {
        let plan = HopPlan::new(
            &policy(mode, ConfiguredDane::None),
            &insecure(),
            PlanOptions::new(),
        );
        let v = check(
            &plan,
            std::slice::from_ref(&leaf.cert),
            &TrustAnchors::empty(),
        );
        // Reported (no anchors: untrusted), not enforced.
        assert!(
            matches!(v.pkix, PkixOutcome::UntrustedChain { .. }),
            "{v:?}"
        );
        assert!(v.pkix_detail.is_some());
        assert!(v.satisfies_requirement);
        assert_eq!(v.authenticated_by, Authentication::None);
    }
}

#[test]
fn dane_ee_and_dane_ta_match_and_mismatch() {
    let pki = Pki::new("DANE CA");
    let leaf = pki.leaf(MX);
    let (ee, ta) = tlsa(&leaf, &pki);
    let other = Pki::new("Unrelated CA");
    let (other_ee, other_ta) = tlsa(&other.leaf(MX), &other);
    // No PKIX anchors at all: DANE alone authenticates.
    let none = TrustAnchors::empty();
    let chain = [leaf.cert.clone(), pki.ca.clone()];
    for (name, records, verified, depth) in [
        ("DANE-EE match", vec![ee.clone()], true, 0),
        ("DANE-TA match", vec![ta.clone()], true, 1),
        ("DANE-EE mismatch", vec![other_ee], false, -1),
        ("DANE-TA mismatch", vec![other_ta], false, -1),
    ] {
        let plan = HopPlan::new(
            &policy(TlsMode::Preferred, ConfiguredDane::Opportunistic),
            &secure_tlsa(records),
            PlanOptions::new(),
        );
        let v = check(&plan, &chain, &none);
        assert_eq!(
            v.dane == Some(DaneOutcome::Verified),
            verified,
            "{name}: {v:?}"
        );
        assert_eq!(v.satisfies_requirement, verified, "{name}");
        assert_eq!(v.dane_detail.as_ref().unwrap().depth, depth, "{name}");
        assert_eq!(
            v.authenticated_by,
            if verified {
                Authentication::Dane
            } else {
                Authentication::None
            }
        );
        // PKIX reported (no anchors), not enforced.
        assert!(
            matches!(v.pkix, PkixOutcome::UntrustedChain { .. }),
            "{name}: {v:?}"
        );
    }
    // DANE-TA checks the name against the reference identities (RFC 7672 §3.2.2).
    let wrong_name = pki.leaf("elsewhere.example.org");
    let plan = HopPlan::new(
        &policy(TlsMode::Required, ConfiguredDane::Mandatory),
        &secure_tlsa(vec![ta]),
        PlanOptions::new(),
    );
    let v = check(&plan, &[wrong_name.cert, pki.ca.clone()], &none);
    assert!(matches!(v.dane, Some(DaneOutcome::Failed { .. })), "{v:?}");
    assert_eq!(
        v.dane_detail.unwrap().outcome,
        dane_verify::DaneMatchOutcome::NameMismatch
    );
}

#[test]
fn dane_takes_precedence_over_the_verify_modes() {
    // RFC 7672 §2.2: with usable TLSA records DANE authenticates; PKIX is not required (it is
    // still run and reported when the mode verifies).
    let pki = Pki::new("Private CA, in no one's trust store");
    let leaf = pki.leaf("not-the-mx-name.example.org");
    let (ee, _) = tlsa(&leaf, &pki);
    let public = Pki::new("Public CA");
    for mode in [
        TlsMode::PreferredVerify,
        TlsMode::RequiredVerify,
        TlsMode::RequiredVerifyHostedDomains,
    ] {
        let plan = HopPlan::new(
            &policy(mode, ConfiguredDane::Opportunistic),
            &secure_tlsa(vec![ee.clone()]),
            PlanOptions::new(),
        );
        assert_eq!(plan.explanation().requirement, Some("dane"));
        let v = check(&plan, std::slice::from_ref(&leaf.cert), &public.anchors());
        assert!(v.satisfies_requirement, "{mode:?}: {v:?}");
        assert_eq!(v.authenticated_by, Authentication::Dane);
        assert!(!v.pkix.is_verified(), "{mode:?}: PKIX reported as failing");
        assert!(v.pkix_detail.is_some());
    }
    // And the other way round: a PKIX-valid chain does not satisfy DANE.
    let good = public.leaf(MX);
    let plan = HopPlan::new(
        &policy(TlsMode::RequiredVerify, ConfiguredDane::Opportunistic),
        &secure_tlsa(vec![ee]),
        PlanOptions::new(),
    );
    let v = check(&plan, &[good.cert], &public.anchors());
    assert!(v.pkix.is_verified());
    assert!(!v.satisfies_requirement);
    assert_eq!(v.authenticated_by, Authentication::None);
}

#[test]
fn the_plan_verifier_in_a_handshake() {
    use rustls::client::danger::ServerCertVerifier;
    let pki = Pki::new("Plan CA");
    let good = pki.leaf(MX);
    let anchors = Arc::new(pki.anchors());
    let bad = Pki::new("Other CA").leaf(MX);
    let plan = HopPlan::new(
        &policy(TlsMode::RequiredVerify, ConfiguredDane::None),
        &insecure(),
        PlanOptions::new(),
    );
    let server_name = plan.server_name().unwrap().clone();
    // Rejecting (the default): an untrusted chain fails the handshake, the verdict is kept.
    assert!(handshake(plan.verifier(anchors.clone()), &bad, server_name.clone()).is_err());
    let v = Arc::new(plan.verifier(anchors.clone()));
    let _ = handshake_arc(v.clone(), &bad, server_name.clone());
    assert!(matches!(
        v.last_verdict().unwrap().pkix,
        PkixOutcome::UntrustedChain { .. }
    ));
    // Record and continue: the handshake completes, the machine decides (defer).
    let v = Arc::new(plan.verifier(anchors.clone()).record_and_continue());
    handshake_arc(v.clone(), &bad, server_name.clone()).unwrap();
    let verdict = v.last_verdict().unwrap();
    assert!(!verdict.satisfies_requirement);
    let mut a = plan.attempt(DeliveryOptions::default()).unwrap();
    let _ = a.on_ehlo(EhloOutcome::Esmtp { starttls: true });
    let _ = a.on_starttls_reply(220);
    let Step::Done(d) = a.on_handshake(verdict.handshake_outcome()) else {
        panic!()
    };
    assert_eq!(d.action, DeliveryAction::Defer);
    // A good chain passes.
    handshake(plan.verifier(anchors.clone()), &good, server_name.clone()).unwrap();
    // A plan without a connection rejects everything, even when recording.
    let held = HopPlan::new(
        &policy(TlsMode::Required, ConfiguredDane::Mandatory),
        &insecure(),
        PlanOptions::new(),
    );
    let v = held.verifier(anchors).record_and_continue();
    let r = v.verify_server_cert(&good.cert, &[], &server_name, &[], UnixTime::now());
    assert!(r.is_err());
}

#[test]
fn the_plan_verifier_authenticates_with_dane_in_a_handshake() {
    let pki = Pki::new("Private CA");
    let leaf = pki.leaf(MX);
    let (ee, _) = tlsa(&leaf, &pki);
    let stranger = Pki::new("Stranger CA").leaf(MX);
    let plan = HopPlan::new(
        &policy(TlsMode::RequiredVerify, ConfiguredDane::Opportunistic),
        &secure_tlsa(vec![ee]),
        PlanOptions::new(),
    );
    let name = plan.server_name().unwrap().clone();
    let none = Arc::new(TrustAnchors::empty());
    let v = Arc::new(plan.verifier(none.clone()).at_time(UnixTime::now()));
    handshake_arc(v.clone(), &leaf, name.clone()).unwrap();
    let verdict = v.last_verdict().unwrap();
    assert_eq!(verdict.authenticated_by, Authentication::Dane);
    assert_eq!(verdict.dane, Some(DaneOutcome::Verified));
    // Another key: the DANE mismatch aborts the handshake.
    let err = handshake(plan.verifier(none), &stranger, name).unwrap_err();
    assert!(
        matches!(err, rustls::Error::InvalidCertificate(_)),
        "{err:?}"
    );
}

fn handshake(
    verifier: smtp_tls_policy::plan::PlanVerifier,
    leaf: &Leaf,
    name: rustls::pki_types::ServerName<'static>,
) -> Result<(), rustls::Error> {
    handshake_arc(Arc::new(verifier), leaf, name)
}

/// An in-memory TLS handshake between a rustls client using `verifier` and a server presenting
/// `leaf`.
fn handshake_arc(
    verifier: Arc<smtp_tls_policy::plan::PlanVerifier>,
    leaf: &Leaf,
    name: rustls::pki_types::ServerName<'static>,
) -> Result<(), rustls::Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![leaf.cert.clone()], leaf.key.clone_key())?;
    let mut c = rustls::ClientConnection::new(Arc::new(client), name)?;
    let mut s = rustls::ServerConnection::new(Arc::new(server))?;
    for _ in 0..10 {
        let mut buf = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut buf).unwrap();
        }
        if !buf.is_empty() {
            s.read_tls(&mut buf.as_slice()).unwrap();
            s.process_new_packets()?;
        }
        let mut buf = Vec::new();
        while s.wants_write() {
            s.write_tls(&mut buf).unwrap();
        }
        if !buf.is_empty() {
            c.read_tls(&mut buf.as_slice()).unwrap();
            c.process_new_packets()?;
        }
        if !c.is_handshaking() && !s.is_handshaking() {
            return Ok(());
        }
    }
    Err(rustls::Error::General("handshake did not finish".into()))
}

#[test]
fn the_json_of_a_plan_field_by_field() {
    let pki = Pki::new("DANE CA");
    let leaf = pki.leaf(MX);
    let (ee, _) = tlsa(&leaf, &pki);
    let mut f = secure_tlsa(vec![ee.clone()]);
    f.tlsa_base = "mx.cdn.example".into();
    let plan = HopPlan::new(
        &policy(TlsMode::RequiredVerify, ConfiguredDane::Opportunistic),
        &f,
        PlanOptions::new(),
    );
    let j = serde_json::to_value(&plan).unwrap();
    assert_eq!(j["domain"], "example.com");
    assert_eq!(j["host"], MX);
    assert_eq!(j["host_source"], "mx");
    assert_eq!(j["pre_connect"]["action"], "connect");
    assert_eq!(j["pre_connect"]["reason"], serde_json::Value::Null);
    assert_eq!(j["requirement"], "dane");
    assert_eq!(j["authentication"], "dane");
    assert_eq!(j["sni"], "mx.cdn.example");
    assert_eq!(j["destination"]["matched"], "exact");
    assert_eq!(j["destination"]["entry"], "example.com");
    assert_eq!(j["destination"]["tls_mode"], "required-verify");
    assert_eq!(j["destination"]["dane"], "opportunistic");
    assert_eq!(j["dnssec"]["mx"], "secure");
    assert_eq!(j["dnssec"]["address"], "secure");
    assert_eq!(j["dnssec"]["tlsa"], "secure");
    assert_eq!(j["dnssec"]["tlsa_lookup"], "found");
    assert_eq!(j["dnssec"]["tlsa_base"], "mx.cdn.example");
    assert_eq!(j["dane"]["action"], "dane");
    assert_eq!(j["dane"]["reason"], serde_json::Value::Null);
    assert_eq!(j["dane"]["records"][0], ee.to_string());
    assert_eq!(j["reference_ids"]["pkix_algorithm"], "verify");
    assert_eq!(
        j["reference_ids"]["pkix"],
        serde_json::json!(["example.com", MX])
    );
    assert_eq!(
        j["reference_ids"]["dane"],
        serde_json::json!(["mx.cdn.example", MX, "example.com"])
    );
    assert_eq!(j["plaintext"]["permitted"], false);
    assert_eq!(j["plaintext"]["reason"], "dane");
    assert_eq!(j["decided_by"], "dane");
    assert_eq!(j["rules"][0]["source"], "destination-control");
    assert_eq!(j["rules"][0]["effect"], "sets-tls-mode");
    assert_eq!(j["rules"][1]["source"], "dane");
    assert_eq!(j["rules"][1]["effect"], "authenticates");
    assert!(
        j["rules"][1]["reason"]
            .as_str()
            .unwrap()
            .contains("RFC 7672")
    );

    // A held plan: the default entry, an insecure MX under mandatory DANE.
    let p = DestinationControls::builder()
        .default_entry(DestinationEntry::new(
            TlsMode::Required,
            ConfiguredDane::Mandatory,
        ))
        .unwrap()
        .build()
        .lookup(DOMAIN)
        .unwrap();
    let j = serde_json::to_value(HopPlan::new(&p, &insecure(), PlanOptions::new())).unwrap();
    assert_eq!(j["pre_connect"]["action"], "defer");
    assert_eq!(j["pre_connect"]["reason"], "dane-required");
    assert!(
        j["pre_connect"]["detail"]
            .as_str()
            .unwrap()
            .contains("not DANE-protected")
    );
    assert_eq!(j["requirement"], serde_json::Value::Null);
    assert_eq!(j["sni"], serde_json::Value::Null);
    assert_eq!(j["destination"]["matched"], "default");
    assert_eq!(j["destination"]["entry"], serde_json::Value::Null);
    assert_eq!(j["dnssec"]["mx"], "insecure");
    assert_eq!(j["dnssec"]["tlsa"], "not-queried");
    assert_eq!(j["dane"]["action"], "defer");
    assert_eq!(j["plaintext"]["permitted"], false);
    assert_eq!(j["plaintext"]["reason"], "no-connection");
    assert_eq!(j["decided_by"], "dane");
    assert_eq!(j["rules"][0]["source"], "default");
    assert_eq!(j["rules"][1]["effect"], "defers");

    // The verdict's JSON.
    let v = plan.verify_peer(
        std::slice::from_ref(&leaf.cert),
        &pki.anchors(),
        UnixTime::now(),
    );
    let j = serde_json::to_value(&v).unwrap();
    assert_eq!(j["authenticated_by"], "dane");
    assert_eq!(j["satisfies_requirement"], true);
    assert_eq!(j["dane"]["outcome"], "verified");
    assert_eq!(j["dane"]["depth"], 0);
    assert_eq!(j["dane"]["matched"], ee.to_string());
    assert_eq!(j["pkix"]["outcome"], "verified");
    assert_eq!(j["pkix"]["matched"], format!("{MX} = DNS:{MX}"));
    assert_eq!(
        j["pkix"]["reference_ids"],
        serde_json::json!(["example.com", MX])
    );
}

#[test]
fn implicit_mx_and_route_in_the_json() {
    let mut f = insecure();
    f.mx_host = DOMAIN.into();
    f.tlsa_base = DOMAIN.into();
    let plan = HopPlan::new(
        &policy(TlsMode::Preferred, ConfiguredDane::None),
        &f,
        PlanOptions::new().with_host_source(HostSource::ImplicitMx),
    );
    let j = serde_json::to_value(&plan).unwrap();
    assert_eq!(j["host_source"], "implicit-mx");
    assert_eq!(j["plaintext"]["permitted"], true);
    assert_eq!(j["plaintext"]["reason"], "tls-preferred");
    assert_eq!(j["dane"]["reason"], "setting-none");
    assert_eq!(j["rules"][1]["effect"], "no-effect");
}

fn status() -> impl Strategy<Value = DnssecStatus> {
    prop_oneof![
        Just(Secure),
        Just(Insecure),
        Just(Bogus),
        Just(Indeterminate)
    ]
}

fn lookup() -> impl Strategy<Value = TlsaLookup> {
    let usable: TlsaRecord =
        "3 1 1 0000000000000000000000000000000000000000000000000000000000000000"
            .parse()
            .unwrap();
    let unusable: TlsaRecord =
        "1 0 1 0000000000000000000000000000000000000000000000000000000000000000"
            .parse()
            .unwrap();
    prop_oneof![
        Just(TlsaLookup::NotQueried),
        (status(), any::<bool>(), any::<bool>()).prop_map(move |(status, u, n)| {
            let mut records = Vec::new();
            if u {
                records.push(usable.clone());
            }
            if n {
                records.push(unusable.clone());
            }
            TlsaLookup::Found { records, status }
        }),
        status().prop_map(|status| TlsaLookup::NotFound { status }),
        Just(TlsaLookup::Failed(LookupFailure::ServFail)),
        Just(TlsaLookup::Failed(LookupFailure::Timeout)),
    ]
}

fn mode() -> impl Strategy<Value = TlsMode> {
    prop_oneof![
        Just(TlsMode::No),
        Just(TlsMode::Preferred),
        Just(TlsMode::Required),
        Just(TlsMode::PreferredVerify),
        Just(TlsMode::RequiredVerify),
        Just(TlsMode::RequiredVerifyHostedDomains),
    ]
}

fn dane() -> impl Strategy<Value = ConfiguredDane> {
    prop_oneof![
        Just(ConfiguredDane::None),
        Just(ConfiguredDane::Opportunistic),
        Just(ConfiguredDane::Mandatory),
    ]
}

fn source() -> impl Strategy<Value = HostSource> {
    prop_oneof![
        Just(HostSource::Mx),
        Just(HostSource::ImplicitMx),
        Just(HostSource::Route),
    ]
}

/// Peer behaviour after the plan: EHLO (no ESMTP / no STARTTLS / STARTTLS), the STARTTLS
/// reply, the handshake (failed / established with any PKIX and DANE result).
#[derive(Debug, Clone)]
struct Peer {
    ehlo: u8,
    starttls_reply: u16,
    handshake_ok: bool,
    pkix_ok: bool,
    dane_ok: Option<bool>,
}

fn peer() -> impl Strategy<Value = Peer> {
    (
        0u8..3,
        prop_oneof![Just(220u16), Just(454), Just(501), Just(554)],
        any::<bool>(),
        any::<bool>(),
        proptest::option::of(any::<bool>()),
    )
        .prop_map(
            |(ehlo, starttls_reply, handshake_ok, pkix_ok, dane_ok)| Peer {
                ehlo,
                starttls_reply,
                handshake_ok,
                pkix_ok,
                dane_ok,
            },
        )
}

/// Runs the plan's attempt against the peer; the final action.
fn run(plan: &HopPlan, p: &Peer) -> Option<DeliveryAction> {
    let mut a = plan.attempt(DeliveryOptions::default())?;
    if let Some(d) = a.preflight() {
        return Some(d.action);
    }
    let ehlo = match p.ehlo {
        0 => EhloOutcome::NoEsmtp,
        1 => EhloOutcome::Esmtp { starttls: false },
        _ => EhloOutcome::Esmtp { starttls: true },
    };
    let step = match a.on_ehlo(ehlo) {
        Step::SendStartTls => a.on_starttls_reply(p.starttls_reply),
        s => s,
    };
    let step = match step {
        Step::StartHandshake if p.handshake_ok => {
            let mut v = PeerVerdict::default();
            v.pkix = if p.pkix_ok {
                PkixOutcome::Verified
            } else {
                PkixOutcome::UntrustedChain { detail: "x".into() }
            };
            v.dane = p.dane_ok.map(|ok| {
                if ok {
                    DaneOutcome::Verified
                } else {
                    DaneOutcome::Failed { reason: "x".into() }
                }
            });
            a.on_handshake(v.handshake_outcome())
        }
        Step::StartHandshake => a.on_handshake(HandshakeOutcome::Failed { detail: "x".into() }),
        s => s,
    };
    match step {
        Step::Done(d) => Some(d.action),
        _ => None,
    }
}

proptest! {
    /// "Required never becomes plaintext": for every plan, whatever the DNS facts, options and
    /// peer, a required mode or usable/unusable secure TLSA records (with DANE on) never give a
    /// plaintext action, and the explanation never says plaintext is permitted.
    #[test]
    fn required_never_becomes_plaintext(
        tls in mode(),
        dane in dane(),
        mx in status(),
        address in status(),
        tlsa in lookup(),
        source in source(),
        peer in peer(),
    ) {
        let dane = if tls == TlsMode::No { ConfiguredDane::None } else { dane };
        let p = policy(tls, dane);
        let mut f = facts(mx, tlsa);
        f.address_status = address;
        if source == HostSource::ImplicitMx {
            f.mx_host = DOMAIN.into();
        }
        let plan = HopPlan::new(&p, &f, PlanOptions::new().with_host_source(source));
        let e = plan.explanation();
        let dane_tls = dane != ConfiguredDane::None
            && matches!(
                plan.dane_action(),
                dane_verify::DaneAction::UseDane { .. }
                    | dane_verify::DaneAction::TlsMandatoryUnauthenticated
            );
        let forbidden = p.tls.is_required() || dane_tls || !plan.may_connect();
        if forbidden {
            prop_assert!(!e.plaintext.permitted);
        }
        if let Some(action) = run(&plan, &peer) {
            if !e.plaintext.permitted {
                prop_assert!(!action.is_plaintext(), "{:?} -> {:?}", e, action);
            }
        } else {
            prop_assert!(!plan.may_connect());
        }
    }
}

proptest! {
    /// Arbitrary bytes as the presented chain: no panic, and never accepted where the plan
    /// authenticates (PKIX under `required-verify`, DANE).
    #[test]
    fn garbage_chains_are_never_authenticated(
        certs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..4),
        dane_on in any::<bool>(),
    ) {
        let usable: TlsaRecord =
            "3 1 0 3059301306072a8648ce3d020106082a8648ce3d030107034200".parse().unwrap();
        let (setting, f) = if dane_on {
            (ConfiguredDane::Opportunistic, secure_tlsa(vec![usable]))
        } else {
            (ConfiguredDane::None, insecure())
        };
        let plan = HopPlan::new(&policy(TlsMode::RequiredVerify, setting), &f, PlanOptions::new());
        let want = if dane_on { "dane" } else { "verified" };
        prop_assert_eq!(plan.explanation().requirement, Some(want));
        let chain: Vec<CertificateDer<'static>> =
            certs.into_iter().map(CertificateDer::from).collect();
        let v = plan.verify_peer(&chain, &TrustAnchors::mozilla(), UnixTime::now());
        prop_assert!(!v.satisfies_requirement);
        prop_assert_eq!(v.authenticated_by, Authentication::None);
    }
}
