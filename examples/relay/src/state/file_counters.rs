//! The file backend of the report counters: an append-only journal replayed on open, and one
//! claim file per claim name.
//!
//! - `DIR/counters.journal`: one JSON record per line (`incr`, `meta`, `delete-day`), appended
//!   under a mutex, so concurrent increments from many tasks are serialised and sum exactly.
//!   No async worker ever waits for that mutex nor fsyncs: an update appends in place only
//!   when the mutex is free at once (one `write` to the page cache, never an fsync); else,
//!   and for everything that may take long (compaction and the retention sweep, with their
//!   fsyncs, `delete_day`, the reads), the work goes to a writer thread of the store's own,
//!   which the task awaits without holding its worker. A compaction an in-place update makes
//!   due is left to that thread too. A task whose future is dropped after handing its update
//!   over does not undo it (it is written, and counted, as if it had waited). A record is
//!   written whole with one `write` before it is counted in memory; a failed write is cut
//!   off again. On open the journal is replayed — a torn last line (a crash in the middle of
//!   a write) is ignored — and rewritten as a snapshot (temporary file, fsync, rename, fsync
//!   of the directory); it is compacted the same way when it grows and after `delete_day`.
//!   Increments are not fsynced one by one: a crashed relay process loses none (the kernel has
//!   them), a power loss may lose the last seconds of counts, never the file.
//!   Each record carries its time (`at`, Unix ms): a day not updated for
//!   [`COUNTER_RETENTION`] (never reported: its run failed or was given up) is dropped on open
//!   and when a new day begins, so the journal does not grow forever.
//!   A TLS-RPT failure field is bounded per bucket as in [`ReportCounters::incr`] (the
//!   bucket's fields are in memory: the bound holds across restarts).
//! - `DIR/claims/NAME.claim`: `{"expires_at_ms":..,"done":..,"owner":..}`, created atomically
//!   and exclusively (written to a temporary file, then hard-linked to its name: the link
//!   fails if the name exists, and a reader never sees a half-written claim); an expired
//!   claim is replaced by a rename; a claim of this store's that is not done is removed by
//!   `release`.
//! - `DIR/lock`: held (`flock`) while the store is open. Two relay processes on one data
//!   directory are not supported by this backend — the second one's open fails; relays that
//!   share state use the Redis backend.

use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::counters::{
    BucketData, DONE_RETENTION, FIELD_BOUND, ReportCounters, check_claim, check_day, check_meta,
    check_name, now_ms, overflow_of,
};
use super::error::StateError;
use super::file_journal::{
    Days, JOURNAL_FILE, Journal, Record, Replay, TEMP_COUNTER, live, prune, replay, sync_dir,
    write_new_synced, write_snapshot,
};
use smtp_tls_policy::tlsrpt::SUCCESS_FIELD;

/// The claims' directory in the state directory.
pub const CLAIMS_DIR: &str = "claims";
/// The lock file held while the store is open.
pub const LOCK_FILE: &str = "lock";

/// Operations waiting for the journal's writer at most (then the tasks asking wait, without
/// holding a worker, for room in the queue).
const QUEUED_JOBS: usize = 4096;

/// One operation on the journal, run by its writer thread (holding the journal's mutex).
type Job = Box<dyn FnOnce(&mut Journal) + Send>;

