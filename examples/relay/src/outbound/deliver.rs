//! Delivery of a batch of jobs to one destination domain: local maildir, SMTP route or MX hosts;
//! one connection reused for up to `max_messages_per_connection` messages.
//!
//! A message that asked for REQUIRETLS (RFC 8689 §4.2.1) goes only over a session that
//! smtp-tls-policy's `requiretls_verdict` allows (authenticated TLS to a host that advertised
//! `REQUIRETLS`), with `REQUIRETLS` on `MAIL FROM`; another session sets it aside for the next
//! host, and when every host tried refused it the message bounces with 5.7.30 — or is retried
//! (4.7.30) when some host failed only temporarily or a session ended (broke, reached its
//! message limit or time limit) before it got to the message. The route condition
//! (DNSSEC-secure MX or MTA-STS `enforce`) comes from the host's hop plan for the message's
//! request (`HopPlan::requiretls_route`).
//!
//! MTA-STS (RFC 8461): the destination domain's policy is discovered once per attempt before
//! its MX hosts are planned (`sts`); every host's plan carries that domain's verdict for it.
//! A connection only ever carries the jobs of the one domain it was planned for.
//!
//! Connection cache: a session that has carried its batch may linger (`connection_cache_secs`)
//! for jobs the runner hands to it ([`Linger`]): the same domain, the same TLS request kind,
//! sent with the same hop plan as the batch; they follow the batch's failure handling.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use dane_verify::decide;
use smtp_tls_policy::delivery::{
    REQUIRETLS_STATUS, RequireTlsRoute, RequireTlsVerdict, TlsRequest,
};
use smtp_tls_policy::destination::DestinationPolicy;
use smtp_tls_policy::plan::{HopPlan, HostSource, PreConnect, facts_without_dnssec};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::config::RouteHop;
use super::connect::{self, Failure, Hop};
use super::context::Context;
use super::dns::NoRoute;
use super::persist;
use super::runner::{Offer, TaskJobs};
use super::sts::Sts;
use super::transaction::Session;
use crate::queue::{AttemptOutcome, Job};
use crate::{Diagnostic, Envelope, MessageId};

/// Where a destination's mail goes.
enum Plan {
    /// The local maildir.
    Local,
    /// SMTP next hops in order (a `maildir` route hop ends the list with local delivery).
    Hops(Vec<Hop>, bool),
    /// Nowhere, now or ever.
    NoRoute(NoRoute),
}

/// How a delivery task offers its open session to the runner (connection cache).
pub(crate) struct Linger {
    /// The runner's offer channel.
    pub(crate) offers: mpsc::UnboundedSender<Offer>,
    /// The task's job list: emptied when the session lingers (every job so far is settled),
    /// the runner adds handed jobs to it.
    pub(crate) jobs: TaskJobs,
}

