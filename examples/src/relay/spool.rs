//! The durable message spool: `accept` returns only once the message is on disk and fsynced.
//!
//! # Durability contract
//! - [`Spool::accept`] writes `<id>.msg` (envelope + body) as a temporary file, fsyncs it,
//!   renames it into place and fsyncs the spool directory before returning `Ok`. Only then may
//!   the SMTP server answer `250` to the end of DATA (RFC 5321 §4.1.1.4, §6.1).
//! - [`Spool::update`] rewrites the envelope (per-recipient state) the same way, into
//!   `<id>.env`, which supersedes the envelope inside `<id>.msg`. Once it returns, a restart
//!   never re-delivers a recipient marked [`Delivered`](super::RecipientState::Delivered).
//! - **Duplicate window**: if the next hop accepted the message (`250`) and the relay crashed
//!   before `update` returned, the recipient is still `Pending` on disk and is delivered again
//!   after the restart. That window is the time between the peer's `250` and the end of the
//!   envelope fsync; it cannot be closed without the peer's cooperation (RFC 1047).
//! - [`Spool::remove`] unlinks `<id>.msg` first, then `<id>.env`, then fsyncs the directory.
//!   A crash in between leaves an orphan `.env`, which recovery quarantines and reports.
//!
//! # Group commit
//! With [`CommitMode::Group`], operations are handed to one committer task. While it is busy
//! with a batch, new operations queue up; the next batch takes them all (up to `max_batch`),
//! writes and fsyncs its files in parallel (concurrent fsyncs share journal commits), and
//! fsyncs the directory **once** for the batch. A batch holds at most one operation per
//! message, so its operations are independent. Each caller is released when its batch is
//! durable. [`CommitMode::PerMessage`] is the baseline: one
//! directory fsync per operation.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::envelope::{Envelope, MessageId};
use super::error::RelayError;
use super::recover::{self, Recovery};
use super::spool_file::{self, ENV_EXT, MSG_EXT, Op};

/// How operations are made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommitMode {
    /// Concurrent operations share one directory fsync (group commit).
    Group {
        /// Most operations in one batch.
        max_batch: usize,
    },
    /// Every operation has its own fsync round (baseline).
    PerMessage,
}

impl Default for CommitMode {
    fn default() -> Self {
        Self::Group { max_batch: 256 }
    }
}

/// Spool settings and limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SpoolConfig {
    /// Commit mode.
    pub commit: CommitMode,
    /// Largest body accepted, in bytes.
    pub max_body: u64,
    /// Most recipients per message.
    pub max_recipients: usize,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        Self {
            commit: CommitMode::default(),
            max_body: 50 << 20,
            max_recipients: 1000,
        }
    }
}

impl SpoolConfig {
    /// Sets the commit mode.
    #[must_use]
    pub fn with_commit(mut self, commit: CommitMode) -> Self {
        self.commit = commit;
        self
    }

    /// Sets the largest body accepted.
    #[must_use]
    pub fn with_max_body(mut self, max_body: u64) -> Self {
        self.max_body = max_body;
        self
    }
}

type Job = (Op, oneshot::Sender<Result<(), RelayError>>);

struct Inner {
    dir: PathBuf,
    config: SpoolConfig,
    committer: Option<mpsc::Sender<Job>>,
}

