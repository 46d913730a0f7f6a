//! The relay's shared state when Redis fails (issue 14): an outage buffers counter updates and
//! the MTA-STS policy cache answers from its local files, a full buffer drops and counts, a
//! relay starts and delivers with Redis down, the log says so once per outage, a silent or slow
//! server costs at most the configured limits and never blocks the runtime, an error reply is
//! no outage, and an increment whose reply was lost is counted once.

mod common;

use relay::state::{Counters, StateConfig, StateError, StateStore};
use std::sync::Arc;
use std::time::{Duration, Instant};
use test_support::redis::RedisServer;

use common::state::*;
use relay::state::ReportCounters as _;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_buffers_counts_and_falls_back_to_the_local_policy_cache() {
    let mut server = RedisServer::start_persistent();
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(&redis_config(&server), dir.path()).unwrap();
    let c = redis_counters(&store);
    let policies = store.policies();
    let before = entry("before.example", "b1", 86_400);
    put_blocking(&policies, &before).await;
    for _ in 0..10 {
        c.incr(DAY, "bucket", "success", 1).await.unwrap();
    }
    assert_eq!(c.read(DAY, "bucket").await.unwrap().get("success"), 10);

    server.kill();

    // increments return at once and are buffered
    let start = Instant::now();
    for i in 0..200u64 {
        c.incr(DAY, "bucket", "success", 1).await.unwrap();
        c.incr(DAY, "bucket", "certificate-expired", i % 2)
            .await
            .unwrap();
    }
    c.set_meta(DAY, "bucket", "meta while down").await.unwrap();
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "400 increments took {took:?} with Redis down"
    );
    assert!(c.redis_down());
    assert_eq!(c.outages(), 1);
    // the first increment went out on the connection Redis had closed: it may have been
    // executed, so it waits apart under its id; the others are summed per field
    assert_eq!(
        c.buffered(),
        4,
        "one sent increment, two fields and one meta, summed in memory"
    );
    assert!(matches!(
        c.read(DAY, "bucket").await,
        Err(StateError::Unavailable { .. })
    ));

    // the policy cache answers from its local files, promptly, and takes new entries
    let during = entry("during.example", "d1", 86_400);
    {
        let (p, before, during) = (Arc::clone(&policies), before.clone(), during.clone());
        tokio::task::spawn_blocking(move || {
            let start = Instant::now();
            assert_eq!(p.get(&before.domain).unwrap(), Some(before.clone()));
            p.put(&during).unwrap();
            assert_eq!(p.get(&during.domain).unwrap(), Some(during.clone()));
            assert_eq!(p.list().unwrap().len(), 2);
            assert!(
                start.elapsed() < Duration::from_secs(2),
                "{:?}",
                start.elapsed()
            );
        })
        .await
        .unwrap();
    }

    server.restart();

    // the background flusher writes the buffer (poll, bounded)
    let start = Instant::now();
    while c.buffered() > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "buffer not flushed: {} left",
            c.buffered()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!c.redis_down());
    let b = c.read(DAY, "bucket").await.unwrap();
    assert_eq!(b.get("success"), 210, "10 before the outage + 200 buffered");
    assert_eq!(b.get("certificate-expired"), 100);
    assert_eq!(b.meta.as_deref(), Some("meta while down"));
    assert_eq!((c.dropped(), c.flushed()), (0, 4));

    // Redis is the policy cache again (it kept the entry stored before the outage)
    tokio::task::spawn_blocking(move || {
        assert_eq!(policies.get(&before.domain).unwrap(), Some(before.clone()));
        let after = entry("after.example", "a1", 60);
        policies.put(&after).unwrap();
        assert_eq!(policies.get(&after.domain).unwrap(), Some(after));
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_buffer_drops_and_counts_updates() {
    let mut server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut config = redis_config(&server);
    config.max_buffered = 3;
    let store = StateStore::open(&config, dir.path()).unwrap();
    let c = redis_counters(&store);
    c.incr(DAY, "b", "up", 1).await.unwrap();
    server.kill();
    // sent on the connection Redis closed: kept apart under its id (it may have been executed)
    c.incr(DAY, "b", "f0", 1).await.unwrap();
    c.incr(DAY, "b", "f1", 1).await.unwrap();
    c.incr(DAY, "b", "f2", 1).await.unwrap();
    c.incr(DAY, "b", "f1", 5).await.unwrap(); // an existing field: summed, not dropped
    c.incr(DAY, "b", "f3", 1).await.unwrap(); // a third field: dropped
    c.set_meta(DAY, "b", "m").await.unwrap(); // dropped
    assert_eq!((c.buffered(), c.dropped()), (3, 2));
    server.restart();
    let start = Instant::now();
    while c.buffered() > 0 {
        assert!(start.elapsed() < Duration::from_secs(10), "not flushed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let b = c.read(DAY, "b").await.unwrap();
    // the server restarted empty (no persistence): only the buffered fields
    assert_eq!(
        (b.get("f0"), b.get("f1"), b.get("f2"), b.get("f3")),
        (1, 6, 1, 0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_starts_and_delivers_with_redis_down() {
    let mut server = RedisServer::start();
    let config = redis_config(&server);
    server.kill();
    let dir = tempfile::tempdir().unwrap();
    // nothing is connected at open
    let store = StateStore::open(&config, dir.path()).unwrap();
    let e = entry("x.example", "x1", 3600);
    let p = store.policies();
    let start = Instant::now();
    tokio::task::spawn_blocking(move || {
        p.put(&e).unwrap();
        assert_eq!(p.get(&e.domain).unwrap(), Some(e));
    })
    .await
    .unwrap();
    store.counters().incr(DAY, "b", "f", 1).await.unwrap();
    assert!(start.elapsed() < Duration::from_secs(2));
}

/// What the relay logs, captured.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// The lines at `level` with `text` about the Redis server at `url`.
    fn count(&self, url: &str, level: &str, text: &str) -> usize {
        let logs = String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned();
        logs.lines()
            .filter(|l| l.contains(level) && l.contains(text) && l.contains(url))
            .count()
    }
}

/// This test binary's log, captured from every thread (a global subscriber: a thread's scoped
/// one may miss events whose callsite another test registered first).
fn captured() -> &'static Captured {
    static LOGS: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Captured::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        logs
    })
}

/// One WARN when Redis becomes unreachable (however many updates and lookups fail), one INFO
/// when it answers again and one INFO when the buffer is written — per outage.
#[tokio::test(flavor = "current_thread")]
async fn the_log_says_so_once_per_outage() {
    let logs = captured();
    let mut server = RedisServer::start();
    let url = server.url();
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(&redis_config(&server), dir.path()).unwrap();
    let c = redis_counters(&store);
    let policies = store.policies();
    let e = entry("log.example", "l1", 3600);
    policies.put(&e).unwrap();
    for outage in 1..=2 {
        server.kill();
        for _ in 0..50 {
            c.incr(DAY, "b", "success", 1).await.unwrap();
            // (this thread's runtime: a bounded blocking call is fine in a test)
            assert_eq!(policies.get(&e.domain).unwrap(), Some(e.clone()));
        }
        assert_eq!(logs.count(&url, "WARN", "Redis unreachable"), outage);
        server.restart();
        let start = Instant::now();
        while c.buffered() > 0 {
            assert!(start.elapsed() < Duration::from_secs(10), "not flushed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(logs.count(&url, "INFO", "Redis reachable again"), outage);
        assert_eq!(
            logs.count(
                &url,
                "INFO",
                "buffered while Redis was unreachable are written"
            ),
            outage
        );
        assert_eq!(logs.count(&url, "WARN", "Redis unreachable"), outage);
        // Redis came back empty (no persistence): the entry is fetched and stored again
        policies.put(&e).unwrap();
    }
    assert_eq!(c.read(DAY, "b").await.unwrap().get("success"), 50);
    assert_eq!(c.outages(), 2);
    // stopped while Redis is down: the loss is logged
    server.kill();
    c.incr(DAY, "b", "success", 1).await.unwrap();
    assert_eq!(c.buffered(), 1);
    drop((c, store));
    assert_eq!(logs.count(&url, "WARN", "the buffered updates are lost"), 1);
}

/// A Redis address that accepts connections and never answers (a hung server): every call
/// returns within the configured limits — the policy cache from its local files, increments
/// buffered — and later calls skip the server until the retry interval has passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_server_costs_at_most_the_configured_limits() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    // accept and hold every connection, never reply (until the listener is dropped)
    let held = Arc::new(std::sync::Mutex::new(Vec::new()));
    {
        let (silent, held) = (silent.try_clone().unwrap(), Arc::clone(&held));
        std::thread::spawn(move || {
            for conn in silent.incoming() {
                match conn {
                    Ok(c) => held.lock().unwrap().push(c),
                    Err(_) => return,
                }
            }
        });
    }
    let dir = tempfile::tempdir().unwrap();
    let mut config = StateConfig::redis(format!("redis://{addr}/0"));
    config.connect_timeout_ms = 200;
    config.response_timeout_ms = 300;
    config.retry_interval_ms = 60_000;
    let store = StateStore::open(&config, dir.path()).unwrap();
    let c = redis_counters(&store);
    let start = Instant::now();
    c.incr(DAY, "b", "success", 1).await.unwrap();
    let first = start.elapsed();
    assert!(first < Duration::from_secs(2), "first incr took {first:?}");
    assert!(c.redis_down());
    assert_eq!(c.buffered(), 1);
    let start = Instant::now();
    for _ in 0..100 {
        c.incr(DAY, "b", "success", 1).await.unwrap();
    }
    assert!(
        start.elapsed() < Duration::from_millis(500),
        "{:?}",
        start.elapsed()
    );
    // the policy cache: local answers, bounded, also for a fresh store (its own first try)
    let other = StateStore::open(&config, dir.path()).unwrap();
    let p = other.policies();
    let e = entry("silent.example", "s1", 3600);
    let timing = tokio::task::spawn_blocking(move || {
        let start = Instant::now();
        p.put(&e).unwrap();
        let first = start.elapsed();
        let start = Instant::now();
        for _ in 0..100 {
            assert_eq!(p.get(&e.domain).unwrap(), Some(e.clone()));
        }
        (first, start.elapsed())
    })
    .await
    .unwrap();
    assert!(
        timing.0 < Duration::from_secs(2),
        "first put took {:?}",
        timing.0
    );
    assert!(
        timing.1 < Duration::from_millis(500),
        "100 gets took {:?}",
        timing.1
    );
    assert!(!held.lock().unwrap().is_empty(), "the relay did connect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_answered_by_redis_is_no_outage() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(&redis_config(&server), dir.path()).unwrap();
    let c = redis_counters(&store);
    let e = entry("a.example", "id1", 86_400);
    let policies = store.policies();
    let put = e.clone();
    tokio::task::spawn_blocking(move || policies.put(&put).unwrap())
        .await
        .unwrap();
    // another (older, or hostile) relay left a hash where the entry was
    let mut conn = raw(&server).await;
    let key = format!("{}sts:a.example", relay::state::DEFAULT_KEY_PREFIX);
    let _: () = redis::pipe()
        .cmd("DEL")
        .arg(&key)
        .ignore()
        .cmd("HSET")
        .arg(&key)
        .arg("f")
        .arg("v")
        .ignore()
        .query_async(&mut conn)
        .await
        .unwrap();
    // the lookup answers from the local copy, and Redis answered: no outage, the counters
    // go on writing to Redis instead of buffering
    let policies = store.policies();
    let got = tokio::task::spawn_blocking(move || policies.get(&e.domain).unwrap())
        .await
        .unwrap();
    assert_eq!(got.map(|g| g.domain.to_string()), Some("a.example".into()));
    c.incr(DAY, "b", "s", 1).await.unwrap();
    assert_eq!((c.outages(), c.buffered()), (0, 0));
    assert_eq!(c.read(DAY, "b").await.unwrap().get("s"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_increment_whose_reply_was_lost_is_not_counted_twice() {
    use std::sync::atomic::Ordering;
    let server = RedisServer::start();
    let (url, swallow, accepted) = reply_dropping_proxy(server.addr()).await;
    let mut config = StateConfig::redis(url);
    config.retry_interval_ms = 50;
    config.connect_timeout_ms = 200;
    config.response_timeout_ms = 300;
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(&config, dir.path()).unwrap();
    let c = redis_counters(&store);
    c.incr(DAY, "b", "s", 1).await.unwrap();
    // Redis executes the next increment, its reply is lost: the relay cannot know
    swallow.store(true, Ordering::SeqCst);
    c.incr(DAY, "b", "s", 1).await.unwrap();
    assert!(c.buffered() > 0, "the increment was not kept for a retry");
    // the retries (every 50 ms, each on a new connection) reach Redis too while their
    // replies are lost: two of them, then the replies come through again
    let start = Instant::now();
    while accepted.load(Ordering::SeqCst) < 4 {
        assert!(start.elapsed() < Duration::from_secs(10), "no retry");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    swallow.store(false, Ordering::SeqCst);
    let mut conn = raw(&server).await;
    let key = format!("{}rpt:{DAY}:b:b", relay::state::DEFAULT_KEY_PREFIX);
    while c.buffered() > 0 {
        assert!(start.elapsed() < Duration::from_secs(10), "never written");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let n: Option<String> = redis::cmd("HGET")
        .arg(&key)
        .arg("s")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(n.as_deref(), Some("2"), "two increments");
    assert_eq!(c.read(DAY, "b").await.unwrap().get("s"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_redis_delays_policy_lookups_only_by_its_latency_and_never_the_runtime() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let server = RedisServer::start();
    let delay = Arc::new(AtomicU64::new(0));
    let url = reply_delaying_proxy(server.addr(), Arc::clone(&delay)).await;
    let config = delayed_redis_config(url);
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(&config, dir.path()).unwrap();
    let policies = store.policies();
    let e = entry("slow.example", "id1", 86_400);
    policies.put(&e).unwrap();
    // Redis answers every command 300 ms late (within the reply limit: no outage)
    delay.store(300, Ordering::SeqCst);
    // a timer task on the same runtime: how late it ever wakes while the lookups run
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ticker = {
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            let mut worst = Duration::ZERO;
            while !stop.load(Ordering::SeqCst) {
                let asked = Instant::now();
                tokio::time::sleep(Duration::from_millis(10)).await;
                worst = worst.max(asked.elapsed().saturating_sub(Duration::from_millis(10)));
            }
            worst
        })
    };
    // sixteen deliveries look the policy up at once, as the cache machine does: a
    // synchronous call inside an async task
    let started = Instant::now();
    let lookups: Vec<_> = (0..16)
        .map(|_| {
            let policies = Arc::clone(&policies);
            let domain = e.domain.clone();
            tokio::spawn(async move { policies.get(&domain).unwrap() })
        })
        .collect();
    for l in lookups {
        let got = l.await.unwrap();
        assert_eq!(got.map(|g| g.domain), Some(e.domain.clone()));
    }
    let took = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    let worst = ticker.await.unwrap();
    eprintln!("16 lookups: {took:?}, timer at worst {worst:?} late");
    // pipelined, not one after the other (16 x 300 ms = 4.8 s); the runtime never stalled
    assert!(
        took < Duration::from_millis(2000),
        "16 lookups took {took:?}"
    );
    assert!(
        worst < Duration::from_millis(250),
        "a timer woke {worst:?} late"
    );
    let Counters::Redis(c) = store.counters() else {
        panic!("redis backend")
    };
    assert_eq!(c.outages(), 0, "a slow Redis is no outage");
}
