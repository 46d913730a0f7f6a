//! On-disk layout of the spool, and the blocking file operations behind it.
//!
//! A message is one file `<id>.msg`:
//!
//! ```text
//! SPOOL1 <envelope-len> <body-len>\n
//! <envelope JSON, envelope-len bytes>\n
//! <body, body-len bytes>
//! ```
//!
//! Later envelope states (per-recipient delivery state) are written to `<id>.env` in the same
//! format with a body length of 0; when present it supersedes the envelope inside `<id>.msg`.
//! Every file is written as `<name>.tmp`, fsynced, renamed over `<name>`, and the directory is
//! fsynced: a file is either absent or complete.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::envelope::Envelope;
use super::error::{RelayError, SpoolDefect};

/// The magic first word of every spool file.
const MAGIC: &str = "SPOOL1";
/// Longest header line accepted.
const MAX_HEADER: usize = 64;
/// Largest envelope accepted when reading (a spool file with more is corrupt).
pub(crate) const MAX_ENVELOPE_BYTES: u64 = 4 << 20;

/// File name suffix of a message file.
pub(crate) const MSG_EXT: &str = "msg";
/// File name suffix of an envelope overlay.
pub(crate) const ENV_EXT: &str = "env";
/// File name suffix of an unfinished write.
pub(crate) const TMP_EXT: &str = "tmp";

/// One durable operation of a commit batch.
#[derive(Debug)]
pub(crate) enum Op {
    /// Write `path` atomically: header + envelope + body.
    Write {
        path: PathBuf,
        envelope: Vec<u8>,
        body: Vec<u8>,
    },
    /// Remove these files in order (missing ones are fine).
    Remove { paths: Vec<PathBuf> },
}

/// The header line for an envelope and body of these lengths.
fn header(env_len: usize, body_len: usize) -> String {
    format!("{MAGIC} {env_len} {body_len}\n")
}

/// Most threads used to write and fsync the files of one batch.
const MAX_WRITERS: usize = 64;

impl Op {
    /// The message this operation is about (the file stem of its first path); the committer
    /// never puts two operations on the same message into one batch.
    pub(crate) fn message(&self) -> Option<&std::ffi::OsStr> {
        match self {
            Self::Write { path, .. } => path.file_stem(),
            Self::Remove { paths } => paths.first().and_then(|p| p.file_stem()),
        }
    }
}

/// Runs a batch of independent operations (distinct messages), then fsyncs the directory once
/// (group commit). The files are written and fsynced by up to [`MAX_WRITERS`] threads at once:
/// concurrent fsyncs share journal commits, sequential ones each wait for their own.
/// Returns one result per operation, in order; a failed directory fsync fails every operation.
pub(crate) fn run_batch(dir: &Path, ops: Vec<Op>) -> Vec<Result<(), RelayError>> {
    let mut results: Vec<Result<(), RelayError>> = if ops.len() <= 1 {
        ops.into_iter().map(run_op).collect()
    } else {
        let per_thread = ops.len().div_ceil(MAX_WRITERS);
        let mut chunks: Vec<Vec<Op>> = Vec::new();
        let mut ops = ops.into_iter().peekable();
        while ops.peek().is_some() {
            chunks.push(ops.by_ref().take(per_thread).collect());
        }
        std::thread::scope(|scope| {
            let handles: Vec<_> = chunks
                .into_iter()
                .map(|chunk| {
                    let n = chunk.len();
                    (
                        n,
                        scope.spawn(move || chunk.into_iter().map(run_op).collect::<Vec<_>>()),
                    )
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|(n, h)| {
                    h.join().unwrap_or_else(|_| {
                        (0..n).map(|_| Err(RelayError::CommitterStopped)).collect()
                    })
                })
                .collect()
        })
    };
    if let Err(e) = fsync_dir(dir) {
        for r in &mut results {
            if r.is_ok() {
                *r = Err(e.clone());
            }
        }
    }
    results
}

fn run_op(op: Op) -> Result<(), RelayError> {
    match op {
        Op::Write {
            path,
            envelope,
            body,
        } => write_atomic(&path, &envelope, &body),
        Op::Remove { paths } => {
            for p in paths {
                match fs::remove_file(&p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(RelayError::io("remove", p, &e)),
                }
            }
            Ok(())
        }
    }
}

/// Writes `<path>.tmp`, fsyncs it and renames it over `path` (the directory is fsynced by the
/// caller).
fn write_atomic(path: &Path, envelope: &[u8], body: &[u8]) -> Result<(), RelayError> {
    let tmp = path.with_extension(format!(
        "{}.{TMP_EXT}",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    let mut f = File::create(&tmp).map_err(|e| RelayError::io("create", &tmp, &e))?;
    let head = header(envelope.len(), body.len());
    f.write_all(head.as_bytes())
        .and_then(|()| f.write_all(envelope))
        .and_then(|()| f.write_all(b"\n"))
        .and_then(|()| f.write_all(body))
        .map_err(|e| RelayError::io("write", &tmp, &e))?;
    f.sync_all()
        .map_err(|e| RelayError::io("fsync", &tmp, &e))?;
    drop(f);
    fs::rename(&tmp, path).map_err(|e| RelayError::io("rename", &tmp, &e))
}

/// Fsyncs a directory so that renames and unlinks in it are durable.
pub(crate) fn fsync_dir(dir: &Path) -> Result<(), RelayError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| RelayError::io("fsync-dir", dir, &e))
}

/// A parsed spool file: its envelope and where the body starts.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub(crate) envelope: Envelope,
    pub(crate) body_offset: u64,
    pub(crate) body_len: u64,
}

