//! What the `resolver` adapter did: every lookup made, skipped or failed, and the resolved
//! verdict that carries them.

use std::net::{IpAddr, Ipv4Addr};

use crate::facts::Facts;
use crate::verdict::{Fact, HatVerdict, LookupPlan};

/// Why a lookup was not made.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// [`crate::HostAccessTable::plan`] said this fact cannot change the verdict for the client.
    NotNeeded,
    /// A PTR name that is not a valid host name: no entry can match it, so its forward lookup
    /// is not made.
    InvalidName,
}

/// Why a lookup gave no usable answer. The fact is then treated as *not answered* (no PTR
/// names, name not confirmed, client not listed) and the failure is reported, see
/// [`ResolvedVerdict::is_tentative`].
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupFailure {
    /// The query timed out ([`super::ResolverLimits::query_timeout`]).
    Timeout,
    /// No answer before the overall deadline ([`super::ResolverLimits::overall_timeout`]).
    Deadline,
    /// The server answered SERVFAIL.
    ServFail,
    /// The server answered REFUSED.
    Refused,
    /// Another error response code (RFC 1035 §4.1.1, RFC 6895 §2.3).
    ResponseCode(u16),
    /// Transport or protocol error (connection refused, malformed answer...).
    Network,
    /// A DNS-list answer without any listing code in 127.0.0.0/8 (RFC 5782 §2.1); answers in
    /// 127.255.255.0/24 are list-side error codes (for example "query refused"), not listings.
    UnexpectedAnswer,
    /// The query name would not be a valid DNS name (zone plus reversed address too long).
    QueryName,
    /// More DNS-list zones to query than [`super::ResolverLimits::max_dnslist_queries`].
    OverLimit,
}

impl std::fmt::Display for LookupFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Timeout => f.write_str("query timed out"),
            Self::Deadline => f.write_str("no answer before the overall deadline"),
            Self::ServFail => f.write_str("SERVFAIL"),
            Self::Refused => f.write_str("REFUSED"),
            Self::ResponseCode(c) => write!(f, "response code {c}"),
            Self::Network => f.write_str("network or protocol error"),
            Self::UnexpectedAnswer => f.write_str("answer holds no DNS-list code in 127.0.0.0/8"),
            Self::QueryName => f.write_str("query name is not a valid DNS name"),
            Self::OverLimit => f.write_str("over the DNS-list query limit"),
        }
    }
}

/// The result of one lookup.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupStatus {
    /// No query was made.
    Skipped(SkipReason),
    /// Records of the asked type came back.
    Answered,
    /// The name exists but has no record of the asked type (NODATA).
    NoRecords,
    /// The name does not exist (NXDOMAIN; for a DNS list: not listed, RFC 5782 §2.1).
    NxDomain,
    /// No usable answer.
    Failed(LookupFailure),
}

impl LookupStatus {
    /// Whether a query was sent.
    pub fn queried(&self) -> bool {
        !matches!(
            self,
            Self::Skipped(_) | Self::Failed(LookupFailure::OverLimit)
        )
    }

    /// The failure, if the lookup failed.
    pub fn failure(&self) -> Option<LookupFailure> {
        match self {
            Self::Failed(f) => Some(*f),
            _ => None,
        }
    }
}

/// The PTR lookup of the client address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PtrLookup {
    /// The query name (`96.241.94.184.in-addr.arpa.`).
    pub query: String,
    /// What happened.
    pub status: LookupStatus,
    /// The PTR names kept (at most [`super::ResolverLimits::max_ptr_names`]), as answered.
    pub names: Vec<String>,
    /// PTR names beyond the limit, ignored.
    pub ignored: usize,
}

/// The forward (A for IPv4 clients, AAAA for IPv6 clients) lookup of one PTR name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardLookup {
    /// The PTR name.
    pub name: String,
    /// What happened.
    pub status: LookupStatus,
    /// The addresses kept (at most [`super::ResolverLimits::max_forward_addresses`]; the
    /// client's own address is always kept when present).
    pub addresses: Vec<IpAddr>,
    /// Addresses beyond the limit, ignored.
    pub ignored: usize,
    /// Whether one of the addresses is the client's: the name is forward-confirmed.
    pub confirmed: bool,
}

