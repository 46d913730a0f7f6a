//! One delivery attempt as a TLS report counts it (RFC 8460 §4): under which policy
//! ([`ReportedPolicy`]) and with which result ([`SessionResult`]), taken from the hop plan's
//! decision and verdict, never re-derived from the connection.
//!
//! The one table from outcome to result type, and the decisions made on RFC 8460 §4.3, are
//! documented on [`TlsOutcome`]; the choice of policy on [`ReportedPolicy::for_plan`].
//!
//! The policy domain is always set (RFC 8460 §4.4 leaves it optional; receivers cope badly
//! when it is missing).

use std::net::IpAddr;

use dane_verify::{DaneAction, DeferReason, NoDaneReason};
use serde::{Deserialize, Serialize};

use super::result_type::{PolicyType, ResultType};
use crate::delivery::{DaneOutcome, Decision, PkixOutcome, Reason};
use crate::error::Error;
use crate::mta_sts::verdict::chain_failure_kind;
use crate::mta_sts::{Mode, StsFailure, StsFailureKind};
use crate::plan::{HoldReason, HopPlan, PeerVerdict};

/// Longest policy domain, host name or HELO name kept (RFC 1035 §2.3.4: 253 octets in text form
/// plus slack); longer values are cut.
pub const MAX_NAME_LEN: usize = 255;

/// Longest `additional-information` kept; longer values are cut.
pub const MAX_INFO_LEN: usize = 512;

/// The policy a session was evaluated against (RFC 8460 §4.4 `policy`): its type, the policy
/// domain (always set, lower case A-labels without a trailing dot), the policy strings (the
/// MTA-STS policy lines, or the TLSA records as `3 1 1 <hex>`) and the MTA-STS `mx` patterns.
///
/// Serialised as JSON for a counter store ([`Self::to_store_string`],
/// [`Self::from_store_string`]); the same value always gives the same string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ReportedPolicy {
    /// `sts`, `tlsa` or `no-policy-found`.
    #[serde(rename = "t")]
    pub policy_type: PolicyType,
    /// The recipient (policy) domain.
    #[serde(rename = "d")]
    pub policy_domain: String,
    /// `policy-string`.
    #[serde(rename = "p", default)]
    pub policy_strings: Vec<String>,
    /// `mx-host` (MTA-STS only).
    #[serde(rename = "m", default)]
    pub mx_hosts: Vec<String>,
}

impl ReportedPolicy {
    /// `no-policy-found` for `domain`.
    #[must_use]
    pub fn no_policy_found(domain: &str) -> Self {
        Self::new(PolicyType::NoPolicyFound, domain, Vec::new(), Vec::new())
    }

    /// An MTA-STS policy of `domain`: its text lines and `mx` patterns. `None` (the policy
    /// could not be fetched or is invalid) gives `sts` without policy strings.
    #[must_use]
    pub fn sts(domain: &str, policy: Option<&crate::mta_sts::Policy>) -> Self {
        let (strings, mx) = policy.map_or_else(Default::default, |p| {
            (
                p.policy_strings().into_iter().map(str::to_owned).collect(),
                p.mx.iter().map(ToString::to_string).collect(),
            )
        });
        Self::new(PolicyType::Sts, domain, strings, mx)
    }

    /// DANE TLSA records of a host of `domain`, in presentation form.
    #[must_use]
    pub fn tlsa(domain: &str, records: &[dane_verify::TlsaRecord]) -> Self {
        let strings = records.iter().map(ToString::to_string).collect();
        Self::new(PolicyType::Tlsa, domain, strings, Vec::new())
    }

