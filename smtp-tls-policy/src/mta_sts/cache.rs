//! The policy cache as a sans-IO state machine (RFC 8461 §5.1, §10.2), keyed by policy domain.
//!
//! The caller looks up `_mta-sts.DOMAIN` TXT, then asks [`decide`] what to do given the cached
//! entry (if any) and `now` (unix seconds — decisions never read the clock):
//!
//! | cached policy | TXT lookup                    | decision                                 |
//! |---------------|-------------------------------|------------------------------------------|
//! | unexpired     | same id                       | use cached (refresh due daily / at ¼ age)|
//! | unexpired     | other id                      | fetch; on failure keep the cached one    |
//! | unexpired     | no record / failed / bogus    | use cached (RFC 8461 §5.1)               |
//! | none/expired  | an id                         | fetch (backing off on this id: no policy)|
//! | none/expired  | no record / invalid records   | no policy                                |
//! | none/expired  | lookup failed / DNSSEC bogus  | temporary failure (never "no record")    |
//!
//! [`on_fetch`] then folds the fetch result in: a valid policy replaces the entry (a `mode:
//! none` policy too, which ends the old one's constraint); a failed fetch or an invalid policy
//! keeps the old policy and backs off exponentially ([`CacheConfig`]) — for that TXT id only: a
//! new id is fetched at once.
//!
//! [`CacheEntry`] is serde data: any store (a file, a shared database) keeps it as it is.

use serde::{Deserialize, Serialize};

use super::policy::{Mode, Policy};
use super::txt::{StsId, TxtOutcome, select_txt_record};
use super::verdict::StsFailure;
use crate::identity::{DnsName, NameError};

/// A policy domain: the recipient domain, lowercase A-labels, no trailing dot. The cache key,
/// and where the policy host and URL come from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PolicyDomain(DnsName);

impl PolicyDomain {
    /// Normalises a recipient domain (`Example.COM.` and `example.com` are one key).
    ///
    /// ```
    /// use smtp_tls_policy::mta_sts::PolicyDomain;
    /// let d = PolicyDomain::parse("Bücher.Example.").unwrap();
    /// assert_eq!(d.as_str(), "xn--bcher-kva.example");
    /// assert_eq!(d.policy_url(), "https://mta-sts.xn--bcher-kva.example/.well-known/mta-sts.txt");
    /// ```
    pub fn parse(domain: &str) -> Result<Self, NameError> {
        DnsName::parse(domain).map(Self)
    }

    /// The normalised name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// `_mta-sts.DOMAIN`, the TXT owner name.
    #[must_use]
    pub fn txt_name(&self) -> String {
        format!("_mta-sts.{}", self.0)
    }

    /// `mta-sts.DOMAIN`, the policy host (and SNI).
    #[must_use]
    pub fn policy_host(&self) -> String {
        format!("mta-sts.{}", self.0)
    }

    /// `https://mta-sts.DOMAIN/.well-known/mta-sts.txt`.
    #[must_use]
    pub fn policy_url(&self) -> String {
        format!("https://{}/.well-known/mta-sts.txt", self.policy_host())
    }
}

impl std::fmt::Display for PolicyDomain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl TryFrom<String> for PolicyDomain {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, NameError> {
        Self::parse(&s)
    }
}

impl From<PolicyDomain> for String {
    fn from(d: PolicyDomain) -> Self {
        d.0.as_str().to_owned()
    }
}

/// The outcome of the `_mta-sts` TXT lookup, as the caller's resolver saw it: the cache
/// machine's input ([`decide`]). Built from dane-verify's resolver answer by [`Self::from_dns`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "lookup", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum StsTxtOutcome {
    /// An answer (possibly NXDOMAIN/NODATA, given as an empty record list), selected and parsed.
    Answer(TxtOutcome),
    /// The lookup failed (timeout, SERVFAIL...).
    Failed,
    /// DNSSEC validation failed (Bogus): a temporary failure, never "no record".
    Bogus,
}

