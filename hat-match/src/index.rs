//! The fast matcher behind [`HostAccessTable::matches`]: address segments per family, hash maps
//! for exact names, suffixes (walked label by label) and DNS-list zones.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;

use crate::entry::EntryKind;
use crate::facts::Facts;
use crate::segments::{Annotation, ContLists, Hit, Interval, Segments};
use crate::table::{HostAccessTable, SenderGroup};
use crate::verdict::{HatOutcome, HatVerdict, LookupPlan};

/// Hits per key: sorted by rank, one (the first entry) per group.
type Hits = Box<[Hit]>;

#[derive(Debug, Clone)]
pub(crate) struct Index {
    v4: Segments<u32>,
    v6: Segments<u128>,
    cont_lists: ContLists,
    exact: HashMap<Box<str>, Hits>,
    suffix: HashMap<Box<str>, Hits>,
    dnslist: HashMap<Box<str>, Hits>,
    is_continue: Vec<bool>,
    /// `host_before[r]`: a group ranked below `r` has a host-name entry.
    host_before: Vec<bool>,
    /// Every zone, sorted by name.
    zones: Vec<Box<str>>,
    /// (lowest rank naming the zone, zone index), sorted by rank.
    zone_ranks: Vec<(u32, u32)>,
}

fn push_hit(map: &mut HashMap<Box<str>, Vec<Hit>>, key: &str, hit: Hit) {
    let hits = map.entry(key.into()).or_default();
    // Groups come in rank order and entries in order: keep the first entry per group.
    if hits.last().is_none_or(|h| h.rank != hit.rank) {
        hits.push(hit);
    }
}

fn freeze(map: HashMap<Box<str>, Vec<Hit>>) -> HashMap<Box<str>, Hits> {
    map.into_iter()
        .map(|(k, v)| (k, v.into_boxed_slice()))
        .collect()
}

fn rank_u32(i: usize) -> u32 {
    u32::try_from(i).expect("tables are bounded by MAX_ENTRIES")
}

impl Index {
    pub(crate) fn build(groups: &[SenderGroup], is_continue: Vec<bool>) -> Self {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        let mut exact = HashMap::new();
        let mut suffix = HashMap::new();
        let mut dnslist: HashMap<Box<str>, Vec<Hit>> = HashMap::new();
        let mut host_before = vec![false; groups.len() + 1];
        for (rank, group) in groups.iter().enumerate() {
            let cont = is_continue[rank];
            let mut has_host = false;
            for (entry, sender) in group.senders().iter().enumerate() {
                let hit = Hit {
                    rank: rank_u32(rank),
                    entry: rank_u32(entry),
                };
                let mut add = |lo: IpAddr, hi: IpAddr| match (lo, hi) {
                    (IpAddr::V4(lo), IpAddr::V4(hi)) => {
                        v4.push(Interval {
                            lo: lo.to_bits(),
                            hi: hi.to_bits(),
                            hit,
                            is_continue: cont,
                        });
                    }
                    (IpAddr::V6(lo), IpAddr::V6(hi)) => {
                        v6.push(Interval {
                            lo: lo.to_bits(),
                            hi: hi.to_bits(),
                            hit,
                            is_continue: cont,
                        });
                    }
                    _ => unreachable!("entries are parsed with one family per range"),
                };
                match sender.kind() {
                    EntryKind::All => {
                        v4.push(Interval {
                            lo: 0,
                            hi: u32::MAX,
                            hit,
                            is_continue: cont,
                        });
                        v6.push(Interval {
                            lo: 0,
                            hi: u128::MAX,
                            hit,
                            is_continue: cont,
                        });
                    }
                    EntryKind::Host(name) => {
                        has_host = true;
                        push_hit(&mut exact, name, hit);
                    }
                    EntryKind::Suffix(name) => {
                        has_host = true;
                        push_hit(&mut suffix, name, hit);
                    }
                    EntryKind::DnsList(zone) => push_hit(&mut dnslist, zone, hit),
                    _ => {
                        if let Some((lo, hi)) = sender.ip_interval() {
                            add(lo, hi);
                        }
                    }
                }
            }
            host_before[rank + 1] = host_before[rank] || has_host;
        }
        let mut cont_lists = ContLists::new();
        let v4 = Segments::build(&v4, &mut cont_lists);
        let v6 = Segments::build(&v6, &mut cont_lists);
        let mut zones: Vec<Box<str>> = dnslist.keys().cloned().collect();
        zones.sort();
        let mut zone_ranks: Vec<(u32, u32)> = zones
            .iter()
            .enumerate()
            .map(|(i, z)| (dnslist[z][0].rank, rank_u32(i)))
            .collect();
        zone_ranks.sort_unstable();
        Self {
            v4,
            v6,
            cont_lists,
            exact: freeze(exact),
            suffix: freeze(suffix),
            dnslist: freeze(dnslist),
            is_continue,
            host_before,
            zones,
            zone_ranks,
        }
    }