    /// The policy a session with `plan` counts under: `tlsa` (with the host's TLSA records)
    /// when DANE decides for the host (usable records, or only unusable ones making TLS
    /// mandatory) or the hold comes from DANE (bogus or failed TLSA lookup, mandatory DANE
    /// without records, too many records); else `sts` when the plan's MTA-STS verdict is
    /// `enforce` or `testing` (`sts_policy` supplies its text lines and `mx` patterns); else
    /// `no-policy-found` (no policy, or `mode: none`). The policy domain is the plan's
    /// recipient domain, always set.
    #[must_use]
    pub fn for_plan(plan: &HopPlan, sts_policy: Option<&crate::mta_sts::Policy>) -> Self {
        let domain = plan.policy().domain.as_str();
        let records = match plan.dane_action() {
            DaneAction::UseDane { records, .. } => records.as_slice(),
            _ => &[],
        };
        let dane_hold = matches!(
            plan.pre_connect().hold_reason(),
            Some(
                HoldReason::Dane(
                    DeferReason::TlsaBogus(_)
                        | DeferReason::TlsaLookup(_)
                        | DeferReason::DaneRequired(_)
                ) | HoldReason::TooManyTlsaRecords { .. }
            )
        );
        let dane_decides = plan.requirement().is_some_and(|r| r.needs_dane())
            || (plan.may_connect()
                && matches!(plan.dane_action(), DaneAction::TlsMandatoryUnauthenticated));
        let sts_active = plan
            .mta_sts()
            .is_some_and(|v| matches!(v.mode, Some(Mode::Enforce | Mode::Testing)));
        if dane_hold || dane_decides {
            Self::tlsa(domain, records)
        } else if sts_active {
            Self::sts(domain, sts_policy)
        } else {
            Self::no_policy_found(domain)
        }
    }

    /// The policy described as a string for a counter store: JSON with the fields in a fixed
    /// order, so the same policy always gives the same string.
    #[must_use]
    pub fn to_store_string(&self) -> String {
        serde_json::json!({
            "t": self.policy_type.as_str(),
            "d": self.policy_domain,
            "p": self.policy_strings,
            "m": self.mx_hosts,
        })
        .to_string()
    }

    /// The policy back from [`Self::to_store_string`], exactly as stored (not normalised
    /// again: the stored string of the result is the string read, so the bucket id stays).
    ///
    /// # Errors
    /// [`Error::TlsRptReport`] with [`super::ReportErrorKind::Json`] when `text` is not a
    /// stored policy.
    pub fn from_store_string(text: &str) -> Result<Self, Error> {
        let p: Self = serde_json::from_str(text).map_err(|e| super::ReportErrorKind::json(&e))?;
        if p.policy_type.as_str().is_empty() {
            return Err(super::ReportErrorKind::Json {
                line: 0,
                column: 0,
                detail: "stored policy without a policy type".into(),
            }
            .into());
        }
        Ok(p)
    }

    /// The report's `policy` object for this policy.
    #[must_use]
    pub fn to_policy(&self) -> super::Policy {
        let mut policy = super::Policy::new(self.policy_type.clone(), self.policy_domain.clone());
        policy.policy_string.clone_from(&self.policy_strings);
        policy.mx_host.clone_from(&self.mx_hosts);
        policy
    }

    fn new(
        policy_type: PolicyType,
        domain: &str,
        policy_strings: Vec<String>,
        mx_hosts: Vec<String>,
    ) -> Self {
        Self {
            policy_type,
            policy_domain: normalise_domain(domain),
            policy_strings,
            mx_hosts,
        }
    }
}

