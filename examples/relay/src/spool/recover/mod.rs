//! Spool recovery at start-up: rebuild the queue from the segments and envelope overlays,
//! salvage what a damaged segment still holds, quarantine everything else.
//!
//! Order, so that a crash during recovery loses nothing: first the **recovery segment** is
//! written and made durable (records salvaged from damaged segments, tombstones for messages
//! taken out of the queue), then damaged files are moved to `quarantine/`. A crash in between
//! salvages again at the next start; the newest copy of a message wins and the older copy gets
//! a tombstone.
//!
//! The phases, one module each:
//! 1. [`scan`]: sort the files of the spool directory (segments, envelope overlays, leftovers)
//!    and read every segment; the newest segment's unfinished batch is cut back and set aside.
//! 2. [`salvage`]: the live copy of each message; what damaged segments still hold.
//! 3. [`overlays`]: the latest envelope of each live message; stale overlays removed, orphans
//!    and damaged ones set aside, messages whose body length disagrees taken out of the queue.
//! 4. [`salvage::write_segment`]: the recovery segment, durable before anything is moved.
//! 5. [`quarantine`]: every bad file moved to `quarantine/`, then the directories fsynced.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::file::{InRecord, SegNo};
use super::index::{Found, Index, Loc};
use crate::envelope::Envelope;
use crate::error::RelayError;

mod overlays;
mod quarantine;
mod salvage;
mod scan;

/// Name of the quarantine sub-directory of the spool.
pub const QUARANTINE_DIR: &str = "quarantine";

/// A file moved to the quarantine directory, and why. Nothing is ever deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    /// Where the file was in the spool (for a message taken out of a segment: the segment).
    pub original: PathBuf,
    /// Where it is now.
    pub moved_to: PathBuf,
    /// Why it was quarantined (names the file).
    pub reason: RelayError,
    /// Messages of a damaged segment recovered from the records before the damage (they are
    /// back in the queue; the quarantined copy is for the administrator).
    pub salvaged: usize,
}

/// What recovery found.
#[derive(Debug, Default)]
pub struct Recovery {
    /// Messages back in the queue (with their latest envelope), oldest first.
    pub messages: Vec<Envelope>,
    /// Files moved aside, each reported.
    pub quarantined: Vec<Quarantined>,
}

/// A message record read back: its segment, envelope and body location.
struct Stored {
    seg: SegNo,
    envelope: Envelope,
    loc: Loc,
}

/// The records of a damaged segment before its defect, to be rewritten.
struct Damaged {
    no: SegNo,
    path: PathBuf,
    reason: RelayError,
    records: Vec<InRecord>,
}

/// A file to be moved to quarantine as it is (phase 5), and why.
struct Bad {
    path: PathBuf,
    reason: RelayError,
    /// Messages salvaged from it (a damaged segment), else 0.
    salvaged: usize,
}

impl Bad {
    fn file(path: PathBuf, reason: RelayError) -> Self {
        Self {
            path,
            reason,
            salvaged: 0,
        }
    }
}

/// Scans `dir`, returning the recovered messages and the spool index, quarantining bad files.
pub(crate) fn recover(dir: &Path) -> Result<(Recovery, Index), RelayError> {
    let qdir = dir.join(QUARANTINE_DIR);
    fs::create_dir_all(&qdir).map_err(|e| RelayError::io("mkdir", &qdir, &e))?;
    let scan::Scanned {
        segments,
        damaged,
        overlays,
        mut bad,
        mut unfinished,
        last_seg,
    } = scan::scan(dir, &qdir)?;
    let mut sorted = salvage::sort(&segments, damaged, &mut bad);
    let overlays::Overlays {
        mut latest,
        ids: overlay_ids,
        mut quarantined,
    } = overlays::apply(dir, &qdir, overlays, &mut sorted, &mut bad)?;
    let mut found: BTreeMap<SegNo, Vec<Found>> = segments
        .iter()
        .map(|(&no, recs)| (no, recs.iter().map(|r| as_found(no, r)).collect()))
        .collect();
    salvage::write_segment(dir, last_seg + 1, &mut sorted, &mut found)?;
    quarantined.append(&mut unfinished);
    quarantine::move_all(dir, &qdir, bad, &mut quarantined)?;
    let index = Index::rebuild(&found, &overlay_ids);
    let mut messages: Vec<Envelope> = sorted
        .live
        .into_values()
        .map(|s| latest.remove(&s.envelope.id).unwrap_or(s.envelope))
        .collect();
    messages.sort_by(|a, b| (a.arrival, &a.id).cmp(&(b.arrival, &b.id)));
    Ok((
        Recovery {
            messages,
            quarantined,
        },
        index,
    ))
}

/// A segment record as the index sees it (id and body location, or a tombstone).
pub(crate) fn as_found(no: SegNo, r: &InRecord) -> Found {
    match r {
        InRecord::Msg {
            envelope,
            body_offset,
            body_len,
        } => Found::Msg {
            id: envelope.id.clone(),
            loc: Loc {
                seg: no,
                body_offset: *body_offset,
                body_len: *body_len,
            },
        },
        InRecord::Done { seg, id } => Found::Done {
            seg: *seg,
            id: id.clone(),
        },
    }
}
