//! The sans-IO RFC 7672 decision: from a destination's DANE setting and the DNSSEC facts about
//! one MX host, what the SMTP client does with that host.
//!
//! The facts are gathered by a resolver adapter (`resolver` feature) or by the caller's own DNS
//! code; [`decide`] is a pure function of them. See the crate documentation for the full table.
//!
//! Rules and where they come from:
//! - Setting `None` ignores DNSSEC entirely (seed, "Enabling TLS for Delivery with DANE Support").
//! - MX RRset bogus or lookup failed: defer, as for any DNS failure (RFC 7672 §2.2.1).
//!   MX RRset insecure: the destination is not DANE-protected (RFC 7672 §2.2.1).
//! - Address records (after CNAME expansion, every link included) bogus or failed: defer;
//!   insecure: no TLSA lookup, the host is not DANE-protected (RFC 7672 §2.2.2). This is also the
//!   answer to the "Outlook TLSA SERVFAIL" case: a TLSA SERVFAIL for a host whose addresses are
//!   *insecure* is never looked up / is ignored, so it cannot block delivery; a TLSA SERVFAIL for a
//!   host with *secure* addresses defers (never downgrades), RFC 7672 §2.2.
//! - TLSA secure with a usable record: authenticate with DANE; secure with only unusable records:
//!   TLS mandatory, unauthenticated (RFC 7672 §2.2, §3.1.3); secure NXDOMAIN/NODATA or insecure
//!   answer: not DANE-protected; bogus, SERVFAIL, timeout: defer (RFC 7672 §2.2).
//! - "Not DANE-protected" falls back to the configured TLS mode under `Opportunistic`, and defers
//!   under `Mandatory` (which also defers when only unusable records exist: authentication cannot
//!   be established).

use crate::dnssec::DnssecStatus;
use crate::matching::DaneMatcher;
use crate::tlsa::TlsaRecord;

/// The per-destination DANE setting (seed: Destination Controls, "DANE Support").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DaneSetting {
    /// DANE is not used for this destination.
    #[default]
    None,
    /// Use DANE when the MX host has usable, DNSSEC-validated TLSA records; otherwise the
    /// configured TLS mode.
    Opportunistic,
    /// Only deliver when DANE authentication can be established; otherwise defer.
    Mandatory,
}

impl DaneSetting {
    /// The setting's configuration word: `none`, `opportunistic` or `mandatory`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Opportunistic => "opportunistic",
            Self::Mandatory => "mandatory",
        }
    }
}

/// How a lookup failed (no usable answer at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LookupFailure {
    /// The resolver answered SERVFAIL (often: validation failed upstream).
    ServFail,
    /// No answer within the time limit.
    Timeout,
    /// Some other error (network, malformed answer, limit exceeded).
    Other,
}

/// The outcome of the TLSA lookup for one MX host (at its TLSA base domain).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TlsaLookup {
    /// Not queried (e.g. the address records were not secure).
    #[default]
    NotQueried,
    /// Records returned, with the answer's DNSSEC status.
    Found {
        /// The TLSA RRset (records that failed to parse are dropped as unusable).
        records: Vec<TlsaRecord>,
        /// DNSSEC status of the RRset.
        status: DnssecStatus,
    },
    /// NXDOMAIN or NODATA, with the status of the denial.
    NotFound {
        /// DNSSEC status of the denial of existence.
        status: DnssecStatus,
    },
    /// The lookup failed.
    Failed(LookupFailure),
}

impl TlsaLookup {
    /// RFC 7672 §2.2.2 / RFC 7671 §7: with a CNAME'd MX host, TLSA records are first sought at
    /// the expanded name; when that yields no secure records (secure denial or insecure), the
    /// original name is tried. A failure at the expanded name defers and is kept.
    /// Returns the lookup to use and whether it is the original name's.
    #[must_use]
    pub fn cname_fallback(self, original: impl FnOnce() -> Self) -> (Self, bool) {
        match &self {
            Self::Found {
                status: DnssecStatus::Secure,
                ..
            } => (self, false),
            Self::Found {
                status: DnssecStatus::Insecure,
                ..
            }
            | Self::NotFound {
                status: DnssecStatus::Secure | DnssecStatus::Insecure,
            } => (original(), true),
            _ => (self, false),
        }
    }
}

/// One TXT record: its character-strings kept apart, as published (RFC 1035 §3.3.14). A
/// record longer than 255 octets is published as several strings; protocols that read TXT
/// records as text (MTA-STS, RFC 8461 §3.1; TLS-RPT, RFC 8460 §3) join them with nothing in
/// between: [`TxtRecord::concatenated`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct TxtRecord {
    strings: Vec<Vec<u8>>,
}

impl TxtRecord {
    /// A record of these character-strings.
    #[must_use]
    pub fn new(strings: Vec<Vec<u8>>) -> Self {
        Self { strings }
    }

    /// The character-strings, in order.
    #[must_use]
    pub fn strings(&self) -> &[Vec<u8>] {
        &self.strings
    }