/// Delivers `jobs` (all for `domain`). Returns whether the destination accepted mail (for the
/// queue's destination hold). `linger`: the session may wait for more jobs once the batch is
/// done (`connection_cache_secs`).
pub(crate) async fn deliver_batch(
    ctx: Arc<Context>,
    domain: String,
    jobs: Vec<Job>,
    shutdown: watch::Receiver<bool>,
    linger: Option<Linger>,
) -> bool {
    #[cfg(test)]
    panic_if_asked(&domain);
    // RFC 8689 §4.2.2: messages with `TLS-Required: No` get connections of their own, planned for
    // that request (relaxed to opportunistic TLS); the others never share them.
    let (relaxed, others): (Vec<Job>, Vec<Job>) = {
        let q = ctx.lock_queue();
        jobs.into_iter().partition(|j| {
            q.envelope(&j.id)
                .is_some_and(|e| e.tls_request.tls_optional())
        })
    };
    if !relaxed.is_empty() && !others.is_empty() {
        // only the last session may linger: it would hold the other kind's jobs back
        let a = Box::pin(deliver_batch(
            ctx.clone(),
            domain.clone(),
            others,
            shutdown.clone(),
            None,
        ))
        .await;
        let b = Box::pin(deliver_batch(ctx, domain, relaxed, shutdown, linger)).await;
        return a || b;
    }
    let (request, jobs) = if relaxed.is_empty() {
        (TlsRequest::Default, others)
    } else {
        (TlsRequest::TlsOptional, relaxed)
    };
    let mut jobs: VecDeque<Job> = jobs.into();
    if ctx.config.is_local_domain(&domain) {
        deliver_local(&ctx, jobs).await;
        return true;
    }
    let policy = match ctx.controls.lookup(&domain) {
        Ok(p) => p,
        Err(e) => {
            // Never the default entry for a name the destination controls cannot compare
            // (issue 11, finding 7): no connection at all; the same name fails the same way at
            // every retry, so the recipients bounce with a DSN (RFC 3463 5.1.2, bad destination
            // system address) rather than wait out the queue lifetime.
            tracing::warn!(%domain, error = %e, "delivery: destination domain refused");
            let diag = local_diag(5, 1, 2, format!("destination controls: {e}"));
            settle_all(&ctx, jobs, &diag, true).await;
            return true;
        }
    };
    match plan(&ctx, &domain, &policy, request).await {
        Plan::Local => {
            deliver_local(&ctx, jobs).await;
            true
        }
        Plan::NoRoute(NoRoute::Temporary(text)) => {
            settle_all(&ctx, jobs, &local_diag(4, 4, 3, text), false).await;
            false
        }
        Plan::NoRoute(NoRoute::Permanent(text)) => {
            settle_all(&ctx, jobs, &local_diag(5, 1, 10, text), true).await;
            true
        }
        Plan::Hops(hops, maildir_last) => {
            // One wall-clock limit for the whole attempt (issue: delivery starvation by
            // tarpits): every connection set-up and every message of the batch together.
            let ends = Instant::now() + ctx.config.max_session();
            let mut last: Option<Failure> = None;
            let mut any_session = false;
            let mut expired = false;
            // REQUIRETLS (RFC 8689 §4.2.1): flagged messages a host could not take, why (the
            // last refusal) and at how many host attempts; whether any host failed only
            // temporarily (then a refused message is retried rather than bounced: that host
            // may support it). `attempts` counts the hosts tried (not those the plan skipped):
            // a message bounces only when every one of them refused it — one that a session
            // did not reach (it broke, hit its message limit, could not be opened) is retried.
            let mut refusals: HashMap<MessageId, (Diagnostic, u32)> = HashMap::new();
            let mut temporary = false;
            let mut attempts: u32 = 0;
            'hops: for hop in &hops {
                // The hop plan's pre-flight check: skip this host, or defer the destination.
                let plan = match request {
                    TlsRequest::TlsOptional => hop.plan(&policy).with_tls_request(request),
                    _ => hop.plan(&policy),
                };
                match plan.pre_connect() {
                    PreConnect::Connect => {}
                    PreConnect::SkipHost { .. } => {
                        let f = connect::held(&ctx, hop, &plan).await;
                        temporary |= !f.permanent;
                        last = Some(f);
                        continue 'hops;
                    }
                    _ => {
                        let f = connect::held(&ctx, hop, &plan).await;
                        attempts += 1;
                        temporary |= !f.permanent;
                        last = Some(f);
                        break 'hops;
                    }
                }
                for addr in &hop.addresses {
                    if jobs.is_empty() || *shutdown.borrow() {
                        break 'hops;
                    }
                    let remote = format!("{}[{addr}]:{}", hop.name, hop.port);
                    attempts += 1;
                    let connected =
                        tokio::time::timeout_at(ends, connect::connect(&ctx, &plan, hop, *addr))
                            .await;
                    match connected {
                        Err(_) => {
                            expired = true;
                            last = Some(session_expired(&remote, "connection set-up"));
                            break 'hops;
                        }
                        Ok(Ok(session)) => {
                            any_session = true;
                            let session = session.with_deadline(ends);
                            let linger = linger.as_ref().map(|l| (l, &domain, request, ends));
                            let set_aside = run_session(
                                &ctx,
                                session,
                                (&plan, hop.source),
                                &mut jobs,
                                (&shutdown, linger),
                            )
                            .await;
                            // Refused here, tried at the next host (RFC 8689 §4.2.1).
                            for (job, diag) in set_aside {
                                let n = refusals.get(&job.id).map_or(0, |r| r.1);
                                refusals.insert(job.id.clone(), (diag, n + 1));
                                jobs.push_back(job);
                            }
                            if Instant::now() >= ends {
                                expired = true;
                                last = Some(session_expired(&remote, "the session"));
                                break 'hops;
                            }
                        }
                        Ok(Err(f)) => {
                            let permanent = f.permanent;
                            temporary |= !permanent;
                            last = Some(f);
                            if permanent {
                                break 'hops;
                            }
                        }
                    }
                }
                if hop.addresses.is_empty() {
                    attempts += 1;
                    temporary = true;
                    last.get_or_insert_with(|| Failure {
                        diag: local_diag(4, 4, 4, format!("no address for {}", hop.name)),
                        permanent: false,
                    });
                }
            }
            if expired {
                // Temporary: the rest of the batch is deferred and retried after the backoff
                // (never lost, never counted as delivered); the destination is held back.
                tracing::warn!(
                    %domain,
                    max_session_secs = ctx.config.max_session_secs,
                    deferred = jobs.len(),
                    "delivery: session time limit reached; the remaining messages are deferred"
                );
                if let Some(f) = &last {
                    settle_all(&ctx, jobs, &f.diag, false).await;
                }
                return false;
            }
            if !jobs.is_empty() && maildir_last && !*shutdown.borrow() {
                deliver_local(&ctx, std::mem::take(&mut jobs)).await;
                return true;
            }
            if jobs.is_empty() {
                return true;
            }
            if *shutdown.borrow() {
                return any_session; // not attempted: stays in the spool for the next start
            }
            // Flagged messages no host could take: 5.7.30 (RFC 8689 §4.2.1) when every host
            // tried refused them; retried (class 4) when a host failed only temporarily (it
            // may support REQUIRETLS) or a host tried after a refusal never reached them.
            let (refused, jobs): (VecDeque<Job>, VecDeque<Job>) =
                jobs.into_iter().partition(|j| refusals.contains_key(&j.id));
            for job in refused {
                let Some((mut diag, refused_by)) = refusals.remove(&job.id) else {
                    continue;
                };
                let bounce = !temporary && refused_by == attempts;
                if !bounce {
                    diag.status = Some((4, REQUIRETLS_STATUS.1, REQUIRETLS_STATUS.2));
                }
                tracing::info!(id = %job.id, %domain, reason = %diag.text, refused_by, hosts_tried = attempts, bounce, "delivery: REQUIRETLS could not be met");
                settle_all(&ctx, VecDeque::from([job]), &diag, bounce).await;
            }
            if jobs.is_empty() {
                return any_session;
            }
            let f = last.unwrap_or_else(|| Failure {
                diag: local_diag(4, 4, 4, format!("no usable host for {domain}")),
                permanent: false,
            });
            settle_all(&ctx, jobs, &f.diag, f.permanent).await;
            any_session
        }
    }
}

