//! The reporter task: once per period, the finished period's reports (RFC 8460 §4, §5).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use dane_verify::TxtLookup;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use smtp_tls_policy::delivery::TlsRequest;
use smtp_tls_policy::tlsrpt::{
    DayCounters, RecordDiscovery, RecordErrorKind, Report, ReportBody, ReportUri, ReportedPolicy,
    Reporter, TlsRptRecord, compose_message, compose_reports,
};
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::config::TlsRptConfig;
use super::dkim::Dkim;
use super::period::Period;
use crate::Envelope;
use crate::outbound::context::Context;
use crate::state::{ReportCounters, StateError};

/// How long a relay's claim on a period holds (then another relay may produce the reports).
const CLAIM_TTL: Duration = Duration::from_secs(3600);
/// The time limit of one HTTPS POST.
const POST_LIMIT: Duration = Duration::from_secs(60);
/// Periods reported in one run at most (the newest first; older ones in the next run).
const MAX_PERIODS_PER_RUN: usize = 32;
/// The next run after one that left a period (held by another relay, or the store failed),
/// unless the next period ends sooner.
const RETRY_AFTER: Duration = Duration::from_secs(600);
/// The most HTTPS POSTs of one period in flight at once.
const MAX_POSTS: usize = 8;
/// The time limit of one `_smtp._tls` lookup through the system resolver.
const LOOKUP_LIMIT: Duration = Duration::from_secs(30);

/// Starts the reporter task (when `[tlsrpt] enabled`); it ends with `shutdown`.
pub(crate) fn spawn_reporter(ctx: Arc<Context>, mut shutdown: watch::Receiver<bool>) {
    let config = ctx.config.tlsrpt.clone();
    if !config.enabled {
        return;
    }
    let reporter = reporter(&config, &ctx.config.ehlo_name);
    let dkim = match config.dkim.as_ref().map(Dkim::load).transpose() {
        Ok(d) => d.map(Arc::new),
        Err(e) => {
            // never unsigned when signing is configured
            tracing::error!(error = %e, "TLS-RPT: DKIM key not loaded, no reports are sent");
            return;
        }
    };
    tokio::spawn(async move {
        let interval = config.report_interval_secs;
        // waits a moment after the period ends: sessions of its last instant are written
        let grace = Duration::from_secs((interval / 20).clamp(1, 300));
        // the first run at once: periods missed while the relay was down
        let mut wait = Duration::ZERO;
        loop {
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
            let unfinished = report_due(&ctx, &reporter, dkim.as_deref(), interval, grace).await;
            let next = Period::until_next(OffsetDateTime::now_utc(), interval) + grace;
            // a period another relay holds (it may crash) or the store refused: sooner
            wait = if unfinished {
                next.min(RETRY_AFTER)
            } else {
                next
            };
        }
    });
}

/// One run of the reporter: every completed period the store holds counters for (newest
/// first, at most [`MAX_PERIODS_PER_RUN`]). `true` when one is left to a later run (held by
/// another relay, or the store failed).
async fn report_due(
    ctx: &Arc<Context>,
    reporter: &Reporter,
    dkim: Option<&Dkim>,
    interval: u64,
    grace: Duration,
) -> bool {
    let counters = ctx.state.counters();
    let now = OffsetDateTime::now_utc() - grace;
    let periods = match due_periods(counters, now, interval).await {
        Ok(mut due) => {
            // the period just finished, also when the store holds no counters for it (it
            // is claimed and marked done with no report, as before: every relay's log says
            // who reported it)
            let last = Period::previous(now, interval);
            if !due.contains(&last) {
                due.insert(0, last);
            }
            due
        }
        Err(e) => {
            tracing::warn!(error = %e, "TLS-RPT: periods to report not read, tried again later");
            return true;
        }
    };
    let mut unfinished = false;
    for period in periods {
        let send = |reports: Vec<Report>| send_all(ctx, reporter, dkim, reports);
        match run_period(counters, reporter, &period, CLAIM_TTL, send).await {
            Ok(PeriodRun::Reported(sent)) => {
                if sent > 0 {
                    tracing::info!(period = %period.name, reports = sent, "TLS-RPT: period reported");
                }
            }
            Ok(PeriodRun::HeldByOther) => {
                tracing::info!(period = %period.name, "TLS-RPT: period claimed by another relay, tried again until it is done");
                unfinished = true;
            }
            Ok(PeriodRun::Done) => {
                tracing::info!(period = %period.name, "TLS-RPT: period already reported (by another relay or an earlier run)");
            }
            Err(e) => {
                tracing::warn!(period = %period.name, error = %e, "TLS-RPT: period not reported yet");
                unfinished = true;
            }
        }
    }
    unfinished
}