struct Inner {
    dir: PathBuf,
    journal: Arc<Mutex<Journal>>,
    /// The journal's writer thread takes its jobs here (`None` once the store is dropped).
    jobs: Option<tokio::sync::mpsc::Sender<Job>>,
    writer: Option<JoinHandle<()>>,
    claims: Mutex<()>,
    /// This store's claim owner token.
    token: String,
    /// Held open (and locked) while the store lives, released after the writer stopped.
    _lock: File,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // the writer stops once its queue is empty (the jobs of waits that were given up
        // included): they are written before the directory's lock is released
        self.jobs.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// The report counters in files under one directory (see the module documentation).
#[derive(Clone)]
pub struct FileCounters {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for FileCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileCounters")
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

impl FileCounters {
    /// Opens (creating it) the store in `dir`: takes its lock, replays and compacts the
    /// journal, removes expired claims.
    pub fn open(dir: impl Into<PathBuf>) -> Result<(Self, Replay), StateError> {
        let dir = dir.into();
        fs::create_dir_all(dir.join(CLAIMS_DIR)).map_err(|e| StateError::io("create", &dir, &e))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| StateError::io("open", &lock_path, &e))?;
        if let Err(e) =
            rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive)
        {
            return Err(StateError::Io {
                op: "lock",
                path: lock_path,
                detail: format!(
                    "{e}: the state directory is used by another relay process \
                     (the file backend serves one relay; share state through Redis)"
                ),
            });
        }
        let path = dir.join(JOURNAL_FILE);
        let mut days = Days::new();
        let replay = replay(&path, &mut days)?;
        let pruned = prune(&mut days, now_ms());
        if pruned > 0 {
            tracing::info!(
                journal = %path.display(),
                days = pruned,
                "report counters: days never reported dropped after their retention"
            );
        }
        if replay.corrupt > 0 || replay.torn_bytes > 0 {
            tracing::warn!(
                journal = %path.display(),
                corrupt_lines = replay.corrupt,
                torn_bytes = replay.torn_bytes,
                "report counters: unreadable journal lines skipped"
            );
        }
        let (file, len) = write_snapshot(&dir, &days)?;
        remove_expired_claims(&dir.join(CLAIMS_DIR));
        let journal = Arc::new(Mutex::new(Journal {
            dir: dir.clone(),
            file,
            len,
            live: live(&days),
            days,
            appended: 0,
            pruned: false,
            compaction_queued: false,
            #[cfg(test)]
            compacted_on: Vec::new(),
        }));
        let (jobs, mut queue) = tokio::sync::mpsc::channel::<Job>(QUEUED_JOBS);
        let held = Arc::clone(&journal);
        let writer = std::thread::Builder::new()
            .name("state-journal".into())
            .spawn(move || {
                while let Some(job) = queue.blocking_recv() {
                    let mut journal = held.lock().unwrap_or_else(PoisonError::into_inner);
                    // A job that panics (a bug) fails its own call only (its reply is never
                    // sent); the thread goes on, so reads, deletions and compactions go on.
                    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        job(&mut journal)
                    }));
                    if ran.is_err() {
                        tracing::error!(
                            journal = %journal.dir.join(JOURNAL_FILE).display(),
                            "report counters: a journal operation panicked; that call failed, \
                             the journal's writer goes on"
                        );
                    }
                }
            })
            .map_err(|e| StateError::io("spawn the writer of", &path, &e))?;
        let inner = Inner {
            dir,
            journal,
            jobs: Some(jobs),
            writer: Some(writer),
            claims: Mutex::new(()),
            token: format!("{}-{:016x}", std::process::id(), fastrand::u64(..)),
            _lock: lock,
        };
        Ok((
            Self {
                inner: Arc::new(inner),
            },
            replay,
        ))
    }

    /// The state directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Runs `f` on the journal's writer thread and waits for its result without holding an
    /// async worker (see the module documentation).
    async fn with_journal<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Journal) -> Result<T, StateError> + Send + 'static,
    ) -> Result<T, StateError> {
        let stopped = || StateError::Io {
            op: "write",
            path: self.inner.dir.join(JOURNAL_FILE),
            detail: "the journal's writer thread stopped".into(),
        };
        let Some(jobs) = self.inner.jobs.as_ref() else {
            return Err(stopped());
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |j| {
            let _ = tx.send(f(j));
        });
        jobs.send(job).await.map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// Appends the record `make` builds (see [`Journal::append`]): in place when the
    /// journal's mutex is free at once, a compaction that becomes due handed to the writer
    /// thread; else on the writer thread.
    async fn update<F>(&self, make: F) -> Result<(), StateError>
    where
        F: FnOnce(&Days) -> Option<Record<'static>> + Send + 'static,
    {
        match self.update_in_place(make) {
            Ok(done) => done,
            Err(make) => {
                self.with_journal(move |j| {
                    if j.append(make)? {
                        j.compact()?;
                    }
                    Ok(())
                })
                .await
            }
        }
    }

    /// [`Self::update`] in place if the journal's mutex is free at once; else `make` back.
    fn update_in_place<F>(&self, make: F) -> Result<Result<(), StateError>, F>
    where
        F: FnOnce(&Days) -> Option<Record<'static>>,
    {
        let mut j = match self.inner.journal.try_lock() {
            Ok(j) => j,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return Err(make),
        };
        let due = match j.append(make) {
            Ok(due) => due,
            Err(e) => return Ok(Err(e)),
        };
        if due
            && !j.compaction_queued
            && let Some(jobs) = self.inner.jobs.as_ref()
        {
            let job: Job = Box::new(|j| {
                j.compaction_queued = false;
                if j.compaction_due()
                    && let Err(e) = j.compact()
                {
                    tracing::warn!(error = %e, "report counters: journal not compacted, tried again later");
                }
            });
            // a full queue: the next update tries again (the compaction is still due)
            j.compaction_queued = jobs.try_send(job).is_ok();
        }
        Ok(Ok(()))
    }
}

