//! Verification of a presented chain under a plan: PKIX per the TLS mode, DANE (RFC 7672) and
//! the MTA-STS certificate check (RFC 8461 §4.1) on the same chain, each run once (the MTA-STS
//! check reuses the PKIX chain validation when it passed), giving one [`PeerVerdict`].

use rustls_pki_types::{CertificateDer, UnixTime};
use serde::Serialize;

use super::HopPlan;
use super::explain::Source;
use super::sources::StsRole;
use crate::chain::TrustAnchors;
use crate::delivery::dane::dane_outcome;
use crate::delivery::{DaneOutcome, HandshakeOutcome, PeerVerification, PkixOutcome, Requirement};
use crate::identity::DnsName;
use crate::mta_sts::verdict::sts_name_check;
use crate::mta_sts::{StsCertificateCheck, StsFailure, StsPeerVerdict, check_sts_certificate};
use crate::verify::{PkixVerdict, verify_with_reference_ids};

/// What authenticates (or authenticated) the peer. The default is the least-trusted value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Authentication {
    /// Nothing: unauthenticated TLS, plaintext, or no connection.
    #[default]
    None,
    /// PKIX: a trusted chain whose names match a reference identity.
    Pkix,
    /// DANE: a usable TLSA record matched (RFC 7672 §3).
    Dane,
}

/// The verification of a presented chain under a plan: the state machine's inputs (`pkix`,
/// `dane`), their details, and whether the plan's requirement is satisfied. The default is the
/// least-trusted value (nothing checked, not satisfied).
#[must_use]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerVerdict {
    /// PKIX result (`NotChecked` only without a TLS connection): enforced under
    /// `required-verify*`, reported otherwise.
    pub pkix: PkixOutcome,
    /// DANE result, when the requirement is DANE.
    pub dane: Option<DaneOutcome>,
    /// The full PKIX verdict (reference identities, match, error), when checked.
    pub pkix_detail: Option<PkixVerdict>,
    /// dane-verify's verdict (record, depth), when checked.
    pub dane_detail: Option<dane_verify::DaneVerdict>,
    /// What authenticated the peer, as the requirement counts it: under DANE only DANE does
    /// (RFC 7672 §2.2), otherwise a verified PKIX chain.
    pub authenticated_by: Authentication,
    /// Whether the state machine will continue over this TLS session: DANE verified under a
    /// DANE requirement, PKIX verified under `required-verify*`, anything under `preferred*` /
    /// `required` (verification reported, not enforced).
    pub satisfies_requirement: bool,
    /// The source whose rule decided the requirement ([`super::Explanation::decided_by`]).
    pub decided_by: Source,
    /// The MTA-STS certificate check (SAN dNSName for the MX host, PKIX), when the host is
    /// under an MTA-STS `enforce` (no DANE) or `testing` policy.
    pub mta_sts: Option<StsCertificateCheck>,
    /// The MTA-STS failure to report (TLS-RPT, RFC 8460), also when delivery goes on
    /// (`testing`).
    pub sts_failure: Option<StsFailure>,
}

impl PeerVerdict {
    /// The state machine's input after a completed handshake.
    pub fn peer_verification(&self) -> PeerVerification {
        PeerVerification::new(self.pkix.clone(), self.dane.clone())
    }

    /// [`HandshakeOutcome::Established`] with this verdict, for
    /// [`crate::delivery::DeliveryAttempt::on_handshake`].
    #[must_use]
    pub fn handshake_outcome(&self) -> HandshakeOutcome {
        HandshakeOutcome::Established(self.peer_verification())
    }
}

