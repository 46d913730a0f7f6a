//! The MTA-STS verdict for one MX host of one recipient domain (RFC 8461 §4, §5), and the
//! certificate check a host under `enforce`/`testing` must pass (RFC 8461 §4.1).
//!
//! * `enforce`: a host that matches no `mx` pattern is not used ([`StsHostAction::SkipHost`],
//!   with each pattern's reason); a matching host must present a PKIX-valid certificate for
//!   its own name, else the delivery to it fails ([`StsPeerVerdict::Reject`] → defer).
//! * `testing`: deliver anyway; any failure is recorded for TLS-RPT
//!   ([`StsPeerVerdict::AcceptReported`]).
//! * `none`, or no policy: no constraint.
//!
//! Everything here is plain serde data, so the hop plan's explanation can embed it as a policy
//! source. Precedence with DANE is the hop plan's decision, not made here: RFC 8461 §2 lets a
//! secure, usable TLSA RRset for the MX host decide for that host, and MTA-STS never overrides
//! a DANE failure. The policy applies only to the recipient domain it was fetched for: filter the MX
//! list per recipient domain before any connection reuse.

use rustls_pki_types::{CertificateDer, UnixTime};
use serde::{Deserialize, Serialize};

use super::mx_pattern::MxListMatch;
use super::policy::{Mode, Policy, PolicyError};
use crate::chain::{ChainOptions, TrustAnchors, verify_chain};
use crate::error::Error;
use crate::identity::{DnsName, PresentedIdentities, dns_name_matches};

/// A failure kind, as RFC 8460 (TLS-RPT) §4.3 names its result types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum StsFailureKind {
    /// The policy could not be fetched (`sts-policy-fetch-error`).
    StsPolicyFetchError,
    /// The policy was fetched but is invalid (`sts-policy-invalid`).
    StsPolicyInvalid,
    /// The policy host's certificate failed PKIX validation (`sts-webpki-invalid`).
    StsWebpkiInvalid,
    /// The MX host's certificate does not name it (`certificate-host-mismatch`).
    CertificateHostMismatch,
    /// The MX host's certificate (or its chain) is expired or not yet valid
    /// (`certificate-expired`).
    CertificateExpired,
    /// The MX host's chain does not end at a trusted CA (`certificate-not-trusted`).
    CertificateNotTrusted,
    /// Any other validation failure, an MX host not listed in the policy included
    /// (`validation-failure`).
    ValidationFailure,
}

impl StsFailureKind {
    /// The RFC 8460 result-type string.
    #[must_use]
    pub fn result_type(self) -> &'static str {
        match self {
            Self::StsPolicyFetchError => "sts-policy-fetch-error",
            Self::StsPolicyInvalid => "sts-policy-invalid",
            Self::StsWebpkiInvalid => "sts-webpki-invalid",
            Self::CertificateHostMismatch => "certificate-host-mismatch",
            Self::CertificateExpired => "certificate-expired",
            Self::CertificateNotTrusted => "certificate-not-trusted",
            Self::ValidationFailure => "validation-failure",
        }
    }
}

/// One failure, with an explanation for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StsFailure {
    /// The kind.
    pub kind: StsFailureKind,
    /// What happened.
    pub detail: String,
}

impl StsFailure {
    /// A failure of `kind` with `detail`.
    #[must_use]
    pub fn new(kind: StsFailureKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
        }
    }
}

impl From<&PolicyError> for StsFailure {
    /// An invalid policy file: `sts-policy-invalid`.
    fn from(e: &PolicyError) -> Self {
        Self::new(StsFailureKind::StsPolicyInvalid, e.to_string())
    }
}

/// What the policy says about connecting to one MX host.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum StsHostAction {
    /// No constraint (no policy, or `mode: none`).
    NoConstraint,
    /// `enforce`, host listed: connect; TLS with a PKIX-valid certificate for the host name is
    /// required ([`check_sts_certificate`]), else the delivery to this host fails.
    RequirePkix,
    /// `enforce`, host not listed: do not use this host.
    SkipHost {
        /// Why it is not listed.
        failure: StsFailure,
    },
    /// `testing`: connect and deliver whatever happens; check the certificate and report.
    ReportOnly {
        /// Already known: the host is not listed.
        failure: Option<StsFailure>,
    },
}

