//! Phase 3: envelope overlays, and the body length check.
//!
//! An overlay (`<id>.env`) holds the latest state of a live or salvaged message; after a
//! finished removal it is stale and removed; otherwise it is an orphan and set aside. A damaged
//! overlay takes its message out of the queue (copied to `quarantine/`, then tombstoned); so
//! does a body whose length disagrees with the latest envelope.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::quarantine::{extract, report_extracted};
use super::salvage::Sorted;
use super::{Bad, Quarantined};
use crate::envelope::{Envelope, MessageId};
use crate::error::{RelayError, SpoolDefect};
use crate::spool::file;
use crate::spool::io;

/// The overlays read back.
pub(super) struct Overlays {
    /// The latest envelope of each message with a good overlay.
    pub(super) latest: HashMap<MessageId, Envelope>,
    /// The messages with a good overlay (for the index).
    pub(super) ids: Vec<MessageId>,
    /// Messages taken out of the queue for a body length mismatch, already in `quarantine/`.
    pub(super) quarantined: Vec<Quarantined>,
}

/// Reads the `overlays`, removes stale ones, sends orphans and damaged ones to `bad`, and takes
/// the messages that cannot be trusted out of `sorted.live` (each gets a tombstone).
pub(super) fn apply(
    dir: &Path,
    qdir: &Path,
    overlays: Vec<(MessageId, PathBuf)>,
    sorted: &mut Sorted,
    bad: &mut Vec<Bad>,
) -> Result<Overlays, RelayError> {
    let live = &mut sorted.live;
    let tombstones = &mut sorted.tombstones;
    let mut latest: HashMap<MessageId, Envelope> = HashMap::new();
    let mut ids = Vec::new();
    let salvaged_ids: HashSet<MessageId> =
        sorted.salvage.iter().map(|(e, _)| e.id.clone()).collect();
    for (id, path) in overlays {
        let in_salvage = salvaged_ids.contains(&id);
        if !live.contains_key(&id) && !in_salvage {
            if sorted.stored_ids.contains(&id) {
                tracing::info!(file = %path.display(), "spool: stale envelope of a finished message removed");
                io::unlink(&path)?;
            } else {
                bad.push(Bad::file(path.clone(), RelayError::Orphan { path }));
            }
            continue;
        }
        match io::read_overlay(&path).and_then(|env| check_id(&path, &id, env)) {
            Ok(env) => {
                latest.insert(id.clone(), env);
                ids.push(id);
            }
            Err(reason) => {
                if let Some(s) = live.remove(&id) {
                    let moved = extract(dir, qdir, &s)?;
                    tombstones.push((s.seg, id.clone()));
                    bad.push(Bad::file(path, reason.clone()));
                    report_extracted(dir, &s, moved, reason);
                } else {
                    // Salvaged (it had no segment left): keep the message, set the overlay aside.
                    bad.push(Bad::file(path, reason));
                }
            }
        }
    }
    let mismatched: Vec<MessageId> = live
        .values()
        .filter(|s| latest.get(&s.envelope.id).unwrap_or(&s.envelope).body_len != s.loc.body_len)
        .map(|s| s.envelope.id.clone())
        .collect();
    let mut quarantined = Vec::new();
    for id in mismatched {
        if let Some(s) = live.remove(&id) {
            let expected = latest.get(&id).unwrap_or(&s.envelope).body_len;
            let reason = RelayError::Corrupt {
                path: dir.join(file::segment_name(s.seg)),
                defect: SpoolDefect::LengthMismatch {
                    expected,
                    actual: s.loc.body_len,
                },
            };
            let moved = extract(dir, qdir, &s)?;
            tombstones.push((s.seg, id));
            quarantined.push(Quarantined {
                original: dir.join(file::segment_name(s.seg)),
                moved_to: moved,
                reason,
                salvaged: 0,
            });
        }
    }
    Ok(Overlays {
        latest,
        ids,
        quarantined,
    })
}

fn check_id(path: &Path, id: &MessageId, env: Envelope) -> Result<Envelope, RelayError> {
    if &env.id == id {
        Ok(env)
    } else {
        Err(RelayError::Corrupt {
            path: path.to_owned(),
            defect: SpoolDefect::IdMismatch {
                found: env.id.to_string(),
            },
        })
    }
}
