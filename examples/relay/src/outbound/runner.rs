//! The queue runner: wakes at the queue's next due time or when a message is enqueued, takes the
//! due jobs, and starts delivery tasks within the per-destination connection limit and the
//! global cap on delivery tasks (`max_concurrent_deliveries`): slow or tarpitting destinations
//! can hold at most that many tasks and connections, whatever their number.
//!
//! **Fair share under the cap.** While other destinations wait, a destination gets a new task
//! only while it holds fewer than its share, `max(1, cap / N)` (`N`: the destinations with
//! tasks or waiting jobs), the least served first; slots nobody under their share wants go to
//! anyone (the cap is never left idle). Running tasks are not preempted, but each ends within `max_session_secs`: as
//! slots held by slow destinations free up, they go to the destinations below their share, so
//! a few hostile domains cannot keep the others waiting.
//!
//! **Failed tasks.** A delivery task that panics is caught by its supervisor task: the jobs it
//! did not finish are recorded as deferred (retried after the backoff, in the spool too) and the
//! slot is freed as for any ending task. Should the supervisor itself fail, the runner still
//! knows the task's destination and jobs: the slot is freed and the jobs are given back to the
//! queue.
//!
//! **Connection cache** (`connection_cache_secs`, as Postfix's `smtp_connection_cache_time_limit`).
//! A task that has delivered its batch over a healthy SMTP session offers it to the runner
//! ([`Offer`]) for up to that long before it QUITs: due jobs of the same destination and the
//! same TLS request kind (RFC 8689 §4.2.2: `TLS-Required: No` never shares a session with the
//! others) are handed to it instead of starting a new task, and are delivered on that session
//! with the same hop plan. A lingering task keeps its slot (it counts against both limits); the
//! runner drops its offer — the task QUITs at once — when the global cap holds other
//! destinations back, when its destination has jobs it cannot take, and at shutdown. Handed
//! jobs join the task's job list first, so a panic or a failed supervisor treats them as any
//! other job of the task.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::{self, JoinSet};

use super::context::Context;
use super::deliver::{Linger, deliver_batch};
use super::persist;
use crate::queue::{AttemptOutcome, Job};
use crate::{Diagnostic, Envelope};

/// Most jobs taken from the queue per wake-up.
const MAX_DUE: usize = 10_000;
/// Longest sleep without checking the queue.
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// A task's jobs not yet settled, for when it fails: its batch, or once its session lingered,
/// the jobs handed to it since.
pub(crate) type TaskJobs = Arc<std::sync::Mutex<Vec<Job>>>;

/// A running delivery task: its destination and jobs (for when it fails).
type Running = HashMap<task::Id, (String, TaskJobs)>;

/// A lingering delivery task's offer to take more jobs on its open session.
pub(crate) struct Offer {
    /// The destination domain of its session.
    pub(crate) domain: String,
    /// Its session carries `TLS-Required: No` jobs (RFC 8689 §4.2.2), else the others.
    pub(crate) tls_optional: bool,
    /// How many more messages the session may carry (`max_messages_per_connection`).
    pub(crate) room: usize,
    /// The task's job list: handed jobs are added here before they are sent.
    pub(crate) jobs: TaskJobs,
    /// Where the jobs go; dropped unused: the task QUITs.
    pub(crate) handoff: oneshot::Sender<Vec<Job>>,
}

