//! On-disk layout of the spool, and the blocking file operations behind it.
//!
//! # Segments
//! Messages are stored in **segment files** `<seq>.seg` (`seq`: 16 lower-case hex digits). The
//! newest segment is an append-only log: each group-commit batch appends its records and a
//! commit line, then one `fdatasync` makes the whole batch durable. A segment is closed (a new
//! one started) past [`ROTATE_BYTES`] or after a restart, and unlinked once nothing in it is
//! needed any more (see `index`).
//!
//! ```text
//! SPOOLSEG1\n
//! M <id> <envelope-len> <body-len> <crc32>\n<envelope JSON><body>     a message
//! D <seq> <id> <crc32>\n                                              a tombstone
//! C <records>\n                                                      end of a batch
//! ```
//!
//! A tombstone says "the message `<id>` stored in segment `<seq>` is finished": recovery skips
//! that record. `crc32` (8 lower-case hex digits) covers the envelope and body of a message, and
//! the text `<seq> <id>` of a tombstone, so a damaged record is never taken for another one. A
//! commit line counts the records of its batch; only records followed by their commit line
//! count. A segment ends right after a commit line: anything else at its end is a batch cut
//! short by a crash (never acknowledged) in the newest segment, and damage in any other.
//!
//! # Envelope overlays
//! Later envelope states (per-recipient delivery state) are written to `<id>.env`:
//! `SPOOL1 <envelope-len> 0\n<envelope JSON>\n`; when present it supersedes the envelope in the
//! message's segment record.
//!
//! The file operations on these (appending a batch, atomic overlay writes, fsyncs) are in
//! `io`.

use std::io::{BufRead, Read, Write};

use crate::envelope::{Envelope, MessageId};
use crate::error::SpoolDefect;

/// The magic first word of an envelope overlay.
pub(crate) const MAGIC: &str = "SPOOL1";
/// The magic first line of a segment.
pub(crate) const SEGMENT_MAGIC: &[u8] = b"SPOOLSEG1\n";
/// A segment past this size is closed and a new one started.
pub(crate) const ROTATE_BYTES: u64 = 16 << 20;
/// Longest header line accepted.
pub(crate) const MAX_HEADER: usize = 128;
/// Largest envelope accepted when reading (a spool file with more is corrupt).
pub(crate) const MAX_ENVELOPE_BYTES: u64 = 4 << 20;

/// File name suffix of a segment.
pub(crate) const SEG_EXT: &str = "seg";
/// File name suffix of an envelope overlay.
pub(crate) const ENV_EXT: &str = "env";
/// File name suffix of an unfinished write.
pub(crate) const TMP_EXT: &str = "tmp";

/// A segment's sequence number.
pub(crate) type SegNo = u64;

/// The file name of segment `no`.
pub(crate) fn segment_name(no: SegNo) -> String {
    format!("{no:016x}.{SEG_EXT}")
}

/// The segment number of a file name, if it is one.
pub(crate) fn parse_segment_name(name: &str) -> Option<SegNo> {
    let stem = name.strip_suffix(".seg")?;
    (stem.len() == 16).then(|| hex(stem, 16)).flatten()
}

/// One record to write into a new segment.
#[derive(Debug)]
pub(crate) enum OutRecord<'a> {
    /// A message: its id, encoded envelope and body.
    Msg {
        id: &'a MessageId,
        envelope: &'a [u8],
        body: &'a [u8],
    },
    /// A tombstone for the message `id` stored in segment `seg`.
    Done { seg: SegNo, id: &'a MessageId },
}

/// One record read back from a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InRecord {
    /// A message, with where its body starts in the file.
    Msg {
        envelope: Box<Envelope>,
        body_offset: u64,
        body_len: u64,
    },
    /// A tombstone.
    Done { seg: SegNo, id: MessageId },
}

/// What a segment scan found.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    /// Every record of a committed batch, up to the first defect.
    pub(crate) records: Vec<InRecord>,
    /// Where the last committed batch ends (the file's valid length).
    pub(crate) committed_len: u64,
    /// The first defect, if any: a batch without its commit line (cut short) or damage.
    /// Nothing after it is returned.
    pub(crate) defect: Option<SpoolDefect>,
}

fn tomb_text(seg: SegNo, id: &MessageId) -> String {
    format!("{seg:x} {id}")
}

