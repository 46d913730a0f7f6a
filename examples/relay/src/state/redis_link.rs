//! What the Redis policy store and the Redis counters share: the client, the key names and
//! the outage state — one WARN when Redis becomes unreachable, one INFO when it answers again,
//! and between the two, attempts at most every `retry_interval` (so a delivery pays the connect
//! limit at most once per interval, never per message).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, FromRedisValue, Pipeline};

use super::config::{Backend, StateConfig};
use super::error::StateError;

/// The connection parameters and the outage state of one Redis server.
pub(crate) struct RedisLink {
    pub(crate) client: redis::Client,
    /// The URL without its password (logs).
    pub(crate) shown: String,
    prefix: String,
    pub(crate) connect_timeout: Duration,
    pub(crate) response_timeout: Duration,
    pub(crate) retry_interval: Duration,
    down: AtomicBool,
    /// While down: no attempt before this instant (the background flusher excepted).
    next_try: Mutex<Option<Instant>>,
    outages: AtomicU64,
}

impl RedisLink {
    /// The link of a `backend = "redis"` configuration (no connection is made).
    pub(crate) fn new(config: &StateConfig) -> Result<Self, StateError> {
        config
            .validate()
            .map_err(|(key, reason)| StateError::Config { key, reason })?;
        let (Backend::Redis, Some(url)) = (config.backend, config.url.as_ref()) else {
            return Err(StateError::Config {
                key: "backend",
                reason: "not \"redis\"".into(),
            });
        };
        let client = redis::Client::open(url.expose()).map_err(|e| StateError::Config {
            key: "url",
            reason: e.to_string(),
        })?;
        Ok(Self {
            client,
            shown: url.redacted(),
            prefix: config.key_prefix.clone(),
            connect_timeout: config.connect_timeout(),
            response_timeout: config.response_timeout(),
            retry_interval: config.retry_interval(),
            down: AtomicBool::new(false),
            next_try: Mutex::new(None),
            outages: AtomicU64::new(0),
        })
    }

    /// `PREFIX` + `parts` joined by `:`.
    pub(crate) fn key(&self, parts: &[&str]) -> String {
        let mut k = self.prefix.clone();
        for (i, p) in parts.iter().enumerate() {
            if i > 0 {
                k.push(':');
            }
            k.push_str(p);
        }
        k
    }

    /// The `SCAN MATCH` pattern of the keys that start with `PREFIX` + `parts` joined by `:`
    /// (glob characters of the prefix escaped).
    pub(crate) fn pattern(&self, parts: &[&str]) -> String {
        let mut p = String::new();
        for c in self.key(parts).chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                p.push('\\');
            }
            p.push(c);
        }
        p.push('*');
        p
    }

    /// `false` while Redis is known to be unreachable and the retry interval has not passed.
    pub(crate) fn may_try(&self) -> bool {
        if !self.down.load(Ordering::Acquire) {
            return true;
        }
        let next = self.next_try.lock().unwrap_or_else(PoisonError::into_inner);
        next.is_none_or(|t| Instant::now() >= t)
    }

    /// `true` while Redis is known to be unreachable.
    pub(crate) fn is_down(&self) -> bool {
        self.down.load(Ordering::Acquire)
    }

    /// How many outages began since the start.
    pub(crate) fn outages(&self) -> u64 {
        self.outages.load(Ordering::Relaxed)
    }

    /// An operation failed: Redis counts as unreachable until an operation succeeds. Logs
    /// once per outage.
    pub(crate) fn failed(&self, op: &str, error: &StateError) {
        *self.next_try.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(Instant::now() + self.retry_interval);
        if !self.down.swap(true, Ordering::AcqRel) {
            self.outages.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                url = %self.shown,
                op,
                error = %error,
                retry_ms = u64::try_from(self.retry_interval.as_millis()).unwrap_or(u64::MAX),
                "shared state: Redis unreachable; delivery goes on: the MTA-STS cache falls back \
                 to the local files, report counters are buffered in memory and retried"
            );
        }
    }

    /// An operation succeeded: ends an outage (logged once).
    pub(crate) fn succeeded(&self) {
        if self.down.swap(false, Ordering::AcqRel) {
            tracing::info!(url = %self.shown, "shared state: Redis reachable again");
        }
    }

    /// The error for an operation skipped during an outage.
    pub(crate) fn skipped(&self) -> StateError {
        StateError::Unavailable {
            detail: format!("{} unreachable (retried in the background)", self.shown),
        }
    }
}

