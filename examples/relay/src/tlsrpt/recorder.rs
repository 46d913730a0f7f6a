//! The recorder: sessions in, counter increments out, off the delivery's path.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use smtp_tls_policy::tlsrpt::{CounterUpdate, Session};
use time::OffsetDateTime;
use tokio::sync::mpsc;

use super::period::Period;
use crate::state::{Counters, ReportCounters};

/// Sessions waiting for the recorder task at most; more are dropped (and counted).
pub const DEFAULT_CAPACITY: usize = 4096;

/// Hands delivery sessions to the recorder task. Cheap to clone; [`Recorder::record`] never
/// waits.
#[derive(Debug, Clone)]
pub struct Recorder {
    tx: mpsc::Sender<(Period, Session)>,
    interval_secs: u64,
    dropped: Arc<AtomicU64>,
}

impl Recorder {
    /// Starts the recorder task writing to `counters` (ends when every `Recorder` is
    /// dropped, after writing what it was given).
    #[must_use]
    pub fn start(counters: Counters, interval_secs: u64, capacity: usize) -> Self {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        tokio::spawn(run(counters, rx));
        Self {
            tx,
            interval_secs,
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Counts `session` in the current period. Never waits: with the channel full the
    /// session is dropped, and the log says so at the 1st, 2nd, 4th, 8th, ... drop.
    pub fn record(&self, session: Session) {
        let period = Period::of(OffsetDateTime::now_utc(), self.interval_secs);
        match self.tx.try_send((period, session)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                let n = self
                    .dropped
                    .fetch_add(1, Ordering::Relaxed)
                    .saturating_add(1);
                if n.is_power_of_two() {
                    tracing::warn!(dropped = n, "TLS-RPT: recorder behind, session not counted");
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::debug!("TLS-RPT: recorder stopped, session not counted");
            }
        }
    }

    /// Sessions dropped so far because the recorder was behind.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Writes one session: the bucket's policy description (once per bucket and period from this
/// task; the store keeps the first), then the increment.
///
/// `described` also remembers the failure fields this task wrote per bucket (as
/// `"<bucket> <field>"`; a bucket id has no space), so that a bucket gets at most
/// [`CounterUpdate::MAX_FAILURE_FIELDS_PER_BUCKET`] failure fields from this relay: past it, a
/// new failure goes to its overflow field ([`CounterUpdate::within_bound`]).
pub async fn write(
    counters: &Counters,
    period: &Period,
    session: &Session,
    described: &mut HashSet<String>,
) -> Result<(), crate::state::StateError> {
    let mut update = CounterUpdate::of(period.date, session);
    if !session.result.is_success() {
        let prefix = format!("{} ", update.key.bucket);
        let known = described.contains(&format!("{prefix}{}", update.field));
        if !known {
            let failure_fields = described.iter().filter(|k| k.starts_with(&prefix)).count();
            update = update.within_bound(failure_fields, false);
            described.insert(format!("{prefix}{}", update.field));
        }
    }
    let bucket = update.key.bucket;
    if !described.contains(&bucket) {
        counters
            .set_meta(&period.name, &bucket, &session.policy.to_store_string())
            .await?;
        described.insert(bucket.clone());
    }
    counters
        .incr(&period.name, &bucket, &update.field, update.increment)
        .await
}

async fn run(counters: Counters, mut rx: mpsc::Receiver<(Period, Session)>) {
    let mut current: Option<String> = None;
    let mut described = HashSet::new();
    while let Some((period, session)) = rx.recv().await {
        if current.as_deref() != Some(period.name.as_str()) {
            described.clear();
            current = Some(period.name.clone());
        }
        if let Err(e) = write(&counters, &period, &session, &mut described).await {
            tracing::warn!(period = %period.name, error = %e, "TLS-RPT: session not counted");
        }
    }
}
