//! The file backend's journal (`DIR/counters.journal`, see [`super::FileCounters`]): its records
//! (one JSON line each), the days and buckets they build in memory, the replay on open and the
//! snapshot that compacts it, with the durable-write helpers the claims use too.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::counters::now_ms;
use super::error::StateError;
use super::redis_counters::COUNTER_RETENTION;

/// The journal's file name in the state directory.
pub const JOURNAL_FILE: &str = "counters.journal";

/// Compact when this many records were appended since the last snapshot (and they outnumber
/// the live counters twice).
pub(super) const COMPACT_AFTER: usize = 50_000;

pub(super) static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// One journal line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub(super) enum Record<'a> {
    Incr {
        #[serde(borrow)]
        day: std::borrow::Cow<'a, str>,
        #[serde(borrow)]
        bucket: std::borrow::Cow<'a, str>,
        #[serde(borrow)]
        field: std::borrow::Cow<'a, str>,
        by: u64,
        /// When (Unix ms; absent in journals of older versions: the replay's time).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<u64>,
    },
    Meta {
        #[serde(borrow)]
        day: std::borrow::Cow<'a, str>,
        #[serde(borrow)]
        bucket: std::borrow::Cow<'a, str>,
        #[serde(borrow)]
        value: std::borrow::Cow<'a, str>,
        /// As for `Incr`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<u64>,
    },
    DeleteDay {
        #[serde(borrow)]
        day: std::borrow::Cow<'a, str>,
    },
}

#[derive(Debug, Default)]
pub(super) struct Bucket {
    pub(super) meta: Option<String>,
    pub(super) fields: BTreeMap<String, u64>,
}

#[derive(Debug, Default)]
pub(super) struct Day {
    pub(super) buckets: BTreeMap<String, Bucket>,
    /// The last update (Unix ms).
    pub(super) last_ms: u64,
}

pub(super) type Days = BTreeMap<String, Day>;

/// Drops the days not updated for [`COUNTER_RETENTION`]; returns how many.
pub(super) fn prune(days: &mut Days, now: u64) -> usize {
    let retention = u64::try_from(COUNTER_RETENTION.as_millis()).unwrap_or(u64::MAX);
    let before = days.len();
    days.retain(|_, d| d.last_ms.saturating_add(retention) > now);
    before - days.len()
}

/// The buckets and fields held (a snapshot's records, about).
pub(super) fn live(days: &Days) -> usize {
    days.values()
        .flat_map(|d| d.buckets.values())
        .map(|b| b.fields.len() + 1)
        .sum()
}

/// `bucket` of `day`, created if needed; the day's last update is at least `at`.
fn bucket_of<'d>(days: &'d mut Days, day: &str, bucket: &str, at: u64) -> &'d mut Bucket {
    let d = days.entry(day.to_owned()).or_default();
    d.last_ms = d.last_ms.max(at);
    d.buckets.entry(bucket.to_owned()).or_default()
}

impl Record<'_> {
    /// Applies the record; `now`: the time of a record without one.
    pub(super) fn apply(&self, days: &mut Days, now: u64) {
        match self {
            Self::Incr {
                day,
                bucket,
                field,
                by,
                at,
            } => {
                let b = bucket_of(days, day, bucket, at.unwrap_or(now));
                let n = b.fields.entry(field.to_string()).or_default();
                *n = n.saturating_add(*by);
            }
            Self::Meta {
                day,
                bucket,
                value,
                at,
            } => {
                let b = bucket_of(days, day, bucket, at.unwrap_or(now));
                if b.meta.is_none() {
                    b.meta = Some(value.to_string());
                }
            }
            Self::DeleteDay { day } => {
                days.remove(day.as_ref());
            }
        }
    }

    /// How many buckets and fields applying this record adds to `days`.
    pub(super) fn adds(&self, days: &Days) -> usize {
        let held = |day: &str, bucket: &str| days.get(day).and_then(|d| d.buckets.get(bucket));
        match self {
            Self::Incr {
                day, bucket, field, ..
            } => match held(day, bucket) {
                None => 2,
                Some(b) => usize::from(!b.fields.contains_key(field.as_ref())),
            },
            Self::Meta { day, bucket, .. } => usize::from(held(day, bucket).is_none()),
            Self::DeleteDay { .. } => 0,
        }
    }

    pub(super) fn day(&self) -> &str {
        match self {
            Self::Incr { day, .. } | Self::Meta { day, .. } | Self::DeleteDay { day } => day,
        }
    }

    pub(super) fn line(&self) -> Vec<u8> {
        // serialising strings and integers cannot fail
        let mut line = serde_json::to_vec(self).unwrap_or_default();
        line.push(b'\n');
        line
    }
}

pub(super) struct Journal {
    /// The state directory.
    pub(super) dir: PathBuf,
    pub(super) file: File,
    /// Length of the journal: a failed append is cut back to it.
    pub(super) len: u64,
    pub(super) days: Days,
    /// Records appended since the last snapshot.
    pub(super) appended: usize,
    /// Buckets and fields held ([`live`]), kept up to date by each append.
    pub(super) live: usize,
    /// Days were dropped (retention) since the last snapshot: compact.
    pub(super) pruned: bool,
    /// A compaction was handed to the writer thread and has not run yet.
    pub(super) compaction_queued: bool,
    /// The threads the compactions ran on (tests).
    #[cfg(test)]
    pub(super) compacted_on: Vec<Option<String>>,
}

/// What [`FileCounters::open`](super::FileCounters::open) found in the journal.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Replay {
    /// Records replayed.
    pub records: usize,
    /// Lines that could not be read (skipped).
    pub corrupt: usize,
    /// Bytes of a torn last line (ignored).
    pub torn_bytes: usize,
}

