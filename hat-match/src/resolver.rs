//! Feature `resolver`: a thin hickory-resolver adapter that gathers the [`Facts`] a client's
//! verdict can depend on, and nothing more, then runs the sans-IO matcher.
//!
//! For a client address it asks [`HostAccessTable::plan`] which facts could change the verdict,
//! then, all concurrently under one overall deadline:
//! - the PTR lookup of the address (at most [`ResolverLimits::max_ptr_names`] names kept), then
//!   for each name a forward lookup of the client's family (A for IPv4, AAAA for IPv6); the
//!   addresses become facts, and the matcher counts a name only when one of them is the client
//!   address (forward-confirmed reverse DNS);
//! - for each DNS-list zone in the plan, the A lookup of `reversed-address.zone`
//!   (RFC 5782 §2.1 for IPv4, §2.4 nibbles for IPv6): a code in 127.0.0.0/8 means listed,
//!   NXDOMAIN means not listed.
//!
//! Nothing the plan rules out is queried. A failed lookup (timeout, SERVFAIL, REFUSED, no
//! answer before the deadline) leaves its fact *not answered* and is reported:
//! [`ResolvedVerdict::is_tentative`] says whether it could have changed the verdict, so a server
//! can answer `451` instead. Must be called within a Tokio runtime.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use hat_match::{HostAccessTable, resolver::{HatResolver, ResolverLimits}};
//! let table = HostAccessTable::from_file("hat.toml")?;
//! let dns = HatResolver::for_nameserver("127.0.0.1:53".parse()?, ResolverLimits::default())?;
//! let resolved = dns.matches(&table, "184.94.241.96".parse()?).await;
//! if resolved.is_tentative() {
//!     // a lookup that mattered failed: 451 4.4.3 and let the client retry
//! }
//! println!("{:?}", resolved.verdict().sender_group());
//! # Ok(()) }
//! ```

mod record;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use tokio::task::JoinSet;

pub use self::record::{
    DnsListLookup, ForwardLookup, LookupFailure, LookupRecord, LookupStatus, PtrLookup,
    ResolvedVerdict, SkipReason,
};
use crate::error::Error;
use crate::facts::{Facts, MAX_DNSLIST_ZONES, MAX_FORWARD_ADDRESSES, MAX_PTR_NAMES};
use crate::name::normalize_name;
use crate::table::HostAccessTable;

/// Work bounds of the adapter (construct with `..ResolverLimits::default()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolverLimits {
    /// PTR names considered per client, 1 to [`MAX_PTR_NAMES`] (default 10); the rest are
    /// ignored (counted in [`PtrLookup::ignored`]).
    pub max_ptr_names: usize,
    /// Forward addresses kept per PTR name, 1 to [`MAX_FORWARD_ADDRESSES`] (default 32).
    pub max_forward_addresses: usize,
    /// DNS-list zones queried per client, 0 to [`MAX_DNSLIST_ZONES`] (default 64); zones
    /// beyond it fail with [`LookupFailure::OverLimit`].
    pub max_dnslist_queries: usize,
    /// Timeout of one query (default 3 s), at least 1 ms.
    pub query_timeout: Duration,
    /// Deadline for all lookups of one client together (default 6 s), at least 1 ms.
    pub overall_timeout: Duration,
}

impl Default for ResolverLimits {
    fn default() -> Self {
        Self {
            max_ptr_names: 10,
            max_forward_addresses: MAX_FORWARD_ADDRESSES,
            max_dnslist_queries: MAX_DNSLIST_ZONES,
            query_timeout: Duration::from_secs(3),
            overall_timeout: Duration::from_secs(6),
        }
    }
}

impl ResolverLimits {
    fn check(&self) -> Result<(), Error> {
        let bad = |limit: &'static str, allowed: &'static str| {
            Err(Error::InvalidResolverLimit { limit, allowed })
        };
        if !(1..=MAX_PTR_NAMES).contains(&self.max_ptr_names) {
            return bad("max_ptr_names", "1 to 16 (MAX_PTR_NAMES)");
        }
        if !(1..=MAX_FORWARD_ADDRESSES).contains(&self.max_forward_addresses) {
            return bad("max_forward_addresses", "1 to 32 (MAX_FORWARD_ADDRESSES)");
        }
        if self.max_dnslist_queries > MAX_DNSLIST_ZONES {
            return bad("max_dnslist_queries", "0 to 64 (MAX_DNSLIST_ZONES)");
        }
        if self.query_timeout < Duration::from_millis(1) {
            return bad("query_timeout", "at least 1 ms");
        }
        if self.overall_timeout < Duration::from_millis(1) {
            return bad("overall_timeout", "at least 1 ms");
        }
        Ok(())
    }
}

