//! The TLSA record and its registry enums, lossless for every octet value (RFC 6698 §7.2-7.4).

use std::fmt;

/// Certificate usage field (RFC 6698 §2.1.1, RFC 7218 acronyms).
///
/// ```text
///  0 PKIX-TA   CA constraint             (unusable for SMTP, RFC 7672 §3.1.3)
///  1 PKIX-EE   service certificate       (unusable for SMTP, RFC 7672 §3.1.3)
///  2 DANE-TA   trust anchor assertion
///  3 DANE-EE   domain-issued certificate
///  4-254       unassigned
///  255 PrivCert private use
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CertUsage {
    /// 0: PKIX-TA, a CA of a PKIX-valid chain.
    PkixTa,
    /// 1: PKIX-EE, the PKIX-valid end-entity certificate.
    PkixEe,
    /// 2: DANE-TA, a trust anchor for the chain.
    DaneTa,
    /// 3: DANE-EE, the end-entity certificate itself.
    DaneEe,
    /// 4..=254: not assigned by IANA.
    Unassigned(u8),
    /// 255: private use.
    Private,
}

impl From<u8> for CertUsage {
    fn from(v: u8) -> Self {
        match v {
            0 => Self::PkixTa,
            1 => Self::PkixEe,
            2 => Self::DaneTa,
            3 => Self::DaneEe,
            255 => Self::Private,
            n => Self::Unassigned(n),
        }
    }
}

impl From<CertUsage> for u8 {
    fn from(v: CertUsage) -> Self {
        match v {
            CertUsage::PkixTa => 0,
            CertUsage::PkixEe => 1,
            CertUsage::DaneTa => 2,
            CertUsage::DaneEe => 3,
            CertUsage::Private => 255,
            CertUsage::Unassigned(n) => n,
        }
    }
}

/// Selector field (RFC 6698 §2.1.2): which part of a certificate is matched.
///
/// ```text
///  0 Cert  full certificate (DER)
///  1 SPKI  SubjectPublicKeyInfo (DER)
///  2-254   unassigned
///  255     private use
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Selector {
    /// 0: the full DER certificate.
    Cert,
    /// 1: the DER SubjectPublicKeyInfo.
    Spki,
    /// 2..=254: not assigned.
    Unassigned(u8),
    /// 255: private use.
    Private,
}

impl From<u8> for Selector {
    fn from(v: u8) -> Self {
        match v {
            0 => Self::Cert,
            1 => Self::Spki,
            255 => Self::Private,
            n => Self::Unassigned(n),
        }
    }
}

impl From<Selector> for u8 {
    fn from(v: Selector) -> Self {
        match v {
            Selector::Cert => 0,
            Selector::Spki => 1,
            Selector::Private => 255,
            Selector::Unassigned(n) => n,
        }
    }
}

/// Matching type field (RFC 6698 §2.1.3): how the selected content is compared.
///
/// ```text
///  0 Full      exact match of the selected content
///  1 SHA2-256  SHA-256 digest (32 bytes)
///  2 SHA2-512  SHA-512 digest (64 bytes)
///  3-254       unassigned
///  255         private use
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Matching {
    /// 0: exact match.
    Full,
    /// 1: SHA-256 digest.
    Sha256,
    /// 2: SHA-512 digest.
    Sha512,
    /// 3..=254: not assigned.
    Unassigned(u8),
    /// 255: private use.
    Private,
}

impl Matching {
    /// The digest length this matching type requires, if it is a known digest.
    #[must_use]
    pub fn digest_len(self) -> Option<usize> {
        match self {
            Self::Sha256 => Some(32),
            Self::Sha512 => Some(64),
            _ => None,
        }
    }

    /// Strength rank for digest agility (RFC 7671 §9): higher is stronger; `None` for types
    /// that are not digests we implement.
    #[must_use]
    pub(crate) fn digest_rank(self) -> Option<u8> {
        match self {
            Self::Sha256 => Some(1),
            Self::Sha512 => Some(2),
            _ => None,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Full => "Full",
            Self::Sha256 => "SHA2-256",
            Self::Sha512 => "SHA2-512",
            Self::Unassigned(_) => "unassigned",
            Self::Private => "PrivMatch",
        }
    }
}

impl From<u8> for Matching {
    fn from(v: u8) -> Self {
        match v {
            0 => Self::Full,
            1 => Self::Sha256,
            2 => Self::Sha512,
            255 => Self::Private,
            n => Self::Unassigned(n),
        }
    }
}