/// Where `domain`'s mail goes under the destination control `policy`; `request` = the jobs'
/// TLS request (a failed MTA-STS fetch is not counted for `TLS-Required: No` attempts).
async fn plan(
    ctx: &Context,
    domain: &str,
    policy: &DestinationPolicy,
    request: TlsRequest,
) -> Plan {
    if ctx.config.is_local_domain(domain) {
        return Plan::Local;
    }
    if let Some(route) = ctx.config.route(domain) {
        let mut hops = Vec::new();
        let mut maildir = false;
        for h in &route.hosts {
            match RouteHop::parse(h) {
                Ok(RouteHop::Maildir) => {
                    maildir = true;
                    break;
                }
                Ok(RouteHop::Smtp { host, port }) => {
                    let addresses = ctx.dns.addresses(&host).await;
                    // Static routes have no DNSSEC facts: the configured TLS mode applies, and
                    // mandatory DANE defers (RFC 7672 §2.2.1).
                    let facts = facts_without_dnssec(domain, &host);
                    let action = decide(policy.dane, &facts);
                    hops.push(Hop {
                        name: host,
                        port,
                        source: HostSource::Route,
                        facts,
                        action,
                        addresses,
                        // RFC 8461 governs MX delivery, not a configured next hop.
                        sts: None,
                        sts_policy: None,
                    });
                }
                Err(e) => tracing::warn!(%domain, host = %h, error = %e, "bad route host"),
            }
        }
        if hops.is_empty() && maildir {
            return Plan::Local;
        }
        return Plan::Hops(hops, maildir);
    }
    // This domain's MTA-STS policy (once per attempt, before any host is planned): each of
    // its MX hosts gets its verdict from this domain's policy only (KumoMTA #484).
    let sts = match Sts::discover(ctx.sts.as_ref(), &ctx.dns, domain, policy).await {
        Ok(a) => a,
        Err(text) => return Plan::NoRoute(NoRoute::Temporary(text)),
    };
    if let Some(failure) = sts.failure() {
        connect::record_sts_failure(ctx, domain, sts.policy(), failure, request.tls_optional());
    }
    // TLS-RPT: every host's sessions carry the policy its verdict came from.
    let sts_policy = sts.policy().cloned().map(Arc::new);
    match ctx.dns.mx_hosts(domain, policy.dane).await {
        Ok(hosts) => Plan::Hops(
            hosts
                .into_iter()
                .map(|h| Hop {
                    sts: sts.host_verdict(&h.name),
                    sts_policy: sts_policy.clone(),
                    name: h.name,
                    port: h.port,
                    source: h.source,
                    facts: h.facts,
                    action: h.action,
                    addresses: h.addresses,
                })
                .collect(),
            false,
        ),
        Err(e) => Plan::NoRoute(e),
    }
}

