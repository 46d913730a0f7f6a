//! Counts that reach Redis after their period was reported (another relay's updates buffered
//! through an outage, an increment racing the report's deletion), with a real `redis-server`
//! on loopback: they never make a second report of the period, and never leave keys that no
//! index lists.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use relay::state::{Counters, ReportCounters as _, StateStore};
use relay::tlsrpt::{Period, PeriodRun, reporter, run_period, write_session};
use smtp_tls_policy::tlsrpt::{Report, ReportedPolicy, Session, SessionResult};
use test_support::redis::RedisServer;

use common::state::*;

const PERIOD: &str = "2026-12-01";
const HOUR: Duration = Duration::from_secs(3600);

/// One successful session of `domain` in [`PERIOD`].
async fn count(counters: &Counters, domain: &str) {
    let period = Period::named(PERIOD, 86_400).unwrap();
    let session = Session::new(
        ReportedPolicy::no_policy_found(domain),
        SessionResult::Success,
    );
    write_session(counters, &period, &session, &mut HashSet::new())
        .await
        .unwrap();
}

/// A `send` that counts the reports it is given.
fn counting(sent: &AtomicUsize) -> impl FnOnce(Vec<Report>) -> std::future::Ready<()> + '_ {
    move |reports| {
        sent.fetch_add(reports.len(), Ordering::SeqCst);
        std::future::ready(())
    }
}

/// Moves Redis's clock `by` forward, for expiries: every key with a time to live gets `by`
/// less (and is deleted when none is left).
async fn advance(conn: &mut redis::aio::MultiplexedConnection, by: Duration) {
    let by = i64::try_from(by.as_millis()).unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query_async(conn).await.unwrap();
    for key in keys {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(&key)
            .query_async(conn)
            .await
            .unwrap();
        if ttl <= 0 {
            continue;
        }
        let mut cmd = if ttl > by {
            redis::cmd("PEXPIRE")
        } else {
            redis::cmd("DEL")
        };
        cmd.arg(&key);
        if ttl > by {
            cmd.arg(ttl - by);
        }
        let () = cmd.query_async(conn).await.unwrap();
    }
}

/// The keys of [`PERIOD`]'s counters (buckets, descriptions, index) in Redis.
async fn period_keys(conn: &mut redis::aio::MultiplexedConnection) -> Vec<String> {
    let p = relay::state::DEFAULT_KEY_PREFIX;
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{p}rpt:{PERIOD}:*"))
        .query_async(conn)
        .await
        .unwrap();
    keys.retain(|k| k.contains(":b:") || k.contains(":m:") || k.ends_with(":idx"));
    keys.sort();
    keys
}

/// A period reported by one relay; a week later another relay's buffered count of it arrives
/// (its Redis link was down); a day after that the "done" mark of the report expires. The
/// period is not reported a second time with the late count (before: a second report of
/// 2026-12-01, holding only that count, once the mark was gone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_count_never_makes_a_second_report_of_its_period() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (one, two, _file) = two_relays_and_file(&server, dir.path());
    let mut conn = raw(&server).await;
    let period = Period::named(PERIOD, 86_400).unwrap();
    let reporter = reporter(&relay::tlsrpt::TlsRptConfig::default(), "relay.example");
    let sent = AtomicUsize::new(0);

    count(one.counters(), "a.example").await;
    let run = run_period(one.counters(), &reporter, &period, HOUR, counting(&sent)).await;
    assert_eq!(run.unwrap(), PeriodRun::Reported(1));
    assert!(period_keys(&mut conn).await.is_empty());

    advance(&mut conn, Duration::from_secs(7 * 86_400)).await;
    count(two.counters(), "a.example").await;
    // the next daily run, a day later: the report's mark has expired
    advance(&mut conn, Duration::from_secs(86_400 + 60)).await;
    let again = run_period(one.counters(), &reporter, &period, HOUR, counting(&sent)).await;
    assert_eq!(sent.load(Ordering::SeqCst), 1, "reported again: {again:?}");
    assert_eq!(again.unwrap(), PeriodRun::Reported(0));
    assert!(period_keys(&mut conn).await.is_empty());
}

/// An increment that lands while the report deletes its period (after the deletion listed the
/// period's buckets) leaves no bucket behind that no index lists — such a key was invisible
/// to `days`, never reported nor deleted, kept for the 8 days of its expiry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_increment_racing_the_deletion_of_its_period_leaves_no_key() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    // the deleting relay's replies come 300 ms late, so an increment of another relay lands
    // between the deletion's listing and its deletes
    let delay = Arc::new(AtomicU64::new(0));
    let url = reply_delaying_proxy(server.addr(), Arc::clone(&delay)).await;
    let config = delayed_redis_config(url);
    let slow = StateStore::open(&config, dir.path()).unwrap();
    let fast = StateStore::open(&redis_config(&server), dir.path()).unwrap();
    let mut conn = raw(&server).await;

    count(fast.counters(), "a.example").await;
    assert_eq!(period_keys(&mut conn).await.len(), 3);
    let evals = |info: String| -> u64 {
        info.lines()
            .find_map(|l| l.strip_prefix("cmdstat_eval:calls="))
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let stats = || {
        let mut conn = conn.clone();
        async move {
            let info: String = redis::cmd("INFO")
                .arg("commandstats")
                .query_async(&mut conn)
                .await
                .unwrap();
            evals(info)
        }
    };
    let before = stats().await;
    delay.store(300, Ordering::SeqCst);
    let deleting = {
        let slow = slow.counters().clone();
        tokio::spawn(async move { slow.delete_day(PERIOD).await })
    };
    // wait (bounded) until Redis ran the deletion's listing (its first script)
    let mut listed = false;
    for _ in 0..500 {
        if stats().await > before {
            listed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(listed, "the deletion never listed the period's buckets");
    count(fast.counters(), "b.example").await;
    deleting.await.unwrap().unwrap();
    let left = period_keys(&mut conn).await;
    assert!(left.is_empty(), "left behind: {left:?}");
    // and the days listed are those of keys that exist
    assert!(fast.counters().days().await.unwrap().is_empty());
}
