//! The segment bookkeeping against a model of the disk: random batches of accepts, updates and
//! removals, a crash at a random point (with any subset of the crashed batch's file operations
//! applied — no ordering is assumed inside a batch), then a rebuild from what is on "disk".
//! Nothing acknowledged is lost, nothing whose removal was acknowledged comes back, and
//! segments do not pile up.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;
use crate::spool::file::ROTATE_BYTES;

/// What is on disk: segments and their records, overlays.
#[derive(Debug, Default, Clone)]
struct Disk {
    segs: BTreeMap<SegNo, Vec<Found>>,
    overlays: BTreeSet<MessageId>,
}

#[derive(Debug, Clone)]
enum Act {
    Accept,
    Update(usize),
    Remove(usize),
}

fn id(n: u64) -> MessageId {
    MessageId::parse(&format!("{n:x}")).unwrap()
}

/// The file effects of a plan, in order; `keep` says which ones happen (all of them, or a
/// crash's subset).
fn effects(plan: &Plan) -> Vec<Effect> {
    let mut v = Vec::new();
    if let Some((target, _)) = &plan.segment {
        v.push(Effect::Segment(target.no()));
    }
    for _ in &plan.overlays {
        v.push(Effect::Overlay);
    }
    v.extend(plan.unlinks.iter().cloned().map(Effect::Unlink));
    v
}

#[derive(Debug, Clone)]
enum Effect {
    Segment(SegNo),
    Overlay,
    Unlink(Unlink),
}

