//! The result of matching a chain against a TLSA RRset.

use crate::tlsa::TlsaRecord;

/// How a match ended.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
#[non_exhaustive]
pub enum DaneMatchOutcome {
    /// A usable record matched and every check it implies passed.
    Verified,
    /// No usable record matched any certificate.
    #[default]
    NoMatch,
    /// A record matched but the leaf is not valid for any reference identity.
    NameMismatch,
    /// A record matched but the chain does not validate to it (signature, expiry, constraints),
    /// or the chain cannot be parsed.
    ChainError,
    /// Every record is unusable: for SMTP, "TLS mandatory, unauthenticated" (RFC 7672 §2.2).
    Unusable,
}

impl DaneMatchOutcome {
    /// The JSON / CLI spelling: `verified`, `no-match`, `name-mismatch`, `chain-error`, `unusable`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Verified => "verified",
            Self::NoMatch => "no-match",
            Self::NameMismatch => "name-mismatch",
            Self::ChainError => "chain-error",
            Self::Unusable => "unusable",
        }
    }

    pub(crate) fn rank(self) -> u8 {
        match self {
            Self::Verified => 4,
            Self::NameMismatch => 3,
            Self::ChainError => 2,
            Self::NoMatch | Self::Unusable => 1,
        }
    }
}

/// The result of matching a chain: which record matched at which depth.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DaneVerdict {
    /// How the match ended.
    pub outcome: DaneMatchOutcome,
    /// Depth of the match as OpenSSL's `SSL_get0_dane_authority` reports it: 0 = leaf, 1.. =
    /// the matched CA's place in the validated path (a trust-anchor certificate published in DNS
    /// and not sent: one beyond the top certificate sent; a `2 1 0` bare key: the top
    /// certificate it signed), -1 = none.
    pub depth: i32,
    /// The record that matched (also set for `NameMismatch`/`ChainError`).
    pub matched: Option<TlsaRecord>,
    /// Why a matched record did not verify, for humans.
    pub reason: Option<String>,
}

impl DaneVerdict {
    pub(crate) fn new(outcome: DaneMatchOutcome) -> Self {
        Self {
            outcome,
            depth: -1,
            matched: None,
            reason: None,
        }
    }

    /// Whether the chain is authenticated.
    #[must_use]
    pub fn is_verified(&self) -> bool {
        self.outcome == DaneMatchOutcome::Verified
    }
}