impl Journal {
    /// Appends the record `make` builds from the counters as they are (`None`: nothing to
    /// write), then applies it in memory, and drops the days past their retention when a new
    /// day begins. Returns whether a compaction is due (the journal has grown, or days were
    /// dropped): never compacts itself (the caller does, off the async workers).
    pub(super) fn append<'r>(
        &mut self,
        make: impl FnOnce(&Days) -> Option<Record<'r>>,
    ) -> Result<bool, StateError> {
        let path = self.dir.join(JOURNAL_FILE);
        let j = self;
        let Some(record) = make(&j.days) else {
            return Ok(false);
        };
        let line = record.line();
        if let Err(e) = j.file.write_all(&line) {
            // cut a partial record off, so the next one starts on a line of its own
            let len = j.len;
            let _ = j.file.set_len(len);
            return Err(StateError::io("append", &path, &e));
        }
        j.len += line.len() as u64;
        let now = now_ms();
        let pruned = if j.days.contains_key(record.day()) {
            0
        } else {
            prune(&mut j.days, now)
        };
        let added = record.adds(&j.days);
        record.apply(&mut j.days, now);
        j.appended += 1;
        j.live = if pruned > 0 {
            live(&j.days)
        } else {
            j.live + added
        };
        j.pruned |= pruned > 0;
        Ok(j.compaction_due())
    }

    /// Days were dropped, or the records appended since the last snapshot outnumber the
    /// live counters twice (and [`COMPACT_AFTER`]).
    pub(super) fn compaction_due(&self) -> bool {
        self.pruned || self.appended >= COMPACT_AFTER.max(self.live.saturating_mul(2))
    }

    pub(super) fn compact(&mut self) -> Result<(), StateError> {
        #[cfg(test)]
        self.compacted_on
            .push(std::thread::current().name().map(str::to_owned));
        let (file, len) = write_snapshot(&self.dir, &self.days)?;
        self.file = file;
        self.len = len;
        self.appended = 0;
        self.pruned = false;
        self.live = live(&self.days);
        Ok(())
    }

    pub(super) fn delete_day(&mut self, day: &str) -> Result<(), StateError> {
        if self.days.remove(day).is_none() {
            return Ok(());
        }
        // the snapshot no longer holds the day: durable at once
        let path = self.dir.join(JOURNAL_FILE);
        self.compact().map_err(|e| match e {
            StateError::Io { op, detail, .. } => StateError::Io { op, path, detail },
            other => other,
        })
    }
}

/// Replays the journal at `path` (absent: nothing) into `days`.
pub(super) fn replay(path: &Path, days: &mut Days) -> Result<Replay, StateError> {
    let mut bytes = Vec::new();
    match File::open(path) {
        Ok(mut f) => {
            f.read_to_end(&mut bytes)
                .map_err(|e| StateError::io("read", path, &e))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Replay::default()),
        Err(e) => return Err(StateError::io("open", path, &e)),
    }
    let mut out = Replay::default();
    let now = now_ms();
    let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    out.torn_bytes = bytes.len() - complete;
    for line in bytes[..complete].split(|&b| b == b'\n') {
        if line.is_empty() {
            continue;
        }
        match serde_json::from_slice::<Record<'_>>(line) {
            Ok(r) => {
                r.apply(days, now);
                out.records += 1;
            }
            Err(_) => out.corrupt += 1,
        }
    }
    Ok(out)
}

/// Writes `days` as a fresh journal (temporary file, fsync, rename, fsync of the directory);
/// returns it opened for appending, and its length.
pub(super) fn write_snapshot(dir: &Path, days: &Days) -> Result<(File, u64), StateError> {
    let path = dir.join(JOURNAL_FILE);
    let tmp = dir.join(format!(
        ".{JOURNAL_FILE}.{}.{}.tmp",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let mut text = Vec::new();
    for (day, d) in days {
        let at = Some(d.last_ms);
        for (bucket, b) in &d.buckets {
            if let Some(value) = &b.meta {
                text.extend(
                    Record::Meta {
                        day: day.into(),
                        bucket: bucket.into(),
                        value: value.into(),
                        at,
                    }
                    .line(),
                );
            }
            for (field, by) in &b.fields {
                text.extend(
                    Record::Incr {
                        day: day.into(),
                        bucket: bucket.into(),
                        field: field.into(),
                        by: *by,
                        at,
                    }
                    .line(),
                );
            }
        }
    }
    write_new_synced(&tmp, &text)?;
    if let Err(e) = fs::rename(&tmp, &path) {
        let _ = fs::remove_file(&tmp);
        return Err(StateError::io("rename", &path, &e));
    }
    sync_dir(dir)?;
    let file = OpenOptions::new()
        .append(true)
        .open(&path)
        .map_err(|e| StateError::io("open", &path, &e))?;
    Ok((file, text.len() as u64))
}

/// Creates `tmp` (which must not exist), writes `bytes` and fsyncs it; on any failure the
/// partial file is removed. The caller renames it into place.
pub(super) fn write_new_synced(tmp: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let written = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(tmp)
            .map_err(|e| StateError::io("create", tmp, &e))?;
        f.write_all(bytes)
            .map_err(|e| StateError::io("write", tmp, &e))?;
        f.sync_all().map_err(|e| StateError::io("fsync", tmp, &e))
    })();
    if written.is_err() {
        let _ = fs::remove_file(tmp);
    }
    written
}

pub(super) fn sync_dir(dir: &Path) -> Result<(), StateError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StateError::io("fsync", dir, &e))
}