/// Applies the chosen effects of `plan` to `disk`; returns the outcome for the index.
fn run(disk: &mut Disk, ops: &[Want<'_>], plan: &Plan, keep: &dyn Fn(usize) -> bool) -> Outcome {
    let mut offsets = Vec::new();
    for (n, e) in effects(plan).iter().enumerate() {
        if !keep(n) {
            continue;
        }
        match e {
            Effect::Segment(no) => {
                let (_, records) = plan.segment.as_ref().unwrap();
                let recs: Vec<Found> = records
                    .iter()
                    .map(|r| match r {
                        PlanRecord::Msg { op } => {
                            let Want::Accept { id, body_len } = ops[*op] else {
                                unreachable!()
                            };
                            Found::Msg {
                                id: id.clone(),
                                loc: Loc {
                                    seg: *no,
                                    body_offset: 0,
                                    body_len,
                                },
                            }
                        }
                        PlanRecord::Done { seg, id } => Found::Done {
                            seg: *seg,
                            id: id.clone(),
                        },
                    })
                    .collect();
                // Appended to the active segment, or a new one.
                disk.segs.entry(*no).or_default().extend(recs);
            }
            Effect::Overlay => {}
            Effect::Unlink(Unlink::Segment(no)) => {
                disk.segs.remove(no);
            }
            Effect::Unlink(Unlink::Overlay(id)) => {
                disk.overlays.remove(id);
            }
        }
    }
    for &i in &plan.overlays {
        let Want::Update { id } = ops[i] else {
            unreachable!()
        };
        disk.overlays.insert(id.clone());
    }
    if let Some((_, records)) = &plan.segment {
        offsets = records
            .iter()
            .filter(|r| matches!(r, PlanRecord::Msg { .. }))
            .map(|_| 0)
            .collect();
    }
    Outcome {
        // Every batch adds 1 KiB: segments rotate now and then.
        segment: Ok((offsets, disk.segs.len() as u64 * 1024 + appended(plan))),
        overlays: plan.overlays.iter().map(|_| Ok(())).collect(),
        unlinks: plan.unlinks.iter().map(|_| Ok(())).collect(),
        dir: Ok(()),
    }
}

/// A length for the active segment that grows with every batch and passes the rotation size
/// every few batches.
fn appended(plan: &Plan) -> u64 {
    plan.segment
        .as_ref()
        .map_or(0, |(t, _)| (t.no() % 4) * (ROTATE_BYTES / 3))
}

fn live_after_rebuild(disk: &Disk) -> BTreeSet<MessageId> {
    let overlays: Vec<_> = disk.overlays.iter().cloned().collect();
    let ix = Index::rebuild(&disk.segs, &overlays);
    ix.live.keys().cloned().collect()
}

fn batches() -> impl Strategy<Value = Vec<Vec<Act>>> {
    let act = prop_oneof![
        4 => Just(Act::Accept),
        1 => any::<usize>().prop_map(Act::Update),
        4 => any::<usize>().prop_map(Act::Remove),
    ];
    prop::collection::vec(prop::collection::vec(act, 0..8), 1..40)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn crash_anywhere_loses_nothing_and_resurrects_nothing(
        batches in batches(),
        crash_at in any::<prop::sample::Index>(),
        subset in any::<u64>(),
    ) {
        let mut ix = Index::rebuild(&BTreeMap::new(), &[]);
        let mut disk = Disk::default();
        let mut next = 0u64;
        let mut live: Vec<MessageId> = Vec::new();      // acknowledged, not removed
        let mut removed: BTreeSet<MessageId> = BTreeSet::new(); // removal acknowledged
        let crash = crash_at.index(batches.len());
        for (b, acts) in batches.iter().enumerate() {
            // One operation per message per batch.
            let mut ids = Vec::new();
            let mut kinds = Vec::new();
            let mut taken = BTreeSet::new();
            for a in acts {
                let (m, k) = match a {
                    Act::Accept => { next += 1; (id(next), 0) }
                    Act::Update(i) | Act::Remove(i) if !live.is_empty() => {
                        (live[i % live.len()].clone(), if matches!(a, Act::Update(_)) { 1 } else { 2 })
                    }
                    _ => continue,
                };
                if taken.insert(m.clone()) { ids.push(m); kinds.push(k); }
            }
            let wants: Vec<Want<'_>> = ids.iter().zip(&kinds).map(|(m, k)| match k {
                0 => Want::Accept { id: m, body_len: 10 },
                1 => Want::Update { id: m },
                _ => Want::Remove { id: m },
            }).collect();
            let plan = ix.plan(&wants);
            if b == crash {
                let mut d = disk.clone();
                let _ = run(&mut d, &wants, &plan, &|n| subset >> (n % 64) & 1 == 1);
                let got = live_after_rebuild(&d);
                // In flight: this batch's accepts may or may not be there; its removals may or
                // may not have happened.
                let in_flight: BTreeSet<_> = ids.iter().cloned().collect();
                for m in &live {
                    prop_assert!(got.contains(m) || in_flight.contains(m), "lost {m}");
                }
                for m in &removed {
                    prop_assert!(!got.contains(m), "resurrected {m}");
                }
                return Ok(());
            }
            let outcome = run(&mut disk, &wants, &plan, &|_| true);
            let results = ix.apply(&wants, plan, outcome);
            for ((m, k), r) in ids.iter().zip(&kinds).zip(results) {
                prop_assert!(r.is_ok(), "{r:?}");
                match k {
                    0 => live.push(m.clone()),
                    2 => { live.retain(|x| x != m); removed.insert(m.clone()); }
                    _ => {}
                }
            }
            // The index agrees with the reference and with a rebuild from disk.
            prop_assert_eq!(ix.len(), live.len());
            let want: BTreeSet<_> = live.iter().cloned().collect();
            prop_assert_eq!(live_after_rebuild(&disk), want);
            let on_disk: Vec<SegNo> = disk.segs.keys().copied().collect();
            let kept: Vec<SegNo> = ix.segments().collect();
            prop_assert_eq!(on_disk, kept, "index and disk agree on the segments");
        }
        // Remove everything, then run maintenance batches: no segment may remain.
        let all: Vec<MessageId> = live.clone();
        let wants: Vec<Want<'_>> = all.iter().map(|m| Want::Remove { id: m }).collect();
        let plan = ix.plan(&wants);
        let outcome = run(&mut disk, &wants, &plan, &|_| true);
        ix.apply(&wants, plan, outcome);
        for _ in 0..100 {
            if !ix.has_deferred() { break; }
            let plan = ix.plan(&[]);
            let outcome = run(&mut disk, &[], &plan, &|_| true);
            ix.apply(&[], plan, outcome);
        }
        prop_assert!(disk.segs.is_empty(), "left behind: {:?}", disk.segs.keys());
        prop_assert!(disk.overlays.is_empty(), "overlays left: {:?}", disk.overlays);
    }
}