impl From<Matching> for u8 {
    fn from(v: Matching) -> Self {
        match v {
            Matching::Full => 0,
            Matching::Sha256 => 1,
            Matching::Sha512 => 2,
            Matching::Private => 255,
            Matching::Unassigned(n) => n,
        }
    }
}

/// Longest certificate association data: RDATA is at most 65535 bytes, 3 are the fields.
pub const MAX_DATA_LEN: usize = 65535 - 3;

/// One TLSA record's RDATA (RFC 6698 §2.1).
///
/// `Display` prints the presentation form `U S M HEX` with lowercase hex, as
/// `postfix tls output-server-tlsa` and `dig` (without spaces) do.
///
/// ```
/// use dane_verify::{CertUsage, Matching, Selector, TlsaRecord};
/// let r: TlsaRecord = "3 1 1 0123456789abcdef0123456789abcdef 0123456789ABCDEF0123456789abcdef"
///     .parse()
///     .unwrap();
/// assert_eq!(r.usage(), CertUsage::DaneEe);
/// assert_eq!(r.selector(), Selector::Spki);
/// assert_eq!(r.matching(), Matching::Sha256);
/// assert_eq!(
///     r.to_string(),
///     "3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
/// );
/// assert_eq!(
///     r.to_rr_line("mx.example", 25),
///     format!("_25._tcp.mx.example. IN TLSA {r}")
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TlsaRecord {
    usage: CertUsage,
    selector: Selector,
    matching: Matching,
    data: Vec<u8>,
}

impl TlsaRecord {
    /// Builds a record, checking what every parser checks: data not empty, digest lengths.
    pub fn new(
        usage: CertUsage,
        selector: Selector,
        matching: Matching,
        data: Vec<u8>,
    ) -> Result<Self, crate::Error> {
        if data.is_empty() {
            return Err(crate::Error::EmptyData);
        }
        if data.len() > MAX_DATA_LEN {
            return Err(crate::Error::Limit {
                what: "TLSA certificate association data",
                max: MAX_DATA_LEN,
                found: data.len(),
            });
        }
        if let Some(expected) = matching.digest_len() {
            if data.len() != expected {
                return Err(crate::Error::WrongDigestLength {
                    matching: matching.name(),
                    expected,
                    found: data.len(),
                });
            }
        }
        Ok(Self {
            usage,
            selector,
            matching,
            data,
        })
    }

    /// The certificate usage.
    #[must_use]
    pub fn usage(&self) -> CertUsage {
        self.usage
    }

    /// The selector.
    #[must_use]
    pub fn selector(&self) -> Selector {
        self.selector
    }

    /// The matching type.
    #[must_use]
    pub fn matching(&self) -> Matching {
        self.matching
    }

    /// The certificate association data.
    #[must_use]
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Whether an SMTP client may use this record (RFC 7672 §3.1.3): only DANE-TA(2) and
    /// DANE-EE(3), with a selector and matching type this crate implements.
    #[must_use]
    pub fn is_usable_for_smtp(&self) -> bool {
        matches!(self.usage, CertUsage::DaneTa | CertUsage::DaneEe) && self.is_supported()
    }

    /// Whether the selector and matching type are ones this crate implements.
    #[must_use]
    pub fn is_supported(&self) -> bool {
        matches!(self.selector, Selector::Cert | Selector::Spki)
            && matches!(
                self.matching,
                Matching::Full | Matching::Sha256 | Matching::Sha512
            )
    }

    /// The RDATA in wire form (RFC 6698 §2.1).
    #[must_use]
    pub fn to_wire(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(3 + self.data.len());
        out.push(self.usage.into());
        out.push(self.selector.into());
        out.push(self.matching.into());
        out.extend_from_slice(&self.data);
        out
    }

    /// The full zone-file line for this record at `_PORT._tcp.HOST.` (RFC 6698 §3), e.g.
    /// `_25._tcp.mx.example. IN TLSA 3 1 1 ab..`. A trailing dot on `host` is accepted.
    #[must_use]
    pub fn to_rr_line(&self, host: &str, port: u16) -> String {
        let host = host.trim_end_matches('.');
        format!("_{port}._tcp.{host}. IN TLSA {self}")
    }
}

impl fmt::Display for TlsaRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {}",
            u8::from(self.usage),
            u8::from(self.selector),
            u8::from(self.matching),
            hex::encode(&self.data)
        )
    }
}
