//! Phase 1: what is on disk. Sorts the files of the spool directory (segments, envelope
//! overlays, leftovers) and reads every segment. The newest segment's batch cut short by a
//! crash is set aside and the segment cut back to its last complete batch; an older segment
//! with a defect is damaged (phase 2 salvages what precedes the defect).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::BufReader;
use std::path::{Path, PathBuf};

use super::quarantine::set_tail_aside;
use super::{Bad, Damaged, QUARANTINE_DIR, Quarantined};
use crate::envelope::MessageId;
use crate::error::{RelayError, SpoolDefect};
use crate::spool::file::{self, ENV_EXT, InRecord, SegNo, TMP_EXT};

/// What the spool directory holds.
pub(super) struct Scanned {
    /// The readable segments (the newest possibly cut back) and their records.
    pub(super) segments: BTreeMap<SegNo, Vec<InRecord>>,
    /// Segments with a defect.
    pub(super) damaged: Vec<Damaged>,
    /// Envelope overlays (`<id>.env`).
    pub(super) overlays: Vec<(MessageId, PathBuf)>,
    /// Files to quarantine as they are: leftover temporary files, unknown files.
    pub(super) bad: Vec<Bad>,
    /// The unfinished batch of the newest segment, already set aside.
    pub(super) unfinished: Vec<Quarantined>,
    /// The newest segment's number (0 without segments).
    pub(super) last_seg: SegNo,
}

/// Lists `dir` and reads its segments; an unfinished tail goes to `qdir` at once.
pub(super) fn scan(dir: &Path, qdir: &Path) -> Result<Scanned, RelayError> {
    let mut overlays: Vec<(MessageId, PathBuf)> = Vec::new();
    let mut bad: Vec<Bad> = Vec::new();
    let mut seg_files: BTreeMap<SegNo, PathBuf> = BTreeMap::new();
    let entries = fs::read_dir(dir).map_err(|e| RelayError::io("readdir", dir, &e))?;
    for entry in entries {
        let entry = entry.map_err(|e| RelayError::io("readdir", dir, &e))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == QUARANTINE_DIR {
            continue;
        }
        if let Some(no) = file::parse_segment_name(&name) {
            seg_files.insert(no, path);
        } else if let Some(id) = name
            .strip_suffix(&format!(".{ENV_EXT}"))
            .and_then(MessageId::parse)
        {
            overlays.push((id, path));
        } else if name.ends_with(&format!(".{TMP_EXT}")) {
            bad.push(Bad::file(path.clone(), RelayError::Unfinished { path }));
        } else {
            bad.push(Bad::file(path.clone(), RelayError::UnknownFile { path }));
        }
    }

    let last_seg = seg_files.keys().next_back().copied().unwrap_or(0);
    let mut segments: BTreeMap<SegNo, Vec<InRecord>> = BTreeMap::new();
    let mut damaged: Vec<Damaged> = Vec::new();
    let mut unfinished: Vec<Quarantined> = Vec::new();
    for (no, path) in seg_files {
        let f = File::open(&path).map_err(|e| RelayError::io("open", &path, &e))?;
        let scan = file::scan_segment(&mut BufReader::with_capacity(256 << 10, f));
        match scan.defect {
            None => {
                segments.insert(no, scan.records);
            }
            // The newest segment was being appended to: a batch cut short by a crash was never
            // acknowledged. Its bytes are set aside and the segment cut back to its last batch.
            Some(defect) if no == last_seg && scan.committed_len > 0 => {
                let tail = set_tail_aside(&path, scan.committed_len, qdir)?;
                let reason = match defect {
                    SpoolDefect::Truncated { .. } => RelayError::Unfinished { path: path.clone() },
                    defect => RelayError::Corrupt {
                        path: path.clone(),
                        defect,
                    },
                };
                tracing::warn!(file = %path.display(), to = %tail.display(), %reason,
                    "spool: unfinished batch set aside");
                unfinished.push(Quarantined {
                    original: path,
                    moved_to: tail,
                    reason,
                    salvaged: 0,
                });
                segments.insert(no, scan.records);
            }
            Some(defect) => {
                let reason = if no == last_seg {
                    // Cut inside its magic line: a creation cut short.
                    RelayError::Unfinished { path: path.clone() }
                } else {
                    RelayError::Corrupt {
                        path: path.clone(),
                        defect,
                    }
                };
                damaged.push(Damaged {
                    no,
                    reason,
                    path,
                    records: scan.records,
                });
            }
        }
    }
    Ok(Scanned {
        segments,
        damaged,
        overlays,
        bad,
        unfinished,
        last_seg,
    })
}