/// Gathers a client's facts with hickory-resolver and matches them (see the module docs).
#[derive(Clone)]
pub struct HatResolver {
    resolver: TokioResolver,
    limits: ResolverLimits,
}

impl std::fmt::Debug for HatResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HatResolver")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl HatResolver {
    /// Uses a resolver the caller configured (its own timeouts apply per query as well).
    pub fn new(resolver: TokioResolver, limits: ResolverLimits) -> Result<Self, Error> {
        limits.check()?;
        Ok(Self { resolver, limits })
    }

    /// A resolver asking only `nameserver` (UDP, TCP on truncation), one attempt per query
    /// with [`ResolverLimits::query_timeout`], no hosts file, no search domains.
    pub fn for_nameserver(nameserver: SocketAddr, limits: ResolverLimits) -> Result<Self, Error> {
        limits.check()?;
        let mut ns = NameServerConfig::udp_and_tcp(nameserver.ip());
        for c in &mut ns.connections {
            c.port = nameserver.port();
        }
        let mut opts = ResolverOpts::default();
        opts.timeout = limits.query_timeout;
        opts.attempts = 1;
        opts.use_hosts_file = ResolveHosts::Never;
        opts.ndots = 0;
        let resolver = TokioResolver::builder_with_config(
            ResolverConfig::from_name_servers(vec![ns]),
            TokioRuntimeProvider::default(),
        )
        .with_options(opts)
        .build()
        .map_err(|e| Error::ResolverSetup {
            nameserver,
            reason: e.to_string(),
        })?;
        Ok(Self { resolver, limits })
    }

    /// The limits in force.
    pub fn limits(&self) -> &ResolverLimits {
        &self.limits
    }

    /// Gathers the facts [`HostAccessTable::plan`] says can change the verdict for `ip`, and
    /// matches them. Never fails: lookup failures are in the result.
    pub async fn matches<'t>(&self, table: &'t HostAccessTable, ip: IpAddr) -> ResolvedVerdict<'t> {
        let ip = ip.to_canonical();
        let plan = table.plan(ip);
        let reversed = reversed_labels(ip);
        let suffix = if ip.is_ipv4() {
            "in-addr.arpa"
        } else {
            "ip6.arpa"
        };
        let mut lookups = LookupRecord {
            ptr: PtrLookup {
                query: format!("{reversed}.{suffix}."),
                status: LookupStatus::Skipped(SkipReason::NotNeeded),
                names: Vec::new(),
                ignored: 0,
            },
            forward: Vec::new(),
            dnslists: Vec::new(),
        };
        let mut tasks: JoinSet<Done> = JoinSet::new();
        // In-flight lookups start as `Deadline`: overwritten when their answer arrives.
        let pending = LookupStatus::Failed(LookupFailure::Deadline);
        if plan.needs_ptr() {
            lookups.ptr.status = pending;
            self.spawn(&mut tasks, &lookups.ptr.query, RecordType::PTR, Task::Ptr);
        }
        let mut queried = 0;
        for zone in table.dnslist_zones() {
            let needed = plan.dnslists().binary_search(&&**zone).is_ok();
            let query = format!("{reversed}.{zone}.");
            let status = if !needed {
                LookupStatus::Skipped(SkipReason::NotNeeded)
            } else if queried >= self.limits.max_dnslist_queries {
                LookupStatus::Failed(LookupFailure::OverLimit)
            } else if Name::from_ascii(&query).is_err() {
                LookupStatus::Failed(LookupFailure::QueryName)
            } else {
                queried += 1;
                let i = lookups.dnslists.len();
                self.spawn(&mut tasks, &query, RecordType::A, move |a| {
                    Task::DnsList(i, a)
                });
                pending
            };
            lookups.dnslists.push(DnsListLookup {
                zone: zone.to_string(),
                query,
                status,
                codes: Vec::new(),
                listed: false,
            });
        }
        let deadline = tokio::time::Instant::now() + self.limits.overall_timeout;
        while let Ok(Some(done)) = tokio::time::timeout_at(deadline, tasks.join_next()).await {
            // A lost task (panic, abort) keeps its `Deadline` status.
            if let Ok(done) = done {
                self.record(done, ip, &mut lookups, &mut tasks);
            }
        }
        // Dropping the set aborts whatever is still in flight.
        drop(tasks);
        let facts = facts_from(ip, &lookups);
        ResolvedVerdict {
            verdict: table.matches(&facts),
            plan,
            facts,
            lookups,
        }
    }

    fn spawn(
        &self,
        tasks: &mut JoinSet<Done>,
        query: &str,
        rtype: RecordType,
        task: impl FnOnce(Answer) -> Done + Send + 'static,
    ) {
        let resolver = self.resolver.clone();
        let name = Name::from_ascii(query);
        tasks.spawn(async move {
            let answer = match name {
                Ok(name) => query_records(&resolver, name, rtype).await,
                Err(_) => Answer::Failed(LookupFailure::QueryName),
            };
            task(answer)
        });
    }

    /// Records one answer; a PTR answer starts the forward lookups.
    fn record(
        &self,
        done: Done,
        ip: IpAddr,
        lookups: &mut LookupRecord,
        tasks: &mut JoinSet<Done>,
    ) {
        match done {
            Task::Ptr(answer) => {
                let (status, records) = answer.split();
                lookups.ptr.status = status;
                let mut names: Vec<String> = Vec::new();
                for r in records {
                    if let RData::PTR(ptr) = r {
                        let name = ptr.0.to_ascii();
                        if !names.contains(&name) {
                            names.push(name);
                        }
                    }
                }
                let keep = names.len().min(self.limits.max_ptr_names);
                lookups.ptr.ignored = names.len() - keep;
                names.truncate(keep);
                let rtype = if ip.is_ipv4() {
                    RecordType::A
                } else {
                    RecordType::AAAA
                };
                for name in &names {
                    let i = lookups.forward.len();
                    let status = if normalize_name(name).is_ok() {
                        self.spawn(tasks, name, rtype, move |a| Task::Forward(i, a));
                        LookupStatus::Failed(LookupFailure::Deadline)
                    } else {
                        LookupStatus::Skipped(SkipReason::InvalidName)
                    };
                    lookups.forward.push(ForwardLookup {
                        name: name.clone(),
                        status,
                        addresses: Vec::new(),
                        ignored: 0,
                        confirmed: false,
                    });
                }
                lookups.ptr.names = names;
            }
            Task::Forward(i, answer) => {
                let (status, records) = answer.split();
                let mut addresses: Vec<IpAddr> = records
                    .into_iter()
                    .filter_map(|r| match r {
                        RData::A(a) => Some(IpAddr::V4(a.0)),
                        RData::AAAA(a) => Some(IpAddr::V6(a.0).to_canonical()),
                        _ => None,
                    })
                    .collect();
                addresses.dedup();
                let confirmed = addresses.contains(&ip);
                let total = addresses.len();
                if total > self.limits.max_forward_addresses {
                    // keep the client's own address (it decides confirmation), then the first
                    addresses.retain(|a| *a != ip);
                    addresses.truncate(self.limits.max_forward_addresses - usize::from(confirmed));
                    if confirmed {
                        addresses.insert(0, ip);
                    }
                }
                let f = &mut lookups.forward[i];
                f.status = status;
                f.ignored = total - addresses.len();
                f.addresses = addresses;
                f.confirmed = confirmed;
            }
            Task::DnsList(i, answer) => {
                let (mut status, records) = answer.split();
                let codes: Vec<Ipv4Addr> = records
                    .into_iter()
                    .filter_map(|r| match r {
                        RData::A(a) => Some(a.0),
                        _ => None,
                    })
                    .collect();
                // RFC 5782 §2.1: listings are 127.0.0.0/8; 127.255.255.0/24 are error codes.
                let listed = codes
                    .iter()
                    .any(|c| c.octets()[0] == 127 && c.octets()[..3] != [127, 255, 255]);
                if status == LookupStatus::Answered && !listed {
                    status = LookupStatus::Failed(LookupFailure::UnexpectedAnswer);
                }
                let l = &mut lookups.dnslists[i];
                l.status = status;
                l.codes = codes;
                l.listed = listed;
            }
        }
    }
}

