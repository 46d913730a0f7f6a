//! The retry scheduler (sans-IO): which deliveries are due, and what an attempt's outcome means.
//!
//! The unit of work is a [`Job`]: one message's pending recipients at one destination domain.
//! Each recipient has its own next-attempt time (exponential backoff with bounded jitter,
//! RFC 5321 §4.5.4.1: "the retry interval SHOULD be at least 30 minutes" is the operator's
//! choice through [`RetryPolicy`]); a destination that fails at connection level is held back
//! as a whole. After the maximum queue lifetime (RFC 5321 §4.5.4.1: "give up ... at least 4-5
//! days") a still-pending recipient expires and a DSN is owed.
//! The queue does no I/O: the caller persists the envelopes it returns.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::time::{Duration, SystemTime};

use super::envelope::{Diagnostic, Envelope, MessageId, RecipientState};
use super::error::RelayError;

/// Backoff and lifetime settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Delay after the first failed attempt.
    pub initial: Duration,
    /// Longest delay between two attempts (before jitter).
    pub max_backoff: Duration,
    /// Jitter added on top of the delay, as a percentage of it (0-100).
    pub jitter_percent: u8,
    /// Maximum queue lifetime; a recipient still pending after it expires.
    pub max_lifetime: Duration,
}

impl Default for RetryPolicy {
    /// Postfix-like: 5 min doubling up to ~67 min, +25 % jitter, 5 days lifetime.
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(300),
            max_backoff: Duration::from_secs(4000),
            jitter_percent: 25,
            max_lifetime: Duration::from_secs(5 * 24 * 3600),
        }
    }
}

impl RetryPolicy {
    /// A checked policy.
    ///
    /// ```
    /// use std::time::Duration;
    /// use relay::RetryPolicy;
    /// let p = RetryPolicy::new(Duration::from_secs(60), Duration::from_secs(3600), 20,
    ///     Duration::from_secs(86400)).unwrap();
    /// assert_eq!(p.backoff_bounds(3), (Duration::from_secs(240), Duration::from_secs(288)));
    /// ```
    pub fn new(
        initial: Duration,
        max_backoff: Duration,
        jitter_percent: u8,
        max_lifetime: Duration,
    ) -> Result<Self, RelayError> {
        let reason = if initial.is_zero() {
            Some("initial delay must be positive")
        } else if max_backoff < initial {
            Some("maximum backoff below the initial delay")
        } else if jitter_percent > 100 {
            Some("jitter above 100 %")
        } else if max_lifetime.is_zero() {
            Some("maximum queue lifetime must be positive")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(RelayError::InvalidRetryPolicy { reason }),
            None => Ok(Self {
                initial,
                max_backoff,
                jitter_percent,
                max_lifetime,
            }),
        }
    }

    /// The delay range after the `attempt`-th failed attempt (1-based):
    /// `base = min(initial * 2^(attempt-1), max_backoff)`, range `[base, base + jitter]`.
    #[must_use]
    pub fn backoff_bounds(&self, attempt: u32) -> (Duration, Duration) {
        let shift = attempt.saturating_sub(1).min(32);
        let base = self
            .initial
            .checked_mul(1u32 << shift.min(31))
            .unwrap_or(self.max_backoff)
            .min(self.max_backoff);
        let jitter = base * u32::from(self.jitter_percent) / 100;
        (base, base + jitter)
    }

    /// A delay drawn uniformly from [`RetryPolicy::backoff_bounds`].
    #[must_use]
    pub fn backoff(&self, attempt: u32, rng: &mut fastrand::Rng) -> Duration {
        let (lo, hi) = self.backoff_bounds(attempt);
        let span = (hi - lo).as_millis() as u64;
        lo + Duration::from_millis(rng.u64(0..=span))
    }

    /// When a message that arrived at `arrival` expires.
    #[must_use]
    pub fn deadline(&self, arrival: SystemTime) -> SystemTime {
        arrival + self.max_lifetime
    }
}

/// The result of one delivery attempt for one recipient, as reported by the delivery code.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttemptOutcome {
    /// `250` after DATA (or after the recipient's RCPT, for the whole transaction).
    Delivered,
    /// A temporary failure (`4xx`, connection or TLS failure where the policy defers).
    Deferred(Diagnostic),
    /// A permanent failure (`5xx`, or a policy that forbids any delivery).
    Failed(Diagnostic),
}

/// What happened to a recipient after an attempt. `#[must_use]`: a bounce or expiry owes a DSN.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Disposition {
    /// Delivered; final.
    Delivered,
    /// To be retried at `next_attempt`.
    Deferred {
        /// Next attempt time.
        next_attempt: SystemTime,
    },
    /// Permanently failed; final, DSN owed.
    Bounced,
    /// Queue lifetime exceeded; final, DSN owed.
    Expired,
}