    /// The character-strings joined with nothing in between (RFC 8461 §3.1, RFC 7208 §3.3).
    #[must_use]
    pub fn concatenated(&self) -> Vec<u8> {
        self.strings.concat()
    }
}

/// The outcome of a TXT lookup (MTA-STS `_mta-sts.DOMAIN`, TLS-RPT `_smtp._tls.DOMAIN`).
///
/// DNSSEC-bogus data is never [`TxtLookup::Found`] nor [`TxtLookup::NotFound`]: it is
/// [`TxtLookup::Bogus`], which a caller treats as a temporary failure (RFC 8461 §5.1: a cached
/// MTA-STS policy stays in force; never "the domain has no record").
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
#[non_exhaustive]
pub enum TxtLookup {
    /// The TXT RRset, with its DNSSEC status (`Secure`, `Insecure`, or `Indeterminate` while
    /// the resolver's validation is not proven).
    Found {
        /// The records, each with its character-strings kept apart.
        records: Vec<TxtRecord>,
        /// DNSSEC status of the RRset.
        status: DnssecStatus,
    },
    /// NXDOMAIN or NODATA, with the status of the denial.
    NotFound {
        /// DNSSEC status of the denial of existence.
        status: DnssecStatus,
    },
    /// DNSSEC validation failed: the answer must not be used.
    Bogus,
    /// The RRset exists but is over the resolver's limits (more records than
    /// `Limits::max_txt_records`, or more octets of character-strings than
    /// `Limits::max_txt_bytes`): not returned, never truncated. An answer, not a failed lookup:
    /// for MTA-STS it is "not exactly one `v=STSv1` record", so no policy (RFC 8461 §3.1), not a
    /// temporary failure.
    TooLarge {
        /// How many TXT records the RRset holds.
        records: usize,
        /// Octets of character-strings over the RRset.
        bytes: usize,
        /// DNSSEC status of the RRset.
        status: DnssecStatus,
    },
    /// The lookup failed (SERVFAIL, timeout, ...). A validating resolver trusted for its AD bit
    /// answers SERVFAIL for bogus data: it comes here.
    Failed(LookupFailure),
}

impl TxtLookup {
    /// The DNSSEC status of the answer: `Bogus` for [`Self::Bogus`], `Indeterminate` for a
    /// failed lookup.
    pub fn status(&self) -> DnssecStatus {
        match self {
            Self::Found { status, .. }
            | Self::NotFound { status }
            | Self::TooLarge { status, .. } => *status,
            Self::Bogus => DnssecStatus::Bogus,
            Self::Failed(_) => DnssecStatus::Indeterminate,
        }
    }
}

/// What DNS told us about one MX host of a destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFacts {
    /// The next-hop (recipient) domain.
    pub next_hop: String,
    /// The MX host name as published in the MX record (or the domain itself without MX).
    pub mx_host: String,
    /// DNSSEC status of the MX RRset (or of the denial that made the domain its own MX).
    pub mx_status: DnssecStatus,
    /// DNSSEC status of the host's A/AAAA records, every CNAME link included.
    pub address_status: DnssecStatus,
    /// Where the TLSA records were sought / found (the TLSA base domain, RFC 7672 §2.2.2).
    pub tlsa_base: String,
    /// The TLSA lookup at `tlsa_base`.
    pub tlsa: TlsaLookup,
}

/// Why a host is not DANE-protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NoDaneReason {
    /// The destination's DANE setting is `None`.
    SettingNone,
    /// The MX RRset is insecure.
    MxInsecure,
    /// The host's address records are insecure (TLSA not consulted).
    AddressInsecure,
    /// A secure NXDOMAIN/NODATA for the TLSA name.
    NoTlsa,
    /// The TLSA answer is insecure.
    TlsaInsecure,
    /// TLSA records exist but none is usable (only under `Mandatory`).
    OnlyUnusable,
    /// The resolver's DNSSEC validation is not proven (its probe has not shown a secure
    /// answer), so no status can be trusted as secure or as insecure: `Opportunistic` goes on
    /// without DANE, and says why.
    ValidationUnproven,
}

/// Why delivery to a host must wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum DeferReason {
    /// Nothing was decided (the least trusted default).
    #[default]
    Undetermined,
    /// The MX lookup was bogus or failed.
    MxLookup(DnssecStatus),
    /// The address lookup was bogus or failed.
    AddressLookup(DnssecStatus),
    /// The TLSA answer was bogus or undeterminable.
    TlsaBogus(DnssecStatus),
    /// The TLSA lookup failed.
    TlsaLookup(LookupFailure),
    /// `Mandatory` DANE and the host is not DANE-protected.
    DaneRequired(NoDaneReason),
}