fn lock_jobs(jobs: &TaskJobs) -> std::sync::MutexGuard<'_, Vec<Job>> {
    jobs.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) async fn run(
    ctx: Arc<Context>,
    mut rx: mpsc::UnboundedReceiver<Envelope>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backlog: HashMap<String, VecDeque<Job>> = HashMap::new();
    let mut active: HashMap<String, usize> = HashMap::new();
    let mut tasks: JoinSet<(String, bool)> = JoinSet::new();
    let mut running: Running = HashMap::new();
    let mut stopping = *shutdown.borrow();
    let mut rng = fastrand::Rng::new();
    let mut capped = false;
    let (offer_tx, mut offer_rx) = mpsc::unbounded_channel::<Offer>();
    let mut idle: HashMap<String, Vec<Offer>> = HashMap::new();
    loop {
        if stopping {
            idle.clear(); // lingering tasks QUIT at once
        } else {
            let mut d = Dispatch {
                backlog: &mut backlog,
                active: &mut active,
                tasks: &mut tasks,
                running: &mut running,
                capped: &mut capped,
                idle: &mut idle,
                offers: &offer_tx,
            };
            d.run(&ctx, &shutdown, &mut rng);
        }
        if stopping && tasks.is_empty() {
            break;
        }
        let sleep = if stopping {
            MAX_SLEEP
        } else {
            ctx.lock_queue()
                .next_wakeup()
                .map_or(MAX_SLEEP, |t| {
                    t.duration_since(SystemTime::now())
                        .unwrap_or(Duration::ZERO)
                        .max(Duration::from_millis(5))
                })
                .min(MAX_SLEEP)
        };
        tokio::select! {
            env = rx.recv(), if !stopping => match env {
                Some(env) => {
                    let mut q = ctx.lock_queue();
                    q.insert(env);
                    while let Ok(env) = rx.try_recv() {
                        q.insert(env);
                    }
                }
                None => stopping = true,
            },
            done = tasks.join_next_with_id(), if !tasks.is_empty() => {
                let (id, result) = match done {
                    Some(Ok((id, r))) => (id, Ok(r)),
                    Some(Err(e)) => (e.id(), Err(e)),
                    None => continue,
                };
                let Some((domain, jobs)) = running.remove(&id) else {
                    continue;
                };
                free_slot(&mut active, &domain);
                let jobs = lock_jobs(&jobs).clone();
                let mut q = ctx.lock_queue();
                match result {
                    Ok((_, true)) => q.release_destination(&domain),
                    Ok((_, false)) => q.hold_destination(&domain, SystemTime::now(), &mut rng),
                    Err(e) => {
                        // The supervisor itself failed: give the unfinished jobs back.
                        let at = SystemTime::now() + q.policy().initial;
                        let requeued = jobs.iter().filter(|j| q.requeue(j, at)).count();
                        tracing::error!(%domain, error = %e, requeued, "delivery task failed");
                        q.hold_destination(&domain, SystemTime::now(), &mut rng);
                    }
                }
            },
            Some(offer) = offer_rx.recv() => {
                if !stopping { // else dropped: the task QUITs at once
                    idle.entry(offer.domain.clone()).or_default().push(offer);
                }
            },
            changed = shutdown.changed(), if !stopping => {
                if changed.is_err() || *shutdown.borrow() {
                    tracing::info!(in_flight = tasks.len(), "delivery: shutting down");
                    stopping = true;
                }
            },
            () = tokio::time::sleep(sleep), if !stopping => {},
        }
    }
    tracing::info!("delivery: stopped; undelivered mail stays in the spool");
}

fn free_slot(active: &mut HashMap<String, usize>, domain: &str) {
    if let Some(n) = active.get_mut(domain) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            active.remove(domain);
        }
    }
}

/// One delivery task: `deliver_batch` in a task of its own, so that a panic in it is caught
/// here. Then every job it did not finish (still in flight) is recorded as deferred — the
/// attempt counts, the retry follows the backoff and the spool is updated — and the
/// destination is held back like one that failed.
async fn supervise(
    ctx: Arc<Context>,
    domain: String,
    jobs: TaskJobs,
    shutdown: watch::Receiver<bool>,
    offers: mpsc::UnboundedSender<Offer>,
) -> (String, bool) {
    let batch = lock_jobs(&jobs).clone();
    let linger = (ctx.config.connection_cache_secs > 0).then(|| Linger {
        offers,
        jobs: jobs.clone(),
    });
    // boxed: the delivery future is several kilobytes, and tokio moves a future it is given
    // by value into the task (a copy per move); a box moves as a pointer
    let inner = tokio::spawn(Box::pin(deliver_batch(
        ctx.clone(),
        domain.clone(),
        batch,
        shutdown,
        linger,
    )));
    match inner.await {
        Ok(accepted) => (domain, accepted),
        Err(e) => {
            let jobs = lock_jobs(&jobs).clone();
            let diag = Diagnostic {
                code: 0,
                status: Some((4, 3, 0)),
                text: format!("delivery task failed: {e}"),
                remote_mta: None,
            };
            let unfinished: Vec<&Job> = {
                let q = ctx.lock_queue();
                jobs.iter().filter(|j| q.is_in_flight(j)).collect()
            };
            tracing::error!(
                %domain,
                error = %e,
                deferred = unfinished.len(),
                "delivery task failed: its unfinished messages are deferred"
            );
            for job in unfinished {
                let outcomes = job
                    .recipients
                    .iter()
                    .map(|i| (*i, AttemptOutcome::Deferred(diag.clone())))
                    .collect();
                persist::record(&ctx, job, outcomes, None).await;
            }
            (domain, false)
        }
    }
}

