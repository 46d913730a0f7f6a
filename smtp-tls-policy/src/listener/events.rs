//! Events a listener logs (seed "Enabling TLS on a Listener's HAT" → "Logging").

use std::fmt;

use crate::smtp::CommandKind;

/// Why an inbound connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The client sent `QUIT`.
    Quit,
    /// The client closed the connection without `QUIT`.
    PeerClosed,
    /// An idle or command timeout expired.
    Timeout,
    /// The TLS handshake after `220 Ready to start TLS` failed.
    HandshakeFailed {
        /// The TLS library's description.
        detail: String,
    },
    /// A protocol error (line too long, I/O error...).
    ProtocolError {
        /// Description.
        detail: String,
    },
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Quit => f.write_str("client sent QUIT"),
            Self::PeerClosed => f.write_str("client closed the connection"),
            Self::Timeout => f.write_str("timeout"),
            Self::HandshakeFailed { detail } => write!(f, "TLS handshake failed: {detail}"),
            Self::ProtocolError { detail } => write!(f, "protocol error: {detail}"),
        }
    }
}

/// An event the listener logs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ListenerEvent {
    /// The connection's mail flow policy requires TLS (Logging, condition 1).
    TlsRequired,
    /// `530 5.7.0 Must issue a STARTTLS command first` was sent (Logging, condition 2).
    MustIssueStartTlsSent {
        /// The command that was refused.
        command: CommandKind,
    },
    /// The connection closed without any successful recipient while TLS was required
    /// (Logging, condition 3), with the reason TLS was not used.
    ClosedWithoutRecipients {
        /// Why the connection ended.
        reason: CloseReason,
        /// Whether TLS had been established.
        tls_established: bool,
        /// How many `530` replies were sent.
        must_issue_starttls_count: u32,
    },
    /// The client asked for STARTTLS but the listener has no certificate (`454` sent).
    TlsUnavailable,
    /// Bytes the client pipelined after `STARTTLS` were discarded (RFC 3207 §4.2,
    /// CVE-2011-0411 class).
    PipelinedPlaintextDiscarded {
        /// Number of bytes discarded.
        bytes: usize,
    },
    /// TLS was required and not active, and a `RCPT` for one of the
    /// [plaintext recipients](super::Gate::with_plaintext_recipients) (a TLS-RPT mailbox) was let
    /// through without TLS.
    PlaintextRecipientAllowed {
        /// The mailbox as configured (domain in lower case).
        recipient: String,
    },
    /// TLS was established; the SMTP state was reset.
    TlsEstablished,
    /// The TLS handshake failed.
    HandshakeFailed {
        /// The TLS library's description.
        detail: String,
    },
}
