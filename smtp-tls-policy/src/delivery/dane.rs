//! DANE for SMTP (RFC 7672) from `dane-verify` as inputs of the delivery machine.
//!
//! `dane-verify` decides per MX host, before connecting, what DNSSEC allows
//! ([`dane_verify::decide`] → [`dane_verify::DaneAction`]) and, after the handshake,
//! whether the presented chain matches the TLSA RRset ([`dane_verify::DaneVerdict`]). The delivery
//! machine takes its own input types, [`TlsaStatus`] and [`DaneOutcome`]; this module converts,
//! with [`tlsa_status`] / `From<&DaneAction> for TlsaStatus` and [`dane_outcome`] /
//! `From<&DaneVerdict> for DaneOutcome`. Give `decide` the same DANE setting the machine gets
//! (the destination's [`DestinationPolicy::dane`](crate::destination::DestinationPolicy::dane)).
//!
//! # Before connecting: `DaneAction` → `TlsaStatus`
//!
//! | dane-verify `DaneAction` | `TlsaStatus` | machine, DANE `opportunistic` | machine, DANE `mandatory` |
//! |---|---|---|---|
//! | `UseDane { .. }` | `Usable` | TLS mandatory, DANE-authenticated, whatever the TLS mode (RFC 7672 §2.2, §3) | same |
//! | `TlsMandatoryUnauthenticated` | `Unusable` | TLS mandatory, not authenticated (RFC 7672 §2.2, §3.1.3) | no connection: defer (`DaneNotSupported`) |
//! | `ConfiguredTls(_)` | `NotApplicable` | the configured TLS mode: not DANE-protected (RFC 7672 §2.2, §2.2.1, §2.2.2) | no connection: defer (`DaneNotSupported`) |
//! | `Defer(_)`, any reason | `Defer { reason }` | no connection: defer (`TlsaLookupFailed`) (RFC 7672 §2.2, §2.2.1) | same |
//!
//! With DANE `none` the machine ignores the status (the configured TLS mode applies); so does TLS
//! mode `no` (destination controls refuse an entry that combines `no` with DANE).
//!
//! `Defer` always becomes [`TlsaStatus::Defer`], also `Defer(DaneRequired(..))` (mandatory DANE,
//! host not DANE-protected): the machine then never connects, even if it was handed a weaker
//! DANE mode than `decide` was — a dane-verify "defer" can never turn into a connection. The
//! price is the wording: the machine reports such a host as `Reason::TlsaLookupFailed` whose text
//! says "DANE mandatory but the host is not DANE-protected: ...".
//!
//! # After the handshake: `DaneVerdict` → `DaneOutcome`
//!
//! | `DaneMatchOutcome` | `DaneOutcome` | machine (requirement DANE) |
//! |---|---|---|
//! | `Verified` | `Verified` | continue in TLS (RFC 7672 §3.1) |
//! | `NoMatch` | `Failed` | defer, never plaintext (RFC 7672 §2.2: "MUST NOT deliver ... via this server") |
//! | `NameMismatch` | `Failed` | defer (DANE-TA name check, RFC 7672 §3.2.2, §3.2.3) |
//! | `ChainError` | `Failed` | defer (DANE-TA chain, RFC 7672 §3.1.2) |
//! | `Unusable` | `Failed` | defer (no record could authenticate the peer) |
//!
//! The failure reason is `"<outcome>: <why>"` with the outcome's stable name
//! ([`dane_verify::DaneMatchOutcome::as_str`]); an outcome this crate does not know yet is a failure.

use dane_verify::{DaneAction, DeferReason, LookupFailure, NoDaneReason};
use dane_verify::{DaneMatchOutcome, DaneVerdict};

use super::requirement::{DaneOutcome, TlsaStatus};

/// The machine's TLSA input for dane-verify's RFC 7672 action for one MX host (table in the
/// module documentation).
///
/// ```
/// use dane_verify::{DaneAction, DeferReason, LookupFailure, NoDaneReason};
/// use smtp_tls_policy::delivery::{TlsaStatus, dane::tlsa_status};
/// assert_eq!(tlsa_status(&DaneAction::TlsMandatoryUnauthenticated), TlsaStatus::Unusable);
/// assert_eq!(
///     tlsa_status(&DaneAction::ConfiguredTls(NoDaneReason::MxInsecure)),
///     TlsaStatus::NotApplicable
/// );
/// let s = tlsa_status(&DaneAction::Defer(DeferReason::TlsaLookup(LookupFailure::ServFail)));
/// assert!(matches!(s, TlsaStatus::Defer { .. }));
/// ```
pub fn tlsa_status(action: &DaneAction) -> TlsaStatus {
    match action {
        // RFC 7672 §2.2: secure, usable TLSA records: TLS mandatory, authenticated by DANE.
        DaneAction::UseDane { .. } => TlsaStatus::Usable,
        // RFC 7672 §2.2, §3.1.3: secure records, none usable: TLS mandatory, unauthenticated.
        DaneAction::TlsMandatoryUnauthenticated => TlsaStatus::Unusable,
        // RFC 7672 §2.2.1 (insecure MX), §2.2.2 (insecure addresses), §2.2 (secure denial):
        // not DANE-protected, the configured TLS mode applies.
        DaneAction::ConfiguredTls(_) => TlsaStatus::NotApplicable,
        // RFC 7672 §2.2: bogus or failed lookups must not be used; never a downgrade.
        DaneAction::Defer(reason) => TlsaStatus::Defer {
            reason: defer_text(*reason),
        },
        // An action this crate does not know yet: fail closed.
        _ => TlsaStatus::Defer {
            reason: format!("unknown DANE action {:?}", action.as_str()),
        },
    }
}