impl FileCounters {
    fn claim_path(&self, name: &str) -> PathBuf {
        self.inner
            .dir
            .join(CLAIMS_DIR)
            .join(format!("{name}.claim"))
    }

    /// Held while a claim file is read and replaced (one claim operation at a time).
    fn claims_lock(&self) -> MutexGuard<'_, ()> {
        self.inner
            .claims
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes the claim files' names durable.
    fn sync_claims(&self) -> Result<(), StateError> {
        sync_dir(&self.inner.dir.join(CLAIMS_DIR))
    }

    /// Replaces the claim file `path` of `name` with one of ours expiring at
    /// `expires_at_ms`, durably (the temporary file is removed if the rename fails).
    fn replace_claim(
        &self,
        name: &str,
        path: &Path,
        expires_at_ms: u64,
        done: bool,
    ) -> Result<(), StateError> {
        let tmp = write_claim_temp(
            &self.inner.dir,
            name,
            expires_at_ms,
            done,
            &self.inner.token,
        )?;
        if let Err(e) = fs::rename(&tmp, path) {
            let _ = fs::remove_file(&tmp);
            return Err(StateError::io("rename", path, &e));
        }
        self.sync_claims()
    }

    fn claim_sync(&self, name: &str, ttl: Duration) -> Result<bool, StateError> {
        let _one = self.claims_lock();
        let path = self.claim_path(name);
        let expires = expiry(ttl);
        let tmp = write_claim_temp(&self.inner.dir, name, expires, false, &self.inner.token)?;
        let taken = match fs::hard_link(&tmp, &path) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                match read_claim(&path) {
                    Some(c) if c.expires_at_ms > now_ms() => false,
                    // expired (or unreadable: never written by us, so never whole) → replace
                    _ => {
                        fs::rename(&tmp, &path).map_err(|e| StateError::io("rename", &path, &e))?;
                        true
                    }
                }
            }
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(StateError::io("link", &path, &e));
            }
        };
        let _ = fs::remove_file(&tmp);
        if taken {
            self.sync_claims()?;
        }
        Ok(taken)
    }

    fn release_sync(&self, name: &str) -> Result<(), StateError> {
        let _one = self.claims_lock();
        let path = self.claim_path(name);
        match read_claim(&path) {
            Some(c) if !c.done && c.owner == self.inner.token => {
                fs::remove_file(&path).map_err(|e| StateError::io("remove", &path, &e))?;
                self.sync_claims()
            }
            _ => Ok(()),
        }
    }

    fn extend_sync(&self, name: &str, ttl: Duration) -> Result<bool, StateError> {
        let _one = self.claims_lock();
        let path = self.claim_path(name);
        // ours and not done: nobody else took it (a taker replaces the file)
        let ours = read_claim(&path).is_some_and(|c| !c.done && c.owner == self.inner.token);
        if !ours {
            return Ok(false);
        }
        self.replace_claim(name, &path, expiry(ttl), false)?;
        Ok(true)
    }

    fn done_sync(&self, name: &str) -> Result<(), StateError> {
        let _one = self.claims_lock();
        let path = self.claim_path(name);
        self.replace_claim(name, &path, expiry(DONE_RETENTION), true)
    }

    /// Test hook: keeps the journal busy (as a long compaction would) from another thread
    /// until `release` says so (or is dropped); `held` is told once it is.
    #[cfg(test)]
    pub(crate) fn hold_journal_for_test(
        &self,
        held: std::sync::mpsc::Sender<()>,
        release: std::sync::mpsc::Receiver<()>,
    ) {
        let job: Job = Box::new(move |_| {
            let _ = held.send(());
            let _ = release.recv();
        });
        if let Some(jobs) = self.inner.jobs.as_ref() {
            let _ = jobs.blocking_send(job);
        }
    }

    /// Test hook: a journal operation that panics, on the writer thread.
    #[cfg(test)]
    pub(crate) async fn panic_on_writer_for_test(&self) -> Result<(), StateError> {
        self.with_journal(|_| -> Result<(), StateError> { panic!("a bug in a journal operation") })
            .await
    }

    /// Test hook: the threads the compactions since the open ran on (after every operation
    /// asked for before).
    #[cfg(test)]
    pub(crate) async fn compacted_on_for_test(&self) -> Vec<Option<String>> {
        self.with_journal(|j| Ok(j.compacted_on.clone()))
            .await
            .unwrap_or_default()
    }

    /// Runs a blocking (fsyncing) operation off the async workers.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Self) -> Result<T, StateError> + Send + 'static,
    ) -> Result<T, StateError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || f(&this))
            .await
            .map_err(|e| StateError::Io {
                op: "task",
                path: PathBuf::new(),
                detail: e.to_string(),
            })?
    }
}

