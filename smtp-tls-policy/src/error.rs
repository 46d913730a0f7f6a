//! The crate's error type: one enum, a variant per failure, each carrying its context.

use std::fmt;

use crate::chain::{CertPosition, ConstraintBreach, Violation};
use crate::identity::NameError;

/// Everything that can fail in this crate: certificate verification (chain, identity, checks),
/// the destination-control configuration, SMTP parsing and the STARTTLS drivers.
///
/// [`Error::kind`] gives a short stable category (used by `smtp-tls-check tlsverify --json` as
/// `"<kind>: <text>"`); `Display` gives the full sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A reference identity (destination domain, MX host, route host) is not a usable name.
    #[error("reference identity {name:?} is invalid: {reason}")]
    InvalidReferenceId {
        /// The name as given.
        name: String,
        /// Why it was refused.
        reason: NameError,
    },
    /// More MX host names than [`crate::identity::MAX_MX_HOSTS`] were handed in.
    #[error("too many MX host names: {count} (limit {limit})")]
    TooManyMxHosts {
        /// How many were given.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// The peer sent no certificate at all.
    #[error("the server presented no certificate")]
    EmptyChain,
    /// The peer sent more certificates than [`crate::chain::MAX_PRESENTED_CERTIFICATES`].
    #[error("the server presented {count} certificates (limit {limit})")]
    TooManyCertificates {
        /// How many were presented.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// A certificate could not be parsed as DER X.509.
    #[error("{position} certificate is malformed: {detail}")]
    MalformedCertificate {
        /// Which certificate.
        position: CertPosition,
        /// The parser's description of the problem.
        detail: String,
    },
    /// No trust anchor is configured, so no chain can be trusted.
    #[error("no trust anchor is configured (no CA list given)")]
    NoTrustAnchors,
    /// A trust-anchor certificate could not be turned into a trust anchor.
    #[error("trust anchor #{index} is unusable: {detail}")]
    InvalidTrustAnchor {
        /// Index of the certificate in the list handed in.
        index: usize,
        /// rustls-webpki's description.
        detail: String,
    },
    /// rustls-webpki refused the chain (signature, validity, path building, EKU, name
    /// constraints...).
    #[error("certificate chain refused by path validation: {0:?}")]
    Chain(webpki::Error),
    /// The validated path has more intermediates than allowed.
    #[error("certificate path has {found} intermediates (limit {limit})")]
    ChainTooLong {
        /// Intermediates in the validated path.
        found: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A certificate on the validated path breaks an RFC 5280 / CA/Browser Forum rule that
    /// rustls-webpki does not check.
    #[error("{position} certificate: {violation}")]
    Structure {
        /// Which certificate.
        position: CertPosition,
        /// The rule broken.
        violation: Violation,
    },
    /// The certificate carries no identity usable by the chosen algorithm (e.g. no SAN in strict
    /// mode).
    #[error("the certificate presents no identity usable by the {algorithm} algorithm")]
    NoPresentedIdentity {
        /// The algorithm's name.
        algorithm: &'static str,
    },
    /// No reference identity matched any presented identity.
    #[error("no reference identity {reference_ids:?} matches the presented names {presented:?}")]
    NameMismatch {
        /// Reference identities tried, in order.
        reference_ids: Vec<String>,
        /// Presented identities considered.
        presented: Vec<String>,
    },
    /// FQDN validation: a CN or SAN dNSName is not in FQDN format (seed: "Enabling TLS and
    /// Certificate Verification on Delivery", optional FQDN validation).
    #[error("presented name {name:?} is not a fully-qualified domain name")]
    NotFqdn {
        /// The offending presented name.
        name: String,
    },
    /// X.509 validation: the server certificate is signed with MD5 or SHA-1.
    #[error("server certificate is signed with the weak algorithm {algorithm}")]
    WeakSignature {
        /// `MD5` or `SHA-1` (with the signature scheme).
        algorithm: String,
    },
    /// A certificate of the chain is not X.509 version 3. Always refused: rustls-webpki accepts
    /// only version 3, whatever the seed's optional X.509 validation switch says.
    #[error(
        "{position} certificate is X.509 version {version}: such chains are always refused \
         (rustls-webpki accepts only version 3); the seed's optional X.509 check cannot enable them"
    )]
    NotVersion3 {
        /// Which certificate.
        position: CertPosition,
        /// The version found (1-based: 1 or 2).
        version: u32,
    },
    /// A certificate of the chain is signed with SHA-1 or MD5. Always refused: rustls-webpki
    /// verifies no such signature, whatever the seed's optional X.509 validation switch says.
    #[error(
        "{position} certificate is signed with {algorithm}: SHA-1 and MD5 signatures are always \
         refused (rustls-webpki); the seed's optional signature-algorithm check cannot enable them"
    )]
    LegacySignature {
        /// Which certificate.
        position: CertPosition,
        /// `SHA-1` or `MD5`, with the signature algorithm's dotted OID.
        algorithm: String,
    },
    /// RFC 5280 §4.2.1.10 applied to the subject CN: a CN the identity algorithm uses as a DNS
    /// identity lies outside the dNSName constraints of a CA on the validated path
    /// (rustls-webpki constrains only SAN entries; OpenSSL reports a "permitted subtree
    /// violation").
    #[error(
        "subject CN {common_name:?}, used as a DNS identity, {breach} of the {constrained_by} \
         certificate (RFC 5280 4.2.1.10 nameConstraints)"
    )]
    CommonNameOutsideNameConstraints {
        /// The CN as presented.
        common_name: String,
        /// The CA whose nameConstraints it breaks.
        constrained_by: CertPosition,
        /// How.
        breach: ConstraintBreach,
    },
    /// The leaf's keyUsage extension allows no TLS server use: none of digitalSignature,
    /// keyEncipherment, keyAgreement (RFC 5280 §4.2.1.3; OpenSSL's `ssl_server` purpose). The
    /// one rule of [`dane_verify::check_server_key_usage`], applied on the DANE paths too.
    #[error(
        "leaf certificate keyUsage ({found}) allows no TLS server use: needs digitalSignature, \
         keyEncipherment or keyAgreement (RFC 5280 4.2.1.3)"
    )]
    LeafKeyUsageNotForServer {
        /// The key usages the leaf asserts, comma-separated (`none` when the bit string is
        /// empty).
        found: String,
    },
    /// X.509 validation: the server's host name is in neither the CN nor a SAN dNSName.
    #[error("server name {server_name:?} is in neither the CN nor a SAN dNSName")]
    ServerNameAbsent {
        /// The server (host) name looked for.
        server_name: String,
    },

    // --- listener gate, delivery machine, destination controls, STARTTLS drivers ---
    /// The destination-control configuration is invalid.
    #[error("{file}:{line}:{column}: {kind} (at `{text}`)")]
    DestinationConfig {
        /// File name (or a caller-chosen label for in-memory text).
        file: String,
        /// 1-based line of the offending text.
        line: usize,
        /// 1-based column of the offending text.
        column: usize,
        /// The offending text (truncated to 80 characters).
        text: String,
        /// What is wrong.
        kind: DestinationConfigErrorKind,
    },
    /// A recipient domain cannot be compared against the destination controls (empty, too
    /// long, not a domain name, or not ASCII and refused by IDNA): refused rather than given
    /// the default entry, which may be weaker than the entry meant for it.
    #[error("destination domain {domain:?} refused: {reason}")]
    InvalidDestinationDomain {
        /// The domain as given (truncated to 80 characters).
        domain: String,
        /// Why it cannot be compared.
        reason: &'static str,
    },
    /// A line from the peer exceeded the line-length limit (RFC 5321 §4.5.3.1).
    #[error("SMTP line longer than {limit} octets")]
    LineTooLong {
        /// The limit in octets.
        limit: usize,
    },
    /// A multi-line reply had more lines than allowed.
    #[error("SMTP reply has more than {limit} lines")]
    TooManyReplyLines {
        /// The limit in lines.
        limit: usize,
    },
    /// A reply could not be parsed.
    #[error("malformed SMTP reply: {reason}")]
    MalformedReply {
        /// What was wrong.
        reason: &'static str,
    },
    /// The peer answered a command with an unexpected reply.
    #[error("unexpected SMTP reply {code} to {command}: {text}")]
    SmtpReply {
        /// The command that was answered (`greeting` for the banner).
        command: &'static str,
        /// The reply code.
        code: u16,
        /// The reply text (first line, truncated).
        text: String,
    },
    /// A command line from the client could not be parsed.
    #[error("malformed SMTP command: {reason}")]
    MalformedCommand {
        /// What was wrong.
        reason: &'static str,
    },
    /// The peer closed the connection.
    #[error("connection closed by peer during {phase}")]
    ConnectionClosed {
        /// Which phase of the dialogue was running.
        phase: &'static str,
    },
    /// A network read or write failed.
    #[error("I/O error during {phase}: {kind}")]
    Io {
        /// Which phase of the dialogue was running.
        phase: &'static str,
        /// The I/O error kind.
        kind: IoKind,
    },
    /// A timeout (RFC 5321 §4.5.3.2) expired.
    #[error("timeout after {seconds} s during {phase}")]
    Timeout {
        /// Which phase of the dialogue was running.
        phase: &'static str,
        /// The timeout in seconds.
        seconds: u64,
    },
    /// The TLS handshake failed on the listener side.
    #[error("TLS handshake failed: {detail}")]
    TlsHandshake {
        /// The TLS library's description.
        detail: String,
    },
    /// A driver was used in a way the state machine does not allow.
    #[error("SMTP state violation: {what}")]
    StateViolation {
        /// What was attempted.
        what: &'static str,
    },

    // --- TLS-RPT (RFC 8460) ---
    /// A `_smtp._tls` TXT record is not a usable TLS-RPT record (RFC 8460 §3).
    #[error("TLS-RPT record refused: {kind}")]
    TlsRptRecord {
        /// What is wrong.
        kind: crate::tlsrpt::RecordErrorKind,
    },
    /// A received TLS report could not be read (RFC 8460 §4.4, §5).
    #[error("TLS report unreadable: {kind}")]
    TlsRptReport {
        /// What is wrong.
        kind: crate::tlsrpt::ReportErrorKind,
    },
    /// A TLS report could not be composed for sending (RFC 8460 §5).
    #[error("TLS report not composed: {kind}")]
    TlsRptCompose {
        /// What is wrong.
        kind: crate::tlsrpt::ComposeErrorKind,
    },

    // --- MTA-STS (RFC 8461) ---
    /// An MTA-STS policy file is invalid (`sts-policy-invalid` in TLS-RPT).
    #[error("MTA-STS policy invalid: {0}")]
    MtaStsPolicy(#[from] crate::mta_sts::PolicyError),
    /// An MTA-STS policy could not be fetched (see
    /// [`crate::mta_sts::FetchError::failure_kind`] for its TLS-RPT result type).
    #[cfg(feature = "mta-sts-fetch")]
    #[error("MTA-STS policy fetch failed: {0}")]
    MtaStsFetch(#[from] crate::mta_sts::FetchError),
}

impl Error {
    /// A short, stable category for the error (`reference-id`, `limit`, `certificate`, `trust`,
    /// `chain`, `rfc5280`, `identity`, `fqdn-check`, `x509-check`, `config`, `destination`,
    /// `protocol`, `smtp-reply`, `io`, `timeout`, `tls`, `state`, `tlsrpt-record`,
    /// `tlsrpt-report`, `mta-sts`).
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::InvalidReferenceId { .. } => "reference-id",
            Self::TooManyMxHosts { .. } | Self::TooManyCertificates { .. } => "limit",
            Self::EmptyChain | Self::MalformedCertificate { .. } => "certificate",
            Self::NoTrustAnchors | Self::InvalidTrustAnchor { .. } => "trust",
            Self::Chain(_)
            | Self::ChainTooLong { .. }
            | Self::NotVersion3 { .. }
            | Self::LegacySignature { .. }
            | Self::CommonNameOutsideNameConstraints { .. }
            | Self::LeafKeyUsageNotForServer { .. } => "chain",
            Self::Structure { .. } => "rfc5280",
            Self::NoPresentedIdentity { .. } | Self::NameMismatch { .. } => "identity",
            Self::NotFqdn { .. } => "fqdn-check",
            Self::WeakSignature { .. } | Self::ServerNameAbsent { .. } => "x509-check",
            Self::DestinationConfig { .. } => "config",
            Self::InvalidDestinationDomain { .. } => "destination",
            Self::LineTooLong { .. }
            | Self::TooManyReplyLines { .. }
            | Self::MalformedReply { .. }
            | Self::MalformedCommand { .. } => "protocol",
            Self::SmtpReply { .. } => "smtp-reply",
            Self::ConnectionClosed { .. } | Self::Io { .. } => "io",
            Self::Timeout { .. } => "timeout",
            Self::TlsHandshake { .. } => "tls",
            Self::StateViolation { .. } => "state",
            Self::TlsRptRecord { .. } => "tlsrpt-record",
            Self::TlsRptReport { .. } => "tlsrpt-report",
            Self::TlsRptCompose { .. } => "tlsrpt-compose",
            Self::MtaStsPolicy(_) => "mta-sts",
            #[cfg(feature = "mta-sts-fetch")]
            Self::MtaStsFetch(_) => "mta-sts",
        }
    }
}

