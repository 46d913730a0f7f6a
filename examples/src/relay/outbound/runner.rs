//! The queue runner: wakes at the queue's next due time or when a message is enqueued, takes the
//! due jobs, and starts delivery tasks within the per-destination connection limit.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::context::Context;
use super::deliver::deliver_batch;
use crate::relay::Envelope;
use crate::relay::queue::Job;

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
    loop {
        if !stopping {
            dispatch(&ctx, &mut backlog, &mut active, &mut tasks, &shutdown);
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

/// Takes the due jobs into the per-destination backlog and starts tasks within the limits.
fn dispatch(
    ctx: &Arc<Context>,
    backlog: &mut HashMap<String, VecDeque<Job>>,
    active: &mut HashMap<String, usize>,
    tasks: &mut JoinSet<(String, bool)>,
    shutdown: &watch::Receiver<bool>,
) {
    let jobs = ctx.lock_queue().due(SystemTime::now(), MAX_DUE);
    for job in jobs {
        backlog
            .entry(job.domain.clone())
            .or_default()
            .push_back(job);
    }
    let max_conn = ctx.config.max_connections_per_destination;
    let per_conn = ctx.config.max_messages_per_connection;
    backlog.retain(|domain, queue| {
        while !queue.is_empty() && active.get(domain).copied().unwrap_or(0) < max_conn {
            let n = queue.len().min(per_conn);
            let batch: Vec<Job> = queue.drain(..n).collect();
            *active.entry(domain.clone()).or_insert(0) += 1;
            let (ctx, domain2, shutdown) = (ctx.clone(), domain.clone(), shutdown.clone());
            tasks.spawn(async move {
                let accepted = deliver_batch(ctx, domain2.clone(), batch, shutdown).await;
                (domain2, accepted)
            });
        }
        !queue.is_empty()
    });
}

/// After a task panicked its domain is unknown: count the domains from the backlog anew (the
/// limit errs on the generous side until the remaining tasks end).
fn recount(active: &mut HashMap<String, usize>, tasks: &JoinSet<(String, bool)>) {
    if tasks.is_empty() {
        active.clear();
    }
}
