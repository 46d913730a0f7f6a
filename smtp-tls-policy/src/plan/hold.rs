//! Why a plan makes no connection ([`HoldReason`]) and what to do before connecting
//! ([`PreConnect`]).

use std::fmt;

use dane_verify::{DaneAction, DeferReason, NoDaneReason};

use crate::delivery::dane::tlsa_status;
use crate::delivery::{RequireTlsRefusal, TlsaStatus};
use crate::error::Error;
use crate::mta_sts::StsFailure;
#[cfg(doc)]
use {super::HopPlan, super::HostSource, crate::delivery::DeliveryAttempt};

/// Why a plan makes no connection.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum HoldReason {
    /// Nothing was decided (the least trusted default).
    #[default]
    Undetermined,
    /// dane-verify's RFC 7672 decision deferred (failed or bogus lookup, mandatory DANE and the
    /// host not DANE-protected).
    Dane(DeferReason),
    /// The facts are about another next-hop domain than the policy's.
    DomainMismatch {
        /// The policy's (recipient) domain.
        policy: String,
        /// The facts' next-hop domain.
        facts: String,
    },
    /// [`HostSource::ImplicitMx`] but the host is not the domain itself.
    ImplicitMxHost {
        /// The recipient domain.
        domain: String,
        /// The host in the facts.
        host: String,
    },
    /// The recipient domain is not a usable name.
    InvalidDomain(Error),
    /// The host or SNI name is not a usable name.
    InvalidName(Error),
    /// dane-verify refused the DANE reference names.
    InvalidDaneNames(dane_verify::Error),
    /// More TLSA records than [`MAX_TLSA_RECORDS`](super::MAX_TLSA_RECORDS) for the host (bounded work).
    TooManyTlsaRecords {
        /// How many were given.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// MTA-STS `enforce`: the host matches no `mx` pattern of the policy (RFC 8461 §4.1); the
    /// failure says why for each pattern ("pattern matches one label; host has two").
    MtaSts(StsFailure),
    /// REQUIRETLS (RFC 8689 §4.2.1): the message may not take this route; the delivery agent
    /// tries the next host and finally returns the message with 5.7.30
    /// ([`crate::delivery::REQUIRETLS_STATUS`]).
    RequireTls(RequireTlsRefusal),
}

impl HoldReason {
    /// A short stable code for logs and JSON (`mx-lookup`, `address-lookup`, `tlsa-bogus`,
    /// `tlsa-lookup`, `dane-required`, `dane-undetermined`, `domain-mismatch`,
    /// `implicit-mx-host`, `invalid-domain`, `invalid-name`, `invalid-dane-names`,
    /// `too-many-tlsa-records`, `mta-sts-not-listed`, `requiretls-route-insecure`,
    /// `requiretls`, `undetermined`).
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Undetermined => "undetermined",
            Self::Dane(r) => match r {
                DeferReason::MxLookup(_) => "mx-lookup",
                DeferReason::AddressLookup(_) => "address-lookup",
                DeferReason::TlsaBogus(_) => "tlsa-bogus",
                DeferReason::TlsaLookup(_) => "tlsa-lookup",
                DeferReason::DaneRequired(_) => "dane-required",
                _ => "dane-undetermined",
            },
            Self::DomainMismatch { .. } => "domain-mismatch",
            Self::ImplicitMxHost { .. } => "implicit-mx-host",
            Self::InvalidDomain(_) => "invalid-domain",
            Self::InvalidName(_) => "invalid-name",
            Self::InvalidDaneNames(_) => "invalid-dane-names",
            Self::TooManyTlsaRecords { .. } => "too-many-tlsa-records",
            Self::MtaSts(_) => "mta-sts-not-listed",
            Self::RequireTls(RequireTlsRefusal::RouteNotSecure) => "requiretls-route-insecure",
            Self::RequireTls(_) => "requiretls",
        }
    }

    /// Whether the reason holds for every host of the destination (then the destination
    /// defers), rather than for this host (then the next host is tried).
    pub(super) fn destination_wide(&self) -> bool {
        matches!(
            self,
            Self::Dane(
                DeferReason::MxLookup(_)
                    | DeferReason::DaneRequired(
                        NoDaneReason::MxInsecure | NoDaneReason::ValidationUnproven
                    )
            ) | Self::DomainMismatch { .. }
                | Self::InvalidDomain(_)
        )
    }
}

impl fmt::Display for HoldReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Undetermined => f.write_str("nothing decided"),
            Self::Dane(r) => match tlsa_status(&DaneAction::Defer(*r)) {
                TlsaStatus::Defer { reason } => f.write_str(&reason),
                _ => f.write_str("deferred by the DANE policy"),
            },
            Self::DomainMismatch { policy, facts } => write!(
                f,
                "the host facts are for next-hop domain {facts:?}, the policy for {policy:?}"
            ),
            Self::ImplicitMxHost { domain, host } => write!(
                f,
                "implicit MX (RFC 5321 5.1) of {domain:?} must be the domain, not {host:?}"
            ),
            Self::InvalidDomain(e) | Self::InvalidName(e) => write!(f, "{e}"),
            Self::InvalidDaneNames(e) => write!(f, "DANE reference names: {e}"),
            Self::TooManyTlsaRecords { count, limit } => {
                write!(f, "{count} TLSA records for the host (limit {limit})")
            }
            Self::MtaSts(failure) => write!(f, "MTA-STS enforce: {}", failure.detail),
            Self::RequireTls(r) => write!(f, "REQUIRETLS: {r}"),
        }
    }
}

/// What to do before connecting to the host.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PreConnect {
    /// Connect and run the [`DeliveryAttempt`] of [`HopPlan::attempt`].
    Connect,
    /// Do not connect to this host; try the destination's next host (then defer).
    SkipHost {
        /// Why.
        reason: HoldReason,
    },
    /// Do not connect to any host of this destination now; keep the message queued.
    Defer {
        /// Why.
        reason: HoldReason,
    },
}

impl Default for PreConnect {
    /// The least trusted value: defer, nothing decided.
    fn default() -> Self {
        Self::Defer {
            reason: HoldReason::Undetermined,
        }
    }
}

impl PreConnect {
    /// `connect`, `skip-host` or `defer`.
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::SkipHost { .. } => "skip-host",
            Self::Defer { .. } => "defer",
        }
    }

    /// The reason when no connection is made.
    #[must_use]
    pub fn hold_reason(&self) -> Option<&HoldReason> {
        match self {
            Self::Connect => None,
            Self::SkipHost { reason } | Self::Defer { reason } => Some(reason),
        }
    }

    pub(super) fn hold(reason: HoldReason) -> Self {
        if reason.destination_wide() {
            Self::Defer { reason }
        } else {
            Self::SkipHost { reason }
        }
    }
}
