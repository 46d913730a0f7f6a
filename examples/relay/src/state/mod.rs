//! The relay's state that several relays behind one MX may share: the MTA-STS policy cache
//! (RFC 8461) and the TLS-RPT report counters (RFC 8460), behind one [`StateStore`] with two
//! backends, chosen by `[state]` ([`StateConfig`]):
//!
//! - `file` (the default): the policy cache in `delivery.mta_sts.cache_dir` (smtp-tls-policy's
//!   `FilePolicyStore`), the counters in a journal under `state.dir` ([`FileCounters`]). No
//!   server; one relay process per data directory.
//! - `redis`: a Redis or Valkey server shared by several relays ([`RedisPolicyStore`],
//!   [`RedisCounters`]). Counter updates are atomic; a report period is claimed by exactly one
//!   relay. A lost connection never blocks or fails a delivery: policy lookups fall back to
//!   the local file copy, counter updates are buffered and retried, and the log says so once
//!   per outage.
//!
//! ```no_run
//! # async fn demo() -> Result<(), relay::state::StateError> {
//! use relay::state::{ReportCounters, StateConfig, StateStore};
//! let state = StateStore::open(&StateConfig::default(), "relay-data/mta-sts".as_ref())?;
//! state.counters().incr("2026-12-04", "example.com|sts", "success", 1).await?;
//! let policies = state.policies(); // an Arc<dyn PolicyStore> for the MTA-STS cache machine
//! # let _ = policies; Ok(()) }
//! ```

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use smtp_tls_policy::mta_sts::{FilePolicyStore, PolicyStore};

mod config;
mod counters;
mod error;
mod file_counters;
mod file_journal;
mod redis_counters;
mod redis_link;
mod redis_policy;
mod redis_scripts;

pub use config::{
    Backend, DEFAULT_KEY_PREFIX, DEFAULT_STATE_DIR, MAX_BUFFERED_LIMIT, MAX_KEY_PREFIX, RedisUrl,
    STATE_DIR_NAME, StateConfig,
};
pub use counters::{
    BucketData, DONE_RETENTION, MAX_DAY_LEN, MAX_META_LEN, MAX_NAME_LEN, ReportCounters,
};
pub use error::StateError;
pub use file_counters::{CLAIMS_DIR, FileCounters, LOCK_FILE};
pub use file_journal::{JOURNAL_FILE, Replay};
pub use redis_counters::{COUNTER_RETENTION, RedisCounters};
pub use redis_policy::{EMPTY_ENTRY_TTL_SECS, RedisPolicyStore, entry_ttl};

use redis_link::RedisLink;

/// The report counters of the configured backend.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Counters {
    /// The file backend.
    File(FileCounters),
    /// The Redis backend.
    Redis(RedisCounters),
}

impl ReportCounters for Counters {
    async fn incr(&self, day: &str, bucket: &str, field: &str, by: u64) -> Result<(), StateError> {
        match self {
            Self::File(c) => c.incr(day, bucket, field, by).await,
            Self::Redis(c) => c.incr(day, bucket, field, by).await,
        }
    }

    async fn set_meta(&self, day: &str, bucket: &str, value: &str) -> Result<(), StateError> {
        match self {
            Self::File(c) => c.set_meta(day, bucket, value).await,
            Self::Redis(c) => c.set_meta(day, bucket, value).await,
        }
    }

    async fn buckets(&self, day: &str) -> Result<Vec<String>, StateError> {
        match self {
            Self::File(c) => c.buckets(day).await,
            Self::Redis(c) => c.buckets(day).await,
        }
    }

    async fn read(&self, day: &str, bucket: &str) -> Result<BucketData, StateError> {
        match self {
            Self::File(c) => c.read(day, bucket).await,
            Self::Redis(c) => c.read(day, bucket).await,
        }
    }