/// Appends one batch (`records` and its commit line) to a segment whose current length is
/// `at`; returns the body offset of each message record, in order, and the new length.
pub(crate) fn encode_batch(
    w: &mut impl Write,
    mut at: u64,
    records: &[OutRecord<'_>],
) -> std::io::Result<(Vec<u64>, u64)> {
    let mut offsets = Vec::new();
    for r in records {
        let head = match r {
            OutRecord::Msg { id, envelope, body } => {
                let mut crc = crc32fast::Hasher::new();
                crc.update(envelope);
                crc.update(body);
                format!(
                    "M {id} {} {} {:08x}\n",
                    envelope.len(),
                    body.len(),
                    crc.finalize()
                )
            }
            OutRecord::Done { seg, id } => {
                let text = tomb_text(*seg, id);
                format!("D {text} {:08x}\n", crc32fast::hash(text.as_bytes()))
            }
        };
        w.write_all(head.as_bytes())?;
        at += head.len() as u64;
        if let OutRecord::Msg { envelope, body, .. } = r {
            w.write_all(envelope)?;
            at += envelope.len() as u64;
            offsets.push(at);
            w.write_all(body)?;
            at += body.len() as u64;
        }
    }
    let commit = format!("C {}\n", records.len());
    w.write_all(commit.as_bytes())?;
    Ok((offsets, at + commit.len() as u64))
}

/// Reads a segment, checking every record (the bodies are streamed through the checksum, not
/// kept). Stops at the first defect.
pub(crate) fn scan_segment(r: &mut impl BufRead) -> Scan {
    let mut scan = Scan::default();
    let mut batch: Vec<InRecord> = Vec::new();
    let mut at: u64 = 0;
    let mut magic = [0u8; SEGMENT_MAGIC.len()];
    if read_full(r, &mut magic) != magic.len() || magic != SEGMENT_MAGIC {
        scan.defect = Some(SpoolDefect::BadMagic);
        return scan;
    }
    at += magic.len() as u64;
    scan.committed_len = at;
    loop {
        let line = match read_line(r) {
            Ok(Some(line)) => line,
            Ok(None) if batch.is_empty() => return scan, // clean end after a commit line
            Ok(None) => {
                scan.defect = Some(SpoolDefect::Truncated { offset: at });
                return scan;
            }
            Err(()) => {
                scan.defect = Some(SpoolDefect::BadRecord { offset: at });
                return scan;
            }
        };
        let line_len = line.len() as u64 + 1;
        let words: Vec<&str> = line.split(' ').collect();
        match words.as_slice() {
            ["C", n] if !batch.is_empty() && *n == batch.len().to_string() => {
                at += line_len;
                scan.records.append(&mut batch);
                scan.committed_len = at;
            }
            ["D", seg, id, crc] => {
                let (Some(seg), Some(id)) = (hex(seg, 16), MessageId::parse(id)) else {
                    scan.defect = Some(SpoolDefect::BadRecord { offset: at });
                    return scan;
                };
                if crc_of(crc) != Some(crc32fast::hash(tomb_text(seg, &id).as_bytes())) {
                    scan.defect = Some(SpoolDefect::Checksum { offset: at });
                    return scan;
                }
                batch.push(InRecord::Done { seg, id });
                at += line_len;
            }
            ["M", id, env_len, body_len, crc] => {
                match read_msg(r, (at, at + line_len), id, env_len, body_len, crc) {
                    Ok((record, next)) => {
                        batch.push(record);
                        at = next;
                    }
                    Err(defect) => {
                        scan.defect = Some(defect);
                        return scan;
                    }
                }
            }
            _ => {
                scan.defect = Some(SpoolDefect::BadRecord { offset: at });
                return scan;
            }
        }
    }
}

/// Reads the envelope and body of an `M` record that starts at `header_at` and whose header
/// line ends at `start`; returns the record and the offset after it.
fn read_msg(
    r: &mut impl BufRead,
    (header_at, start): (u64, u64),
    id: &str,
    env_len: &str,
    body_len: &str,
    crc: &str,
) -> Result<(InRecord, u64), SpoolDefect> {
    let (Some(id), Ok(env_len), Ok(body_len), Some(want)) = (
        MessageId::parse(id),
        env_len.parse::<u64>(),
        body_len.parse::<u64>(),
        crc_of(crc),
    ) else {
        return Err(SpoolDefect::BadRecord { offset: header_at });
    };
    if env_len > MAX_ENVELOPE_BYTES {
        return Err(SpoolDefect::TooLarge { size: env_len });
    }
    let mut json = vec![0u8; usize::try_from(env_len).unwrap_or(usize::MAX)];
    if read_full(r, &mut json) != json.len() {
        return Err(SpoolDefect::Truncated { offset: start });
    }
    let mut crc = crc32fast::Hasher::new();
    crc.update(&json);
    let mut left = body_len;
    while left > 0 {
        let buf = match r.fill_buf() {
            Ok([]) | Err(_) => {
                return Err(SpoolDefect::Truncated {
                    offset: start + env_len + (body_len - left),
                });
            }
            Ok(buf) => buf,
        };
        let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        crc.update(&buf[..n]);
        r.consume(n);
        left -= n as u64;
    }
    if crc.finalize() != want {
        return Err(SpoolDefect::Checksum { offset: header_at });
    }
    let envelope: Envelope = serde_json::from_slice(&json).map_err(|e| SpoolDefect::Envelope {
        line: e.line(),
        column: e.column(),
    })?;
    if envelope.id != id {
        return Err(SpoolDefect::IdMismatch {
            found: envelope.id.to_string(),
        });
    }
    let record = InRecord::Msg {
        envelope: Box::new(envelope),
        body_offset: start + env_len,
        body_len,
    };
    Ok((record, start + env_len + body_len))
}

/// Lower-case hex digits only (a flipped case bit is damage, not another spelling).
fn hex(text: &str, max_digits: usize) -> Option<u64> {
    let ok = !text.is_empty()
        && text.len() <= max_digits
        && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    ok.then(|| u64::from_str_radix(text, 16).ok()).flatten()
}

fn crc_of(text: &str) -> Option<u32> {
    (text.len() == 8)
        .then(|| hex(text, 8))
        .flatten()
        .and_then(|v| u32::try_from(v).ok())
}

/// Reads up to `buf.len()` bytes; returns how many were read (short only at end of file or on
/// an error).
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> usize {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    got
}

/// One header line without its `\n`: `Ok(None)` at a clean end of file, `Err` for an overlong
/// or non-UTF-8 line or one cut off by the end of the file.
fn read_line(r: &mut impl BufRead) -> Result<Option<String>, ()> {
    let mut line = Vec::with_capacity(64);
    r.take(MAX_HEADER as u64 + 1)
        .read_until(b'\n', &mut line)
        .map_err(|_| ())?;
    if line.is_empty() {
        return Ok(None);
    }
    if line.pop() != Some(b'\n') {
        return Err(());
    }
    String::from_utf8(line).map(Some).map_err(|_| ())
}

#[cfg(test)]
#[path = "file_tests.rs"]
mod tests;