/// The machine's DANE result for dane-verify's match of the presented chain against the TLSA
/// RRset (table in the module documentation).
///
/// ```
/// use dane_verify::{DaneMatchOutcome, DaneVerdict};
/// use smtp_tls_policy::delivery::{DaneOutcome, dane::dane_outcome};
/// let ok = DaneVerdict { outcome: DaneMatchOutcome::Verified, depth: 0, matched: None, reason: None };
/// assert_eq!(dane_outcome(&ok), DaneOutcome::Verified);
/// let bad = DaneVerdict { outcome: DaneMatchOutcome::NoMatch, ..ok };
/// assert!(matches!(dane_outcome(&bad), DaneOutcome::Failed { .. }));
/// ```
pub fn dane_outcome(verdict: &DaneVerdict) -> DaneOutcome {
    let why = match verdict.outcome {
        DaneMatchOutcome::Verified => return DaneOutcome::Verified,
        DaneMatchOutcome::NoMatch => "no usable TLSA record matched the presented chain",
        DaneMatchOutcome::NameMismatch => "a TLSA record matched but the certificate name does not",
        DaneMatchOutcome::ChainError => {
            "a TLSA record matched but the chain does not validate to it"
        }
        DaneMatchOutcome::Unusable => "every TLSA record is unusable for SMTP",
        _ => "unknown DANE outcome",
    };
    let mut reason = format!("{}: {}", verdict.outcome.as_str(), why);
    if let Some(detail) = &verdict.reason {
        reason.push_str(" (");
        reason.push_str(detail);
        reason.push(')');
    }
    if let Some(record) = &verdict.matched {
        reason.push_str(&format!(
            "; matched TLSA {record} at depth {}",
            verdict.depth
        ));
    }
    DaneOutcome::Failed { reason }
}

impl From<&DaneAction> for TlsaStatus {
    /// See [`tlsa_status`].
    fn from(action: &DaneAction) -> Self {
        tlsa_status(action)
    }
}

impl From<DaneAction> for TlsaStatus {
    /// See [`tlsa_status`].
    fn from(action: DaneAction) -> Self {
        tlsa_status(&action)
    }
}

impl From<&DaneVerdict> for DaneOutcome {
    /// See [`dane_outcome`].
    fn from(verdict: &DaneVerdict) -> Self {
        dane_outcome(verdict)
    }
}

impl From<DaneVerdict> for DaneOutcome {
    /// See [`dane_outcome`].
    fn from(verdict: DaneVerdict) -> Self {
        dane_outcome(&verdict)
    }
}

fn lookup_text(f: LookupFailure) -> &'static str {
    match f {
        LookupFailure::ServFail => "SERVFAIL",
        LookupFailure::Timeout => "timeout",
        _ => "error",
    }
}

fn no_dane_text(r: NoDaneReason) -> &'static str {
    match r {
        NoDaneReason::SettingNone => "DANE setting is none",
        NoDaneReason::MxInsecure => "MX RRset is insecure",
        NoDaneReason::AddressInsecure => "address records are insecure",
        NoDaneReason::NoTlsa => "no TLSA records (secure denial)",
        NoDaneReason::TlsaInsecure => "TLSA answer is insecure",
        NoDaneReason::OnlyUnusable => "only unusable TLSA records",
        NoDaneReason::ValidationUnproven => {
            "DNSSEC validation of the resolver not proven (probe): DANE unavailable"
        }
        _ => "not DANE-protected",
    }
}

/// The text of a dane-verify defer reason (it has no `Display`).
fn defer_text(reason: DeferReason) -> String {
    match reason {
        DeferReason::Undetermined => "DANE status undetermined (TLSA not looked up)".into(),
        DeferReason::MxLookup(s) => format!("MX lookup {}", s.as_str()),
        DeferReason::AddressLookup(s) => format!("address lookup of the MX host {}", s.as_str()),
        DeferReason::TlsaBogus(s) => format!("TLSA answer {}", s.as_str()),
        DeferReason::TlsaLookup(f) => format!("TLSA lookup {}", lookup_text(f)),
        DeferReason::DaneRequired(r) => format!(
            "DANE mandatory but the host is not DANE-protected: {}",
            no_dane_text(r)
        ),
        _ => "deferred by the DANE policy".into(),
    }
}

#[cfg(test)]
#[path = "dane_tests.rs"]
mod tests;
