//! The MTA-STS policy cache in Redis, shared by several relays: one key per policy domain
//! (`PREFIX` `sts:` DOMAIN), its value the entry as the file store writes it (pretty JSON), its
//! expiry the remaining lifetime of the policy (or of the fetch back-off, whichever is later;
//! an hour for an entry that holds neither).
//!
//! [`PolicyStore`] is synchronous (smtp-tls-policy's cache machine calls it inside a delivery
//! task), so the Redis commands run on a small runtime of the store's own, over one
//! multiplexed connection (as the counters: concurrent lookups are pipelined, none waits for
//! another's reply), and the calling thread waits for its reply off the async worker threads
//! (`block_in_place` on a multi-threaded runtime): a slow Redis delays only the lookups that
//! wait for it, never other tasks. Every call is bounded by the connect and reply limits of
//! `[state]`, and during an outage Redis is tried at most once per retry interval. The local
//! [`FilePolicyStore`] (`delivery.mta_sts.cache_dir`) keeps a copy of every entry read or
//! written, and answers whenever Redis does not: a delivery never waits on, nor fails because
//! of, Redis beyond those limits.
//!
//! A value is read only once Redis said its size: one larger than an entry may be
//! ([`MAX_ENTRY_FILE`]; a broken or hostile writer's) is refused as corrupt without being
//! transferred (get, remove) or skipped (list).
//!
//! While Redis answers it is the authority: an entry it no longer has (expired, purged by
//! `--mta-sts-purge` on another relay) is absent even if the local copy still has it. Entries
//! stored during an outage stay local until the next fetch of their domain.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::{FromRedisValue, Pipeline};
use tokio::runtime::{Runtime, RuntimeFlavor};

use smtp_tls_policy::mta_sts::{
    CacheEntry, FilePolicyStore, MAX_ENTRY_FILE, PolicyDomain, PolicyStore, StoreError,
};
use std::sync::Arc;

use super::config::StateConfig;
use super::error::StateError;
use super::redis_link::{RedisLink, SharedConnection, run, scan_step};
use super::redis_scripts::{POLICY_GET_SCRIPT, POLICY_LIST_SCRIPT, SizedValue, sized_value};

/// Expiry of an entry with neither an unexpired policy nor a pending back-off, seconds.
pub const EMPTY_ENTRY_TTL_SECS: u64 = 3600;
/// Most keys listed by [`PolicyStore::list`].
const MAX_LISTED: usize = 100_000;

/// The Redis-backed policy store with its local file fallback (see the module documentation).
pub struct RedisPolicyStore {
    link: Arc<RedisLink>,
    conn: Arc<SharedConnection>,
    /// Runs the Redis commands (taken and shut down in the background on drop: a runtime
    /// must not be dropped inside another one).
    runtime: Option<Runtime>,
    local: FilePolicyStore,
}

impl Drop for RedisPolicyStore {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl std::fmt::Debug for RedisPolicyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisPolicyStore")
            .field("url", &self.link.shown)
            .field("local", &self.local.dir())
            .finish_non_exhaustive()
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The key's lifetime for `entry` at `now`, seconds (at least 1).
#[must_use]
pub fn entry_ttl(entry: &CacheEntry, now: u64) -> u64 {
    let policy = entry
        .policy
        .as_ref()
        .map_or(0, |p| p.expires_at.saturating_sub(now));
    let backoff = entry
        .backoff
        .as_ref()
        .map_or(0, |b| b.retry_at.saturating_sub(now));
    match policy.max(backoff) {
        0 => EMPTY_ENTRY_TTL_SECS,
        n => n,
    }
}

impl RedisPolicyStore {
    /// The store of `config` (`backend = "redis"`) with its local copy in `local_dir`. No
    /// connection is made yet.
    pub fn open(
        config: &StateConfig,
        local_dir: impl Into<std::path::PathBuf>,
    ) -> Result<Self, StateError> {
        Self::with_link(
            Arc::new(RedisLink::new(config)?),
            FilePolicyStore::open(local_dir)?,
        )
    }

    pub(crate) fn with_link(
        link: Arc<RedisLink>,
        local: FilePolicyStore,
    ) -> Result<Self, StateError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("redis-policy")
            .enable_all()
            .build()
            .map_err(|e| StateError::Io {
                op: "runtime",
                path: std::path::PathBuf::new(),
                detail: e.to_string(),
            })?;
        Ok(Self {
            link,
            conn: Arc::new(tokio::sync::Mutex::new(None)),
            runtime: Some(runtime),
            local,
        })
    }