/// The runner's dispatch state.
struct Dispatch<'a> {
    backlog: &'a mut HashMap<String, VecDeque<Job>>,
    active: &'a mut HashMap<String, usize>,
    tasks: &'a mut JoinSet<(String, bool)>,
    running: &'a mut Running,
    /// The global cap held destinations back at the last dispatch (logged once per episode).
    capped: &'a mut bool,
    /// Offers of lingering tasks, per destination.
    idle: &'a mut HashMap<String, Vec<Offer>>,
    offers: &'a mpsc::UnboundedSender<Offer>,
}

impl Dispatch<'_> {
    /// Takes the due jobs into the per-destination backlog and starts tasks as [`plan`] says.
    fn run(
        &mut self,
        ctx: &Arc<Context>,
        shutdown: &watch::Receiver<bool>,
        rng: &mut fastrand::Rng,
    ) {
        let jobs = ctx.lock_queue().due(SystemTime::now(), MAX_DUE);
        for job in jobs {
            self.backlog
                .entry(job.domain.clone())
                .or_default()
                .push_back(job);
        }
        self.hand_over(ctx);
        let max_conn = ctx.config.max_connections_per_destination;
        let per_conn = ctx.config.max_messages_per_connection.max(1);
        let cap = ctx.config.max_concurrent_deliveries;
        let mut domains: Vec<String> = self.backlog.keys().cloned().collect();
        if !domains.is_empty() {
            let first = rng.usize(..domains.len());
            domains.rotate_left(first);
        }
        let mut waiting: Vec<Destination> = domains
            .iter()
            .map(|d| Destination {
                active: self.active.get(d).copied().unwrap_or(0),
                startable: self
                    .backlog
                    .get(d)
                    .map_or(0, |q| q.len().div_ceil(per_conn)),
            })
            .collect();
        let others = self
            .active
            .keys()
            .filter(|d| !self.backlog.contains_key(*d))
            .count();
        let limits = Limits { cap, max_conn };
        for i in plan(&mut waiting, others, self.tasks.len(), limits) {
            let domain = &domains[i];
            let Some(queue) = self.backlog.get_mut(domain) else {
                continue;
            };
            let n = queue.len().min(per_conn);
            let batch: Vec<Job> = queue.drain(..n).collect();
            *self.active.entry(domain.clone()).or_insert(0) += 1;
            let batch = Arc::new(std::sync::Mutex::new(batch));
            let task = supervise(
                ctx.clone(),
                domain.clone(),
                batch.clone(),
                shutdown.clone(),
                self.offers.clone(),
            );
            let handle = self.tasks.spawn(Box::pin(task));
            self.running.insert(handle.id(), (domain.clone(), batch));
        }
        self.backlog.retain(|_, queue| !queue.is_empty());
        let waiting: usize = self
            .backlog
            .iter()
            .filter(|(d, _)| self.active.get(*d).copied().unwrap_or(0) < max_conn)
            .map(|(_, q)| q.len())
            .sum();
        let capped = self.tasks.len() >= cap && waiting > 0;
        if capped && !*self.capped {
            tracing::info!(
                cap,
                waiting,
                "delivery: max_concurrent_deliveries reached; destinations wait for a free slot"
            );
        }
        *self.capped = capped;
        // A lingering task must not keep a slot another destination waits for, nor one its
        // own destination needs for jobs it cannot take (the other TLS request kind).
        if capped {
            self.idle.clear();
        } else {
            let backlog = &*self.backlog;
            self.idle.retain(|d, _| !backlog.contains_key(d));
        }
    }

    /// Hands waiting jobs to lingering tasks of their destination (same TLS request kind, up
    /// to the session's room); offers whose task stopped waiting are dropped.
    fn hand_over(&mut self, ctx: &Context) {
        for (domain, offers) in self.idle.iter_mut() {
            offers.retain(|o| !o.handoff.is_closed());
            let Some(queue) = self.backlog.get_mut(domain) else {
                continue;
            };
            let mut i = 0;
            while i < offers.len() && !queue.is_empty() {
                let offer = &offers[i];
                let kind: Vec<bool> = {
                    let q = ctx.lock_queue();
                    queue
                        .iter()
                        .map(|j| {
                            q.envelope(&j.id)
                                .is_some_and(|e| e.tls_request.tls_optional())
                        })
                        .collect()
                };
                let mut batch = Vec::new();
                let mut rest = VecDeque::with_capacity(queue.len());
                for (job, optional) in queue.drain(..).zip(kind) {
                    if optional == offer.tls_optional && batch.len() < offer.room {
                        batch.push(job);
                    } else {
                        rest.push_back(job);
                    }
                }
                *queue = rest;
                if batch.is_empty() {
                    i += 1;
                    continue;
                }
                let offer = offers.swap_remove(i);
                let n = batch.len();
                // In the task's job list before the task can see them (a panic defers them).
                lock_jobs(&offer.jobs).extend(batch.iter().cloned());
                if let Err(batch) = offer.handoff.send(batch) {
                    // The task stopped waiting: the jobs wait for the next task.
                    let mut jobs = lock_jobs(&offer.jobs);
                    let keep = jobs.len().saturating_sub(n);
                    jobs.truncate(keep);
                    for job in batch.into_iter().rev() {
                        queue.push_front(job);
                    }
                }
            }
        }
        self.idle.retain(|_, offers| !offers.is_empty());
        self.backlog.retain(|_, queue| !queue.is_empty());
    }
}

