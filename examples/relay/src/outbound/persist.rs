//! After each attempt: record the per-recipient outcomes in the queue, spool the DSN owed for
//! recipients that just bounced or expired, write the envelope durably, and remove the message
//! once every recipient is final — in that order, so a crash can repeat a DSN or a delivery but
//! never lose one.
//!
//! **A bounce is final only once its DSN is durable.** If the DSN (RFC 3464) cannot be spooled
//! (disk full, spool directory gone, a spool limit), the recipients it reports go back to
//! `Pending` — in the queue and in the envelope written to the spool — with the next retry time
//! of the backoff: the original message stays, and the next runner pass that takes them makes a
//! new attempt, whose bounce (or expiry: the queue lifetime has passed) owes the DSN again and
//! tries to spool it again. Nothing about the failure lives only in memory, so a crash or a
//! restart in between also retries it.
//!
//! If the envelope update itself fails it is retried a few times; if it still fails the spool
//! keeps the earlier state (every change since then is repeated after a restart: possibly a
//! duplicate delivery or DSN, never a lost one) and the message is not removed.
//!
//! **Fast path: everything delivered.** When an attempt leaves every recipient final and owes
//! no DSN (the common case: all delivered), the envelope is not rewritten: the message goes
//! straight to [`Spool::remove`](crate::Spool::remove) (a tombstone appended with the
//! next group-commit batch, or its whole segment unlinked). That saves an overlay file write, its
//! fsync and a directory fsync per message. The duplicate window is unchanged: a crash after the
//! peer's `250` and before the removal is durable re-delivers the message, exactly as a crash
//! before the envelope update would; once `remove` returns, nothing is re-delivered. If the
//! removal fails, the old path is taken (the envelope is written, then the removal retried
//! once), so a failing removal is no worse than before. When a DSN is owed the
//! order stays: DSN spooled, envelope written, message removed.

use std::time::{Duration, SystemTime};

use super::context::Context;
use crate::queue::{AttemptOutcome, Job};
use crate::{Envelope, RecipientState, RelayError, dsn};

/// Envelope-update attempts before giving up on one record (the spool keeps its earlier state).
const UPDATE_ATTEMPTS: u32 = 3;
/// Pause before the second update attempt (doubled for the next).
const UPDATE_RETRY: Duration = Duration::from_millis(50);

/// Persists one job's outcomes. `body` is the message (for the DSN's copy of its header), if
/// already loaded.
pub(crate) async fn record(
    ctx: &Context,
    job: &Job,
    outcomes: Vec<(usize, AttemptOutcome)>,
    body: Option<&[u8]>,
) {
    let lock = ctx.message_lock(&job.id);
    let _guard = lock.lock().await;
    let now = SystemTime::now();
    let mut rng = fastrand::Rng::new();
    let Some((dispositions, mut env)) = ctx.lock_queue().complete(job, outcomes, now, &mut rng)
    else {
        return;
    };
    for (i, d) in &dispositions {
        if let Some(r) = env.recipients.get(*i) {
            tracing::info!(
                id = %env.id,
                recipient = %r.address,
                disposition = ?d,
                diagnostic = r.last.as_ref().map(|d| d.text.as_str()),
                "delivery outcome"
            );
        }
    }
    let failed: Vec<usize> = dispositions
        .iter()
        .filter(|(_, d)| d.owes_dsn())
        .map(|(i, _)| *i)
        .collect();
    if failed.is_empty() && env.is_done() {
        // All delivered, no DSN owed: the removal alone is durable (see the module doc).
        match ctx.spool.remove(&env.id).await {
            Ok(()) => {
                ctx.lock_queue().remove(&env.id);
                return;
            }
            Err(e) => tracing::warn!(
                id = %env.id,
                error = %e,
                "spool remove failed: writing the envelope, then retrying the removal"
            ),
        }
    }
    if !failed.is_empty() && !env.is_bounce() {
        // The DSN is durable before the bounce is recorded (a crash repeats it, never loses it).
        if let Err(e) = spool_dsn(ctx, &env, &failed, body, now).await {
            tracing::error!(
                id = %env.id,
                error = %e,
                recipients = failed.len(),
                "DSN could not be spooled: the recipients stay queued, the DSN is retried"
            );
            keep_pending(ctx, &mut env, &failed, now, &mut rng);
        }
    }
    if let Err(e) = update(ctx, &env).await {
        tracing::error!(
            id = %env.id,
            error = %e,
            "spool update failed: the spool keeps the earlier state (repeated after a restart)"
        );
        return;
    }
    if env.is_done() {
        match ctx.spool.remove(&env.id).await {
            Ok(()) => {
                ctx.lock_queue().remove(&env.id);
            }
            Err(e) => tracing::error!(id = %env.id, error = %e, "spool remove failed"),
        }
    }
}