    pub(crate) fn zones(&self) -> &[Box<str>] {
        &self.zones
    }

    /// Number of address segments (IPv4, IPv6): a measure of index size.
    #[allow(dead_code)]
    pub(crate) fn segment_counts(&self) -> (usize, usize) {
        (self.v4.len(), self.v6.len())
    }

    fn annotation(&self, ip: IpAddr) -> Annotation {
        match ip {
            IpAddr::V4(a) => self.v4.lookup(a.to_bits()),
            IpAddr::V6(a) => self.v6.lookup(a.to_bits()),
        }
    }

    /// Zones needed when evaluation reached rank `limit` (exclusive), plus `extra`.
    fn zones_before(&self, limit: u32, extra: Option<&str>) -> Vec<&str> {
        let n = self.zone_ranks.partition_point(|(r, _)| *r < limit);
        let mut out: Vec<&str> = self.zone_ranks[..n]
            .iter()
            .map(|(_, z)| &*self.zones[*z as usize])
            .collect();
        if let Some(i) =
            extra.and_then(|zone| self.zones.binary_search_by(|z| (**z).cmp(zone)).ok())
        {
            out.push(&self.zones[i]);
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    pub(crate) fn plan(&self, ip: IpAddr) -> LookupPlan<'_> {
        let limit = self
            .annotation(ip)
            .best
            .map_or(rank_u32(self.is_continue.len()), |b| b.rank);
        LookupPlan {
            ptr: self.host_before[limit as usize],
            dnslists: self.zones_before(limit, None),
        }
    }

    pub(crate) fn matches<'t>(
        &'t self,
        table: &'t HostAccessTable,
        facts: &Facts,
    ) -> HatVerdict<'t> {
        let ann = self.annotation(facts.ip());
        let mut best = ann.best;
        let mut extra_conts: Vec<Hit> = Vec::new();
        let mut consider = |hits: Option<&Hits>| {
            for h in hits.into_iter().flat_map(|h| h.iter()) {
                if self.is_continue[h.rank as usize] {
                    extra_conts.push(*h);
                } else if best.is_none_or(|b| *h < b) {
                    best = Some(*h);
                }
            }
        };
        for name in facts.confirmed_names() {
            consider(self.exact.get(name));
            for (i, b) in name.bytes().enumerate() {
                if b == b'.' {
                    consider(self.suffix.get(&name[i + 1..]));
                }
            }
        }
        for zone in facts.dnslists() {
            consider(self.dnslist.get(zone));
        }
        let limit = best.map_or(rank_u32(self.is_continue.len()), |b| b.rank);
        let seg_conts = self.cont_lists.get(ann.cont);
        // The segment's list is sorted by rank, one hit per group: a borrowed prefix of it
        // needs no allocation (the address-only hot path).
        let continued = if extra_conts.is_empty() {
            Cow::Borrowed(&seg_conts[..seg_conts.partition_point(|h| h.rank < limit)])
        } else {
            extra_conts.extend_from_slice(seg_conts);
            extra_conts.sort_unstable();
            extra_conts.dedup_by_key(|h| h.rank);
            extra_conts.retain(|h| h.rank < limit);
            Cow::Owned(extra_conts)
        };
        let outcome = best.map_or(HatOutcome::NoSenderGroupMatched, |b| {
            HatOutcome::Matched(table.group_match(b))
        });
        let (ptr_hit, zone_hit) = match outcome {
            HatOutcome::Matched(m) => match m.entry.kind() {
                EntryKind::Host(_) | EntryKind::Suffix(_) => (true, None),
                EntryKind::DnsList(z) => (false, Some(&**z)),
                _ => (false, None),
            },
            HatOutcome::NoSenderGroupMatched => (false, None),
        };
        HatVerdict {
            outcome,
            table: Some(table),
            continued,
            ptr_needed: ptr_hit || self.host_before[limit as usize],
            dnslists_needed: self.zones_before(limit, zone_hit),
            all_zones: &self.zones,
        }
    }
}
