//! The file backend: replay, torn journal tails, exact concurrent sums, claims, one process
//! per directory. (Both backends run the same conformance suite in `tests/state_redis.rs`.)

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use super::*;

const DAY: &str = "2026-12-04";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn counts_survive_a_restart_and_a_torn_last_line_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (c, replay) = FileCounters::open(dir.path()).unwrap();
        assert_eq!(replay, Replay::default());
        c.incr(DAY, "b1", "success", 3).await.unwrap();
        c.incr(DAY, "b1", "success", 4).await.unwrap();
        c.incr(DAY, "b1", "starttls-not-supported", 1)
            .await
            .unwrap();
        c.set_meta(DAY, "b1", "policy one").await.unwrap();
        c.set_meta(DAY, "b1", "policy two").await.unwrap();
        c.incr("2026-12-05", "b1", "success", 9).await.unwrap();
    });
    // a crash in the middle of an append: half a record at the end
    let journal = dir.path().join(JOURNAL_FILE);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&journal)
        .unwrap()
        .write_all(br#"{"op":"incr","day":"2026-12-04","bucket":"b1","fie"#)
        .unwrap();
    rt().block_on(async {
        let (c, replay) = FileCounters::open(dir.path()).unwrap();
        assert_eq!(replay.corrupt, 0);
        assert!(replay.torn_bytes > 0, "{replay:?}");
        let b = c.read(DAY, "b1").await.unwrap();
        assert_eq!(b.get("success"), 7);
        assert_eq!(b.get("starttls-not-supported"), 1);
        assert_eq!(b.meta.as_deref(), Some("policy one"));
        assert_eq!(c.read("2026-12-05", "b1").await.unwrap().get("success"), 9);
        // the next record after the torn one is read back whole
        c.incr(DAY, "b1", "success", 1).await.unwrap();
    });
    rt().block_on(async {
        let (c, replay) = FileCounters::open(dir.path()).unwrap();
        assert_eq!((replay.corrupt, replay.torn_bytes), (0, 0), "{replay:?}");
        assert_eq!(c.read(DAY, "b1").await.unwrap().get("success"), 8);
    });
}

#[test]
fn a_deleted_day_stays_deleted_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (c, _) = FileCounters::open(dir.path()).unwrap();
        c.incr(DAY, "b1", "success", 1).await.unwrap();
        c.incr("2026-12-05", "b2", "success", 2).await.unwrap();
        c.delete_day(DAY).await.unwrap();
        assert!(c.buckets(DAY).await.unwrap().is_empty());
    });
    rt().block_on(async {
        let (c, _) = FileCounters::open(dir.path()).unwrap();
        assert!(c.buckets(DAY).await.unwrap().is_empty());
        assert_eq!(
            c.buckets("2026-12-05").await.unwrap(),
            vec!["b2".to_owned()]
        );
    });
}

#[test]
fn concurrent_increments_sum_exactly_and_survive_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let total = rt().block_on(async {
        let (c, _) = FileCounters::open(dir.path()).unwrap();
        let c = Arc::new(c);
        let mut tasks = tokio::task::JoinSet::new();
        for t in 0..16u64 {
            let c = Arc::clone(&c);
            tasks.spawn(async move {
                // more records in all than a compaction threshold
                for i in 0..4000u64 {
                    c.incr(DAY, &format!("b{}", i % 3), "success", t + 1)
                        .await
                        .unwrap();
                }
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.unwrap();
        }
        let mut total = 0;
        for b in c.buckets(DAY).await.unwrap() {
            total += c.read(DAY, &b).await.unwrap().get("success");
        }
        total
    });
    let expected: u64 = (1..=16u64).map(|k| k * 4000).sum();
    assert_eq!(total, expected);
    rt().block_on(async {
        let (c, replay) = FileCounters::open(dir.path()).unwrap();
        // compacted while running: fewer records than the 64000 increments
        assert!(replay.records < 64_000 - 10_000, "{replay:?}");
        drop(c);
        // and on open: a snapshot, one record per field
        let (c, replay) = FileCounters::open(dir.path()).unwrap();
        assert_eq!(replay.records, 3, "{replay:?}");
        let mut again = 0;
        for b in c.buckets(DAY).await.unwrap() {
            again += c.read(DAY, &b).await.unwrap().get("success");
        }
        assert_eq!(again, expected);
    });
}

#[test]
fn claims_are_exclusive_until_they_expire_and_done_is_final() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (c, _) = FileCounters::open(dir.path()).unwrap();
        assert!(
            c.claim("report-2026-12-04", Duration::from_secs(60))
                .await
                .unwrap()
        );
        assert!(
            !c.claim("report-2026-12-04", Duration::from_secs(60))
                .await
                .unwrap()
        );
        assert!(c.claim("short", Duration::from_millis(1)).await.unwrap());
        // expired after its 1 ms: wait for the clock, bounded
        let start = std::time::Instant::now();
        loop {
            if c.claim("short", Duration::from_secs(60)).await.unwrap() {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "claim never expired"
            );
            tokio::task::yield_now().await;
        }
        c.done("short").await.unwrap();
        assert!(!c.claim("short", Duration::from_millis(1)).await.unwrap());
        assert!(c.claim("../escape", Duration::from_secs(1)).await.is_err());
        assert!(c.claim(".hidden", Duration::from_secs(1)).await.is_err());
    });
    // a claim outlives the process
    rt().block_on(async {
        let (c, _) = FileCounters::open(dir.path()).unwrap();
        assert!(
            !c.claim("report-2026-12-04", Duration::from_secs(60))
                .await
                .unwrap()
        );
        assert!(!c.claim("short", Duration::from_secs(60)).await.unwrap());
    });
}

