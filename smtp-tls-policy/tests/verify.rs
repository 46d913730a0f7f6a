//! Whole verification (chain + identity) and the rustls delivery verifier (the hop plan's
//! `PlanVerifier`), over a CA and leaves made by rcgen in the test, with in-memory TLS
//! handshakes.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use smtp_tls_policy::chain::{CertPosition, TrustAnchors, Violation};
use smtp_tls_policy::destination::DestinationControls;
use smtp_tls_policy::identity::{DeliveryTarget, IdentityAlgorithm, MxSecurity};
use smtp_tls_policy::plan::{HopPlan, HostSource, PlanOptions, PlanVerifier, facts_without_dnssec};
use smtp_tls_policy::{Error, VerificationPolicy, verify_server_certificate};

struct Pki {
    ca: CertificateDer<'static>,
    leaf: CertificateDer<'static>,
    leaf_key: PrivateKeyDer<'static>,
}

fn pki(cn: Option<&str>, sans: &[&str]) -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Test CA");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    if let Some(cn) = cn {
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
    }
    params.use_authority_key_identifier_extension = true;
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let leaf = params.signed_by(&leaf_key, &issuer).unwrap();
    Pki {
        ca: ca_cert.der().clone(),
        leaf: leaf.der().clone(),
        leaf_key: PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap(),
    }
}

fn anchors(p: &Pki) -> TrustAnchors {
    TrustAnchors::from_certificates([p.ca.clone()]).unwrap()
}

/// The rejecting delivery verifier of the hop plan for `domain` under TLS `mode` (DANE none):
/// host `mx` from an MX answer (`secure`: DNSSEC-secure), or the domain itself (implicit MX).
fn plan_verifier(
    mode: &str,
    domain: &str,
    mx: Option<&str>,
    security: MxSecurity,
    anchors: Arc<TrustAnchors>,
) -> Arc<PlanVerifier> {
    let toml = format!("[default]\ntls = \"{mode}\"\ndane = \"none\"\n");
    let controls = DestinationControls::from_toml("test.toml", &toml).unwrap();
    let policy = controls.lookup(domain).unwrap();
    let (host, source) = match mx {
        Some(mx) => (mx, HostSource::Mx),
        None => (domain, HostSource::ImplicitMx),
    };
    let mut facts = facts_without_dnssec(domain, host);
    if security == MxSecurity::Secure {
        facts.mx_status = dane_verify::DnssecStatus::Secure;
    }
    let plan = HopPlan::new(&policy, &facts, PlanOptions::new().with_host_source(source));
    assert!(plan.may_connect(), "{:?}", plan.pre_connect());
    Arc::new(plan.verifier(anchors))
}

/// The PKIX verdict the verifier recorded for the last handshake.
fn last_pkix(v: &PlanVerifier) -> smtp_tls_policy::Verdict {
    v.last_verdict()
        .and_then(|v| v.pkix_detail)
        .expect("a verdict was recorded")
}

fn target(domain: &str, mx: &[&str], security: MxSecurity) -> DeliveryTarget {
    mx.iter()
        .fold(DeliveryTarget::builder(domain), |b, m| b.with_mx_host(*m))
        .with_mx_security(security)
        .build()
        .unwrap()
}

#[test]
fn verify_and_hosted_verify_over_a_real_chain() {
    let p = pki(Some("mx1.example.net"), &["mx1.example.net"]);
    let t = target("example.com", &["mx1.example.net"], MxSecurity::Insecure);
    let now = UnixTime::now();
    let chain = [p.leaf.clone()];
    let v = verify_server_certificate(
        &VerificationPolicy::new(IdentityAlgorithm::Verify),
        &t,
        &chain,
        &anchors(&p),
        now,
    );
    assert!(v.is_verified(), "{v:?}");
    let m = v.matched.unwrap();
    assert_eq!(m.reference.to_string(), "mx1.example.net");
    // Verify lists the CN before the SAN entries.
    assert_eq!(m.presented.to_string(), "CN:mx1.example.net");
    assert_eq!(v.reference_ids.len(), 2);

    // Hosted-domain verification does not trust the unsigned MX answer...
    let hosted = VerificationPolicy::new(IdentityAlgorithm::HostedVerify);
    let v = verify_server_certificate(&hosted, &t, &chain, &anchors(&p), now);
    assert!(matches!(v.error, Some(Error::NameMismatch { .. })), "{v:?}");
    // ...but does a DNSSEC-secure one.
    let secure = target("example.com", &["mx1.example.net"], MxSecurity::Secure);
    assert!(verify_server_certificate(&hosted, &secure, &chain, &anchors(&p), now).is_verified());
}