/// What happened to one delivery attempt, as far as TLS reporting is concerned.
///
/// The mapping from what happened ([`TlsOutcome`]) to the report's result type is one table,
/// [`Self::classify`]:
///
/// | outcome | result type | failure-reason-code |
/// |---|---|---|
/// | `Success` | — (a successful session) | |
/// | `StarttlsNotSupported` (not in EHLO, no ESMTP, STARTTLS refused) | `starttls-not-supported` | `starttls-not-offered` |
/// | `HandshakeFailed` | `validation-failure` | `tls-handshake-failed` |
/// | `CertificateHostMismatch` | `certificate-host-mismatch` | `certificate-host-mismatch` |
/// | `CertificateExpired` (expired or not yet valid) | `certificate-expired` | `certificate-expired` |
/// | `CertificateNotTrusted` (unknown issuer) | `certificate-not-trusted` | `certificate-not-trusted` |
/// | `CertificateInvalid` (any other PKIX failure) | `validation-failure` | `certificate-invalid` |
/// | `TlsaNoMatch` (no TLSA record matched the chain) | `tlsa-invalid` | `dane-no-match` |
/// | `TlsaUnusable` (only unusable records, too many records) | `tlsa-invalid` | `tlsa-unusable` |
/// | `DnssecInvalid` (bogus or failed TLSA lookup) | `dnssec-invalid` | `dnssec-invalid` |
/// | `DaneRequired` (mandatory DANE, no usable secure TLSA) | `dane-required` | `dane-required` |
/// | `Sts(kind)` | the kind's own (`sts-policy-fetch-error`, `sts-policy-invalid`, `sts-webpki-invalid`, `certificate-*`, `validation-failure`) | the same |
///
/// Decisions made here (RFC 8460 §4.3):
/// - an MX host not listed in an MTA-STS policy is `validation-failure`: §4.3.1 has no type for
///   it and the MTA-STS verdict already names it so ([`crate::mta_sts::StsFailureKind`]);
///   recorded under `testing` too (delivery goes on, the report still counts the failure);
/// - a DANE chain that matches no TLSA record is `tlsa-invalid` ("none of the records in the
///   RRset were found to be valid"), as is an RRset of only unusable records;
/// - a bogus or failed TLSA lookup is `dnssec-invalid` ("no valid records were returned from the
///   recursive resolver");
/// - a failed TLS handshake has no type of its own: `validation-failure`;
/// - a certificate that does not verify where nothing required it (opportunistic TLS, no
///   policy) is a success: the session met every policy in force.
///
/// Holds that say nothing about the receiving domain's TLS (inconsistent facts, names that do
/// not parse, MX or address lookups, REQUIRETLS) and attempts without TLS by local choice
/// (TLS `no`, the plaintext retry after a counted handshake failure) are not sessions:
/// [`Self::of_hold`] and [`Self::of_decision`] give `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TlsOutcome {
    /// TLS established and every policy check passed.
    Success,
    /// The MX did not offer STARTTLS (not in the EHLO reply, no ESMTP, or refused).
    StarttlsNotSupported,
    /// The TLS handshake failed.
    HandshakeFailed,
    /// The certificate does not name the host.
    CertificateHostMismatch,
    /// The certificate (or its chain) is expired or not yet valid.
    CertificateExpired,
    /// The chain does not end at a trusted CA.
    CertificateNotTrusted,
    /// Any other certificate validation failure.
    CertificateInvalid,
    /// DANE: no TLSA record matched the presented chain.
    TlsaNoMatch,
    /// DANE: the TLSA RRset has no usable record (or too many records).
    TlsaUnusable,
    /// DANE: the TLSA lookup was bogus or failed.
    DnssecInvalid,
    /// Mandatory DANE, and the host has no DNSSEC-validated TLSA records.
    DaneRequired,
    /// An MTA-STS failure (policy fetch, policy invalid, policy host's certificate, the MX
    /// host's certificate, MX host not listed).
    Sts(StsFailureKind),
}

impl TlsOutcome {
    /// THE table: the result type (`None` for a success) and a short stable
    /// `failure-reason-code`.
    #[must_use]
    pub fn classify(self) -> Option<(ResultType, &'static str)> {
        use ResultType as R;
        Some(match self {
            Self::Success => return None,
            Self::StarttlsNotSupported => (R::StarttlsNotSupported, "starttls-not-offered"),
            Self::HandshakeFailed => (R::ValidationFailure, "tls-handshake-failed"),
            Self::CertificateHostMismatch => {
                (R::CertificateHostMismatch, "certificate-host-mismatch")
            }
            Self::CertificateExpired => (R::CertificateExpired, "certificate-expired"),
            Self::CertificateNotTrusted => (R::CertificateNotTrusted, "certificate-not-trusted"),
            Self::CertificateInvalid => (R::ValidationFailure, "certificate-invalid"),
            Self::TlsaNoMatch => (R::TlsaInvalid, "dane-no-match"),
            Self::TlsaUnusable => (R::TlsaInvalid, "tlsa-unusable"),
            Self::DnssecInvalid => (R::DnssecInvalid, "dnssec-invalid"),
            Self::DaneRequired => (R::DaneRequired, "dane-required"),
            Self::Sts(kind) => (R::from(kind), kind.result_type()),
        })
    }