/// Plans and applies one batch whose records leave the active segment `len` bytes long.
fn batch(ix: &mut Index, wants: &[Want<'_>], len: u64) -> Plan {
    let plan = ix.plan(wants);
    let seen = Plan {
        segment: plan.segment.clone(),
        overlays: plan.overlays.clone(),
        unlinks: plan.unlinks.clone(),
        ..Plan::default()
    };
    let n = plan.segment.as_ref().map_or(0, |(_, r)| {
        r.iter()
            .filter(|r| matches!(r, PlanRecord::Msg { .. }))
            .count()
    });
    let outcome = Outcome {
        segment: Ok((vec![0; n], len)),
        overlays: plan.overlays.iter().map(|_| Ok(())).collect(),
        unlinks: plan.unlinks.iter().map(|_| Ok(())).collect(),
        dir: Ok(()),
    };
    assert!(ix.apply(wants, plan, outcome).iter().all(Result::is_ok));
    seen
}

fn accepts(ids: &[MessageId]) -> Vec<Want<'_>> {
    ids.iter()
        .map(|m| Want::Accept { id: m, body_len: 1 })
        .collect()
}

fn removals(ids: &[MessageId]) -> Vec<Want<'_>> {
    ids.iter().map(|m| Want::Remove { id: m }).collect()
}

#[test]
fn batches_append_to_the_active_segment_until_it_is_full() {
    let mut ix = Index::rebuild(&BTreeMap::new(), &[]);
    let ids: Vec<MessageId> = (1..=3).map(id).collect();
    let p = batch(&mut ix, &accepts(&ids[..1]), 100);
    assert_eq!(p.segment.unwrap().0, Target::Create(1));
    let p = batch(&mut ix, &accepts(&ids[1..2]), ROTATE_BYTES);
    assert_eq!(p.segment.unwrap().0, Target::Append(1));
    let p = batch(&mut ix, &accepts(&ids[2..]), 100);
    assert_eq!(p.segment.unwrap().0, Target::Create(2), "rotated");
}

#[test]
fn removing_every_message_of_a_closed_segment_unlinks_it_without_a_tombstone() {
    let mut ix = Index::rebuild(&BTreeMap::new(), &[]);
    let ids: Vec<MessageId> = (1..=4).map(id).collect();
    batch(&mut ix, &accepts(&ids[..3]), ROTATE_BYTES);
    batch(&mut ix, &accepts(&ids[3..]), 100); // segment 2 is now the active one
    let p = batch(&mut ix, &removals(&ids[..3]), 0);
    assert!(p.segment.is_none(), "no tombstone needed");
    assert_eq!(p.unlinks, vec![Unlink::Segment(1)]);
    assert_eq!(ix.segments().collect::<Vec<_>>(), [2]);
}

#[test]
fn a_removal_in_the_active_segment_is_a_tombstone_that_keeps_nothing_alive() {
    let mut ix = Index::rebuild(&BTreeMap::new(), &[]);
    let ids: Vec<MessageId> = (1..=2).map(id).collect();
    batch(&mut ix, &accepts(&ids[..1]), 100);
    let p = batch(&mut ix, &removals(&ids[..1]), ROTATE_BYTES);
    let (target, records) = p.segment.unwrap();
    assert_eq!(target, Target::Append(1));
    assert_eq!(
        records,
        [PlanRecord::Done {
            seg: 1,
            id: ids[0].clone()
        }]
    );
    assert!(!ix.has_deferred(), "the active segment stays");
    // Once closed (a rotation), the segment goes: nothing in it is needed.
    let p = batch(&mut ix, &accepts(&ids[1..]), 100);
    assert_eq!(p.segment.unwrap().0, Target::Create(2));
    let p = batch(&mut ix, &[], 0);
    assert_eq!(p.unlinks, vec![Unlink::Segment(1)]);
    assert_eq!(ix.segments().collect::<Vec<_>>(), [2]);
}

#[test]
fn a_tombstone_segment_goes_one_batch_after_its_target() {
    let mut ix = Index::rebuild(&BTreeMap::new(), &[]);
    let ids: Vec<MessageId> = (1..=3).map(id).collect();
    batch(&mut ix, &accepts(&ids[..2]), ROTATE_BYTES); // segment 1, full
    batch(&mut ix, &removals(&ids[..1]), ROTATE_BYTES); // tombstone into segment 2, full
    let p = batch(&mut ix, &accepts(&ids[2..]), 100); // segment 3 active
    assert_eq!(p.segment.unwrap().0, Target::Create(3));
    // The last message of segment 1: dropped; segment 2 (its tombstone) only next batch.
    let p = batch(&mut ix, &removals(&ids[1..2]), 0);
    assert_eq!(p.unlinks, vec![Unlink::Segment(1)]);
    assert!(ix.has_deferred());
    let p = batch(&mut ix, &[], 0);
    assert_eq!(p.unlinks, vec![Unlink::Segment(2)]);
    assert_eq!(ix.segments().collect::<Vec<_>>(), [3]);
}
