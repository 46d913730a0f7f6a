//! Whole verification (chain + identity) and the rustls verifiers, over a CA and leaves made by
//! rcgen in the test, with in-memory TLS handshakes.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use smtp_tls_policy::chain::TrustAnchors;
use smtp_tls_policy::identity::{DeliveryTarget, IdentityAlgorithm, MxSecurity};
use smtp_tls_policy::verifier::{SmtpCertVerifier, VerificationMode};
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
fn handshake(p: &Pki, verifier: Arc<SmtpCertVerifier>) -> bool {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let server_config = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![p.leaf.clone()], p.leaf_key.clone_key())
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
    let t = target("example.com", &["mx.example.com"], MxSecurity::Insecure);
    let anchors = Arc::new(anchors(&p));
    // Required (Verify): the name does not match, the handshake is aborted.
    let required = Arc::new(SmtpCertVerifier::new(
        VerificationMode::RequiredVerify,
        t.clone(),
        anchors.clone(),
    ));
    assert!(!handshake(&p, required.clone()));
    let verdict = required.last_verdict().expect("a verdict was recorded");
    assert!(matches!(verdict.error, Some(Error::NameMismatch { .. })));
    // Preferred (Verify): the same failure is recorded and TLS goes on.
    let preferred = Arc::new(SmtpCertVerifier::new(
        VerificationMode::PreferredVerify,
        t,
        anchors.clone(),
    ));
    assert!(handshake(&p, preferred.clone()));
    assert!(!preferred.last_verdict().unwrap().is_verified());
    // A matching target verifies in the rejecting mode too.
    let ok_target = target("other.example", &["mx.other.example"], MxSecurity::Secure);
    let hosted = Arc::new(SmtpCertVerifier::new(
        VerificationMode::RequiredVerifyHostedDomains,
        ok_target,
        anchors,
    ));
    assert!(handshake(&p, hosted.clone()));
    assert!(hosted.last_verdict().unwrap().is_verified());
}
