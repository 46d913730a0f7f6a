//! MTA-STS (RFC 8461) at delivery: the thin adapter between the delivery task and
//! smtp-tls-policy's `mta_sts::discover` (TXT lookup through the delivery resolver, policy
//! cache in the `[state]` backend's [`PolicyStore`] — files under `delivery.mta_sts.cache_dir`,
//! or Redis shared by several relays with those files as its local copy — HTTPS fetch verified
//! against the relay's trust anchors).
//!
//! Once per destination domain and delivery attempt, before any host is planned (so one
//! domain's policy never applies to another domain that shares its MX hosts, KumoMTA #484),
//! [`Sts::discover`] says what applies: a policy (fresh from the cache or just fetched), no
//! policy, or — a DNSSEC-bogus TXT answer with nothing cached — defer. Each MX host then gets
//! its verdict ([`Applied::host_verdict`]) and the hop plan decides with it; SMTP routes are not
//! MX delivery and MTA-STS does not apply to them.
//!
//! RFC 8461 §5: a fetch failure (or a failed TXT lookup) with no cached policy delivers as if
//! the domain had no policy; with a cached, unexpired policy the cached policy applies.
//!
//! TLS-RPT (RFC 8460): [`Applied::policy`] is the policy the hosts' verdicts came from (its
//! text lines and `mx` patterns go into the report's `sts` policy), and [`Applied::failure`]
//! the failed fetch to count (`sts-policy-fetch-error`, `sts-policy-invalid`,
//! `sts-webpki-invalid`), with or without a cached policy.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use smtp_tls_policy::chain::TrustAnchors;
use smtp_tls_policy::destination::{DestinationPolicy, MtaStsSetting};
use smtp_tls_policy::mta_sts::{
    Discovery, DiscoveryOutcome, FetchLimits, FetchSettings, Policy, PolicyDomain, PolicyStore,
    StsFailure, StsHostVerdict, TemporaryReason, client_config, discover, host_verdict,
};

use super::dns::Dns;
use super::error::OutboundError;
use super::sts_config::MtaStsConfig;

/// The relay's MTA-STS discovery: the policy store and the fetch settings.
pub(crate) struct Sts {
    store: Arc<dyn PolicyStore>,
    settings: FetchSettings,
}

/// What applies to one destination domain for one delivery attempt.
#[derive(Debug, Clone)]
pub(crate) enum Applied {
    /// No MTA-STS information (disabled, ignored by the destination control, no policy, a
    /// failed TXT lookup without a cached policy): the hop plans get no verdict.
    Nothing,
    /// The policy fetch failed (or the policy was invalid) and nothing is cached: the hop plans
    /// get no verdict (RFC 8461 §5), the failure is reported (RFC 8460 §4.3.2.2).
    FetchFailed(StsFailure),
    /// The domain's discovery: each host's verdict comes from it (policy or none).
    Discovered(Box<Discovery>),
}

impl Applied {
    /// The verdict for `mx_host` (never another domain's policy: this value belongs to one
    /// destination domain's attempt). `None`: the plan gets no MTA-STS verdict.
    pub(crate) fn host_verdict(&self, mx_host: &str) -> Option<StsHostVerdict> {
        let Self::Discovered(d) = self else {
            return None;
        };
        let v = host_verdict(d.policy(), mx_host);
        Some(match &d.policy {
            Some(c) => v.with_policy_id(c.id.as_str()),
            None => v,
        })
    }

    /// The policy the hosts' verdicts come from (fresh, cached or kept after a failed
    /// refresh), if any: the `policy-string` and `mx-host` of the domain's TLS-RPT sessions.
    pub(crate) fn policy(&self) -> Option<&Policy> {
        match self {
            Self::Discovered(d) => d.policy(),
            Self::Nothing | Self::FetchFailed(_) => None,
        }
    }

    /// The failed policy fetch to report (TLS-RPT), with nothing cached or with a cached
    /// policy that still applies.
    pub(crate) fn failure(&self) -> Option<&StsFailure> {
        match self {
            Self::FetchFailed(f) => Some(f),
            Self::Discovered(d) => d.failure(),
            Self::Nothing => None,
        }
    }
}