    /// The outcome of a completed handshake from the plan's verdict: under DANE the DANE
    /// result decides; else an MTA-STS failure (also under `testing`); else a PKIX failure
    /// that stopped delivery; else success. A DANE host with only unusable records
    /// ([`DaneAction::TlsMandatoryUnauthenticated`]) counts as `TlsaUnusable` even though
    /// delivery goes on.
    #[must_use]
    pub fn of_handshake(plan: &HopPlan, verdict: &PeerVerdict) -> Self {
        if plan.requirement().is_some_and(|r| r.needs_dane()) {
            return match &verdict.dane {
                Some(DaneOutcome::Verified) => Self::Success,
                _ => Self::TlsaNoMatch,
            };
        }
        if matches!(plan.dane_action(), DaneAction::TlsMandatoryUnauthenticated) {
            return Self::TlsaUnusable;
        }
        if let Some(failure) = &verdict.sts_failure {
            return Self::Sts(failure.kind);
        }
        if verdict.satisfies_requirement {
            return Self::Success;
        }
        match verdict.pkix_detail.as_ref().and_then(|d| d.error.as_ref()) {
            Some(e) if e.kind() == "identity" => Self::CertificateHostMismatch,
            Some(e) => match chain_failure_kind(e) {
                StsFailureKind::CertificateExpired => Self::CertificateExpired,
                StsFailureKind::CertificateNotTrusted => Self::CertificateNotTrusted,
                _ => Self::CertificateInvalid,
            },
            None => Self::CertificateInvalid,
        }
    }

    /// The outcome of a plan that makes no connection to the host ([`HopPlan::pre_connect`]):
    /// `None` when the hold says nothing about the domain's TLS (or there is no hold).
    #[must_use]
    pub fn of_hold(reason: &HoldReason) -> Option<Self> {
        match reason {
            HoldReason::Dane(DeferReason::TlsaBogus(_) | DeferReason::TlsaLookup(_)) => {
                Some(Self::DnssecInvalid)
            }
            HoldReason::Dane(DeferReason::DaneRequired(NoDaneReason::OnlyUnusable))
            | HoldReason::TooManyTlsaRecords { .. } => Some(Self::TlsaUnusable),
            HoldReason::Dane(DeferReason::DaneRequired(_)) => Some(Self::DaneRequired),
            HoldReason::MtaSts(failure) => Some(Self::Sts(failure.kind)),
            _ => None,
        }
    }

    /// The outcome of an attempt the delivery state machine ended: `verdict` is the plan's
    /// verdict when a handshake completed (then [`Self::of_handshake`] decides; without it,
    /// the machine's reason: a name mismatch, another certificate failure, a DANE failure). `None` for attempts that are not sessions (TLS
    /// disabled, the plaintext retry after a handshake failure, a caller bug).
    #[must_use]
    pub fn of_decision(
        plan: &HopPlan,
        decision: &Decision,
        verdict: Option<&PeerVerdict>,
    ) -> Option<Self> {
        match &decision.reason {
            Reason::NoEsmtp | Reason::StartTlsNotAdvertised | Reason::StartTlsRejected { .. } => {
                Some(Self::StarttlsNotSupported)
            }
            Reason::HandshakeFailed { .. } => Some(Self::HandshakeFailed),
            Reason::TlsEstablished(_)
            | Reason::CertificateNotVerified(_)
            | Reason::DaneVerificationFailed { .. }
                if verdict.is_some() =>
            {
                verdict.map(|v| Self::of_handshake(plan, v))
            }
            // Without the plan's verdict, what the machine saw.
            Reason::TlsEstablished(_) => Some(Self::Success),
            Reason::CertificateNotVerified(PkixOutcome::NameMismatch { .. }) => {
                Some(Self::CertificateHostMismatch)
            }
            Reason::CertificateNotVerified(_) => Some(Self::CertificateInvalid),
            Reason::DaneVerificationFailed { .. } => Some(Self::TlsaNoMatch),
            Reason::DaneNotSupported => Some(Self::DaneRequired),
            Reason::TlsaLookupFailed { .. } => Some(Self::DnssecInvalid),
            _ => None,
        }
    }

