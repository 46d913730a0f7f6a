//! Phase 5, and the moves of the other phases: files go to `quarantine/` under a name not used
//! yet, a message taken out of a segment is copied there first. Nothing is ever deleted.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::{Bad, Quarantined, Stored};
use crate::error::RelayError;
use crate::spool::file;
use crate::spool::io;

/// Moves every `bad` file into `qdir` and reports it in `out`; when `out` is not empty, fsyncs
/// both directories (the recovery segment is already durable: phase 4 ran).
pub(super) fn move_all(
    dir: &Path,
    qdir: &Path,
    bad: Vec<Bad>,
    out: &mut Vec<Quarantined>,
) -> Result<(), RelayError> {
    for Bad {
        path,
        reason,
        salvaged,
    } in bad
    {
        let moved_to = move_into(&path, qdir)?;
        tracing::warn!(file = %path.display(), to = %moved_to.display(), %reason, salvaged,
            "spool file quarantined");
        out.push(Quarantined {
            original: path,
            moved_to,
            reason,
            salvaged,
        });
    }
    if !out.is_empty() {
        io::fsync_dir(qdir)?;
        io::fsync_dir(dir)?;
    }
    Ok(())
}

/// Copies a message out of its segment into `quarantine/<id>.msg` (`SPOOL1 <envelope-len>
/// <body-len>\n<envelope>\n<body>`, fsynced) before it is tombstoned.
pub(super) fn extract(dir: &Path, qdir: &Path, s: &Stored) -> Result<PathBuf, RelayError> {
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

pub(super) fn report_extracted(dir: &Path, s: &Stored, moved_to: PathBuf, reason: RelayError) {
    tracing::warn!(id = %s.envelope.id, to = %moved_to.display(), %reason,
        segment = %dir.join(file::segment_name(s.seg)).display(),
        "spool: message taken out of the queue and quarantined");
}

/// Copies the bytes of `path` from `from` to its end into `quarantine/<name>.tail` (fsynced),
/// then cuts `path` back to `from`.
pub(super) fn set_tail_aside(path: &Path, from: u64, qdir: &Path) -> Result<PathBuf, RelayError> {
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
fn move_into(path: &Path, qdir: &Path) -> Result<PathBuf, RelayError> {
    let name = path
        .file_name()
        .map_or_else(|| "unnamed".into(), |n| n.to_string_lossy().into_owned());
    let target = free_name(qdir, &name);
    fs::rename(path, &target).map_err(|e| RelayError::io("quarantine", path, &e))?;
    Ok(target)
}