/// A handle on the spool directory; cheap to clone and share between tasks.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use smtp_tls_examples::relay::{Envelope, Spool, SpoolConfig};
/// let dir = tempfile::tempdir()?;
/// let (spool, recovery) = Spool::open(dir.path(), SpoolConfig::default()).await?;
/// assert!(recovery.messages.is_empty());
/// let env = Envelope::new("a@example.org", ["b@example.net"], std::time::SystemTime::now());
/// let env = spool.accept(env, b"Subject: hi\r\n\r\nhello\r\n".to_vec()).await?;
/// assert_eq!(spool.read_body(&env.id).await?, b"Subject: hi\r\n\r\nhello\r\n");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Spool {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool")
            .field("dir", &self.inner.dir)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Spool {
    /// Opens (creating if needed) the spool at `dir`, recovers its messages and quarantines
    /// damaged files. Must be called inside a tokio runtime (it starts the committer task).
    pub async fn open(dir: &Path, config: SpoolConfig) -> Result<(Self, Recovery), RelayError> {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| RelayError::io("mkdir", dir, &e))?;
        let dir = tokio::fs::canonicalize(dir)
            .await
            .map_err(|e| RelayError::io("canonicalize", dir, &e))?;
        let d = dir.clone();
        let recovery = tokio::task::spawn_blocking(move || recover::recover(&d))
            .await
            .map_err(|_| RelayError::CommitterStopped)??;
        let committer = match config.commit {
            CommitMode::Group { max_batch } => {
                let (tx, rx) = mpsc::channel(max_batch.max(1) * 4);
                tokio::spawn(committer(dir.clone(), rx, max_batch.max(1)));
                Some(tx)
            }
            CommitMode::PerMessage => None,
        };
        let inner = Inner {
            dir,
            config,
            committer,
        };
        Ok((
            Self {
                inner: Arc::new(inner),
            },
            recovery,
        ))
    }

    /// The spool directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Stores a new message durably; returns its envelope (with `body_len` set) once the
    /// message file and the directory entry are fsynced.
    pub async fn accept(
        &self,
        mut envelope: Envelope,
        body: Vec<u8>,
    ) -> Result<Envelope, RelayError> {
        let cfg = &self.inner.config;
        if envelope.recipients.is_empty() {
            return Err(RelayError::NoRecipient);
        }
        limit(
            "recipients",
            envelope.recipients.len() as u64,
            cfg.max_recipients as u64,
        )?;
        limit("body bytes", body.len() as u64, cfg.max_body)?;
        envelope.body_len = body.len() as u64;
        let op = Op::Write {
            path: self.path(&envelope.id, MSG_EXT),
            envelope: encode(&envelope)?,
            body,
        };
        self.commit(op).await?;
        Ok(envelope)
    }

    /// Durably replaces the envelope of a spooled message (per-recipient delivery state).
    pub async fn update(&self, envelope: &Envelope) -> Result<(), RelayError> {
        let msg = self.path(&envelope.id, MSG_EXT);
        if !tokio::fs::try_exists(&msg).await.unwrap_or(false) {
            return Err(RelayError::UnknownMessage {
                id: envelope.id.to_string(),
            });
        }
        let op = Op::Write {
            path: self.path(&envelope.id, ENV_EXT),
            envelope: encode(envelope)?,
            body: Vec::new(),
        };
        self.commit(op).await
    }

    /// Durably removes a message (all recipients final, DSN if any already queued).
    pub async fn remove(&self, id: &MessageId) -> Result<(), RelayError> {
        let paths = vec![self.path(id, MSG_EXT), self.path(id, ENV_EXT)];
        self.commit(Op::Remove { paths }).await
    }

    /// Reads a spooled message's body.
    pub async fn read_body(&self, id: &MessageId) -> Result<Vec<u8>, RelayError> {
        let path = self.path(id, MSG_EXT);
        if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
            return Err(RelayError::UnknownMessage { id: id.to_string() });
        }
        tokio::task::spawn_blocking(move || spool_file::read_body(&path))
            .await
            .map_err(|_| RelayError::CommitterStopped)?
    }

    fn path(&self, id: &MessageId, ext: &str) -> PathBuf {
        self.inner.dir.join(format!("{id}.{ext}"))
    }

    async fn commit(&self, op: Op) -> Result<(), RelayError> {
        if let Some(tx) = &self.inner.committer {
            let (done, wait) = oneshot::channel();
            tx.send((op, done))
                .await
                .map_err(|_| RelayError::CommitterStopped)?;
            wait.await.map_err(|_| RelayError::CommitterStopped)?
        } else {
            let dir = self.inner.dir.clone();
            let mut results =
                tokio::task::spawn_blocking(move || spool_file::run_batch(&dir, vec![op]))
                    .await
                    .map_err(|_| RelayError::CommitterStopped)?;
            results.pop().unwrap_or(Err(RelayError::CommitterStopped))
        }
    }
}

fn limit(what: &'static str, actual: u64, limit: u64) -> Result<(), RelayError> {
    if actual > limit {
        Err(RelayError::LimitExceeded {
            what,
            actual,
            limit,
        })
    } else {
        Ok(())
    }
}

fn encode(envelope: &Envelope) -> Result<Vec<u8>, RelayError> {
    serde_json::to_vec(envelope).map_err(|_| RelayError::Unencodable {
        id: envelope.id.to_string(),
    })
}

/// The group-commit loop: take every queued operation (up to `max_batch`, at most one per
/// message so a batch's operations are independent), run them with a single directory fsync,
/// release their waiters; repeat until every handle is dropped.
async fn committer(dir: PathBuf, mut rx: mpsc::Receiver<Job>, max_batch: usize) {
    let mut carry: Option<Job> = None;
    loop {
        let first = match carry.take() {
            Some(job) => job,
            None => match rx.recv().await {
                Some(job) => job,
                None => return,
            },
        };
        let mut seen: HashSet<OsString> =
            first.0.message().map(OsStr::to_owned).into_iter().collect();
        let mut jobs = vec![first];
        // Let tasks that are already running hand in their operations before the batch closes
        // (a few microseconds; without it a burst is split into a batch of one and the rest).
        tokio::task::yield_now().await;
        while jobs.len() < max_batch {
            let Ok(job) = rx.try_recv() else { break };
            match job.0.message() {
                Some(m) if !seen.insert(m.to_owned()) => {
                    carry = Some(job);
                    break;
                }
                _ => jobs.push(job),
            }
        }
        let (ops, waiters): (Vec<Op>, Vec<_>) = jobs.into_iter().unzip();
        let d = dir.clone();
        let results = tokio::task::spawn_blocking(move || spool_file::run_batch(&d, ops)).await;
        match results {
            Ok(results) => {
                for (w, r) in waiters.into_iter().zip(results) {
                    let _ = w.send(r);
                }
            }
            Err(_) => {
                for w in waiters {
                    let _ = w.send(Err(RelayError::CommitterStopped));
                }
            }
        }
    }
}
