//! Where every spooled message lives, and which files a commit batch must write and unlink:
//! the sans-IO half of the spool. [`Index::plan`] decides a batch; the committer does the I/O
//! and hands the results to [`Index::apply`].
//!
//! # Segments
//! Batches are appended to the **active** (newest) segment; past
//! [`ROTATE_BYTES`](super::file::ROTATE_BYTES), after a failed append, or after a restart
//! a new segment is started and the old one is closed.
//!
//! # Removing messages from segments
//! A finished message cannot be cut out of its segment. Instead:
//! - if every live message of a closed segment is finished in this batch (and no tombstone in
//!   the segment is still needed), the segment is **unlinked**;
//! - otherwise a **tombstone** `D <seg> <id>` is appended to the active segment. A closed
//!   segment is unlinked once its last live message is finished, and a segment holding
//!   tombstones is unlinked only after every segment its tombstones point at is gone **durably**
//!   (one batch later, after that batch's directory fsync): a crash can never resurrect a
//!   finished message because its tombstone vanished first. A tombstone for a message of its
//!   own segment needs nothing: both go together.
//!
//! An envelope overlay of a finished message is unlinked before its segment when the segment
//! is dropped, or one batch after its tombstone is durable.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::file::{ROTATE_BYTES, SegNo};
use crate::envelope::MessageId;
use crate::error::RelayError;

/// Where a live message's body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Loc {
    pub(crate) seg: SegNo,
    pub(crate) body_offset: u64,
    pub(crate) body_len: u64,
}

/// One operation of a batch, as the index sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Want<'a> {
    Accept { id: &'a MessageId, body_len: u64 },
    Update { id: &'a MessageId },
    Remove { id: &'a MessageId },
}

/// A record of the batch's new segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PlanRecord {
    /// The message of operation `op`.
    Msg { op: usize },
    /// A tombstone.
    Done { seg: SegNo, id: MessageId },
}

/// A file to unlink.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Unlink {
    Overlay(MessageId),
    Segment(SegNo),
}

/// What an operation's success depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Its record in the new segment (an accept, or a tombstone).
    Segment,
    /// Its overlay write (an update), the `n`-th of the plan.
    Overlay(usize),
    /// The unlink of its segment (a removal that empties the segment).
    Drop(SegNo),
    /// Nothing to do (removal of a message not in the spool).
    Nothing,
    /// Refused: an update of a message not in the spool.
    Unknown,
}

/// Where a batch's records go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// Appended to the active segment.
    Append(SegNo),
    /// Into a new segment, which becomes the active one.
    Create(SegNo),
}

impl Target {
    /// The segment number.
    pub(crate) fn no(self) -> SegNo {
        match self {
            Self::Append(no) | Self::Create(no) => no,
        }
    }
}

/// The I/O a batch needs, in order: write the records, write the overlays, unlink, fsync the
/// directory (only if there were overlays or unlinks).
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// Where the records go, and the records (none if the batch adds no record).
    pub(crate) segment: Option<(Target, Vec<PlanRecord>)>,
    /// Operations whose overlay is written, in order.
    pub(crate) overlays: Vec<usize>,
    /// Files to unlink, in order.
    pub(crate) unlinks: Vec<Unlink>,
    fates: Vec<Fate>,
}

impl Plan {
    /// Whether the batch has no I/O at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.segment.is_none() && self.overlays.is_empty() && self.unlinks.is_empty()
    }
}

/// What the I/O of a plan did.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// The records: body offsets of the message records, in order, and the segment's new
    /// length.
    pub(crate) segment: Result<(Vec<u64>, u64), RelayError>,
    /// One result per overlay of the plan.
    pub(crate) overlays: Vec<Result<(), RelayError>>,
    /// One result per unlink of the plan.
    pub(crate) unlinks: Vec<Result<(), RelayError>>,
    /// The directory fsync.
    pub(crate) dir: Result<(), RelayError>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Seg {
    /// Live messages stored in it.
    live: usize,
    /// Its tombstones still needed: target segment → count.
    tombs: BTreeMap<SegNo, usize>,
}

