//! Spool recovery at start-up: rebuild the queue from the segments and envelope overlays,
//! salvage what a damaged segment still holds, quarantine everything else.
//!
//! Order, so that a crash during recovery loses nothing: first the **recovery segment** is
//! written and made durable (records salvaged from damaged segments, tombstones for messages
//! taken out of the queue), then damaged files are moved to `quarantine/`. A crash in between
//! salvages again at the next start; the newest copy of a message wins and the older copy gets
//! a tombstone.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File};
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};

use super::file::{self, ENV_EXT, InRecord, OutRecord, SegNo, TMP_EXT};
use super::index::{Found, Index, Loc};
use super::io;
use crate::envelope::{Envelope, MessageId};
use crate::error::{RelayError, SpoolDefect};

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

/// Scans `dir`, returning the recovered messages and the spool index, quarantining bad files.
pub(crate) fn recover(dir: &Path) -> Result<(Recovery, Index), RelayError> {
    let qdir = dir.join(QUARANTINE_DIR);
    fs::create_dir_all(&qdir).map_err(|e| RelayError::io("mkdir", &qdir, &e))?;
    let mut segments: BTreeMap<SegNo, Vec<InRecord>> = BTreeMap::new();
    let mut damaged: Vec<Damaged> = Vec::new();
    let mut overlays: Vec<(MessageId, PathBuf)> = Vec::new();
    let mut bad: Vec<(PathBuf, RelayError, usize)> = Vec::new();
    let mut unfinished: Vec<Quarantined> = Vec::new();
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
            bad.push((path.clone(), RelayError::Unfinished { path }, 0));
        } else {
            bad.push((path.clone(), RelayError::UnknownFile { path }, 0));
        }
    }
    let last_seg = seg_files.keys().next_back().copied().unwrap_or(0);
    for (no, path) in seg_files {
        let file = File::open(&path).map_err(|e| RelayError::io("open", &path, &e))?;
        let scan = file::scan_segment(&mut BufReader::with_capacity(256 << 10, file));
        match scan.defect {
            None => {
                segments.insert(no, scan.records);
            }
            // The newest segment was being appended to: a batch cut short by a crash was never
            // acknowledged. Its bytes are set aside and the segment cut back to its last batch.
            Some(defect) if no == last_seg && scan.committed_len > 0 => {
                let tail = set_tail_aside(&path, scan.committed_len, &qdir)?;
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

    // Every message record and tombstone; the live copy of each message (newest segment).
    let recovery_seg = last_seg + 1;
    let mut tombstones: Vec<(SegNo, MessageId)> = damaged
        .iter()
        .flat_map(|d| &d.records)
        .filter_map(|r| match r {
            InRecord::Done { seg, id } => Some((*seg, id.clone())),
            InRecord::Msg { .. } => None,
        })
        .collect();
    let dead: HashSet<(SegNo, MessageId)> = segments
        .values()
        .flatten()
        .filter_map(|r| match r {
            InRecord::Done { seg, id } => Some((*seg, id.clone())),
            InRecord::Msg { .. } => None,
        })
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
        bad.push((d.path, d.reason, n));
    }
    let mut live: HashMap<MessageId, Stored> = HashMap::new();
    let mut stored_ids: HashSet<MessageId> = HashSet::new();
    for (&no, records) in &segments {
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

    // Envelope overlays: the latest state of a live message; stale after a finished removal;
    // orphans otherwise. A damaged overlay (or body length) takes its message out of the queue.
    let mut latest: HashMap<MessageId, Envelope> = HashMap::new();
    let mut overlay_ids = Vec::new();
    let salvaged_ids: HashSet<MessageId> = salvage.iter().map(|(e, _)| e.id.clone()).collect();
    for (id, path) in overlays {
        let in_salvage = salvaged_ids.contains(&id);
        if !live.contains_key(&id) && !in_salvage {
            if stored_ids.contains(&id) {
                tracing::info!(file = %path.display(), "spool: stale envelope of a finished message removed");
                io::unlink(&path)?;
            } else {
                bad.push((path.clone(), RelayError::Orphan { path }, 0));
            }
            continue;
        }
        match io::read_overlay(&path).and_then(|env| check_id(&path, &id, env)) {
            Ok(env) => {
                latest.insert(id.clone(), env);
                overlay_ids.push(id);
            }
            Err(reason) => {
                if let Some(s) = live.remove(&id) {
                    let moved = extract(dir, &qdir, &s)?;
                    tombstones.push((s.seg, id.clone()));
                    bad.push((path, reason.clone(), 0));
                    report_extracted(dir, &s, moved, reason);
                } else {
                    // Salvaged (it had no segment left): keep the message, set the overlay aside.
                    bad.push((path, reason, 0));
                }
            }
        }
    }
    let mismatched: Vec<MessageId> = live
        .values()
        .filter(|s| latest.get(&s.envelope.id).unwrap_or(&s.envelope).body_len != s.loc.body_len)
        .map(|s| s.envelope.id.clone())
        .collect();
    let mut extracted = Vec::new();
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
            let moved = extract(dir, &qdir, &s)?;
            tombstones.push((s.seg, id));
            extracted.push(Quarantined {
                original: dir.join(file::segment_name(s.seg)),
                moved_to: moved,
                reason,
                salvaged: 0,
            });
        }
    }

    // The recovery segment, durable before anything is moved aside.
    let mut found: BTreeMap<SegNo, Vec<Found>> = segments
        .iter()
        .map(|(&no, recs)| (no, recs.iter().map(|r| as_found(no, r)).collect()))
        .collect();
    if !salvage.is_empty() || !tombstones.is_empty() {
        let encoded: Vec<(MessageId, Vec<u8>)> = salvage
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
            .zip(&salvage)
            .map(|((id, json), (_, body))| OutRecord::Msg {
                id,
                envelope: json,
                body,
            })
            .collect();
        out.extend(
            tombstones
                .iter()
                .map(|(seg, id)| OutRecord::Done { seg: *seg, id }),
        );
        let (_, offsets) = io::create_segment(dir, recovery_seg, &out)?;
        let mut recs: Vec<Found> = Vec::new();
        for ((env, body), off) in salvage.iter().zip(offsets) {
            let loc = Loc {
                seg: recovery_seg,
                body_offset: off,
                body_len: body.len() as u64,
            };
            recs.push(Found::Msg {
                id: env.id.clone(),
                loc,
            });
            live.insert(
                env.id.clone(),
                Stored {
                    seg: recovery_seg,
                    envelope: env.clone(),
                    loc,
                },
            );
        }
        recs.extend(
            tombstones
                .into_iter()
                .map(|(seg, id)| Found::Done { seg, id }),
        );
        found.insert(recovery_seg, recs);
    }

    extracted.append(&mut unfinished);
    let mut out = Recovery {
        quarantined: extracted,
        ..Recovery::default()
    };
    for (path, reason, salvaged) in bad {
        let moved_to = quarantine(&path, &qdir)?;
        tracing::warn!(file = %path.display(), to = %moved_to.display(), %reason, salvaged,
            "spool file quarantined");
        out.quarantined.push(Quarantined {
            original: path,
            moved_to,
            reason,
            salvaged,
        });
    }
    if !out.quarantined.is_empty() {
        io::fsync_dir(&qdir)?;
        io::fsync_dir(dir)?;
    }
    let index = Index::rebuild(&found, &overlay_ids);
    out.messages = live
        .into_values()
        .map(|s| latest.remove(&s.envelope.id).unwrap_or(s.envelope))
        .collect();
    out.messages
        .sort_by(|a, b| (a.arrival, &a.id).cmp(&(b.arrival, &b.id)));
    Ok((out, index))
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

/// Copies a message out of its segment into `quarantine/<id>.msg` (`SPOOL1 <envelope-len>
/// <body-len>\n<envelope>\n<body>`, fsynced) before it is tombstoned.
fn extract(dir: &Path, qdir: &Path, s: &Stored) -> Result<PathBuf, RelayError> {
    let seg = dir.join(file::segment_name(s.seg));
    let body = io::read_at(&seg, s.loc.body_offset, s.loc.body_len)?;
    let json = serde_json::to_vec(&s.envelope).map_err(|_| RelayError::Unencodable {
        id: s.envelope.id.to_string(),
    })?;
    let target = free_name(qdir, &format!("{}.msg", s.envelope.id));
    io::write_atomic(&target, |w| {
        w.write_all(format!("SPOOL1 {} {}\n", json.len(), body.len()).as_bytes())?;
        w.write_all(&json)?;
        w.write_all(b"\n")?;
        w.write_all(&body)
    })?;
    Ok(target)
}

fn report_extracted(dir: &Path, s: &Stored, moved_to: PathBuf, reason: RelayError) {
    tracing::warn!(id = %s.envelope.id, to = %moved_to.display(), %reason,
        segment = %dir.join(file::segment_name(s.seg)).display(),
        "spool: message taken out of the queue and quarantined");
}

/// Copies the bytes of `path` from `from` to its end into `quarantine/<name>.tail` (fsynced),
/// then cuts `path` back to `from`.
fn set_tail_aside(path: &Path, from: u64, qdir: &Path) -> Result<PathBuf, RelayError> {
    let len = fs::metadata(path)
        .map_err(|e| RelayError::io("stat", path, &e))?
        .len();
    let tail = io::read_at(path, from, len.saturating_sub(from))?;
    let name = path
        .file_name()
        .map_or_else(|| "segment".into(), |n| n.to_string_lossy().into_owned());
    let target = free_name(qdir, &format!("{name}.tail"));
    io::write_atomic(&target, |w| w.write_all(&tail))?;
    io::fsync_dir(qdir)?;
    io::truncate(path, from)?;
    Ok(target)
}

/// A name in `qdir` not used yet: `name`, `name.1`, `name.2`, ...
fn free_name(qdir: &Path, name: &str) -> PathBuf {
    let mut target = qdir.join(name);
    let mut n = 1u32;
    while target.exists() {
        target = qdir.join(format!("{name}.{n}"));
        n += 1;
    }
    target
}

/// Moves `path` into `qdir`, never overwriting an earlier quarantined file.
fn quarantine(path: &Path, qdir: &Path) -> Result<PathBuf, RelayError> {
    let name = path
        .file_name()
        .map_or_else(|| "unnamed".into(), |n| n.to_string_lossy().into_owned());
    let target = free_name(qdir, &name);
    fs::rename(path, &target).map_err(|e| RelayError::io("quarantine", path, &e))?;
    Ok(target)
}
