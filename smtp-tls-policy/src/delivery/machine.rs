//! The per-attempt state machine.

use super::outcome::PeerAuthentication;
use super::outcome::{
    Decision, DeliveryAction, DeliveryEvent, PlaintextRetry, Reason, RequiredTlsAlert,
};
use super::requirement::{
    DaneOutcome, PeerVerification, PkixOutcome, RequiredTlsFailure, Requirement, TlsaStatus,
};
use crate::destination::{DeliveryTls, DestinationPolicy};
use dane_verify::DaneSetting;

/// What the server's greeting reply said (RFC 5321 §4.1.1.1, §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EhloOutcome {
    /// EHLO accepted (`250`).
    Esmtp {
        /// `STARTTLS` listed among the extensions.
        starttls: bool,
    },
    /// EHLO refused and HELO accepted: no ESMTP, so no STARTTLS.
    NoEsmtp,
}

/// The result of the TLS handshake after `220`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeOutcome {
    /// Handshake completed; the peer's certificate fared as given.
    Established(PeerVerification),
    /// Handshake failed; the connection is unusable.
    Failed {
        /// The TLS library's description.
        detail: String,
    },
}

/// The next thing the driver does.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
#[non_exhaustive]
pub enum Step {
    /// Send `STARTTLS` and report its reply with [`DeliveryAttempt::on_starttls_reply`].
    SendStartTls,
    /// Discard anything buffered from the server, run the TLS handshake, then report it with
    /// [`DeliveryAttempt::on_handshake`].
    StartHandshake,
    /// The attempt is decided.
    Done(Decision),
}

/// Whether a failed required TLS connection raises [`DeliveryEvent::Alert`] (seed "Sending
/// Alerts When a Required TLS Connection Fails").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RequiredTlsAlerts {
    /// Emit [`DeliveryEvent::Alert`] when a required TLS connection fails.
    Send,
    /// Emit no alert (the failure is still logged as
    /// [`DeliveryEvent::TlsRequiredButUnavailable`]).
    #[default]
    DoNotSend,
}

/// Options that are global settings, not per destination.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeliveryOptions {
    /// Whether [`DeliveryEvent::Alert`] is emitted when a required TLS connection fails.
    pub required_tls_alerts: RequiredTlsAlerts,
    /// Defer or bounce on the peer's permanent refusals.
    pub required_failure: RequiredTlsFailure,
}

impl DeliveryOptions {
    /// Options with the given alert setting and the default (defer) failure disposition.
    pub fn new(required_tls_alerts: RequiredTlsAlerts) -> Self {
        Self {
            required_tls_alerts,
            required_failure: RequiredTlsFailure::Defer,
        }
    }

    /// Sets what a required-TLS failure becomes.
    pub fn with_required_failure(mut self, f: RequiredTlsFailure) -> Self {
        self.required_failure = f;
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Start,
    AwaitEhlo,
    AwaitStartTlsReply,
    AwaitHandshake,
    Done,
}

/// One delivery connection attempt (sans-IO).
///
/// ```
/// use smtp_tls_policy::delivery::*;
/// use dane_verify::DaneSetting;
/// use smtp_tls_policy::destination::DeliveryTls;
///
/// let mut a = DeliveryAttempt::new(
///     "example.com", DeliveryTls::Required, DaneSetting::None, TlsaStatus::NotApplicable,
///     DeliveryOptions::new(RequiredTlsAlerts::Send),
/// );
/// assert!(a.preflight().is_none());
/// // The server did not advertise STARTTLS: the message is deferred, never sent in the clear.
/// let Step::Done(d) = a.on_ehlo(EhloOutcome::Esmtp { starttls: false }) else { panic!() };
/// assert_eq!(d.action, DeliveryAction::Defer);
/// assert_eq!(d.reason, Reason::StartTlsNotAdvertised);
/// assert_eq!(d.alert().unwrap().domain, "example.com");
/// ```
#[derive(Debug, Clone)]
pub struct DeliveryAttempt {
    domain: String,
    requirement: Result<Requirement, TlsaStatus>,
    options: DeliveryOptions,
    state: State,
}

impl DeliveryAttempt {
    /// An attempt to deliver to `domain` with the effective TLS setting and DANE mode and the
    /// TLSA lookup for the MX host.
    pub fn new(
        domain: impl Into<String>,
        tls: DeliveryTls,
        dane: DaneSetting,
        tlsa: TlsaStatus,
        options: DeliveryOptions,
    ) -> Self {
        Self {
            domain: domain.into(),
            requirement: Requirement::new(tls, dane, &tlsa),
            options,
            state: State::Start,
        }
    }

