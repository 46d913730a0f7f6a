//! The report counters in Redis, shared by several relays.
//!
//! Keys (`P` = `state.key_prefix`): `P rpt:DAY:idx` the set of the day's buckets,
//! `P rpt:DAY:b:BUCKET` the bucket's counters (a hash, `HINCRBY`), `P rpt:DAY:m:BUCKET` its
//! description (`SET NX`), `P rpt:DAY:gone` the mark of a deleted (reported) day, `P claim:NAME`
//! a claim (`SET NX PX`: its holder's token, or `done`). Each update is one Lua script
//! (increment, index, expiry; buffered updates: many in one `MULTI`/`EXEC`), so concurrent
//! updates from any number of relays sum exactly. Counter keys expire [`COUNTER_RETENTION`]
//! after their last update, so a day that is never reported does not stay forever.
//!
//! Updates that arrive after their day was reported (another relay's, buffered through an
//! outage; one racing the deletion) are dropped: `delete_day` sets the day's mark before it
//! lists and deletes the buckets, and every update script writes nothing while the mark
//! exists. A late update extends the mark's life to [`COUNTER_RETENTION`] again. So no update
//! recreates a bucket behind the deletion (before, such a bucket was left outside the index:
//! never listed, never deleted), and late counts never outlive the report's `done` claim to
//! be reported again as a second, partial report of the period. (Before the mark, a late
//! count was deleted by the next run while the claim was done, reported again after.)
//!
//! The script also bounds a bucket store-wide: a TLS-RPT failure field that the bucket does not
//! hold yet goes to its overflow field once the bucket holds
//! [`CounterUpdate::MAX_FAILURE_FIELDS_PER_BUCKET`] fields besides the success field (checked
//! and incremented in one script: N relays cannot make it N times as large).
//!
//! Values another (older, or hostile) relay left behind never fail a read or an update: a key
//! of the wrong type is replaced by the update; a field that is not a counter is replaced by
//! the increment (and skipped by a read); an increment past `i64::MAX` stays there; buckets
//! and fields that are not UTF-8 are skipped. So a script never stops half-way, and a buffered
//! transaction is never partly applied and then retried whole.
//!
//! Redis unreachable: `incr` and `set_meta` return at once and are buffered in memory (summed per
//! field, at most `state.max_buffered` distinct fields, a bucket's description counting as one;
//! beyond, updates are dropped and counted, one WARN), and a background task writes them once Redis
//! answers again (one INFO with the numbers). An increment whose reply was lost (a timeout, a
//! connection dropped after the request was sent) may or may not have been executed: each increment
//! carries an id, which the script records in the relay's `P ops:TOKEN` hash before it counts, and
//! skips when it is there already, so the retry counts it exactly once (the ids of acknowledged
//! increments are removed with the relay's next increments, those of a flushed transaction with the
//! next transaction; the hash expires with the counters). None is lost while the relay runs (a
//! relay stopped with updates still buffered says so). While updates wait in the buffer, `buckets`,
//! `read` and `delete_day` answer [`StateError::Unavailable`]: a report never misses them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use redis::{FromRedisValue, Pipeline};

use super::config::StateConfig;
use smtp_tls_policy::tlsrpt::{CounterUpdate, SUCCESS_FIELD};

use super::counters::{
    BucketData, DONE_RETENTION, ReportCounters, check_claim, check_day, check_meta, check_name,
    overflow_of,
};
use super::error::StateError;
use super::redis_link::{RedisLink, SharedConnection, run, scan_step};
use super::redis_scripts::{
    BUCKETS_SCRIPT, CLAIM_SCRIPT, EXTEND_SCRIPT, INCR_SCRIPT, IS_DONE_SCRIPT, META_SCRIPT,
    READ_SCRIPT, RELEASE_SCRIPT, bucket_data,
};

/// Counter keys expire this long after their last update.
pub const COUNTER_RETENTION: Duration = Duration::from_secs(8 * 86_400);
/// Buffered updates written per transaction when Redis is back.
const FLUSH_CHUNK: usize = 500;

/// Keys looked at per `SCAN` step, and steps of one [`RedisCounters::days`] at most.
const SCAN_COUNT: usize = 1000;
const MAX_SCAN_STEPS: usize = 100_000;

type FieldKey = (String, String, String);
type MetaKey = (String, String);

