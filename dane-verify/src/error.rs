//! The one error type of this crate.

use thiserror::Error;

/// Everything that can go wrong in `dane-verify`: parsing TLSA records, reading certificates,
/// limits, and (with the `resolver` feature) DNS lookups.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    /// The presentation text lacks a field (`usage`, `selector`, `matching type` or `data`).
    #[error("TLSA text: missing {field} field")]
    MissingField {
        /// Which field is missing.
        field: &'static str,
    },
    /// A numeric field is not a decimal integer in 0..=255 (RFC 6698 §2.2).
    #[error("TLSA text: {field} field {value:?} is not an integer 0..=255")]
    BadNumber {
        /// Which field.
        field: &'static str,
        /// The text found (truncated to 32 characters).
        value: String,
    },
    /// The certificate association data is not hexadecimal (or has an odd digit count).
    #[error("TLSA text: certificate association data is not hex at character {position}")]
    BadHex {
        /// Offset of the first bad character within the association data (whitespace removed).
        position: usize,
    },
    /// The association data does not have the length its matching type requires.
    #[error("TLSA: {matching} data must be {expected} bytes, found {found}")]
    WrongDigestLength {
        /// Name of the matching type (`SHA2-256`, `SHA2-512`).
        matching: &'static str,
        /// The length required.
        expected: usize,
        /// The length found.
        found: usize,
    },
    /// The certificate association data is empty.
    #[error("TLSA: empty certificate association data")]
    EmptyData,
    /// Wire RDATA shorter than its fixed fields or its declared length.
    #[error("TLSA wire: truncated RDATA ({found} bytes, need {needed})")]
    Truncated {
        /// Bytes available.
        found: usize,
        /// Bytes needed.
        needed: usize,
    },
    /// Wire data continues after the declared RDATA length.
    #[error("TLSA wire: {extra} bytes of trailing data after the RDATA")]
    TrailingData {
        /// How many bytes follow.
        extra: usize,
    },
    /// Input larger than a configured limit (text length, records, chain length ...).
    #[error("limit exceeded: {what} (max {max}, found {found})")]
    Limit {
        /// Which limit.
        what: &'static str,
        /// The limit.
        max: usize,
        /// The size found.
        found: usize,
    },
    /// A certificate could not be parsed as X.509.
    #[error("certificate at depth {depth} is not valid X.509 DER: {reason}")]
    BadCertificate {
        /// Position in the chain (0 = leaf).
        depth: usize,
        /// Parser message.
        reason: String,
    },
    /// The leaf's keyUsage extension is present but allows no TLS server use: none of
    /// digitalSignature, keyEncipherment, keyAgreement (RFC 5280 §4.2.1.3; OpenSSL's
    /// `ssl_server` purpose).
    #[error(
        "leaf keyUsage ({found}) allows no TLS server use: needs digitalSignature, \
         keyEncipherment or keyAgreement (RFC 5280 4.2.1.3)"
    )]
    KeyUsageNotForServer {
        /// The key usages the leaf asserts, comma-separated (`none` when the bit string is
        /// empty).
        found: String,
    },
    /// A name taken from the leaf's subject CN to be used as a DNS identity breaks the dNSName
    /// constraints of a CA on the validated path (RFC 5280 §4.2.1.10; rustls-webpki applies
    /// them to SAN entries only). See [`crate::check_cn_name_constraints`].
    #[error(
        "{name:?} (from the subject CN, used as a DNS identity) {breach} of the CA at depth \
         {depth} (RFC 5280 4.2.1.10 nameConstraints)"
    )]
    CnOutsideNameConstraints {
        /// The name checked, as handed in.
        name: String,
        /// The CA's place in the validated path (1 = the leaf's issuer).
        depth: usize,
        /// How the name breaks its constraints.
        breach: crate::ConstraintBreach,
    },
    /// A DNS name (reference identity, MX host, TLSA base domain) is not valid.
    #[error("invalid DNS name {name:?}")]
    BadName {
        /// The offending name.
        name: String,
    },
    /// A DNS lookup failed (resolver feature).
    #[error("DNS lookup of {name} {rtype} failed: {reason}")]
    Lookup {
        /// The query name.
        name: String,
        /// The query type.
        rtype: String,
        /// What went wrong.
        reason: String,
    },
    /// A DNS lookup did not answer in time (resolver feature).
    #[error("DNS lookup of {name} {rtype} timed out after {millis} ms")]
    Timeout {
        /// The query name.
        name: String,
        /// The query type.
        rtype: String,
        /// The timeout.
        millis: u64,
    },
    /// The resolver cannot validate DNSSEC, so DANE must not be reported as available.
    #[error("resolver cannot validate DNSSEC: {reason}")]
    NoValidation {
        /// What the start-up probe saw.
        reason: String,
    },
    /// The resolver configuration is unusable (e.g. AD-bit trust for a non-loopback address).
    #[error("resolver configuration: {reason}")]
    Config {
        /// What is wrong.
        reason: String,
    },
    /// A value of the resolver configuration is out of range or malformed (resolver
    /// feature, `ResolverConfig`).
    #[error("resolver configuration: {key}: {reason}")]
    ConfigValue {
        /// The key, e.g. `probe_interval_secs`.
        key: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A key of the resolver configuration needed by the chosen mode is missing (resolver
    /// feature, `ResolverConfig`).
    #[error("resolver configuration: {key} is required when {because}")]
    ConfigMissing {
        /// The missing key.
        key: &'static str,
        /// The setting that needs it.
        because: &'static str,
    },
    /// A trust-anchor file could not be read or parsed.
    #[error("trust anchor: {reason}")]
    TrustAnchor {
        /// What is wrong.
        reason: String,
    },
}