impl HopPlan {
    /// Verifies the presented `chain` (leaf first) at `now`: PKIX with `anchors` and the mode's
    /// identity algorithm (enforced by `required-verify*`, reported by the other modes and under
    /// DANE) and DANE against the TLSA records when the requirement is DANE — each run once.
    /// A plan without a TLS connection gives the default, unsatisfied verdict.
    pub fn verify_peer(
        &self,
        chain: &[CertificateDer<'_>],
        anchors: &TrustAnchors,
        now: UnixTime,
    ) -> PeerVerdict {
        let mut v = PeerVerdict::default();
        let (Some(req), Some(target)) = (self.requirement, &self.target) else {
            return v;
        };
        if !req.attempts_tls() {
            return v;
        }
        if let Some(policy) = &self.pkix {
            let verdict = verify_with_reference_ids(
                policy,
                self.pkix_ids.clone(),
                &target.server_name(),
                chain,
                anchors,
                now,
            );
            v.pkix = pkix_outcome(&verdict);
            v.pkix_detail = Some(verdict);
        }
        v.decided_by = self.explanation.decided_by;
        self.verify_sts(&mut v, chain, anchors, now);
        if req.needs_dane() {
            v.dane = Some(match &self.dane {
                Some(d) => {
                    let verdict = d.matcher.verify(&d.records, chain, now);
                    let outcome = dane_outcome(&verdict);
                    v.dane_detail = Some(verdict);
                    outcome
                }
                None => DaneOutcome::Failed {
                    reason: "no TLSA records in the plan".into(),
                },
            });
        }
        let dane_ok = v.dane == Some(DaneOutcome::Verified);
        let pkix_ok = v.pkix.is_verified();
        v.authenticated_by = match req {
            Requirement::Dane if dane_ok => Authentication::Dane,
            Requirement::Dane => Authentication::None,
            _ if pkix_ok => Authentication::Pkix,
            _ => Authentication::None,
        };
        v.satisfies_requirement = match req {
            Requirement::Dane => dane_ok,
            Requirement::Verified(_) => pkix_ok,
            Requirement::Opportunistic { .. } | Requirement::Encrypted => true,
            Requirement::Plaintext | Requirement::PlaintextRetry => false,
        };
        v
    }
}

impl HopPlan {
    /// The MTA-STS part of [`Self::verify_peer`]: under `enforce` the machine's PKIX input
    /// becomes "the MTA-STS check passed, and the local PKIX check too when the local setting
    /// enforces it"; under `testing` only the failure is recorded.
    fn verify_sts(
        &self,
        v: &mut PeerVerdict,
        chain: &[CertificateDer<'_>],
        anchors: &TrustAnchors,
        now: UnixTime,
    ) {
        let role = self.overlay.sts;
        let Some(sts) = self.sts_verdict.as_ref() else {
            return;
        };
        if !matches!(role, StsRole::Enforce | StsRole::Testing) {
            return;
        }
        // The chain was validated by the PKIX check when it failed only on names (or passed).
        let chain_valid = v
            .pkix_detail
            .as_ref()
            .is_some_and(|d| d.error.as_ref().is_none_or(|e| e.kind() == "identity"));
        let check = match (chain_valid, DnsName::parse(&self.host), chain.first()) {
            (true, Ok(host), Some(leaf)) => sts_name_check(&host, leaf),
            _ => check_sts_certificate(&self.host, chain, anchors, now),
        };
        let peer = sts.on_certificate(&check);
        v.sts_failure = match &peer {
            StsPeerVerdict::AcceptReported { failure } | StsPeerVerdict::Reject { failure } => {
                Some(failure.clone())
            }
            _ => None,
        };
        if role == StsRole::Enforce {
            let local_ok = !self.overlay.local_pkix || v.pkix.is_verified();
            v.pkix = match (&check, local_ok) {
                (StsCertificateCheck::Valid { .. }, true) => PkixOutcome::Verified,
                (StsCertificateCheck::Valid { .. }, false) => v.pkix.clone(),
                (StsCertificateCheck::Invalid { failure }, _) => sts_pkix_outcome(failure),
            };
        }
        v.mta_sts = Some(check);
    }
}

/// The machine's PKIX input for an MTA-STS certificate failure.
fn sts_pkix_outcome(failure: &StsFailure) -> PkixOutcome {
    let detail = format!(
        "MTA-STS ({}): {}",
        failure.kind.result_type(),
        failure.detail
    );
    match failure.kind {
        crate::mta_sts::StsFailureKind::CertificateHostMismatch => {
            PkixOutcome::NameMismatch { detail }
        }
        _ => PkixOutcome::UntrustedChain { detail },
    }
}

/// The machine's PKIX input for a verdict of this crate: a name problem is a mismatch, every
/// other failure an untrusted chain.
fn pkix_outcome(verdict: &PkixVerdict) -> PkixOutcome {
    match &verdict.error {
        None if verdict.is_verified() => PkixOutcome::Verified,
        None => PkixOutcome::UntrustedChain {
            detail: "not verified".into(),
        },
        Some(e) if e.kind() == "identity" => PkixOutcome::NameMismatch {
            detail: e.to_string(),
        },
        Some(e) => PkixOutcome::UntrustedChain {
            detail: e.to_string(),
        },
    }
}

#[derive(Serialize)]
struct PkixJson<'a> {
    outcome: &'static str,
    detail: Option<&'a str>,
    reference_ids: Vec<String>,
    matched: Option<String>,
}

#[derive(Serialize)]
struct DaneJson<'a> {
    outcome: &'static str,
    reason: Option<&'a str>,
    depth: Option<i32>,
    matched: Option<String>,
}

