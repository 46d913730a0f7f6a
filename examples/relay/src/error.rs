//! Errors of the relay core: the spool, the retry queue and DSN generation, and (wrapped) the
//! delivery engine's [`OutboundError`](crate::outbound::OutboundError).

use std::io;
use std::path::PathBuf;

/// What went wrong in the relay core. Every file-system variant names the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// A file-system operation on a spool file failed.
    #[error("spool: {op} {path}: {kind} (os error {os_code:?})")]
    Io {
        /// The operation (`create`, `write`, `fsync`, `rename`, ...).
        op: &'static str,
        /// The file or directory it was applied to.
        path: PathBuf,
        /// The I/O error kind.
        kind: io::ErrorKind,
        /// The raw OS error number, when there is one.
        os_code: Option<i32>,
    },
    /// A spool file does not have the expected layout (truncated, half-written, garbage).
    #[error("spool: corrupt file {path}: {defect}")]
    Corrupt {
        /// The offending file.
        path: PathBuf,
        /// What is wrong with it.
        defect: SpoolDefect,
    },
    /// A file in the spool directory that the spool did not write.
    #[error("spool: unknown file {path}")]
    UnknownFile {
        /// The offending file.
        path: PathBuf,
    },
    /// An envelope overlay (`.env`) whose message is in no segment.
    #[error("spool: orphan file {path} (its message is in no segment)")]
    Orphan {
        /// The offending file.
        path: PathBuf,
    },
    /// A write was left unfinished (`.tmp` file) by a crash; its client never got `250`.
    #[error("spool: unfinished write {path} (never acknowledged)")]
    Unfinished {
        /// The offending file.
        path: PathBuf,
    },
    /// No message with this id is in the spool.
    #[error("spool: no message {id}")]
    UnknownMessage {
        /// The message id asked for.
        id: String,
    },
    /// The spool's committer task has stopped (the runtime is shutting down).
    #[error("spool: committer stopped")]
    CommitterStopped,
    /// An envelope field exceeds a spool limit.
    #[error("spool: {what} is {actual}, limit {limit}")]
    LimitExceeded {
        /// Which quantity (`recipients`, `body bytes`, `address bytes`).
        what: &'static str,
        /// Its value.
        actual: u64,
        /// The limit.
        limit: u64,
    },
    /// The envelope could not be serialised (a time before 1970).
    #[error("spool: envelope of {id} cannot be encoded")]
    Unencodable {
        /// The message id.
        id: String,
    },
    /// A message with no recipient cannot be queued.
    #[error("spool: message has no recipient")]
    NoRecipient,
    /// A retry policy whose values contradict each other.
    #[error("retry policy: {reason}")]
    InvalidRetryPolicy {
        /// Which rule was broken.
        reason: &'static str,
    },
    /// RFC 3464 §2 / RFC 5321 §4.5.5: no DSN is ever sent for a message with a null reverse-path.
    #[error("dsn: no bounce for a bounce (the original sender is the null reverse-path)")]
    NullSender,
    /// A DSN was asked for without a recipient to report on.
    #[error("dsn: nothing to report (no recipient)")]
    NothingToReport,
    /// The delivery engine refused its configuration or could not start (the error names the
    /// `delivery.…` key).
    #[error(transparent)]
    Outbound(#[from] crate::outbound::OutboundError),
}

/// The ways a spool file can be damaged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpoolDefect {
    /// The file does not start with the spool's magic line.
    #[error("bad magic line")]
    BadMagic,
    /// The header line is not `SPOOL1 <envelope-len> <body-len>`.
    #[error("bad header line")]
    BadHeader,
    /// The file is shorter or longer than its header says.
    #[error("length mismatch: header says {expected} bytes, file has {actual}")]
    LengthMismatch {
        /// Length announced by the header.
        expected: u64,
        /// Actual length.
        actual: u64,
    },
    /// The envelope is not valid JSON of the expected shape.
    #[error("envelope does not parse at line {line}, column {column}")]
    Envelope {
        /// 1-based line of the JSON error.
        line: usize,
        /// 1-based column of the JSON error.
        column: usize,
    },
    /// The envelope names another message than its file name.
    #[error("envelope id {found} does not match file name")]
    IdMismatch {
        /// The id found inside the envelope.
        found: String,
    },
    /// The file (or a record's envelope) is larger than the spool accepts.
    #[error("file too large ({size} bytes)")]
    TooLarge {
        /// File size.
        size: u64,
    },
    /// A segment ends inside a record or before its `END` line (cut short).
    #[error("truncated at byte {offset}")]
    Truncated {
        /// Where the file ends (or the cut record starts).
        offset: u64,
    },
    /// A segment record's header line, or the `END` line, is malformed.
    #[error("malformed record at byte {offset}")]
    BadRecord {
        /// Where the record starts.
        offset: u64,
    },
    /// A segment record's content does not match its checksum.
    #[error("checksum mismatch in the record at byte {offset}")]
    Checksum {
        /// Where the record starts.
        offset: u64,
    },
}

impl RelayError {
    /// Wraps an [`io::Error`] with the operation and path.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, err: &io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            kind: err.kind(),
            os_code: err.raw_os_error(),
        }
    }

    /// The file this error is about, if any.
    #[must_use]
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            Self::Io { path, .. }
            | Self::Corrupt { path, .. }
            | Self::UnknownFile { path }
            | Self::Orphan { path }
            | Self::Unfinished { path } => Some(path),
            _ => None,
        }
    }
}