#[test]
fn untrusted_or_expired_chains_fail_with_typed_errors() {
    let p = pki(None, &["mx.example.com"]);
    let t = target("mx.example.com", &[], MxSecurity::Insecure);
    let policy = VerificationPolicy::new(IdentityAlgorithm::Verify);
    let chain = [p.leaf.clone()];
    let v = verify_server_certificate(&policy, &t, &chain, &TrustAnchors::empty(), UnixTime::now());
    assert_eq!(v.error, Some(Error::NoTrustAnchors));
    assert!(
        v.matched.is_some(),
        "the identity is reported even when the chain fails"
    );
    let other = pki(None, &["mx.example.com"]);
    let v = verify_server_certificate(&policy, &t, &chain, &anchors(&other), UnixTime::now());
    // Same issuer name, different key: the signature does not verify.
    assert!(matches!(
        v.error,
        Some(Error::Chain(
            webpki::Error::UnknownIssuer | webpki::Error::InvalidSignatureForPublicKey
        ))
    ));
    // rcgen certificates are valid from 1975 to 4096: 1970 is before notBefore.
    let v = verify_server_certificate(
        &policy,
        &t,
        &chain,
        &anchors(&p),
        UnixTime::since_unix_epoch(std::time::Duration::ZERO),
    );
    assert!(
        matches!(
            v.error,
            Some(Error::Chain(webpki::Error::CertNotValidYet { .. }))
        ),
        "{v:?}"
    );
    let v = verify_server_certificate(&policy, &t, &[], &anchors(&p), UnixTime::now());
    assert_eq!(v.error, Some(Error::EmptyChain));
    let v = verify_server_certificate(
        &policy,
        &t,
        &[CertificateDer::from(vec![0x30, 0x03, 1, 2, 3])],
        &anchors(&p),
        UnixTime::now(),
    );
    assert!(
        matches!(v.error, Some(Error::MalformedCertificate { .. })),
        "{v:?}"
    );
}

/// Runs an in-memory TLS handshake against a rustls server holding `p`'s leaf; returns whether
/// it completed.
fn handshake(p: &Pki, verifier: Arc<PlanVerifier>) -> bool {
    handshake_with(vec![p.leaf.clone()], p.leaf_key.clone_key(), verifier)
}

/// [`handshake`] with a server sending `chain` (leaf first) and holding `key`.
fn handshake_with(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    verifier: Arc<PlanVerifier>,
) -> bool {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let server_config = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let client_config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    let name = ServerName::try_from("mx.example.com").unwrap();
    let mut client = rustls::ClientConnection::new(Arc::new(client_config), name).unwrap();
    let mut server = rustls::ServerConnection::new(Arc::new(server_config)).unwrap();
    for _ in 0..20 {
        let mut buf = Vec::new();
        client.write_tls(&mut buf).unwrap();
        server.read_tls(&mut buf.as_slice()).unwrap();
        if server.process_new_packets().is_err() {
            return false;
        }
        let mut buf = Vec::new();
        server.write_tls(&mut buf).unwrap();
        client.read_tls(&mut buf.as_slice()).unwrap();
        if client.process_new_packets().is_err() {
            return false;
        }
        if !client.is_handshaking() && !server.is_handshaking() {
            return true;
        }
    }
    false
}

#[test]
fn rustls_verifiers_reject_or_record() {
    let p = pki(None, &["mx.other.example"]);
    let anchors = Arc::new(anchors(&p));
    let mx = Some("mx.example.com");
    // Required (Verify): the name does not match, the handshake is aborted.
    let required = plan_verifier(
        "required-verify",
        "example.com",
        mx,
        MxSecurity::Insecure,
        anchors.clone(),
    );
    assert!(!handshake(&p, required.clone()));
    let verdict = last_pkix(&required);
    assert!(matches!(verdict.error, Some(Error::NameMismatch { .. })));
    // Preferred (Verify): the same failure is recorded and TLS goes on.
    let preferred = plan_verifier(
        "preferred-verify",
        "example.com",
        mx,
        MxSecurity::Insecure,
        anchors.clone(),
    );
    assert!(handshake(&p, preferred.clone()));
    assert!(!last_pkix(&preferred).is_verified());
    // A matching target verifies in the rejecting mode too.
    let hosted = plan_verifier(
        "required-verify-hosted-domains",
        "other.example",
        Some("mx.other.example"),
        MxSecurity::Secure,
        anchors,
    );
    assert!(handshake(&p, hosted.clone()));
    assert!(last_pkix(&hosted).is_verified());
}