    /// An attempt for a destination-control lookup result.
    pub fn for_policy(
        policy: &DestinationPolicy,
        tlsa: TlsaStatus,
        options: DeliveryOptions,
    ) -> Self {
        Self::new(
            policy.domain.clone(),
            policy.tls,
            policy.dane,
            tlsa,
            options,
        )
    }

    /// The plaintext retry on a new connection after [`DeliveryAction::RetryPlaintext`].
    pub fn plaintext_retry(
        domain: impl Into<String>,
        _permit: PlaintextRetry,
        options: DeliveryOptions,
    ) -> Self {
        Self {
            domain: domain.into(),
            requirement: Ok(Requirement::PlaintextRetry),
            options,
            state: State::Start,
        }
    }

    /// The destination domain.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// What this attempt requires (`None` when no connection may be made).
    pub fn requirement(&self) -> Option<Requirement> {
        self.requirement.as_ref().ok().copied()
    }

    /// Before connecting: `Some` decision when no connection may be made at all (DANE mandatory
    /// without usable TLSA records, failed TLSA lookup).
    /// Idempotent until the EHLO outcome is fed.
    pub fn preflight(&mut self) -> Option<Decision> {
        if self.state == State::AwaitEhlo {
            return None;
        }
        if self.state != State::Start {
            return Some(self.out_of_order("preflight"));
        }
        match &self.requirement {
            Ok(_) => {
                self.state = State::AwaitEhlo;
                None
            }
            Err(status) => {
                let reason = match status {
                    TlsaStatus::Defer { reason } => Reason::TlsaLookupFailed {
                        reason: reason.clone(),
                    },
                    _ => Reason::DaneNotSupported,
                };
                Some(self.fail_required(reason, false))
            }
        }
    }

    /// The EHLO (or HELO fallback) outcome.
    pub fn on_ehlo(&mut self, ehlo: EhloOutcome) -> Step {
        if self.state == State::Start && self.requirement.is_ok() {
            self.state = State::AwaitEhlo;
        }
        if self.state != State::AwaitEhlo {
            return Step::Done(self.out_of_order("ehlo"));
        }
        let Ok(req) = self.requirement else {
            return Step::Done(self.out_of_order("ehlo"));
        };
        if !req.attempts_tls() {
            let reason = if req == Requirement::Plaintext {
                Reason::TlsDisabled
            } else {
                Reason::RetryAfterHandshakeFailure
            };
            return Step::Done(self.plaintext_here(reason, false));
        }
        match ehlo {
            EhloOutcome::NoEsmtp => Step::Done(self.no_tls_possible(Reason::NoEsmtp, true)),
            EhloOutcome::Esmtp { starttls: false } => {
                Step::Done(self.no_tls_possible(Reason::StartTlsNotAdvertised, true))
            }
            EhloOutcome::Esmtp { starttls: true } => {
                self.state = State::AwaitStartTlsReply;
                Step::SendStartTls
            }
        }
    }

    /// The reply code to STARTTLS (RFC 3207 §4: `220` to go ahead; `454`/`501` etc. otherwise).
    pub fn on_starttls_reply(&mut self, code: u16) -> Step {
        if self.state != State::AwaitStartTlsReply {
            return Step::Done(self.out_of_order("starttls reply"));
        }
        if code == 220 {
            self.state = State::AwaitHandshake;
            return Step::StartHandshake;
        }
        Step::Done(self.no_tls_possible(Reason::StartTlsRejected { code }, code / 100 == 5))
    }

