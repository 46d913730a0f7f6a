//! Creating a self-signed certificate and its certificate signing request (CSR).
//!
//! Seed, "Creating a Self-Signed Certificate" and "About Sending a Certificate Signing Request
//! (CSR) to a Certificate Authority": the certificate is usable at once; the CSR (PEM) goes to a
//! CA, whose answer is uploaded later (see [`crate::CertStore::upload_signed`]).

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

use crate::error::{Error, Result};
use crate::key::{KeySpec, PrivateKey};
use crate::subject::{FqdnCheck, Subject};

/// Longest validity accepted, in days (about 20 years).
pub const MAX_VALIDITY_DAYS: u32 = 7305;

/// Signature algorithm of the certificate and CSR (seed: "Signature Algorithm").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SignatureAlgorithm {
    /// The natural choice for the key: ECDSA with SHA-256 on P-256, SHA-384 on P-384, and
    /// RSA PKCS#1 v1.5 with SHA-256.
    #[default]
    Default,
    /// RSA PKCS#1 v1.5 with SHA-256.
    RsaSha256,
    /// RSA PKCS#1 v1.5 with SHA-384.
    RsaSha384,
    /// RSA PKCS#1 v1.5 with SHA-512.
    RsaSha512,
}

impl SignatureAlgorithm {
    fn rcgen(self, key: KeySpec) -> Result<&'static rcgen::SignatureAlgorithm> {
        let rsa = matches!(key, KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096);
        Ok(match (self, rsa) {
            (Self::Default, false) if key == KeySpec::EcP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            (Self::Default, false) => &rcgen::PKCS_ECDSA_P384_SHA384,
            (Self::Default | Self::RsaSha256, true) => &rcgen::PKCS_RSA_SHA256,
            (Self::RsaSha384, true) => &rcgen::PKCS_RSA_SHA384,
            (Self::RsaSha512, true) => &rcgen::PKCS_RSA_SHA512,
            (other, false) => {
                return Err(Error::SignatureAlgorithmMismatch {
                    algorithm: other.name(),
                    key: key.name(),
                });
            }
        })
    }

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::RsaSha256 => "rsa-sha256",
            Self::RsaSha384 => "rsa-sha384",
            Self::RsaSha512 => "rsa-sha512",
        }
    }
}

/// What to create (seed: the fields of "Add Certificate > Create Self-Signed Certificate").
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SelfSignedRequest {
    /// Subject and alternative names.
    pub subject: Subject,
    /// Key type and size.
    pub key: KeySpec,
    /// Signature algorithm.
    pub signature: SignatureAlgorithm,
    /// Days before expiry ("Duration before expiration").
    pub days: u32,
    /// Whether CN and SANs must be FQDNs.
    pub fqdn: FqdnCheck,
}

impl SelfSignedRequest {
    /// A request for `subject` with an ECDSA P-256 key, valid 365 days, no FQDN check.
    pub fn new(subject: Subject) -> Self {
        Self {
            subject,
            key: KeySpec::default(),
            signature: SignatureAlgorithm::Default,
            days: 365,
            fqdn: FqdnCheck::Off,
        }
    }
}

/// A freshly created certificate with its key and CSR.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Created {
    /// The self-signed certificate (DER).
    pub cert_der: Vec<u8>,
    /// Its private key.
    pub key: PrivateKey,
    /// The CSR for the same key and subject, PEM.
    pub csr_pem: String,
}

/// Creates a self-signed certificate valid from `now` for `req.days` days, and its CSR.
pub fn create_self_signed(req: &SelfSignedRequest, now: OffsetDateTime) -> Result<Created> {
    req.subject.validate_with(req.fqdn)?;
    if req.days == 0 || req.days > MAX_VALIDITY_DAYS {
        return Err(Error::ValidityOutOfRange {
            days: req.days,
            max: MAX_VALIDITY_DAYS,
        });
    }
    let alg = req.signature.rcgen(req.key)?;
    let key = req.key.generate()?;
    let signer = key.to_rcgen_with(alg)?;
    let gen_err = |e: rcgen::Error| Error::Generation(e.to_string());

    let mut sans = req.subject.sans.clone();
    if sans.is_empty() {
        // Mail peers match reference identities against DNS SANs (RFC 6125 section 6.4.4).
        sans.push(req.subject.common_name.clone());
    }
    let mut params = CertificateParams::new(sans).map_err(gen_err)?;
    params.distinguished_name = distinguished_name(&req.subject);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let csr = params.serialize_request(&signer).map_err(gen_err)?;
    params.not_before = now - Duration::minutes(5);
    params.not_after = now + Duration::days(i64::from(req.days));
    let cert = params.self_signed(&signer).map_err(gen_err)?;
    Ok(Created {
        cert_der: cert.der().to_vec(),
        key,
        csr_pem: csr.pem().map_err(gen_err)?,
    })
}

fn distinguished_name(s: &Subject) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    if let Some(c) = &s.country {
        dn.push(DnType::CountryName, c.as_str());
    }
    if let Some(st) = &s.state {
        dn.push(DnType::StateOrProvinceName, st.as_str());
    }
    if let Some(l) = &s.locality {
        dn.push(DnType::LocalityName, l.as_str());
    }
    if let Some(o) = &s.organization {
        dn.push(DnType::OrganizationName, o.as_str());
    }
    if let Some(ou) = &s.organizational_unit {
        dn.push(DnType::OrganizationalUnitName, ou.as_str());
    }
    dn.push(DnType::CommonName, s.common_name.as_str());
    dn
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CertInfo;

    #[test]
    fn creates_parseable_cert_with_subject_and_validity() {
        let now = OffsetDateTime::now_utc();
        let subject = Subject {
            organization: Some("Example AB".into()),
            organizational_unit: Some("Mail".into()),
            locality: Some("Uppsala".into()),
            state: Some("Uppland".into()),
            ..Subject::new("mail.example.com")
                .with_country("SE")
                .with_san("mx.example.com")
        };
        let mut req = SelfSignedRequest::new(subject);
        req.days = 30;
        let made = create_self_signed(&req, now).unwrap();
        let info = CertInfo::from_der(&made.cert_der, now).unwrap();
        assert!(
            info.subject.contains("CN=mail.example.com"),
            "{}",
            info.subject
        );
        assert!(info.subject.contains("C=SE"), "{}", info.subject);
        assert_eq!(info.dns_names, vec!["mx.example.com".to_string()]);
        assert_eq!(info.days_left, 29);
        assert_eq!(made.key.public_key_spki().unwrap(), info.spki_der);
        assert!(
            made.csr_pem
                .starts_with("-----BEGIN CERTIFICATE REQUEST-----")
        );
    }

    #[test]
    fn bad_requests_are_refused() {
        let now = OffsetDateTime::now_utc();
        let mut req = SelfSignedRequest::new(Subject::new("mail.example.com"));
        req.days = 0;
        assert!(matches!(
            create_self_signed(&req, now),
            Err(Error::ValidityOutOfRange { .. })
        ));
        req.days = 10;
        req.signature = SignatureAlgorithm::RsaSha384;
        assert!(matches!(
            create_self_signed(&req, now),
            Err(Error::SignatureAlgorithmMismatch { .. })
        ));
        let mut req = SelfSignedRequest::new(Subject::new("localhost"));
        req.fqdn = FqdnCheck::Required;
        assert!(matches!(
            create_self_signed(&req, now),
            Err(Error::NotFqdn { .. })
        ));
    }
}