/// The attempt's wall-clock limit (`delivery.max_session_secs`) passed during `what`: a
/// temporary failure (RFC 3463 4.4.2, "bad connection"), so the messages are retried.
fn session_expired(remote: &str, what: &str) -> Failure {
    Failure {
        diag: Diagnostic {
            code: 0,
            status: Some((4, 4, 2)),
            text: format!(
                "delivery session time limit reached during {what} with {remote} \
                 (delivery.max_session_secs)"
            ),
            remote_mta: Some(remote.to_owned()),
        },
        permanent: false,
    }
}

/// The session's lingering: its task, destination, TLS request kind and deadline.
type LingerAs<'a> = (&'a Linger, &'a String, TlsRequest, Instant);

/// Sends queued jobs over `session` until it breaks, reaches `max_messages_per_connection`,
/// its wall-clock limit passes, or shutdown is asked; then QUIT. With `linger`, a session that
/// carried every job (none set aside) first waits for jobs the runner hands to it. Returns the
/// REQUIRETLS messages (RFC 8689) the session may not take, with the reason, for the next host.
async fn run_session(
    ctx: &Context,
    mut session: Session,
    (plan, source): (&HopPlan, HostSource),
    jobs: &mut VecDeque<Job>,
    (shutdown, linger): (&watch::Receiver<bool>, Option<LingerAs<'_>>),
) -> Vec<(Job, Diagnostic)> {
    let mut set_aside = Vec::new();
    // Jobs were just handed to the lingering session: nothing sent over it since.
    let mut handed_now = false;
    // It takes handed jobs only while its plan is recent (CONNECTION_REUSE_TIME_LIMIT).
    let opened = Instant::now();
    while session.messages < ctx.config.max_messages_per_connection
        && !*shutdown.borrow()
        && !session.expired()
    {
        if jobs.is_empty() && set_aside.is_empty() {
            let room = ctx.config.max_messages_per_connection - session.messages;
            if let Some(l) = linger
                && opened.elapsed() < super::config::CONNECTION_REUSE_TIME_LIMIT
                && let Some(handed) = wait_for_jobs(ctx, l, room, shutdown).await
            {
                tracing::debug!(remote = %session.remote, jobs = handed.len(), "delivery: cached connection reused");
                #[cfg(test)]
                panic_if_asked(&format!("handed:{}", l.1));
                jobs.extend(handed);
                handed_now = true;
                continue;
            }
        }
        let Some(job) = jobs.pop_front() else { break };
        let Some((env, body)) = load(ctx, &job).await else {
            continue;
        };
        // RFC 8689 §4.2.1 item 1 (the MX lookup) from this host's plan for this message's
        // request. A configured SMTP route involves no MX lookup: the operator chose the next
        // hop, and only the session conditions apply (authenticated TLS, REQUIRETLS offered).
        let route = if source == HostSource::Route {
            RequireTlsRoute::NotChecked
        } else {
            plan.clone()
                .with_tls_request(env.tls_request)
                .requiretls_route()
        };
        let verdict = session.requiretls_verdict(env.tls_request.requires_tls(), route);
        if let RequireTlsVerdict::Refuse(refusal) = verdict {
            tracing::info!(id = %env.id, remote = %session.remote, %refusal, "REQUIRETLS: message not sent to this host");
            let (class, subject, detail) = REQUIRETLS_STATUS;
            let diag = Diagnostic {
                code: 0,
                status: Some((class, subject, detail)),
                text: format!(
                    "REQUIRETLS support required (RFC 8689): {refusal} ({})",
                    session.remote
                ),
                remote_mta: Some(session.remote.clone()),
            };
            set_aside.push((job, diag));
            continue;
        }
        let recipients: Vec<(usize, String)> = job
            .recipients
            .iter()
            .filter_map(|i| env.recipients.get(*i).map(|r| (*i, r.address.clone())))
            .collect();
        let (outcomes, broken) = match session.send(&env.sender, &recipients, &body, verdict).await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::info!(remote = %session.remote, error = %e.0, "session not reusable");
                jobs.push_front(job);
                if handed_now && let Some((l, ..)) = linger {
                    requeue_handed(ctx, l, jobs);
                }
                return set_aside;
            }
        };
        handed_now = false;
        persist::record(ctx, &job, outcomes, Some(&body)).await;
        if let Some(b) = broken {
            tracing::info!(remote = %session.remote, reason = %b.0, "connection lost");
            return set_aside;
        }
    }
    session.quit().await;
    set_aside
}

