use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;
use crate::Envelope;

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn diag(code: u16) -> Diagnostic {
    Diagnostic {
        code,
        status: None,
        text: format!("{code} test"),
        remote_mta: Some("mx.example.net".into()),
    }
}

fn policy() -> RetryPolicy {
    RetryPolicy::new(
        Duration::from_secs(60),
        Duration::from_secs(1000),
        50,
        Duration::from_secs(3600),
    )
    .unwrap()
}

#[test]
fn backoff_doubles_and_caps() {
    let p = policy();
    let table = [
        (1, 60),
        (2, 120),
        (3, 240),
        (4, 480),
        (5, 960),
        (6, 1000),
        (40, 1000),
    ];
    for (attempt, base) in table {
        let (lo, hi) = p.backoff_bounds(attempt);
        assert_eq!(lo, Duration::from_secs(base), "attempt {attempt}");
        assert_eq!(hi, Duration::from_secs(base) * 3 / 2, "attempt {attempt}");
    }
}

#[test]
fn backoff_draws_stay_within_bounds() {
    let p = policy();
    let mut rng = fastrand::Rng::with_seed(7);
    for attempt in 1..12 {
        let (lo, hi) = p.backoff_bounds(attempt);
        let mut seen_spread = false;
        for _ in 0..200 {
            let d = p.backoff(attempt, &mut rng);
            assert!(
                d >= lo && d <= hi,
                "attempt {attempt}: {d:?} not in {lo:?}..={hi:?}"
            );
            seen_spread |= d != lo;
        }
        assert!(seen_spread, "jitter never applied at attempt {attempt}");
    }
}

#[test]
fn invalid_policies_are_rejected() {
    let s = Duration::from_secs;
    for (i, m, j, l) in [
        (0, 10, 0, 10),
        (10, 5, 0, 10),
        (1, 10, 101, 10),
        (1, 10, 0, 0),
    ] {
        assert!(matches!(
            RetryPolicy::new(s(i), s(m), j, s(l)),
            Err(RelayError::InvalidRetryPolicy { .. })
        ));
    }
}

#[test]
fn outcomes_map_to_dispositions() {
    let p = policy();
    let mut rng = fastrand::Rng::with_seed(1);
    let mut env = Envelope::new(
        "s@a.example",
        ["x@b.example", "y@b.example", "z@b.example"],
        t0(),
    );
    let now = t0() + Duration::from_secs(10);
    assert_eq!(
        record_attempt(&p, &mut env, 0, AttemptOutcome::Delivered, now, &mut rng),
        Disposition::Delivered
    );
    assert_eq!(
        record_attempt(
            &p,
            &mut env,
            1,
            AttemptOutcome::Failed(diag(550)),
            now,
            &mut rng
        ),
        Disposition::Bounced
    );
    let Disposition::Deferred { next_attempt } = record_attempt(
        &p,
        &mut env,
        2,
        AttemptOutcome::Deferred(diag(451)),
        now,
        &mut rng,
    ) else {
        panic!("expected deferred");
    };
    assert!(next_attempt >= now + Duration::from_secs(60));
    assert!(next_attempt <= now + Duration::from_secs(90));
    assert_eq!(env.next_attempt, next_attempt);
    // A final recipient is never re-opened.
    assert_eq!(
        record_attempt(
            &p,
            &mut env,
            0,
            AttemptOutcome::Deferred(diag(451)),
            now,
            &mut rng
        ),
        Disposition::Delivered
    );
    assert_eq!(env.recipients[0].state, RecipientState::Delivered);
    assert!(!env.is_done());
}

#[test]
fn deferral_after_lifetime_expires_and_retries_never_pass_deadline() {
    let p = policy();
    let mut rng = fastrand::Rng::with_seed(3);
    let mut env = Envelope::new("s@a.example", ["x@b.example"], t0());
    let deadline = t0() + Duration::from_secs(3600);
    let near = deadline - Duration::from_secs(5);
    let d = record_attempt(
        &p,
        &mut env,
        0,
        AttemptOutcome::Deferred(diag(421)),
        near,
        &mut rng,
    );
    assert_eq!(
        d,
        Disposition::Deferred {
            next_attempt: deadline
        }
    );
    let d = record_attempt(
        &p,
        &mut env,
        0,
        AttemptOutcome::Deferred(diag(421)),
        deadline,
        &mut rng,
    );
    assert_eq!(d, Disposition::Expired);
    assert!(d.owes_dsn());
    assert!(env.is_done());
}