/// A copyable description of an [`std::io::ErrorKind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoKind(pub std::io::ErrorKind);

impl fmt::Display for IoKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What is wrong in a destination-control configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DestinationConfigErrorKind {
    /// TOML syntax or schema error, with the TOML parser's message.
    #[error("{message}")]
    Toml {
        /// The TOML parser's message.
        message: String,
    },
    /// The key is not a valid domain or `.domain` parent.
    #[error("not a valid destination domain")]
    InvalidDomain,
    /// The same domain appears twice (after case folding / IDNA mapping).
    #[error("duplicate destination domain `{domain}`")]
    DuplicateDomain {
        /// The normalised domain.
        domain: String,
    },
    /// The default entry's TLS mode or DANE setting is `default`, which has nothing to inherit.
    #[error("the default entry cannot use `default`")]
    DefaultInDefaultEntry,
    /// An entry enables DANE but disables TLS.
    #[error("DANE `{dane}` needs TLS, but the entry sets tls = \"no\"")]
    DaneWithoutTls {
        /// The DANE setting written.
        dane: &'static str,
    },
    /// Too many entries.
    #[error("more than {limit} destination entries")]
    TooManyEntries {
        /// The limit.
        limit: usize,
    },
    /// The file is larger than the limit.
    #[error("configuration larger than {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
}