impl StsTxtOutcome {
    /// The `_mta-sts` TXT lookup as dane-verify's resolver reports it: records selected and
    /// parsed ([`select_txt_record`]), NXDOMAIN/NODATA as an empty answer, an RRset over the
    /// resolver's limits as [`TxtOutcome::TooManyRecords`] (no policy), Bogus kept apart from
    /// "no record".
    ///
    /// ```
    /// use dane_verify::{DnssecStatus, TxtLookup as Dns, TxtRecord};
    /// use smtp_tls_policy::mta_sts::StsTxtOutcome;
    /// let found = Dns::Found {
    ///     records: vec![TxtRecord::new(vec![b"v=STSv1; id=".to_vec(), b"abc".to_vec()])],
    ///     status: DnssecStatus::Insecure,
    /// };
    /// assert_eq!(StsTxtOutcome::from_dns(&found).id().map(|id| id.as_str()), Some("abc"));
    /// assert_eq!(StsTxtOutcome::from_dns(&Dns::Bogus), StsTxtOutcome::Bogus);
    /// ```
    pub fn from_dns(lookup: &dane_verify::TxtLookup) -> Self {
        match lookup {
            dane_verify::TxtLookup::Found { records, .. } => {
                let strings: Vec<&[Vec<u8>]> = records.iter().map(|r| r.strings()).collect();
                Self::Answer(select_txt_record(&strings))
            }
            dane_verify::TxtLookup::NotFound { .. } => Self::Answer(TxtOutcome::NoRecord),
            dane_verify::TxtLookup::Bogus => Self::Bogus,
            // over the resolver's limits: not exactly one record, no policy (RFC 8461 §3.1)
            dane_verify::TxtLookup::TooLarge { records, .. } => {
                Self::Answer(TxtOutcome::TooManyRecords { count: *records })
            }
            _ => Self::Failed,
        }
    }

    /// The announced id when the answer has exactly one valid record.
    #[must_use]
    pub fn id(&self) -> Option<&StsId> {
        match self {
            Self::Answer(outcome) => outcome.id(),
            _ => None,
        }
    }
}

/// Where a cached policy came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PolicySource {
    /// The URL fetched.
    pub url: String,
    /// The address it was fetched from, when known.
    pub address: Option<String>,
}

impl PolicySource {
    /// A source: `url`, fetched from `address`.
    #[must_use]
    pub fn new(url: String, address: Option<String>) -> Self {
        Self { url, address }
    }
}

/// A valid policy as cached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CachedPolicy {
    /// The TXT id it was fetched under.
    pub id: StsId,
    /// The policy.
    pub policy: Policy,
    /// When it was fetched (unix seconds).
    pub fetched_at: u64,
    /// `fetched_at + max_age`: not used from then on.
    pub expires_at: u64,
    /// When the TXT record was last seen announcing this id (unix seconds).
    pub last_checked: u64,
    /// Where it came from.
    pub source: PolicySource,
}

impl CachedPolicy {
    /// `true` while `now` is before [`Self::expires_at`].
    #[must_use]
    pub fn is_fresh(&self, now: u64) -> bool {
        now < self.expires_at
    }
}

/// The back-off after failed fetches of one policy version (RFC 8461 §3.3: not refetched more
/// often than every few minutes). It holds only while the TXT record announces [`Self::id`]: a
/// new id is a new version, fetched at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FetchBackoff {
    /// The TXT id whose fetch failed.
    pub id: StsId,
    /// Consecutive failed fetches of that id.
    pub failures: u32,
    /// No new fetch before this time (unix seconds).
    pub retry_at: u64,
    /// The last failure (for TLS-RPT and for showing the cache).
    pub last_failure: StsFailure,
}

/// One domain's cache state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CacheEntry {
    /// The key.
    pub domain: PolicyDomain,
    /// The last valid policy, if any (possibly expired).
    pub policy: Option<CachedPolicy>,
    /// Set after a failed fetch, cleared by a successful one.
    pub backoff: Option<FetchBackoff>,
}

impl CacheEntry {
    /// An empty entry for `domain`.
    #[must_use]
    pub fn new(domain: PolicyDomain) -> Self {
        Self {
            domain,
            policy: None,
            backoff: None,
        }
    }

    /// The cached policy when it is unexpired at `now`.
    #[must_use]
    pub fn fresh_policy(&self, now: u64) -> Option<&CachedPolicy> {
        self.policy.as_ref().filter(|p| p.is_fresh(now))
    }

    /// The policy that applies to the delivery at hand after [`on_fetch`] returned `after`: the
    /// fetched one (even with `max_age: 0`, which only keeps it from being cached), the
    /// unexpired cached one, or none.
    #[must_use]
    pub fn policy_after(&self, after: AfterFetch, now: u64) -> Option<&CachedPolicy> {
        match after {
            AfterFetch::Fetched => self.policy.as_ref(),
            AfterFetch::KeptCached => self.fresh_policy(now),
            AfterFetch::NoPolicy => None,
        }
    }
}

