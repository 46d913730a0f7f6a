//! What one connection attempt requires, from the destination policy and the TLSA lookup.

use super::outcome::{PlaintextPermit, PlaintextRetry};
use crate::destination::DeliveryTls;
use crate::identity::IdentityAlgorithm;
use dane_verify::DaneSetting;

/// The result of the TLSA lookup for the MX host, made before connecting (RFC 7672 §2.2).
/// Computed by dane-verify; this is the machine's own input type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsaStatus {
    /// No DNSSEC-secure TLSA records (insecure zone, or none published): DANE does not apply.
    #[default]
    NotApplicable,
    /// DNSSEC-secure, usable TLSA records: TLS is mandatory and authenticated by DANE.
    Usable,
    /// DNSSEC-secure TLSA records, none usable: TLS is mandatory but unauthenticated
    /// (RFC 7672 §2.2).
    Unusable,
    /// The lookup failed (SERVFAIL, bogus): the host must not be used now (RFC 7672 §2.2.1).
    Defer {
        /// Why.
        reason: String,
    },
}

/// The DANE verification of the presented chain against the TLSA records (dane-verify).
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
#[non_exhaustive]
pub enum DaneOutcome {
    /// A TLSA record matched (RFC 7672 §3).
    Verified,
    /// No TLSA record matched.
    Failed {
        /// Why.
        reason: String,
    },
}

/// The PKIX verification of the presented chain (the identity verifier of this crate, or any
/// rustls verifier). `#[default]` is the least-trusted value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use]
#[non_exhaustive]
pub enum PkixOutcome {
    /// No verification result is available.
    #[default]
    NotChecked,
    /// Chain trusted and the name matches a reference identity.
    Verified,
    /// The chain does not end at a trusted CA (or is otherwise invalid: expired, bad signature).
    UntrustedChain {
        /// Why.
        detail: String,
    },
    /// The chain is trusted but no presented identity matches.
    NameMismatch {
        /// Why.
        detail: String,
    },
}

impl PkixOutcome {
    /// Whether the chain was verified.
    pub fn is_verified(&self) -> bool {
        matches!(self, Self::Verified)
    }
}

/// Everything known about the peer's certificate after the handshake.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerVerification {
    /// PKIX result.
    pub pkix: PkixOutcome,
    /// DANE result, when TLSA records were usable.
    pub dane: Option<DaneOutcome>,
}

impl PeerVerification {
    /// A verification result.
    pub fn new(pkix: PkixOutcome, dane: Option<DaneOutcome>) -> Self {
        Self { pkix, dane }
    }
}

/// What the attempt requires of the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Requirement {
    /// TLS `no`: STARTTLS is not attempted.
    Plaintext,
    /// `preferred` / `preferred-verify`: TLS when possible; `verify` reports verification.
    Opportunistic {
        /// Verify the certificate and report a failure (`preferred-verify`).
        verify: bool,
    },
    /// `required`, or DANE with only unusable TLSA records: TLS, no authentication.
    Encrypted,
    /// `required-verify` / `required-verify-hosted-domains`: TLS and a PKIX-verified peer,
    /// under the setting's identity algorithm ([`IdentityAlgorithm::for_setting`]).
    Verified(IdentityAlgorithm),
    /// DNSSEC-secure usable TLSA records: TLS authenticated by DANE (RFC 7672 §3).
    Dane,
    /// A plaintext retry after a failed handshake under `preferred` (no STARTTLS).
    PlaintextRetry,
}

impl Requirement {
    /// Combines the destination's TLS setting, its DANE mode and the TLSA lookup; `Err` when no
    /// connection may be made (DANE mandatory without usable TLSA records, lookup failure).
    ///
    /// DANE (RFC 7672 §2.2): with `opportunistic` or `mandatory`, usable TLSA records make TLS
    /// mandatory and DANE-authenticated, overriding a weaker TLS setting; unusable records make
    /// it mandatory but unauthenticated; a failed lookup defers. `mandatory` without usable records
    /// makes no connection (seed: "no connection is established").
    pub fn new(tls: DeliveryTls, dane: DaneSetting, tlsa: &TlsaStatus) -> Result<Self, TlsaStatus> {
        let base = match tls {
            DeliveryTls::No => return Ok(Self::Plaintext),
            DeliveryTls::Preferred => Self::Opportunistic { verify: false },
            DeliveryTls::PreferredVerify => Self::Opportunistic { verify: true },
            DeliveryTls::Required => Self::Encrypted,
            DeliveryTls::RequiredVerify | DeliveryTls::RequiredVerifyHostedDomains => {
                Self::Verified(IdentityAlgorithm::for_setting(tls))
            }
        };
        match (dane, tlsa) {
            (DaneSetting::None, _) => Ok(base),
            (_, TlsaStatus::Usable) => Ok(Self::Dane),
            (_, TlsaStatus::Defer { .. }) => Err(tlsa.clone()),
            (DaneSetting::Mandatory, TlsaStatus::NotApplicable | TlsaStatus::Unusable) => {
                Err(tlsa.clone())
            }
            (_, TlsaStatus::Unusable) => Ok(match base {
                Self::Opportunistic { .. } => Self::Encrypted,
                other => other,
            }),
            (_, TlsaStatus::NotApplicable) => Ok(base),
        }
    }

    /// Whether the message must never be sent in plaintext.
    pub fn tls_mandatory(self) -> bool {
        matches!(self, Self::Encrypted | Self::Verified(_) | Self::Dane)
    }

    /// Whether STARTTLS is attempted.
    pub fn attempts_tls(self) -> bool {
        !matches!(self, Self::Plaintext | Self::PlaintextRetry)
    }

    /// The identity algorithm the PKIX verifier applies, when its result matters.
    pub fn identity_algorithm(self) -> Option<IdentityAlgorithm> {
        match self {
            Self::Verified(algorithm) => Some(algorithm),
            Self::Opportunistic { verify: true } => Some(IdentityAlgorithm::Verify),
            _ => None,
        }
    }

    /// Whether DANE verification is required.
    pub fn needs_dane(self) -> bool {
        self == Self::Dane
    }

    /// **The only constructor of the plaintext tokens.** `None` whenever TLS is mandatory.
    pub fn plaintext_permit(self) -> Option<(PlaintextPermit, PlaintextRetry)> {
        if self.tls_mandatory() {
            None
        } else {
            Some((PlaintextPermit(()), PlaintextRetry(())))
        }
    }
}

/// What a required-TLS failure becomes (see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequiredTlsFailure {
    /// Always defer; the queue lifetime decides when to bounce (the default).
    #[default]
    Defer,
    /// Bounce at once on the peer's permanent refusals (no ESMTP, STARTTLS not advertised,
    /// `5xx` to STARTTLS); defer on everything else.
    BouncePermanent,
}
