//! The durable message spool: `accept` returns only once the message is on disk and fsynced.
//!
//! # Durability contract
//! - [`Spool::accept`] returns `Ok` once the message (envelope + body) is in a segment file
//!   that was written as a temporary file, fsynced, renamed into place, and the spool directory
//!   fsynced. Only then may the SMTP server answer `250` to the end of DATA (RFC 5321 §4.1.1.4,
//!   §6.1).
//! - [`Spool::update`] writes the envelope (per-recipient state) the same way into `<id>.env`,
//!   which supersedes the envelope in the segment. Once it returns, a restart never re-delivers
//!   a recipient marked [`Delivered`](crate::RecipientState::Delivered).
//! - [`Spool::remove`] makes a message's end durable: its segment is unlinked if nothing else
//!   in it is live, else a tombstone is written (see `index`). Once it returns, a restart
//!   never re-delivers the message.
//! - **Duplicate window**: if the next hop accepted the message (`250`) and the relay crashed
//!   before `update`/`remove` returned, the recipient is still `Pending` on disk and is
//!   delivered again after the restart. That window is the time between the peer's `250` and
//!   the end of the commit; it cannot be closed without the peer's cooperation (RFC 1047).
//!
//! # Group commit
//! Operations are handed to one committer task. While it is busy with a batch, new operations
//! queue up; the next batch takes them all (up to `max_batch`, at most one per message) and
//! makes them durable together: **one** segment file (every accepted message and tombstone of
//! the batch) with one fsync, the envelope overlays, the unlinks, and **one** directory fsync.
//! Each caller is released when its batch is durable. [`CommitMode::PerMessage`] is the
//! baseline: a batch of one, so one segment, one fsync and one directory fsync per operation.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{mpsc, oneshot};

use crate::envelope::{Envelope, MessageId};
use crate::error::RelayError;
use commit::{BodyCache, Committer, Job, Op};
use file::SegNo;
use index::Index;

mod commit;
mod file;
mod index;
mod io;
mod list;
mod recover;

pub use list::list_spool;
pub use recover::{QUARANTINE_DIR, Quarantined, Recovery};

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

/// Tests: which commits fail.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failing {
    Nothing,
    Everything,
    Removals,
}

struct Inner {
    dir: PathBuf,
    config: SpoolConfig,
    /// Tests: commits fail (a spool on a failing disk).
    #[cfg(test)]
    failing: Mutex<Failing>,
    index: Arc<Mutex<Index>>,
    cache: Arc<Mutex<BodyCache>>,
    committer: mpsc::Sender<Job>,
}

/// A handle on the spool directory; cheap to clone and share between tasks.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use relay::{Envelope, Spool, SpoolConfig};
/// let dir = tempfile::tempdir()?;
/// let (spool, recovery) = Spool::open(dir.path(), SpoolConfig::default()).await?;
/// assert!(recovery.messages.is_empty());
/// let env = Envelope::new("a@example.org", ["b@example.net"], std::time::SystemTime::now());
/// let env = spool.accept(env, b"Subject: hi\r\n\r\nhello\r\n".to_vec()).await?;
/// assert_eq!(spool.read_body(&env.id).await?, b"Subject: hi\r\n\r\nhello\r\n");
/// spool.remove(&env.id).await?;
/// assert_eq!(spool.segment_of(&env.id), None);
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
        let (recovery, index) = tokio::task::spawn_blocking(move || recover::recover(&d))
            .await
            .map_err(|_| RelayError::CommitterStopped)??;
        let max_batch = match config.commit {
            CommitMode::Group { max_batch } => max_batch.max(1),
            CommitMode::PerMessage => 1,
        };
        let index = Arc::new(Mutex::new(index));
        let cache = Arc::new(Mutex::new(BodyCache::default()));
        let (tx, rx) = mpsc::channel(max_batch * 4);
        let committer = Committer {
            dir: dir.clone(),
            index: index.clone(),
            cache: cache.clone(),
            max_batch,
        };
        tokio::spawn(committer.run(rx));
        let inner = Inner {
            dir,
            config,
            #[cfg(test)]
            failing: Mutex::new(Failing::Nothing),
            index,
            cache,
            committer: tx,
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

    /// The segment file that holds a spooled message, if it is in the spool.
    #[must_use]
    pub fn segment_of(&self, id: &MessageId) -> Option<PathBuf> {
        let loc = lock(&self.inner.index).locate(id)?;
        Some(self.segment_path(loc.seg))
    }

    /// Messages in the spool.
    #[must_use]
    pub fn len(&self) -> usize {
        lock(&self.inner.index).len()
    }

    /// Whether the spool holds no message.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stores a new message durably; returns its envelope (with `body_len` set) once the
    /// segment holding it and the directory entry are fsynced.
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
        let op = Op::Accept {
            id: envelope.id.clone(),
            envelope: encode(&envelope)?,
            body: Arc::new(body),
        };
        self.commit(op).await?;
        Ok(envelope)
    }

    /// Durably replaces the envelope of a spooled message (per-recipient delivery state).
    pub async fn update(&self, envelope: &Envelope) -> Result<(), RelayError> {
        let op = Op::Update {
            id: envelope.id.clone(),
            envelope: encode(envelope)?,
        };
        self.commit(op).await
    }

    /// Durably removes a message (all recipients final, DSN if any already queued). Removing a
    /// message that is not in the spool is not an error.
    pub async fn remove(&self, id: &MessageId) -> Result<(), RelayError> {
        self.commit(Op::Remove { id: id.clone() }).await
    }

    /// Reads a spooled message's body.
    pub async fn read_body(&self, id: &MessageId) -> Result<Vec<u8>, RelayError> {
        if let Some(body) = lock(&self.inner.cache).bodies.get(id) {
            return Ok(body.as_ref().clone());
        }
        let loc = lock(&self.inner.index)
            .locate(id)
            .ok_or_else(|| RelayError::UnknownMessage { id: id.to_string() })?;
        let path = self.segment_path(loc.seg);
        tokio::task::spawn_blocking(move || io::read_at(&path, loc.body_offset, loc.body_len))
            .await
            .map_err(|_| RelayError::CommitterStopped)?
    }

    fn segment_path(&self, no: SegNo) -> PathBuf {
        self.inner.dir.join(file::segment_name(no))
    }

    /// Tests: makes commits fail (or succeed again), like a failing disk.
    #[cfg(test)]
    pub(crate) fn set_failing(&self, failing: Failing) {
        *lock(&self.inner.failing) = failing;
    }

    async fn commit(&self, op: Op) -> Result<(), RelayError> {
        #[cfg(test)]
        if match *lock(&self.inner.failing) {
            Failing::Nothing => false,
            Failing::Everything => true,
            Failing::Removals => matches!(op, Op::Remove { .. }),
        } {
            return Err(RelayError::io(
                "write",
                self.dir(),
                &std::io::Error::from(std::io::ErrorKind::StorageFull),
            ));
        }
        let (done, wait) = oneshot::channel();
        self.inner
            .committer
            .send((op, done))
            .await
            .map_err(|_| RelayError::CommitterStopped)?;
        wait.await.map_err(|_| RelayError::CommitterStopped)?
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
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