/// Tuning of the cache machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheConfig {
    /// Refresh proactively once `max_age / refresh_divisor` has passed since the fetch (default
    /// 4: after a quarter of the lifetime), or [`Self::refresh_interval_max`] if sooner.
    pub refresh_divisor: u64,
    /// The longest time between proactive refreshes, seconds (default 86400: at least daily,
    /// whatever the `max_age`, so a changed policy host is noticed without a TXT id change).
    pub refresh_interval_max: u64,
    /// First back-off after a failed fetch of a policy id, seconds (default 300: RFC 8461 §3.3
    /// suggests at least five minutes between fetches of one version).
    pub backoff_initial: u64,
    /// Longest back-off, seconds (default 3600).
    pub backoff_max: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            refresh_divisor: 4,
            refresh_interval_max: 86_400,
            backoff_initial: 300,
            backoff_max: 3600,
        }
    }
}

impl CacheConfig {
    /// The back-off after `failures` consecutive failures: `initial · 2^(failures-1)`, at most
    /// `backoff_max`.
    #[must_use]
    pub fn backoff_after(&self, failures: u32) -> u64 {
        let shift = failures.saturating_sub(1).min(32);
        self.backoff_initial
            .saturating_mul(1u64 << shift)
            .min(self.backoff_max)
    }
}

/// Why a cached policy is used without a fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum UseCachedReason {
    /// The TXT id equals the cached id.
    SameId,
    /// The TXT record is gone or invalid, but the cached policy is unexpired (RFC 8461 §5.1).
    NoRecord,
    /// The TXT lookup failed, but the cached policy is unexpired.
    LookupFailed,
    /// The TXT answer is DNSSEC-bogus, but the cached policy is unexpired.
    Bogus,
    /// The id changed but a recent fetch of that id failed: keep the cached policy until the
    /// back-off ends.
    BackingOff,
}

/// Why a fetch is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum FetchReason {
    /// Nothing cached (or only an expired policy).
    NotCached,
    /// The TXT id differs from the cached id.
    IdChanged,
}

/// Why the domain has no policy now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum NoPolicyReason {
    /// No `v=STSv1` record (or several, or an invalid one) and nothing unexpired cached.
    NoRecord,
    /// A record exists but the last fetch of its id failed and the back-off has not ended.
    FetchBackingOff,
}

/// Why the state is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum TemporaryReason {
    /// The TXT lookup failed and nothing unexpired is cached.
    LookupFailed,
    /// The TXT answer is DNSSEC-bogus and nothing unexpired is cached.
    Bogus,
}

/// What to do for a domain now.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum CacheDecision {
    /// Apply the cached policy ([`CacheEntry::policy`]); no fetch now.
    UseCached {
        /// Why.
        reason: UseCachedReason,
        /// A quarter of its lifetime (by default), or a day, has passed since the fetch:
        /// re-fetch soon (in the background), then [`on_fetch`] ([`CacheConfig`]).
        refresh_due: bool,
    },
    /// Fetch the policy, then call [`on_fetch`]; if the fetch fails, an unexpired cached policy
    /// still applies.
    Fetch {
        /// Why.
        reason: FetchReason,
    },
    /// The domain has no MTA-STS policy now: deliver as without one.
    NoPolicy {
        /// Why.
        reason: NoPolicyReason,
    },
    /// Unknown: the caller defers (or, by its own configuration, proceeds without a policy).
    TemporaryFailure {
        /// Why.
        reason: TemporaryReason,
    },
}