impl Disposition {
    /// Whether a DSN (RFC 3464, action `failed`) is owed to the sender.
    #[must_use]
    pub fn owes_dsn(self) -> bool {
        matches!(self, Self::Bounced | Self::Expired)
    }
}

/// Records one attempt's outcome for recipient `index` of `env` and returns its disposition.
/// Recipients already final are left alone (and reported as they are).
pub fn record_attempt(
    policy: &RetryPolicy,
    env: &mut Envelope,
    index: usize,
    outcome: AttemptOutcome,
    now: SystemTime,
    rng: &mut fastrand::Rng,
) -> Disposition {
    let deadline = policy.deadline(env.arrival);
    let Some(r) = env.recipients.get_mut(index) else {
        return Disposition::Bounced;
    };
    match r.state {
        RecipientState::Delivered => return Disposition::Delivered,
        RecipientState::Bounced => return Disposition::Bounced,
        RecipientState::Expired => return Disposition::Expired,
        RecipientState::Pending => {}
    }
    r.attempts = r.attempts.saturating_add(1);
    r.last_attempt = Some(now);
    let disposition = match outcome {
        AttemptOutcome::Delivered => {
            r.state = RecipientState::Delivered;
            Disposition::Delivered
        }
        AttemptOutcome::Failed(d) => {
            r.last = Some(d);
            r.state = RecipientState::Bounced;
            Disposition::Bounced
        }
        AttemptOutcome::Deferred(d) => {
            r.last = Some(d);
            if now >= deadline {
                r.state = RecipientState::Expired;
                Disposition::Expired
            } else {
                // Never schedule past the deadline: the last try happens at expiry time.
                let next = (now + policy.backoff(r.attempts, rng)).min(deadline);
                r.next_attempt = next;
                Disposition::Deferred { next_attempt: next }
            }
        }
    };
    env.attempts = env.attempts.max(r.attempts);
    env.refresh_next_attempt();
    disposition
}

/// Expires every pending recipient of `env` whose deadline has passed without an attempt
/// succeeding (e.g. its destination stayed held). Returns the expired indices.
pub fn expire(policy: &RetryPolicy, env: &mut Envelope, now: SystemTime) -> Vec<usize> {
    if now < policy.deadline(env.arrival) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (i, r) in env.recipients.iter_mut().enumerate() {
        if r.state == RecipientState::Pending {
            r.state = RecipientState::Expired;
            out.push(i);
        }
    }
    out
}

/// One unit of delivery work: a message's due pending recipients at one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The message.
    pub id: MessageId,
    /// The destination domain (lower case).
    pub domain: String,
    /// Indices into the envelope's recipients.
    pub recipients: Vec<usize>,
}

#[derive(Debug, Clone, Copy)]
struct Hold {
    until: SystemTime,
    failures: u32,
}

/// The in-memory queue: envelopes by id plus a time-ordered schedule per (message, domain).
#[derive(Debug)]
pub struct Queue {
    policy: RetryPolicy,
    envelopes: HashMap<MessageId, Envelope>,
    schedule: BinaryHeap<Reverse<(SystemTime, MessageId, String)>>,
    in_flight: HashSet<(MessageId, String)>,
    holds: HashMap<String, Hold>,
}

impl Queue {
    /// An empty queue.
    #[must_use]
    pub fn new(policy: RetryPolicy) -> Self {
        Self {
            policy,
            envelopes: HashMap::new(),
            schedule: BinaryHeap::new(),
            in_flight: HashSet::new(),
            holds: HashMap::new(),
        }
    }

    /// The retry policy.
    #[must_use]
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// Number of messages queued.
    #[must_use]
    pub fn len(&self) -> usize {
        self.envelopes.len()
    }