#[test]
fn one_process_per_directory() {
    let dir = tempfile::tempdir().unwrap();
    let (first, _) = FileCounters::open(dir.path()).unwrap();
    let second = FileCounters::open(dir.path()).unwrap_err();
    assert!(
        second.to_string().contains("another relay process"),
        "{second}"
    );
    drop(first);
    FileCounters::open(dir.path()).unwrap();
}

#[test]
fn bad_names_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let (c, _) = FileCounters::open(dir.path()).unwrap();
        for (day, bucket, field) in [
            ("", "b", "f"),
            ("a:b", "b", "f"),
            ("a/b", "b", "f"),
            (DAY, "", "f"),
            (DAY, "b", ""),
        ] {
            let e = c.incr(day, bucket, field, 1).await.unwrap_err();
            assert!(matches!(e, StateError::InvalidName { .. }), "{e}");
        }
        let long = "x".repeat(MAX_NAME_LEN + 1);
        assert!(c.incr(DAY, &long, "f", 1).await.is_err());
        assert!(c.buckets(DAY).await.unwrap().is_empty());
        // opaque strings: anything else goes, JSON-escaped in the journal
        c.incr(DAY, "a\"b\nc|é", "f:g", 2).await.unwrap();
    });
    rt().block_on(async {
        let (c, _) = FileCounters::open(dir.path()).unwrap();
        assert_eq!(c.read(DAY, "a\"b\nc|é").await.unwrap().get("f:g"), 2);
    });
}

#[test]
fn the_state_store_opens_the_file_backend_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let config = StateConfig::file(dir.path().join("state"));
    let store = StateStore::open(&config, &dir.path().join("mta-sts")).unwrap();
    assert_eq!(store.backend(), Backend::File);
    assert!(matches!(store.counters(), Counters::File(_)));
    assert!(store.policies().list().unwrap().is_empty());
    assert!(dir.path().join("state").join(JOURNAL_FILE).exists());
    assert!(dir.path().join("mta-sts").is_dir());
}

/// A journal busy for long (a compaction's fsync, a slow disk) is waited for off the async
/// workers: on a one-thread runtime, a task that needs the journal (increment, meta, read,
/// delete) waits for it while another task runs. (Held open by a test hook until that other
/// task has run, or for 5 s at most.)
#[test]
fn a_busy_journal_never_blocks_an_async_worker() {
    let dir = tempfile::tempdir().unwrap();
    let (c, _) = FileCounters::open(dir.path()).unwrap();
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel();
    c.hold_journal_for_test(held_tx, release_rx);
    held_rx.recv().unwrap();
    let (ran_tx, ran_rx) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        let ran = ran_rx.recv_timeout(Duration::from_secs(5)).is_ok();
        let _ = release_tx.send(());
        ran
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut users = tokio::task::JoinSet::new();
        let one = c.clone();
        users.spawn(async move { one.incr(DAY, "b1", "success", 2).await });
        let one = c.clone();
        users.spawn(async move { one.set_meta(DAY, "b1", "policy").await });
        let one = c.clone();
        users.spawn(async move { one.buckets(DAY).await.map(drop) });
        let one = c.clone();
        users.spawn(async move { one.delete_day("2026-12-01").await });
        // the users start (and wait for the journal), then this other task runs
        tokio::task::yield_now().await;
        tokio::spawn(async move {
            // (the watchdog gave up when the old code held the worker)
            let _ = ran_tx.send(());
        })
        .await
        .unwrap();
        while let Some(r) = users.join_next().await {
            r.unwrap().unwrap();
        }
        let b = c.read(DAY, "b1").await.unwrap();
        assert_eq!((b.get("success"), b.meta.as_deref()), (2, Some("policy")));
    });
    assert!(
        watchdog.join().unwrap(),
        "a task waited for the journal on the async worker: nothing else ran"
    );
}

/// The compaction that increments make due (the journal has grown) runs on the store's writer
/// thread, never on the async worker of the increment that made it due.
#[test]
fn a_compaction_never_runs_on_an_async_worker() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .thread_name("async-worker")
        .enable_all()
        .build()
        .unwrap();
    // the runtime's one worker is the thread that calls block_on
    let on = std::thread::Builder::new()
        .name("async-worker".into())
        .spawn(move || {
            rt.block_on(async {
                let (c, _) = FileCounters::open(dir.path()).unwrap();
                // more records than a compaction threshold, on one field
                for _ in 0..50_001 {
                    c.incr(DAY, "b1", "success", 1).await.unwrap();
                }
                assert_eq!(c.read(DAY, "b1").await.unwrap().get("success"), 50_001);
                c.compacted_on_for_test().await
            })
        })
        .unwrap()
        .join()
        .unwrap();
    assert!(!on.is_empty(), "never compacted");
    assert!(
        on.iter().all(|t| t.as_deref() == Some("state-journal")),
        "compacted on {on:?}"
    );
}

/// A journal operation that panics (a bug) fails only its own call: the writer thread goes on,
/// so later reads, increments and deletions still work (before, every later call failed with
/// "the journal's writer thread stopped" and compactions never ran again).
#[test]
fn a_panicking_journal_operation_leaves_the_writer_running() {
    let dir = tempfile::tempdir().unwrap();
    let (c, _) = FileCounters::open(dir.path()).unwrap();
    rt().block_on(async {
        assert!(c.panic_on_writer_for_test().await.is_err());
        c.incr(DAY, "b1", "f", 2).await.unwrap();
        assert_eq!(c.days().await.unwrap(), vec![DAY.to_owned()]);
        assert_eq!(
            c.read(DAY, "b1").await.unwrap().fields,
            vec![("f".to_owned(), 2)]
        );
        c.delete_day(DAY).await.unwrap();
        assert!(c.days().await.unwrap().is_empty());
    });
}