/// What a spawned lookup reports back.
enum Task<A> {
    Ptr(A),
    Forward(usize, A),
    DnsList(usize, A),
}

type Done = Task<Answer>;

/// One query's outcome, reduced to what the adapter needs.
enum Answer {
    Records(Vec<RData>),
    NoRecords,
    NxDomain,
    Failed(LookupFailure),
}

impl Answer {
    fn split(self) -> (LookupStatus, Vec<RData>) {
        match self {
            Self::Records(r) => (LookupStatus::Answered, r),
            Self::NoRecords => (LookupStatus::NoRecords, Vec::new()),
            Self::NxDomain => (LookupStatus::NxDomain, Vec::new()),
            Self::Failed(f) => (LookupStatus::Failed(f), Vec::new()),
        }
    }
}

async fn query_records(resolver: &TokioResolver, name: Name, rtype: RecordType) -> Answer {
    match resolver.lookup(name, rtype).await {
        Ok(lookup) => {
            let records: Vec<RData> = lookup
                .answers()
                .iter()
                .filter(|r| r.record_type() == rtype)
                .map(|r| r.data.clone())
                .collect();
            if records.is_empty() {
                Answer::NoRecords
            } else {
                Answer::Records(records)
            }
        }
        Err(NetError::Dns(DnsError::NoRecordsFound(nr))) => {
            if nr.response_code == ResponseCode::NXDomain {
                Answer::NxDomain
            } else {
                Answer::NoRecords
            }
        }
        Err(NetError::Dns(DnsError::ResponseCode(code))) => Answer::Failed(match code {
            ResponseCode::ServFail => LookupFailure::ServFail,
            ResponseCode::Refused => LookupFailure::Refused,
            other => LookupFailure::ResponseCode(u16::from(other)),
        }),
        Err(NetError::Timeout) => Answer::Failed(LookupFailure::Timeout),
        Err(_) => Answer::Failed(LookupFailure::Network),
    }
}

