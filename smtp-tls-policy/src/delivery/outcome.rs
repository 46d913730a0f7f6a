//! The outputs of a delivery attempt: action, reason, events.

use std::fmt;

use super::requirement::PkixOutcome;

/// Permission to continue in plaintext; only [`super::Requirement::plaintext_permit`] makes one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlaintextPermit(pub(super) ());

/// Permission to retry in plaintext on a new connection; only
/// [`super::Requirement::plaintext_permit`] makes one. Pass it to
/// [`super::DeliveryAttempt::plaintext_retry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlaintextRetry(pub(super) ());

/// What the delivery agent does next with this connection and message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
#[non_exhaustive]
pub enum DeliveryAction {
    /// Deliver over the established TLS session (after re-sending EHLO, RFC 3207 §4.2).
    ContinueTls,
    /// Deliver in plaintext on this connection.
    ContinuePlaintext(PlaintextPermit),
    /// Close this connection and deliver in plaintext on a new one, without STARTTLS.
    RetryPlaintext(PlaintextRetry),
    /// Close the connection; keep the message queued and retry later (temporary failure, 4.7.x).
    Defer,
    /// Close the connection; return the message to the sender (permanent failure, 5.7.x).
    Bounce,
}

impl DeliveryAction {
    /// Whether the message may go over this or a new connection in plaintext.
    pub fn is_plaintext(self) -> bool {
        matches!(self, Self::ContinuePlaintext(_) | Self::RetryPlaintext(_))
    }

    /// A short name for logs and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ContinueTls => "continue-tls",
            Self::ContinuePlaintext(_) => "continue-plaintext",
            Self::RetryPlaintext(_) => "retry-plaintext",
            Self::Defer => "defer",
            Self::Bounce => "bounce",
        }
    }
}

/// How the peer's certificate fared, when TLS was used.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerAuthentication {
    /// Not verified because the mode does not ask for it (`preferred`, `required`).
    NotRequested,
    /// PKIX verification succeeded.
    PkixVerified,
    /// DANE verification succeeded.
    DaneVerified,
    /// Verification failed but the mode delivers anyway (`preferred-verify`).
    FailedButDelivered(PkixOutcome),
}

/// Why the attempt ended as it did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// TLS `no`: STARTTLS not attempted.
    TlsDisabled,
    /// Plaintext retry after a failed handshake under `preferred`.
    RetryAfterHandshakeFailure,
    /// The peer does not support ESMTP: EHLO was refused (Logging, condition 1).
    NoEsmtp,
    /// STARTTLS was not in the EHLO reply (Logging, condition 2).
    StartTlsNotAdvertised,
    /// STARTTLS was answered with an error (Logging, condition 3).
    StartTlsRejected {
        /// The reply code.
        code: u16,
    },
    /// The TLS handshake failed after `220`.
    HandshakeFailed {
        /// The TLS library's description.
        detail: String,
    },
    /// TLS established.
    TlsEstablished(PeerAuthentication),
    /// The certificate did not verify and the mode requires it.
    CertificateNotVerified(PkixOutcome),
    /// DANE verification failed (or no result was supplied).
    DaneVerificationFailed {
        /// Why.
        reason: String,
    },
    /// DANE is mandatory but the host has no usable TLSA records: no connection is made.
    DaneNotSupported,
    /// The TLSA lookup failed: the host must not be used now.
    TlsaLookupFailed {
        /// Why.
        reason: String,
    },
    /// The driver fed inputs out of order (a bug in the caller); fails closed.
    OutOfOrder {
        /// The input received.
        input: &'static str,
    },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TlsDisabled => f.write_str("TLS disabled for this destination"),
            Self::RetryAfterHandshakeFailure => {
                f.write_str("plaintext retry after a failed TLS handshake (TLS preferred)")
            }
            Self::NoEsmtp => f.write_str("remote MTA does not support ESMTP"),
            Self::StartTlsNotAdvertised => f.write_str("STARTTLS not advertised in EHLO reply"),
            Self::StartTlsRejected { code } => write!(f, "STARTTLS answered with error {code}"),
            Self::HandshakeFailed { detail } => write!(f, "TLS handshake failed: {detail}"),
            Self::TlsEstablished(v) => write!(f, "TLS established ({v:?})"),
            Self::CertificateNotVerified(o) => write!(f, "certificate not verified: {o:?}"),
            Self::DaneVerificationFailed { reason } => {
                write!(f, "DANE verification failed: {reason}")
            }
            Self::DaneNotSupported => f.write_str("DANE mandatory but no usable TLSA records"),
            Self::TlsaLookupFailed { reason } => write!(f, "TLSA lookup failed: {reason}"),
            Self::OutOfOrder { input } => write!(f, "input out of order: {input}"),
        }
    }
}

/// The alert "a required TLS connection failed", naming the destination domain (seed "Sending
/// Alerts When a Required TLS Connection Fails"; Warning severity, System alert type).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequiredTlsAlert {
    /// The destination domain.
    pub domain: String,
    /// Why TLS could not be used.
    pub reason: Reason,
}

impl fmt::Display for RequiredTlsAlert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "required TLS connection to domain {} failed: {}",
            self.domain, self.reason
        )
    }
}

/// An event to log (and, for [`DeliveryEvent::Alert`], to alert on).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeliveryEvent {
    /// TLS is required for the domain but could not be used (seed "Logging").
    TlsRequiredButUnavailable {
        /// The destination domain.
        domain: String,
        /// Why.
        reason: Reason,
    },
    /// Send the required-TLS alert (only when alerts are enabled).
    Alert(RequiredTlsAlert),
    /// `preferred-verify` delivered over TLS although the certificate did not verify.
    VerificationFailedDelivered {
        /// The destination domain.
        domain: String,
        /// The verification failure.
        outcome: PkixOutcome,
    },
    /// `preferred`: TLS could not be used; delivery goes on in plaintext.
    PlaintextFallback {
        /// The destination domain.
        domain: String,
        /// Why.
        reason: Reason,
    },
}

/// The end of an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
#[non_exhaustive]
pub struct Decision {
    /// What to do.
    pub action: DeliveryAction,
    /// Why.
    pub reason: Reason,
    /// What to log and alert.
    pub events: Vec<DeliveryEvent>,
}

impl Decision {
    /// The alert to send, if any.
    pub fn alert(&self) -> Option<&RequiredTlsAlert> {
        self.events.iter().find_map(|e| match e {
            DeliveryEvent::Alert(a) => Some(a),
            _ => None,
        })
    }
}
