//! PKI builders (rcgen): a test CA issuing server certificates, self-signed certificates no
//! one trusts, and a rustls server configuration serving either.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A certificate chain and its key, PEM.
#[derive(Clone)]
pub struct CertKey {
    /// The leaf first, then its issuers.
    pub chain_pem: String,
    /// The leaf's private key.
    pub key_pem: String,
}

/// A test CA that issues server certificates.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    /// The CA certificate (a trust anchor).
    pub pem: String,
}

impl TestCa {
    /// A self-signed CA with the common name `name` (key usage: certificate and CRL signing).
    pub fn new(name: &str) -> Self {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        p.distinguished_name.push(DnType::CommonName, name);
        let issuer = CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap();
        let pem = issuer.pem();
        Self { issuer, pem }
    }

    /// A server certificate for `names` (DNS SANs), issued by this CA; chain = leaf + CA.
    pub fn issue(&self, names: &[String]) -> CertKey {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(names.to_vec()).unwrap();
        p.distinguished_name.push(DnType::CommonName, &names[0]);
        p.use_authority_key_identifier_extension = true;
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        CertKey {
            chain_pem: cert.pem() + &self.pem,
            key_pem: key.serialize_pem(),
        }
    }
}

/// A self-signed certificate for `names` that no one trusts.
pub fn self_signed(names: &[String]) -> CertKey {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(names.to_vec()).unwrap();
    p.distinguished_name.push(DnType::CommonName, &names[0]);
    let cert = p.self_signed(&key).unwrap();
    CertKey {
        chain_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// A rustls server configuration serving `ck`.
pub fn server_config(ck: &CertKey) -> Arc<rustls::ServerConfig> {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(ck.chain_pem.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
    let key = PrivateKeyDer::from_pem_slice(ck.key_pem.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    Arc::new(cfg)
}
