//! The delivery TLS state machine (seed "Enabling TLS and Certificate Verification on Delivery",
//! Table 2, its "Logging" section and "Sending Alerts When a Required TLS Connection Fails").
//!
//! One [`DeliveryAttempt`] per connection attempt, sans-IO: the driver feeds it the facts of the
//! SMTP dialogue (EHLO reply, STARTTLS reply, handshake and verification outcome) and it answers
//! with the next [`Step`], ending in a [`Decision`]: an [`DeliveryAction`] plus the [`Reason`] and the
//! [`DeliveryEvent`]s to log (and alert on).
//!
//! # "Preferred": which clause of the seed is followed, and which is not
//! The seed's Table 2 says of *Preferred*: "if the TLS negotiation fails (prior to receiving a
//! 220 response), the SMTP transaction does **not** fall back to clear text", and "if the TLS
//! negotiation fails after the 220 response is received, the SMTP transaction will continue in
//! the clear". This crate implements Postfix's `smtp_tls_security_level = may` instead:
//! - STARTTLS not offered, or refused *before* `220` → [`DeliveryAction::ContinuePlaintext`] on the same
//!   connection. **This contradicts the first clause.** Read literally, it makes *Preferred*
//!   refuse every server that does not offer STARTTLS — the behaviour of *Required*, which has its
//!   own setting — and the seed's own description of *Preferred (Verify)* ("No TLS connection is
//!   made … delivered in plain text") and Cisco's later tech note both fall back. An operator who
//!   wants "no plaintext when STARTTLS is missing" chooses `required`.
//! - the handshake fails *after* `220` → the second clause is followed, but not "on the same
//!   transaction": that connection is dead (the TLS layer is in an unknown state and a server
//!   expects TLS records), so [`DeliveryAction::RetryPlaintext`]: reconnect and deliver in the clear
//!   without trying STARTTLS. The retry is built with [`DeliveryAttempt::plaintext_retry`] from
//!   the token carried by the action.
//!
//! # `required*` never sends plaintext
//! [`DeliveryAction::ContinuePlaintext`] and [`DeliveryAction::RetryPlaintext`] carry a [`PlaintextPermit`] /
//! [`PlaintextRetry`] token whose only constructor is [`Requirement::plaintext_permit`], which
//! returns `None` for every requirement that mandates TLS. There is no other way to build these
//! actions, so a required destination cannot reach plaintext (and a proptest checks it).
//!
//! # Defer, not bounce
//! Every "TLS required but could not be used" outcome defers by default ([`DeliveryAction::Defer`]): the
//! message stays queued, is retried, and bounces only when the queue lifetime expires — what Cisco
//! does ("the message is delivered at a later time or bounced") and what RFC 7672 §2.2 asks for
//! DANE. Reason: an active attacker can strip `STARTTLS` from the EHLO reply or inject a `5xx`
//! reply to it; bouncing would turn a downgrade attempt into lost mail. Operators who want the
//! peer's permanent refusals (no ESMTP, STARTTLS not advertised, `5xx` to STARTTLS) to bounce at
//! once set [`RequiredTlsFailure::BouncePermanent`].

pub mod dane;
mod machine;
mod outcome;
mod requirement;
mod requiretls;
#[cfg(test)]
mod tests;

pub use machine::{
    DeliveryAttempt, DeliveryOptions, EhloOutcome, HandshakeOutcome, RequiredTlsAlerts, Step,
};
pub use outcome::{
    Decision, DeliveryAction, DeliveryEvent, PeerAuthentication, PlaintextPermit, PlaintextRetry,
    Reason, RequiredTlsAlert,
};
pub use requirement::{
    DaneOutcome, PeerVerification, PkixOutcome, RequiredTlsFailure, Requirement, TlsaStatus,
};
pub use requiretls::{
    REQUIRETLS_STATUS, RequireTlsRefusal, RequireTlsRoute, RequireTlsSession, RequireTlsVerdict,
    TlsRequest, requiretls_verdict,
};