/// The completed periods (ended before `now`) the store holds counters for, newest first, at
/// most `MAX_PERIODS_PER_RUN`: the last one and any missed (relay down, store unavailable,
/// another relay's claim expired) within the store's retention. Days of another
/// `report_interval_secs` are left to expire.
///
/// # Errors
/// [`StateError`] when the store cannot be read.
pub async fn due_periods<C: ReportCounters>(
    counters: &C,
    now: OffsetDateTime,
    interval: u64,
) -> Result<Vec<Period>, StateError> {
    let mut due: Vec<Period> = counters
        .days()
        .await?
        .iter()
        .filter_map(|day| Period::named(day, interval))
        .filter(|p| p.end(interval) <= now)
        .collect();
    due.sort_by_key(|p| std::cmp::Reverse(p.end(interval)));
    if due.len() > MAX_PERIODS_PER_RUN {
        tracing::warn!(
            periods = due.len(),
            "TLS-RPT: many periods not reported; the oldest wait for a later run"
        );
        due.truncate(MAX_PERIODS_PER_RUN);
    }
    Ok(due)
}

/// What [`run_period`] did with a period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeriodRun {
    /// Claimed here: this many reports built and handed to `send`; its counters deleted.
    Reported(usize),
    /// Another relay (or a run of this one whose claim reply was lost) holds the claim: to be
    /// tried again until the store says it is done (the holder may crash).
    HeldByOther,
    /// Reported before; counters written after the report were removed.
    Done,
}

/// The report's sender identity from `[tlsrpt]` (`submitter` defaulting to `ehlo_name`).
#[must_use]
pub fn reporter(config: &TlsRptConfig, ehlo_name: &str) -> Reporter {
    let submitter = config
        .submitter
        .clone()
        .unwrap_or_else(|| ehlo_name.to_owned());
    let from = config
        .from
        .clone()
        .unwrap_or_else(|| format!("noreply-tlsrpt@{submitter}"));
    Reporter::new(
        config.organization_name.clone(),
        config.contact_info.clone(),
        &submitter,
        from,
    )
}

/// Claims `period` for `ttl`, builds its reports and hands them to `send`, marks the claim
/// done and deletes its counters. The claim is extended every `ttl / 3` while `send` runs (a
/// run may outlast `ttl`: many domains, each with its `_smtp._tls` lookup and POSTs). On any
/// error after the claim is taken, the claim is released: the next run (here or on another
/// relay) claims the period again instead of finding it held until the claim expires.
///
/// # Errors
/// [`StateError`] when the store fails (the period is reported by a later run).
pub async fn run_period<C, F, Fut>(
    counters: &C,
    reporter: &Reporter,
    period: &Period,
    ttl: Duration,
    send: F,
) -> Result<PeriodRun, StateError>
where
    C: ReportCounters,
    F: FnOnce(Vec<Report>) -> Fut,
    Fut: Future<Output = ()>,
{
    // the claim first: exactly one relay reads (and then deletes) the period
    let claim = period.claim_name();
    let taken = match counters.claim(&claim, ttl).await {
        Ok(taken) => taken,
        Err(e) => {
            // the claim may have been taken while its reply was lost
            release(counters, &claim).await;
            return Err(e);
        }
    };
    if !taken {
        if !counters.is_done(&claim).await? {
            return Ok(PeriodRun::HeldByOther);
        }
        // reported: what is left was counted after the report (or its deletion failed)
        counters.delete_day(&period.name).await?;
        return Ok(PeriodRun::Done);
    }
    let reported = async {
        let reports = collect_reports(counters, reporter, period).await?;
        let built = reports.len();
        let work = send(reports);
        tokio::pin!(work);
        let every = (ttl / 3).max(Duration::from_millis(10));
        let mut refresh = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            tokio::select! {
                () = &mut work => break,
                _ = refresh.tick() => match counters.extend(&claim, ttl).await {
                    Ok(true) => {}
                    Ok(false) => tracing::warn!(period = %period.name, "TLS-RPT: claim lost during the run (it expired while the store was unreachable): another relay may send these reports too"),
                    Err(e) => tracing::warn!(period = %period.name, error = %e, "TLS-RPT: claim not extended"),
                },
            }
        }
        counters.done(&claim).await?;
        Ok(built)
    }
    .await;
    match reported {
        Ok(built) => {
            counters.delete_day(&period.name).await?;
            Ok(PeriodRun::Reported(built))
        }
        Err(e) => {
            release(counters, &claim).await;
            Err(e)
        }
    }
}

/// Releases `claim` after a failed run; a failure is logged (the claim then expires).
async fn release<C: ReportCounters>(counters: &C, claim: &str) {
    if let Err(e) = counters.release(claim).await {
        tracing::warn!(claim, error = %e, "TLS-RPT: claim not released, it expires");
    }
}