/// Decides, from the cached entry, the TXT lookup and `now` (unix seconds), what to do.
pub fn decide(
    entry: Option<&CacheEntry>,
    txt: &StsTxtOutcome,
    now: u64,
    config: &CacheConfig,
) -> CacheDecision {
    let fresh = entry.and_then(|e| e.fresh_policy(now));
    // The back-off holds for the id whose fetch failed; without an id in the answer (nothing
    // to fetch), it only keeps a refresh from being asked for.
    let backing_off = entry
        .and_then(|e| e.backoff.as_ref())
        .is_some_and(|b| now < b.retry_at && txt.id().is_none_or(|id| *id == b.id));
    let use_cached = |reason| CacheDecision::UseCached {
        reason,
        refresh_due: fresh.is_some_and(|p| refresh_due(p, now, config)) && !backing_off,
    };
    match (txt, fresh) {
        (StsTxtOutcome::Answer(TxtOutcome::Record(record)), Some(cached)) => {
            if cached.id == record.id {
                use_cached(UseCachedReason::SameId)
            } else if backing_off {
                use_cached(UseCachedReason::BackingOff)
            } else {
                CacheDecision::Fetch {
                    reason: FetchReason::IdChanged,
                }
            }
        }
        (StsTxtOutcome::Answer(TxtOutcome::Record(_)), None) => {
            if backing_off {
                CacheDecision::NoPolicy {
                    reason: NoPolicyReason::FetchBackingOff,
                }
            } else {
                CacheDecision::Fetch {
                    reason: FetchReason::NotCached,
                }
            }
        }
        (StsTxtOutcome::Answer(_), Some(_)) => use_cached(UseCachedReason::NoRecord),
        (StsTxtOutcome::Failed, Some(_)) => use_cached(UseCachedReason::LookupFailed),
        (StsTxtOutcome::Bogus, Some(_)) => use_cached(UseCachedReason::Bogus),
        (StsTxtOutcome::Answer(_), None) => CacheDecision::NoPolicy {
            reason: NoPolicyReason::NoRecord,
        },
        (StsTxtOutcome::Failed, None) => CacheDecision::TemporaryFailure {
            reason: TemporaryReason::LookupFailed,
        },
        (StsTxtOutcome::Bogus, None) => CacheDecision::TemporaryFailure {
            reason: TemporaryReason::Bogus,
        },
    }
}

/// `now - fetched_at >= min(lifetime / refresh_divisor, refresh_interval_max)`.
fn refresh_due(policy: &CachedPolicy, now: u64, config: &CacheConfig) -> bool {
    let age = now.saturating_sub(policy.fetched_at);
    let lifetime = policy.expires_at.saturating_sub(policy.fetched_at);
    let interval = (lifetime / config.refresh_divisor.max(1)).min(config.refresh_interval_max);
    age >= interval
}

/// A fetch as the adapter reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FetchResult {
    /// A valid policy, fetched from `source`.
    Valid {
        /// The policy.
        policy: Policy,
        /// Where from.
        source: PolicySource,
    },
    /// The fetch failed or the policy was invalid.
    Failed {
        /// Why (`sts-policy-fetch-error`, `sts-policy-invalid` or `sts-webpki-invalid`).
        failure: StsFailure,
    },
}

/// The policy that applies after a fetch.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AfterFetch {
    /// The freshly fetched policy applies.
    Fetched,
    /// The fetch failed; the unexpired cached policy still applies.
    KeptCached,
    /// The fetch failed and nothing unexpired is cached: deliver as without a policy (RFC 8461
    /// §5), and report the failure.
    NoPolicy,
}

/// Folds a fetch for `txt_id` into the entry; returns the new entry (to store) and which policy
/// applies. A valid policy replaces the old one only here; a failure keeps it and backs off.
pub fn on_fetch(
    entry: CacheEntry,
    txt_id: &StsId,
    result: FetchResult,
    now: u64,
    config: &CacheConfig,
) -> (CacheEntry, AfterFetch) {
    match result {
        FetchResult::Valid { policy, source } => {
            let expires_at = now.saturating_add(policy.max_age);
            let cached = CachedPolicy {
                id: txt_id.clone(),
                policy,
                fetched_at: now,
                expires_at,
                last_checked: now,
                source,
            };
            let entry = CacheEntry {
                domain: entry.domain,
                policy: Some(cached),
                backoff: None,
            };
            (entry, AfterFetch::Fetched)
        }
        FetchResult::Failed { failure } => {
            let failures = entry
                .backoff
                .as_ref()
                .filter(|b| b.id == *txt_id)
                .map_or(1, |b| b.failures.saturating_add(1));
            let backoff = FetchBackoff {
                id: txt_id.clone(),
                failures,
                retry_at: now.saturating_add(config.backoff_after(failures)),
                last_failure: failure,
            };
            let after = if entry.fresh_policy(now).is_some() {
                AfterFetch::KeptCached
            } else {
                AfterFetch::NoPolicy
            };
            let entry = CacheEntry {
                backoff: Some(backoff),
                ..entry
            };
            (entry, after)
        }
    }
}

/// Records that the TXT record still announces the cached id (after [`decide`] said
/// [`UseCachedReason::SameId`]): updates `last_checked`.
pub fn on_same_id(entry: &mut CacheEntry, now: u64) {
    if let Some(p) = entry.policy.as_mut() {
        p.last_checked = now;
    }
}

/// The mode that applies for an entry at `now`: the fresh cached policy's, if any.
#[must_use]
pub fn effective_mode(entry: &CacheEntry, now: u64) -> Option<Mode> {
    entry.fresh_policy(now).map(|p| p.policy.mode)
}
