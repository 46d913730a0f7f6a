//! The relay's shared state (issue 14): both backends pass one conformance suite (counters:
//! sums, exact sums under concurrency, meta set once, claims exclusive until expiry, days
//! apart; the MTA-STS policy cache: get/put/remove/list), and with a real `redis-server` on
//! loopback: two stores (as two relays) share counts, claims and policies; Redis killed
//! mid-run (by PID) → increments return at once and are buffered, the policy cache answers
//! from its local files; Redis restarted on the same port → the buffered counts arrive
//! (exact sum) and the policy cache is shared again. End to end: two `relay` processes with
//! one Redis deliver to an MTA-STS domain (DNSSEC lab, loopback policy server, Postfix): the
//! policy is fetched once, by the first.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use relay::state::{
    Backend, Counters, ReportCounters, StateConfig, StateError, StateStore, entry_ttl,
};
use smtp_tls_policy::mta_sts::{
    CacheConfig, CacheEntry, FetchResult, Policy, PolicyDomain, PolicySource, PolicyStore, StsId,
    on_fetch,
};
use test_support::redis::RedisServer;

const DAY: &str = "2026-12-04";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `domain`'s entry with a fresh policy (`max_age` seconds) fetched under `id`.
fn entry(domain: &str, id: &str, max_age: u64) -> CacheEntry {
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

fn redis_config(server: &RedisServer) -> StateConfig {
    let mut c = StateConfig::redis(server.url());
    c.retry_interval_ms = 50;
    c.connect_timeout_ms = 200;
    c.response_timeout_ms = 500;
    c
}

/// The counters' conformance suite, on a store whose days are empty.
async fn counters_conformance(c: &Arc<Counters>) {
    // sums, and fields and buckets apart
    c.incr(DAY, "b1", "success", 2).await.unwrap();
    c.incr(DAY, "b1", "success", 3).await.unwrap();
    c.incr(DAY, "b1", "certificate-expired", 1).await.unwrap();
    c.incr(DAY, "b2", "success", 7).await.unwrap();
    let b1 = c.read(DAY, "b1").await.unwrap();
    assert_eq!(b1.get("success"), 5);
    assert_eq!(b1.get("certificate-expired"), 1);
    assert_eq!(b1.get("never"), 0);
    assert_eq!(b1.meta, None);
    assert_eq!(
        b1.fields,
        vec![
            ("certificate-expired".to_owned(), 1),
            ("success".to_owned(), 5)
        ]
    );
    // meta set once: the first writer wins
    c.set_meta(DAY, "b1", "{\"policy\":\"one\"}").await.unwrap();
    c.set_meta(DAY, "b1", "{\"policy\":\"two\"}").await.unwrap();
    assert_eq!(
        c.read(DAY, "b1").await.unwrap().meta.as_deref(),
        Some("{\"policy\":\"one\"}")
    );
    // a bucket with a meta only is listed too
    c.set_meta(DAY, "b3", "three").await.unwrap();
    assert_eq!(c.buckets(DAY).await.unwrap(), vec!["b1", "b2", "b3"]);
    // days apart: the same bucket name in another day is another bucket
    c.incr("2026-12-05", "b1", "success", 100).await.unwrap();
    assert_eq!(c.read(DAY, "b1").await.unwrap().get("success"), 5);
    assert!(c.buckets("2026-12-06").await.unwrap().is_empty());
    assert_eq!(c.read("2026-12-06", "b1").await.unwrap().get("success"), 0);

    // concurrent increments from many tasks sum exactly
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..32u64 {
        let c = Arc::clone(c);
        tasks.spawn(async move {
            for i in 0..50u64 {
                c.incr("2026-12-07", &format!("c{}", i % 4), "success", t + 1)
                    .await
                    .unwrap();
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    let mut total = 0;
    for b in c.buckets("2026-12-07").await.unwrap() {
        total += c.read("2026-12-07", &b).await.unwrap().get("success");
    }
    assert_eq!(total, (1..=32u64).map(|k| k * 50).sum::<u64>());

    // claims: exclusive until expiry, final after done
    assert!(c.claim("report-a", Duration::from_secs(60)).await.unwrap());
    assert!(!c.claim("report-a", Duration::from_secs(60)).await.unwrap());
    assert!(
        c.claim("report-b", Duration::from_millis(30))
            .await
            .unwrap()
    );
    let start = Instant::now();
    while !c.claim("report-b", Duration::from_secs(60)).await.unwrap() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "claim never expired"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    c.done("report-b").await.unwrap();
    assert!(!c.claim("report-b", Duration::from_millis(1)).await.unwrap());

    // delete_day removes the day only
    c.delete_day(DAY).await.unwrap();
    assert!(c.buckets(DAY).await.unwrap().is_empty());
    assert_eq!(c.read(DAY, "b1").await.unwrap().get("success"), 0);
    assert_eq!(c.read(DAY, "b1").await.unwrap().meta, None);
    assert_eq!(
        c.read("2026-12-05", "b1").await.unwrap().get("success"),
        100
    );

    // bad names are refused
    assert!(matches!(
        c.incr("a:b", "b", "f", 1).await,
        Err(StateError::InvalidName { .. })
    ));
    assert!(matches!(
        c.claim("../x", Duration::from_secs(1)).await,
        Err(StateError::InvalidName { .. })
    ));
}

/// The policy store's conformance suite, on an empty store.
fn policies_conformance(store: &dyn PolicyStore) {
    let a = entry("a.example", "id1", 86_400);
    let b = entry("b.example", "id2", 3600);
    let da = PolicyDomain::parse("A.Example.").unwrap();
    assert_eq!(store.get(&da).unwrap(), None);
    store.put(&a).unwrap();
    store.put(&b).unwrap();
    assert_eq!(store.get(&da).unwrap(), Some(a.clone()));
    let a2 = entry("a.example", "id3", 600);
    store.put(&a2).unwrap();
    assert_eq!(store.get(&da).unwrap(), Some(a2.clone()));
    let listed: Vec<_> = store
        .list()
        .unwrap()
        .into_iter()
        .map(|e| e.domain.to_string())
        .collect();
    assert_eq!(listed, vec!["a.example", "b.example"]);
    assert_eq!(store.remove(&da).unwrap(), Some(a2));
    assert_eq!(store.get(&da).unwrap(), None);
    assert_eq!(store.remove(&da).unwrap(), None);
    assert_eq!(store.list().unwrap(), vec![b]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_backend_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(
        &StateConfig::file(dir.path().join("state")),
        &dir.path().join("mta-sts"),
    )
    .unwrap();
    assert_eq!(store.backend(), Backend::File);
    counters_conformance(&Arc::new(store.counters().clone())).await;
    let policies = store.policies();
    tokio::task::spawn_blocking(move || policies_conformance(&*policies))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_backend_passes_the_conformance_suite() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(&redis_config(&server), dir.path()).unwrap();
    assert_eq!(store.backend(), Backend::Redis);
    counters_conformance(&Arc::new(store.counters().clone())).await;
    let policies = store.policies();
    tokio::task::spawn_blocking(move || policies_conformance(&*policies))
        .await
        .unwrap();
    let Counters::Redis(c) = store.counters() else {
        panic!("not the Redis backend")
    };
    assert_eq!((c.outages(), c.buffered(), c.dropped()), (0, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_share_counts_claims_and_policies() {
    let server = RedisServer::start();
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let one = StateStore::open(&redis_config(&server), d1.path()).unwrap();
    let two = StateStore::open(&redis_config(&server), d2.path()).unwrap();
    let (c1, c2) = (
        Arc::new(one.counters().clone()),
        Arc::new(two.counters().clone()),
    );
    let mut tasks = tokio::task::JoinSet::new();
    for (i, c) in [&c1, &c2].into_iter().cycle().take(8).enumerate() {
        let c = Arc::clone(c);
        tasks.spawn(async move {
            for _ in 0..100 {
                c.incr(DAY, "example.com|sts", "success", 1).await.unwrap();
                c.incr(DAY, "example.com|sts", "failure", (i % 2) as u64)
                    .await
                    .unwrap();
            }
            c.set_meta(DAY, "example.com|sts", &format!("from task {i}"))
                .await
                .unwrap();
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    // each sees the sum of both
    for c in [&c1, &c2] {
        let b = c.read(DAY, "example.com|sts").await.unwrap();
        assert_eq!(b.get("success"), 800);
        assert_eq!(b.get("failure"), 400);
        assert!(b.meta.as_deref().unwrap().starts_with("from task "));
        assert_eq!(c.buckets(DAY).await.unwrap(), vec!["example.com|sts"]);
    }
    // the daily report is claimed once across the two, also when they race
    let (a, b) = tokio::join!(
        c1.claim("tlsrpt-2026-12-04", Duration::from_secs(60)),
        c2.claim("tlsrpt-2026-12-04", Duration::from_secs(60))
    );
    assert!(
        a.unwrap() ^ b.unwrap(),
        "exactly one relay claims the report"
    );
    // an entry fetched by one relay is used by the other
    let (p1, p2) = (one.policies(), two.policies());
    tokio::task::spawn_blocking(move || {
        let e = entry("shared.example", "s1", 86_400);
        p1.put(&e).unwrap();
        assert_eq!(p2.get(&e.domain).unwrap(), Some(e.clone()));
        // and kept in the second relay's local copy too (read-through)
        assert_eq!(
            smtp_tls_policy::mta_sts::FilePolicyStore::open(d2.path())
                .unwrap()
                .get(&e.domain)
                .unwrap(),
            Some(e.clone())
        );
        // a purge on one is seen by the other
        assert_eq!(p2.remove(&e.domain).unwrap(), Some(e.clone()));
        assert_eq!(p1.get(&e.domain).unwrap(), None);
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_buffers_counts_and_falls_back_to_the_local_policy_cache() {
    let mut server = RedisServer::start_persistent();
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(&redis_config(&server), dir.path()).unwrap();
    let Counters::Redis(c) = store.counters().clone() else {
        panic!("not the Redis backend")
    };
    let policies = store.policies();
    let before = entry("before.example", "b1", 86_400);
    {
        let p = Arc::clone(&policies);
        let e = before.clone();
        tokio::task::spawn_blocking(move || p.put(&e).unwrap())
            .await
            .unwrap();
    }
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
    let Counters::Redis(c) = store.counters().clone() else {
        panic!("not the Redis backend")
    };
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

#[test]
fn the_key_lives_as_long_as_the_policy() {
    let e = entry("ttl.example", "t1", 600);
    let ttl = entry_ttl(&e, now());
    assert!((598..=600).contains(&ttl), "{ttl}");
    let empty = CacheEntry::new(PolicyDomain::parse("e.example").unwrap());
    assert_eq!(entry_ttl(&empty, now()), relay::state::EMPTY_ENTRY_TTL_SECS);
}

/// `relay --mta-sts-show` / `--mta-sts-purge` with `[state] backend = "redis"`: the entry is
/// Redis's, a purge removes it from Redis (every relay) and from the local copy, and an
/// unreachable Redis is an error (exit 2), promptly — never a silent look at the local copy.
#[test]
fn the_admin_path_shows_and_purges_the_shared_entry() {
    let mut server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    relay::config::write_default(dir.path()).unwrap();
    let file = dir.path().join("relay.toml");
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str(&format!(
        "\n[state]\nbackend = \"redis\"\nurl = \"{}\"\n",
        server.url()
    ));
    std::fs::write(&file, text).unwrap();
    let config = relay::config::RelayConfig::load(&file).unwrap();
    let local = dir.path().join("relay-data/mta-sts");
    let store = relay::state::RedisPolicyStore::open(&config.state, &local).unwrap();
    let e = entry("admin.example", "a1", 86_400);
    store.put(&e).unwrap();
    let admin = |arg: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_relay"))
            .arg("--config")
            .arg(&file)
            .args([arg, "admin.example"])
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let shown = admin("--mta-sts-show");
    assert_eq!(shown.status.code(), Some(0), "{shown:?}");
    let j: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(j["backend"], "redis");
    assert_eq!(j["redis_key"], "relay:sts:admin.example");
    assert_eq!(j["fresh"], true);
    assert_eq!(j["entry"]["policy"]["id"], "a1");
    let purged = admin("--mta-sts-purge");
    assert_eq!(purged.status.code(), Some(0), "{purged:?}");
    assert_eq!(store.get_shared(&e.domain).unwrap(), None);
    assert_eq!(store.local().get(&e.domain).unwrap(), None);
    assert_eq!(admin("--mta-sts-show").status.code(), Some(1));

    server.kill();
    let start = Instant::now();
    let down = admin("--mta-sts-show");
    assert_eq!(down.status.code(), Some(2), "{down:?}");
    assert!(
        String::from_utf8_lossy(&down.stderr).contains("Redis unavailable"),
        "{down:?}"
    );
    assert!(start.elapsed() < Duration::from_secs(5));
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
    let Counters::Redis(c) = store.counters().clone() else {
        panic!("not the Redis backend")
    };
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
    let Counters::Redis(c) = store.counters().clone() else {
        panic!("not the Redis backend")
    };
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

/// The cost of one counter update on each backend (sequential, one task), printed; an
/// update is far below a delivery's cost (a TCP+TLS+SMTP exchange: milliseconds).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counter_update_costs_microseconds() {
    const N: u32 = 2000;
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let file = StateStore::open(&StateConfig::file(dir.path().join("s")), dir.path()).unwrap();
    let redis = StateStore::open(&redis_config(&server), dir.path()).unwrap();
    for (name, store) in [("file", &file), ("redis", &redis)] {
        let c = store.counters();
        c.incr(DAY, "warm", "up", 1).await.unwrap();
        let start = Instant::now();
        for i in 0..N {
            c.incr(DAY, &format!("example{}.com|sts", i % 10), "success", 1)
                .await
                .unwrap();
        }
        let per = start.elapsed() / N;
        println!("{name}: {per:?} per incr ({N} sequential)");
        assert!(per < Duration::from_millis(5), "{name}: {per:?} per incr");
        let mut total = 0;
        for b in c.buckets(DAY).await.unwrap() {
            total += c.read(DAY, &b).await.unwrap().get("success");
        }
        assert_eq!(total, u64::from(N));
    }
}

/// Two relay processes with one Redis (`[state] backend = "redis"`) deliver to the lab's
/// MTA-STS domain through Postfix: the first fetches the `enforce` policy, the second applies
/// it from the shared cache without fetching, and keeps a local copy. Redis killed mid-run (by
/// PID): the second relay delivers on with its local copy and logs one WARN; Redis restarted:
/// one INFO, and the first relay finds the entry in Redis again — one policy fetch in all.
#[test]
fn two_relays_share_one_mta_sts_policy_cache_through_redis() {
    use common::{Client, Site, wait_until};
    use test_support::dnssec_lab::{Lab, sts};
    use test_support::pki::TestCa;
    use test_support::policy_server::{PolicyResponse, PolicyServer};
    use test_support::postfix::Postfix;
    const MX: &str = "mx.unsigned.test";

    let mut redis = RedisServer::start_persistent();
    let lab = Lab::start();
    let ca = TestCa::new("shared-state test CA");
    let server = PolicyServer::start(&ca, &[sts::INSECURE]);
    server.set(sts::INSECURE, PolicyResponse::enforce(&[MX], 86400));
    let postfix = {
        let dir = Postfix::scratch();
        let cert = ca.issue(&[MX.to_owned()]);
        let (cp, kp) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cp, &cert.chain_pem).unwrap();
        std::fs::write(&kp, &cert.key_pem).unwrap();
        Postfix::start(
            dir,
            &[
                ("SMTPD_TLS", "may".as_ref()),
                ("TLS_CERT", cp.as_os_str()),
                ("TLS_KEY", kp.as_os_str()),
            ],
        )
    };
    let delivery = format!(
        "mx_port = {}\n[delivery.resolver]\nmode = \"trust-ad\"\naddress = \"{}\"\n\
         probe_name = \"test.\"\n[delivery.retry]\ninitial_secs = 3600\n\
         [delivery.mta_sts]\npolicy_port = {}\n\
         [state]\nbackend = \"redis\"\nurl = \"{}\"\nretry_interval_ms = 100\n",
        postfix.port(),
        lab.validating(),
        server.port(),
        redis.url()
    );
    let opportunistic = "[default]\ntls = \"preferred\"\ndane = \"none\"\n";
    let sent = |rcpt: &str| {
        postfix
            .maillog()
            .lines()
            .filter(|l| l.contains(&format!("to=<{rcpt}>")) && l.contains("status=sent"))
            .count()
    };
    let sites = [
        Site::new(&delivery, opportunistic, Some(&ca.pem)),
        Site::new(&delivery, opportunistic, Some(&ca.pem)),
    ];
    let relays = [sites[0].start(), sites[1].start()];
    let deliver = |i: usize, rcpt: &str| {
        let mut client = Client::connect(sites[i].listen).unwrap();
        client
            .send(
                "sender@client.test",
                rcpt,
                "Subject: shared\r\n\r\nshared cache\r\n",
            )
            .unwrap()
            .unwrap_or_else(|| panic!("relay {i} refused {rcpt}: {}", relays[i].log()));
        client.quit();
        wait_until(
            Duration::from_secs(60),
            || {
                format!(
                    "relay {i}: {rcpt} not delivered\n{}\n{}",
                    postfix.maillog(),
                    relays[i].log()
                )
            },
            || sent(rcpt) >= 1,
        );
    };
    // "MTA-STS: policy applies" lines of relay `i` with the enforce policy from `source`
    let applied = |i: usize, source: &str| {
        relays[i]
            .log()
            .lines()
            .filter(|l| {
                l.contains("MTA-STS: policy applies")
                    && l.contains(&format!("domain={}", sts::INSECURE))
                    && l.contains("mode=\"enforce\"")
                    && l.contains(&format!("source=\"{source}\""))
            })
            .count()
    };
    let log_lines =
        |i: usize, text: &str| relays[i].log().lines().filter(|l| l.contains(text)).count();
    let local_copy = |i: usize| {
        sites[i]
            .dir
            .path()
            .join("relay-data/mta-sts")
            .join(format!("{}.json", sts::INSECURE))
    };

    // the first relay fetches, the second uses the shared entry (and keeps a local copy)
    deliver(0, "first@sts.unsigned.test");
    assert_eq!(applied(0, "fetch"), 1, "{}", relays[0].log());
    deliver(1, "second@sts.unsigned.test");
    assert_eq!(server.hits(sts::INSECURE), 1, "{}", relays[1].log());
    assert_eq!(applied(1, "cache"), 1, "{}", relays[1].log());
    assert!(local_copy(1).is_file());

    // Redis killed mid-run: the second relay goes on with its local copy, one WARN
    redis.kill();
    deliver(1, "third@sts.unsigned.test");
    deliver(1, "fourth@sts.unsigned.test");
    assert_eq!(applied(1, "cache"), 3, "{}", relays[1].log());
    assert_eq!(log_lines(1, "Redis unreachable"), 1, "{}", relays[1].log());

    // restarted (it kept its data): shared again, one INFO; still one fetch in all
    redis.restart();
    // Redis is tried again once the retry interval (100 ms) has passed since the last failure:
    // deliver until a delivery's lookup finds it (bounded)
    for k in 0..20 {
        deliver(1, &format!("fifth{k}@sts.unsigned.test"));
        if log_lines(1, "Redis reachable again") > 0 {
            break;
        }
    }
    assert_eq!(
        log_lines(1, "Redis reachable again"),
        1,
        "{}",
        relays[1].log()
    );
    deliver(0, "sixth@sts.unsigned.test");
    assert_eq!(applied(0, "cache"), 1, "{}", relays[0].log());
    assert_eq!(server.hits(sts::INSECURE), 1);
    for (i, relay) in relays.iter().enumerate() {
        assert_eq!(log_lines(i, "shared state in Redis"), 1, "{}", relay.log());
    }
    assert_eq!(log_lines(0, "Redis unreachable"), 0, "{}", relays[0].log());
}

/// Redis restarted between two uses (or a connection closed by its idle timeout): the closed
/// connection is replaced at once, no outage is declared, nothing is buffered and the policy
/// cache answers from Redis. (Before the fix each relay logged a spurious outage and used its
/// local copy after every Redis restart; found by the end-to-end test above.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_redis_is_reconnected_without_an_outage() {
    let mut server = RedisServer::start_persistent();
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(&redis_config(&server), dir.path()).unwrap();
    let Counters::Redis(c) = store.counters().clone() else {
        panic!("not the Redis backend")
    };
    let policies = store.policies();
    let e = entry("restart.example", "r1", 3600);
    c.incr(DAY, "b", "success", 1).await.unwrap();
    {
        let (p, e) = (Arc::clone(&policies), e.clone());
        tokio::task::spawn_blocking(move || p.put(&e).unwrap())
            .await
            .unwrap();
    }
    server.restart();
    c.incr(DAY, "b", "success", 1).await.unwrap();
    assert_eq!((c.outages(), c.buffered()), (0, 0));
    let shared = tokio::task::spawn_blocking(move || {
        let got = policies.get(&e.domain).unwrap();
        (got == Some(e), policies)
    })
    .await
    .unwrap();
    assert!(shared.0);
    assert_eq!(c.read(DAY, "b").await.unwrap().get("success"), 2);
    assert_eq!(c.outages(), 0, "no outage declared");
}

/// The failure field of a `certificate-expired` session from `sending` to one MX (so that
/// all of them share one overflow field).
fn failure_field(sending: u32) -> String {
    smtp_tls_policy::tlsrpt::encode_field(&smtp_tls_policy::tlsrpt::SessionResult::Failure {
        result_type: smtp_tls_policy::tlsrpt::ResultType::CertificateExpired,
        sending_mta_ip: Some(std::net::IpAddr::V4(std::net::Ipv4Addr::from(
            0x0a00_0000 + sending,
        ))),
        receiving_ip: Some("192.0.2.25".parse().unwrap()),
        receiving_mx_hostname: Some("mx.example.net".into()),
        receiving_mx_helo: None,
        failure_reason_code: None,
        additional_information: None,
    })
}

/// The overflow field of [`failure_field`].
fn overflow_field() -> String {
    smtp_tls_policy::tlsrpt::encode_field(&smtp_tls_policy::tlsrpt::SessionResult::Failure {
        result_type: smtp_tls_policy::tlsrpt::ResultType::CertificateExpired,
        sending_mta_ip: None,
        receiving_ip: Some("192.0.2.25".parse().unwrap()),
        receiving_mx_hostname: Some("mx.example.net".into()),
        receiving_mx_helo: None,
        failure_reason_code: None,
        additional_information: None,
    })
}

const MAX_FIELDS: usize = smtp_tls_policy::tlsrpt::CounterUpdate::MAX_FAILURE_FIELDS_PER_BUCKET;

/// `b` holds at most the bound's failure fields plus the overflow field, and `sessions`
/// failures and `successes` successes in all.
fn assert_bounded(b: &relay::state::BucketData, sessions: u64, successes: u64) {
    let failures: Vec<_> = b.fields.iter().filter(|(f, _)| f != "s").collect();
    assert!(
        failures.len() <= MAX_FIELDS + 1,
        "{} failure fields in one bucket",
        failures.len()
    );
    assert!(
        b.get(&overflow_field()) > 0,
        "nothing counted in the overflow field"
    );
    assert_eq!(failures.iter().map(|(_, n)| n).sum::<u64>(), sessions);
    assert_eq!(b.get("s"), successes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_cannot_grow_a_bucket_past_the_field_bound() {
    let server = RedisServer::start();
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let one = StateStore::open(&redis_config(&server), d1.path()).unwrap();
    let two = StateStore::open(&redis_config(&server), d2.path()).unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    // each relay writes 400 distinct failures (a hostile MX varying what it can) and 50
    // successes, from two tasks each, interleaved
    for (r, c) in [one.counters().clone(), two.counters().clone()]
        .into_iter()
        .enumerate()
    {
        for t in 0..2u32 {
            let c = c.clone();
            tasks.spawn(async move {
                for i in 0..200u32 {
                    let n = (r as u32) * 1000 + t * 200 + i;
                    c.incr(DAY, "bucket", &failure_field(n), 1).await.unwrap();
                    if i % 8 == 0 {
                        c.incr(DAY, "bucket", "s", 1).await.unwrap();
                    }
                }
            });
        }
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    let b = one.counters().read(DAY, "bucket").await.unwrap();
    assert_bounded(&b, 800, 4 * 25);
    // a known field keeps counting in full detail past the bound
    let first = failure_field(0);
    let before = b.get(&first);
    assert_eq!(before, 1);
    two.counters().incr(DAY, "bucket", &first, 2).await.unwrap();
    assert_eq!(
        one.counters()
            .read(DAY, "bucket")
            .await
            .unwrap()
            .get(&first),
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_backend_keeps_the_field_bound_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..2u32 {
        let store = StateStore::open(
            &StateConfig::file(dir.path().join("state")),
            &dir.path().join("mta-sts"),
        )
        .unwrap();
        for i in 0..200u32 {
            store
                .counters()
                .incr(DAY, "bucket", &failure_field(round * 1000 + i), 1)
                .await
                .unwrap();
        }
    }
    let store = StateStore::open(
        &StateConfig::file(dir.path().join("state")),
        &dir.path().join("mta-sts"),
    )
    .unwrap();
    assert_bounded(&store.counters().read(DAY, "bucket").await.unwrap(), 400, 0);
}

/// A raw connection to `server` (to write what another, older or hostile, relay might).
async fn raw(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_values_in_redis_never_fail_a_read() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(&redis_config(&server), dir.path()).unwrap();
    let Counters::Redis(c) = store.counters() else {
        panic!("not the Redis backend")
    };
    let mut conn = raw(&server).await;
    let p = relay::state::DEFAULT_KEY_PREFIX;
    let bucket = format!("{p}rpt:{DAY}:b:x");
    let _: () = redis::pipe()
        .cmd("HSET")
        .arg(&bucket)
        .arg("junk")
        .arg("not a number")
        .arg("negative")
        .arg("-5")
        .arg(b"\xff\xfe".as_slice())
        .arg("7")
        .arg("good")
        .arg("3")
        .ignore()
        .cmd("HSET")
        .arg(format!("{p}rpt:{DAY}:m:x"))
        .arg("a")
        .arg("hash, not a string")
        .ignore()
        .cmd("SADD")
        .arg(format!("{p}rpt:{DAY}:idx"))
        .arg("x")
        .arg(b"\xff".as_slice())
        .ignore()
        .cmd("SET")
        .arg(format!("{p}rpt:{DAY}:b:y"))
        .arg("a string, not a hash")
        .ignore()
        .query_async(&mut conn)
        .await
        .unwrap();
    // a read skips what it cannot use
    assert_eq!(c.buckets(DAY).await.unwrap(), vec!["x"]);
    let b = c.read(DAY, "x").await.unwrap();
    assert_eq!(
        (b.meta.as_deref(), b.fields.clone()),
        (None, vec![("good".to_owned(), 3)])
    );
    assert_eq!(
        c.read(DAY, "y").await.unwrap(),
        relay::state::BucketData::default()
    );
    assert_eq!(c.outages(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_values_in_redis_never_make_an_update_count_twice() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(&redis_config(&server), dir.path()).unwrap();
    let Counters::Redis(c) = store.counters() else {
        panic!("not the Redis backend")
    };
    let mut conn = raw(&server).await;
    let p = relay::state::DEFAULT_KEY_PREFIX;
    let _: () = redis::pipe()
        .cmd("HSET")
        .arg(format!("{p}rpt:{DAY}:b:x"))
        .arg("junk")
        .arg("not a number")
        .arg("good")
        .arg("3")
        .ignore()
        .cmd("SET")
        .arg(format!("{p}rpt:{DAY}:b:y"))
        .arg("a string, not a hash")
        .ignore()
        .query_async(&mut conn)
        .await
        .unwrap();
    // increments of a junk field, a wrong-typed key and a good field, once each: all
    // counted, none twice, and Redis never counts as unreachable
    c.incr(DAY, "x", "junk", 1).await.unwrap();
    c.incr(DAY, "y", "s", 1).await.unwrap();
    c.incr(DAY, "x", "good", 1).await.unwrap();
    c.incr(DAY, "x", "good", 1).await.unwrap();
    let start = Instant::now();
    while c.buffered() > 0 {
        if start.elapsed() > Duration::from_secs(10) {
            let good: Option<String> = redis::cmd("HGET")
                .arg(format!("{p}rpt:{DAY}:b:x"))
                .arg("good")
                .query_async(&mut conn)
                .await
                .unwrap();
            panic!(
                "never written: {} buffered; good = {good:?} (3 + 2 expected)",
                c.buffered()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let b = c.read(DAY, "x").await.unwrap();
    assert_eq!(b.get("good"), 5);
    assert_eq!(b.get("junk"), 1);
    assert_eq!(c.read(DAY, "y").await.unwrap().get("s"), 1);
    assert_eq!(c.outages(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_released_by_its_holder_is_free_again() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let one = StateStore::open(&redis_config(&server), dir.path()).unwrap();
    let two = StateStore::open(&redis_config(&server), dir.path()).unwrap();
    let file = StateStore::open(
        &StateConfig::file(dir.path().join("state")),
        &dir.path().join("mta-sts"),
    )
    .unwrap();
    let hour = Duration::from_secs(3600);
    for c in [one.counters(), file.counters()] {
        // a run that claimed the period, then failed to read the store, releases it: its
        // retry takes the period again (else nobody would report it before the claim expires)
        assert!(c.claim("tlsrpt-p", hour).await.unwrap());
        assert!(!c.claim("tlsrpt-p", hour).await.unwrap());
        c.release("tlsrpt-p").await.unwrap();
        assert!(c.claim("tlsrpt-p", hour).await.unwrap());
        // done is final: a release does not undo it
        c.done("tlsrpt-p").await.unwrap();
        c.release("tlsrpt-p").await.unwrap();
        assert!(!c.claim("tlsrpt-p", hour).await.unwrap());
        // releasing what one does not hold changes nothing
        c.release("tlsrpt-never").await.unwrap();
    }
    // another relay cannot release a held claim
    assert!(one.counters().claim("tlsrpt-q", hour).await.unwrap());
    two.counters().release("tlsrpt-q").await.unwrap();
    assert!(!two.counters().claim("tlsrpt-q", hour).await.unwrap());
    one.counters().release("tlsrpt-q").await.unwrap();
    assert!(two.counters().claim("tlsrpt-q", hour).await.unwrap());
    assert!(!one.counters().claim("tlsrpt-q", hour).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_claim_says_whether_it_is_done_and_its_holder_extends_it() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let one = StateStore::open(&redis_config(&server), dir.path()).unwrap();
    let two = StateStore::open(&redis_config(&server), dir.path()).unwrap();
    let file = StateStore::open(
        &StateConfig::file(dir.path().join("state")),
        &dir.path().join("mta-sts"),
    )
    .unwrap();
    let hour = Duration::from_secs(3600);
    for (c, other) in [
        (one.counters(), two.counters()),
        (file.counters(), file.counters()),
    ] {
        // held (not done): the refused relay keeps the period; done: it drops it
        assert!(!c.is_done("tlsrpt-d").await.unwrap());
        assert!(c.claim("tlsrpt-d", hour).await.unwrap());
        assert!(!other.claim("tlsrpt-d", hour).await.unwrap());
        assert!(!other.is_done("tlsrpt-d").await.unwrap());
        c.done("tlsrpt-d").await.unwrap();
        assert!(other.is_done("tlsrpt-d").await.unwrap());
        assert!(!c.extend("tlsrpt-d", hour).await.unwrap(), "done is final");
        // a run longer than its claim extends it: still held after the first ttl
        let short = Duration::from_millis(300);
        assert!(c.claim("tlsrpt-e", short).await.unwrap());
        let start = Instant::now();
        while start.elapsed() < short * 2 {
            assert!(c.extend("tlsrpt-e", short).await.unwrap());
            assert!(!other.claim("tlsrpt-e", hour).await.unwrap());
            tokio::time::sleep(short / 6).await;
        }
        // the days held, for the reporter's catch-up
        c.incr("2026-12-01", "b", "s", 1).await.unwrap();
        c.incr("2026-12-02.7", "b:x:idx", "s", 1).await.unwrap();
        let days = other.days().await.unwrap();
        assert!(days.contains(&"2026-12-01".to_owned()), "{days:?}");
        assert!(days.contains(&"2026-12-02.7".to_owned()), "{days:?}");
        assert!(days.iter().all(|d| !d.contains(':')), "{days:?}");
        c.delete_day("2026-12-01").await.unwrap();
        assert!(
            !other
                .days()
                .await
                .unwrap()
                .contains(&"2026-12-01".to_owned())
        );
    }
    // another relay cannot extend a claim it does not hold
    assert!(one.counters().claim("tlsrpt-f", hour).await.unwrap());
    assert!(!two.counters().extend("tlsrpt-f", hour).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_journal_forgets_days_past_the_retention() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let old = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        - relay::state::COUNTER_RETENTION.as_millis() as u64
        - 60_000;
    // a day never reported (its reports failed, or were given up) and a recent one
    std::fs::write(
        state.join(relay::state::JOURNAL_FILE),
        format!(
            "{{\"op\":\"incr\",\"day\":\"2026-01-01\",\"bucket\":\"b\",\"field\":\"s\",\"by\":1,\"at\":{old}}}\n\
             {{\"op\":\"meta\",\"day\":\"2026-01-01\",\"bucket\":\"b\",\"value\":\"v\",\"at\":{old}}}\n\
             {{\"op\":\"incr\",\"day\":\"{DAY}\",\"bucket\":\"b\",\"field\":\"s\",\"by\":1}}\n"
        ),
    )
    .unwrap();
    let store = StateStore::open(
        &StateConfig::file(state.clone()),
        &dir.path().join("mta-sts"),
    )
    .unwrap();
    let c = store.counters();
    assert!(
        c.buckets("2026-01-01").await.unwrap().is_empty(),
        "an old day kept forever"
    );
    assert_eq!(c.read(DAY, "b").await.unwrap().get("s"), 1);
    // and the journal no longer holds it
    let text = std::fs::read_to_string(state.join(relay::state::JOURNAL_FILE)).unwrap();
    assert!(!text.contains("2026-01-01"), "{text}");
    assert!(text.contains("\"at\":"), "records carry their time: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_answered_by_redis_is_no_outage() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(&redis_config(&server), dir.path()).unwrap();
    let Counters::Redis(c) = store.counters().clone() else {
        panic!("not the Redis backend")
    };
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

/// A loopback TCP proxy to `upstream` that forwards every request and, while `swallow` is
/// set, drops the replies (a reply lost after the server executed the command); it counts
/// the connections it accepted.
async fn reply_dropping_proxy(
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
    let Counters::Redis(c) = store.counters().clone() else {
        panic!("not the Redis backend")
    };
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
async fn a_file_increment_costs_the_same_with_many_counters_live() {
    // 20,000 buckets (a day of a busy relay: one per policy domain) of 5 fields, replayed
    // from the journal
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let mut text = String::new();
    for b in 0..20_000 {
        for f in 0..5 {
            text.push_str(&format!(
                "{{\"op\":\"incr\",\"day\":\"{DAY}\",\"bucket\":\"b{b}\",\"field\":\"f{f}\",\"by\":1}}\n"
            ));
        }
    }
    std::fs::write(state.join(relay::state::JOURNAL_FILE), text).unwrap();
    let store = StateStore::open(&StateConfig::file(state), &dir.path().join("mta-sts")).unwrap();
    let c = store.counters();
    const N: u32 = 1000;
    let start = Instant::now();
    for i in 0..N {
        c.incr(DAY, &format!("b{}", i % 20_000), "f0", 1)
            .await
            .unwrap();
    }
    let per = start.elapsed() / N;
    println!("file: {per:?} per incr with 20,000 buckets live");
    // about 10 µs; a walk over every live bucket per increment costs a millisecond
    assert!(per < Duration::from_micros(300), "{per:?} per incr");
    assert_eq!(c.read(DAY, "b0").await.unwrap().get("f0"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ids_of_a_large_flush_do_not_stay_in_redis() {
    let mut server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(&redis_config(&server), dir.path()).unwrap();
    let Counters::Redis(c) = store.counters().clone() else {
        panic!("not the Redis backend")
    };
    c.incr(DAY, "b", "up", 1).await.unwrap();
    server.kill();
    // 6,000 distinct fields buffered during the outage, written in 12 transactions
    for i in 0..6000 {
        c.incr(DAY, "b", &format!("f{i}"), 1).await.unwrap();
    }
    server.restart();
    let start = Instant::now();
    while c.buffered() > 0 {
        assert!(start.elapsed() < Duration::from_secs(20), "not flushed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // the next increments remove the ids of the acknowledged ones
    for _ in 0..200 {
        c.incr(DAY, "b", "up", 1).await.unwrap();
    }
    let mut conn = raw(&server).await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}ops:*", relay::state::DEFAULT_KEY_PREFIX))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let ids: usize = redis::cmd("HLEN")
        .arg(&keys[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ids <= 2, "{ids} increment ids left in Redis");
    assert_eq!(c.read(DAY, "b").await.unwrap().fields.len(), 6001);
}

/// A loopback TCP proxy to `upstream` that hands every reply chunk on `delay` after it
/// arrived (a slow but answering Redis: latency, not a throughput limit; `delay` may change
/// while it runs).
async fn reply_delaying_proxy(
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_redis_delays_policy_lookups_only_by_its_latency_and_never_the_runtime() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let server = RedisServer::start();
    let delay = Arc::new(AtomicU64::new(0));
    let url = reply_delaying_proxy(server.addr(), Arc::clone(&delay)).await;
    let mut config = StateConfig::redis(url);
    config.retry_interval_ms = 50;
    config.connect_timeout_ms = 1000;
    config.response_timeout_ms = 2000;
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