/// Offers the session to the runner and waits up to `connection_cache_secs` (never past the
/// session's deadline) for jobs; `None`: nothing came, the runner dropped the offer, or
/// shutdown was asked.
async fn wait_for_jobs(
    ctx: &Context,
    (linger, domain, request, ends): LingerAs<'_>,
    room: usize,
    shutdown: &watch::Receiver<bool>,
) -> Option<Vec<Job>> {
    // Every job of the task so far is settled (recorded): from here on its list holds the
    // handed jobs only, for the supervisor should the task fail.
    linger
        .jobs
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clear();
    let (handoff, mut rx) = oneshot::channel();
    let offer = Offer {
        domain: domain.clone(),
        tls_optional: request.tls_optional(),
        room,
        jobs: linger.jobs.clone(),
        handoff,
    };
    linger.offers.send(offer).ok()?;
    let until = ends.min(Instant::now() + ctx.config.connection_cache());
    let mut shutdown = shutdown.clone();
    tokio::select! {
        handed = &mut rx => return handed.ok().filter(|j: &Vec<Job>| !j.is_empty()),
        () = tokio::time::sleep_until(until) => {}
        _ = shutdown.wait_for(|s| *s) => {}
    }
    // Jobs sent just before the wait ended are taken (never left in flight).
    rx.close();
    rx.try_recv().ok().filter(|j| !j.is_empty())
}

