//! The queue runner: wakes at the queue's next due time or when a message is enqueued, takes the
//! due jobs, and starts delivery tasks within the per-destination connection limit and the
//! global cap on delivery tasks (`max_concurrent_deliveries`): slow or tarpitting destinations
//! can hold at most that many tasks and connections, whatever their number.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::context::Context;
use super::deliver::deliver_batch;
use crate::Envelope;
use crate::queue::Job;

/// Most jobs taken from the queue per wake-up.
const MAX_DUE: usize = 10_000;
/// Longest sleep without checking the queue.
const MAX_SLEEP: Duration = Duration::from_secs(60);

pub(crate) async fn run(
    ctx: Arc<Context>,
    mut rx: mpsc::UnboundedReceiver<Envelope>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backlog: HashMap<String, VecDeque<Job>> = HashMap::new();
    let mut active: HashMap<String, usize> = HashMap::new();
    let mut tasks: JoinSet<(String, bool)> = JoinSet::new();
    let mut stopping = *shutdown.borrow();
    let mut rng = fastrand::Rng::new();
    let mut capped = false;
    loop {
        if !stopping {
            let mut d = Dispatch {
                backlog: &mut backlog,
                active: &mut active,
                tasks: &mut tasks,
                capped: &mut capped,
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
            done = tasks.join_next(), if !tasks.is_empty() => {
                if let Some(result) = done {
                    match result {
                        Ok((domain, accepted)) => {
                            if let Some(n) = active.get_mut(&domain) {
                                *n = n.saturating_sub(1);
                                if *n == 0 {
                                    active.remove(&domain);
                                }
                            }
                            let mut q = ctx.lock_queue();
                            if accepted {
                                q.release_destination(&domain);
                            } else {
                                q.hold_destination(&domain, SystemTime::now(), &mut rng);
                            }
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "delivery task failed");
                            recount(&mut active, &tasks);
                        }
                    }
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

/// The runner's dispatch state.
struct Dispatch<'a> {
    backlog: &'a mut HashMap<String, VecDeque<Job>>,
    active: &'a mut HashMap<String, usize>,
    tasks: &'a mut JoinSet<(String, bool)>,
    /// The global cap held destinations back at the last dispatch (logged once per episode).
    capped: &'a mut bool,
}

impl Dispatch<'_> {
    /// Takes the due jobs into the per-destination backlog and starts tasks within the limits:
    /// at most `max_connections_per_destination` per destination and
    /// `max_concurrent_deliveries` in all. Under the global cap the destinations take turns
    /// (one task each per round, from a random first destination), so none is starved by the
    /// map's order.
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
        let max_conn = ctx.config.max_connections_per_destination;
        let per_conn = ctx.config.max_messages_per_connection;
        let cap = ctx.config.max_concurrent_deliveries;
        let mut domains: Vec<String> = self.backlog.keys().cloned().collect();
        if !domains.is_empty() {
            let first = rng.usize(..domains.len());
            domains.rotate_left(first);
        }
        let mut started = true;
        while started && self.tasks.len() < cap {
            started = false;
            for domain in &domains {
                if self.tasks.len() >= cap {
                    break;
                }
                let Some(queue) = self.backlog.get_mut(domain) else {
                    continue;
                };
                let active = self.active.entry(domain.clone()).or_insert(0);
                if queue.is_empty() || *active >= max_conn {
                    continue;
                }
                let n = queue.len().min(per_conn);
                let batch: Vec<Job> = queue.drain(..n).collect();
                *active += 1;
                started = true;
                let (ctx, domain2, shutdown) = (ctx.clone(), domain.clone(), shutdown.clone());
                self.tasks.spawn(async move {
                    let accepted = deliver_batch(ctx, domain2.clone(), batch, shutdown).await;
                    (domain2, accepted)
                });
            }
        }
        self.active.retain(|_, n| *n > 0);
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
    }
}

/// After a task panicked its domain is unknown: count the domains from the backlog anew (the
/// limit errs on the generous side until the remaining tasks end).
fn recount(active: &mut HashMap<String, usize>, tasks: &JoinSet<(String, bool)>) {
    if tasks.is_empty() {
        active.clear();
    }
}
