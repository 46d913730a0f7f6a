//! The Host Access Table: sender groups in order, each naming a mail flow policy; built once,
//! validated, indexed, then immutable (share it with `Arc`).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use crate::entry::SenderEntry;
use crate::error::Error;
use crate::facts::Facts;
use crate::index::Index;
use crate::policy::{Behavior, MailFlowPolicy, check_identifier};
use crate::segments::Hit;
use crate::verdict::{GroupMatch, HatVerdict, LookupPlan};

/// Most sender groups in one table.
pub const MAX_GROUPS: usize = 10_000;
/// Most sender entries in one table (all groups together).
pub const MAX_ENTRIES: usize = 2_000_000;
/// Most mail flow policies in one table.
pub const MAX_POLICIES: usize = 10_000;

/// A sender group: a name, an order, sender entries and the name of its mail flow policy.
///
/// ```
/// use hat_match::SenderGroup;
/// let g = SenderGroup::new("CRES", 1, "TLS_REQUIRED", vec![".res.cisco.com".parse()?])?;
/// assert_eq!(g.senders()[0].as_str(), ".res.cisco.com");
/// assert!(SenderGroup::new("EMPTY", 2, "TLS_REQUIRED", vec![]).is_err());
/// # Ok::<(), hat_match::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderGroup {
    name: Box<str>,
    order: u32,
    policy: Box<str>,
    senders: Vec<SenderEntry>,
}

impl SenderGroup {
    /// A group; refuses an empty sender list and invalid names.
    pub fn new(
        name: &str,
        order: u32,
        policy: &str,
        senders: Vec<SenderEntry>,
    ) -> Result<Self, Error> {
        check_identifier(name)?;
        check_identifier(policy)?;
        if senders.is_empty() {
            return Err(Error::EmptyGroup {
                group: name.to_owned(),
            });
        }
        Ok(Self {
            name: name.into(),
            order,
            policy: policy.into(),
            senders,
        })
    }

    /// The group's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its order: lower orders are evaluated first.
    pub fn order(&self) -> u32 {
        self.order
    }

    /// The name of its mail flow policy.
    pub fn policy_name(&self) -> &str {
        &self.policy
    }

    /// Its sender entries, in configuration order.
    pub fn senders(&self) -> &[SenderEntry] {
        &self.senders
    }
}

/// The Host Access Table, validated and indexed.
///
/// ```
/// use hat_match::{Behavior, Facts, HostAccessTable, MailFlowPolicy, SenderGroup, ListenerTls};
/// let table = HostAccessTable::new(
///     vec![
///         MailFlowPolicy::new("TLS_REQUIRED", Behavior::Accept)?.with_tls(ListenerTls::Required),
///         MailFlowPolicy::new("ACCEPTED", Behavior::Accept)?.with_tls(ListenerTls::Preferred),
///     ],
///     vec![
///         SenderGroup::new("CRES", 1, "TLS_REQUIRED", vec!["208.90.57.0/26".parse()?])?,
///         SenderGroup::new("ALL", 99, "ACCEPTED", vec!["ALL".parse()?])?,
///     ],
/// )?;
/// let verdict = table.matches(&Facts::new("208.90.57.32".parse()?));
/// assert_eq!(verdict.sender_group(), Some("CRES"));
/// assert_eq!(verdict.tls(), Some(ListenerTls::Required));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct HostAccessTable {
    policies: Vec<MailFlowPolicy>,
    /// Sorted by order; a group's position here is its rank.
    groups: Vec<SenderGroup>,
    /// Rank to index in `policies`.
    group_policy: Vec<usize>,
    index: Index,
}

