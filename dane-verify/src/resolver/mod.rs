//! hickory-resolver adapter: gathers the DNSSEC facts RFC 7672 needs for a destination (MX
//! RRset, each MX host's address records and TLSA records), concurrently per MX host, with
//! limits and a TTL-bounded cache. The decision itself is [`crate::policy::decide`].
//!
//! Two ways to get validated answers ([`Validation`]):
//! - [`Validation::InProcess`]: hickory validates itself from trust anchors — by default the
//!   IANA root zone's KSKs built into hickory-proto ([`Validation::in_process`] with no file;
//!   [`BUILT_IN_ROOT_ANCHORS`]), or a DNSKEY file (for a private zone, the whole DNSKEY RRset
//!   of its apex); the upstreams (e.g. the system's nameservers) need not validate.
//! - [`Validation::TrustAd`]: a validating resolver on loopback; its AD bit is trusted
//!   (RFC 6698 §A.3 / RFC 7672 §8.3: only over a trusted path, so loopback only).
//!
//! **Validation must be proven** ([`ValidationState`]): until [`DaneResolver::probe`] has seen
//! a secure answer, every status the resolver reports is [`DnssecStatus::Indeterminate`]
//! (bogus stays bogus), never `Secure` or `Insecure`: a resolver that does not validate makes
//! every answer look insecure, which would silently switch DANE off. Probe at start-up and
//! periodically ([`DaneResolver::probe`]); [`DestinationFacts::actions`] then keeps mandatory
//! DANE deferred and lets other destinations go without DANE.
//!
//! Also: TXT records with their DNSSEC status for MTA-STS and TLS-RPT ([`DaneResolver::txt`]),
//! and the serde configuration an embedder reads to build a resolver ([`ResolverConfig`]).

mod backend;
mod cache;
mod config;
mod txt;
mod validation;

use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};

use self::backend::{Answer, Backend};
use self::cache::Cache;
use crate::policy::{
    DaneAction, DaneSetting, DeferReason, HostFacts, LookupFailure, NoDaneReason, TlsaLookup,
};
use crate::{DnssecStatus, Error, TlsaRecord};

pub use self::config::{
    DEFAULT_PROBE_INTERVAL_SECS, DEFAULT_PROBE_NAME, MAX_PROBE_INTERVAL_SECS, RESOLV_CONF,
    ResolverConfig, ResolverMode, UpstreamSource,
};
pub use self::validation::{
    BUILT_IN_ROOT_ANCHORS, MAX_UPSTREAMS, TrustAnchorSet, Validation, ValidationState,
};

/// Work bounds for lookups (construct with `..Limits::default()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Per-query timeout.
    pub timeout: Duration,
    /// MX hosts considered per destination (lowest preference first; the rest ignored).
    pub max_mx_hosts: usize,
    /// TLSA records per RRset; more makes the lookup fail (defer), never truncate.
    pub max_tlsa_records: usize,
    /// CNAME links followed for an MX host.
    pub max_cname_depth: usize,
    /// Cached answers.
    pub max_cache_entries: usize,
    /// Upper bound on how long an answer is cached, whatever its TTL.
    pub max_cache_ttl: Duration,
    /// TXT records per RRset ([`DaneResolver::txt`]); more makes the lookup fail.
    pub max_txt_records: usize,
    /// Octets of character-strings over a TXT RRset; more makes the lookup fail.
    pub max_txt_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            max_mx_hosts: 10,
            max_tlsa_records: 32,
            max_cname_depth: 8,
            max_cache_entries: 10_000,
            max_cache_ttl: Duration::from_secs(3600),
            max_txt_records: 16,
            max_txt_bytes: 8192,
        }
    }
}

/// What DNS said about a destination: the MX RRset and the facts for each MX host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationFacts {
    /// The next-hop domain.
    pub domain: String,
    /// DNSSEC status of the MX RRset (or of its denial).
    pub mx_status: DnssecStatus,
    /// Whether the MX lookup failed outright (SERVFAIL, bogus, timeout).
    pub mx_failure: Option<LookupFailure>,
    /// One entry per MX host (by preference), each with its facts.
    pub hosts: Vec<HostFacts>,
    /// MX hosts beyond [`Limits::max_mx_hosts`] that were ignored.
    pub ignored_mx_hosts: usize,
    /// The resolver's [`ValidationState`] when the facts were gathered; unless it is
    /// `Validating`, every status above is `Indeterminate` (or `Bogus`).
    pub validation: ValidationState,
}