    /// The local copy.
    #[must_use]
    pub fn local(&self) -> &FilePolicyStore {
        &self.local
    }

    /// The Redis key of `domain`'s entry.
    #[must_use]
    pub fn key_of(&self, domain: &PolicyDomain) -> String {
        self.link.key(&["sts", domain.as_str()])
    }

    /// `true` while Redis is known to be unreachable.
    #[must_use]
    pub fn redis_down(&self) -> bool {
        self.link.is_down()
    }

    /// Runs `pipe` on the store's runtime and waits for its reply (off the async workers),
    /// within the connect and reply limits. A reused connection found closed (Redis
    /// restarted) is replaced once before Redis counts as unreachable.
    fn query<T: FromRedisValue + Send + 'static>(
        &self,
        op: &'static str,
        pipe: Pipeline,
    ) -> Result<T, StateError> {
        if !self.link.may_try() {
            return Err(self.link.skipped());
        }
        let Some(runtime) = self.runtime.as_ref() else {
            return Err(self.link.skipped());
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let link = Arc::clone(&self.link);
        let conn = Arc::clone(&self.conn);
        runtime.spawn(async move {
            let _ = tx.send(
                run(&link, &conn, op, &pipe, false)
                    .await
                    .map_err(|(e, _)| e),
            );
        });
        // the task is bounded by these limits; the margin covers scheduling
        let bound = 2 * (self.link.connect_timeout + 2 * self.link.response_timeout)
            + Duration::from_secs(1);
        let wait = || rx.recv_timeout(bound);
        let got = match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(wait)
            }
            _ => wait(),
        };
        got.unwrap_or_else(|_| {
            Err(StateError::Unavailable {
                detail: format!("no reply within {} ms", bound.as_millis()),
            })
        })
    }

    /// The entry in `value` (`None`: absent); one too large is corrupt.
    fn decode(&self, key: &str, value: SizedValue) -> Result<Option<CacheEntry>, StoreError> {
        let corrupt = |detail: String| StoreError::Corrupt {
            path: format!("redis key {key}"),
            detail,
        };
        match value {
            SizedValue::Absent => Ok(None),
            SizedValue::TooLarge(n) => Err(corrupt(format!(
                "{n} bytes, larger than {MAX_ENTRY_FILE} bytes (not read)"
            ))),
            SizedValue::Value(bytes) if bytes.len() as u64 > MAX_ENTRY_FILE => {
                Err(corrupt(format!("larger than {MAX_ENTRY_FILE} bytes")))
            }
            SizedValue::Value(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| corrupt(e.to_string())),
        }
    }

    /// Reads the value of `key` when it is not too large (and deletes the key with `delete`),
    /// in one script.
    fn get_sized(
        &self,
        op: &'static str,
        key: &str,
        delete: bool,
    ) -> Result<SizedValue, StateError> {
        let mut pipe = redis::pipe();
        pipe.cmd("EVAL")
            .arg(POLICY_GET_SCRIPT)
            .arg(1)
            .arg(key)
            .arg(MAX_ENTRY_FILE)
            .arg(if delete { "1" } else { "0" });
        let (reply,): (Vec<redis::Value>,) = self.query(op, pipe)?;
        let mut reply = reply.into_iter();
        let len = reply.next();
        Ok(sized_value(len.as_ref(), reply.next()))
    }

    /// The entry in Redis, without the local fallback: [`StateError::Unavailable`] when
    /// Redis does not answer (the admin path says so instead of showing a local copy).
    pub fn get_shared(&self, domain: &PolicyDomain) -> Result<Option<CacheEntry>, StateError> {
        let key = self.key_of(domain);
        let value = self.get_sized("get", &key, false)?;
        let Some(entry) = self.decode(&key, value)? else {
            return Ok(None);
        };
        if &entry.domain != domain {
            return Err(StoreError::Corrupt {
                path: format!("redis key {key}"),
                detail: format!("holds the entry of {}", entry.domain),
            }
            .into());
        }
        Ok(Some(entry))
    }

    /// Removes the entry from Redis and from the local copy; the removed entry (Redis's, else
    /// the local one). [`StateError::Unavailable`] when Redis does not answer (nothing removed
    /// there; the local copy is removed all the same).
    pub fn remove_shared(&self, domain: &PolicyDomain) -> Result<Option<CacheEntry>, StateError> {
        let local = self.local.remove(domain);
        let shared = self.remove_redis(domain)?;
        Ok(shared.or(local.ok().flatten()))
    }

    fn remove_redis(&self, domain: &PolicyDomain) -> Result<Option<CacheEntry>, StateError> {
        let key = self.key_of(domain);
        let old = self.get_sized("remove", &key, true)?;
        Ok(self.decode(&key, old).ok().flatten())
    }

    /// Keeps `entry` in the local copy unless it holds it already.
    fn remember(&self, entry: &CacheEntry) {
        if self.local.get(&entry.domain).ok().flatten().as_ref() == Some(entry) {
            return;
        }
        if let Err(e) = self.local.put(entry) {
            tracing::warn!(domain = %entry.domain, error = %e, "MTA-STS cache: local copy of a shared entry not written");
        }
    }

    fn list_shared(&self) -> Result<Vec<CacheEntry>, StateError> {
        let pattern = self.link.pattern(&["sts", ""]);
        let mut keys = Vec::new();
        let mut cursor: u64 = 0;
        for _ in 0..MAX_LISTED {
            let pipe = scan_step(cursor, &pattern, 500);
            let ((next, batch),): ((u64, Vec<String>),) = self.query("list", pipe)?;
            keys.extend(batch);
            cursor = next;
            if cursor == 0 || keys.len() >= MAX_LISTED {
                break;
            }
        }
        keys.sort();
        keys.dedup();
        let mut out = Vec::new();
        for chunk in keys.chunks(200) {
            let mut pipe = redis::pipe();
            pipe.cmd("EVAL")
                .arg(POLICY_LIST_SCRIPT)
                .arg(chunk.len())
                .arg(chunk)
                .arg(MAX_ENTRY_FILE);
            let (values,): (Vec<redis::Value>,) = self.query("list", pipe)?;
            let mut values = values.into_iter();
            for key in chunk {
                let len = values.next();
                let value = sized_value(len.as_ref(), values.next());
                match self.decode(key, value) {
                    Ok(None) => {}
                    Ok(Some(entry)) if self.key_of(&entry.domain) == *key => out.push(entry),
                    Ok(Some(entry)) => {
                        tracing::warn!(key, domain = %entry.domain, "MTA-STS cache key holds another domain's entry; skipped");
                    }
                    Err(e) => tracing::warn!(error = %e, "MTA-STS cache entry unusable; skipped"),
                }
            }
        }
        out.sort_by(|a, b| a.domain.cmp(&b.domain));
        Ok(out)
    }
}