/// The server answered with an error (a command refused: a key of the wrong type another
/// relay left, a script error, out of memory) or with a reply of an unexpected shape: Redis is
/// reachable and the connection in step — no outage, and the connection is kept.
pub(crate) fn answered(e: &redis::RedisError) -> bool {
    use redis::ErrorKind as K;
    matches!(
        e.kind(),
        K::ResponseError
            | K::ExtensionError
            | K::TypeError
            | K::ExecAbortError
            | K::NoScriptError
            | K::ReadOnly
            | K::NotBusy
    )
}

/// A reused connection that failed this way was closed under us (Redis restarted, an idle
/// timeout): the request never reached a live server, so it is sent again, once, on a new
/// connection. A timeout is not retried (the server may have executed it).
pub(crate) fn stale_connection(e: &redis::RedisError) -> bool {
    !e.is_timeout() && (e.is_connection_dropped() || e.is_io_error())
}

/// The connection one store shares among its tasks (made when first needed).
pub(crate) type SharedConnection = tokio::sync::Mutex<Option<MultiplexedConnection>>;

/// The connection (and whether it was just made), made if needed with the configured limits;
/// `None`: not tried (another task found Redis unreachable while this one waited for the
/// lock). `force`: tried even within the retry interval (the background flusher).
async fn connection(
    link: &RedisLink,
    conn: &SharedConnection,
    force: bool,
) -> Result<Option<(MultiplexedConnection, bool)>, StateError> {
    let mut guard = conn.lock().await;
    if let Some(c) = guard.as_ref() {
        return Ok(Some((c.clone(), false)));
    }
    if !force && !link.may_try() {
        return Ok(None);
    }
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(link.connect_timeout)
        .set_response_timeout(link.response_timeout);
    let limit = link.connect_timeout + link.response_timeout;
    let made = tokio::time::timeout(
        limit,
        link.client
            .get_multiplexed_async_connection_with_config(&config),
    )
    .await;
    match made {
        Ok(Ok(c)) => {
            *guard = Some(c.clone());
            Ok(Some((c, true)))
        }
        Ok(Err(e)) => Err(StateError::redis(&e)),
        Err(_) => Err(StateError::Unavailable {
            detail: format!("no connection within {} ms", limit.as_millis()),
        }),
    }
}

/// Runs `pipe` on the shared connection (the lock is held only to take it, so tasks do not
/// wait for each other's replies), each attempt within the reply limit. A reused connection
/// found closed (Redis restarted) is replaced once before Redis counts as unreachable. With an
/// error, whether `pipe` may have been executed (it was sent and its reply was lost).
pub(crate) async fn run<T: FromRedisValue>(
    link: &RedisLink,
    conn: &SharedConnection,
    op: &'static str,
    pipe: &Pipeline,
    force: bool,
) -> Result<T, (StateError, bool)> {
    let mut sent = false;
    for attempt in 0..2 {
        let error = match connection(link, conn, force).await {
            Ok(None) => return Err((link.skipped(), sent)),
            Ok(Some((mut c, fresh))) => {
                sent = true;
                match tokio::time::timeout(link.response_timeout, pipe.query_async::<T>(&mut c))
                    .await
                {
                    Ok(Ok(v)) => {
                        link.succeeded();
                        return Ok(v);
                    }
                    Ok(Err(e)) if answered(&e) => {
                        // refused whole (a script that fails stops before it writes)
                        link.succeeded();
                        return Err((StateError::redis(&e), attempt > 0));
                    }
                    Ok(Err(e)) => {
                        // a late reply must never answer the next request
                        *conn.lock().await = None;
                        if attempt == 0 && !fresh && stale_connection(&e) {
                            continue;
                        }
                        StateError::redis(&e)
                    }
                    Err(_) => StateError::Unavailable {
                        detail: format!("no reply within {} ms", link.response_timeout.as_millis()),
                    },
                }
            }
            Err(e) => e,
        };
        *conn.lock().await = None;
        link.failed(op, &error);
        return Err((error, sent));
    }
    Err((link.skipped(), sent))
}

/// One step of `SCAN cursor MATCH pattern COUNT count`.
pub(crate) fn scan_step(cursor: u64, pattern: &str, count: usize) -> Pipeline {
    let mut pipe = redis::pipe();
    pipe.cmd("SCAN")
        .arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(count);
    pipe
}
