//! Phase 2: the live copy of each message, and what damaged segments still hold.
//!
//! A message record is dead once a tombstone names its segment. Of two live copies of a
//! message the one in the newer segment wins and the older gets a tombstone. The records of a
//! damaged segment before its defect are read back (**salvaged**) and supersede every other
//! copy; phase 4 ([`write_segment`]) rewrites them, with the tombstones, into the recovery
//! segment.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use super::{Bad, Damaged, Stored};
use crate::envelope::{Envelope, MessageId};
use crate::error::RelayError;
use crate::spool::file::{InRecord, OutRecord, SegNo};
use crate::spool::index::{Found, Loc};
use crate::spool::io;

/// The messages sorted out from the records.
pub(super) struct Sorted {
    /// The live copy of each message (a salvaged one once [`write_segment`] ran).
    pub(super) live: HashMap<MessageId, Stored>,
    /// Every message with a record in a readable segment, or salvaged: an overlay of one of
    /// them that is not live is stale, any other is an orphan.
    pub(super) stored_ids: HashSet<MessageId>,
    /// Messages read back from damaged segments, with their bodies.
    pub(super) salvage: Vec<(Envelope, Vec<u8>)>,
    /// Tombstones to write, `(segment, id)`.
    pub(super) tombstones: Vec<(SegNo, MessageId)>,
}

/// Sorts the records of the readable `segments` and salvages the `damaged` ones (each then
/// goes to `bad`, with the number of messages salvaged from it).
pub(super) fn sort(
    segments: &BTreeMap<SegNo, Vec<InRecord>>,
    damaged: Vec<Damaged>,
    bad: &mut Vec<Bad>,
) -> Sorted {
    // Every tombstone; a damaged segment's are written again.
    let mut tombstones: Vec<(SegNo, MessageId)> = damaged
        .iter()
        .flat_map(|d| &d.records)
        .filter_map(tombstone)
        .collect();
    let dead: HashSet<(SegNo, MessageId)> = segments
        .values()
        .flatten()
        .filter_map(tombstone)
        .chain(tombstones.iter().cloned())
        .collect();
    let mut salvage: Vec<(Envelope, Vec<u8>)> = Vec::new();
    for d in damaged {
        let mut n = 0;
        for r in &d.records {
            if let InRecord::Msg {
                envelope,
                body_offset,
                body_len,
            } = r
                && !dead.contains(&(d.no, envelope.id.clone()))
                && let Ok(body) = io::read_at(&d.path, *body_offset, *body_len)
            {
                salvage.push((envelope.as_ref().clone(), body));
                n += 1;
            }
        }
        bad.push(Bad {
            path: d.path,
            reason: d.reason,
            salvaged: n,
        });
    }
    let mut live: HashMap<MessageId, Stored> = HashMap::new();
    let mut stored_ids: HashSet<MessageId> = HashSet::new();
    for (&no, records) in segments {
        for r in records {
            let InRecord::Msg {
                envelope,
                body_offset,
                body_len,
            } = r
            else {
                continue;
            };
            stored_ids.insert(envelope.id.clone());
            if dead.contains(&(no, envelope.id.clone())) {
                continue;
            }
            let stored = Stored {
                seg: no,
                envelope: envelope.as_ref().clone(),
                loc: Loc {
                    seg: no,
                    body_offset: *body_offset,
                    body_len: *body_len,
                },
            };
            if let Some(older) = live.insert(envelope.id.clone(), stored) {
                tombstones.push((older.seg, older.envelope.id));
            }
        }
    }
    for (env, _) in &salvage {
        stored_ids.insert(env.id.clone());
        if let Some(older) = live.remove(&env.id) {
            tombstones.push((older.seg, older.envelope.id));
        }
    }
    Sorted {
        live,
        stored_ids,
        salvage,
        tombstones,
    }
}

/// The `(segment, id)` a tombstone record names.
fn tombstone(r: &InRecord) -> Option<(SegNo, MessageId)> {
    match r {
        InRecord::Done { seg, id } => Some((*seg, id.clone())),
        InRecord::Msg { .. } => None,
    }
}

/// Phase 4: writes the salvaged messages and the tombstones into the recovery segment `no`
/// (durable when this returns; none when there is nothing to write), puts the salvaged
/// messages back in `live` and adds the segment's records to `found`.
pub(super) fn write_segment(
    dir: &Path,
    no: SegNo,
    sorted: &mut Sorted,
    found: &mut BTreeMap<SegNo, Vec<Found>>,
) -> Result<(), RelayError> {
    if sorted.salvage.is_empty() && sorted.tombstones.is_empty() {
        return Ok(());
    }
    let encoded: Vec<(MessageId, Vec<u8>)> = sorted
        .salvage
        .iter()
        .map(|(env, _)| {
            serde_json::to_vec(env)
                .map(|j| (env.id.clone(), j))
                .map_err(|_| RelayError::Unencodable {
                    id: env.id.to_string(),
                })
        })
        .collect::<Result<_, _>>()?;
    let mut out: Vec<OutRecord<'_>> = encoded
        .iter()
        .zip(&sorted.salvage)
        .map(|((id, json), (_, body))| OutRecord::Msg {
            id,
            envelope: json,
            body,
        })
        .collect();
    out.extend(
        sorted
            .tombstones
            .iter()
            .map(|(seg, id)| OutRecord::Done { seg: *seg, id }),
    );
    let (_, offsets) = io::create_segment(dir, no, &out)?;
    let mut recs: Vec<Found> = Vec::new();
    for ((env, body), off) in sorted.salvage.iter().zip(offsets) {
        let loc = Loc {
            seg: no,
            body_offset: off,
            body_len: body.len() as u64,
        };
        recs.push(Found::Msg {
            id: env.id.clone(),
            loc,
        });
        sorted.live.insert(
            env.id.clone(),
            Stored {
                seg: no,
                envelope: env.clone(),
                loc,
            },
        );
    }
    recs.extend(
        std::mem::take(&mut sorted.tombstones)
            .into_iter()
            .map(|(seg, id)| Found::Done { seg, id }),
    );
    found.insert(no, recs);
    Ok(())
}
