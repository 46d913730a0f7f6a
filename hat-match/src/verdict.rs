//! What the matcher decides, and what it tells a server before any DNS lookup.

use std::borrow::Cow;

use crate::entry::SenderEntry;
use crate::policy::{Behavior, ListenerTls, MailFlowPolicy};
use crate::segments::Hit;
use crate::table::{HostAccessTable, SenderGroup};

/// A sender group that matched, with the entry that matched and the group's policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupMatch<'t> {
    pub(crate) group: &'t SenderGroup,
    pub(crate) entry: &'t SenderEntry,
    pub(crate) policy: &'t MailFlowPolicy,
}

impl<'t> GroupMatch<'t> {
    /// The sender group.
    pub fn group(&self) -> &'t SenderGroup {
        self.group
    }

    /// The first entry of the group (in configuration order) that matched.
    pub fn entry(&self) -> &'t SenderEntry {
        self.entry
    }

    /// The group's mail flow policy.
    pub fn policy(&self) -> &'t MailFlowPolicy {
        self.policy
    }
}

/// How evaluation ended.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HatOutcome<'t> {
    /// No group with a final behavior (anything but `continue`) matched: the table has no `ALL`
    /// group, or it is a `continue` group. A server treats this as [`Behavior::Reject`]
    /// (fail closed); it is the default.
    #[default]
    NoSenderGroupMatched,
    /// The first group (by order) with a final behavior that matched.
    Matched(GroupMatch<'t>),
}

/// A fact the matcher may use, named for "facts it did not need" and lookup plans.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fact<'t> {
    /// The client's PTR names and their forward lookups.
    Ptr,
    /// The client's reversed-IP query in this DNS-list zone.
    DnsList(&'t str),
}

/// The verdict for one client.
///
/// It borrows the table it came from: on the address-only path it allocates nothing (the
/// `continue` matches are a slice of the index, see [`HatVerdict::continued`]).
#[must_use]
#[derive(Clone, Default)]
pub struct HatVerdict<'t> {
    pub(crate) outcome: HatOutcome<'t>,
    /// The table the hits refer to (`None` only for the default verdict, with no hits).
    pub(crate) table: Option<&'t HostAccessTable>,
    /// `continue` hits before the winner, sorted by rank, one per group: borrowed from the
    /// index on the address-only path, owned when names or DNS lists added some.
    pub(crate) continued: Cow<'t, [Hit]>,
    pub(crate) ptr_needed: bool,
    pub(crate) dnslists_needed: Vec<&'t str>,
    pub(crate) all_zones: &'t [Box<str>],
}

impl<'t> HatVerdict<'t> {
    /// How evaluation ended.
    pub fn outcome(&self) -> HatOutcome<'t> {
        self.outcome
    }

    /// The winning match, if any.
    pub fn matched(&self) -> Option<GroupMatch<'t>> {
        match self.outcome {
            HatOutcome::Matched(m) => Some(m),
            HatOutcome::NoSenderGroupMatched => None,
        }
    }

    /// The winning sender group's name.
    pub fn sender_group(&self) -> Option<&'t str> {
        self.matched().map(|m| m.group.name())
    }

    /// The winning sender group's order.
    pub fn order(&self) -> Option<u32> {
        self.matched().map(|m| m.group.order())
    }

    /// The entry that matched, in its configuration spelling.
    pub fn matched_entry(&self) -> Option<&'t SenderEntry> {
        self.matched().map(|m| m.entry)
    }

    /// The winning group's mail flow policy.
    pub fn policy(&self) -> Option<&'t MailFlowPolicy> {
        self.matched().map(|m| m.policy)
    }

    /// What to do with the connection: the policy's behavior, or [`Behavior::Reject`] when no
    /// group matched.
    pub fn behavior(&self) -> Behavior {
        self.policy()
            .map_or(Behavior::Reject, MailFlowPolicy::behavior)
    }

    /// The TLS setting, when a group matched.
    pub fn tls(&self) -> Option<ListenerTls> {
        self.policy().map(MailFlowPolicy::tls)
    }

    /// `continue` groups that matched before the winner, in order.
    pub fn continued(&self) -> ContinuedMatches<'_, 't> {
        ContinuedMatches {
            table: self.table,
            hits: &self.continued,
        }
    }

    /// Whether PTR facts were needed to reach this verdict (a host-name entry matched, or a
    /// group evaluated before the winner holds host-name entries).
    pub fn ptr_needed(&self) -> bool {
        self.ptr_needed
    }

    /// DNS-list zones whose answers were needed to reach this verdict, sorted.
    pub fn dnslists_needed(&self) -> &[&'t str] {
        &self.dnslists_needed
    }

    /// The facts this verdict did not need: gathering them would not have changed it.
    pub fn facts_not_needed(&self) -> impl Iterator<Item = Fact<'t>> + '_ {
        let ptr = (!self.ptr_needed).then_some(Fact::Ptr);
        let zones = self
            .all_zones
            .iter()
            .filter(|z| self.dnslists_needed.binary_search(&&***z).is_err())
            .map(|z| Fact::DnsList(z));
        ptr.into_iter().chain(zones)
    }
}