/// A record found in a segment at recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Found {
    Msg { id: MessageId, loc: Loc },
    Done { seg: SegNo, id: MessageId },
}

/// The spool's bookkeeping.
#[derive(Debug, Default)]
pub(crate) struct Index {
    live: HashMap<MessageId, Loc>,
    overlays: HashSet<MessageId>,
    segs: BTreeMap<SegNo, Seg>,
    /// Target segment → segments holding tombstones for it.
    referrers: HashMap<SegNo, BTreeSet<SegNo>>,
    /// Unlinks for the next batch (their preconditions became durable in an earlier one).
    deferred: Vec<Unlink>,
    next_seg: SegNo,
    /// The segment batches are appended to, and its length.
    active: Option<(SegNo, u64)>,
}

impl Index {
    /// Rebuilds the index from the records of every segment on disk (in any order) and the
    /// ids that have an envelope overlay. A message stored twice (a salvage repeated after a
    /// crash) is taken from its newest segment. Segments with nothing left to keep are queued
    /// for unlinking.
    pub(crate) fn rebuild(segments: &BTreeMap<SegNo, Vec<Found>>, overlays: &[MessageId]) -> Self {
        let mut ix = Self {
            next_seg: segments.keys().next_back().map_or(1, |n| n + 1),
            ..Self::default()
        };
        let dead: HashSet<(SegNo, &MessageId)> = segments
            .values()
            .flatten()
            .filter_map(|f| match f {
                Found::Done { seg, id } => Some((*seg, id)),
                Found::Msg { .. } => None,
            })
            .collect();
        let stored: HashSet<(SegNo, &MessageId)> = segments
            .iter()
            .flat_map(|(no, recs)| recs.iter().map(move |r| (*no, r)))
            .filter_map(|(no, f)| match f {
                Found::Msg { id, .. } => Some((no, id)),
                Found::Done { .. } => None,
            })
            .collect();
        for (&no, recs) in segments {
            let seg = ix.segs.entry(no).or_default();
            for f in recs {
                if let Found::Done { seg: target, id } = f
                    && *target != no
                    && stored.contains(&(*target, id))
                {
                    *seg.tombs.entry(*target).or_default() += 1;
                    ix.referrers.entry(*target).or_default().insert(no);
                }
            }
            for f in recs {
                if let Found::Msg { id, loc } = f
                    && !dead.contains(&(no, id))
                {
                    // Newest copy wins (segments are visited in ascending order).
                    if let Some(old) = ix.live.insert(id.clone(), *loc)
                        && let Some(s) = ix.segs.get_mut(&old.seg)
                    {
                        s.live -= 1;
                    }
                    ix.segs.entry(no).or_default().live += 1;
                }
            }
        }
        ix.overlays = overlays
            .iter()
            .filter(|id| ix.live.contains_key(*id))
            .cloned()
            .collect();
        ix.deferred = ix
            .segs
            .iter()
            .filter(|(_, s)| s.live == 0 && s.tombs.is_empty())
            .map(|(no, _)| Unlink::Segment(*no))
            .collect();
        ix
    }

    /// Where a live message's body is.
    pub(crate) fn locate(&self, id: &MessageId) -> Option<Loc> {
        self.live.get(id).copied()
    }

