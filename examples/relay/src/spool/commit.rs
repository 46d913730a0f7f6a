//! The group-commit loop behind [`Spool`](super::Spool): it takes the queued operations, asks
//! the index for a plan, does the blocking I/O (one append and one `fdatasync` per batch, the
//! overlays, the unlinks, a directory fsync when needed), hands the results back to the index
//! and releases the callers.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

use super::file::{ENV_EXT, OutRecord, segment_name};
use super::index::{Index, Outcome, Plan, PlanRecord, Target, Unlink, Want};
use super::io::{self, Active};
use super::lock;
use crate::envelope::MessageId;
use crate::error::RelayError;

/// One operation handed to the committer.
#[derive(Debug)]
pub(super) enum Op {
    Accept {
        id: MessageId,
        envelope: Vec<u8>,
        body: Arc<Vec<u8>>,
    },
    Update {
        id: MessageId,
        envelope: Vec<u8>,
    },
    Remove {
        id: MessageId,
    },
}

impl Op {
    pub(super) fn id(&self) -> &MessageId {
        match self {
            Self::Accept { id, .. } | Self::Update { id, .. } | Self::Remove { id } => id,
        }
    }

    fn want(&self) -> Want<'_> {
        match self {
            Self::Accept { id, body, .. } => Want::Accept {
                id,
                body_len: body.len() as u64,
            },
            Self::Update { id, .. } => Want::Update { id },
            Self::Remove { id } => Want::Remove { id },
        }
    }
}

pub(super) type Job = (Op, oneshot::Sender<Result<(), RelayError>>);

/// Bodies kept in memory after `accept`, so that the first delivery attempt reads no file.
pub(super) const CACHE_BYTES: usize = 64 << 20;

#[derive(Default)]
pub(super) struct BodyCache {
    pub(super) bodies: HashMap<MessageId, Arc<Vec<u8>>>,
    pub(super) bytes: usize,
}

/// Largest total of message bytes one batch takes (a batch always takes at least one job).
const MAX_BATCH_BYTES: u64 = 32 << 20;

/// The group-commit loop.
pub(super) struct Committer {
    pub(super) dir: PathBuf,
    pub(super) index: Arc<Mutex<Index>>,
    pub(super) cache: Arc<Mutex<BodyCache>>,
    pub(super) max_batch: usize,
}

impl Committer {
    /// Takes every queued operation (up to `max_batch`, at most one per message, so a batch's
    /// operations are independent), makes them durable together, releases their waiters;
    /// between batches, runs the unlinks left for later. Ends when every handle is dropped.
    pub(super) async fn run(self, mut rx: mpsc::Receiver<Job>) {
        let mut carry: Option<Job> = None;
        let mut active: Option<Active> = None;
        loop {
            let maintenance = lock(&self.index).has_deferred();
            let first = match carry.take() {
                Some(job) => Some(job),
                None if maintenance => rx.try_recv().ok(),
                None => match rx.recv().await {
                    Some(job) => Some(job),
                    None => return,
                },
            };
            let mut jobs: Vec<Job> = first.into_iter().collect();
            if !jobs.is_empty() {
                // Let tasks that are already running hand in their operations before the batch
                // closes (without it a burst is split into a batch of one and the rest).
                tokio::task::yield_now().await;
                let mut seen: HashSet<MessageId> = jobs.iter().map(|j| j.0.id().clone()).collect();
                let mut bytes = 0u64;
                while jobs.len() < self.max_batch && bytes < MAX_BATCH_BYTES {
                    let Ok(job) = rx.try_recv() else { break };
                    if !seen.insert(job.0.id().clone()) {
                        carry = Some(job);
                        break;
                    }
                    if let Op::Accept { body, .. } = &job.0 {
                        bytes += body.len() as u64;
                    }
                    jobs.push(job);
                }
            }
            let (ops, waiters): (Vec<Op>, Vec<_>) = jobs.into_iter().unzip();
            let plan = {
                let wants: Vec<Want<'_>> = ops.iter().map(Op::want).collect();
                lock(&self.index).plan(&wants)
            };
            let dir = self.dir.clone();
            let done = if plan.is_empty() {
                let outcome = Outcome {
                    segment: Ok((Vec::new(), 0)),
                    overlays: Vec::new(),
                    unlinks: Vec::new(),
                    dir: Ok(()),
                };
                Ok((ops, plan, outcome, active.take()))
            } else {
                let mut held = active.take();
                tokio::task::spawn_blocking(move || {
                    let started = std::time::Instant::now();
                    let outcome = execute(&dir, &ops, &plan, &mut held);
                    tracing::debug!(
                        ops = ops.len(),
                        records = plan.segment.as_ref().map_or(0, |(_, r)| r.len()),
                        unlinks = plan.unlinks.len(),
                        micros = started.elapsed().as_micros(),
                        "spool batch committed"
                    );
                    (ops, plan, outcome, held)
                })
                .await
            };
            let Ok((ops, plan, outcome, held)) = done else {
                for w in waiters {
                    let _ = w.send(Err(RelayError::CommitterStopped));
                }
                continue;
            };
            active = held;
            let results = {
                let wants: Vec<Want<'_>> = ops.iter().map(Op::want).collect();
                lock(&self.index).apply(&wants, plan, outcome)
            };
            self.cache_update(ops, &results);
            for (w, r) in waiters.into_iter().zip(results) {
                let _ = w.send(r);
            }
        }
    }

