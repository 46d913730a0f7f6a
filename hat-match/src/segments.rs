//! Disjoint address segments: every address-like entry of one family turned into an interval,
//! the intervals cut into disjoint segments, each annotated with its best final hit and the
//! continue-group hits before it. A lookup is one binary search.

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A matching entry: the group's rank (position by order) and the entry's position in the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Hit {
    pub(crate) rank: u32,
    pub(crate) entry: u32,
}

/// An address family's key: `u32` for IPv4, `u128` for IPv6.
pub(crate) trait Key: Copy + Ord {
    /// The lowest key.
    const MIN: Self;
    /// The next key, `None` at the top.
    fn succ(self) -> Option<Self>;
    /// The top `bits` bits (1..=16) of the key: its bucket.
    fn bucket(self, bits: u32) -> usize;
    /// The first key of bucket `b`.
    fn bucket_start(b: usize, bits: u32) -> Self;
}

impl Key for u32 {
    const MIN: Self = 0;
    fn succ(self) -> Option<Self> {
        self.checked_add(1)
    }
    fn bucket(self, bits: u32) -> usize {
        (self >> (32 - bits)) as usize
    }
    fn bucket_start(b: usize, bits: u32) -> Self {
        (b as Self) << (32 - bits)
    }
}

impl Key for u128 {
    const MIN: Self = 0;
    fn succ(self) -> Option<Self> {
        self.checked_add(1)
    }
    fn bucket(self, bits: u32) -> usize {
        (self >> (128 - bits)) as usize
    }
    fn bucket_start(b: usize, bits: u32) -> Self {
        (b as Self) << (128 - bits)
    }
}

/// What is known about every address of one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Annotation {
    /// The lowest (rank, entry) of a non-continue group covering the segment.
    pub(crate) best: Option<Hit>,
    /// Index of the list of continue-group hits (one per group, ranks below `best`).
    pub(crate) cont: u32,
}

/// The segments of one family.
#[derive(Debug, Clone)]
pub(crate) struct Segments<K> {
    starts: Vec<K>,
    annotations: Vec<Annotation>,
    /// Bits of the key used to pick a bucket (about log2 of the segment count, at most 16).
    bits: u32,
    /// `buckets[b]`: index of the first segment starting at or after bucket `b`'s first key;
    /// a lookup binary-searches only its bucket's few segments, so its cost stays flat.
    buckets: Vec<u32>,
}

/// An interval of one family with the hit it stands for and whether its group is `continue`.
pub(crate) struct Interval<K> {
    pub(crate) lo: K,
    pub(crate) hi: K,
    pub(crate) hit: Hit,
    pub(crate) is_continue: bool,
}

/// Interned continue lists shared by both families; list 0 is the empty list.
#[derive(Debug, Clone)]
pub(crate) struct ContLists {
    lists: Vec<Box<[Hit]>>,
    ids: HashMap<Box<[Hit]>, u32>,
}

impl ContLists {
    pub(crate) fn new() -> Self {
        let empty: Box<[Hit]> = Box::new([]);
        Self {
            lists: vec![empty.clone()],
            ids: HashMap::from([(empty, 0)]),
        }
    }

    fn intern(&mut self, list: &[Hit]) -> u32 {
        if list.is_empty() {
            return 0;
        }
        if let Some(id) = self.ids.get(list) {
            return *id;
        }
        let id = u32::try_from(self.lists.len()).expect("fewer continue lists than segments");
        let list: Box<[Hit]> = list.into();
        self.lists.push(list.clone());
        self.ids.insert(list, id);
        id
    }

    pub(crate) fn get(&self, id: u32) -> &[Hit] {
        &self.lists[id as usize]
    }
}

impl<K: Key> Segments<K> {
    /// Sweeps the intervals into disjoint segments.
    pub(crate) fn build(intervals: &[Interval<K>], cont_lists: &mut ContLists) -> Self {
        // (point, is_start, interval index); at equal points ends (false) come first.
        let mut events: Vec<(K, bool, usize)> = Vec::with_capacity(intervals.len() * 2);
        for (i, iv) in intervals.iter().enumerate() {
            events.push((iv.lo, true, i));
            if let Some(end) = iv.hi.succ() {
                events.push((end, false, i));
            }
        }
        events.sort_unstable();
        let mut finals: BTreeSet<Hit> = BTreeSet::new();
        let mut conts: BTreeMap<u32, BTreeSet<u32>> = BTreeMap::new();
        let mut starts = vec![K::MIN];
        let mut annotations = vec![Annotation {
            best: None,
            cont: 0,
        }];
        let mut list: Vec<Hit> = Vec::new();
        let mut e = 0;
        while e < events.len() {
            let point = events[e].0;
            while e < events.len() && events[e].0 == point {
                let (_, is_start, i) = events[e];
                let iv = &intervals[i];
                match (iv.is_continue, is_start) {
                    (false, true) => {
                        finals.insert(iv.hit);
                    }
                    (false, false) => {
                        finals.remove(&iv.hit);
                    }
                    (true, true) => {
                        conts.entry(iv.hit.rank).or_default().insert(iv.hit.entry);
                    }
                    (true, false) => {
                        if let Some(set) = conts.get_mut(&iv.hit.rank) {
                            set.remove(&iv.hit.entry);
                            if set.is_empty() {
                                conts.remove(&iv.hit.rank);
                            }
                        }
                    }
                }
                e += 1;
            }
            let best = finals.first().copied();
            let limit = best.map_or(u32::MAX, |b| b.rank);
            list.clear();
            list.extend(conts.range(..limit).filter_map(|(rank, set)| {
                set.first().map(|entry| Hit {
                    rank: *rank,
                    entry: *entry,
                })
            }));
            let annotation = Annotation {
                best,
                cont: cont_lists.intern(&list),
            };
            let last = annotations.len() - 1;
            if annotations[last] == annotation {
                continue;
            }
            if starts[last] == point {
                annotations[last] = annotation;
                // Merging may now make it equal to its predecessor.
                if last > 0 && annotations[last - 1] == annotation {
                    starts.pop();
                    annotations.pop();
                }
            } else {
                starts.push(point);
                annotations.push(annotation);
            }
        }
        starts.shrink_to_fit();
        annotations.shrink_to_fit();
        let bits = (usize::BITS - starts.len().leading_zeros()).clamp(1, 16);
        let buckets = (0..=(1usize << bits))
            .map(|b| {
                let first = if b == 1 << bits {
                    starts.len()
                } else {
                    starts.partition_point(|s| *s < K::bucket_start(b, bits))
                };
                u32::try_from(first).expect("segments are bounded by MAX_ENTRIES")
            })
            .collect();
        Self {
            starts,
            annotations,
            bits,
            buckets,
        }
    }

    /// The annotation of the segment holding `key`.
    #[inline]
    pub(crate) fn lookup(&self, key: K) -> Annotation {
        let b = key.bucket(self.bits);
        // The segment holding the bucket's first key starts at or before it (starts[0] is
        // K::MIN), so `starts[lo] <= key` and the partition point below is at least 1.
        let lo = (self.buckets[b] as usize).saturating_sub(1);
        let hi = self.buckets[b + 1] as usize;
        let i = lo + self.starts[lo..hi].partition_point(|s| *s <= key);
        self.annotations[i - 1]
    }

    /// Number of segments.
    pub(crate) fn len(&self) -> usize {
        self.starts.len()
    }
}
