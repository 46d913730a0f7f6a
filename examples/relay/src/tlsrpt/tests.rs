//! The counter path end to end on the file backend: sessions through the recorder task into
//! the store, read back into one report per policy domain, and the period claimed once.

use std::time::Duration;

use smtp_tls_policy::tlsrpt::{
    Endpoints, ReportedPolicy, Session, SessionResult, TlsOutcome, read_report,
};
use time::OffsetDateTime;

use super::{Period, Recorder, TlsRptConfig, collect_reports, reporter};
use crate::state::{Counters, FileCounters, ReportCounters};

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