/// Reads and checks the header and envelope of a spool file (the body is not read, only its
/// length checked against the file size).
pub(crate) fn read_envelope(path: &Path) -> Result<Parsed, RelayError> {
    let corrupt = |defect| RelayError::Corrupt {
        path: path.to_owned(),
        defect,
    };
    let mut f = File::open(path).map_err(|e| RelayError::io("open", path, &e))?;
    let size = f
        .metadata()
        .map_err(|e| RelayError::io("stat", path, &e))?
        .len();
    let mut head = [0u8; MAX_HEADER];
    let mut got = 0;
    while got < MAX_HEADER {
        let n = f
            .read(&mut head[got..])
            .map_err(|e| RelayError::io("read", path, &e))?;
        if n == 0 {
            break;
        }
        got += n;
    }
    let head = &head[..got];
    if !head.starts_with(MAGIC.as_bytes()) {
        return Err(corrupt(SpoolDefect::BadMagic));
    }
    let nl = head
        .iter()
        .position(|&b| b == b'\n')
        .ok_or_else(|| corrupt(SpoolDefect::BadHeader))?;
    let line = std::str::from_utf8(&head[..nl]).map_err(|_| corrupt(SpoolDefect::BadHeader))?;
    let mut words = line.split(' ');
    let (Some(MAGIC), Some(e), Some(b), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Err(corrupt(SpoolDefect::BadHeader));
    };
    let (Ok(env_len), Ok(body_len)) = (e.parse::<u64>(), b.parse::<u64>()) else {
        return Err(corrupt(SpoolDefect::BadHeader));
    };
    if env_len > MAX_ENVELOPE_BYTES {
        return Err(corrupt(SpoolDefect::TooLarge { size }));
    }
    let body_offset = nl as u64 + 1 + env_len + 1;
    let expected = body_offset.saturating_add(body_len);
    if size != expected {
        return Err(corrupt(SpoolDefect::LengthMismatch {
            expected,
            actual: size,
        }));
    }
    // Re-read the envelope from its offset (the header buffer may hold part of it).
    let mut json = vec![0u8; env_len as usize + 1];
    let start = nl + 1;
    let have = (head.len() - start).min(json.len());
    json[..have].copy_from_slice(&head[start..start + have]);
    f.read_exact(&mut json[have..])
        .map_err(|e| RelayError::io("read", path, &e))?;
    if json.pop() != Some(b'\n') {
        return Err(corrupt(SpoolDefect::BadHeader));
    }
    let envelope: Envelope = serde_json::from_slice(&json).map_err(|e| {
        corrupt(SpoolDefect::Envelope {
            line: e.line(),
            column: e.column(),
        })
    })?;
    Ok(Parsed {
        envelope,
        body_offset,
        body_len,
    })
}

/// Reads the body of a message file.
pub(crate) fn read_body(path: &Path) -> Result<Vec<u8>, RelayError> {
    use std::io::{Seek, SeekFrom};
    let parsed = read_envelope(path)?;
    let mut f = File::open(path).map_err(|e| RelayError::io("open", path, &e))?;
    f.seek(SeekFrom::Start(parsed.body_offset))
        .map_err(|e| RelayError::io("seek", path, &e))?;
    let mut body = Vec::with_capacity(usize::try_from(parsed.body_len).unwrap_or(0));
    f.read_to_end(&mut body)
        .map_err(|e| RelayError::io("read", path, &e))?;
    Ok(body)
}
