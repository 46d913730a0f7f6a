//! Shared fixtures of the verification tests: an rcgen CA and leaf, trust anchors, the hop
//! plan's delivery verifier, in-memory TLS handshakes.
#![allow(dead_code)] // each test binary uses a part

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use smtp_tls_policy::chain::TrustAnchors;
use smtp_tls_policy::destination::DestinationControls;
use smtp_tls_policy::identity::{DeliveryTarget, MxSecurity};
use smtp_tls_policy::plan::{HopPlan, HostSource, PlanOptions, PlanVerifier, facts_without_dnssec};

pub(crate) struct Pki {
    pub(crate) ca: CertificateDer<'static>,
    pub(crate) leaf: CertificateDer<'static>,
    pub(crate) leaf_key: PrivateKeyDer<'static>,
}

pub(crate) fn pki(cn: Option<&str>, sans: &[&str]) -> Pki {
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

pub(crate) fn anchors(p: &Pki) -> TrustAnchors {
    TrustAnchors::from_certificates([p.ca.clone()]).unwrap()
}

/// The rejecting delivery verifier of the hop plan for `domain` under TLS `mode` (DANE none):
/// host `mx` from an MX answer (`secure`: DNSSEC-secure), or the domain itself (implicit MX).
pub(crate) fn plan_verifier(
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
pub(crate) fn last_pkix(v: &PlanVerifier) -> smtp_tls_policy::PkixVerdict {
    v.last_verdict()
        .and_then(|v| v.pkix_detail)
        .expect("a verdict was recorded")
}

pub(crate) fn target(domain: &str, mx: &[&str], security: MxSecurity) -> DeliveryTarget {
    mx.iter()
        .fold(DeliveryTarget::builder(domain), |b, m| b.with_mx_host(*m))
        .with_mx_security(security)
        .build()
        .unwrap()
}

/// Runs an in-memory TLS handshake against a rustls server holding `p`'s leaf; returns whether
/// it completed.
pub(crate) fn handshake(p: &Pki, verifier: Arc<PlanVerifier>) -> bool {
    handshake_with(vec![p.leaf.clone()], p.leaf_key.clone_key(), verifier)
}

/// [`handshake`] with a server sending `chain` (leaf first) and holding `key`.
pub(crate) fn handshake_with(
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

pub(crate) fn ca_params(
    cn: &str,
    constraints: Option<rcgen::NameConstraints>,
) -> rcgen::CertificateParams {
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