    /// Every live message and where its body is.
    pub(crate) fn live(&self) -> impl Iterator<Item = (&MessageId, Loc)> + '_ {
        self.live.iter().map(|(id, loc)| (id, *loc))
    }

    /// Live messages.
    pub(crate) fn len(&self) -> usize {
        self.live.len()
    }

    /// Segment files the spool keeps.
    #[cfg(test)]
    pub(crate) fn segments(&self) -> impl Iterator<Item = SegNo> + '_ {
        self.segs.keys().copied()
    }

    /// Whether unlinks are waiting for a batch.
    pub(crate) fn has_deferred(&self) -> bool {
        !self.deferred.is_empty()
    }

    /// Decides the I/O of a batch. At most one operation per message.
    pub(crate) fn plan(&mut self, ops: &[Want<'_>]) -> Plan {
        let mut plan = Plan {
            unlinks: std::mem::take(&mut self.deferred),
            ..Plan::default()
        };
        let mut records = Vec::new();
        let mut removing: BTreeMap<SegNo, Vec<(usize, &MessageId)>> = BTreeMap::new();
        for (i, want) in ops.iter().enumerate() {
            let fate = match *want {
                Want::Accept { .. } => {
                    records.push(PlanRecord::Msg { op: i });
                    Fate::Segment
                }
                Want::Update { id } if self.live.contains_key(id) => {
                    plan.overlays.push(i);
                    Fate::Overlay(plan.overlays.len() - 1)
                }
                Want::Update { .. } => Fate::Unknown,
                Want::Remove { id } => match self.live.get(id) {
                    Some(loc) => {
                        removing.entry(loc.seg).or_default().push((i, id));
                        Fate::Nothing // decided below
                    }
                    None => Fate::Nothing,
                },
            };
            plan.fates.push(fate);
        }
        let active = self.active.map(|(no, _)| no);
        for (seg, ids) in removing {
            let s = &self.segs[&seg];
            if Some(seg) != active && s.live == ids.len() && s.tombs.is_empty() {
                for &(i, id) in &ids {
                    plan.fates[i] = Fate::Drop(seg);
                    if self.overlays.contains(id) {
                        plan.unlinks.push(Unlink::Overlay(id.clone()));
                    }
                }
                plan.unlinks.push(Unlink::Segment(seg));
            } else {
                for (i, id) in ids {
                    plan.fates[i] = Fate::Segment;
                    records.push(PlanRecord::Done {
                        seg,
                        id: id.clone(),
                    });
                }
            }
        }
        if !records.is_empty() {
            let target = match self.active {
                Some((no, len)) if len < ROTATE_BYTES => Target::Append(no),
                _ => {
                    self.next_seg += 1;
                    Target::Create(self.next_seg - 1)
                }
            };
            plan.segment = Some((target, records));
        }
        plan
    }

    /// Records what the I/O of `plan` did; returns one result per operation of `ops` (the
    /// same slice that was planned). A failed directory fsync fails every operation, though the
    /// index follows what the system calls did.
    pub(crate) fn apply(
        &mut self,
        ops: &[Want<'_>],
        plan: Plan,
        outcome: Outcome,
    ) -> Vec<Result<(), RelayError>> {
        let unlinked: HashMap<&Unlink, &Result<(), RelayError>> =
            plan.unlinks.iter().zip(&outcome.unlinks).collect();
        match (&plan.segment, &outcome.segment) {
            (Some((target, records)), Ok((offsets, len))) => {
                if let Target::Create(_) = target {
                    self.close_active();
                }
                let no = target.no();
                self.active = Some((no, *len));
                let mut offsets = offsets.iter();
                let mut seg = self.segs.remove(&no).unwrap_or_default();
                for r in records {
                    match r {
                        PlanRecord::Msg { op } => {
                            if let (Want::Accept { id, body_len }, Some(&body_offset)) =
                                (ops[*op], offsets.next())
                            {
                                let loc = Loc {
                                    seg: no,
                                    body_offset,
                                    body_len,
                                };
                                self.live.insert(id.clone(), loc);
                                seg.live += 1;
                            }
                        }
                        PlanRecord::Done { seg: target, .. } if *target != no => {
                            *seg.tombs.entry(*target).or_default() += 1;
                            self.referrers.entry(*target).or_default().insert(no);
                        }
                        PlanRecord::Done { .. } => {} // its own message: nothing to keep
                    }
                }
                self.segs.insert(no, seg);
                for r in records {
                    if let PlanRecord::Done { id, .. } = r {
                        self.finish(id, true);
                    }
                }
            }
            // A failed write: never append to that segment again.
            (Some(_), Err(_)) => self.close_active(),
            (None, _) => {}
        }
        let mut results = Vec::with_capacity(ops.len());
        for (want, fate) in ops.iter().zip(&plan.fates) {
            results.push(match *fate {
                Fate::Segment => outcome.segment.as_ref().map(|_| ()).map_err(Clone::clone),
                Fate::Overlay(n) => outcome.overlays[n].clone(),
                Fate::Drop(no) => match unlinked.get(&Unlink::Segment(no)) {
                    Some(Ok(())) => {
                        if let Want::Remove { id } = want {
                            self.finish(id, false);
                        }
                        Ok(())
                    }
                    Some(Err(e)) => Err((*e).clone()),
                    None => Err(RelayError::CommitterStopped),
                },
                Fate::Nothing => Ok(()),
                Fate::Unknown => Err(RelayError::UnknownMessage {
                    id: match want {
                        Want::Accept { id, .. } | Want::Update { id } | Want::Remove { id } => {
                            id.to_string()
                        }
                    },
                }),
            });
        }
        for (u, r) in &unlinked {
            match (u, r) {
                (Unlink::Overlay(id), Ok(())) => {
                    self.overlays.remove(id);
                }
                // A deferred segment, or one dropped above (all its messages finished).
                (Unlink::Segment(no), Ok(())) => self.forget_segment(*no),
                (u, Err(e)) => {
                    tracing::warn!(file = ?u, error = %e, "spool: unlink failed (retried at restart)");
                }
            }
        }
        if let Err(e) = &outcome.dir {
            for r in &mut results {
                if r.is_ok() {
                    *r = Err(e.clone());
                }
            }
        }
        results
    }

    /// A message is finished: it leaves the live set. Its overlay is unlinked next batch (a
    /// dropped segment's overlays were unlinked with it), and so is its segment if nothing in it
    /// is needed any more (`defer_segment`: not when the segment was just dropped).
    fn finish(&mut self, id: &MessageId, defer_segment: bool) {
        let active = self.active.map(|(no, _)| no);
        if let Some(loc) = self.live.remove(id) {
            if let Some(s) = self.segs.get_mut(&loc.seg) {
                s.live -= 1;
                if defer_segment && Some(loc.seg) != active && s.live == 0 && s.tombs.is_empty() {
                    self.deferred.push(Unlink::Segment(loc.seg));
                }
            }
            if defer_segment && self.overlays.remove(id) {
                self.deferred.push(Unlink::Overlay(id.clone()));
            }
        }
    }

    /// The active segment is closed: from now on it can be unlinked once nothing in it is
    /// needed.
    fn close_active(&mut self) {
        if let Some((no, _)) = self.active.take()
            && self
                .segs
                .get(&no)
                .is_some_and(|s| s.live == 0 && s.tombs.is_empty())
        {
            self.deferred.push(Unlink::Segment(no));
        }
    }

    /// Segment `no` is unlinked: tombstones pointing at it are no longer needed, which may
    /// leave other segments with nothing to keep (unlinked next batch, once this one is
    /// durable).
    fn forget_segment(&mut self, no: SegNo) {
        self.segs.remove(&no);
        for t in self.referrers.remove(&no).unwrap_or_default() {
            let active = self.active.is_some_and(|(a, _)| a == t);
            if let Some(s) = self.segs.get_mut(&t) {
                s.tombs.remove(&no);
                if !active && s.live == 0 && s.tombs.is_empty() {
                    self.deferred.push(Unlink::Segment(t));
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "index_tests.rs"]
mod tests;