impl HostAccessTable {
    /// Validates (policy names unique and defined, group names and orders unique, limits) and
    /// indexes the table.
    pub fn new(policies: Vec<MailFlowPolicy>, mut groups: Vec<SenderGroup>) -> Result<Self, Error> {
        if policies.len() > MAX_POLICIES {
            return Err(Error::TooManyPolicies { max: MAX_POLICIES });
        }
        if groups.len() > MAX_GROUPS {
            return Err(Error::TooManyGroups { max: MAX_GROUPS });
        }
        if groups.iter().map(|g| g.senders.len()).sum::<usize>() > MAX_ENTRIES {
            return Err(Error::TooManyEntries { max: MAX_ENTRIES });
        }
        let mut by_name = HashMap::new();
        for (i, p) in policies.iter().enumerate() {
            if by_name.insert(p.name(), i).is_some() {
                return Err(Error::DuplicatePolicy {
                    name: p.name().to_owned(),
                });
            }
        }
        let mut names = HashSet::new();
        let mut orders: HashMap<u32, &str> = HashMap::new();
        for g in &groups {
            if !names.insert(g.name()) {
                return Err(Error::DuplicateGroup {
                    name: g.name().to_owned(),
                });
            }
            if let Some(first) = orders.insert(g.order, g.name()) {
                return Err(Error::DuplicateOrder {
                    order: g.order,
                    first: first.to_owned(),
                    second: g.name().to_owned(),
                });
            }
            if g.senders.is_empty() {
                return Err(Error::EmptyGroup {
                    group: g.name().to_owned(),
                });
            }
            if !by_name.contains_key(g.policy_name()) {
                return Err(Error::UnknownPolicy {
                    group: g.name().to_owned(),
                    policy: g.policy_name().to_owned(),
                });
            }
        }
        groups.sort_by_key(SenderGroup::order);
        let group_policy: Vec<usize> = groups.iter().map(|g| by_name[g.policy_name()]).collect();
        drop(by_name);
        let is_continue: Vec<bool> = group_policy
            .iter()
            .map(|p| policies[*p].behavior() == Behavior::Continue)
            .collect();
        let index = Index::build(&groups, is_continue);
        Ok(Self {
            policies,
            groups,
            group_policy,
            index,
        })
    }

    /// The sender groups, sorted by order.
    pub fn groups(&self) -> &[SenderGroup] {
        &self.groups
    }

    /// The mail flow policies, as given.
    pub fn policies(&self) -> &[MailFlowPolicy] {
        &self.policies
    }

    /// The mail flow policy called `name`.
    pub fn policy(&self, name: &str) -> Option<&MailFlowPolicy> {
        self.policies.iter().find(|p| p.name() == name)
    }

    /// The policy of the group at `rank` (position by order).
    pub(crate) fn policy_at(&self, rank: usize) -> &MailFlowPolicy {
        &self.policies[self.group_policy[rank]]
    }

    /// The match an index hit stands for.
    pub(crate) fn group_match(&self, hit: Hit) -> GroupMatch<'_> {
        let rank = hit.rank as usize;
        GroupMatch {
            group: &self.groups[rank],
            entry: &self.groups[rank].senders[hit.entry as usize],
            policy: self.policy_at(rank),
        }
    }

    /// Every DNS-list zone named by an entry, sorted.
    pub fn dnslist_zones(&self) -> &[Box<str>] {
        self.index.zones()
    }

    /// Total number of sender entries.
    pub fn entry_count(&self) -> usize {
        self.groups.iter().map(|g| g.senders.len()).sum()
    }

    /// Matches a client (indexed: one binary search for the address, hash lookups for names).
    ///
    /// Groups are evaluated by order; the first group with a matching entry whose policy is not
    /// `continue` wins; matching `continue` groups before it are recorded in the verdict.
    pub fn matches(&self, facts: &Facts) -> HatVerdict<'_> {
        self.index.matches(self, facts)
    }

    /// Before any lookup: which facts could change the verdict for `ip`.
    pub fn plan(&self, ip: IpAddr) -> LookupPlan<'_> {
        self.index.plan(ip.to_canonical())
    }
}