/// Sends `reports`: every report's `mailto:` copies are queued first; the `https:` POSTs
/// follow, [`MAX_POSTS`] at once, each within [`POST_LIMIT`]: a receiver that answers slowly
/// or never delays no `mailto:` and no other domain's report by more than that limit.
async fn send_all(
    ctx: &Arc<Context>,
    reporter: &Reporter,
    dkim: Option<&Dkim>,
    reports: Vec<Report>,
) {
    let mut posts = Vec::new();
    for report in &reports {
        posts.extend(send(ctx, reporter, dkim, report).await);
    }
    let mut running = JoinSet::new();
    for post in posts {
        while running.len() >= MAX_POSTS {
            let _ = running.join_next().await;
        }
        running.spawn(post.run(Arc::clone(ctx)));
    }
    while running.join_next().await.is_some() {}
}

/// The reports of `period` from the counters (one per policy domain); buckets without a
/// readable policy are skipped and logged.
///
/// # Errors
/// [`StateError`] when the store cannot be read.
pub async fn collect_reports<C: ReportCounters>(
    counters: &C,
    reporter: &Reporter,
    period: &Period,
) -> Result<Vec<Report>, StateError> {
    let mut entries = Vec::new();
    for bucket in &counters.buckets(&period.name).await? {
        let data = counters.read(&period.name, bucket).await?;
        let Some(meta) = data.meta.as_deref() else {
            tracing::warn!(period = %period.name, bucket, "TLS-RPT: bucket without a policy, skipped");
            continue;
        };
        match ReportedPolicy::from_store_string(meta) {
            Ok(policy) => entries.push(DayCounters::from_fields(
                &policy,
                data.fields.iter().map(|(f, n)| (f.as_str(), *n)),
            )),
            Err(e) => {
                tracing::warn!(period = %period.name, bucket, error = %e, "TLS-RPT: bucket policy unreadable, skipped");
            }
        }
    }
    Ok(compose_reports(reporter, period.date, entries))
}

fn report_domain(report: &Report) -> Option<String> {
    report
        .policies
        .first()
        .and_then(|p| p.policy.policy_domain.clone())
}

/// Delivers `report` to every valid `mailto:` `rua` of its policy domain and returns its
/// `https:` POSTs, to be run; problems are logged, never fatal.
async fn send(
    ctx: &Context,
    reporter: &Reporter,
    dkim: Option<&Dkim>,
    report: &Report,
) -> Vec<Post> {
    let Some(domain) = report_domain(report) else {
        return Vec::new();
    };
    let Some(record) = lookup(ctx, &domain).await else {
        return Vec::new();
    };
    for skipped in &record.skipped {
        tracing::warn!(%domain, rua = %skipped.uri, problem = %skipped.problem, "TLS-RPT: rua skipped");
    }
    let mut posts = Vec::new();
    for rua in &record.rua {
        let sent = match rua {
            ReportUri::Mailto { address, .. } => mail(ctx, reporter, dkim, report, address).await,
            ReportUri::Https { uri } => {
                match ReportBody::of(report) {
                    Ok(body) => posts.push(Post {
                        domain: domain.clone(),
                        uri: uri.clone(),
                        report_id: report.report_id.clone(),
                        gzip: body.gzip,
                    }),
                    Err(e) => {
                        sent_log(&domain, rua.as_str(), &report.report_id, Err(e.to_string()))
                    }
                }
                continue;
            }
            _ => Err("unsupported rua".to_owned()),
        };
        sent_log(&domain, rua.as_str(), &report.report_id, sent);
    }
    posts
}

fn sent_log(domain: &str, rua: &str, report_id: &str, sent: Result<(), String>) {
    match sent {
        Ok(()) => {
            tracing::info!(%domain, %rua, %report_id, "TLS-RPT: report sent");
        }
        Err(e) => {
            tracing::warn!(%domain, %rua, error = %e, "TLS-RPT: report not sent to this rua");
        }
    }
}

/// One `https:` delivery of a report.
struct Post {
    domain: String,
    uri: String,
    report_id: String,
    gzip: Vec<u8>,
}

impl Post {
    async fn run(self, ctx: Arc<Context>) {
        let sent = https(&ctx, &self.uri, self.gzip).await;
        sent_log(&self.domain, &self.uri, &self.report_id, sent);
    }
}