    /// Whether the queue is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.envelopes.is_empty()
    }

    /// A queued envelope.
    #[must_use]
    pub fn envelope(&self, id: &MessageId) -> Option<&Envelope> {
        self.envelopes.get(id)
    }

    /// Adds (or replaces) a message; schedules each destination of its pending recipients.
    pub fn insert(&mut self, env: Envelope) {
        for (domain, t) in pending_by_domain(&env) {
            self.schedule.push(Reverse((t, env.id.clone(), domain)));
        }
        self.envelopes.insert(env.id.clone(), env);
    }

    /// Removes a message (after it is done and removed from the spool).
    pub fn remove(&mut self, id: &MessageId) -> Option<Envelope> {
        self.envelopes.remove(id)
    }

    /// The earliest scheduled time, if anything is queued (for the caller's timer).
    #[must_use]
    pub fn next_wakeup(&self) -> Option<SystemTime> {
        self.schedule.peek().map(|Reverse((t, _, _))| *t)
    }

    /// Takes up to `max` jobs due at `now`. A job stays "in flight" until [`Queue::complete`].
    pub fn due(&mut self, now: SystemTime, max: usize) -> Vec<Job> {
        let mut jobs = Vec::new();
        let mut later = Vec::new();
        while jobs.len() < max {
            let Some(Reverse((t, id, domain))) = self.schedule.pop() else {
                break;
            };
            if t > now {
                self.schedule.push(Reverse((t, id, domain)));
                break;
            }
            let key = (id.clone(), domain.clone());
            let Some(env) = self.envelopes.get(&id) else {
                continue;
            };
            if self.in_flight.contains(&key) {
                continue;
            }
            if let Some(hold) = self.holds.get(&domain).filter(|h| h.until > now) {
                later.push(Reverse((hold.until, id, domain)));
                continue;
            }
            let recipients: Vec<usize> = env
                .recipients
                .iter()
                .enumerate()
                .filter(|(_, r)| r.state == RecipientState::Pending && r.domain() == domain)
                .filter(|(_, r)| r.next_attempt <= now)
                .map(|(i, _)| i)
                .collect();
            if recipients.is_empty() {
                // Stale entry: reschedule at the real time, if anything is still pending.
                if let Some(t) = pending_by_domain(env).remove(&domain) {
                    later.push(Reverse((t, id, domain)));
                }
                continue;
            }
            self.in_flight.insert(key);
            jobs.push(Job {
                id,
                domain,
                recipients,
            });
        }
        self.schedule.extend(later);
        jobs
    }

    /// Records the outcomes of a job. Returns the dispositions and the updated envelope, which
    /// the caller must persist ([`Spool::update`](super::Spool::update)) before acting on it.
    pub fn complete(
        &mut self,
        job: &Job,
        outcomes: Vec<(usize, AttemptOutcome)>,
        now: SystemTime,
        rng: &mut fastrand::Rng,
    ) -> Option<(Vec<(usize, Disposition)>, Envelope)> {
        self.in_flight.remove(&(job.id.clone(), job.domain.clone()));
        let env = self.envelopes.get_mut(&job.id)?;
        let mut out = Vec::with_capacity(outcomes.len());
        for (i, outcome) in outcomes {
            out.push((i, record_attempt(&self.policy, env, i, outcome, now, rng)));
        }
        if let Some(t) = pending_by_domain(env).remove(&job.domain) {
            self.schedule
                .push(Reverse((t, job.id.clone(), job.domain.clone())));
        }
        Some((out, env.clone()))
    }

    /// Whether `job` was taken by [`Queue::due`] and not yet completed.
    #[must_use]
    pub fn is_in_flight(&self, job: &Job) -> bool {
        self.in_flight
            .contains(&(job.id.clone(), job.domain.clone()))
    }

    /// Gives back a job taken by [`Queue::due`] whose attempt never reported (its delivery task
    /// failed): it is no longer in flight and is due again at `at`; no attempt is counted.
    /// Returns `false` (and does nothing) when the job was already completed.
    pub fn requeue(&mut self, job: &Job, at: SystemTime) -> bool {
        if !self.in_flight.remove(&(job.id.clone(), job.domain.clone())) {
            return false;
        }
        self.schedule
            .push(Reverse((at, job.id.clone(), job.domain.clone())));
        true
    }

    /// A destination failed as a whole (no MX answered, TLS required and unavailable, ...):
    /// hold it back with its own backoff.
    pub fn hold_destination(&mut self, domain: &str, now: SystemTime, rng: &mut fastrand::Rng) {
        let failures = self.holds.get(domain).map_or(0, |h| h.failures) + 1;
        let until = now + self.policy.backoff(failures, rng);
        self.holds
            .insert(domain.to_ascii_lowercase(), Hold { until, failures });
    }

    /// A destination accepted a delivery: lift any hold.
    pub fn release_destination(&mut self, domain: &str) {
        self.holds.remove(&domain.to_ascii_lowercase());
    }
}

/// Earliest next attempt per destination domain over the pending recipients.
fn pending_by_domain(env: &Envelope) -> HashMap<String, SystemTime> {
    let mut map: HashMap<String, SystemTime> = HashMap::new();
    for r in env
        .recipients
        .iter()
        .filter(|r| r.state == RecipientState::Pending)
    {
        let e = map.entry(r.domain()).or_insert(r.next_attempt);
        *e = (*e).min(r.next_attempt);
    }
    map
}

#[cfg(test)]
mod tests;