impl ReportCounters for FileCounters {
    async fn incr(&self, day: &str, bucket: &str, field: &str, by: u64) -> Result<(), StateError> {
        check_day(day)?;
        check_name("bucket", bucket)?;
        check_name("field", field)?;
        let (day, bucket, field) = (day.to_owned(), bucket.to_owned(), field.to_owned());
        self.update(move |days| {
            let b = days.get(&day).and_then(|d| d.buckets.get(&bucket));
            // a new field of a bucket at the bound: its overflow field (decoded only then)
            let at_bound = b.is_some_and(|b| {
                !b.fields.contains_key(&field)
                    && b.fields.len() - usize::from(b.fields.contains_key(SUCCESS_FIELD))
                        >= FIELD_BOUND
            });
            let field = at_bound
                .then(|| overflow_of(&field))
                .flatten()
                .unwrap_or(field);
            Some(Record::Incr {
                day: day.into(),
                bucket: bucket.into(),
                field: field.into(),
                by,
                at: Some(now_ms()),
            })
        })
        .await
    }

    async fn set_meta(&self, day: &str, bucket: &str, value: &str) -> Result<(), StateError> {
        check_day(day)?;
        check_name("bucket", bucket)?;
        check_meta(value)?;
        let (day, bucket, value) = (day.to_owned(), bucket.to_owned(), value.to_owned());
        self.update(move |days| {
            let set = days
                .get(&day)
                .and_then(|d| d.buckets.get(&bucket))
                .is_some_and(|b| b.meta.is_some());
            (!set).then(|| Record::Meta {
                day: day.into(),
                bucket: bucket.into(),
                value: value.into(),
                at: Some(now_ms()),
            })
        })
        .await
    }