// --- RFC 5280 §4.2.1.10 dNSName constraints applied to a CN used as a DNS identity (issue 11,
// finding 1). rustls-webpki applies name constraints to SANs only; OpenSSL also applies them to
// the CN ("permitted subtree violation").

/// Where the nameConstraints extension sits.
#[derive(Clone, Copy)]
enum ConstrainedCa {
    /// On the intermediate between the root (anchor) and the leaf.
    Intermediate,
    /// On the root itself (the trust anchor).
    Anchor,
}

/// A root, optionally an intermediate, and a leaf; PEMs kept for the `openssl` comparison.
struct ConstrainedPki {
    root_pem: String,
    intermediate_pem: Option<String>,
    leaf_pem: String,
    leaf_key: PrivateKeyDer<'static>,
    anchors: TrustAnchors,
    chain: Vec<CertificateDer<'static>>,
}

fn ca_params(cn: &str, constraints: Option<rcgen::NameConstraints>) -> rcgen::CertificateParams {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    params.use_authority_key_identifier_extension = true;
    params.name_constraints = constraints;
    params
}

/// A chain whose `on` CA carries dNSName constraints `permitted` / `excluded`, with a leaf of
/// subject CN `cn` and SAN dNSNames `sans`.
fn constrained_pki(
    on: ConstrainedCa,
    permitted: &[&str],
    excluded: &[&str],
    cn: Option<&str>,
    sans: &[&str],
) -> ConstrainedPki {
    let subtrees = |names: &[&str]| {
        names
            .iter()
            .map(|n| rcgen::GeneralSubtree::DnsName((*n).to_owned()))
            .collect()
    };
    let constraints = rcgen::NameConstraints {
        permitted_subtrees: subtrees(permitted),
        excluded_subtrees: subtrees(excluded),
    };
    let (root_nc, intermediate_nc) = match on {
        ConstrainedCa::Anchor => (Some(constraints), None),
        ConstrainedCa::Intermediate => (None, Some(constraints)),
    };
    let root_key = rcgen::KeyPair::generate().unwrap();
    let root_params = ca_params("Test Root", root_nc);
    let root = root_params.self_signed(&root_key).unwrap();
    let root_issuer = rcgen::Issuer::new(root_params, root_key);
    let (issuer, intermediate) = match intermediate_nc {
        Some(nc) => {
            let key = rcgen::KeyPair::generate().unwrap();
            let params = ca_params("Constrained Intermediate", Some(nc));
            let cert = params.signed_by(&key, &root_issuer).unwrap();
            (rcgen::Issuer::new(params, key), Some(cert))
        }
        None => (root_issuer, None),
    };
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    if let Some(cn) = cn {
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
    }
    params.use_authority_key_identifier_extension = true;
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let leaf = params.signed_by(&leaf_key, &issuer).unwrap();
    let mut chain = vec![leaf.der().clone()];
    chain.extend(intermediate.iter().map(|c| c.der().clone()));
    ConstrainedPki {
        root_pem: root.pem(),
        intermediate_pem: intermediate.as_ref().map(rcgen::Certificate::pem),
        leaf_pem: leaf.pem(),
        leaf_key: PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap(),
        anchors: TrustAnchors::from_certificates([root.der().clone()]).unwrap(),
        chain,
    }
}

fn verify_constrained(
    p: &ConstrainedPki,
    algorithm: IdentityAlgorithm,
    domain: &str,
) -> smtp_tls_policy::Verdict {
    let policy = VerificationPolicy::new(algorithm);
    let t = target(domain, &[], MxSecurity::Insecure);
    verify_server_certificate(&policy, &t, &p.chain, &p.anchors, UnixTime::now())
}

/// The verdict refuses the chain because the CN is outside the constraints.
fn assert_cn_constraint_refused(v: &smtp_tls_policy::Verdict) {
    assert!(!v.is_verified(), "{v:?}");
    let error = v.error.as_ref().expect("an error");
    assert!(
        error.to_string().contains("nameConstraints"),
        "{error} ({error:?})"
    );
    assert!(
        matches!(error, Error::CommonNameOutsideNameConstraints { .. }),
        "{error:?}"
    );
    assert_eq!(error.kind(), "chain");
}

