//! The MTA-STS certificate check of an MX host (RFC 8461 §4.1): PKIX to the caller's anchors and
//! a SAN dNSName naming the host (one-label wildcards, never the subject CN).

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::{CertificateDer, UnixTime};
use smtp_tls_policy::chain::TrustAnchors;
use smtp_tls_policy::mta_sts::{StsCertificateCheck, StsFailureKind, check_sts_certificate};

struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        p.distinguished_name.push(DnType::CommonName, name);
        Self {
            issuer: CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    fn anchors(&self) -> TrustAnchors {
        TrustAnchors::from_certificates([self.issuer.der().clone()]).unwrap()
    }

    /// A leaf with SAN `sans` (none when empty) and CN `cn`.
    fn leaf(&self, sans: &[&str], cn: &str) -> Vec<CertificateDer<'static>> {
        let mut p =
            CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
                .unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.use_authority_key_identifier_extension = true;
        let cert = p
            .signed_by(&KeyPair::generate().unwrap(), &self.issuer)
            .unwrap();
        vec![cert.der().clone()]
    }
}

fn kind(check: &StsCertificateCheck) -> Option<StsFailureKind> {
    match check {
        StsCertificateCheck::Valid { .. } => None,
        StsCertificateCheck::Invalid { failure } => Some(failure.kind),
    }
}

#[test]
fn certificate_check_table() {
    let ca = Ca::new("MTA-STS test CA");
    let anchors = ca.anchors();
    let now = UnixTime::now();
    let cases: Vec<(
        &str,
        Vec<CertificateDer<'static>>,
        &str,
        Option<StsFailureKind>,
    )> = vec![
        (
            "exact SAN",
            ca.leaf(&["mx1.example.com"], "mx1.example.com"),
            "mx1.example.com",
            None,
        ),
        (
            "trailing dot and case",
            ca.leaf(&["mx1.example.com"], "x"),
            "MX1.Example.com.",
            None,
        ),
        (
            "one-label wildcard",
            ca.leaf(&["*.example.com"], "x"),
            "mx1.example.com",
            None,
        ),
        (
            "wildcard is one label",
            ca.leaf(&["*.example.com"], "x"),
            "a.mx1.example.com",
            Some(StsFailureKind::CertificateHostMismatch),
        ),
        (
            "other name",
            ca.leaf(&["mx2.example.com"], "mx1.example.com"),
            "mx1.example.com",
            Some(StsFailureKind::CertificateHostMismatch),
        ),
        (
            "no CN fallback",
            ca.leaf(&["other.example.com"], "mx1.example.com"),
            "mx1.example.com",
            Some(StsFailureKind::CertificateHostMismatch),
        ),
        (
            "empty chain",
            vec![],
            "mx1.example.com",
            Some(StsFailureKind::ValidationFailure),
        ),
    ];
    for (name, chain, host, expected) in cases {
        let check = check_sts_certificate(host, &chain, &anchors, now);
        assert_eq!(kind(&check), expected, "{name}: {check:?}");
    }
}

#[test]
fn untrusted_and_expired() {
    let ca = Ca::new("MTA-STS test CA");
    let chain = ca.leaf(&["mx1.example.com"], "mx1.example.com");
    let other = Ca::new("another CA").anchors();
    let check = check_sts_certificate("mx1.example.com", &chain, &other, UnixTime::now());
    assert_eq!(
        kind(&check),
        Some(StsFailureKind::CertificateNotTrusted),
        "{check:?}"
    );
    let none = check_sts_certificate(
        "mx1.example.com",
        &chain,
        &TrustAnchors::empty(),
        UnixTime::now(),
    );
    assert_eq!(
        kind(&none),
        Some(StsFailureKind::CertificateNotTrusted),
        "{none:?}"
    );
    // rcgen's default validity ends in 4096; check at a time past it.
    let far = UnixTime::since_unix_epoch(std::time::Duration::from_secs(4_200_000_000 * 20));
    let expired = check_sts_certificate("mx1.example.com", &chain, &ca.anchors(), far);
    assert_eq!(
        kind(&expired),
        Some(StsFailureKind::CertificateExpired),
        "{expired:?}"
    );
}
