//! The MTA-STS policy cache in Redis, shared by several relays: one key per policy domain
//! (`PREFIX` `sts:` DOMAIN), its value the entry as the file store writes it (pretty JSON), its
//! expiry the remaining lifetime of the policy (or of the fetch back-off, whichever is later;
//! an hour for an entry that holds neither).
//!
//! [`PolicyStore`] is synchronous (smtp-tls-policy's cache machine calls it inside a delivery
//! task): every call is bounded by the connect and reply limits of `[state]`, and during an
//! outage Redis is tried at most once per retry interval. The local [`FilePolicyStore`]
//! (`delivery.mta_sts.cache_dir`) keeps a copy of every entry read or written, and answers
//! whenever Redis does not: a delivery never waits on, nor fails because of, Redis.
//!
//! While Redis answers it is the authority: an entry it no longer has (expired, purged by
//! `--mta-sts-purge` on another relay) is absent even if the local copy still has it. Entries
//! stored during an outage stay local until the next fetch of their domain.

use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use smtp_tls_policy::mta_sts::{
    CacheEntry, FilePolicyStore, MAX_ENTRY_FILE, PolicyDomain, PolicyStore, StoreError,
};
use std::sync::Arc;

use super::config::StateConfig;
use super::error::StateError;
use super::redis_link::{RedisLink, answered, stale_connection};

/// Expiry of an entry with neither an unexpired policy nor a pending back-off, seconds.
pub const EMPTY_ENTRY_TTL_SECS: u64 = 3600;
/// Most keys listed by [`PolicyStore::list`].
const MAX_LISTED: usize = 100_000;

/// The Redis-backed policy store with its local file fallback (see the module documentation).
pub struct RedisPolicyStore {
    link: Arc<RedisLink>,
    conn: Mutex<Option<redis::Connection>>,
    local: FilePolicyStore,
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
        Ok(Self::with_link(
            Arc::new(RedisLink::new(config)?),
            FilePolicyStore::open(local_dir)?,
        ))
    }

    pub(crate) fn with_link(link: Arc<RedisLink>, local: FilePolicyStore) -> Self {
        Self {
            link,
            conn: Mutex::new(None),
            local,
        }
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

    /// Runs `f` on the connection (made if needed, with the configured limits). A reused
    /// connection found closed (Redis restarted) is replaced once before Redis counts as
    /// unreachable.
    fn with_conn<T>(
        &self,
        op: &'static str,
        mut f: impl FnMut(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, StateError> {
        if !self.link.may_try() {
            return Err(self.link.skipped());
        }
        let mut guard = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        // another caller may have found Redis unreachable while this one waited for the lock
        if guard.is_none() && !self.link.may_try() {
            return Err(self.link.skipped());
        }
        for attempt in 0..2 {
            let fresh = guard.is_none();
            if fresh {
                let connected = self
                    .link
                    .client
                    .get_connection_with_timeout(self.link.connect_timeout)
                    .and_then(|c| {
                        c.set_read_timeout(Some(self.link.response_timeout))?;
                        c.set_write_timeout(Some(self.link.response_timeout))?;
                        Ok(c)
                    });
                match connected {
                    Ok(c) => *guard = Some(c),
                    Err(e) => {
                        let e = StateError::redis(&e);
                        self.link.failed(op, &e);
                        return Err(e);
                    }
                }
            }
            let Some(conn) = guard.as_mut() else { break };
            match f(conn) {
                Ok(v) => {
                    self.link.succeeded();
                    return Ok(v);
                }
                Err(e) if answered(&e) => {
                    self.link.succeeded();
                    return Err(StateError::redis(&e));
                }
                Err(e) => {
                    // a timed-out reply may still arrive: never reuse the connection
                    *guard = None;
                    if attempt == 0 && !fresh && stale_connection(&e) {
                        continue;
                    }
                    let e = StateError::redis(&e);
                    self.link.failed(op, &e);
                    return Err(e);
                }
            }
        }
        Err(self.link.skipped())
    }

    fn decode(&self, key: &str, bytes: &[u8]) -> Result<CacheEntry, StoreError> {
        let corrupt = |detail: String| StoreError::Corrupt {
            path: format!("redis key {key}"),
            detail,
        };
        if bytes.len() as u64 > MAX_ENTRY_FILE {
            return Err(corrupt(format!("larger than {MAX_ENTRY_FILE} bytes")));
        }
        serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))
    }

    /// The entry in Redis, without the local fallback: [`StateError::Unavailable`] when
    /// Redis does not answer (the admin path says so instead of showing a local copy).
    pub fn get_shared(&self, domain: &PolicyDomain) -> Result<Option<CacheEntry>, StateError> {
        let key = self.key_of(domain);
        let bytes: Option<Vec<u8>> =
            self.with_conn("get", |c| redis::cmd("GET").arg(&key).query(c))?;
        let Some(bytes) = bytes else {
            return Ok(None);
        };
        let entry = self.decode(&key, &bytes)?;
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
        let (old,): (Option<Vec<u8>>,) = self.with_conn("remove", |c| {
            redis::pipe()
                .atomic()
                .cmd("GET")
                .arg(&key)
                .cmd("DEL")
                .arg(&key)
                .ignore()
                .query(c)
        })?;
        Ok(old.and_then(|b| self.decode(&key, &b).ok()))
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
            let (next, batch): (u64, Vec<String>) = self.with_conn("list", |c| {
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(500)
                    .query(c)
            })?;
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
            let values: Vec<Option<Vec<u8>>> =
                self.with_conn("list", |c| redis::cmd("MGET").arg(chunk).query(c))?;
            for (key, value) in chunk.iter().zip(values) {
                let Some(bytes) = value else { continue };
                match self.decode(key, &bytes) {
                    Ok(entry) if self.key_of(&entry.domain) == *key => out.push(entry),
                    Ok(entry) => {
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
        let shared: Result<(), StateError> = self.with_conn("put", |c| {
            redis::cmd("SET")
                .arg(&key)
                .arg(&json)
                .arg("EX")
                .arg(ttl)
                .query(c)
        });
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
