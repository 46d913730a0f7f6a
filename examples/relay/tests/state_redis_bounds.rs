//! The relay's shared state under hostile or heavy use (issue 14): the TLS-RPT field bound held
//! store-wide by two relays and across restarts, hostile values in Redis, claims released,
//! refused and extended, the file journal's retention, the cost of a counter update, and an
//! oversized MTA-STS policy value refused unread.

mod common;

use relay::state::{Counters, RedisCounters, StateConfig, StateStore};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use test_support::redis::RedisServer;

use common::state::*;
use relay::state::ReportCounters as _;

/// The mean time of `n` sequential increments of `field` in the buckets `bucket(0..n)`.
async fn per_incr(c: &Counters, n: u32, field: &str, bucket: impl Fn(u32) -> String) -> Duration {
    let start = Instant::now();
    for i in 0..n {
        c.incr(DAY, &bucket(i), field, 1).await.unwrap();
    }
    start.elapsed() / n
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
        let per = per_incr(c, N, "success", |i| format!("example{}.com|sts", i % 10)).await;
        println!("{name}: {per:?} per incr ({N} sequential)");
        assert!(per < Duration::from_millis(5), "{name}: {per:?} per incr");
        let mut total = 0;
        for b in c.buckets(DAY).await.unwrap() {
            total += c.read(DAY, &b).await.unwrap().get("success");
        }
        assert_eq!(total, u64::from(N));
    }
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

/// A relay's Redis counters next to a raw connection to the same server (to write what a
/// hostile or older relay might).
struct RawAccess {
    counters: RedisCounters,
    conn: redis::aio::MultiplexedConnection,
    _store: StateStore,
    _dir: tempfile::TempDir,
    _server: RedisServer,
}

impl RawAccess {
    async fn start() -> Self {
        let server = RedisServer::start();
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(&redis_config(&server), dir.path()).unwrap();
        Self {
            counters: redis_counters(&store),
            conn: raw(&server).await,
            _store: store,
            _dir: dir,
            _server: server,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_values_in_redis_never_fail_a_read() {
    let setup = RawAccess::start().await;
    let (c, mut conn) = (&setup.counters, setup.conn.clone());
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
    let setup = RawAccess::start().await;
    let (c, mut conn) = (&setup.counters, setup.conn.clone());
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
    let (one, two, file) = two_relays_and_file(&server, dir.path());
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
    let (one, two, file) = two_relays_and_file(&server, dir.path());
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
    let per = per_incr(c, N, "f0", |i| format!("b{}", i % 20_000)).await;
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
    let c = redis_counters(&store);
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

/// Bytes Redis has sent to its clients since it started (`INFO stats`).
fn redis_sent(conn: &mut redis::Connection) -> u64 {
    let info: String = redis::cmd("INFO").arg("stats").query(conn).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("total_net_output_bytes:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// A Redis policy store on `server` (its local copy under `dir`) and a plain connection to
/// plant what a broken or hostile writer would leave.
fn policy_store(
    server: &RedisServer,
    dir: &std::path::Path,
) -> (relay::state::RedisPolicyStore, redis::Connection) {
    let store =
        relay::state::RedisPolicyStore::open(&redis_config(server), dir.join("mta-sts")).unwrap();
    let conn = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    (store, conn)
}

/// A policy value in Redis larger than an entry may be (`MAX_ENTRY_FILE`), left by a broken or
/// hostile writer, is refused with a typed error without being read: get, list and remove
/// transfer none of its 16 MiB, and the other entries are listed.
#[test]
fn an_oversized_policy_value_in_redis_is_refused_unread() {
    use smtp_tls_policy::mta_sts::{MAX_ENTRY_FILE, PolicyDomain, PolicyStore, StoreError};
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (store, mut conn) = policy_store(&server, dir.path());
    let big = PolicyDomain::parse("big.example").unwrap();
    let huge = vec![b' '; 16 * 1024 * 1024];
    let () = redis::cmd("SET")
        .arg(store.key_of(&big))
        .arg(&huge)
        .query(&mut conn)
        .unwrap();
    let good = entry("good.example", "g1", 86_400);
    store.put(&good).unwrap();
    let before = redis_sent(&mut conn);

    let e = store.get_shared(&big).unwrap_err();
    assert!(
        matches!(&e, relay::state::StateError::Policy(StoreError::Corrupt { detail, .. })
            if detail.contains(&format!("larger than {MAX_ENTRY_FILE} bytes"))),
        "{e}"
    );
    assert!(matches!(store.get(&big), Err(StoreError::Corrupt { .. })));
    assert_eq!(store.list().unwrap(), vec![good.clone()]);
    assert_eq!(store.get(&good.domain).unwrap(), Some(good.clone()));
    // removed (it could not be read: nothing returned)
    assert_eq!(store.remove(&big).unwrap(), None);
    let exists: bool = redis::cmd("EXISTS")
        .arg(store.key_of(&big))
        .query(&mut conn)
        .unwrap();
    assert!(!exists);
    let sent = redis_sent(&mut conn) - before;
    assert!(sent < MAX_ENTRY_FILE, "Redis sent {sent} bytes");
}

/// A policy key of another type than a string (a broken or hostile writer): reading it is an
/// error, and removing it (`--mta-sts-purge`) deletes it, as the GET + DEL transaction before
/// the size check did.
#[test]
fn a_policy_key_of_the_wrong_type_is_an_error_and_can_be_removed() {
    use smtp_tls_policy::mta_sts::PolicyDomain;
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (store, mut conn) = policy_store(&server, dir.path());
    let odd = PolicyDomain::parse("odd.example").unwrap();
    let key = store.key_of(&odd);
    let _: u64 = redis::cmd("LPUSH")
        .arg(&key)
        .arg("x")
        .query(&mut conn)
        .unwrap();
    assert!(store.get_shared(&odd).is_err());
    assert_eq!(store.remove_shared(&odd).unwrap(), None);
    let exists: bool = redis::cmd("EXISTS").arg(&key).query(&mut conn).unwrap();
    assert!(!exists, "the wrong-typed key was removed");
}
