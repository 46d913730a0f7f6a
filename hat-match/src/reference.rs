//! The reference matcher: a plain linear scan over the groups in order, written to be obviously
//! right rather than fast. Property tests and the benchmark compare the indexed matcher
//! ([`HostAccessTable::matches`]) against it; use it to check a table by hand, not in a server.

use std::borrow::Cow;
use std::net::IpAddr;

use crate::entry::{EntryKind, SenderEntry};
use crate::facts::Facts;
use crate::policy::Behavior;
use crate::segments::Hit;
use crate::table::HostAccessTable;
use crate::verdict::{HatOutcome, HatVerdict, LookupPlan};

/// Whether `entry` matches the client described by `facts`.
pub fn entry_matches(entry: &SenderEntry, facts: &Facts) -> bool {
    match entry.kind() {
        EntryKind::Host(_) | EntryKind::Suffix(_) => {
            facts.confirmed_names().any(|name| entry.matches_name(name))
        }
        EntryKind::DnsList(zone) => facts.dnslists().any(|z| z == &**zone),
        _ => entry.matches_ip(facts.ip()),
    }
}

/// Matches `facts` against `table` by scanning every group and entry in order.
///
/// ```
/// use hat_match::{Facts, HostAccessTable, reference};
/// let table = HostAccessTable::from_toml("inline.toml", r#"
/// [[mail_flow_policy]]
/// name = "BLOCKED"
/// behavior = "reject"
/// [[sender_group]]
/// name = "BLOCKLIST"
/// order = 1
/// policy = "BLOCKED"
/// senders = ["192.0.2.0/24"]
/// "#)?;
/// let facts = Facts::new("192.0.2.7".parse()?);
/// assert_eq!(reference::matches(&table, &facts), table.matches(&facts));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn matches<'t>(table: &'t HostAccessTable, facts: &Facts) -> HatVerdict<'t> {
    let mut continued = Vec::new();
    let mut outcome = HatOutcome::NoSenderGroupMatched;
    let mut evaluated = 0;
    for (rank, group) in table.groups().iter().enumerate() {
        let Some(entry) = group.senders().iter().position(|e| entry_matches(e, facts)) else {
            evaluated = rank + 1;
            continue;
        };
        let hit = Hit {
            rank: u32::try_from(rank).expect("tables are bounded by MAX_GROUPS"),
            entry: u32::try_from(entry).expect("tables are bounded by MAX_ENTRIES"),
        };
        if table.policy_at(rank).behavior() == Behavior::Continue {
            continued.push(hit);
            evaluated = rank + 1;
        } else {
            outcome = HatOutcome::Matched(table.group_match(hit));
            evaluated = rank;
            break;
        }
    }
    let (mut ptr_needed, mut dnslists_needed) = facts_used(table, evaluated);
    if let HatOutcome::Matched(m) = outcome {
        match m.entry.kind() {
            EntryKind::Host(_) | EntryKind::Suffix(_) => ptr_needed = true,
            EntryKind::DnsList(zone) => dnslists_needed.push(&**zone),
            _ => {}
        }
    }
    dnslists_needed.sort_unstable();
    dnslists_needed.dedup();
    HatVerdict {
        outcome,
        table: Some(table),
        continued: Cow::Owned(continued),
        ptr_needed,
        dnslists_needed,
        all_zones: table.dnslist_zones(),
    }
}

/// Which facts the first `groups` groups (by order) depend on.
fn facts_used(table: &HostAccessTable, groups: usize) -> (bool, Vec<&str>) {
    let mut ptr = false;
    let mut zones = Vec::new();
    for group in &table.groups()[..groups] {
        for entry in group.senders() {
            match entry.kind() {
                EntryKind::Host(_) | EntryKind::Suffix(_) => ptr = true,
                EntryKind::DnsList(zone) => zones.push(&**zone),
                _ => {}
            }
        }
    }
    (ptr, zones)
}

/// Before any lookup: which facts could change the verdict for `ip`, by linear scan.
pub fn plan(table: &HostAccessTable, ip: IpAddr) -> LookupPlan<'_> {
    let facts = Facts::new(ip);
    let winner = table.groups().iter().enumerate().position(|(rank, group)| {
        table.policy_at(rank).behavior() != Behavior::Continue
            && group.senders().iter().any(|e| entry_matches(e, &facts))
    });
    let (ptr, mut dnslists) = facts_used(table, winner.unwrap_or(table.groups().len()));
    dnslists.sort_unstable();
    dnslists.dedup();
    LookupPlan { ptr, dnslists }
}