#[test]
fn cn_outside_permitted_subtree_is_refused() {
    for on in [ConstrainedCa::Intermediate, ConstrainedCa::Anchor] {
        let p = constrained_pki(
            on,
            &["allowed.example"],
            &[],
            Some("mx.victim.example"),
            &[],
        );
        // Both algorithms that use the CN as a DNS-ID refuse it.
        for algorithm in [IdentityAlgorithm::Verify, IdentityAlgorithm::HostedVerify] {
            assert_cn_constraint_refused(&verify_constrained(&p, algorithm, "mx.victim.example"));
        }
    }
    let p = constrained_pki(
        ConstrainedCa::Intermediate,
        &["allowed.example"],
        &[],
        Some("mx.victim.example"),
        &[],
    );
    let v = verify_constrained(&p, IdentityAlgorithm::Verify, "mx.victim.example");
    assert_eq!(
        v.error.unwrap().to_string(),
        "subject CN \"mx.victim.example\", used as a DNS identity, lies outside the permitted \
         dNSName subtrees [\"allowed.example\"] of the intermediate #1 certificate (RFC 5280 \
         4.2.1.10 nameConstraints)"
    );
    let p = constrained_pki(
        ConstrainedCa::Intermediate,
        &["allowed.example"],
        &[],
        Some("mx.victim.example"),
        &[],
    );
    let v = verify_constrained(&p, IdentityAlgorithm::Verify, "mx.victim.example");
    assert_eq!(
        v.error.unwrap().to_string(),
        "subject CN \"mx.victim.example\", used as a DNS identity, lies outside the permitted \
         dNSName subtrees [\"allowed.example\"] of the intermediate #1 certificate (RFC 5280 \
         4.2.1.10 nameConstraints)"
    );
}

/// The rustls verifier (what the relay uses) refuses the handshake in a Required mode.
#[test]
fn rustls_verifier_refuses_a_cn_outside_the_name_constraints() {
    for (cn, completes) in [("mx.victim.example", false), ("mx.allowed.example", true)] {
        let p = constrained_pki(
            ConstrainedCa::Intermediate,
            &["allowed.example"],
            &[],
            Some(cn),
            &[],
        );
        let verifier = plan_verifier(
            "required-verify",
            cn,
            None,
            MxSecurity::Insecure,
            Arc::new(p.anchors.clone()),
        );
        let done = handshake_with(p.chain.clone(), p.leaf_key.clone_key(), verifier.clone());
        assert_eq!(done, completes, "{cn}");
        let verdict = last_pkix(&verifier);
        assert_eq!(verdict.is_verified(), completes, "{cn}: {verdict:?}");
        if !completes {
            assert_cn_constraint_refused(&verdict);
        }
    }
}

#[test]
fn permitted_san_with_unpermitted_cn_is_refused_where_the_cn_counts() {
    let p = constrained_pki(
        ConstrainedCa::Intermediate,
        &["allowed.example"],
        &[],
        Some("mx.victim.example"),
        &["mx.allowed.example"],
    );
    // Verify uses the CN as a DNS-ID: the mis-issued CN refuses the chain, whatever name is
    // asked for (as OpenSSL refuses it when it considers the CN).
    for domain in ["mx.victim.example", "mx.allowed.example"] {
        assert_cn_constraint_refused(&verify_constrained(&p, IdentityAlgorithm::Verify, domain));
    }
    // Hosted-domain verification ignores the CN when a SAN dNSName exists (RFC 6125 §6.4.4):
    // the permitted SAN verifies, the CN never matches.
    let v = verify_constrained(&p, IdentityAlgorithm::HostedVerify, "mx.allowed.example");
    assert!(v.is_verified(), "{v:?}");
    let v = verify_constrained(&p, IdentityAlgorithm::HostedVerify, "mx.victim.example");
    assert!(matches!(v.error, Some(Error::NameMismatch { .. })), "{v:?}");
}

