//! The blocking file operations of the spool: creating and appending to segments, overlay
//! files written atomically (`<name>.tmp`, fsync, rename over `<name>`, directory fsync: a file
//! is either absent or complete), unlinks, fsyncs and reads. The layout is in `file`.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::file::{
    MAGIC, MAX_ENVELOPE_BYTES, MAX_HEADER, OutRecord, SEGMENT_MAGIC, SegNo, TMP_EXT, encode_batch,
    segment_name,
};
use crate::envelope::Envelope;
use crate::error::{RelayError, SpoolDefect};

/// The newest segment, open for appending.
#[derive(Debug)]
pub(crate) struct Active {
    pub(crate) no: SegNo,
    file: File,
    len: u64,
}

impl Active {
    /// The segment's length.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }
}

/// Creates segment `no` holding its first batch: written, fsynced, and the directory fsynced.
/// Returns the open segment and the body offsets. (A crash before this returns leaves a cut
/// batch in the newest segment, which recovery treats as never acknowledged.)
pub(crate) fn create_segment(
    dir: &Path,
    no: SegNo,
    records: &[OutRecord<'_>],
) -> Result<(Active, Vec<u64>), RelayError> {
    let path = dir.join(segment_name(no));
    let file = File::options()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| RelayError::io("create", &path, &e))?;
    let mut w = BufWriter::with_capacity(256 << 10, &file);
    let written = w
        .write_all(SEGMENT_MAGIC)
        .and_then(|()| encode_batch(&mut w, SEGMENT_MAGIC.len() as u64, records))
        .and_then(|r| w.flush().map(|()| r));
    drop(w);
    let (offsets, len) = written.map_err(|e| RelayError::io("write", &path, &e))?;
    file.sync_all()
        .map_err(|e| RelayError::io("fsync", &path, &e))?;
    fsync_dir(dir)?;
    Ok((Active { no, file, len }, offsets))
}

/// Appends a batch to the newest segment and `fdatasync`s it: one device flush per batch.
/// On failure the segment is cut back to its previous length (best effort); the caller must
/// start a new segment rather than append to this one again.
pub(crate) fn append_batch(
    dir: &Path,
    active: &mut Active,
    records: &[OutRecord<'_>],
) -> Result<Vec<u64>, RelayError> {
    let path = dir.join(segment_name(active.no));
    let mut w = BufWriter::with_capacity(256 << 10, &active.file);
    let written = encode_batch(&mut w, active.len, records).and_then(|r| w.flush().map(|()| r));
    drop(w);
    let done = written
        .map_err(|e| RelayError::io("write", &path, &e))
        .and_then(|(offsets, len)| {
            active
                .file
                .sync_data()
                .map_err(|e| RelayError::io("fdatasync", &path, &e))
                .map(|()| (offsets, len))
        });
    match done {
        Ok((offsets, len)) => {
            active.len = len;
            Ok(offsets)
        }
        Err(e) => {
            let _ = active
                .file
                .set_len(active.len)
                .and_then(|()| active.file.sync_data());
            Err(e)
        }
    }
}

/// Cuts a segment back to `len` (a batch cut short by a crash) and fsyncs it.
pub(crate) fn truncate(path: &Path, len: u64) -> Result<(), RelayError> {
    File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_len(len).and_then(|()| f.sync_all()))
        .map_err(|e| RelayError::io("truncate", path, &e))
}

/// Writes `path` atomically (temporary file, fsync, rename); the caller fsyncs the directory.
/// `fill` writes the content.
pub(crate) fn write_atomic(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<&File>) -> std::io::Result<()>,
) -> Result<(), RelayError> {
    let tmp = tmp_path(path);
    let f = File::create(&tmp).map_err(|e| RelayError::io("create", &tmp, &e))?;
    let mut w = BufWriter::with_capacity(256 << 10, &f);
    fill(&mut w)
        .and_then(|()| w.flush())
        .map_err(|e| RelayError::io("write", &tmp, &e))?;
    drop(w);
    f.sync_all()
        .map_err(|e| RelayError::io("fsync", &tmp, &e))?;
    drop(f);
    fs::rename(&tmp, path).map_err(|e| RelayError::io("rename", &tmp, &e))
}

/// `<path>.tmp`.
fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(TMP_EXT);
    path.with_file_name(name)
}

/// Writes an envelope overlay `<id>.env` atomically.
pub(crate) fn write_overlay(path: &Path, envelope: &[u8]) -> Result<(), RelayError> {
    write_atomic(path, |w| {
        w.write_all(format!("{MAGIC} {} 0\n", envelope.len()).as_bytes())?;
        w.write_all(envelope)?;
        w.write_all(b"\n")
    })
}

/// Removes a file; a missing one is fine.
pub(crate) fn unlink(path: &Path) -> Result<(), RelayError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(RelayError::io("remove", path, &e)),
    }
}

/// Fsyncs a directory so that renames and unlinks in it are durable.
pub(crate) fn fsync_dir(dir: &Path) -> Result<(), RelayError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| RelayError::io("fsync-dir", dir, &e))
}

/// Reads `len` bytes at `offset` of `path` (a message body in a segment).
pub(crate) fn read_at(path: &Path, offset: u64, len: u64) -> Result<Vec<u8>, RelayError> {
    use std::os::unix::fs::FileExt;
    let f = File::open(path).map_err(|e| RelayError::io("open", path, &e))?;
    let mut body = vec![0u8; usize::try_from(len).unwrap_or(usize::MAX)];
    f.read_exact_at(&mut body, offset)
        .map_err(|e| RelayError::io("read", path, &e))?;
    Ok(body)
}

/// Reads and checks an envelope overlay file.
pub(crate) fn read_overlay(path: &Path) -> Result<Envelope, RelayError> {
    let corrupt = |defect| RelayError::Corrupt {
        path: path.to_owned(),
        defect,
    };
    let bytes = fs::read(path).map_err(|e| RelayError::io("read", path, &e))?;
    if bytes.len() as u64 > MAX_ENVELOPE_BYTES + MAX_HEADER as u64 {
        return Err(corrupt(SpoolDefect::TooLarge {
            size: bytes.len() as u64,
        }));
    }
    if !bytes.starts_with(MAGIC.as_bytes()) {
        return Err(corrupt(SpoolDefect::BadMagic));
    }
    let nl = bytes
        .iter()
        .take(MAX_HEADER)
        .position(|&b| b == b'\n')
        .ok_or_else(|| corrupt(SpoolDefect::BadHeader))?;
    let line = std::str::from_utf8(&bytes[..nl]).map_err(|_| corrupt(SpoolDefect::BadHeader))?;
    let mut words = line.split(' ');
    let (Some(MAGIC), Some(Ok(env_len)), Some("0"), None) = (
        words.next(),
        words.next().map(str::parse::<u64>),
        words.next(),
        words.next(),
    ) else {
        return Err(corrupt(SpoolDefect::BadHeader));
    };
    let expected = nl as u64 + 1 + env_len + 1;
    if bytes.len() as u64 != expected {
        return Err(corrupt(SpoolDefect::LengthMismatch {
            expected,
            actual: bytes.len() as u64,
        }));
    }
    let json = &bytes[nl + 1..bytes.len() - 1];
    if bytes.last() != Some(&b'\n') {
        return Err(corrupt(SpoolDefect::BadHeader));
    }
    serde_json::from_slice(json).map_err(|e| {
        corrupt(SpoolDefect::Envelope {
            line: e.line(),
            column: e.column(),
        })
    })
}