impl PartialEq for HatVerdict<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.outcome == other.outcome
            && self.continued().iter().eq(other.continued().iter())
            && self.ptr_needed == other.ptr_needed
            && self.dnslists_needed == other.dnslists_needed
            && self.all_zones == other.all_zones
    }
}

impl Eq for HatVerdict<'_> {}

impl std::fmt::Debug for HatVerdict<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HatVerdict")
            .field("outcome", &self.outcome)
            .field("continued", &self.continued())
            .field("ptr_needed", &self.ptr_needed)
            .field("dnslists_needed", &self.dnslists_needed)
            .field("all_zones", &self.all_zones)
            .finish()
    }
}

/// The `continue` groups that matched before the winner ([`HatVerdict::continued`]), in order: a
/// borrowed view that builds each [`GroupMatch`] on demand (no allocation).
///
/// ```
/// use hat_match::{Facts, HostAccessTable};
/// let table = HostAccessTable::from_toml("inline.toml", r#"
/// [[mail_flow_policy]]
/// name = "AUDIT"
/// behavior = "continue"
/// [[mail_flow_policy]]
/// name = "ACCEPTED"
/// behavior = "accept"
/// [[sender_group]]
/// name = "PARTNER_AUDIT"
/// order = 1
/// policy = "AUDIT"
/// senders = ["192.0.2.0/24"]
/// [[sender_group]]
/// name = "ALL"
/// order = 2
/// policy = "ACCEPTED"
/// senders = ["ALL"]
/// "#)?;
/// let verdict = table.matches(&Facts::new("192.0.2.7".parse()?));
/// let continued = verdict.continued();
/// assert_eq!(continued.len(), 1);
/// assert_eq!(continued.iter().map(|m| m.group().name()).collect::<Vec<_>>(), ["PARTNER_AUDIT"]);
/// assert_eq!(verdict.sender_group(), Some("ALL"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy)]
pub struct ContinuedMatches<'v, 't> {
    table: Option<&'t HostAccessTable>,
    hits: &'v [Hit],
}

impl<'v, 't> ContinuedMatches<'v, 't> {
    /// How many `continue` groups matched.
    pub fn len(&self) -> usize {
        self.hits.len()
    }

    /// Whether no `continue` group matched.
    pub fn is_empty(&self) -> bool {
        self.hits.is_empty()
    }

    /// The `i`-th `continue` match (by order).
    pub fn get(&self, i: usize) -> Option<GroupMatch<'t>> {
        let table = self.table?;
        self.hits.get(i).map(|h| table.group_match(*h))
    }

    /// The `continue` matches, by order.
    pub fn iter(&self) -> ContinuedIter<'v, 't> {
        ContinuedIter {
            table: self.table,
            hits: self.hits.iter(),
        }
    }
}

impl<'v, 't> IntoIterator for ContinuedMatches<'v, 't> {
    type Item = GroupMatch<'t>;
    type IntoIter = ContinuedIter<'v, 't>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl std::fmt::Debug for ContinuedMatches<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Iterator over [`ContinuedMatches`].
#[derive(Clone)]
pub struct ContinuedIter<'v, 't> {
    table: Option<&'t HostAccessTable>,
    hits: std::slice::Iter<'v, Hit>,
}

impl<'t> Iterator for ContinuedIter<'_, 't> {
    type Item = GroupMatch<'t>;

    fn next(&mut self) -> Option<GroupMatch<'t>> {
        let hit = self.hits.next()?;
        // `hits` is empty whenever `table` is `None` (the default verdict).
        self.table.map(|t| t.group_match(*hit))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.hits.size_hint()
    }
}

impl<'t> DoubleEndedIterator for ContinuedIter<'_, 't> {
    fn next_back(&mut self) -> Option<GroupMatch<'t>> {
        let hit = self.hits.next_back()?;
        self.table.map(|t| t.group_match(*hit))
    }
}

impl ExactSizeIterator for ContinuedIter<'_, '_> {}

/// Which facts could still change the verdict for a client address, before any lookup.
///
/// A server uses it to skip DNS work: when an address entry of the first group already
/// matches, neither PTR nor DNS-list lookups can change the verdict.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LookupPlan<'t> {
    pub(crate) ptr: bool,
    pub(crate) dnslists: Vec<&'t str>,
}

impl<'t> LookupPlan<'t> {
    /// Whether PTR names (and their forward lookups) could change the verdict.
    pub fn needs_ptr(&self) -> bool {
        self.ptr
    }

    /// DNS-list zones whose answer could change the verdict, sorted.
    pub fn dnslists(&self) -> &[&'t str] {
        &self.dnslists
    }

    /// Whether the address alone decides the verdict.
    pub fn address_decides(&self) -> bool {
        !self.ptr && self.dnslists.is_empty()
    }

    /// Every fact worth gathering.
    pub fn facts(&self) -> impl Iterator<Item = Fact<'t>> + '_ {
        self.ptr
            .then_some(Fact::Ptr)
            .into_iter()
            .chain(self.dnslists.iter().map(|z| Fact::DnsList(z)))
    }
}
