//! The MTA-STS discovery adapter (feature `mta-sts-fetch`): the thin I/O around the sans-IO
//! cache machine. [`discover`] looks up `_mta-sts.DOMAIN` TXT through the caller's
//! [`DaneResolver`], asks [`decide`], and when a fetch is due resolves `mta-sts.DOMAIN` through
//! the **same** resolver (never the system one), fetches and parses the policy
//! ([`fetch_and_parse`]), folds it in ([`on_fetch`]) and stores the entry ([`PolicyStore`]).
//!
//! The result, a [`Discovery`], is serde data: the effective policy (or none, or a temporary
//! failure) and what happened (cache used, fetched, no record, failure with its RFC 8460 kind).

use std::sync::Arc;

use dane_verify::resolver::DaneResolver;
use serde::Serialize;

use super::cache::{
    AfterFetch, CacheConfig, CacheDecision, CacheEntry, CachedPolicy, FetchReason, FetchResult,
    NoPolicyReason, PolicyDomain, StsTxtOutcome, TemporaryReason, UseCachedReason, decide,
    on_fetch, on_same_id,
};
use super::fetch::{FetchLimits, fetch_and_parse};
use super::policy::Policy;
use super::store::PolicyStore;
use super::verdict::{StsFailure, StsFailureKind, StsHostVerdict, host_verdict};

/// How [`discover`] fetches: the HTTPS port (443 in production), the TLS client configuration
/// ([`super::client_config`]), the timeouts and body limit, and the cache's timing.
#[derive(Debug, Clone)]
pub struct FetchSettings {
    /// The policy host's port.
    pub port: u16,
    /// The rustls client configuration (trust anchors).
    pub tls: Arc<rustls::ClientConfig>,
    /// Connect and total timeouts, body limit.
    pub limits: FetchLimits,
    /// Refresh and back-off timing.
    pub cache: CacheConfig,
}

impl FetchSettings {
    /// Port 443, default limits and cache timing, trusting `tls`.
    #[must_use]
    pub fn new(tls: Arc<rustls::ClientConfig>) -> Self {
        Self {
            port: 443,
            tls,
            limits: FetchLimits::default(),
            cache: CacheConfig::default(),
        }
    }

    /// These settings with the policy host's port `port` (tests serve on loopback ports).
    #[must_use]
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }
}

/// What [`discover`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum DiscoveryOutcome {
    /// The cached policy applies; nothing was fetched.
    UsedCache {
        /// Why.
        reason: UseCachedReason,
    },
    /// The cached policy was near its expiry (same id): re-fetched, and the new copy applies.
    Refreshed,
    /// A valid policy was fetched and applies.
    Fetched {
        /// Why it was fetched (nothing cached, id changed).
        reason: FetchReason,
    },
    /// The fetch failed (or the policy was invalid); the unexpired cached policy still applies.
    FetchFailedKeptCache {
        /// Why the fetch failed.
        failure: StsFailure,
    },
    /// The fetch failed (or the policy was invalid) and nothing is cached: no policy applies
    /// (RFC 8461 §5); report the failure.
    FetchFailed {
        /// Why.
        failure: StsFailure,
    },
    /// The domain has no policy.
    NoPolicy {
        /// Why.
        reason: NoPolicyReason,
    },
    /// The TXT lookup failed or was DNSSEC-bogus and nothing is cached: unknown, defer.
    TemporaryFailure {
        /// Why.
        reason: TemporaryReason,
    },
}

/// The result of [`discover`] for one policy domain.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Discovery {
    /// The policy domain.
    pub domain: PolicyDomain,
    /// The `_mta-sts` TXT lookup.
    pub txt: StsTxtOutcome,
    /// What happened.
    #[serde(flatten)]
    pub outcome: DiscoveryOutcome,
    /// The policy that applies now (fresh cached or just fetched), if any.
    pub policy: Option<CachedPolicy>,
    /// The entry could not be stored (the policy still applies for this delivery).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_error: Option<String>,
}

impl Discovery {
    /// The policy that applies, if any.
    #[must_use]
    pub fn policy(&self) -> Option<&Policy> {
        self.policy.as_ref().map(|c| &c.policy)
    }

    /// The failure to report (TLS-RPT), if the discovery failed.
    #[must_use]
    pub fn failure(&self) -> Option<&StsFailure> {
        match &self.outcome {
            DiscoveryOutcome::FetchFailed { failure }
            | DiscoveryOutcome::FetchFailedKeptCache { failure } => Some(failure),
            _ => None,
        }
    }

    /// `true` when the state is unknown and the caller should defer.
    #[must_use]
    pub fn is_temporary_failure(&self) -> bool {
        matches!(self.outcome, DiscoveryOutcome::TemporaryFailure { .. })
    }

    /// The verdict of each of `mx_hosts` under the effective policy, with the policy's id.
    pub fn host_verdicts<S: AsRef<str>>(&self, mx_hosts: &[S]) -> Vec<StsHostVerdict> {
        let id = self.policy.as_ref().map(|c| c.id.as_str().to_owned());
        host_verdicts(self.policy(), mx_hosts)
            .into_iter()
            .map(|v| match &id {
                Some(id) => v.with_policy_id(id.clone()),
                None => v,
            })
            .collect()
    }
}

