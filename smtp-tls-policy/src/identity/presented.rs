//! Presented identities (RFC 6125 §1.8): what a server certificate claims to be, extracted with
//! x509-parser — which, unlike rustls-webpki, also reads the subject CN and version-1
//! certificates.

use std::fmt;
use std::net::IpAddr;

use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

use crate::chain::CertPosition;
use crate::error::Error;

/// The family of hash inside a certificate's signature algorithm, as far as X.509 validation
/// cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SignatureHash {
    /// MD2 or MD5 (broken).
    Md5,
    /// SHA-1 (collisions demonstrated). Never verified: path validation refuses a SHA-1
    /// signature anywhere in the chain ([`crate::Error::LegacySignature`]).
    Sha1,
    /// SHA-2 family, or a scheme with a built-in hash (Ed25519, ML-DSA).
    Sha2OrBetter,
    /// An algorithm this crate does not recognise. X.509 validation lets it pass: path
    /// validation verifies only the algorithms of rustls' aws-lc-rs provider, none of them weak.
    #[default]
    Unknown,
}

/// Where a presented name comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NameSource {
    /// The subject's commonName attribute.
    CommonName,
    /// A subjectAltName dNSName.
    SanDns,
    /// A subjectAltName iPAddress.
    SanIp,
}

/// One presented identity, with its source.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PresentedName {
    /// Where it was found.
    pub source: NameSource,
    /// The value as presented (CN/dNSName text, or the IP address in text form).
    pub value: String,
}

impl fmt::Display for PresentedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = match self.source {
            NameSource::CommonName => "CN",
            NameSource::SanDns => "DNS",
            NameSource::SanIp => "IP",
        };
        write!(f, "{tag}:{}", self.value)
    }
}

/// The identity-relevant view of a server certificate (parsed once; policy lives elsewhere).
///
/// ```
/// use smtp_tls_policy::identity::PresentedIdentities;
/// let key = rcgen::KeyPair::generate().unwrap();
/// let mut params = rcgen::CertificateParams::new(vec!["mx.example.com".into()]).unwrap();
/// params.distinguished_name.push(rcgen::DnType::CommonName, "mx.example.com");
/// let cert = params.self_signed(&key).unwrap();
/// let ids = PresentedIdentities::from_der(cert.der()).unwrap();
/// assert_eq!(ids.common_names, ["mx.example.com"]);
/// assert_eq!(ids.san_dns_names, ["mx.example.com"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct PresentedIdentities {
    /// Subject commonName values that are strings (most certificates have zero or one).
    pub common_names: Vec<String>,
    /// SAN dNSName entries that are valid IA5/UTF-8 text.
    pub san_dns_names: Vec<String>,
    /// SAN iPAddress entries (4 or 16 octets; others are ignored).
    pub san_ip_addresses: Vec<IpAddr>,
    /// Whether the certificate has a subjectAltName extension at all.
    pub has_san_extension: bool,
    /// The X.509 version, 1-based (1, 2 or 3).
    pub version: u32,
    /// Hash family of the certificate's signature algorithm.
    pub signature_hash: SignatureHash,
    /// Dotted OID of the certificate's signature algorithm.
    pub signature_algorithm: String,
}

impl PresentedIdentities {
    /// Parses a DER certificate (the leaf) and extracts its identities.
    pub fn from_der(der: &[u8]) -> Result<Self, Error> {
        let (_, cert) =
            X509Certificate::from_der(der).map_err(|e| Error::MalformedCertificate {
                position: CertPosition::Leaf,
                detail: e.to_string(),
            })?;
        Self::from_certificate(&cert)
    }

    /// Extracts identities from an already parsed certificate.
    pub fn from_certificate(cert: &X509Certificate<'_>) -> Result<Self, Error> {
        let common_names = cert
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok())
            .map(str::to_owned)
            .collect();
        let san = cert
            .subject_alternative_name()
            .map_err(|e| Error::MalformedCertificate {
                position: CertPosition::Leaf,
                detail: format!("subjectAltName: {e}"),
            })?;
        let mut san_dns_names = Vec::new();
        let mut san_ip_addresses = Vec::new();
        if let Some(san) = &san {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(dns) => san_dns_names.push((*dns).to_owned()),
                    GeneralName::IPAddress(bytes) => {
                        if let Some(ip) = ip_from_octets(bytes) {
                            san_ip_addresses.push(ip);
                        }
                    }
                    _ => {}
                }
            }
        }
        let oid = cert.signature_algorithm.algorithm.to_id_string();
        Ok(Self {
            common_names,
            san_dns_names,
            san_ip_addresses,
            has_san_extension: san.is_some(),
            version: cert.version().0 + 1,
            signature_hash: hash_of(&oid),
            signature_algorithm: oid,
        })
    }

    /// Every presented name, CN first, then SAN dNSNames, then SAN iPAddresses.
    pub fn all_names(&self) -> impl Iterator<Item = PresentedName> + '_ {
        let cn = self.common_names.iter().map(|v| PresentedName {
            source: NameSource::CommonName,
            value: v.clone(),
        });
        cn.chain(self.san_names())
    }

    /// SAN dNSNames then SAN iPAddresses.
    pub fn san_names(&self) -> impl Iterator<Item = PresentedName> + '_ {
        let dns = self.san_dns_names.iter().map(|v| PresentedName {
            source: NameSource::SanDns,
            value: v.clone(),
        });
        let ip = self.san_ip_addresses.iter().map(|ip| PresentedName {
            source: NameSource::SanIp,
            value: ip.to_string(),
        });
        dns.chain(ip)
    }
}

/// An IP address from a SAN iPAddress OCTET STRING (RFC 5280 §4.2.1.6: 4 or 16 octets).
pub(crate) fn ip_from_octets(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

pub(crate) fn hash_of(oid: &str) -> SignatureHash {
    match oid {
        // md2WithRSAEncryption, md5WithRSAEncryption, md5WithRSASignature (OIW)
        "1.2.840.113549.1.1.2" | "1.2.840.113549.1.1.4" | "1.3.14.3.2.25" => SignatureHash::Md5,
        // sha1WithRSAEncryption (PKCS#1 and OIW), ecdsa-with-SHA1, dsa-with-sha1
        "1.2.840.113549.1.1.5" | "1.3.14.3.2.29" | "1.2.840.10045.4.1" | "1.2.840.10040.4.3" => {
            SignatureHash::Sha1
        }
        // sha224/256/384/512WithRSAEncryption, RSASSA-PSS, ecdsa-with-SHA224..512, Ed25519, Ed448
        "1.2.840.113549.1.1.14"
        | "1.2.840.113549.1.1.11"
        | "1.2.840.113549.1.1.12"
        | "1.2.840.113549.1.1.13"
        | "1.2.840.113549.1.1.10"
        | "1.2.840.10045.4.3.1"
        | "1.2.840.10045.4.3.2"
        | "1.2.840.10045.4.3.3"
        | "1.2.840.10045.4.3.4"
        | "1.3.101.112"
        | "1.3.101.113" => SignatureHash::Sha2OrBetter,
        _ => SignatureHash::Unknown,
    }
}
