//! The counter path end to end on the file backend: sessions through the recorder task into
//! the store, read back into one report per policy domain, and the period claimed once.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use smtp_tls_policy::tlsrpt::{
    Endpoints, Report, ReportedPolicy, Session, SessionResult, TlsOutcome, read_report,
};
use time::OffsetDateTime;

use super::{
    Period, PeriodRun, Recorder, TlsRptConfig, collect_reports, due_periods, reporter, run_period,
    write_session,
};
use crate::state::{BucketData, Counters, FileCounters, ReportCounters, StateError};

fn failure(outcome: TlsOutcome, mx: &str) -> SessionResult {
    SessionResult::new(
        outcome,
        Endpoints::new(
            Some("192.0.2.1".parse().unwrap()),
            Some("198.51.100.7".parse().unwrap()),
            Some(mx),
        ),
    )
}

#[tokio::test]
async fn recorded_sessions_become_one_report_per_domain() {
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = FileCounters::open(dir.path()).unwrap();
    let counters = Counters::File(file);
    // a day-long period: the test never straddles a period boundary in practice, and the
    // period is taken from the recorder's own clock below
    let recorder = Recorder::start(counters.clone(), 86_400, 64);
    let sts = ReportedPolicy::sts("pass.example", None);
    let dane = ReportedPolicy::tlsa("fail.example", &[]);
    for _ in 0..3 {
        recorder.record(Session::new(sts.clone(), SessionResult::Success));
    }
    for _ in 0..2 {
        recorder.record(Session::new(
            dane.clone(),
            failure(TlsOutcome::TlsaNoMatch, "mx.fail.example"),
        ));
    }
    recorder.record(Session::new(
        sts.clone(),
        failure(TlsOutcome::StarttlsNotSupported, "mx2.pass.example"),
    ));
    let period = Period::of(OffsetDateTime::now_utc(), 86_400);
    // the recorder writes in its own task: wait (bounded) until all six sessions are stored
    let mut stored = 0;
    for _ in 0..500 {
        stored = 0;
        for b in counters.buckets(&period.name).await.unwrap() {
            let data = counters.read(&period.name, &b).await.unwrap();
            stored += data.fields.iter().map(|(_, n)| n).sum::<u64>();
        }
        if stored == 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(stored, 6);
    assert_eq!(recorder.dropped(), 0);

    let config = TlsRptConfig {
        enabled: true,
        organization_name: "Relay Test".into(),
        contact_info: "tlsrpt@relay.example".into(),
        ..TlsRptConfig::default()
    };
    let reporter = reporter(&config, "relay.example");
    assert_eq!(reporter.from, "noreply-tlsrpt@relay.example");
    let reports = collect_reports(&counters, &reporter, &period)
        .await
        .unwrap();
    assert_eq!(reports.len(), 2);
    let fail = &reports[0];
    let pass = &reports[1];
    assert_eq!(
        fail.policies[0].policy.policy_domain.as_deref(),
        Some("fail.example")
    );
    assert_eq!(fail.policies[0].policy.policy_type.as_str(), "tlsa");
    assert_eq!(fail.policies[0].summary.total_failure_session_count, 2);
    assert_eq!(
        fail.policies[0].failure_details[0].result_type.as_str(),
        "tlsa-invalid"
    );
    assert_eq!(pass.policies[0].summary.total_successful_session_count, 3);
    assert_eq!(pass.policies[0].summary.total_failure_session_count, 1);
    assert_eq!(
        pass.policies[0].failure_details[0].result_type.as_str(),
        "starttls-not-supported"
    );
    // the JSON a receiver gets reads back to the same report
    let json = pass.to_json().unwrap();
    assert_eq!(&read_report(json.as_bytes()).unwrap(), pass);

    // one relay gets the period
    let claim = period.claim_name();
    assert!(
        counters
            .claim(&claim, Duration::from_secs(60))
            .await
            .unwrap()
    );
    assert!(
        !counters
            .claim(&claim, Duration::from_secs(60))
            .await
            .unwrap()
    );
    counters.done(&claim).await.unwrap();
    counters.delete_day(&period.name).await.unwrap();
    assert!(counters.buckets(&period.name).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_full_channel_drops_and_counts_never_waits() {
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = FileCounters::open(dir.path()).unwrap();
    // a current-thread runtime: the recorder task cannot run while this test does not yield
    let recorder = Recorder::start(Counters::File(file), 86_400, 2);
    let session = Session::new(
        ReportedPolicy::no_policy_found("x.example"),
        SessionResult::Success,
    );
    for _ in 0..10 {
        recorder.record(session.clone());
    }
    assert_eq!(recorder.dropped(), 8);
}

/// The file store, with `read` failing the first `fail_reads` times (a store that fails
/// between the claim and the end of a run).
struct FailingReads {
    inner: Counters,
    fail_reads: AtomicUsize,
}

impl ReportCounters for FailingReads {
    async fn incr(&self, day: &str, bucket: &str, field: &str, by: u64) -> Result<(), StateError> {
        self.inner.incr(day, bucket, field, by).await
    }
    async fn set_meta(&self, day: &str, bucket: &str, value: &str) -> Result<(), StateError> {
        self.inner.set_meta(day, bucket, value).await
    }
    async fn buckets(&self, day: &str) -> Result<Vec<String>, StateError> {
        self.inner.buckets(day).await
    }
    async fn read(&self, day: &str, bucket: &str) -> Result<BucketData, StateError> {
        let failing = self
            .fail_reads
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return Err(StateError::Unavailable {
                detail: "read failed (test)".into(),
            });
        }
        self.inner.read(day, bucket).await
    }
    async fn claim(&self, name: &str, ttl: Duration) -> Result<bool, StateError> {
        self.inner.claim(name, ttl).await
    }
    async fn release(&self, name: &str) -> Result<(), StateError> {
        self.inner.release(name).await
    }
    async fn extend(&self, name: &str, ttl: Duration) -> Result<bool, StateError> {
        self.inner.extend(name, ttl).await
    }
    async fn is_done(&self, name: &str) -> Result<bool, StateError> {
        self.inner.is_done(name).await
    }
    async fn days(&self) -> Result<Vec<String>, StateError> {
        self.inner.days().await
    }
    async fn done(&self, name: &str) -> Result<(), StateError> {
        self.inner.done(name).await
    }
    async fn delete_day(&self, day: &str) -> Result<(), StateError> {
        self.inner.delete_day(day).await
    }
}

fn test_reporter() -> smtp_tls_policy::tlsrpt::Reporter {
    reporter(&TlsRptConfig::default(), "relay.example")
}

/// One session of `domain` in the period `name` (a day-long period unless it has a `.N`).
async fn count_in(counters: &Counters, name: &str, domain: &str) -> Period {
    let interval = if name.contains('.') { 5 } else { 86_400 };
    let period = Period::named(name, interval).unwrap();
    let session = Session::new(
        ReportedPolicy::no_policy_found(domain),
        SessionResult::Success,
    );
    write_session(counters, &period, &session, &mut HashSet::new())
        .await
        .unwrap();
    period
}

/// A `send` that counts the reports it is given.
fn counting(sent: &AtomicUsize) -> impl FnOnce(Vec<Report>) -> std::future::Ready<()> + '_ {
    move |reports| {
        sent.fetch_add(reports.len(), Ordering::SeqCst);
        std::future::ready(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_fails_after_its_claim_releases_it_and_its_retry_reports() {
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = FileCounters::open(dir.path()).unwrap();
    let counters = FailingReads {
        inner: Counters::File(file),
        fail_reads: AtomicUsize::new(1),
    };
    let period = count_in(&counters.inner, "2026-12-01", "a.example").await;
    let reporter = test_reporter();
    let sent = AtomicUsize::new(0);
    let hour = Duration::from_secs(3600);
    let first = run_period(&counters, &reporter, &period, hour, counting(&sent)).await;
    assert!(
        matches!(first, Err(StateError::Unavailable { .. })),
        "{first:?}"
    );
    // the retry claims the period again (before: its own claim refused it for an hour)
    let retry = run_period(&counters, &reporter, &period, hour, counting(&sent)).await;
    assert_eq!(retry.unwrap(), PeriodRun::Reported(1));
    assert_eq!(sent.load(Ordering::SeqCst), 1);
    assert!(counters.days().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_period_claimed_by_a_crashed_relay_is_reported_once_its_claim_expires() {
    let dir = tempfile::tempdir().unwrap();
    let reporter = test_reporter();
    let sent = AtomicUsize::new(0);
    let ttl = Duration::from_millis(200);
    let period = {
        // the first relay process claims the period and crashes (its claim stays)
        let (file, _) = FileCounters::open(dir.path()).unwrap();
        let counters = Counters::File(file);
        let period = count_in(&counters, "2026-12-01", "a.example").await;
        assert!(counters.claim(&period.claim_name(), ttl).await.unwrap());
        period
    };
    let (file, _) = FileCounters::open(dir.path()).unwrap();
    let counters = Counters::File(file);
    let now = OffsetDateTime::now_utc();
    let held = run_period(&counters, &reporter, &period, ttl, counting(&sent)).await;
    assert_eq!(held.unwrap(), PeriodRun::HeldByOther);
    // refused, not done: still due (before: dropped by the refused relay for good)
    assert_eq!(
        due_periods(&counters, now, 86_400).await.unwrap(),
        vec![period.clone()]
    );
    let start = std::time::Instant::now();
    let reported = loop {
        let due = due_periods(&counters, OffsetDateTime::now_utc(), 86_400)
            .await
            .unwrap();
        assert_eq!(due, vec![period.clone()]);
        match run_period(&counters, &reporter, &period, ttl, counting(&sent)).await {
            Ok(PeriodRun::HeldByOther) if start.elapsed() < Duration::from_secs(10) => {
                tokio::time::sleep(ttl / 4).await;
            }
            other => break other,
        }
    };
    assert_eq!(reported.unwrap(), PeriodRun::Reported(1));
    assert!(
        start.elapsed() >= ttl / 2,
        "reported before the claim expired"
    );
    assert_eq!(sent.load(Ordering::SeqCst), 1);
    assert!(
        due_periods(&counters, OffsetDateTime::now_utc(), 86_400)
            .await
            .unwrap()
            .is_empty()
    );
    // counted late, after the report: removed, not reported twice
    count_in(&counters, "2026-12-01", "a.example").await;
    let late = run_period(&counters, &reporter, &period, ttl, counting(&sent)).await;
    assert_eq!(late.unwrap(), PeriodRun::Done);
    assert_eq!(sent.load(Ordering::SeqCst), 1);
    assert!(counters.days().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_longer_than_its_claim_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = FileCounters::open(dir.path()).unwrap();
    let counters = Counters::File(file);
    let period = count_in(&counters, "2026-12-01", "a.example").await;
    let ttl = Duration::from_millis(150);
    let claim = period.claim_name();
    let run = run_period(&counters, &test_reporter(), &period, ttl, |reports| {
        let counters = &counters;
        let claim = &claim;
        async move {
            assert_eq!(reports.len(), 1);
            // a slow run: four times the claim's ttl
            let start = std::time::Instant::now();
            while start.elapsed() < ttl * 4 {
                tokio::time::sleep(ttl / 5).await;
                assert!(
                    !counters.claim(claim, ttl).await.unwrap(),
                    "the claim expired during the run"
                );
            }
        }
    })
    .await;
    assert_eq!(run.unwrap(), PeriodRun::Reported(1));
    assert!(counters.is_done(&claim).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_completed_period_the_store_holds_is_due_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = FileCounters::open(dir.path()).unwrap();
    let counters = Counters::File(file);
    // periods missed while the relay was down, and the current one
    let now = OffsetDateTime::now_utc();
    let current = Period::of(now, 86_400);
    let yesterday = Period::previous(now, 86_400);
    let before = Period::previous(now - Duration::from_secs(86_400), 86_400);
    for p in [&before, &yesterday, &current] {
        count_in(&counters, &p.name, "a.example").await;
    }
    // a slice of a shorter interval (report_interval_secs changed): left to expire
    count_in(&counters, "2026-12-01.3", "a.example").await;
    let due = due_periods(&counters, now, 86_400).await.unwrap();
    assert_eq!(due, vec![yesterday.clone(), before.clone()]);
    let sent = AtomicUsize::new(0);
    for p in &due {
        let run = run_period(
            &counters,
            &test_reporter(),
            p,
            Duration::from_secs(60),
            counting(&sent),
        )
        .await;
        assert_eq!(run.unwrap(), PeriodRun::Reported(1));
    }
    assert!(
        due_periods(&counters, now, 86_400)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(sent.load(Ordering::SeqCst), 2);
}
