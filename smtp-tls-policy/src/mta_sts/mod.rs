//! MTA-STS (RFC 8461): the sans-IO core and, with the feature `mta-sts-fetch`, the HTTPS fetch
//! of the policy file.
//!
//! - [`txt`](mod@txt): select and parse the `_mta-sts.DOMAIN` TXT record ([`select_txt_record`]).
//! - [`policy`](mod@policy): parse the policy file ([`Policy::parse`]).
//! - [`mx_pattern`]: `mx` patterns and matching an MX host, with the reason of a miss.
//! - [`cache`]: the cache state machine keyed by policy domain ([`decide`], [`on_fetch`]).
//! - [`verdict`]: per MX host ([`host_verdict`]) and the certificate check
//!   ([`check_sts_certificate`]), with failure kinds named as RFC 8460 (TLS-RPT) names them.
//! - `fetch` (feature `mta-sts-fetch`): `fetch_policy`, an HTTPS GET over hyper and rustls to
//!   addresses the caller resolved; `fetch_and_parse` hands the cache machine its input.
//! - [`store`]: where cache entries live ([`PolicyStore`]; [`FilePolicyStore`], one crash-safe
//!   JSON file per policy domain; [`MemoryPolicyStore`]).
//! - `discover` (feature `mta-sts-fetch`): `discover`, the adapter doing TXT lookup, cache
//!   decision, fetch through the caller's resolver, and store update in one call.
//!
//! Decisions never read the clock nor the network: time is passed in as unix seconds.
//!
//! ```
//! use smtp_tls_policy::mta_sts::*;
//! // 1. the TXT answer of _mta-sts.example.com
//! let answer = [vec!["v=STSv1; id=20190429T010101;"]];
//! let txt = StsTxtOutcome::Answer(select_txt_record(&answer));
//! // 2. the cache says: nothing cached, fetch
//! let domain = PolicyDomain::parse("example.com.")?;
//! let (entry, now, config) = (CacheEntry::new(domain.clone()), 1_700_000_000, CacheConfig::default());
//! let decision = decide(Some(&entry), &txt, now, &config);
//! assert_eq!(decision, CacheDecision::Fetch { reason: FetchReason::NotCached });
//! // 3. the fetched policy file, parsed and folded into the cache
//! let body = b"version: STSv1\nmode: enforce\nmx: *.mail.example.com\nmax_age: 86400\n";
//! let policy = Policy::parse(body)?;
//! let id = txt.id().ok_or("no id")?;
//! let source = PolicySource::new(domain.policy_url(), None);
//! let (entry, after) = on_fetch(entry, id, FetchResult::Valid { policy, source }, now, &config);
//! assert_eq!(after, AfterFetch::Fetched);
//! // 4. per MX host
//! let policy = entry.policy_after(after, now).map(|c| &c.policy);
//! assert_eq!(host_verdict(policy, "mx1.mail.example.com").action, StsHostAction::RequirePkix);
//! assert!(!host_verdict(policy, "mx.other.example").may_connect());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod cache;
#[cfg(feature = "mta-sts-fetch")]
pub mod discover;
#[cfg(feature = "mta-sts-fetch")]
pub mod fetch;
pub mod mx_pattern;
pub mod policy;
pub mod store;
pub mod txt;
pub mod verdict;

pub use cache::{
    AfterFetch, CacheConfig, CacheDecision, CacheEntry, CachedPolicy, FetchBackoff, FetchReason,
    FetchResult, NoPolicyReason, PolicyDomain, PolicySource, StsTxtOutcome, TemporaryReason,
    UseCachedReason, decide, effective_mode, on_fetch, on_same_id,
};
#[cfg(feature = "mta-sts-fetch")]
pub use discover::{Discovery, DiscoveryOutcome, FetchSettings, discover, host_verdicts};
#[cfg(feature = "mta-sts-fetch")]
pub use fetch::{
    FetchError, FetchLimits, FetchedPolicy, client_config, fetch_and_parse, fetch_policy,
};
pub use mx_pattern::{MxListMatch, MxMatch, MxMiss, MxPattern, MxPatternError, match_mx_host};
pub use policy::{MAX_AGE_LIMIT, MAX_POLICY_LEN, Mode, Policy, PolicyError, PolicyNote};
pub use store::{FilePolicyStore, MAX_ENTRY_FILE, MemoryPolicyStore, PolicyStore, StoreError};
pub use txt::{StsId, StsTxtRecord, TxtInvalid, TxtOutcome, parse_txt_record, select_txt_record};
pub use verdict::{
    StsCertificateCheck, StsFailure, StsFailureKind, StsHostAction, StsHostVerdict, StsPeerVerdict,
    check_sts_certificate, host_verdict,
};

#[cfg(test)]
mod tests;