    /// The handshake (and certificate verification) outcome.
    pub fn on_handshake(&mut self, outcome: HandshakeOutcome) -> Step {
        if self.state != State::AwaitHandshake {
            return Step::Done(self.out_of_order("handshake"));
        }
        let Ok(req) = self.requirement else {
            return Step::Done(self.out_of_order("handshake"));
        };
        let verification = match outcome {
            HandshakeOutcome::Failed { detail } => {
                // After 220 the connection is dead: never continue on it.
                self.state = State::Done;
                let reason = Reason::HandshakeFailed { detail };
                return Step::Done(match req.plaintext_permit() {
                    Some((_, retry)) => self.decide(
                        DeliveryAction::RetryPlaintext(retry),
                        reason.clone(),
                        vec![DeliveryEvent::PlaintextFallback {
                            domain: self.domain.clone(),
                            reason,
                        }],
                    ),
                    None => self.fail_required(reason, false),
                });
            }
            HandshakeOutcome::Established(v) => v,
        };
        self.state = State::Done;
        Step::Done(match req {
            Requirement::Dane => match verification.dane {
                Some(DaneOutcome::Verified) => self.tls(PeerAuthentication::DaneVerified, vec![]),
                Some(DaneOutcome::Failed { reason }) => {
                    self.fail_required(Reason::DaneVerificationFailed { reason }, false)
                }
                None => self.fail_required(
                    Reason::DaneVerificationFailed {
                        reason: "no DANE result supplied".into(),
                    },
                    false,
                ),
            },
            Requirement::Verified(_) => match verification.pkix {
                PkixOutcome::Verified => self.tls(PeerAuthentication::PkixVerified, vec![]),
                other => self.fail_required(Reason::CertificateNotVerified(other), false),
            },
            Requirement::Opportunistic { verify: true } => match verification.pkix {
                PkixOutcome::Verified => self.tls(PeerAuthentication::PkixVerified, vec![]),
                other => {
                    let event = DeliveryEvent::VerificationFailedDelivered {
                        domain: self.domain.clone(),
                        outcome: other.clone(),
                    };
                    self.tls(PeerAuthentication::FailedButDelivered(other), vec![event])
                }
            },
            Requirement::Opportunistic { verify: false } | Requirement::Encrypted => {
                self.tls(PeerAuthentication::NotRequested, vec![])
            }
            Requirement::Plaintext | Requirement::PlaintextRetry => self.out_of_order("handshake"),
        })
    }

    fn tls(&self, status: PeerAuthentication, events: Vec<DeliveryEvent>) -> Decision {
        self.decide(
            DeliveryAction::ContinueTls,
            Reason::TlsEstablished(status),
            events,
        )
    }

    /// TLS cannot be used on this connection (before any `220`).
    fn no_tls_possible(&mut self, reason: Reason, permanent: bool) -> Decision {
        self.plaintext_here(reason, permanent)
    }

    /// Continue in plaintext on this connection if the requirement allows, else fail.
    fn plaintext_here(&mut self, reason: Reason, permanent: bool) -> Decision {
        self.state = State::Done;
        let Ok(req) = self.requirement else {
            return self.fail_required(reason, permanent);
        };
        match req.plaintext_permit() {
            Some((permit, _)) => {
                let events = if req.attempts_tls() {
                    vec![DeliveryEvent::PlaintextFallback {
                        domain: self.domain.clone(),
                        reason: reason.clone(),
                    }]
                } else {
                    vec![]
                };
                self.decide(DeliveryAction::ContinuePlaintext(permit), reason, events)
            }
            None => self.fail_required(reason, permanent),
        }
    }

    /// A required-TLS failure: log, alert, defer (or bounce on a permanent refusal if configured).
    fn fail_required(&mut self, reason: Reason, permanent: bool) -> Decision {
        self.state = State::Done;
        let action = match self.options.required_failure {
            RequiredTlsFailure::BouncePermanent if permanent => DeliveryAction::Bounce,
            _ => DeliveryAction::Defer,
        };
        let mut events = vec![DeliveryEvent::TlsRequiredButUnavailable {
            domain: self.domain.clone(),
            reason: reason.clone(),
        }];
        if self.options.required_tls_alerts == RequiredTlsAlerts::Send {
            events.push(DeliveryEvent::Alert(RequiredTlsAlert {
                domain: self.domain.clone(),
                reason: reason.clone(),
            }));
        }
        self.decide(action, reason, events)
    }

    fn out_of_order(&mut self, input: &'static str) -> Decision {
        self.state = State::Done;
        Decision {
            action: DeliveryAction::Defer,
            reason: Reason::OutOfOrder { input },
            events: vec![],
        }
    }

    fn decide(
        &self,
        action: DeliveryAction,
        reason: Reason,
        events: Vec<DeliveryEvent>,
    ) -> Decision {
        Decision {
            action,
            reason,
            events,
        }
    }
}