impl DestinationFacts {
    /// The RFC 7672 action for each MX host under `setting`. A failed MX lookup gives no hosts:
    /// the destination as a whole defers (an empty list when the domain has no MX host at all).
    ///
    /// While the resolver's validation is not proven ([`Self::validation`]), DANE is not
    /// available: `Mandatory` defers every host (`MxLookup(Indeterminate)`: the MX status cannot
    /// be known), `Opportunistic` goes on without DANE (configured TLS,
    /// [`NoDaneReason::ValidationUnproven`]; `None` stays [`NoDaneReason::SettingNone`]), so a broken validator does not hold all mail; the
    /// answers are used as plain DNS (no MX host listed means a null MX or NXDOMAIN, as
    /// without DNSSEC). A bogus MX answer still defers.
    pub fn actions(&self, setting: DaneSetting) -> Vec<(String, DaneAction)> {
        if !self.validation.is_proven() {
            return self.actions_unproven(setting);
        }
        if self.hosts.is_empty() && (self.mx_failure.is_some() || self.mx_status.is_failure()) {
            let action = if setting == DaneSetting::None {
                DaneAction::Defer(DeferReason::MxLookup(DnssecStatus::Indeterminate))
            } else {
                DaneAction::Defer(DeferReason::MxLookup(self.mx_status))
            };
            return vec![(self.domain.clone(), action)];
        }
        self.hosts
            .iter()
            .map(|h| (h.mx_host.clone(), crate::policy::decide(setting, h)))
            .collect()
    }

    fn actions_unproven(&self, setting: DaneSetting) -> Vec<(String, DaneAction)> {
        let failed = self.mx_failure.is_some() || self.mx_status == DnssecStatus::Bogus;
        if self.hosts.is_empty() && failed {
            let status = if setting == DaneSetting::None {
                DnssecStatus::Indeterminate
            } else {
                self.mx_status
            };
            return vec![(
                self.domain.clone(),
                DaneAction::Defer(DeferReason::MxLookup(status)),
            )];
        }
        self.hosts
            .iter()
            .map(|h| {
                let action = match setting {
                    DaneSetting::Mandatory => DaneAction::Defer(DeferReason::MxLookup(
                        h.mx_status.combine(DnssecStatus::Indeterminate),
                    )),
                    _ if h.mx_status == DnssecStatus::Bogus => {
                        DaneAction::Defer(DeferReason::MxLookup(DnssecStatus::Bogus))
                    }
                    DaneSetting::None => DaneAction::ConfiguredTls(NoDaneReason::SettingNone),
                    _ => DaneAction::ConfiguredTls(NoDaneReason::ValidationUnproven),
                };
                (h.mx_host.clone(), action)
            })
            .collect()
    }
}

/// Gathers DANE facts with a hickory backend. Cheap to share behind an `Arc`.
pub struct DaneResolver {
    backend: Backend,
    limits: Limits,
    cache: Cache,
    /// [`ValidationState`] as a `u8`: set by [`DaneResolver::probe`], read by every lookup.
    state: AtomicU8,
}

impl std::fmt::Debug for DaneResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DaneResolver")
            .field("limits", &self.limits)
            .field("validation", &self.validation_state())
            .finish_non_exhaustive()
    }
}

impl DaneResolver {
    /// Builds a resolver. [`Validation::TrustAd`] with a non-loopback address is refused.
    pub fn new(validation: Validation, limits: Limits) -> Result<Self, Error> {
        let backend = match validation {
            Validation::TrustAd { resolver } => {
                if !resolver.ip().is_loopback() {
                    return Err(Error::Config {
                        reason: format!(
                            "AD bit trusted only from a loopback resolver, not {resolver}"
                        ),
                    });
                }
                Backend::TrustAd { server: resolver }
            }
            Validation::InProcess {
                upstreams,
                trust_anchors,
            } => Backend::InProcess(Box::new(backend::in_process_resolver(
                &upstreams,
                trust_anchors.hickory(),
                limits.timeout,
            )?)),
        };
        Ok(Self {
            backend,
            cache: Cache::new(limits.max_cache_entries, limits.max_cache_ttl),
            limits,
            state: AtomicU8::new(ValidationState::Unproven.to_u8()),
        })
    }

