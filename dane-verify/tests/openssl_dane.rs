//! Differential check against OpenSSL's DANE (`openssl s_client -dane_tlsa_domain
//! -dane_tlsa_rrdata`, the code Postfix uses) for the issue 11 cases: DANE-TA with a CN-only
//! leaf (finding 4), a DNS-ID beside the CN, a leaf keyUsage without TLS server bits
//! (finding 8), and trust anchors published in DNS (`2 0 0`, `2 1 0`) that the server does not
//! send. Each case: `openssl s_server` on loopback serving the chain (stopped by PID in Drop),
//! `s_client` verifying it, and `DaneMatcher` on the same chain must agree on the verdict and
//! the depth. Needs `openssl` (scripts/install-deps.sh).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dane_verify::{DaneMatchOutcome, DaneMatcher, TlsaRecord};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls_pki_types::{CertificateDer, UnixTime};
use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, X509Certificate};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir(tag: &str) -> TempDir {
    let dir = std::env::temp_dir().join(format!("dane-openssl-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

struct Pki {
    ca: CertificateDer<'static>,
    leaf: CertificateDer<'static>,
    ca_pem: String,
    leaf_pem: String,
    leaf_key: String,
}

fn pki(leaf: impl FnOnce(&mut CertificateParams)) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_p = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_p.distinguished_name
        .push(DnType::CommonName, "Private CA");
    ca_p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_p.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_p, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut lp = CertificateParams::new(Vec::<String>::new()).unwrap();
    lp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf(&mut lp);
    let cert = lp.signed_by(&key, &issuer).unwrap();
    Pki {
        ca: ca.der().clone(),
        leaf: cert.der().clone(),
        ca_pem: ca.pem(),
        leaf_pem: cert.pem(),
        leaf_key: key.serialize_pem(),
    }
}

fn spki(cert: &CertificateDer<'_>) -> Vec<u8> {
    let (_, c) = X509Certificate::from_der(cert.as_ref()).unwrap();
    c.tbs_certificate.subject_pki.raw.to_vec()
}

/// OpenSSL's verdict: `Some(depth)` when s_client verified the chain by DANE, `None` when not.
fn openssl_dane(p: &Pki, send_ca: bool, name: &str, rrdata: &str, tag: &str) -> Option<i32> {
    let dir = temp_dir(tag);
    std::fs::write(dir.0.join("leaf.pem"), &p.leaf_pem).unwrap();
    std::fs::write(dir.0.join("leaf.key"), &p.leaf_key).unwrap();
    std::fs::write(dir.0.join("ca.pem"), &p.ca_pem).unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut args = vec![
        "s_server".to_string(),
        "-accept".into(),
        format!("127.0.0.1:{port}"),
        "-cert".into(),
        "leaf.pem".into(),
        "-key".into(),
        "leaf.key".into(),
        "-quiet".into(),
    ];
    if send_ca {
        args.extend(["-cert_chain".into(), "ca.pem".into()]);
    }
    let _server = Server(
        Command::new("openssl")
            .args(&args)
            .current_dir(&dir.0)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl missing: run scripts/install-deps.sh"),
    );
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            Instant::now() < deadline,
            "s_server did not listen on {addr}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &addr.to_string(),
            "-dane_tlsa_domain",
            name,
            "-dane_tlsa_rrdata",
            rrdata,
            "-verify_return_error",
            "-brief",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr).to_string();
    if !out.status.success() || !text.contains("Verification: OK") {
        return None;
    }
    // "DANE TLSA 2 1 1 ...ab12 matched TA certificate at depth 1"
    let line = text
        .lines()
        .find(|l| l.starts_with("DANE TLSA"))
        .unwrap_or_else(|| panic!("no DANE line: {text}"));
    Some(line.rsplit(' ').next().unwrap().parse().unwrap())
}

fn ours(p: &Pki, send_ca: bool, name: &str, rrdata: &str) -> Option<i32> {
    let mut chain = vec![p.leaf.clone()];
    if send_ca {
        chain.push(p.ca.clone());
    }
    let record: TlsaRecord = rrdata.parse().unwrap();
    let v = DaneMatcher::smtp([name])
        .unwrap()
        .verify(&[record], &chain, UnixTime::now());
    (v.outcome == DaneMatchOutcome::Verified).then_some(v.depth)
}

fn dns(name: &str) -> SanType {
    SanType::DnsName(name.try_into().unwrap())
}

#[test]
fn dane_ta_agrees_with_openssl() {
    let cn_only = pki(|l| l.distinguished_name.push(DnType::CommonName, "mx.example"));
    let with_san = pki(|l| {
        l.distinguished_name.push(DnType::CommonName, "mx.example");
        l.subject_alt_names = vec![dns("other.example")];
    });
    let cert_sign_only = pki(|l| {
        l.subject_alt_names = vec![dns("mx.example")];
        l.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    });
    let digital_signature = pki(|l| {
        l.subject_alt_names = vec![dns("mx.example")];
        l.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    });
    let ta_211 = |p: &Pki| format!("2 1 1 {}", hex::encode(Sha256::digest(spki(&p.ca))));
    let cases: Vec<(&str, &Pki, bool, String, Option<i32>)> = vec![
        (
            "cn-only leaf, 2 1 1",
            &cn_only,
            true,
            ta_211(&cn_only),
            Some(1),
        ),
        (
            "cn and other DNS-ID",
            &with_san,
            true,
            ta_211(&with_san),
            None,
        ),
        (
            "keyUsage keyCertSign only",
            &cert_sign_only,
            true,
            ta_211(&cert_sign_only),
            None,
        ),
        (
            "keyUsage digitalSignature",
            &digital_signature,
            true,
            ta_211(&digital_signature),
            Some(1),
        ),
        (
            "2 0 0 anchor not sent",
            &cn_only,
            false,
            format!("2 0 0 {}", hex::encode(cn_only.ca.as_ref())),
            Some(1),
        ),
        (
            "2 1 0 bare key, anchor not sent",
            &cn_only,
            false,
            format!("2 1 0 {}", hex::encode(spki(&cn_only.ca))),
            Some(0),
        ),
    ];
    for (i, (what, p, send_ca, rr, expected)) in cases.iter().enumerate() {
        let openssl = openssl_dane(p, *send_ca, "mx.example", rr, &i.to_string());
        let ours = ours(p, *send_ca, "mx.example", rr);
        assert_eq!(openssl, *expected, "{what}: OpenSSL");
        assert_eq!(ours, openssl, "{what}: dane-verify vs OpenSSL");
    }
}