/// A destination with waiting jobs, as [`plan`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Destination {
    /// Its running tasks.
    active: usize,
    /// How many more tasks its waiting jobs would fill.
    startable: usize,
}

/// The task limits.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// `max_concurrent_deliveries`.
    cap: usize,
    /// `max_connections_per_destination`.
    max_conn: usize,
}

/// Which waiting destinations get the free slots (sans-IO): the indices into `waiting`, one
/// per task to start. `others`: destinations with tasks but no waiting job; `running`: tasks
/// over all destinations.
///
/// First up to the fair share `max(1, cap / N)` (`N` = `waiting.len() + others`), level by
/// level: every destination with fewer than 1 task gets one, then every one with fewer than 2,
/// and so on, so the least served go first. Only once no destination below its share has a job
/// left do the remaining slots go round robin to all, up to `max_conn` each. Ties go in
/// `waiting`'s order (the caller starts it at a random destination). So a destination holds
/// more than its share only while nobody else waits for a slot.
fn plan(waiting: &mut [Destination], others: usize, running: usize, limits: Limits) -> Vec<usize> {
    let n = (waiting.len() + others).max(1);
    let share = (limits.cap / n).max(1).min(limits.max_conn);
    let mut running = running;
    let mut out = Vec::new();
    let mut round = |limit: usize, running: &mut usize, out: &mut Vec<usize>| {
        let mut started = false;
        for (i, d) in waiting.iter_mut().enumerate() {
            if *running >= limits.cap {
                break;
            }
            if d.startable == 0 || d.active >= limit {
                continue;
            }
            d.startable -= 1;
            d.active += 1;
            *running += 1;
            started = true;
            out.push(i);
        }
        started
    };
    for level in 1..=share {
        if running >= limits.cap {
            break;
        }
        round(level, &mut running, &mut out);
    }
    while running < limits.cap && round(limits.max_conn, &mut running, &mut out) {}
    out
}

#[cfg(test)]
#[path = "runner_tests.rs"]
mod tests;
