//! Errors of the outbound half: configuration problems found by
//! [`OutboundConfig::validate`](super::OutboundConfig::validate) and start-up failures of
//! [`Outbound::start`](super::Outbound::start). Spool failures are
//! [`RelayError`](crate::RelayError)s, which wraps this enum as
//! [`RelayError::Outbound`](crate::RelayError::Outbound) (one enum per concern: the
//! relay core's errors and the `[delivery]` configuration's).

use std::path::PathBuf;

/// Why the `[delivery]` configuration or the delivery engine's start-up was refused.
/// Every variant names the configuration key (`delivery.…`) it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OutboundError {
    /// A value is out of range or malformed.
    #[error("{key}: {reason}")]
    Invalid {
        /// The key, e.g. `delivery.max_connections_per_destination`.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A key needed by the chosen settings is missing.
    #[error("{key} is required when {because}")]
    Missing {
        /// The missing key.
        key: &'static str,
        /// The setting that needs it.
        because: &'static str,
    },
    /// The destination-control file does not load (the library's error names file, line and
    /// column).
    #[error("delivery.destination_controls: {0}")]
    DestinationControls(#[from] smtp_tls_policy::Error),
    /// The resolver cannot be built (trust-anchor file, non-loopback AD-trusting resolver).
    #[error("delivery.resolver: {0}")]
    Resolver(String),
    /// The outgoing certificate named in the configuration is not in the certificate store.
    #[error("delivery.outgoing_certificate: {name}: {reason}")]
    Certificate {
        /// The certificate name.
        name: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// A file named by the configuration cannot be read.
    #[error("{key}: cannot read {path}: {reason}")]
    File {
        /// The key naming the file.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        reason: String,
    },
}

impl OutboundError {
    pub(crate) fn invalid(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.into(),
            reason: reason.into(),
        }
    }
}
