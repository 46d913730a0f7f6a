//! An [x509-limbo](https://github.com/C2SP/x509-limbo) harness: runs one test case through
//! [`crate::verify_with_reference_ids`] and reports in the upstream harness format
//! (`{"id","actual_result","context"}`).
//!
//! Cases are SKIPPED only for features this crate does not implement:
//! * `CLIENT` validation (client certificates, RFC 822 names) — this crate verifies servers;
//! * a `SERVER` case without a DNS/IP peer name — a delivery always has a reference identity;
//! * feature `has-crl` — CRL revocation checking is not implemented;
//! * feature `has-policy-constraints` — certificate policy processing is not implemented.
//!
//! `--strict` ([`LimboMode::Strict`]) uses [`IdentityAlgorithm::Strict`] (SAN only) with
//! [`ChainProfile::CabForum`]; otherwise [`IdentityAlgorithm::HostedVerify`] with
//! [`ChainProfile::Rfc5280`].

use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, UnixTime};
use serde::{Deserialize, Serialize};

use crate::chain::{ChainProfile, TrustAnchors};
use crate::identity::{IdentityAlgorithm, ReferenceId};
use crate::verify::{VerificationPolicy, verify_with_reference_ids};

/// A whole suite (`limbo.json`).
#[derive(Debug, Clone, Deserialize)]
pub struct LimboSuite {
    /// Format version (1).
    pub version: u32,
    /// The cases.
    pub testcases: Vec<LimboCase>,
}

/// A peer name (`{"kind": "DNS"|"IP"|"RFC822", "value": ...}`).
#[derive(Debug, Clone, Deserialize)]
pub struct LimboPeerName {
    /// `DNS`, `IP` or `RFC822`.
    pub kind: String,
    /// The name.
    pub value: String,
}

/// One test case (fields this harness uses; `null` and `[]` are treated alike).
#[derive(Debug, Clone, Deserialize)]
pub struct LimboCase {
    /// Unique id.
    pub id: String,
    /// Optional behaviour tags.
    #[serde(default)]
    pub features: Option<Vec<String>>,
    /// `SERVER` or `CLIENT`.
    pub validation_kind: String,
    /// Trust anchors, PEM.
    #[serde(default)]
    pub trusted_certs: Option<Vec<String>>,
    /// Intermediates pool, PEM.
    #[serde(default)]
    pub untrusted_intermediates: Option<Vec<String>>,
    /// The leaf, PEM.
    pub peer_certificate: String,
    /// RFC 3339 time, or `null` for now.
    #[serde(default)]
    pub validation_time: Option<String>,
    /// `SUCCESS` or `FAILURE`.
    pub expected_result: String,
    /// The reference identity (SERVER cases).
    #[serde(default)]
    pub expected_peer_name: Option<LimboPeerName>,
    /// Most intermediates allowed.
    #[serde(default)]
    pub max_chain_depth: Option<usize>,
}

/// A case's outcome in harness terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LimboOutcome {
    /// The chain and name verified.
    Success,
    /// Verification failed.
    Failure,
    /// Not run: a feature this crate does not implement.
    Skipped,
}

/// One result line.
#[derive(Debug, Clone, Serialize)]
pub struct LimboResult {
    /// The case id.
    pub id: String,
    /// The outcome.
    pub actual_result: LimboOutcome,
    /// Why (error text, the match, or the skip reason).
    pub context: String,
}

/// Harness mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LimboMode {
    /// Hosted-domain verification, RFC 5280 profile.
    #[default]
    Default,
    /// SAN only, CA/Browser Forum profile.
    Strict,
    /// Baseline for comparison: SAN-only names over rustls-webpki alone (no added checks).
    WebpkiBaseline,
}

fn skip_reason(case: &LimboCase) -> Option<String> {
    if case.validation_kind != "SERVER" {
        return Some("client certificate validation is not implemented".into());
    }
    match &case.expected_peer_name {
        Some(p) if p.kind == "DNS" || p.kind == "IP" => {}
        _ => return Some("no DNS/IP peer name: a delivery always has a reference identity".into()),
    }
    let features = case.features.as_deref().unwrap_or_default();
    for (feature, why) in [
        ("has-crl", "CRL revocation checking is not implemented"),
        (
            "has-policy-constraints",
            "certificate policy processing is not implemented",
        ),
    ] {
        if features.iter().any(|f| f == feature) {
            return Some(format!("feature {feature}: {why}"));
        }
    }
    None
}

fn pems(list: Option<&Vec<String>>) -> Result<Vec<CertificateDer<'static>>, String> {
    let mut out = Vec::new();
    for pem in list.into_iter().flatten() {
        out.push(CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| format!("PEM: {e}"))?);
    }
    Ok(out)
}

fn time_of(case: &LimboCase) -> Result<UnixTime, String> {
    match &case.validation_time {
        None => Ok(UnixTime::now()),
        Some(text) => {
            let t =
                time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                    .map_err(|e| format!("validation_time {text:?}: {e}"))?;
            // Floor to whole seconds (x509-limbo rfc5280::validity::*-fractional).
            let secs =
                u64::try_from(t.unix_timestamp()).map_err(|_| "time before 1970".to_owned())?;
            Ok(UnixTime::since_unix_epoch(Duration::from_secs(secs)))
        }
    }
}

/// Runs one case.
#[must_use]
pub fn run_case(case: &LimboCase, mode: LimboMode) -> LimboResult {
    let result = |actual_result, context: String| LimboResult {
        id: case.id.clone(),
        actual_result,
        context,
    };
    if let Some(reason) = skip_reason(case) {
        return result(LimboOutcome::Skipped, reason);
    }
    let prepared = (|| {
        let leaf = CertificateDer::from_pem_slice(case.peer_certificate.as_bytes())
            .map_err(|e| format!("leaf PEM: {e}"))?;
        let mut chain = vec![leaf];
        chain.extend(pems(case.untrusted_intermediates.as_ref())?);
        let anchors = TrustAnchors::from_certificates(pems(case.trusted_certs.as_ref())?)
            .map_err(|e| e.to_string())?;
        let peer = case
            .expected_peer_name
            .as_ref()
            .map(|p| p.value.as_str())
            .unwrap_or_default();
        let reference = ReferenceId::parse(peer).map_err(|e| format!("peer name {peer:?}: {e}"))?;
        Ok::<_, String>((chain, anchors, reference, time_of(case)?))
    })();
    let (chain, anchors, reference, time) = match prepared {
        Ok(p) => p,
        Err(why) => return result(LimboOutcome::Failure, why),
    };
    let (algorithm, profile) = match mode {
        LimboMode::Strict => (IdentityAlgorithm::Strict, ChainProfile::CabForum),
        LimboMode::Default => (IdentityAlgorithm::HostedVerify, ChainProfile::Rfc5280),
        LimboMode::WebpkiBaseline => (IdentityAlgorithm::Strict, ChainProfile::WebpkiOnly),
    };
    let mut policy = VerificationPolicy::new(algorithm).with_profile(profile);
    if let Some(depth) = case.max_chain_depth {
        policy = policy.with_max_intermediates(depth);
    }
    let verdict = verify_with_reference_ids(
        &policy,
        vec![reference.clone()],
        &reference,
        &chain,
        &anchors,
        time,
    );
    match (&verdict.error, &verdict.matched) {
        (None, Some(m)) => result(
            LimboOutcome::Success,
            format!("verified: {} matched {}", m.reference, m.presented),
        ),
        (Some(e), _) => result(LimboOutcome::Failure, format!("{}: {e}", e.kind())),
        (None, None) => result(LimboOutcome::Failure, "no identity matched".into()),
    }
}