/// The MTA-STS verdict for one MX host.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StsHostVerdict {
    /// The MX host as given.
    pub mx_host: String,
    /// The policy mode, `None` when the domain has no policy.
    pub mode: Option<Mode>,
    /// The host against the policy's patterns (absent without a policy or for `none`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mx_match: Option<MxListMatch>,
    /// What to do.
    #[serde(flatten)]
    pub action: StsHostAction,
    /// The `id` of the policy's TXT record, when the caller knows it
    /// ([`Self::with_policy_id`]); shown in the hop plan's explanation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_id: Option<String>,
}

impl StsHostVerdict {
    /// The verdict with the policy's TXT `id` (for the hop plan's explanation and TLS-RPT).
    pub fn with_policy_id(mut self, id: impl Into<String>) -> Self {
        self.policy_id = Some(id.into());
        self
    }

    /// `false` only when the host must be skipped.
    #[must_use]
    pub fn may_connect(&self) -> bool {
        !matches!(self.action, StsHostAction::SkipHost { .. })
    }

    /// Folds the certificate check of a connection to this host in.
    pub fn on_certificate(&self, check: &StsCertificateCheck) -> StsPeerVerdict {
        let failure = match check {
            StsCertificateCheck::Valid { .. } => None,
            StsCertificateCheck::Invalid { failure } => Some(failure.clone()),
        };
        match (&self.action, failure) {
            (StsHostAction::NoConstraint, _) => StsPeerVerdict::Accept,
            (StsHostAction::RequirePkix, None) => StsPeerVerdict::Accept,
            (StsHostAction::RequirePkix, Some(f)) => StsPeerVerdict::Reject { failure: f },
            (StsHostAction::SkipHost { failure }, _) => StsPeerVerdict::Reject {
                failure: failure.clone(),
            },
            (StsHostAction::ReportOnly { failure: listed }, cert) => {
                match listed.clone().or(cert) {
                    Some(failure) => StsPeerVerdict::AcceptReported { failure },
                    None => StsPeerVerdict::Accept,
                }
            }
        }
    }
}

/// The verdict after the handshake.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum StsPeerVerdict {
    /// Deliver.
    Accept,
    /// Deliver (`testing`), and report the failure.
    AcceptReported {
        /// The failure.
        failure: StsFailure,
    },
    /// Do not deliver to this host (`enforce`).
    Reject {
        /// Why.
        failure: StsFailure,
    },
}

/// Decides for one MX host under `policy` (`None`: the domain has no policy now).
///
/// ```
/// use smtp_tls_policy::mta_sts::{Policy, StsHostAction, host_verdict};
/// let policy = Policy::parse(b"version: STSv1\nmode: enforce\nmx: *.mx.example\nmax_age: 86400\n").unwrap();
/// let verdict = host_verdict(Some(&policy), "a.b.mx.example.");
/// assert!(matches!(&verdict.action, StsHostAction::SkipHost { failure }
///     if failure.detail.contains("pattern matches one label; host has two")));
/// ```
pub fn host_verdict(policy: Option<&Policy>, mx_host: &str) -> StsHostVerdict {
    let mut verdict = StsHostVerdict {
        mx_host: mx_host.to_owned(),
        mode: policy.map(|p| p.mode),
        mx_match: None,
        action: StsHostAction::NoConstraint,
        policy_id: None,
    };
    let Some(policy) = policy.filter(|p| p.mode != Mode::None) else {
        return verdict;
    };
    let listed = policy.match_mx(mx_host);
    let failure = match &listed {
        MxListMatch::Matched { .. } => None,
        MxListMatch::NotListed { misses } => {
            let reasons: Vec<String> = misses.iter().map(|(p, m)| format!("{p}: {m}")).collect();
            Some(StsFailure::new(
                StsFailureKind::ValidationFailure,
                format!(
                    "MX host {mx_host} is not listed in the policy ({})",
                    reasons.join("; ")
                ),
            ))
        }
    };
    verdict.action = match (policy.mode, failure) {
        (Mode::Enforce, None) => StsHostAction::RequirePkix,
        (Mode::Enforce, Some(failure)) => StsHostAction::SkipHost { failure },
        (_, failure) => StsHostAction::ReportOnly { failure },
    };
    verdict.mx_match = Some(listed);
    verdict
}

