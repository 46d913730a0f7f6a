//! After each attempt: record the per-recipient outcomes in the queue, spool the DSN owed for
//! recipients that just bounced or expired, write the envelope durably, and remove the message
//! once every recipient is final — in that order, so a crash can repeat a DSN or a delivery but
//! never lose one.

use std::time::SystemTime;

use super::context::Context;
use crate::relay::queue::{AttemptOutcome, Job};
use crate::relay::{Envelope, RecipientState, dsn};

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
    let Some((dispositions, env)) = ctx.lock_queue().complete(job, outcomes, now, &mut rng) else {
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
    if !failed.is_empty() && !env.is_bounce() {
        // The DSN is durable before the bounce is recorded (a crash repeats it, never loses it).
        spool_dsn(ctx, &env, &failed, body, now).await;
    }
    if let Err(e) = ctx.spool.update(&env).await {
        tracing::error!(id = %env.id, error = %e, "spool update failed (state kept in memory)");
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

/// A DSN (RFC 3464) for recipients `failed` of `env`, spooled and queued (null sender).
async fn spool_dsn(
    ctx: &Context,
    env: &Envelope,
    failed: &[usize],
    body: Option<&[u8]>,
    now: SystemTime,
) {
    let loaded;
    let original = match body {
        Some(b) => b,
        None => {
            loaded = ctx.spool.read_body(&env.id).await.unwrap_or_default();
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
            tracing::warn!(id = %env.id, error = %e, "no DSN");
            return;
        }
    };
    let dsn_env = Envelope::new(&d.sender, [d.recipient.clone()], now);
    match ctx.spool.accept(dsn_env, d.message).await {
        Ok(dsn_env) => {
            tracing::info!(id = %env.id, dsn = %dsn_env.id, to = %d.recipient, "DSN queued");
            ctx.handle.enqueue(dsn_env);
        }
        Err(e) => tracing::error!(id = %env.id, error = %e, "DSN could not be spooled"),
    }
}