/// The facts the record supports: every kept PTR name with its forward addresses (none when the
/// forward lookup failed: not confirmed), every DNS-list zone that listed the client.
fn facts_from(ip: IpAddr, lookups: &LookupRecord) -> Facts {
    let mut facts = Facts::new(ip);
    for f in &lookups.forward {
        if f.status != LookupStatus::Skipped(SkipReason::InvalidName) {
            // Bounded by the validated limits and already normalisable: cannot fail.
            let _ = facts.add_ptr(&f.name, f.addresses.iter().copied());
        }
    }
    for l in lookups.dnslists.iter().filter(|l| l.listed) {
        let _ = facts.add_dnslist(&l.zone);
    }
    facts
}

/// The address's labels in reverse order: `d.c.b.a` for IPv4, 32 nibbles for IPv6
/// (RFC 1035 §3.5, RFC 3596 §2.5, RFC 5782 §2.4).
fn reversed_labels(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => {
            let [a, b, c, d] = a.octets();
            format!("{d}.{c}.{b}.{a}")
        }
        IpAddr::V6(a) => {
            let bits = a.to_bits();
            (0..32)
                .map(|i| format!("{:x}", (bits >> (4 * i)) & 0xf))
                .collect::<Vec<_>>()
                .join(".")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reversed_names() {
        assert_eq!(
            reversed_labels("184.94.241.96".parse().unwrap()),
            "96.241.94.184"
        );
        assert_eq!(
            reversed_labels("2001:db8::25".parse().unwrap()),
            "5.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2"
        );
    }

    #[test]
    fn limits_are_checked() {
        let bad = ResolverLimits {
            max_ptr_names: 0,
            ..ResolverLimits::default()
        };
        assert_eq!(
            bad.check(),
            Err(Error::InvalidResolverLimit {
                limit: "max_ptr_names",
                allowed: "1 to 16 (MAX_PTR_NAMES)"
            })
        );
        let bad = ResolverLimits {
            max_dnslist_queries: 65,
            ..ResolverLimits::default()
        };
        assert!(bad.check().is_err());
        assert!(ResolverLimits::default().check().is_ok());
    }
}