/// [`host_verdict`] for each of `mx_hosts`, in order.
pub fn host_verdicts<S: AsRef<str>>(
    policy: Option<&Policy>,
    mx_hosts: &[S],
) -> Vec<StsHostVerdict> {
    mx_hosts
        .iter()
        .map(|h| host_verdict(policy, h.as_ref()))
        .collect()
}

/// Discovers the MTA-STS policy of `domain` at `now` (unix seconds), using and updating `store`.
pub async fn discover(
    domain: &PolicyDomain,
    resolver: &DaneResolver,
    store: &dyn PolicyStore,
    settings: &FetchSettings,
    now: u64,
) -> Discovery {
    let txt = match resolver.txt(&domain.txt_name()).await {
        Ok(lookup) => StsTxtOutcome::from_dns(&lookup),
        Err(e) => {
            tracing::debug!(domain = %domain, error = %e, "MTA-STS TXT lookup failed");
            StsTxtOutcome::Failed
        }
    };
    let entry = store
        .load(domain)
        .unwrap_or_else(|| CacheEntry::new(domain.clone()));
    let decision = decide(Some(&entry), &txt, now, &settings.cache);
    let mut store_error = None;
    let mut save = |e: &CacheEntry| {
        if let Err(err) = store.put(e) {
            tracing::warn!(domain = %domain, error = %err, "MTA-STS cache entry not stored");
            store_error = Some(err.to_string());
        }
    };
    let (outcome, policy) = match decision {
        CacheDecision::UseCached {
            reason,
            refresh_due,
        } => {
            let mut entry = entry;
            if reason == UseCachedReason::SameId {
                on_same_id(&mut entry, now);
            }
            match (refresh_due, txt.id()) {
                (true, Some(id)) => {
                    let id = id.clone();
                    let result = fetch(domain, resolver, settings).await;
                    let (entry, after) = on_fetch(entry, &id, result, now, &settings.cache);
                    save(&entry);
                    let outcome = match after {
                        AfterFetch::Fetched => DiscoveryOutcome::Refreshed,
                        // A failed refresh of a fresh policy keeps using it.
                        _ => DiscoveryOutcome::UsedCache { reason },
                    };
                    (outcome, entry.fresh_policy(now).cloned())
                }
                _ => {
                    save(&entry);
                    let policy = entry.fresh_policy(now).cloned();
                    (DiscoveryOutcome::UsedCache { reason }, policy)
                }
            }
        }
        CacheDecision::Fetch { reason } => match txt.id() {
            Some(id) => {
                let id = id.clone();
                let result = fetch(domain, resolver, settings).await;
                let failure = match &result {
                    FetchResult::Failed { failure } => Some(failure.clone()),
                    _ => None,
                };
                let (entry, after) = on_fetch(entry, &id, result, now, &settings.cache);
                save(&entry);
                let outcome = match (after, failure) {
                    (AfterFetch::Fetched, _) => DiscoveryOutcome::Fetched { reason },
                    (AfterFetch::KeptCached, Some(failure)) => {
                        DiscoveryOutcome::FetchFailedKeptCache { failure }
                    }
                    (_, failure) => DiscoveryOutcome::FetchFailed {
                        failure: failure.unwrap_or_else(|| {
                            StsFailure::new(StsFailureKind::StsPolicyFetchError, "fetch failed")
                        }),
                    },
                };
                (outcome, entry.policy_after(after, now).cloned())
            }
            // `decide` fetches only with a record in hand; fail closed otherwise.
            None => (
                DiscoveryOutcome::TemporaryFailure {
                    reason: TemporaryReason::LookupFailed,
                },
                None,
            ),
        },
        CacheDecision::NoPolicy { reason } => (DiscoveryOutcome::NoPolicy { reason }, None),
        CacheDecision::TemporaryFailure { reason } => {
            (DiscoveryOutcome::TemporaryFailure { reason }, None)
        }
    };
    Discovery {
        domain: domain.clone(),
        txt,
        outcome,
        policy,
        store_error,
    }
}

/// Resolves the policy host through `resolver`, then fetches and parses.
async fn fetch(
    domain: &PolicyDomain,
    resolver: &DaneResolver,
    settings: &FetchSettings,
) -> FetchResult {
    let host = domain.policy_host();
    let addresses = match resolver.addresses(&host).await {
        Ok(a) if !a.is_empty() => a,
        Ok(_) => return fetch_failed(format!("{host} has no usable address")),
        Err(e) => return fetch_failed(format!("address lookup of {host} failed: {e}")),
    };
    fetch_and_parse(
        domain,
        &addresses,
        settings.port,
        Arc::clone(&settings.tls),
        &settings.limits,
    )
    .await
}

fn fetch_failed(detail: String) -> FetchResult {
    FetchResult::Failed {
        failure: StsFailure::new(StsFailureKind::StsPolicyFetchError, detail),
    }
}