/// Ids of acknowledged increments kept for removal from the ops hash at most (beyond, they
/// expire with it).
const MAX_ACKED: usize = 4096;
/// Ids removed per increment at most.
const FORGET_PER_INCR: usize = 64;

/// An increment that may have been executed (its reply was lost), with its id.
struct Uncertain {
    id: String,
    day: String,
    bucket: String,
    field: String,
    by: u64,
}

#[derive(Default)]
struct Pending {
    counts: HashMap<FieldKey, u64>,
    /// Increments sent whose reply was lost: retried under their id, never merged.
    uncertain: Vec<Uncertain>,
    meta: HashMap<MetaKey, String>,
    /// Updates dropped because the buffer was full, since the start.
    dropped: u64,
    /// Dropped during the current outage (logged once, reported on recovery).
    dropped_now: u64,
    /// Taken out by the flusher and not yet written (or put back).
    in_flight: usize,
}

impl Pending {
    fn len(&self) -> usize {
        self.counts.len() + self.meta.len() + self.uncertain.len()
    }
}

struct Inner {
    link: Arc<RedisLink>,
    conn: SharedConnection,
    pending: Mutex<Pending>,
    max_buffered: usize,
    flusher: AtomicBool,
    /// Updates written to Redis from the buffer, since the start.
    flushed: AtomicU64,
    /// This store's claim token (and the name of its ops hash).
    token: String,
    /// The next increment id.
    next_op: AtomicU64,
    /// Ids of acknowledged increments, to remove from the ops hash.
    acked: Mutex<Vec<String>>,
}

