//! Shared fixtures: a test CA made by rcgen, the driver's settings from a hop plan and the Postfix lab guard (over
//! `test_support::postfix`).
#![allow(dead_code, unreachable_pub)]

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use smtp_tls_policy::chain::TrustAnchors;
use smtp_tls_policy::destination::{DeliveryTls, DestinationControls};
use smtp_tls_policy::io::ClientSettings;
use smtp_tls_policy::plan::{HopPlan, PlanOptions, facts_without_dnssec};
use test_support::postfix::Postfix;

/// A server certificate with its chain and key.
pub struct ServerCert {
    pub chain: Vec<CertificateDer<'static>>,
    pub key_der: Vec<u8>,
    pub chain_pem: String,
    pub key_pem: String,
}

impl ServerCert {
    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }

    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key())
            .unwrap();
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    }

    /// Writes cert.pem / key.pem into `dir`.
    pub fn write(&self, dir: &Path) -> (PathBuf, PathBuf) {
        let c = dir.join("cert.pem");
        let k = dir.join("key.pem");
        std::fs::write(&c, &self.chain_pem).unwrap();
        std::fs::write(&k, &self.key_pem).unwrap();
        (c, k)
    }
}

/// A test PKI: one CA, a server certificate for `mx.test.example` and `localhost` issued by it,
/// and a self-signed certificate for the same names that no one trusts.
pub struct Pki {
    pub ca_der: CertificateDer<'static>,
    pub ca_pem: String,
    pub good: ServerCert,
    pub untrusted: ServerCert,
}

pub const MX: &str = "mx.test.example";

impl Pki {
    pub fn new() -> Self {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "smtp-tls-policy test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);

        let names = vec![MX.to_string(), "localhost".to_string()];
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(names.clone()).unwrap();
        p.distinguished_name.push(DnType::CommonName, MX);
        // RFC 5280 §4.2.1.1: the project's chain checks want the AKI on issued certificates.
        p.use_authority_key_identifier_extension = true;
        let cert = p.signed_by(&key, &issuer).unwrap();
        let good = ServerCert {
            chain: vec![cert.der().clone(), ca.der().clone()],
            key_der: key.serialize_der(),
            chain_pem: cert.pem() + &ca.pem(),
            key_pem: key.serialize_pem(),
        };

        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(names).unwrap();
        p.distinguished_name.push(DnType::CommonName, "self-signed");
        let cert = p.self_signed(&key).unwrap();
        let untrusted = ServerCert {
            chain: vec![cert.der().clone()],
            key_der: key.serialize_der(),
            chain_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        };
        Self {
            ca_der: ca.der().clone(),
            ca_pem: ca.pem(),
            good,
            untrusted,
        }
    }

    /// The driver's settings from the hop plan of `domain` under TLS `mode` (DANE none) for MX
    /// host `host` (no DNSSEC), trusting the test CA; EHLO name `client.test`.
    pub fn client_settings(&self, mode: DeliveryTls, domain: &str, host: &str) -> ClientSettings {
        let toml = format!("[default]\ntls = \"{}\"\ndane = \"none\"\n", mode.as_str());
        let controls = DestinationControls::from_toml("test.toml", &toml).unwrap();
        let policy = controls.lookup(domain).unwrap();
        let facts = facts_without_dnssec(domain, host);
        let plan = HopPlan::new(&policy, &facts, PlanOptions::new());
        let anchors = TrustAnchors::from_certificates([self.ca_der.clone()]).unwrap();
        plan.client_settings("client.test", Arc::new(anchors))
            .unwrap()
    }
}

/// A Postfix instance from scripts/postfix-lab.sh (`test_support::postfix`), stopped on drop.
pub struct PostfixLab {
    pub port: u16,
    postfix: Postfix,
}

impl PostfixLab {
    /// `tls`: none | may | encrypt; `cert`: served when tls != none.
    pub fn start(tls: &str, cert: Option<&ServerCert>) -> Self {
        Self::start_with(tls, cert, &[])
    }

    /// As [`Self::start`] with extra environment for the script (client mode etc.).
    pub fn start_with(tls: &str, cert: Option<&ServerCert>, env: &[(&str, String)]) -> Self {
        let dir = Postfix::scratch();
        let mut vars: Vec<(&str, OsString)> = vec![("SMTPD_TLS", tls.into())];
        if let Some(cert) = cert {
            let (c, k) = cert.write(dir.path());
            vars.push(("TLS_CERT", c.into()));
            vars.push(("TLS_KEY", k.into()));
        }
        vars.extend(env.iter().map(|(k, v)| (*k, OsString::from(v))));
        let vars: Vec<(&str, &OsStr)> = vars.iter().map(|(k, v)| (*k, v.as_os_str())).collect();
        let postfix = Postfix::start(dir, &vars);
        Self {
            port: postfix.port(),
            postfix,
        }
    }

    pub fn maillog(&self) -> String {
        self.postfix.maillog()
    }

    /// Polls the mail log (bounded: 15 s) until it contains `needle`; returns the log.
    pub fn wait_for_log(&self, needle: &str) -> String {
        self.postfix
            .wait_log(Duration::from_secs(15), |log| log.contains(needle))
    }
}
