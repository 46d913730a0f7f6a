//! hickory-resolver adapter: gathers the DNSSEC facts RFC 7672 needs for a destination (MX
//! RRset, each MX host's address records and TLSA records), concurrently per MX host, with
//! limits and a TTL-bounded cache. The decision itself is [`crate::policy::decide`].
//!
//! Two ways to get validated answers ([`Validation`]):
//! - [`Validation::InProcess`]: hickory validates itself from configurable trust anchors
//!   (for a private zone, the whole DNSKEY RRset of its apex); the upstream need not validate.
//! - [`Validation::TrustAd`]: a validating resolver on loopback; its AD bit is trusted
//!   (RFC 6698 §A.3 / RFC 7672 §8.3: only over a trusted path, so loopback only).
//!
//! [`DaneResolver::probe`] refuses to report DANE available when the resolver cannot validate.

mod backend;
mod cache;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::proto::dnssec::TrustAnchors;
use hickory_resolver::proto::rr::{Name, RData, RecordType};

use self::backend::{Answer, Backend};
use self::cache::Cache;
use crate::policy::{Action, DaneSetting, DeferReason, HostFacts, LookupFailure, TlsaLookup};
use crate::{DnssecStatus, Error, TlsaRecord};

/// How answers are validated.
#[derive(Clone)]
#[non_exhaustive]
pub enum Validation {
    /// hickory validates in-process from `trust_anchors`; `upstream` is any recursive resolver.
    InProcess {
        /// The recursive resolver to ask (it must pass DNSSEC records through).
        upstream: SocketAddr,
        /// Trust anchors (DNSKEYs).
        trust_anchors: Arc<TrustAnchors>,
    },
    /// Trust the AD bit of this validating resolver; must be a loopback address.
    TrustAd {
        /// The validating resolver.
        resolver: SocketAddr,
    },
}

impl std::fmt::Debug for Validation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InProcess {
                upstream,
                trust_anchors,
            } => f
                .debug_struct("InProcess")
                .field("upstream", upstream)
                .field("trust_anchors", &Arc::strong_count(trust_anchors))
                .finish(),
            Self::TrustAd { resolver } => f
                .debug_struct("TrustAd")
                .field("resolver", resolver)
                .finish(),
        }
    }
}

impl Validation {
    /// In-process validation with the DNSKEY records in `path` (zone-file lines, as
    /// `dnssec-lab.sh` writes `test.dnskeys`).
    pub fn in_process_from_file(upstream: SocketAddr, path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::TrustAnchor {
            reason: format!("{}: {e}", path.display()),
        })?;
        // hickory's emptiness check counts root keys only: look for a DNSKEY ourselves
        if !text
            .lines()
            .any(|l| l.split_whitespace().any(|t| t == "DNSKEY"))
        {
            return Err(Error::TrustAnchor {
                reason: format!("{}: no DNSKEY records", path.display()),
            });
        }
        let anchors: TrustAnchors = text.parse().map_err(|e| Error::TrustAnchor {
            reason: format!("{}: {e}", path.display()),
        })?;
        Ok(Self::InProcess {
            upstream,
            trust_anchors: Arc::new(anchors),
        })
    }
}

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
}

impl DestinationFacts {
    /// The RFC 7672 action for each MX host under `setting`. A failed MX lookup gives no hosts:
    /// the destination as a whole defers (an empty list when the domain has no MX host at all).
    pub fn actions(&self, setting: DaneSetting) -> Vec<(String, Action)> {
        if self.hosts.is_empty() && (self.mx_failure.is_some() || self.mx_status.is_failure()) {
            let action = if setting == DaneSetting::None {
                Action::Defer(DeferReason::MxLookup(DnssecStatus::Indeterminate))
            } else {
                Action::Defer(DeferReason::MxLookup(self.mx_status))
            };
            return vec![(self.domain.clone(), action)];
        }
        self.hosts
            .iter()
            .map(|h| (h.mx_host.clone(), crate::policy::decide(setting, h)))
            .collect()
    }
}

/// Gathers DANE facts with a hickory backend. Cheap to share behind an `Arc`.
pub struct DaneResolver {
    backend: Backend,
    limits: Limits,
    cache: Cache,
}

impl std::fmt::Debug for DaneResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DaneResolver")
            .field("limits", &self.limits)
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
                upstream,
                trust_anchors,
            } => Backend::InProcess(Box::new(backend::in_process_resolver(
                upstream,
                trust_anchors,
                limits.timeout,
            )?)),
        };
        Ok(Self {
            backend,
            cache: Cache::new(limits.max_cache_entries, limits.max_cache_ttl),
            limits,
        })
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

    /// Start-up probe: `signed_name`'s SOA must come back [`DnssecStatus::Secure`]; otherwise
    /// DANE is not available ([`Error::NoValidation`]). Use a name known to be signed (`.` on
    /// the internet; the lab's `test.`).
    pub async fn probe(&self, signed_name: &str) -> Result<(), Error> {
        let name = parse_name(signed_name)?;
        match self
            .backend
            .query(&name, RecordType::SOA, self.limits.timeout)
            .await
        {
            Answer::Records {
                status: DnssecStatus::Secure,
                ..
            } => Ok(()),
            other => Err(Error::NoValidation {
                reason: format!("SOA of {signed_name} is not secure: {}", describe(&other)),
            }),
        }
    }

    async fn query(&self, name: &Name, rtype: RecordType) -> Answer {
        if let Some(a) = self.cache.get(name, rtype) {
            return a;
        }
        let a = self.backend.query(name, rtype, self.limits.timeout).await;
        self.cache.put(name, rtype, &a);
        a
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
        // A first: its answer carries the (signed) CNAME chain. AAAA is then asked at the
        // expanded name, so its denial of existence is proven for the name that owns it
        // (hickory cannot validate "CNAME + NSEC of the target" in one answer).
        let a = self.query(&host, RecordType::A).await;
        let mut expanded: Option<Name> = None;
        let mut statuses = Vec::new();
        let mut any_address = false;
        if let Answer::Records { records, .. } = &a {
            match cname_target(&host, records, self.limits.max_cname_depth) {
                Ok(t) => expanded = t,
                Err(()) => statuses.push(DnssecStatus::Indeterminate),
            }
        }
        let aaaa = self
            .query(expanded.as_ref().unwrap_or(&host), RecordType::AAAA)
            .await;
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

    /// The IP addresses of `host` (A then AAAA, CNAMEs followed; cached like every answer).
    pub async fn addresses(&self, host: &str) -> Result<Vec<std::net::IpAddr>, Error> {
        let name = parse_name(host)?;
        let mut out = Vec::new();
        for rtype in [RecordType::A, RecordType::AAAA] {
            if let Answer::Records { records, .. } = self.query(&name, rtype).await {
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
                    .filter_map(|t| TlsaRecord::from_hickory(t).ok())
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
fn cname_target(
    host: &Name,
    records: &[hickory_resolver::proto::rr::Record],
    max_depth: usize,
) -> Result<Option<Name>, ()> {
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