/// The Redis report counters (see the module documentation). Cheap to clone.
#[derive(Clone)]
pub struct RedisCounters {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RedisCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCounters")
            .field("url", &self.inner.link.shown)
            .finish_non_exhaustive()
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl RedisCounters {
    /// The counters of `config` (`backend = "redis"`). No connection is made yet.
    pub fn open(config: &StateConfig) -> Result<Self, StateError> {
        Ok(Self::with_link(
            Arc::new(RedisLink::new(config)?),
            config.max_buffered,
        ))
    }

    pub(crate) fn with_link(link: Arc<RedisLink>, max_buffered: usize) -> Self {
        let token = format!("{}-{:016x}", std::process::id(), fastrand::u64(..));
        Self {
            inner: Arc::new(Inner {
                link,
                conn: tokio::sync::Mutex::new(None),
                pending: Mutex::new(Pending::default()),
                max_buffered,
                flusher: AtomicBool::new(false),
                flushed: AtomicU64::new(0),
                token,
                next_op: AtomicU64::new(0),
                acked: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Distinct updates buffered in memory now, waiting for Redis (also those being written:
    /// 0 means everything is in Redis).
    #[must_use]
    pub fn buffered(&self) -> usize {
        let p = self.pending();
        p.len() + p.in_flight
    }

    /// Updates dropped since the start because the buffer was full.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.pending().dropped
    }

    /// Buffered updates written to Redis since the start.
    #[must_use]
    pub fn flushed(&self) -> u64 {
        self.inner.flushed.load(Ordering::Relaxed)
    }

    /// `true` while Redis is known to be unreachable.
    #[must_use]
    pub fn redis_down(&self) -> bool {
        self.inner.link.is_down()
    }

    /// Outages seen since the start.
    #[must_use]
    pub fn outages(&self) -> u64 {
        self.inner.link.outages()
    }

    fn pending(&self) -> MutexGuard<'_, Pending> {
        self.inner
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// `EVAL script 1 KEY`, the key of the claim `name` (the caller adds the arguments).
    fn claim_eval(&self, script: &str, name: &str) -> Pipeline {
        let mut pipe = redis::pipe();
        pipe.cmd("EVAL")
            .arg(script)
            .arg(1)
            .arg(self.key(&["claim", name]));
        pipe
    }

    fn key(&self, parts: &[&str]) -> String {
        self.inner.link.key(parts)
    }

    /// Runs `pipe` (bounded by the reply limit). `force`: even during an outage before the
    /// retry interval has passed (the background flusher). A reused connection found closed
    /// (Redis restarted) is replaced once before Redis counts as unreachable.
    async fn query<T: FromRedisValue>(
        &self,
        op: &'static str,
        pipe: &Pipeline,
        force: bool,
    ) -> Result<T, StateError> {
        self.query_sent(op, pipe, force).await.map_err(|(e, _)| e)
    }

    /// [`Self::query`], and with an error whether `pipe` may have been executed (it was sent
    /// and its reply was lost).
    async fn query_sent<T: FromRedisValue>(
        &self,
        op: &'static str,
        pipe: &Pipeline,
        force: bool,
    ) -> Result<T, (StateError, bool)> {
        let link = &self.inner.link;
        if !force && !link.may_try() {
            return Err((link.skipped(), false));
        }
        run(link, &self.inner.conn, op, pipe, force).await
    }

    fn retention_secs() -> u64 {
        COUNTER_RETENTION.as_secs()
    }

    /// A new increment id.
    fn op_id(&self) -> String {
        format!("{:x}", self.inner.next_op.fetch_add(1, Ordering::Relaxed))
    }

    fn acked(&self) -> MutexGuard<'_, Vec<String>> {
        self.inner
            .acked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Remembers `ids` as acknowledged (removed from the ops hash later).
    fn ack(&self, ids: impl IntoIterator<Item = String>) {
        let mut acked = self.acked();
        for id in ids {
            if acked.len() < MAX_ACKED {
                acked.push(id);
            }
        }
    }

    fn add_incr(
        &self,
        pipe: &mut Pipeline,
        (day, bucket, field, by): (&str, &str, &str, u64),
        id: &str,
        forget: &[String],
    ) {
        let by = i64::try_from(by).unwrap_or(i64::MAX);
        pipe.cmd("EVAL")
            .arg(INCR_SCRIPT)
            .arg(4)
            .arg(self.key(&["rpt", day, "b", bucket]))
            .arg(self.key(&["rpt", day, "idx"]))
            .arg(self.key(&["ops", &self.inner.token]))
            .arg(self.key(&["rpt", day, "gone"]))
            .arg(field)
            .arg(overflow_of(field).unwrap_or_default())
            .arg(by)
            .arg(CounterUpdate::MAX_FAILURE_FIELDS_PER_BUCKET)
            .arg(SUCCESS_FIELD)
            .arg(Self::retention_secs())
            .arg(bucket)
            .arg(id)
            .arg(forget)
            .ignore();
    }

    fn add_meta(&self, pipe: &mut Pipeline, day: &str, bucket: &str, value: &str) {
        pipe.cmd("EVAL")
            .arg(META_SCRIPT)
            .arg(3)
            .arg(self.key(&["rpt", day, "m", bucket]))
            .arg(self.key(&["rpt", day, "idx"]))
            .arg(self.key(&["rpt", day, "gone"]))
            .arg(value)
            .arg(Self::retention_secs())
            .arg(bucket)
            .ignore();
    }

    /// The day's buckets as stored (members that are not valid bucket names skipped).
    async fn members(&self, op: &'static str, day: &str) -> Result<Vec<String>, StateError> {
        let mut pipe = redis::pipe();
        pipe.cmd("EVAL")
            .arg(BUCKETS_SCRIPT)
            .arg(1)
            .arg(self.key(&["rpt", day, "idx"]));
        let (members,): (Vec<Vec<u8>>,) = self.query(op, &pipe, false).await?;
        Ok(members
            .into_iter()
            .filter_map(|m| String::from_utf8(m).ok())
            .filter(|m| check_name("bucket", m).is_ok())
            .collect())
    }

    /// Buffers an increment (Redis unreachable) and makes sure the flusher runs.
    fn buffer_incr(&self, day: &str, bucket: &str, field: &str, by: u64) {
        {
            let mut p = self.pending();
            let key = (day.to_owned(), bucket.to_owned(), field.to_owned());
            if let Some(n) = p.counts.get_mut(&key) {
                *n = n.saturating_add(by);
            } else if p.len() < self.inner.max_buffered {
                p.counts.insert(key, by);
            } else {
                self.drop_update(&mut p);
            }
        }
        self.spawn_flusher();
    }

    /// Buffers an increment that may have been executed, under its id.
    fn buffer_uncertain(&self, u: Uncertain) {
        {
            let mut p = self.pending();
            if p.len() < self.inner.max_buffered {
                p.uncertain.push(u);
            } else {
                self.drop_update(&mut p);
            }
        }
        self.spawn_flusher();
    }

    fn buffer_meta(&self, day: &str, bucket: &str, value: &str) {
        {
            let mut p = self.pending();
            let key = (day.to_owned(), bucket.to_owned());
            if !p.meta.contains_key(&key) {
                if p.len() < self.inner.max_buffered {
                    p.meta.insert(key, value.to_owned());
                } else {
                    self.drop_update(&mut p);
                }
            }
        }
        self.spawn_flusher();
    }

    fn drop_update(&self, p: &mut Pending) {
        p.dropped += 1;
        p.dropped_now += 1;
        if p.dropped_now == 1 {
            tracing::warn!(
                max_buffered = self.inner.max_buffered,
                "report counters: Redis unreachable and the buffer is full: further updates are \
                 dropped (and counted) until Redis answers"
            );
        }
    }

    /// Writes the buffered updates (in transactions of [`FLUSH_CHUNK`]); what could not be
    /// written goes back into the buffer. Returns how many were written.
    async fn flush(&self, force: bool) -> Result<usize, StateError> {
        let (counts, meta, uncertain) = {
            let mut p = self.pending();
            if p.len() == 0 {
                return Ok(0);
            }
            p.in_flight += p.len();
            (
                std::mem::take(&mut p.counts),
                std::mem::take(&mut p.meta),
                std::mem::take(&mut p.uncertain),
            )
        };
        let mut updates: Vec<Update> = meta
            .into_iter()
            .map(|((d, b), v)| Update::Meta(d, b, v))
            .chain(uncertain.into_iter().map(|u| Update::Incr(u, true)))
            .chain(counts.into_iter().map(|((day, bucket, field), by)| {
                Update::Incr(
                    Uncertain {
                        id: self.op_id(),
                        day,
                        bucket,
                        field,
                        by,
                    },
                    false,
                )
            }))
            .collect();
        let mut written = 0;
        // the ids of the chunk written last: its successor's first increment removes them
        let mut forget: Vec<String> = Vec::new();
        while !updates.is_empty() {
            let rest = updates.split_off(updates.len().min(FLUSH_CHUNK));
            let chunk = std::mem::replace(&mut updates, rest);
            let mut pipe = redis::pipe();
            pipe.atomic();
            let mut carried = false;
            for u in &chunk {
                match u {
                    Update::Meta(d, b, v) => self.add_meta(&mut pipe, d, b, v),
                    Update::Incr(u, _) => {
                        let ids: &[String] = if carried { &[] } else { &forget };
                        carried = true;
                        self.add_incr(&mut pipe, (&u.day, &u.bucket, &u.field, u.by), &u.id, ids);
                    }
                }
            }
            if let Err((e, sent)) = self.query_sent::<()>("flush", &pipe, force).await {
                self.ack(forget);
                let unwritten = chunk.len() + updates.len();
                let chunk = chunk.into_iter().map(|u| match u {
                    Update::Incr(u, before) => Update::Incr(u, before || sent),
                    meta => meta,
                });
                self.requeue(chunk.chain(updates), unwritten);
                return Err(e);
            }
            if carried {
                forget.clear();
            }
            forget.extend(chunk.iter().filter_map(|u| match u {
                Update::Incr(u, _) => Some(u.id.clone()),
                Update::Meta(..) => None,
            }));
            {
                let mut p = self.pending();
                p.in_flight = p.in_flight.saturating_sub(chunk.len());
            }
            written += chunk.len();
            self.inner
                .flushed
                .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
        self.ack(forget);
        Ok(written)
    }

    /// Puts `n` updates back into the buffer (they were counted in before: no bound).
    fn requeue(&self, updates: impl Iterator<Item = Update>, n: usize) {
        let mut p = self.pending();
        p.in_flight = p.in_flight.saturating_sub(n);
        for u in updates {
            match u {
                Update::Meta(d, b, v) => {
                    p.meta.entry((d, b)).or_insert(v);
                }
                Update::Incr(u, true) => p.uncertain.push(u),
                Update::Incr(u, false) => {
                    let c = p.counts.entry((u.day, u.bucket, u.field)).or_default();
                    *c = c.saturating_add(u.by);
                }
            }
        }
    }

    /// Starts the background flusher unless it runs: every retry interval it tries to write
    /// the buffer, until the buffer is empty or the store is dropped.
    fn spawn_flusher(&self) {
        if self.inner.flusher.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            self.inner.flusher.store(false, Ordering::Release);
            return;
        };
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        rt.spawn(async move {
            loop {
                let Some(interval) = weak.upgrade().map(|i| i.link.retry_interval) else {
                    return;
                };
                tokio::time::sleep(interval).await;
                let Some(inner) = weak.upgrade() else { return };
                let this = Self { inner };
                match this.flush(true).await {
                    Ok(n) => {
                        let dropped = std::mem::take(&mut this.pending().dropped_now);
                        if n > 0 || dropped > 0 {
                            tracing::info!(
                                url = %this.inner.link.shown,
                                flushed = n,
                                dropped,
                                "report counters: the updates buffered while Redis was \
                                 unreachable are written"
                            );
                        }
                        this.inner.flusher.store(false, Ordering::Release);
                        // an update buffered after the last chunk: go on (unless another
                        // flusher took over)
                        if this.buffered() == 0 || this.inner.flusher.swap(true, Ordering::AcqRel) {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "report counters: Redis still unreachable");
                    }
                }
            }
        });
    }

    /// A report must include the buffered updates: while some wait (the background flusher
    /// writes them once Redis answers), reading is [`StateError::Unavailable`] — try later.
    /// (The flusher alone writes the buffer, so no caller's cancelled future can lose it.)
    fn flush_before_read(&self) -> Result<(), StateError> {
        let waiting = self.buffered();
        if waiting > 0 {
            self.spawn_flusher();
            return Err(StateError::Unavailable {
                detail: format!("{waiting} buffered counter updates not yet written to Redis"),
            });
        }
        Ok(())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let p = self
            .pending
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        if p.len() + p.in_flight > 0 {
            tracing::warn!(
                url = %self.link.shown,
                updates = p.len() + p.in_flight,
                "report counters: Redis still unreachable at shutdown: the buffered updates are \
                 lost"
            );
        }
    }
}

enum Update {
    /// An increment; `true`: it may have been executed before (retried under its id only).
    Incr(Uncertain, bool),
    Meta(String, String, String),
}

impl ReportCounters for RedisCounters {
    async fn incr(&self, day: &str, bucket: &str, field: &str, by: u64) -> Result<(), StateError> {
        check_day(day)?;
        check_name("bucket", bucket)?;
        check_name("field", field)?;
        if !self.inner.link.may_try() {
            self.buffer_incr(day, bucket, field, by);
            return Ok(());
        }
        let id = self.op_id();
        let forget: Vec<String> = {
            let mut acked = self.acked();
            let n = acked.len().min(FORGET_PER_INCR);
            acked.drain(..n).collect()
        };
        let mut pipe = redis::pipe();
        self.add_incr(&mut pipe, (day, bucket, field, by), &id, &forget);
        match self.query_sent::<()>("incr", &pipe, false).await {
            Ok(()) => self.ack([id]),
            Err((_, sent)) => {
                self.ack(forget);
                if sent {
                    self.buffer_uncertain(Uncertain {
                        id,
                        day: day.to_owned(),
                        bucket: bucket.to_owned(),
                        field: field.to_owned(),
                        by,
                    });
                } else {
                    self.buffer_incr(day, bucket, field, by);
                }
            }
        }
        Ok(())
    }

    async fn set_meta(&self, day: &str, bucket: &str, value: &str) -> Result<(), StateError> {
        check_day(day)?;
        check_name("bucket", bucket)?;
        check_meta(value)?;
        if !self.inner.link.may_try() {
            self.buffer_meta(day, bucket, value);
            return Ok(());
        }
        let mut pipe = redis::pipe();
        self.add_meta(&mut pipe, day, bucket, value);
        if self.query::<()>("set_meta", &pipe, false).await.is_err() {
            self.buffer_meta(day, bucket, value);
        }
        Ok(())
    }

    async fn buckets(&self, day: &str) -> Result<Vec<String>, StateError> {
        check_day(day)?;
        self.flush_before_read()?;
        let mut buckets = self.members("buckets", day).await?;
        buckets.sort();
        Ok(buckets)
    }

    async fn read(&self, day: &str, bucket: &str) -> Result<BucketData, StateError> {
        check_day(day)?;
        check_name("bucket", bucket)?;
        self.flush_before_read()?;
        let mut pipe = redis::pipe();
        pipe.cmd("EVAL")
            .arg(READ_SCRIPT)
            .arg(2)
            .arg(self.key(&["rpt", day, "m", bucket]))
            .arg(self.key(&["rpt", day, "b", bucket]));
        let (reply,): (Vec<redis::Value>,) = self.query("read", &pipe, false).await?;
        Ok(bucket_data(reply))
    }

    async fn claim(&self, name: &str, ttl: Duration) -> Result<bool, StateError> {
        check_claim(name)?;
        let mut pipe = self.claim_eval(CLAIM_SCRIPT, name);
        pipe.arg(&self.inner.token).arg(ms(ttl));
        let (taken,): (i64,) = self.query("claim", &pipe, false).await?;
        Ok(taken == 1)
    }

    async fn release(&self, name: &str) -> Result<(), StateError> {
        check_claim(name)?;
        let mut pipe = self.claim_eval(RELEASE_SCRIPT, name);
        pipe.arg(&self.inner.token).ignore();
        self.query("release", &pipe, false).await
    }

    async fn extend(&self, name: &str, ttl: Duration) -> Result<bool, StateError> {
        check_claim(name)?;
        let mut pipe = self.claim_eval(EXTEND_SCRIPT, name);
        pipe.arg(&self.inner.token).arg(ms(ttl));
        let (extended,): (i64,) = self.query("extend", &pipe, false).await?;
        Ok(extended == 1)
    }

    async fn is_done(&self, name: &str) -> Result<bool, StateError> {
        check_claim(name)?;
        let pipe = self.claim_eval(IS_DONE_SCRIPT, name);
        let (done,): (i64,) = self.query("is_done", &pipe, false).await?;
        Ok(done == 1)
    }

    async fn days(&self) -> Result<Vec<String>, StateError> {
        self.flush_before_read()?;
        // the days' index keys: `P rpt:DAY:idx` (a day holds no ':'; a bucket key that
        // happens to end in ":idx" has one more ':' and is skipped)
        let head = self.key(&["rpt", ""]);
        let pattern = format!("{}:idx", self.inner.link.pattern(&["rpt", ""]));
        let mut days = std::collections::BTreeSet::new();
        let mut cursor = 0_u64;
        for _ in 0..MAX_SCAN_STEPS {
            let pipe = scan_step(cursor, &pattern, SCAN_COUNT);
            let ((next, keys),): ((u64, Vec<Vec<u8>>),) = self.query("days", &pipe, false).await?;
            for key in keys {
                let Ok(key) = String::from_utf8(key) else {
                    continue;
                };
                let day = key
                    .strip_prefix(&head)
                    .and_then(|k| k.strip_suffix(":idx"))
                    .filter(|d| check_day(d).is_ok());
                if let Some(day) = day {
                    days.insert(day.to_owned());
                }
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        Ok(days.into_iter().collect())
    }

    async fn done(&self, name: &str) -> Result<(), StateError> {
        check_claim(name)?;
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(self.key(&["claim", name]))
            .arg("done")
            .arg("PX")
            .arg(ms(DONE_RETENTION))
            .ignore();
        self.query("done", &pipe, false).await
    }

    async fn delete_day(&self, day: &str) -> Result<(), StateError> {
        check_day(day)?;
        self.flush_before_read()?;
        // the mark first: no update of the day is written after it, so the buckets listed
        // next are all there are (none is recreated behind the deletion, unlisted)
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(self.key(&["rpt", day, "gone"]))
            .arg(1)
            .arg("EX")
            .arg(Self::retention_secs())
            .ignore();
        self.query::<()>("delete_day", &pipe, false).await?;
        let idx = self.key(&["rpt", day, "idx"]);
        let buckets = self.members("delete_day", day).await?;
        for chunk in buckets.chunks(FLUSH_CHUNK) {
            let mut pipe = redis::pipe();
            pipe.atomic();
            for b in chunk {
                pipe.cmd("DEL")
                    .arg(self.key(&["rpt", day, "b", b]))
                    .arg(self.key(&["rpt", day, "m", b]))
                    .ignore();
            }
            self.query::<()>("delete_day", &pipe, false).await?;
        }
        let mut pipe = redis::pipe();
        pipe.cmd("DEL").arg(&idx).ignore();
        self.query("delete_day", &pipe, false).await
    }
}