    /// The outcome of an MTA-STS policy discovery that failed (fetch error, invalid policy,
    /// policy host certificate): counted under `sts` even when delivery goes on.
    #[must_use]
    pub fn of_sts_failure(failure: &StsFailure) -> Self {
        Self::Sts(failure.kind)
    }
}

/// The endpoints of a session, as far as known (RFC 8460 §4.4 `failure-details`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Endpoints {
    /// `sending-mta-ip`: the local address of the connection.
    pub sending_mta_ip: Option<IpAddr>,
    /// `receiving-ip`: the MX address connected to.
    pub receiving_ip: Option<IpAddr>,
    /// `receiving-mx-hostname`: the MX host name.
    pub receiving_mx_hostname: Option<String>,
    /// `receiving-mx-helo`: the name in the MX's greeting or EHLO reply.
    pub receiving_mx_helo: Option<String>,
}

impl Endpoints {
    /// Endpoints of a connection from `sending` to `receiving` at MX host `mx`.
    #[must_use]
    pub fn new(sending: Option<IpAddr>, receiving: Option<IpAddr>, mx: Option<&str>) -> Self {
        Self {
            sending_mta_ip: sending,
            receiving_ip: receiving,
            receiving_mx_hostname: mx.map(normalise_domain).filter(|m| !m.is_empty()),
            receiving_mx_helo: None,
        }
    }

    /// The same endpoints with the MX's HELO name.
    ///
    /// The name is the peer's free text: it is kept only when it is a syntactically valid DNS
    /// name (LDH labels of 1 to 63 octets, at most 253 octets, lower-cased, no trailing dot) or
    /// an address literal (`[192.0.2.1]`, `[IPv6:2001:db8::1]`); anything else (control or
    /// non-ASCII characters, separators, overlong names) gives `None`, so that a hostile MX
    /// cannot make up a new report field with every connection.
    #[must_use]
    pub fn with_helo(mut self, helo: &str) -> Self {
        self.receiving_mx_helo = valid_helo(helo);
        self
    }
}

/// One session's result: a success, or a failure with its result type and details.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SessionResult {
    /// TLS established and the policy satisfied.
    Success,
    /// The session failed (also under MTA-STS `testing`, where delivery went on).
    Failure {
        /// `result-type`.
        result_type: ResultType,
        /// `sending-mta-ip`.
        sending_mta_ip: Option<IpAddr>,
        /// `receiving-ip`.
        receiving_ip: Option<IpAddr>,
        /// `receiving-mx-hostname` (lower case, no trailing dot).
        receiving_mx_hostname: Option<String>,
        /// `receiving-mx-helo`.
        receiving_mx_helo: Option<String>,
        /// `failure-reason-code`: the short code of [`TlsOutcome::classify`].
        failure_reason_code: Option<String>,
        /// `additional-information`: a URI given by the operator (e.g. a help page).
        additional_information: Option<String>,
    },
}