/// `_smtp._tls.<domain>` through the delivery resolver: validated in the DNSSEC modes, plain
/// DNS in mode `system` (RFC 8460 §3 does not require DNSSEC for this record).
async fn lookup(ctx: &Context, domain: &str) -> Option<TlsRptRecord> {
    let name = format!("_smtp._tls.{domain}");
    let texts = match ctx.dns.dane_resolver() {
        Some(resolver) => match resolver.txt(&name).await {
            Ok(TxtLookup::Found { records, .. }) => records
                .iter()
                .map(|r| String::from_utf8_lossy(&r.concatenated()).into_owned())
                .collect(),
            Ok(TxtLookup::NotFound { .. }) => Vec::new(),
            Ok(other) => {
                tracing::warn!(%domain, answer = ?other, "TLS-RPT: _smtp._tls answer unusable, report not sent");
                return None;
            }
            Err(e) => {
                tracing::warn!(%domain, error = %e, "TLS-RPT: _smtp._tls lookup failed, report not sent");
                return None;
            }
        },
        None => match system_txt(ctx, &name).await {
            Ok(texts) => texts,
            Err(e) => {
                tracing::warn!(%domain, error = %e, "TLS-RPT: _smtp._tls lookup failed, report not sent");
                return None;
            }
        },
    };
    if texts.is_empty() {
        tracing::info!(%domain, "TLS-RPT: no _smtp._tls record, report not sent");
        return None;
    }
    match TlsRptRecord::discover(texts) {
        Ok(RecordDiscovery::Found(record)) => Some(record),
        Ok(other) => {
            tracing::info!(%domain, record = ?other, "TLS-RPT: no usable _smtp._tls record");
            None
        }
        Err(e) => {
            // every rua URI bad: each is logged as one skipped among several would be
            if let smtp_tls_policy::Error::TlsRptRecord {
                kind: RecordErrorKind::NoUsableRua { skipped, .. },
                ..
            } = &e
            {
                for s in skipped {
                    tracing::warn!(%domain, rua = %s.uri, problem = %s.problem, "TLS-RPT: rua skipped");
                }
            }
            tracing::warn!(%domain, error = %e, "TLS-RPT: _smtp._tls record invalid, report not sent");
            None
        }
    }
}

/// The TXT records of `name` (each one's strings concatenated) through the `system`-mode
/// resolver; empty when there is none (NXDOMAIN or no TXT record).
async fn system_txt(ctx: &Context, name: &str) -> Result<Vec<String>, String> {
    let Some(resolver) = ctx.dns.system_resolver() else {
        return Err("no resolver".to_owned());
    };
    let fqdn = Name::from_ascii(format!("{}.", name.trim_end_matches('.')))
        .map_err(|e| format!("{name} is not a domain name: {e}"))?;
    let lookup = tokio::time::timeout(LOOKUP_LIMIT, resolver.lookup(fqdn, RecordType::TXT))
        .await
        .map_err(|_| format!("timed out after {LOOKUP_LIMIT:?}"))?;
    match lookup {
        Ok(found) => Ok(found
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::TXT(t) => Some(
                    t.txt_data
                        .iter()
                        .map(|s| String::from_utf8_lossy(s))
                        .collect::<String>(),
                ),
                _ => None,
            })
            .collect()),
        Err(NetError::Dns(DnsError::NoRecordsFound(_))) => Ok(Vec::new()),
        Err(e) => Err(e.to_string()),
    }
}

/// `mailto:`: the report message into the relay's spool and queue, `TLS-Required: No`
/// (opportunistic TLS; and its sessions are not counted), null reverse-path (no bounce loop).
async fn mail(
    ctx: &Context,
    reporter: &Reporter,
    dkim: Option<&Dkim>,
    report: &Report,
    address: &str,
) -> Result<(), String> {
    let now = SystemTime::now();
    let mut message = compose_message(reporter, report, address, OffsetDateTime::from(now))
        .map_err(|e| e.to_string())?;
    if let Some(dkim) = dkim {
        message = dkim.sign(&message).map_err(|e| e.to_string())?;
    }
    let mut env = Envelope::new("", [address], now);
    env.tls_request = TlsRequest::TlsOptional;
    let env = ctx
        .spool
        .accept(env, message)
        .await
        .map_err(|e| e.to_string())?;
    ctx.handle.enqueue(env);
    Ok(())
}

/// `https:`: POST the gzipped report (the address lookup within the same limit).
async fn https(ctx: &Context, uri: &str, gzip: Vec<u8>) -> Result<(), String> {
    let (host, _, _) = super::post::host_port(uri).map_err(|e| e.to_string())?;
    let addresses = tokio::time::timeout(POST_LIMIT, ctx.dns.addresses(&host))
        .await
        .map_err(|_| format!("address lookup of {host} timed out"))?;
    let tls = smtp_tls_policy::mta_sts::client_config(&ctx.anchors).map_err(|e| e.to_string())?;
    super::post::post_report(uri, &addresses, gzip, tls, POST_LIMIT)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}