/// Puts recipients `failed` of `env` back to `Pending` (their DSN is still owed), scheduled
/// after the backoff of their attempt count, in `env` and in the queue.
fn keep_pending(
    ctx: &Context,
    env: &mut Envelope,
    failed: &[usize],
    now: SystemTime,
    rng: &mut fastrand::Rng,
) {
    let mut queue = ctx.lock_queue();
    let policy = *queue.policy();
    for &i in failed {
        if let Some(r) = env.recipients.get_mut(i) {
            r.state = RecipientState::Pending;
            r.next_attempt = now + policy.backoff(r.attempts.max(1), rng);
        }
    }
    env.refresh_next_attempt();
    // The message lock is held: the queue's copy is the one `complete` returned.
    queue.insert(env.clone());
}

/// [`Spool::update`](crate::Spool::update) with a few bounded retries.
async fn update(ctx: &Context, env: &Envelope) -> Result<(), RelayError> {
    let mut pause = UPDATE_RETRY;
    let mut attempt = 1;
    loop {
        match ctx.spool.update(env).await {
            Ok(()) => return Ok(()),
            Err(e) if attempt >= UPDATE_ATTEMPTS => return Err(e),
            Err(e) => {
                tracing::warn!(id = %env.id, error = %e, attempt, "spool update failed, retrying");
                tokio::time::sleep(pause).await;
                pause *= 2;
                attempt += 1;
            }
        }
    }
}

/// A DSN (RFC 3464) for recipients `failed` of `env`, spooled (fsynced) and queued (null
/// sender). `Ok` also when no DSN is owed after all (the builder found nothing to report).
async fn spool_dsn(
    ctx: &Context,
    env: &Envelope,
    failed: &[usize],
    body: Option<&[u8]>,
    now: SystemTime,
) -> Result<(), RelayError> {
    let loaded;
    let original = match body {
        Some(b) => b,
        None => {
            loaded = match ctx.spool.read_body(&env.id).await {
                Ok(b) => b,
                Err(e) => {
                    // The DSN still reports the failure, without the original header.
                    tracing::warn!(id = %env.id, error = %e, "DSN without the original header");
                    Vec::new()
                }
            };
            &loaded
        }
    };
    // Report only the recipients that failed in this attempt (earlier ones had their DSN).
    let mut report = env.clone();
    for (i, r) in report.recipients.iter_mut().enumerate() {
        if !failed.contains(&i) {
            r.state = RecipientState::Pending;
        }
    }
    let d = match dsn::build(&report, &ctx.config.ehlo_name, original, now) {
        Ok(d) => d,
        Err(e) => {
            // NullSender / NothingToReport: no DSN is owed (RFC 3464 §2).
            tracing::warn!(id = %env.id, error = %e, "no DSN");
            return Ok(());
        }
    };
    let mut dsn_env = Envelope::new(&d.sender, [d.recipient.clone()], now);
    // RFC 8689 §5: a non-delivery report of a REQUIRETLS message (it carries the original
    // header) is itself sent with REQUIRETLS.
    if env.tls_request.requires_tls() {
        dsn_env.tls_request = crate::TlsRequest::RequireTls;
    }
    let dsn_env = ctx.spool.accept(dsn_env, d.message).await?;
    tracing::info!(id = %env.id, dsn = %dsn_env.id, to = %d.recipient, "DSN queued");
    ctx.handle.enqueue(dsn_env);
    Ok(())
}

#[cfg(test)]
#[path = "persist_tests.rs"]
mod tests;
