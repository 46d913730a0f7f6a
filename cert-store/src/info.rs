//! What a certificate says: subject, issuer, names, validity and days left.
//!
//! Seed, "Working with Certificates": the certificate list shows every certificate; we add the
//! days left before expiry (a mail server that presents an expired certificate fails DANE-TA
//! and PKIX peers).

use rustls_pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use x509_parser::extensions::GeneralName;

use crate::error::{Error, Result};

/// A parsed summary of one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CertInfo {
    /// Subject distinguished name (RFC 4514 text).
    pub subject: String,
    /// Issuer distinguished name.
    pub issuer: String,
    /// Serial number, hex.
    pub serial: String,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// Whole days from `now` until `not_after`; negative once expired.
    pub days_left: i64,
    /// DNS names from the subject alternative name extension.
    pub dns_names: Vec<String>,
    /// IP addresses from the subject alternative name extension, as text.
    pub ip_addresses: Vec<String>,
    /// Common name(s) of the subject.
    pub common_names: Vec<String>,
    /// Subject equals issuer.
    pub self_issued: bool,
    /// The basic constraints say CA.
    pub is_ca: bool,
    /// SHA-256 of the whole certificate, hex.
    pub sha256: String,
    /// DER SubjectPublicKeyInfo.
    pub spki_der: Vec<u8>,
}

impl CertInfo {
    /// Parses a DER certificate; `now` fixes `days_left`.
    pub fn from_der(der: &[u8], now: OffsetDateTime) -> Result<Self> {
        let (rest, cert) =
            x509_parser::parse_x509_certificate(der).map_err(|e| Error::InvalidCertificate {
                reason: e.to_string(),
            })?;
        if !rest.is_empty() {
            return Err(Error::InvalidCertificate {
                reason: "trailing data after the certificate".into(),
            });
        }
        let not_before = cert.validity().not_before.to_datetime();
        let not_after = cert.validity().not_after.to_datetime();
        let mut dns_names = Vec::new();
        let mut ip_addresses = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(d) => dns_names.push((*d).to_string()),
                    GeneralName::IPAddress(ip) => ip_addresses.push(ip_text(ip)),
                    _ => {}
                }
            }
        }
        let common_names = cert
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok().map(str::to_string))
            .collect();
        Ok(Self {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            serial: cert.raw_serial_as_string().replace(':', ""),
            not_before,
            not_after,
            days_left: (not_after - now).whole_days(),
            dns_names,
            ip_addresses,
            common_names,
            self_issued: cert.subject().as_raw() == cert.issuer().as_raw(),
            is_ca: cert.is_ca(),
            sha256: hex::encode(Sha256::digest(der)),
            spki_der: cert.public_key().raw.to_vec(),
        })
    }

    /// Parses a rustls certificate.
    pub fn from_cert(cert: &CertificateDer<'_>, now: OffsetDateTime) -> Result<Self> {
        Self::from_der(cert.as_ref(), now)
    }

    /// The certificate is valid at `now` no longer than `days` more days (or already expired).
    pub fn expires_within(&self, days: u32) -> bool {
        self.days_left <= i64::from(days)
    }
}

fn ip_text(raw: &[u8]) -> String {
    match raw.len() {
        4 => std::net::Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]).to_string(),
        16 => {
            let mut b = [0u8; 16];
            b.copy_from_slice(raw);
            std::net::Ipv6Addr::from(b).to_string()
        }
        _ => hex::encode(raw),
    }
}
