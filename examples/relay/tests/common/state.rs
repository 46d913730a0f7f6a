//! Shared fixtures of the relay's shared-state tests (`state_redis*`): a fresh MTA-STS cache
//! entry, a Redis state configuration with short limits, a raw Redis connection, and loopback
//! proxies that drop or delay Redis replies.

use relay::state::{Counters, RedisCounters, StateConfig, StateStore};
use smtp_tls_policy::mta_sts::{
    CacheConfig, CacheEntry, FetchResult, Policy, PolicyDomain, PolicySource, PolicyStore, StsId,
    on_fetch,
};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use test_support::redis::RedisServer;

pub const DAY: &str = "2026-12-04";

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `domain`'s entry with a fresh policy (`max_age` seconds) fetched under `id`.
pub fn entry(domain: &str, id: &str, max_age: u64) -> CacheEntry {
    let d = PolicyDomain::parse(domain).unwrap();
    let text = format!("version: STSv1\nmode: enforce\nmx: mx.{domain}\nmax_age: {max_age}\n");
    let policy = Policy::parse(text.as_bytes()).unwrap();
    let source = PolicySource::new(d.policy_url(), None);
    let (e, _) = on_fetch(
        CacheEntry::new(d),
        &StsId::parse(id).unwrap(),
        FetchResult::Valid { policy, source },
        now(),
        &CacheConfig::default(),
    );
    e
}

pub fn redis_config(server: &RedisServer) -> StateConfig {
    let mut c = StateConfig::redis(server.url());
    c.retry_interval_ms = 50;
    c.connect_timeout_ms = 200;
    c.response_timeout_ms = 500;
    c
}

/// The configuration of a store on `url`, a [`reply_delaying_proxy`]: its timeouts leave room
/// for replies a few hundred milliseconds late.
pub fn delayed_redis_config(url: String) -> StateConfig {
    let mut c = StateConfig::redis(url);
    c.retry_interval_ms = 50;
    c.connect_timeout_ms = 1000;
    c.response_timeout_ms = 2000;
    c
}

/// The Redis counters of a store opened with [`redis_config`].
pub fn redis_counters(store: &StateStore) -> RedisCounters {
    let Counters::Redis(c) = store.counters().clone() else {
        panic!("not the Redis backend")
    };
    c
}

/// Two relays sharing `server` (their local files in `dir`) and a file-backed store in
/// `dir/state` (its policy cache in `dir/mta-sts`).
pub fn two_relays_and_file(
    server: &RedisServer,
    dir: &std::path::Path,
) -> (StateStore, StateStore, StateStore) {
    let one = StateStore::open(&redis_config(server), dir).unwrap();
    let two = StateStore::open(&redis_config(server), dir).unwrap();
    let file =
        StateStore::open(&StateConfig::file(dir.join("state")), &dir.join("mta-sts")).unwrap();
    (one, two, file)
}

/// `policies.put(e)` on a blocking thread (the Redis store must not block the runtime).
pub async fn put_blocking(policies: &Arc<dyn PolicyStore>, e: &CacheEntry) {
    let (p, e) = (Arc::clone(policies), e.clone());
    tokio::task::spawn_blocking(move || p.put(&e).unwrap())
        .await
        .unwrap();
}

/// A raw connection to `server` (to write what another, older or hostile, relay might).
pub async fn raw(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// A loopback TCP proxy to `upstream` that forwards every request and, while `swallow` is
/// set, drops the replies (a reply lost after the server executed the command); it counts
/// the connections it accepted.
pub async fn reply_dropping_proxy(
    upstream: std::net::SocketAddr,
) -> (
    String,
    Arc<std::sync::atomic::AtomicBool>,
    Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("redis://{}", listener.local_addr().unwrap());
    let swallow = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&swallow);
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                continue;
            };
            let flag = Arc::clone(&flag);
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut cr, &mut sw).await;
            });
            tokio::spawn(async move {
                let mut buf = [0u8; 16 * 1024];
                while let Ok(n) = sr.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    if !flag.load(Ordering::SeqCst) && cw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (url, swallow, accepted)
}

/// A loopback TCP proxy to `upstream` that hands every reply chunk on `delay` after it
/// arrived (a slow but answering Redis: latency, not a throughput limit; `delay` may change
/// while it runs).
pub async fn reply_delaying_proxy(
    upstream: std::net::SocketAddr,
    delay: Arc<std::sync::atomic::AtomicU64>,
) -> String {
    use std::sync::atomic::Ordering;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("redis://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                continue;
            };
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut cr, &mut sw).await;
            });
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
            let delay = Arc::clone(&delay);
            tokio::spawn(async move {
                let mut buf = [0u8; 16 * 1024];
                while let Ok(n) = sr.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let due = Instant::now() + Duration::from_millis(delay.load(Ordering::SeqCst));
                    if tx.send((due, buf[..n].to_vec())).is_err() {
                        break;
                    }
                }
            });
            tokio::spawn(async move {
                while let Some((due, bytes)) = rx.recv().await {
                    tokio::time::sleep_until(due.into()).await;
                    if cw.write_all(&bytes).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    url
}