impl PolicyStore for RedisPolicyStore {
    fn get(&self, domain: &PolicyDomain) -> Result<Option<CacheEntry>, StoreError> {
        match self.get_shared(domain) {
            Ok(Some(entry)) => {
                self.remember(&entry);
                Ok(Some(entry))
            }
            Ok(None) => Ok(None),
            Err(StateError::Policy(e)) => Err(e),
            Err(_) => self.local.get(domain),
        }
    }

    fn put(&self, entry: &CacheEntry) -> Result<(), StoreError> {
        let local = self.local.put(entry);
        let json = serde_json::to_vec_pretty(entry).map_err(|e| StoreError::Encode {
            domain: entry.domain.to_string(),
            detail: e.to_string(),
        })?;
        let key = self.key_of(&entry.domain);
        let ttl = entry_ttl(entry, now());
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(&key)
            .arg(&json)
            .arg("EX")
            .arg(ttl)
            .ignore();
        let shared: Result<(), StateError> = self.query("put", pipe);
        match (shared, local) {
            (Ok(()), Err(e)) => {
                tracing::warn!(domain = %entry.domain, error = %e, "MTA-STS cache: local copy not written (Redis has the entry)");
                Ok(())
            }
            (_, local) => local,
        }
    }

    fn remove(&self, domain: &PolicyDomain) -> Result<Option<CacheEntry>, StoreError> {
        let local = self.local.remove(domain);
        match self.remove_redis(domain) {
            Ok(Some(old)) => Ok(Some(old)),
            Ok(None) => local,
            Err(StateError::Policy(e)) => Err(e),
            // Redis keeps its entry until it expires
            Err(_) => local,
        }
    }

    fn list(&self) -> Result<Vec<CacheEntry>, StoreError> {
        match self.list_shared() {
            Ok(entries) => Ok(entries),
            Err(StateError::Policy(e)) => Err(e),
            Err(_) => self.local.list(),
        }
    }
}