    /// Whether validation is proven; until it is, every status is reported `Indeterminate`.
    pub fn validation_state(&self) -> ValidationState {
        ValidationState::from_u8(self.state.load(Ordering::Acquire))
    }

    /// The limits in force.
    #[must_use]
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Empties the answer cache.
    pub fn clear_cache(&self) {
        self.cache.clear();
    }

    /// The validation probe, at start-up and periodically: `signed_name`'s SOA must come back
    /// [`DnssecStatus::Secure`]; otherwise DANE is not available ([`Error::NoValidation`]). Use
    /// a name known to be signed (`.` on the internet; the lab's `test.`). Updates
    /// [`Self::validation_state`]:
    ///
    /// | probe answer | new state |
    /// |---|---|
    /// | secure | `Validating` |
    /// | insecure (no AD bit, unsigned, stripped) | `NotValidating` |
    /// | bogus | `NotValidating`, unless `Validating` already (a forged answer must not switch DANE off) |
    /// | none (timeout, SERVFAIL, network) | unchanged |
    pub async fn probe(&self, signed_name: &str) -> Result<(), Error> {
        let name = parse_name(signed_name)?;
        let answer = self
            .backend
            .query(&name, RecordType::SOA, self.limits.timeout)
            .await;
        let current = self.validation_state();
        let next = match &answer {
            Answer::Records {
                status: DnssecStatus::Secure,
                ..
            } => ValidationState::Validating,
            Answer::Records {
                status: DnssecStatus::Insecure,
                ..
            }
            | Answer::NoRecords {
                status: DnssecStatus::Insecure,
                ..
            } => ValidationState::NotValidating,
            Answer::Records {
                status: DnssecStatus::Bogus,
                ..
            }
            | Answer::NoRecords {
                status: DnssecStatus::Bogus,
                ..
            }
            | Answer::Failed {
                status: DnssecStatus::Bogus,
                ..
            } if current != ValidationState::Validating => ValidationState::NotValidating,
            _ => current,
        };
        if next != current {
            self.state.store(next.to_u8(), Ordering::Release);
            // answers cached under the other state carry statuses of that state
            self.cache.clear();
        }
        if next == ValidationState::Validating && matches!(answer, Answer::Records { .. }) {
            Ok(())
        } else {
            Err(Error::NoValidation {
                reason: format!("SOA of {signed_name} is not secure: {}", describe(&answer)),
            })
        }
    }

    /// One answer, from the cache or the backend, with its status masked while validation is
    /// not proven (the cache keeps what the backend said).
    async fn query(&self, name: &Name, rtype: RecordType) -> Answer {
        let a = match self.cache.get(name, rtype) {
            Some(a) => a,
            None => {
                let a = self.backend.query(name, rtype, self.limits.timeout).await;
                self.cache.put(name, rtype, &a);
                a
            }
        };
        if self.validation_state().is_proven() {
            a
        } else {
            a.unproven()
        }
    }