#[test]
fn cn_inside_permitted_subtree_is_accepted() {
    for on in [ConstrainedCa::Intermediate, ConstrainedCa::Anchor] {
        for cn in [
            "mx.allowed.example",
            "allowed.example",
            "MX.Allowed.Example",
            "*.allowed.example",
        ] {
            let p = constrained_pki(on, &["allowed.example"], &[], Some(cn), &[]);
            let domain = cn.replace('*', "mx").to_ascii_lowercase();
            for algorithm in [IdentityAlgorithm::Verify, IdentityAlgorithm::HostedVerify] {
                let v = verify_constrained(&p, algorithm, &domain);
                assert!(v.is_verified(), "{cn} {algorithm:?}: {v:?}");
            }
        }
    }
    // A CN that is no DNS name at all cannot be a DNS-ID: not constrained, matches nothing.
    let p = constrained_pki(
        ConstrainedCa::Intermediate,
        &["allowed.example"],
        &[],
        Some("Example Mail Server"),
        &["mx.allowed.example"],
    );
    assert!(verify_constrained(&p, IdentityAlgorithm::Verify, "mx.allowed.example").is_verified());
}

#[test]
fn cn_in_excluded_subtree_is_refused() {
    for on in [ConstrainedCa::Intermediate, ConstrainedCa::Anchor] {
        for cn in ["mx.victim.example", "victim.example", "*.victim.example"] {
            let p = constrained_pki(on, &[], &["victim.example"], Some(cn), &[]);
            let domain = cn.replace('*', "mx");
            assert_cn_constraint_refused(&verify_constrained(
                &p,
                IdentityAlgorithm::Verify,
                &domain,
            ));
        }
        // A wildcard one of whose expansions is excluded is refused, whatever name is asked.
        let p = constrained_pki(
            on,
            &[],
            &["mx.victim.example"],
            Some("*.victim.example"),
            &[],
        );
        assert_cn_constraint_refused(&verify_constrained(
            &p,
            IdentityAlgorithm::Verify,
            "www.victim.example",
        ));
        // Outside the excluded subtree: fine.
        let p = constrained_pki(on, &[], &["victim.example"], Some("mx.other.example"), &[]);
        let v = verify_constrained(&p, IdentityAlgorithm::Verify, "mx.other.example");
        assert!(v.is_verified(), "{v:?}");
    }
}

#[test]
fn wildcard_cn_reaching_outside_the_permitted_subtree_is_refused() {
    let p = constrained_pki(
        ConstrainedCa::Intermediate,
        &["mx.allowed.example"],
        &[],
        Some("*.allowed.example"),
        &[],
    );
    assert_cn_constraint_refused(&verify_constrained(
        &p,
        IdentityAlgorithm::Verify,
        "mx.allowed.example",
    ));
}

/// OpenSSL on the same chain: `openssl verify -verify_hostname` refuses a CN-only leaf outside
/// the intermediate's permitted subtree and accepts one inside (skipped when `openssl` is
/// absent).
#[test]
fn openssl_agrees_on_cn_name_constraints() {
    let Ok(version) = std::process::Command::new("openssl")
        .arg("version")
        .output()
    else {
        eprintln!("openssl not installed: comparison skipped");
        return;
    };
    assert!(version.status.success());
    let dir = tempfile::tempdir().unwrap();
    let cases = [("mx.victim.example", false), ("mx.allowed.example", true)];
    for (cn, expected) in cases {
        let p = constrained_pki(
            ConstrainedCa::Intermediate,
            &["allowed.example"],
            &[],
            Some(cn),
            &[],
        );
        let path = |name: &str, pem: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, pem).unwrap();
            path
        };
        let root = path("root.pem", &p.root_pem);
        let intermediate = path("intermediate.pem", p.intermediate_pem.as_deref().unwrap());
        let leaf = path("leaf.pem", &p.leaf_pem);
        let out = std::process::Command::new("openssl")
            .arg("verify")
            .arg("-CAfile")
            .arg(&root)
            .arg("-untrusted")
            .arg(&intermediate)
            .args(["-verify_hostname", cn])
            .arg(&leaf)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.success(), expected, "openssl on CN={cn}: {text}");
        if !expected {
            assert!(text.contains("permitted subtree violation"), "{text}");
        }
        let ours = verify_constrained(&p, IdentityAlgorithm::Verify, cn);
        assert_eq!(ours.is_verified(), expected, "ours on CN={cn}: {ours:?}");
    }
}