#[test]
fn expire_marks_only_pending_after_deadline() {
    let p = policy();
    let mut env = Envelope::new("s@a.example", ["x@b.example", "y@c.example"], t0());
    env.recipients[0].state = RecipientState::Delivered;
    assert!(expire(&p, &mut env, t0() + Duration::from_secs(3599)).is_empty());
    assert_eq!(
        expire(&p, &mut env, t0() + Duration::from_secs(3600)),
        vec![1]
    );
    assert_eq!(env.recipients[0].state, RecipientState::Delivered);
    assert_eq!(env.recipients[1].state, RecipientState::Expired);
}

#[test]
fn queue_splits_jobs_per_destination_and_reschedules() {
    let mut q = Queue::new(policy());
    let mut rng = fastrand::Rng::with_seed(5);
    let env = Envelope::new(
        "s@a.example",
        ["x@B.example", "y@b.example", "z@c.example"],
        t0(),
    );
    let id = env.id.clone();
    q.insert(env);
    let mut jobs = q.due(t0(), 10);
    jobs.sort_by(|a, b| a.domain.cmp(&b.domain));
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[0].domain, "b.example");
    assert_eq!(jobs[0].recipients, vec![0, 1]);
    assert_eq!(jobs[1].recipients, vec![2]);
    // In flight: not handed out twice.
    q.insert(q.envelope(&id).unwrap().clone());
    assert!(q.due(t0(), 10).is_empty());
    let now = t0() + Duration::from_secs(1);
    let (disp, env) = q
        .complete(
            &jobs[0],
            vec![
                (0, AttemptOutcome::Delivered),
                (1, AttemptOutcome::Deferred(diag(450))),
            ],
            now,
            &mut rng,
        )
        .unwrap();
    assert_eq!(disp[0].1, Disposition::Delivered);
    assert_eq!(env.recipients[0].state, RecipientState::Delivered);
    // y@b.example is due again only after its backoff.
    assert!(q.due(now + Duration::from_secs(59), 10).is_empty());
    let again = q.due(now + Duration::from_secs(91), 10);
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].recipients, vec![1]);
}

#[test]
fn held_destination_waits() {
    let mut q = Queue::new(policy());
    let mut rng = fastrand::Rng::with_seed(9);
    q.hold_destination("b.example", t0(), &mut rng);
    q.insert(Envelope::new("s@a.example", ["x@b.example"], t0()));
    assert!(q.due(t0(), 10).is_empty());
    assert_eq!(q.due(t0() + Duration::from_secs(91), 10).len(), 1);
    q.release_destination("b.example");
}

/// A job whose delivery task failed goes back to the schedule (no attempt counted); a job that
/// was completed is not given back twice.
#[test]
fn requeued_job_is_due_again_and_completed_job_is_not() {
    let mut q = Queue::new(policy());
    let mut rng = fastrand::Rng::with_seed(3);
    q.insert(Envelope::new(
        "s@a.example",
        ["x@b.example", "y@c.example"],
        t0(),
    ));
    let mut jobs = q.due(t0(), 10);
    jobs.sort_by(|a, b| a.domain.cmp(&b.domain));
    assert!(jobs.iter().all(|j| q.is_in_flight(j)));
    let later = t0() + Duration::from_secs(5);
    assert!(q.requeue(&jobs[0], later));
    assert!(!q.is_in_flight(&jobs[0]));
    assert!(q.due(later - Duration::from_secs(1), 10).is_empty());
    let again = q.due(later, 10);
    assert_eq!(again, vec![jobs[0].clone()]);
    assert_eq!(q.envelope(&jobs[0].id).unwrap().recipients[0].attempts, 0);
    let _ = q.complete(
        &jobs[1],
        vec![(1, AttemptOutcome::Delivered)],
        later,
        &mut rng,
    );
    assert!(!q.requeue(&jobs[1], later));
    assert!(q.due(later + Duration::from_secs(3600), 10).is_empty());
}