/// The MTA-STS certificate check of one connection (RFC 8461 §4.1).
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum StsCertificateCheck {
    /// PKIX-valid and a SAN dNSName names the host.
    Valid {
        /// The SAN dNSName that matched.
        matched: String,
    },
    /// Not.
    Invalid {
        /// Why.
        failure: StsFailure,
    },
}

impl StsCertificateCheck {
    /// `true` for [`Self::Valid`].
    #[must_use]
    pub fn is_valid(&self) -> bool {
        matches!(self, Self::Valid { .. })
    }
}

/// Checks a presented chain (leaf first) for MTA-STS: PKIX to one of `anchors` at `time` (the
/// crate's chain validation, RFC 5280 profile), and a SAN dNSName matching `mx_host`
/// (one-label wildcards; the subject CN is never used — the matching of the SAN-only profile).
pub fn check_sts_certificate(
    mx_host: &str,
    chain: &[CertificateDer<'_>],
    anchors: &TrustAnchors,
    time: UnixTime,
) -> StsCertificateCheck {
    let invalid = |kind, detail: String| StsCertificateCheck::Invalid {
        failure: StsFailure::new(kind, detail),
    };
    let host = match DnsName::parse(mx_host) {
        Ok(h) => h,
        Err(e) => {
            return invalid(
                StsFailureKind::ValidationFailure,
                format!("MX host {mx_host:?} is not a host name: {e}"),
            );
        }
    };
    let Some((leaf, intermediates)) = chain.split_first() else {
        return invalid(
            StsFailureKind::ValidationFailure,
            Error::EmptyChain.to_string(),
        );
    };
    if let Err(e) = verify_chain(leaf, intermediates, anchors, &ChainOptions::at(time)) {
        return invalid(chain_failure_kind(&e), e.to_string());
    }
    sts_name_check(&host, leaf)
}

/// The name half of [`check_sts_certificate`], for a leaf whose chain was already validated
/// (the hop plan validates a chain once): a SAN dNSName matching `host`, never the CN.
pub(crate) fn sts_name_check(host: &DnsName, leaf: &CertificateDer<'_>) -> StsCertificateCheck {
    let invalid = |kind, detail: String| StsCertificateCheck::Invalid {
        failure: StsFailure::new(kind, detail),
    };
    let ids = match PresentedIdentities::from_der(leaf) {
        Ok(ids) => ids,
        Err(e) => return invalid(StsFailureKind::ValidationFailure, e.to_string()),
    };
    match ids
        .san_dns_names
        .iter()
        .find(|san| dns_name_matches(san, host))
    {
        Some(san) => StsCertificateCheck::Valid {
            matched: san.clone(),
        },
        None => invalid(
            StsFailureKind::CertificateHostMismatch,
            format!(
                "no SAN dNSName of the certificate {:?} names {host} (the subject CN is not used)",
                ids.san_dns_names
            ),
        ),
    }
}

/// The RFC 8460 kind of a chain failure.
pub(crate) fn chain_failure_kind(e: &Error) -> StsFailureKind {
    match e {
        Error::Chain(webpki::Error::CertExpired { .. } | webpki::Error::CertNotValidYet { .. }) => {
            StsFailureKind::CertificateExpired
        }
        Error::Chain(webpki::Error::UnknownIssuer) | Error::NoTrustAnchors => {
            StsFailureKind::CertificateNotTrusted
        }
        _ => StsFailureKind::ValidationFailure,
    }
}
