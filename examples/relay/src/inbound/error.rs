//! Errors of the inbound side (listener set-up); per-connection problems are SMTP replies and
//! log events, never errors that stop the relay.

use std::net::SocketAddr;

/// Why a listener could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InboundError {
    /// A domain name in the accepted-domain set is not a host name.
    #[error("invalid domain {name:?} (expected a host name, or .parent for every name below it)")]
    InvalidDomain {
        /// The name as written.
        name: String,
    },
    /// The listening socket could not be bound.
    #[error("listener {listener}: cannot listen on {address}: {kind}")]
    Bind {
        /// The listener's name.
        listener: String,
        /// The address.
        address: SocketAddr,
        /// The OS error kind.
        kind: std::io::ErrorKind,
    },
    /// The listener's certificate could not be loaded from the certificate store.
    #[error("listener {listener}: certificate {certificate:?}: {source}")]
    Certificate {
        /// The listener's name.
        listener: String,
        /// The certificate name.
        certificate: String,
        /// The store's error.
        source: cert_store::Error,
    },
    /// The listener's Host Access Table does not load.
    #[error("listener {listener}: host access table: {source}")]
    Hat {
        /// The listener's name.
        listener: String,
        /// The table's error (names its file and line).
        source: hat_match::Error,
    },
    /// A mail flow policy asks for TLS but the listener has no certificate.
    #[error(
        "listener {listener}: mail flow policy {policy} has tls = \"{tls}\" but the listener has \
         no certificate"
    )]
    TlsWithoutCertificate {
        /// The listener's name.
        listener: String,
        /// The policy's name.
        policy: String,
        /// Its TLS setting.
        tls: &'static str,
    },
}