/// Issue 11, finding 8: a dNSName constraint written with a leading period (`.allowed.example`)
/// is refused by the RFC 5280 profile (RFC 5280 §4.2.1.10: a host name), and the verdict names
/// that cause — not "non-CA certificate, or no subtrees".
#[test]
fn leading_period_dns_constraint_reports_its_own_cause() {
    for on in [ConstrainedCa::Intermediate, ConstrainedCa::Anchor] {
        let p = constrained_pki(
            on,
            &[".allowed.example"],
            &[],
            Some("mx.allowed.example"),
            &["mx.allowed.example"],
        );
        let v = verify_constrained(&p, IdentityAlgorithm::HostedVerify, "mx.allowed.example");
        assert!(!v.is_verified(), "{v:?}");
        let text = v
            .error
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        assert!(
            text.contains("\".allowed.example\"") && text.contains("leading period"),
            "{text}"
        );
        assert!(!text.contains("non-CA"), "{text}");
        assert!(
            matches!(
                &v.error,
                Some(Error::Structure {
                    violation: Violation::DnsConstraintNotHostName { constraint },
                    ..
                }) if constraint == ".allowed.example"
            ),
            "{v:?}"
        );
    }
}

/// With rustls-webpki alone, a leading-period dNSName constraint means "proper subdomains only"
/// (as in NSS and rustls-webpki); the CN used as a DNS-ID gets the same reading.
#[test]
fn leading_period_dns_constraint_on_the_cn_under_webpki_only() {
    let policy = |algorithm| {
        VerificationPolicy::new(algorithm)
            .with_profile(smtp_tls_policy::chain::ChainProfile::WebpkiOnly)
    };
    for (cn, verified) in [
        ("mx.allowed.example", true),
        ("allowed.example", false),
        ("mx.victim.example", false),
        ("xallowed.example", false),
    ] {
        let p = constrained_pki(
            ConstrainedCa::Intermediate,
            &[".allowed.example"],
            &[],
            Some(cn),
            &[],
        );
        let t = target(cn, &[], MxSecurity::Insecure);
        let v = verify_server_certificate(
            &policy(IdentityAlgorithm::Verify),
            &t,
            &p.chain,
            &p.anchors,
            UnixTime::now(),
        );
        assert_eq!(v.is_verified(), verified, "{cn}: {v:?}");
        if !verified {
            assert_cn_constraint_refused(&v);
        }
    }
}

/// A CA and one leaf made by the `openssl` tool (`None` when it is not installed): `extra` are
/// `openssl x509 -req` options (e.g. `-sha1`), `v3` whether the leaf gets extensions (without
/// them `openssl x509 -req` writes an X.509 version 1 certificate).
fn openssl_leaf(
    dir: &std::path::Path,
    extra: &[&str],
    v3: bool,
) -> Option<Vec<CertificateDer<'static>>> {
    use rustls::pki_types::pem::PemObject;
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .ok()?;
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(())
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "3650",
        "-subj",
        "/CN=Test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        "-addext",
        "subjectKeyIdentifier=hash",
    ])?;
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=mx.example.com",
    ])?;
    std::fs::write(
        dir.join("leaf.ext"),
        "basicConstraints=CA:FALSE\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n\
         extendedKeyUsage=serverAuth\nsubjectAltName=DNS:mx.example.com\n",
    )
    .unwrap();
    let mut args = vec![
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "365",
        "-out",
        "leaf.pem",
    ];
    if v3 {
        args.extend(["-extfile", "leaf.ext"]);
    }
    args.extend(extra);
    run(&args)?;
    let ca = CertificateDer::from_pem_file(dir.join("ca.pem")).unwrap();
    let leaf = CertificateDer::from_pem_file(dir.join("leaf.pem")).unwrap();
    Some(vec![leaf, ca])
}

