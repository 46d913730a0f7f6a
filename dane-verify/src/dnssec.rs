//! The DNSSEC status of a DNS answer (RFC 4035 §4.3), as DANE needs it.

/// How far a DNS answer (records or a denial of existence) is proven by DNSSEC.
///
/// DANE acts only on [`DnssecStatus::Secure`] data (RFC 7672 §2.1.1). The default is the least
/// trusted value, [`DnssecStatus::Indeterminate`].
///
/// ```
/// use dane_verify::DnssecStatus;
/// assert_eq!(DnssecStatus::default(), DnssecStatus::Indeterminate);
/// assert!(DnssecStatus::Secure.is_secure());
/// assert!(DnssecStatus::Bogus.is_failure());
/// ```
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DnssecStatus {
    /// Validated by an unbroken chain of signatures from a trust anchor.
    Secure,
    /// Proven to be outside any signed zone (an insecure delegation): usable as plain DNS,
    /// never for DANE.
    Insecure,
    /// Signatures exist but do not validate: a forgery or a broken zone.
    Bogus,
    /// Could not be determined (lookup failure, SERVFAIL, timeout, no validation).
    #[default]
    Indeterminate,
}

impl DnssecStatus {
    /// Whether DANE may act on this data.
    #[must_use]
    pub fn is_secure(self) -> bool {
        self == Self::Secure
    }

    /// Whether the status means "the lookup failed" (bogus or indeterminate): the answer can be
    /// trusted neither as present nor as absent, so the caller defers (RFC 7672 §2.1.1).
    #[must_use]
    pub fn is_failure(self) -> bool {
        matches!(self, Self::Bogus | Self::Indeterminate)
    }

    /// The combined status of data that depends on several answers (a CNAME chain and its
    /// target): the weakest link wins, failures before insecure.
    pub fn combine(self, other: Self) -> Self {
        use DnssecStatus::{Bogus, Indeterminate, Insecure, Secure};
        match (self, other) {
            (Bogus, _) | (_, Bogus) => Bogus,
            (Indeterminate, _) | (_, Indeterminate) => Indeterminate,
            (Insecure, _) | (_, Insecure) => Insecure,
            (Secure, Secure) => Secure,
        }
    }

    /// Lower-case name for logs and JSON: `secure`, `insecure`, `bogus`, `indeterminate`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Secure => "secure",
            Self::Insecure => "insecure",
            Self::Bogus => "bogus",
            Self::Indeterminate => "indeterminate",
        }
    }
}