impl SessionResult {
    /// The result of `outcome` at `endpoints` (the endpoints are kept only for failures).
    #[must_use]
    pub fn new(outcome: TlsOutcome, endpoints: Endpoints) -> Self {
        match outcome.classify() {
            None => Self::Success,
            Some((result_type, code)) => Self::Failure {
                result_type,
                sending_mta_ip: endpoints.sending_mta_ip,
                receiving_ip: endpoints.receiving_ip,
                receiving_mx_hostname: endpoints.receiving_mx_hostname,
                receiving_mx_helo: endpoints.receiving_mx_helo,
                failure_reason_code: Some(code.to_owned()),
                additional_information: None,
            },
        }
    }

    /// The same result with `additional-information` (ignored for a success): our own text,
    /// e.g. a help page URI given by the operator, never the peer's reply text. Kept only when
    /// it is at most [`MAX_INFO_LEN`] octets of printable ASCII without spaces (a URI or a
    /// reason code); anything else gives `None`.
    #[must_use]
    pub fn with_additional_information(mut self, info: &str) -> Self {
        if let Self::Failure {
            additional_information,
            ..
        } = &mut self
        {
            *additional_information = valid_info(info);
        }
        self
    }

    /// Whether this is a success.
    #[must_use]
    pub fn is_success(&self) -> bool {
        matches!(self, Self::Success)
    }
}

/// One session to count: the policy it was evaluated against and its result.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Session {
    /// The policy.
    pub policy: ReportedPolicy,
    /// The result.
    pub result: SessionResult,
}

impl Session {
    /// A session under `policy` with `result`.
    #[must_use]
    pub fn new(policy: ReportedPolicy, result: SessionResult) -> Self {
        Self { policy, result }
    }

    /// The session of an attempt with `plan`: the policy of [`ReportedPolicy::for_plan`] and
    /// the result of `outcome` at `endpoints`.
    #[must_use]
    pub fn of_plan(
        plan: &HopPlan,
        sts_policy: Option<&crate::mta_sts::Policy>,
        outcome: TlsOutcome,
        endpoints: Endpoints,
    ) -> Self {
        Self::new(
            ReportedPolicy::for_plan(plan, sts_policy),
            SessionResult::new(outcome, endpoints),
        )
    }
}

/// `helo` when it is a valid DNS name (lower-cased, no trailing dot) or address literal.
pub(super) fn valid_helo(helo: &str) -> Option<String> {
    let helo = helo.trim();
    if let Some(inner) = helo.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        let ok = match inner.get(..5) {
            Some(tag) if tag.eq_ignore_ascii_case("IPv6:") => inner
                .get(5..)
                .is_some_and(|a| a.parse::<std::net::Ipv6Addr>().is_ok()),
            _ => inner.parse::<std::net::Ipv4Addr>().is_ok(),
        };
        return ok.then(|| helo.to_owned());
    }
    let name = helo.strip_suffix('.').unwrap_or(helo);
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let ok = !name.is_empty() && name.len() <= 253 && name.split('.').all(label_ok);
    ok.then(|| name.to_ascii_lowercase())
}

/// `info` when it is printable ASCII without spaces, at most [`MAX_INFO_LEN`] octets.
pub(super) fn valid_info(info: &str) -> Option<String> {
    let info = info.trim();
    let ok = !info.is_empty()
        && info.len() <= MAX_INFO_LEN
        && info.bytes().all(|b| b.is_ascii_graphic());
    ok.then(|| info.to_owned())
}

/// Lower case, no trailing dot, A-labels when the name converts, cut to [`MAX_NAME_LEN`];
/// idempotent (a stored name normalises to itself).
pub(super) fn normalise_domain(name: &str) -> String {
    let strip = |n: &str| -> String {
        n.trim_start()
            .trim_end_matches(|c: char| c == '.' || c.is_whitespace())
            .to_owned()
    };
    let name = strip(name);
    let ascii = if name.is_ascii() {
        name.to_ascii_lowercase()
    } else {
        idna::domain_to_ascii(&name).unwrap_or_else(|_| name.to_lowercase())
    };
    strip(&clip(&ascii, MAX_NAME_LEN))
}

/// `text` cut to at most `max` bytes on a character boundary.
pub(super) fn clip(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default().to_owned()
}