/// Issue 11, finding 8: X.509 v1 and SHA-1 signed chains are always refused (rustls-webpki),
/// whatever the seed's optional X.509 validation switch says; the verdict says so.
#[test]
fn v1_and_sha1_chains_are_always_refused_and_say_why() {
    use smtp_tls_policy::identity::X509Validation;
    for (extra, v3, expected) in [
        (&[][..], false, "X.509 version 1"),
        (&["-sha1"][..], true, "SHA-1"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let Some(certs) = openssl_leaf(dir.path(), extra, v3) else {
            eprintln!("openssl not installed: skipped");
            return;
        };
        let anchors = TrustAnchors::from_certificates([certs[1].clone()]).unwrap();
        let chain = [certs[0].clone()];
        let t = target("mx.example.com", &[], MxSecurity::Insecure);
        for x509 in [X509Validation::Disabled, X509Validation::Enabled] {
            let policy =
                VerificationPolicy::new(IdentityAlgorithm::Verify).with_x509_validation(x509);
            let v = verify_server_certificate(&policy, &t, &chain, &anchors, UnixTime::now());
            assert!(!v.is_verified());
            let error = v.error.expect("an error");
            let text = error.to_string();
            assert!(
                text.contains(expected) && text.contains("always refused"),
                "{x509:?}: {text} ({error:?})"
            );
            assert!(
                matches!(
                    &error,
                    Error::NotVersion3 {
                        position: CertPosition::Leaf,
                        version: 1
                    }
                ) || matches!(
                    &error,
                    Error::LegacySignature { position: CertPosition::Leaf, algorithm }
                        if algorithm.starts_with("SHA-1")
                ),
                "{error:?}"
            );
            assert_eq!(error.kind(), "chain");
        }
    }
}

/// Many CNs against many dNSName constraints: the work is bounded by the budget rustls-webpki
/// gives SAN checks (250 000 comparisons), not quadratic in what the peer sends. The chain is
/// made with `openssl` (rcgen writes one CN at most); skipped when it is not installed.
#[test]
fn cn_name_constraint_work_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(d)
            .output()
            .ok()?;
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(())
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let Some(()) = run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "3650",
            "-subj",
            "/CN=Test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-addext",
            "subjectKeyIdentifier=hash",
        ],
    ]
    .concat()) else {
        eprintln!("openssl not installed: skipped");
        return;
    };
    // 600 permitted subtrees, the only one the CNs are in last; 600 CNs: 360 000 comparisons.
    let mut permitted: Vec<String> = (0..599)
        .map(|i| format!("permitted;DNS:t{i}.test"))
        .collect();
    permitted.push("permitted;DNS:z.test".into());
    std::fs::write(
        d.join("inter.ext"),
        format!(
            "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n\
             subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n\
             nameConstraints=critical,{}\n",
            permitted.join(",")
        ),
    )
    .unwrap();
    run(&[
        &["req"][..],
        &ec,
        &[
            "-keyout",
            "inter.key",
            "-out",
            "inter.csr",
            "-subj",
            "/CN=Inter",
        ],
    ]
    .concat());
    run(&[
        "x509",
        "-req",
        "-in",
        "inter.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "365",
        "-out",
        "inter.pem",
        "-extfile",
        "inter.ext",
    ]);
    std::fs::write(
        d.join("leaf.ext"),
        "basicConstraints=CA:FALSE\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n\
         extendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let leaf_pem = |cns: usize, name: &str| {
        let subject: String = (0..cns).map(|i| format!("/CN=h{i}.z.test")).collect();
        run(&[
            &["req"][..],
            &ec,
            &["-keyout", "leaf.key", "-out", "leaf.csr", "-subj", &subject],
        ]
        .concat());
        let out = format!("{name}.pem");
        run(&[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "inter.pem",
            "-CAkey",
            "inter.key",
            "-CAcreateserial",
            "-days",
            "365",
            "-out",
            &out,
            "-extfile",
            "leaf.ext",
        ]);
        out
    };
    use rustls::pki_types::pem::PemObject;
    let ca = CertificateDer::from_pem_file(d.join("ca.pem")).unwrap();
    let inter = CertificateDer::from_pem_file(d.join("inter.pem")).unwrap();
    let anchors = TrustAnchors::from_certificates([ca]).unwrap();
    let policy = VerificationPolicy::new(IdentityAlgorithm::Verify);
    let t = target("h0.z.test", &[], MxSecurity::Insecure);
    // Three CNs in the permitted subtree: verified.
    let few = CertificateDer::from_pem_file(d.join(leaf_pem(3, "few"))).unwrap();
    let v = verify_server_certificate(
        &policy,
        &t,
        &[few, inter.clone()],
        &anchors,
        UnixTime::now(),
    );
    assert!(v.is_verified(), "{v:?}");
    // 600 of them: over budget, refused with rustls-webpki's own error for that limit.
    let many = CertificateDer::from_pem_file(d.join(leaf_pem(600, "many"))).unwrap();
    let started = std::time::Instant::now();
    let v = verify_server_certificate(&policy, &t, &[many, inter], &anchors, UnixTime::now());
    println!("600 CNs x 600 constraints: {:?}", started.elapsed());
    assert_eq!(
        v.error,
        Some(Error::Chain(
            webpki::Error::MaximumNameConstraintComparisonsExceeded
        )),
        "{v:?}"
    );
}

