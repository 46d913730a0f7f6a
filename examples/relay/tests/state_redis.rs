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

use relay::state::{Backend, Counters, StateConfig, StateError, StateStore, entry_ttl};
use smtp_tls_policy::mta_sts::{CacheEntry, PolicyDomain, PolicyStore};
use std::sync::Arc;
use std::time::{Duration, Instant};
use test_support::redis::RedisServer;

use common::state::*;
use relay::state::ReportCounters as _;

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
    let c = redis_counters(&store);
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
    let postfix = Postfix::with_tls(&ca, &[MX]);
    // connection_cache_secs = 0: one delivery attempt (one policy lookup) per message
    let delivery = format!(
        "connection_cache_secs = 0\nmx_port = {}\n[delivery.resolver]\nmode = \"trust-ad\"\naddress = \"{}\"\n\
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
    let c = redis_counters(&store);
    let policies = store.policies();
    let e = entry("restart.example", "r1", 3600);
    c.incr(DAY, "b", "success", 1).await.unwrap();
    put_blocking(&policies, &e).await;
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