/// The reversed-address query in one DNS-list zone (RFC 5782 §2.1, §2.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsListLookup {
    /// The zone, as named in the table.
    pub zone: String,
    /// The query name (`2.0.0.127.dnsbl.test.`); empty when it could not be built.
    pub query: String,
    /// What happened.
    pub status: LookupStatus,
    /// The A records answered (the list's return codes).
    pub codes: Vec<Ipv4Addr>,
    /// Whether the client is listed: a code in 127.0.0.0/8 outside 127.255.255.0/24.
    pub listed: bool,
}

/// Every lookup the adapter made, skipped or saw fail, for one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupRecord {
    /// The PTR lookup.
    pub ptr: PtrLookup,
    /// One forward lookup per PTR name kept, in PTR answer order.
    pub forward: Vec<ForwardLookup>,
    /// One entry per DNS-list zone of the table, sorted by zone.
    pub dnslists: Vec<DnsListLookup>,
}

impl LookupRecord {
    /// Number of DNS queries sent.
    pub fn queries_sent(&self) -> usize {
        usize::from(self.ptr.status.queried())
            + self.forward.iter().filter(|f| f.status.queried()).count()
            + self.dnslists.iter().filter(|d| d.status.queried()).count()
    }

    /// Every failed lookup, with the fact it was for.
    pub fn failures(&self) -> impl Iterator<Item = (Fact<'_>, LookupFailure)> + '_ {
        let ptr = self.ptr.status.failure().map(|f| (Fact::Ptr, f));
        let forward = self
            .forward
            .iter()
            .filter_map(|l| l.status.failure().map(|f| (Fact::Ptr, f)));
        let lists = self
            .dnslists
            .iter()
            .filter_map(|l| l.status.failure().map(|f| (Fact::DnsList(&l.zone), f)));
        ptr.into_iter().chain(forward).chain(lists)
    }
}

/// A verdict reached through real DNS, with the facts gathered and the lookup record.
///
/// When a lookup fails, its fact is treated as *not answered*: no PTR names (or the name not
/// confirmed), client not listed. The verdict is then what the table gives without that fact;
/// [`Self::is_tentative`] says whether the missing fact could have changed it, so a server can
/// choose to answer with a temporary failure (`451 4.4.3`, RFC 3463 §3.5) instead of applying
/// it. This matters most for DNS *block* lists: a failed query must not silently admit a
/// listed client when the server prefers to fail closed.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedVerdict<'t> {
    pub(crate) verdict: HatVerdict<'t>,
    pub(crate) plan: LookupPlan<'t>,
    pub(crate) facts: Facts,
    pub(crate) lookups: LookupRecord,
}

impl<'t> ResolvedVerdict<'t> {
    /// The verdict from the facts that were answered.
    pub fn verdict(&self) -> &HatVerdict<'t> {
        &self.verdict
    }

    /// The verdict, dropping the rest.
    pub fn into_verdict(self) -> HatVerdict<'t> {
        self.verdict
    }

    /// The plan made before any lookup (which facts could change the verdict).
    pub fn plan(&self) -> &LookupPlan<'t> {
        &self.plan
    }

    /// The facts gathered and handed to the matcher.
    pub fn facts(&self) -> &Facts {
        &self.facts
    }

    /// Every lookup made, skipped or failed.
    pub fn lookups(&self) -> &LookupRecord {
        &self.lookups
    }

    /// Whether a failed lookup could have changed the verdict: a PTR or forward lookup failed
    /// and the verdict depends on PTR facts, or the query of a DNS-list zone the verdict
    /// depends on failed (conservative: it does not check which names could have matched).
    pub fn is_tentative(&self) -> bool {
        let ptr_failed = self.lookups.ptr.status.failure().is_some()
            || self
                .lookups
                .forward
                .iter()
                .any(|f| f.status.failure().is_some());
        if ptr_failed && self.verdict.ptr_needed() {
            return true;
        }
        self.lookups.dnslists.iter().any(|l| {
            l.status.failure().is_some()
                && self
                    .verdict
                    .dnslists_needed()
                    .binary_search(&l.zone.as_str())
                    .is_ok()
        })
    }
}