/// A bare trust anchor (no certificate, as `webpki-roots` ships them) whose nameConstraints are
/// exactly those of the one name-constrained root in Mozilla's list (`permitted: .tr`, bytes
/// copied from webpki-roots 1.0): a CN outside `.tr` issued under it is refused, one inside is
/// accepted.
#[test]
fn bare_anchor_name_constraints_apply_to_the_cn() {
    for (cn, verified) in [("mx.victim.example", false), ("mail.example.com.tr", true)] {
        let p = constrained_pki(
            ConstrainedCa::Anchor,
            &["placeholder.example"],
            &[],
            Some(cn),
            &[],
        );
        // The same root key and subject, but the constraints Mozilla's list gives.
        let mut anchor = p.anchors.anchors()[0].clone();
        anchor.name_constraints = Some(rustls::pki_types::Der::from_slice(
            b"\xa0\x070\x05\x82\x03.tr",
        ));
        let mut anchors = TrustAnchors::empty();
        anchors.add_anchors([anchor]);
        let policy = VerificationPolicy::new(IdentityAlgorithm::Verify);
        let t = target(cn, &[], MxSecurity::Insecure);
        let v = verify_server_certificate(&policy, &t, &p.chain, &anchors, UnixTime::now());
        assert_eq!(v.is_verified(), verified, "{cn}: {v:?}");
        if !verified {
            assert_cn_constraint_refused(&v);
            assert!(
                matches!(
                    &v.error,
                    Some(Error::CommonNameOutsideNameConstraints {
                        constrained_by: CertPosition::Anchor,
                        ..
                    })
                ),
                "{v:?}"
            );
        }
    }
}

/// One leaf key-usage rule for PKIX and DANE (issue 11, finding 8; `dane_verify::
/// check_server_key_usage`): a leaf whose keyUsage is nonRepudiation only allows no TLS server
/// use and is refused under every profile, as `openssl verify -purpose sslserver` refuses it
/// (the OpenSSL comparison is skipped when `openssl` is absent).
#[test]
fn leaf_key_usage_non_repudiation_only_is_refused() {
    use smtp_tls_policy::chain::ChainProfile;
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca_params = ca_params("Test Root", None);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["mx.example.com".to_owned()]).unwrap();
    params.use_authority_key_identifier_extension = true;
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![rcgen::KeyUsagePurpose::ContentCommitment];
    let leaf = params.signed_by(&leaf_key, &issuer).unwrap();
    let anchors = TrustAnchors::from_certificates([ca.der().clone()]).unwrap();
    let chain = [leaf.der().clone()];
    let t = target("mx.example.com", &[], MxSecurity::Insecure);
    for profile in [
        ChainProfile::WebpkiOnly,
        ChainProfile::Rfc5280,
        ChainProfile::CabForum,
    ] {
        let policy = VerificationPolicy::new(IdentityAlgorithm::Verify).with_profile(profile);
        let v = verify_server_certificate(&policy, &t, &chain, &anchors, UnixTime::now());
        assert!(!v.is_verified(), "{profile:?}: {v:?}");
        let error = v.error.expect("an error");
        assert_eq!(
            error,
            Error::LeafKeyUsageNotForServer {
                found: "nonRepudiation".into()
            },
            "{profile:?}"
        );
        assert_eq!(error.kind(), "chain");
        assert!(error.to_string().contains("leaf"), "{error}");
    }
    // A usage TLS servers need is enough, as OpenSSL's purpose check allows.
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::ContentCommitment,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let usable = params.signed_by(&leaf_key, &issuer).unwrap();
    let policy = VerificationPolicy::new(IdentityAlgorithm::Verify);
    let v = verify_server_certificate(
        &policy,
        &t,
        &[usable.der().clone()],
        &anchors,
        UnixTime::now(),
    );
    assert!(v.is_verified(), "{v:?}");
    // OpenSSL's ssl_server purpose refuses the same leaf.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root.pem");
    let leaf_pem = dir.path().join("leaf.pem");
    std::fs::write(&root, ca.pem()).unwrap();
    std::fs::write(&leaf_pem, leaf.pem()).unwrap();
    let Ok(out) = std::process::Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(&root)
        .args(["-purpose", "sslserver"])
        .arg(&leaf_pem)
        .output()
    else {
        eprintln!("openssl not installed: comparison skipped");
        return;
    };
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "openssl accepted it: {text}");
    assert!(text.contains("certificate purpose"), "{text}");
}