impl Sts {
    /// The discovery of `config` (`None` when disabled), trusting `anchors` for policy hosts,
    /// caching policies in `store` (the `[state]` backend's).
    pub(crate) fn new(
        config: &MtaStsConfig,
        anchors: &TrustAnchors,
        store: Arc<dyn PolicyStore>,
    ) -> Result<Option<Self>, OutboundError> {
        if !config.enabled {
            tracing::info!("delivery.mta_sts.enabled = false: MTA-STS policies are not applied");
            return Ok(None);
        }
        let tls = client_config(anchors)
            .map_err(|e| OutboundError::invalid("delivery.mta_sts", e.to_string()))?;
        let mut settings = FetchSettings::new(tls).with_port(config.policy_port);
        settings.limits = FetchLimits::default()
            .with_connect_timeout(config.connect_timeout())
            .with_total_timeout(config.fetch_timeout());
        tracing::info!(
            cache_dir = %config.cache_dir().display(),
            policy_port = config.policy_port,
            "MTA-STS: policies of destination domains are discovered and applied"
        );
        Ok(Some(Self { store, settings }))
    }

    /// Discovers the policy of `domain` (MX delivery only) under the destination control
    /// `policy`. `Err(text)`: defer the destination (DNSSEC-bogus TXT answer, nothing cached).
    /// Logs one INFO line per decision (domain, policy id, mode, source).
    pub(crate) async fn discover(
        this: Option<&Self>,
        dns: &Dns,
        domain: &str,
        policy: &DestinationPolicy,
    ) -> Result<Applied, String> {
        let Some(sts) = this else {
            return Ok(Applied::Nothing);
        };
        if policy.mta_sts == MtaStsSetting::Ignore {
            tracing::info!(
                %domain,
                source = "destination-control",
                "MTA-STS: ignored for this domain (mta_sts = \"ignore\")"
            );
            return Ok(Applied::Nothing);
        }
        let Some(resolver) = dns.dane_resolver() else {
            tracing::debug!(%domain, "MTA-STS: not available with delivery.resolver.mode = \"system\"");
            return Ok(Applied::Nothing);
        };
        let Ok(policy_domain) = PolicyDomain::parse(domain) else {
            return Ok(Applied::Nothing);
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let d = discover(&policy_domain, resolver, &*sts.store, &sts.settings, now).await;
        let id = d.policy.as_ref().map(|c| c.id.as_str().to_owned());
        let mode = d.policy().map(|p| p.mode.as_str());
        let outcome = serde_json::to_string(&d.outcome).unwrap_or_default();
        match &d.outcome {
            DiscoveryOutcome::TemporaryFailure {
                reason: TemporaryReason::Bogus,
            } => {
                tracing::info!(%domain, source = "dns", outcome, "MTA-STS: TXT answer is DNSSEC-bogus and nothing is cached: deferred");
                Err(format!(
                    "MTA-STS: the _mta-sts TXT answer of {domain} is DNSSEC-bogus"
                ))
            }
            DiscoveryOutcome::TemporaryFailure { .. } => {
                tracing::info!(%domain, source = "dns", outcome, "MTA-STS: TXT lookup failed and nothing is cached: delivered as without a policy (RFC 8461 §5)");
                Ok(Applied::Nothing)
            }
            DiscoveryOutcome::FetchFailed { failure } => {
                tracing::info!(%domain, source = "fetch", failure = %failure.detail, kind = failure.kind.result_type(), "MTA-STS: policy fetch failed and nothing is cached: delivered as without a policy (RFC 8461 §5)");
                Ok(Applied::FetchFailed(failure.clone()))
            }
            DiscoveryOutcome::FetchFailedKeptCache { failure } => {
                tracing::info!(%domain, policy_id = ?id, mode, source = "cache", failure = %failure.detail, kind = failure.kind.result_type(), "MTA-STS: policy fetch failed; the cached policy applies");
                Ok(Applied::Discovered(Box::new(d)))
            }
            DiscoveryOutcome::NoPolicy { .. } => {
                tracing::info!(%domain, source = "dns", outcome, "MTA-STS: no policy");
                Ok(Applied::Discovered(Box::new(d)))
            }
            DiscoveryOutcome::UsedCache { .. } => {
                tracing::info!(%domain, policy_id = ?id, mode, source = "cache", outcome, "MTA-STS: policy applies");
                Ok(Applied::Discovered(Box::new(d)))
            }
            _ => {
                tracing::info!(%domain, policy_id = ?id, mode, source = "fetch", outcome, "MTA-STS: policy applies");
                Ok(Applied::Discovered(Box::new(d)))
            }
        }
    }
}