    /// Keeps the bodies of accepted messages (within [`CACHE_BYTES`]) and forgets removed ones.
    fn cache_update(&self, ops: Vec<Op>, results: &[Result<(), RelayError>]) {
        let mut cache = lock(&self.cache);
        for (op, r) in ops.into_iter().zip(results) {
            match op {
                Op::Accept { id, body, .. }
                    if r.is_ok() && cache.bytes + body.len() <= CACHE_BYTES =>
                {
                    cache.bytes += body.len();
                    cache.bodies.insert(id, body);
                }
                Op::Remove { id } if r.is_ok() => {
                    if let Some(body) = cache.bodies.remove(&id) {
                        cache.bytes -= body.len();
                    }
                }
                _ => {}
            }
        }
    }
}

/// The blocking I/O of a batch: the records (appended to the active segment, or a new one),
/// the overlays, the unlinks, and a directory fsync if there were overlays or unlinks.
fn execute(dir: &Path, ops: &[Op], plan: &Plan, active: &mut Option<Active>) -> Outcome {
    let segment = match &plan.segment {
        None => Ok((Vec::new(), 0)),
        Some((target, records)) => {
            // The index plans message records for accepts only.
            let out: Vec<OutRecord<'_>> = records
                .iter()
                .filter_map(|r| match r {
                    PlanRecord::Msg { op } => match &ops[*op] {
                        Op::Accept { id, envelope, body } => {
                            Some(OutRecord::Msg { id, envelope, body })
                        }
                        Op::Update { .. } | Op::Remove { .. } => None,
                    },
                    PlanRecord::Done { seg, id } => Some(OutRecord::Done { seg: *seg, id }),
                })
                .collect();
            write_records(dir, *target, &out, active)
        }
    };
    let overlays: Vec<_> = plan
        .overlays
        .iter()
        .map(|&i| match &ops[i] {
            Op::Update { id, envelope } => {
                io::write_overlay(&dir.join(format!("{id}.{ENV_EXT}")), envelope)
            }
            other => Err(RelayError::UnknownMessage {
                id: other.id().to_string(),
            }),
        })
        .collect();
    let unlinks: Vec<_> = plan
        .unlinks
        .iter()
        .map(|u| {
            io::unlink(&dir.join(match u {
                Unlink::Overlay(id) => format!("{id}.{ENV_EXT}"),
                Unlink::Segment(no) => segment_name(*no),
            }))
        })
        .collect();
    let dir = if overlays.is_empty() && unlinks.is_empty() {
        Ok(())
    } else {
        io::fsync_dir(dir)
    };
    Outcome {
        segment,
        overlays,
        unlinks,
        dir,
    }
}

/// Appends `records` to the active segment or creates the planned new one; a failed append
/// leaves no active segment (the index then plans a new one).
fn write_records(
    dir: &Path,
    target: Target,
    records: &[OutRecord<'_>],
    active: &mut Option<Active>,
) -> Result<(Vec<u64>, u64), RelayError> {
    match (target, active.as_mut()) {
        (Target::Append(no), Some(a)) if a.no == no => {
            let r = io::append_batch(dir, a, records).map(|o| (o, a.len()));
            if r.is_err() {
                *active = None;
            }
            r
        }
        (Target::Create(no), _) => {
            *active = None;
            let (a, offsets) = io::create_segment(dir, no, records)?;
            let len = a.len();
            *active = Some(a);
            Ok((offsets, len))
        }
        (Target::Append(no), _) => {
            *active = None;
            Err(RelayError::io(
                "append",
                dir.join(segment_name(no)),
                &std::io::Error::from(std::io::ErrorKind::NotFound),
            ))
        }
    }
}