    async fn claim(&self, name: &str, ttl: Duration) -> Result<bool, StateError> {
        match self {
            Self::File(c) => c.claim(name, ttl).await,
            Self::Redis(c) => c.claim(name, ttl).await,
        }
    }

    async fn release(&self, name: &str) -> Result<(), StateError> {
        match self {
            Self::File(c) => c.release(name).await,
            Self::Redis(c) => c.release(name).await,
        }
    }

    async fn extend(&self, name: &str, ttl: Duration) -> Result<bool, StateError> {
        match self {
            Self::File(c) => c.extend(name, ttl).await,
            Self::Redis(c) => c.extend(name, ttl).await,
        }
    }

    async fn is_done(&self, name: &str) -> Result<bool, StateError> {
        match self {
            Self::File(c) => c.is_done(name).await,
            Self::Redis(c) => c.is_done(name).await,
        }
    }

    async fn days(&self) -> Result<Vec<String>, StateError> {
        match self {
            Self::File(c) => c.days().await,
            Self::Redis(c) => c.days().await,
        }
    }

    async fn done(&self, name: &str) -> Result<(), StateError> {
        match self {
            Self::File(c) => c.done(name).await,
            Self::Redis(c) => c.done(name).await,
        }
    }

    async fn delete_day(&self, day: &str) -> Result<(), StateError> {
        match self {
            Self::File(c) => c.delete_day(day).await,
            Self::Redis(c) => c.delete_day(day).await,
        }
    }
}

/// The relay's shared state: the MTA-STS policy store and the report counters of one
/// backend.
#[derive(Clone)]
pub struct StateStore {
    backend: Backend,
    policies: Arc<dyn PolicyStore>,
    counters: Counters,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore")
            .field("backend", &self.backend)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl StateStore {
    /// Opens the state of `config`; the MTA-STS cache's local files are in `sts_cache_dir`
    /// (`delivery.mta_sts.cache_dir`); the file backend's directory is `state.dir`, else
    /// [`DEFAULT_STATE_DIR`] (the relay sets it next to its spool: [`StateConfig::dir_next_to`]). Creates the directories; the Redis backend connects on
    /// first use (a relay starts while Redis is down).
    pub fn open(config: &StateConfig, sts_cache_dir: &Path) -> Result<Self, StateError> {
        config
            .validate()
            .map_err(|(key, reason)| StateError::Config { key, reason })?;
        let local = FilePolicyStore::open(sts_cache_dir)?;
        match config.backend {
            Backend::File => {
                let dir = config
                    .dir
                    .clone()
                    .unwrap_or_else(|| DEFAULT_STATE_DIR.into());
                let (counters, replay) = FileCounters::open(&dir)?;
                tracing::debug!(dir = %dir.display(), records = replay.records, "report counters: journal replayed");
                Ok(Self {
                    backend: Backend::File,
                    policies: Arc::new(local),
                    counters: Counters::File(counters),
                })
            }
            Backend::Redis => {
                let link = Arc::new(RedisLink::new(config)?);
                tracing::info!(
                    url = %link.shown,
                    key_prefix = %config.key_prefix,
                    local_copy = %sts_cache_dir.display(),
                    "shared state in Redis (MTA-STS policy cache, report counters)"
                );
                Ok(Self {
                    backend: Backend::Redis,
                    policies: Arc::new(RedisPolicyStore::with_link(Arc::clone(&link), local)?),
                    counters: Counters::Redis(RedisCounters::with_link(link, config.max_buffered)),
                })
            }
        }
    }

    /// The backend.
    #[must_use]
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The MTA-STS policy store (smtp-tls-policy's cache machine takes `&dyn PolicyStore`).
    #[must_use]
    pub fn policies(&self) -> Arc<dyn PolicyStore> {
        Arc::clone(&self.policies)
    }

    /// The report counters.
    #[must_use]
    pub fn counters(&self) -> &Counters {
        &self.counters
    }
}

#[cfg(test)]
mod tests;
