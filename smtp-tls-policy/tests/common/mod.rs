//! Shared fixtures: a test CA made by rcgen, rustls verifiers and the Postfix lab guard.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

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

    /// rustls' own WebPKI verifier trusting the test CA.
    pub fn verifier(&self) -> Arc<dyn ServerCertVerifier> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca_der.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .unwrap()
    }
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A Postfix instance from scripts/postfix-lab.sh, stopped (by its PID) on drop.
pub struct PostfixLab {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub master_pid: u32,
    pub maillog: PathBuf,
}

impl PostfixLab {
    /// `tls`: none | may | encrypt; `cert`: served when tls != none.
    pub fn start(tls: &str, cert: Option<&ServerCert>) -> Self {
        Self::start_with(tls, cert, &[])
    }

    /// As [`Self::start`] with extra environment for the script (client mode etc.).
    pub fn start_with(tls: &str, cert: Option<&ServerCert>, env: &[(&str, String)]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("pflab")
            .tempdir_in("/tmp")
            .unwrap();
        let lab = dir.path().join("lab");
        let mut cmd = Command::new(repo_root().join("scripts/postfix-lab.sh"));
        cmd.env("LAB_DIR", &lab).env("SMTPD_TLS", tls);
        if let Some(cert) = cert {
            let (c, k) = cert.write(dir.path());
            cmd.env("TLS_CERT", c).env("TLS_KEY", k);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run scripts/postfix-lab.sh");
        assert!(
            out.status.success(),
            "postfix-lab failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let state = std::fs::read_to_string(lab.join("state")).unwrap();
        let get = |k: &str| {
            state
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .unwrap()
                .to_string()
        };
        Self {
            port: get("SMTPD_PORT").parse().unwrap(),
            master_pid: get("MASTER_PID").parse().unwrap(),
            maillog: PathBuf::from(get("MAILLOG")),
            dir,
        }
    }

    pub fn maillog(&self) -> String {
        std::fs::read_to_string(&self.maillog).unwrap_or_default()
    }

    /// Polls the mail log (bounded: 15 s) until it contains `needle`; returns the log.
    pub fn wait_for_log(&self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            let log = self.maillog();
            if log.contains(needle) || std::time::Instant::now() > deadline {
                return log;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

impl Drop for PostfixLab {
    fn drop(&mut self) {
        let _ = Command::new(repo_root().join("scripts/postfix-lab-stop.sh"))
            .arg(self.dir.path().join("lab"))
            .status();
    }
}