    async fn buckets(&self, day: &str) -> Result<Vec<String>, StateError> {
        check_day(day)?;
        let day = day.to_owned();
        self.with_journal(move |j| {
            Ok(j.days
                .get(&day)
                .map(|d| d.buckets.keys().cloned().collect())
                .unwrap_or_default())
        })
        .await
    }

    async fn read(&self, day: &str, bucket: &str) -> Result<BucketData, StateError> {
        check_day(day)?;
        check_name("bucket", bucket)?;
        let (day, bucket) = (day.to_owned(), bucket.to_owned());
        self.with_journal(move |j| {
            let Some(b) = j.days.get(&day).and_then(|d| d.buckets.get(&bucket)) else {
                return Ok(BucketData::default());
            };
            Ok(BucketData {
                meta: b.meta.clone(),
                fields: b.fields.iter().map(|(f, n)| (f.clone(), *n)).collect(),
            })
        })
        .await
    }

    async fn claim(&self, name: &str, ttl: Duration) -> Result<bool, StateError> {
        check_claim(name)?;
        let name = name.to_owned();
        self.blocking(move |s| s.claim_sync(&name, ttl)).await
    }

    async fn release(&self, name: &str) -> Result<(), StateError> {
        check_claim(name)?;
        let name = name.to_owned();
        self.blocking(move |s| s.release_sync(&name)).await
    }

    async fn done(&self, name: &str) -> Result<(), StateError> {
        check_claim(name)?;
        let name = name.to_owned();
        self.blocking(move |s| s.done_sync(&name)).await
    }

    async fn extend(&self, name: &str, ttl: Duration) -> Result<bool, StateError> {
        check_claim(name)?;
        let name = name.to_owned();
        self.blocking(move |s| s.extend_sync(&name, ttl)).await
    }

    async fn is_done(&self, name: &str) -> Result<bool, StateError> {
        check_claim(name)?;
        let path = self.claim_path(name);
        let claim = self.blocking(move |_| Ok(read_claim(&path))).await?;
        Ok(claim.is_some_and(|c| c.done && c.expires_at_ms > now_ms()))
    }

    async fn days(&self) -> Result<Vec<String>, StateError> {
        self.with_journal(|j| Ok(j.days.keys().cloned().collect()))
            .await
    }

    async fn delete_day(&self, day: &str) -> Result<(), StateError> {
        check_day(day)?;
        let day = day.to_owned();
        self.with_journal(move |j| j.delete_day(&day)).await
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct ClaimFile {
    expires_at_ms: u64,
    done: bool,
    /// The store that took it (absent in claims of older versions).
    #[serde(default)]
    owner: String,
}

fn write_claim_temp(
    dir: &Path,
    name: &str,
    expires_at_ms: u64,
    done: bool,
    owner: &str,
) -> Result<PathBuf, StateError> {
    let tmp = dir.join(CLAIMS_DIR).join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let body = serde_json::to_vec(&ClaimFile {
        expires_at_ms,
        done,
        owner: owner.to_owned(),
    })
    .unwrap_or_default();
    write_new_synced(&tmp, &body)?;
    Ok(tmp)
}

/// Now plus `d`, in ms since the epoch.
fn expiry(d: Duration) -> u64 {
    now_ms().saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn read_claim(path: &Path) -> Option<ClaimFile> {
    let mut bytes = Vec::new();
    File::open(path)
        .ok()?
        .take(4096)
        .read_to_end(&mut bytes)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Removes the claim files that expired, and temporary files left by a crash.
fn remove_expired_claims(dir: &Path) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    let now = now_ms();
    for item in rd.flatten() {
        let path = item.path();
        let name = item.file_name();
        let name = name.to_string_lossy();
        let stale = if name.starts_with('.') {
            name.ends_with(".tmp")
        } else {
            read_claim(&path).is_some_and(|c| c.expires_at_ms <= now)
        };
        if stale {
            let _ = fs::remove_file(&path);
        }
    }
}
