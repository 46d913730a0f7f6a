//! The registry values of a report: result types (RFC 8460 §4.3, IANA "STARTTLS Validation
//! Result Types") and policy types (§4.4 `policy-type`).
//!
//! Both lists may grow, so both enums are lossless: a value this crate does not know is kept in
//! `Other` rather than rejected (a receiver must not drop a report because a sender is newer).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::mta_sts::StsFailureKind;

/// Why a session failed, as a report states it (RFC 8460 §4.3).
///
/// | value | section | meaning |
/// |---|---|---|
/// | `starttls-not-supported` | 4.3.1 | the receiving MX did not offer STARTTLS |
/// | `certificate-host-mismatch` | 4.3.1 | the certificate does not name the MX host |
/// | `certificate-expired` | 4.3.1 | the certificate has expired |
/// | `certificate-not-trusted` | 4.3.1 | the chain does not end at a trusted CA |
/// | `validation-failure` | 4.3.1 | any other validation failure |
/// | `tlsa-invalid` | 4.3.2.1 | the TLSA record is invalid |
/// | `dnssec-invalid` | 4.3.2.1 | DNSSEC validation of the records failed |
/// | `dane-required` | 4.3.2.1 | DANE was required but no usable TLSA record was found |
/// | `sts-policy-fetch-error` | 4.3.2.2 | the MTA-STS policy could not be fetched |
/// | `sts-policy-invalid` | 4.3.2.2 | the fetched MTA-STS policy is invalid |
/// | `sts-webpki-invalid` | 4.3.2.2 | the policy host's HTTPS certificate did not validate |
///
/// Known values are matched ASCII case-insensitively and written in lower case; anything else is
/// [`ResultType::Other`], kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum ResultType {
    /// `starttls-not-supported`
    StarttlsNotSupported,
    /// `certificate-host-mismatch`
    CertificateHostMismatch,
    /// `certificate-expired`
    CertificateExpired,
    /// `certificate-not-trusted`
    CertificateNotTrusted,
    /// `validation-failure`
    ValidationFailure,
    /// `tlsa-invalid`
    TlsaInvalid,
    /// `dnssec-invalid`
    DnssecInvalid,
    /// `dane-required`
    DaneRequired,
    /// `sts-policy-fetch-error`
    StsPolicyFetchError,
    /// `sts-policy-invalid`
    StsPolicyInvalid,
    /// `sts-webpki-invalid`
    StsWebpkiInvalid,
    /// A value not in the list above, as the report wrote it.
    Other(String),
}

impl ResultType {
    /// Every known result type, in the RFC's order.
    pub const KNOWN: [Self; 11] = [
        Self::StarttlsNotSupported,
        Self::CertificateHostMismatch,
        Self::CertificateExpired,
        Self::CertificateNotTrusted,
        Self::ValidationFailure,
        Self::TlsaInvalid,
        Self::DnssecInvalid,
        Self::DaneRequired,
        Self::StsPolicyFetchError,
        Self::StsPolicyInvalid,
        Self::StsWebpkiInvalid,
    ];

    /// The value as written in a report.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::StarttlsNotSupported => "starttls-not-supported",
            Self::CertificateHostMismatch => "certificate-host-mismatch",
            Self::CertificateExpired => "certificate-expired",
            Self::CertificateNotTrusted => "certificate-not-trusted",
            Self::ValidationFailure => "validation-failure",
            Self::TlsaInvalid => "tlsa-invalid",
            Self::DnssecInvalid => "dnssec-invalid",
            Self::DaneRequired => "dane-required",
            Self::StsPolicyFetchError => "sts-policy-fetch-error",
            Self::StsPolicyInvalid => "sts-policy-invalid",
            Self::StsWebpkiInvalid => "sts-webpki-invalid",
            Self::Other(value) => value,
        }
    }
}

impl From<&str> for ResultType {
    fn from(value: &str) -> Self {
        Self::KNOWN
            .into_iter()
            .find(|known| known.as_str().eq_ignore_ascii_case(value))
            .unwrap_or_else(|| Self::Other(value.to_owned()))
    }
}

/// The MTA-STS verdict's failure kind as the result type a report states (one mapping, RFC 8460
/// §4.3; the kinds name their result types).
impl From<StsFailureKind> for ResultType {
    fn from(kind: StsFailureKind) -> Self {
        Self::from(kind.result_type())
    }
}

impl fmt::Display for ResultType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ResultType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ResultType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Option::<String>::deserialize(deserializer)?.unwrap_or_default();
        Ok(Self::from(value.as_str()))
    }
}

/// The kind of policy a report entry was evaluated against (RFC 8460 §4.4 `policy-type`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum PolicyType {
    /// `sts`: an MTA-STS policy (RFC 8461).
    Sts,
    /// `tlsa`: DANE TLSA records (RFC 7672).
    Tlsa,
    /// `no-policy-found`: neither applied.
    NoPolicyFound,
    /// A value not in the list above, as the report wrote it (seen in the wild:
    /// `invalid-policy-type`).
    Other(String),
}

impl PolicyType {
    /// The value as written in a report.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::Sts => "sts",
            Self::Tlsa => "tlsa",
            Self::NoPolicyFound => "no-policy-found",
            Self::Other(value) => value,
        }
    }
}

impl From<&str> for PolicyType {
    fn from(value: &str) -> Self {
        [Self::Sts, Self::Tlsa, Self::NoPolicyFound]
            .into_iter()
            .find(|known| known.as_str().eq_ignore_ascii_case(value))
            .unwrap_or_else(|| Self::Other(value.to_owned()))
    }
}

impl fmt::Display for PolicyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for PolicyType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for PolicyType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Option::<String>::deserialize(deserializer)?.unwrap_or_default();
        Ok(Self::from(value.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mta_sts_failure_kind_is_a_known_result_type() {
        use StsFailureKind as K;
        let table = [
            (K::StsPolicyFetchError, ResultType::StsPolicyFetchError),
            (K::StsPolicyInvalid, ResultType::StsPolicyInvalid),
            (K::StsWebpkiInvalid, ResultType::StsWebpkiInvalid),
            (
                K::CertificateHostMismatch,
                ResultType::CertificateHostMismatch,
            ),
            (K::CertificateExpired, ResultType::CertificateExpired),
            (K::CertificateNotTrusted, ResultType::CertificateNotTrusted),
            (K::ValidationFailure, ResultType::ValidationFailure),
        ];
        for (kind, expected) in table {
            assert_eq!(ResultType::from(kind), expected, "{kind:?}");
        }
    }

    #[test]
    fn known_values_round_trip_and_unknown_ones_are_kept() {
        for known in ResultType::KNOWN {
            assert_eq!(ResultType::from(known.as_str()), known);
        }
        assert_eq!(
            ResultType::from("Certificate-Expired"),
            ResultType::CertificateExpired
        );
        assert_eq!(
            ResultType::from("mta-sts-new-thing"),
            ResultType::Other("mta-sts-new-thing".into())
        );
        assert_eq!(
            PolicyType::from("no-policy-found"),
            PolicyType::NoPolicyFound
        );
        assert_eq!(
            PolicyType::from("invalid-policy-type").as_str(),
            "invalid-policy-type"
        );
    }
}