#[derive(Serialize)]
struct VerdictJson<'a> {
    authenticated_by: Authentication,
    satisfies_requirement: bool,
    pkix: PkixJson<'a>,
    dane: Option<DaneJson<'a>>,
    decided_by: Source,
    #[serde(skip_serializing_if = "Option::is_none")]
    mta_sts: Option<&'a StsCertificateCheck>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sts_failure: Option<&'a StsFailure>,
}

impl Serialize for PeerVerdict {
    /// `{"authenticated_by", "satisfies_requirement", "pkix": {"outcome", "detail",
    /// "reference_ids", "matched"}, "dane": {"outcome", "reason", "depth", "matched"} | null,
    /// "decided_by", "mta_sts"?: {"result", ..}, "sts_failure"?: {"kind", "detail"}}`;
    /// outcomes: `verified`, `not-checked`, `untrusted-chain`, `name-mismatch` / `failed`.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (outcome, detail) = match &self.pkix {
            PkixOutcome::Verified => ("verified", None),
            PkixOutcome::UntrustedChain { detail } => ("untrusted-chain", Some(detail.as_str())),
            PkixOutcome::NameMismatch { detail } => ("name-mismatch", Some(detail.as_str())),
            _ => ("not-checked", None),
        };
        let pkix = PkixJson {
            outcome,
            detail,
            reference_ids: self.pkix_detail.as_ref().map_or_else(Vec::new, |v| {
                v.reference_ids.iter().map(ToString::to_string).collect()
            }),
            matched: self.pkix_detail.as_ref().and_then(|v| {
                v.matched
                    .as_ref()
                    .map(|m| format!("{} = {}", m.reference, m.presented))
            }),
        };
        let dane = self.dane.as_ref().map(|d| {
            let (outcome, reason) = match d {
                DaneOutcome::Verified => ("verified", None),
                DaneOutcome::Failed { reason } => ("failed", Some(reason.as_str())),
            };
            DaneJson {
                outcome,
                reason,
                depth: self.dane_detail.as_ref().map(|v| v.depth),
                matched: self
                    .dane_detail
                    .as_ref()
                    .and_then(|v| v.matched.as_ref().map(ToString::to_string)),
            }
        });
        VerdictJson {
            authenticated_by: self.authenticated_by,
            satisfies_requirement: self.satisfies_requirement,
            pkix,
            dane,
            decided_by: self.decided_by,
            mta_sts: self.mta_sts.as_ref(),
            sts_failure: self.sts_failure.as_ref(),
        }
        .serialize(s)
    }
}