    /// All DANE facts for `domain` with SMTP service on `port`: MX lookup, then each MX host
    /// concurrently (addresses, CNAME expansion, TLSA per RFC 7672 §2.2).
    pub async fn destination(&self, domain: &str, port: u16) -> Result<DestinationFacts, Error> {
        let name = parse_name(domain)?;
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let mut facts = DestinationFacts {
            domain: domain.clone(),
            mx_status: DnssecStatus::Indeterminate,
            mx_failure: None,
            hosts: Vec::new(),
            ignored_mx_hosts: 0,
            validation: self.validation_state(),
        };
        let mut hosts: Vec<(u16, String)> = match self.query(&name, RecordType::MX).await {
            Answer::Records {
                records, status, ..
            } => {
                facts.mx_status = status;
                records
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::MX(mx) => Some((mx.preference, name_str(&mx.exchange))),
                        _ => None,
                    })
                    .collect()
            }
            Answer::NoRecords {
                nxdomain: false,
                status,
                ..
            } => {
                // RFC 5321 §5.1: no MX -> the domain itself is the host
                facts.mx_status = status;
                vec![(0, domain.clone())]
            }
            Answer::NoRecords {
                nxdomain: true,
                status,
                ..
            } => {
                facts.mx_status = status;
                Vec::new()
            }
            Answer::Failed { failure, status } => {
                facts.mx_status = status;
                facts.mx_failure = Some(failure);
                return Ok(facts);
            }
        };
        hosts.sort();
        hosts.dedup_by(|a, b| a.1 == b.1);
        // RFC 7505 null MX: "." means no mail service.
        hosts.retain(|(_, h)| !h.is_empty());
        if hosts.len() > self.limits.max_mx_hosts {
            facts.ignored_mx_hosts = hosts.len() - self.limits.max_mx_hosts;
            hosts.truncate(self.limits.max_mx_hosts);
        }
        let mx_status = facts.mx_status;
        let lookups = hosts
            .iter()
            .map(|(_, host)| self.host_facts(&domain, host, mx_status, port));
        facts.hosts = futures::future::join_all(lookups).await;
        Ok(facts)
    }

    /// The facts for one MX host (RFC 7672 §2.2.2): address records, then TLSA records when the
    /// addresses are secure, at the CNAME-expanded name first and then the original name.
    pub async fn host_facts(
        &self,
        next_hop: &str,
        mx_host: &str,
        mx_status: DnssecStatus,
        port: u16,
    ) -> HostFacts {
        let mut facts = HostFacts {
            next_hop: next_hop.to_owned(),
            mx_host: mx_host.to_owned(),
            mx_status,
            address_status: DnssecStatus::Indeterminate,
            tlsa_base: mx_host.to_owned(),
            tlsa: TlsaLookup::NotQueried,
        };
        if !mx_status.is_secure() {
            return facts; // no DANE without a secure MX RRset: nothing more to learn
        }
        let Ok(host) = parse_name(mx_host) else {
            return facts;
        };
        // RFC 7672 §2.2.2: the TLSA base is the CNAME-expanded name. The expansion is taken from
        // whichever address answer carries it: the A answer (records, or NODATA with the chain),
        // else the AAAA answer — a host whose alias target has only AAAA records (or only A
        // records) must not lose DANE. Each family's absence is then asked at the expanded
        // name, so its denial is proven for the name that owns it (hickory cannot validate
        // "CNAME + NSEC of the target" in one answer, and drops the chain of a NODATA answer).
        let mut statuses = Vec::new();
        let mut a = self.query(&host, RecordType::A).await;
        let mut expanded = match cname_target(&host, a.cnames(), self.limits.max_cname_depth) {
            Ok(t) => t,
            Err(()) => {
                statuses.push(DnssecStatus::Indeterminate);
                None
            }
        };
        let aaaa = self
            .query(expanded.as_ref().unwrap_or(&host), RecordType::AAAA)
            .await;
        if expanded.is_none() {
            match cname_target(&host, aaaa.cnames(), self.limits.max_cname_depth) {
                Ok(Some(target)) => {
                    // the A answer was about the alias, not the target: ask the target
                    if !matches!(a, Answer::Records { .. }) {
                        a = self.query(&target, RecordType::A).await;
                    }
                    expanded = Some(target);
                }
                Ok(None) => {}
                Err(()) => statuses.push(DnssecStatus::Indeterminate),
            }
        }
        let mut any_address = false;
        for ans in [&a, &aaaa] {
            match ans {
                Answer::Records { status, .. } => {
                    any_address = true;
                    statuses.push(*status);
                }
                Answer::NoRecords { status, .. } | Answer::Failed { status, .. } => {
                    statuses.push(*status);
                }
            }
        }
        let mut status = statuses
            .into_iter()
            .reduce(DnssecStatus::combine)
            .unwrap_or_default();
        if !any_address && status.is_secure() {
            status = DnssecStatus::Indeterminate; // a host without addresses cannot be reached
        }
        facts.address_status = status;
        if !status.is_secure() {
            return facts; // RFC 7672 §2.2.2: TLSA only for hosts with secure addresses
        }
        let original = self.tlsa_lookup(&host, port).await;
        facts.tlsa = match expanded {
            Some(target) if target != host => {
                let at_target = self.tlsa_lookup(&target, port).await;
                let (lookup, used_original) = at_target.cname_fallback(|| original);
                if !used_original {
                    facts.tlsa_base = name_str(&target);
                }
                lookup
            }
            _ => original,
        };
        facts
    }

    /// The IP addresses of `host` (A then AAAA, CNAMEs followed; cached like every answer), e.g.
    /// of an MTA-STS policy host. A family whose lookup fails, finds nothing or is DNSSEC-bogus
    /// contributes no address (bogus data is never used); empty when none is usable.
    pub async fn addresses(&self, host: &str) -> Result<Vec<std::net::IpAddr>, Error> {
        let name = parse_name(host)?;
        let mut out = Vec::new();
        for rtype in [RecordType::A, RecordType::AAAA] {
            if let Answer::Records {
                records, status, ..
            } = self.query(&name, rtype).await
                && status != DnssecStatus::Bogus
            {
                out.extend(records.iter().filter_map(|r| r.data.ip_addr()));
            }
        }
        Ok(out)
    }

    /// The TLSA RRset at `_PORT._tcp.HOST`.
    pub async fn tlsa(&self, host: &str, port: u16) -> Result<TlsaLookup, Error> {
        Ok(self.tlsa_lookup(&parse_name(host)?, port).await)
    }

    async fn tlsa_lookup(&self, host: &Name, port: u16) -> TlsaLookup {
        let Ok(name) = Name::from_ascii(format!("_{port}._tcp.{}", name_str(host) + ".")) else {
            return TlsaLookup::Failed(LookupFailure::Other);
        };
        match self.query(&name, RecordType::TLSA).await {
            Answer::Records {
                records, status, ..
            } => {
                let tlsa: Vec<_> = records
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::TLSA(t) => Some(t),
                        _ => None,
                    })
                    .collect();
                if tlsa.len() > self.limits.max_tlsa_records {
                    tracing::warn!(%name, count = tlsa.len(), "too many TLSA records");
                    return TlsaLookup::Failed(LookupFailure::Other);
                }
                // malformed records are unusable: dropped (RFC 7671 §4.1 / RFC 7672 §2.2)
                let records: Vec<TlsaRecord> = tlsa
                    .into_iter()
                    .filter_map(|t| TlsaRecord::try_from(t).ok())
                    .collect();
                TlsaLookup::Found { records, status }
            }
            Answer::NoRecords { status, .. } => TlsaLookup::NotFound { status },
            Answer::Failed {
                status: DnssecStatus::Bogus,
                ..
            } => TlsaLookup::Found {
                records: Vec::new(),
                status: DnssecStatus::Bogus,
            },
            Answer::Failed { failure, .. } => TlsaLookup::Failed(failure),
        }
    }
}