/// The cached session turned out stale (the peer closed it or refused RSET while it waited)
/// before it carried any of the jobs handed to it: they go back to the queue as they were, due
/// now, no attempt counted (the runner gives them to a new connection), rather than failing
/// over to the next host or being deferred for the retry backoff.
fn requeue_handed(ctx: &Context, linger: &Linger, jobs: &mut VecDeque<Job>) {
    let now = std::time::SystemTime::now();
    let mut list = linger
        .jobs
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut q = ctx.lock_queue();
    let n = jobs.len();
    for job in jobs.drain(..) {
        q.requeue(&job, now);
        list.retain(|j| j.id != job.id);
    }
    tracing::info!(
        requeued = n,
        "delivery: cached connection stale; its messages are requeued"
    );
}

/// The job's envelope (from the queue) and body (from the spool).
async fn load(ctx: &Context, job: &Job) -> Option<(Envelope, Vec<u8>)> {
    let env = ctx.lock_queue().envelope(&job.id).cloned()?;
    match ctx.spool.read_body(&job.id).await {
        Ok(body) => Some((env, body)),
        Err(e) => {
            tracing::error!(id = %job.id, error = %e, "spooled message unreadable");
            let diag = local_diag(4, 3, 0, format!("spool: {e}"));
            let outcomes = job
                .recipients
                .iter()
                .map(|i| (*i, AttemptOutcome::Deferred(diag.clone())))
                .collect();
            persist::record(ctx, job, outcomes, None).await;
            None
        }
    }
}

async fn deliver_local(ctx: &Context, jobs: VecDeque<Job>) {
    for job in jobs {
        let Some((env, body)) = load(ctx, &job).await else {
            continue;
        };
        let mut outcomes = Vec::with_capacity(job.recipients.len());
        for &i in &job.recipients {
            let Some(r) = env.recipients.get(i) else {
                continue;
            };
            let md = ctx.maildir.clone();
            let (sender, rcpt, b) = (env.sender.clone(), r.address.clone(), body.clone());
            let res = tokio::task::spawn_blocking(move || md.deliver(&sender, &rcpt, &b)).await;
            let outcome = match res {
                Ok(Ok(path)) => {
                    tracing::info!(id = %env.id, recipient = %r.address, file = %path.display(), "delivered to maildir");
                    AttemptOutcome::Delivered
                }
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::InvalidInput => {
                    AttemptOutcome::Failed(local_diag(5, 1, 1, e.to_string()))
                }
                Ok(Err(e)) => {
                    AttemptOutcome::Deferred(local_diag(4, 3, 0, format!("maildir: {e}")))
                }
                Err(e) => AttemptOutcome::Deferred(local_diag(4, 3, 0, format!("maildir: {e}"))),
            };
            outcomes.push((i, outcome));
        }
        persist::record(ctx, &job, outcomes, Some(&body)).await;
    }
}

/// Every recipient of every job gets the same outcome.
async fn settle_all(ctx: &Context, jobs: VecDeque<Job>, diag: &Diagnostic, permanent: bool) {
    for job in jobs {
        let outcomes = job
            .recipients
            .iter()
            .map(|i| {
                let d = diag.clone();
                let o = if permanent {
                    AttemptOutcome::Failed(d)
                } else {
                    AttemptOutcome::Deferred(d)
                };
                (*i, o)
            })
            .collect();
        persist::record(ctx, &job, outcomes, None).await;
    }
}

fn local_diag(class: u8, subject: u16, detail: u16, text: String) -> Diagnostic {
    Diagnostic {
        code: 0,
        status: Some((class, subject, detail)),
        text,
        remote_mta: None,
    }
}

/// Test-only fault injection: destination domains whose next delivery task panics (once each).
#[cfg(test)]
pub(crate) static PANIC_ONCE: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

#[cfg(test)]
fn panic_if_asked(domain: &str) {
    let mut asked = PANIC_ONCE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(i) = asked.iter().position(|d| d == domain) {
        asked.remove(i);
        drop(asked);
        panic!("injected panic in the delivery task for {domain}");
    }
}

#[cfg(test)]
#[path = "deliver_tests.rs"]
mod tests;