/// What the SMTP client does with one MX host.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DaneAction {
    /// Require TLS and authenticate the server with these TLSA records (RFC 7672 §3).
    UseDane {
        /// The usable-or-not RRset (the matcher ignores unusable records).
        records: Vec<TlsaRecord>,
        /// SNI to send: the TLSA base domain (RFC 7672 §8.1).
        sni: String,
        /// Reference identities for DANE-TA: TLSA base domain, MX host, next-hop (§3.2.2).
        reference_names: Vec<String>,
    },
    /// TLS is mandatory but the certificate is not authenticated: every TLSA record is
    /// unusable (RFC 7672 §2.2, §3.1.3).
    TlsMandatoryUnauthenticated,
    /// Not DANE-protected: use the destination's configured TLS mode.
    ConfiguredTls(NoDaneReason),
    /// Do not connect now; try another MX host or later. Never a downgrade.
    Defer(DeferReason),
}

impl Default for DaneAction {
    /// The least trusted action: defer, undetermined.
    fn default() -> Self {
        Self::Defer(DeferReason::Undetermined)
    }
}

impl DaneAction {
    /// A short stable name: `dane`, `tls-unauthenticated`, `configured-tls`, `defer`.
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::UseDane { .. } => "dane",
            Self::TlsMandatoryUnauthenticated => "tls-unauthenticated",
            Self::ConfiguredTls(_) => "configured-tls",
            Self::Defer(_) => "defer",
        }
    }

    /// For [`DaneAction::UseDane`], the SMTP-mode matcher for its reference identities.
    pub fn matcher(&self) -> Option<Result<DaneMatcher, crate::Error>> {
        match self {
            Self::UseDane {
                reference_names, ..
            } => Some(DaneMatcher::smtp(
                reference_names.iter().map(String::as_str),
            )),
            _ => None,
        }
    }
}

/// The RFC 7672 decision for one MX host (see the module documentation for the rules).
///
/// ```
/// use dane_verify::{decide, DaneAction, DaneSetting, DeferReason, HostFacts, LookupFailure, TlsaLookup};
/// use dane_verify::DnssecStatus::Secure;
/// let facts = HostFacts {
///     next_hop: "example".into(),
///     mx_host: "mx.example".into(),
///     mx_status: Secure,
///     address_status: Secure,
///     tlsa_base: "mx.example".into(),
///     tlsa: TlsaLookup::Failed(LookupFailure::ServFail),
/// };
/// // A TLSA SERVFAIL for a secure host defers, even when DANE is only opportunistic.
/// assert_eq!(
///     decide(DaneSetting::Opportunistic, &facts),
///     DaneAction::Defer(DeferReason::TlsaLookup(LookupFailure::ServFail))
/// );
/// ```
pub fn decide(setting: DaneSetting, facts: &HostFacts) -> DaneAction {
    use DnssecStatus::{Insecure, Secure};
    let no_dane = |reason| match setting {
        DaneSetting::Mandatory => DaneAction::Defer(DeferReason::DaneRequired(reason)),
        _ => DaneAction::ConfiguredTls(reason),
    };
    if setting == DaneSetting::None {
        return DaneAction::ConfiguredTls(NoDaneReason::SettingNone);
    }
    match facts.mx_status {
        Secure => {}
        Insecure => return no_dane(NoDaneReason::MxInsecure),
        s => return DaneAction::Defer(DeferReason::MxLookup(s)),
    }
    match facts.address_status {
        Secure => {}
        Insecure => return no_dane(NoDaneReason::AddressInsecure),
        s => return DaneAction::Defer(DeferReason::AddressLookup(s)),
    }
    match &facts.tlsa {
        TlsaLookup::NotQueried => DaneAction::Defer(DeferReason::Undetermined),
        TlsaLookup::Failed(f) => DaneAction::Defer(DeferReason::TlsaLookup(*f)),
        TlsaLookup::NotFound { status: Secure } => no_dane(NoDaneReason::NoTlsa),
        TlsaLookup::NotFound { status: Insecure }
        | TlsaLookup::Found {
            status: Insecure, ..
        } => no_dane(NoDaneReason::TlsaInsecure),
        TlsaLookup::NotFound { status } | TlsaLookup::Found { status, .. } if *status != Secure => {
            DaneAction::Defer(DeferReason::TlsaBogus(*status))
        }
        TlsaLookup::NotFound { .. } => DaneAction::Defer(DeferReason::Undetermined),
        TlsaLookup::Found { records, .. } => {
            if records.iter().any(TlsaRecord::is_usable_for_smtp) {
                let mut reference_names = vec![facts.tlsa_base.clone()];
                for n in [&facts.mx_host, &facts.next_hop] {
                    if !reference_names.iter().any(|r| r.eq_ignore_ascii_case(n)) {
                        reference_names.push(n.clone());
                    }
                }
                DaneAction::UseDane {
                    records: records.clone(),
                    sni: facts.tlsa_base.clone(),
                    reference_names,
                }
            } else if setting == DaneSetting::Mandatory {
                DaneAction::Defer(DeferReason::DaneRequired(NoDaneReason::OnlyUnusable))
            } else {
                DaneAction::TlsMandatoryUnauthenticated
            }
        }
    }
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod policy_tests;