/// Follows the CNAME chain from `host` in an answer; `Ok(Some(target))` when aliased.
fn cname_target(host: &Name, records: &[Record], max_depth: usize) -> Result<Option<Name>, ()> {
    let mut current = host.clone();
    let mut depth = 0;
    while let Some(next) = records.iter().find_map(|r| match &r.data {
        RData::CNAME(c) if r.name == current => Some(c.0.clone()),
        _ => None,
    }) {
        depth += 1;
        if depth > max_depth {
            return Err(());
        }
        current = next;
    }
    Ok((depth > 0).then_some(current))
}

fn parse_name(s: &str) -> Result<Name, Error> {
    let fqdn = if s.ends_with('.') {
        s.to_owned()
    } else {
        format!("{s}.")
    };
    Name::from_ascii(&fqdn).map_err(|_| Error::BadName { name: s.into() })
}

fn name_str(n: &Name) -> String {
    n.to_ascii().trim_end_matches('.').to_ascii_lowercase()
}

fn describe(a: &Answer) -> String {
    match a {
        Answer::Records { status, .. } => format!("answer is {}", status.as_str()),
        Answer::NoRecords { status, .. } => format!("no records ({})", status.as_str()),
        Answer::Failed { failure, status } => format!("{failure:?} ({})", status.as_str()),
    }
}

#[cfg(test)]
mod tests;
