//! The delivery verification modes (seed Table 2, settings 4–6) and what a verifier does on a
//! failed verification. The rustls `ServerCertVerifier` for delivery is the hop plan's
//! ([`crate::plan::HopPlan::verifier`], [`crate::plan::PlanVerifier`]: PKIX per the mode and
//! DANE, once); offline, or on `peer_certificates()` after a handshake, call
//! [`crate::verify_server_certificate`].

use crate::identity::IdentityAlgorithm;

/// The seed's verifying TLS settings for delivery (Table 2, settings 4–6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum VerificationMode {
    /// *Preferred (Verify)*: [`IdentityAlgorithm::Verify`]; a failed verification is recorded and
    /// the TLS session continues.
    PreferredVerify,
    /// *Required (Verify)*: [`IdentityAlgorithm::Verify`]; a failed verification aborts the
    /// handshake.
    RequiredVerify,
    /// *Required – Verify Hosted Domains*: [`IdentityAlgorithm::HostedVerify`]; a failed
    /// verification aborts the handshake.
    RequiredVerifyHostedDomains,
}

impl VerificationMode {
    /// The identity algorithm of this mode.
    #[must_use]
    pub fn algorithm(self) -> IdentityAlgorithm {
        match self {
            Self::PreferredVerify | Self::RequiredVerify => IdentityAlgorithm::Verify,
            Self::RequiredVerifyHostedDomains => IdentityAlgorithm::HostedVerify,
        }
    }

    /// What a failed verification does to the handshake in this mode.
    #[must_use]
    pub fn on_failure(self) -> FailureAction {
        match self {
            Self::PreferredVerify => FailureAction::RecordAndContinue,
            Self::RequiredVerify | Self::RequiredVerifyHostedDomains => FailureAction::Reject,
        }
    }

    /// The mode's name as the CLI spells it (`preferred-verify`, ...).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::PreferredVerify => "preferred-verify",
            Self::RequiredVerify => "required-verify",
            Self::RequiredVerifyHostedDomains => "required-verify-hosted-domains",
        }
    }
}

/// What a verifier does when verification fails. The default is the safe one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum FailureAction {
    /// Abort the handshake with a certificate error.
    #[default]
    Reject,
    /// Record the verdict and let the handshake continue (encrypted but unauthenticated).
    RecordAndContinue,
}
