//! One connection attempt to one address of a next hop under its hop plan (smtp-tls-policy's
//! `HopPlan`: the destination control's TLS mode and DANE setting, dane-verify's decision for
//! the host, the reference identities, SNI and verifier); `io::negotiate` runs greeting, EHLO,
//! STARTTLS and the handshake as the plan's delivery machine directs; the decision's action is
//! then followed exactly (the plaintext actions carry the machine's permit
//! tokens — this module never decides plaintext on its own).

use std::fmt::Display;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use dane_verify::{DaneAction, HostFacts};
use smtp_tls_policy::delivery::{
    Decision, DeliveryAction, DeliveryAttempt, DeliveryOptions, RequiredTlsAlerts,
};
use smtp_tls_policy::destination::DestinationPolicy;
use smtp_tls_policy::io::{ClientOutcome, ClientSettings, Timeouts, Transcript, negotiate};
use smtp_tls_policy::mta_sts::{Mode, Policy as StsPolicy, StsFailure, StsHostVerdict};
use smtp_tls_policy::plan::{HopPlan, HostSource, PeerVerdict, PlanOptions};
use smtp_tls_policy::tlsrpt::{
    Endpoints, ReportedPolicy, Session as TlsRptSession, SessionResult, TlsOutcome,
};
use tokio::net::TcpStream;

use super::alert;
use super::context::Context;
use super::transaction::Session;
use crate::Diagnostic;

/// A next hop: an MX host or a route host.
#[derive(Debug, Clone)]
pub(crate) struct Hop {
    /// Host name or IP address.
    pub(crate) name: String,
    /// TCP port.
    pub(crate) port: u16,
    /// An MX record, the implicit MX, or an SMTP route (a reference identity of its own).
    pub(crate) source: HostSource,
    /// What DNS said about the host (`facts_without_dnssec` for routes and `system` mode).
    pub(crate) facts: HostFacts,
    /// dane-verify's RFC 7672 action for the host.
    pub(crate) action: DaneAction,
    /// Addresses to try, in order.
    pub(crate) addresses: Vec<IpAddr>,
    /// The MTA-STS verdict for this host under **its own** destination domain's policy (MX
    /// hosts only; `None`: no MTA-STS information, e.g. a route, MTA-STS off or ignored).
    pub(crate) sts: Option<StsHostVerdict>,
    /// The MTA-STS policy `sts` came from (shared by the domain's hosts): its text lines and
    /// `mx` patterns are the TLS-RPT `policy-string` and `mx-host` of this host's sessions.
    pub(crate) sts_policy: Option<Arc<StsPolicy>>,
}

impl Hop {
    /// The hop plan of this host under the destination policy and the domain's MTA-STS
    /// verdict for the host. Made again for every host and every attempt (next MX, retry):
    /// no fallback path sidesteps it.
    pub(crate) fn plan(&self, policy: &DestinationPolicy) -> HopPlan {
        let options = PlanOptions::new().with_host_source(self.source);
        let plan = HopPlan::with_dane_action(policy, &self.facts, self.action.clone(), options);
        match &self.sts {
            Some(v) => plan.with_mta_sts(v.clone()),
            None => plan,
        }
    }
}

/// Why an attempt gave no usable connection.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub(crate) diag: Diagnostic,
    /// The machine said bounce (permanent); otherwise try the next host, then defer.
    pub(crate) permanent: bool,
}

fn failure(code_class: u8, text: String, remote: Option<String>, permanent: bool) -> Failure {
    Failure {
        diag: Diagnostic {
            code: 0,
            status: Some((code_class, 7, if permanent { 10 } else { 5 })),
            text,
            remote_mta: remote,
        },
        permanent,
    }
}

fn connection_failure(text: String, remote: String) -> Failure {
    Failure {
        diag: Diagnostic {
            code: 0,
            status: Some((4, 4, 1)),
            text,
            remote_mta: Some(remote),
        },
        permanent: false,
    }
}

/// The machine's options: alert on a required-TLS failure.
fn delivery_options() -> DeliveryOptions {
    DeliveryOptions::new(RequiredTlsAlerts::Send)
}

/// The plan makes no connection to `hop` (its pre-flight check): log it, raise the alert (if
/// any) and describe the failure.
pub(crate) async fn held(ctx: &Context, hop: &Hop, plan: &HopPlan) -> Failure {
    let remote = format!("{}:{}", hop.name, hop.port);
    if let Some(decision) = plan.hold_decision(delivery_options()) {
        if let Some(outcome) = TlsOutcome::of_decision(plan, &decision, None) {
            record(ctx, plan, hop, outcome, None, None);
        }
        log_attempt(
            plan,
            &remote,
            None,
            decision.action.as_str(),
            &decision.reason,
        );
        return decided(ctx, &decision, remote).await;
    }
    let reason = plan
        .pre_connect()
        .hold_reason()
        .map(ToString::to_string)
        .unwrap_or_default();
    if let Some(outcome) = plan
        .pre_connect()
        .hold_reason()
        .and_then(TlsOutcome::of_hold)
    {
        record(ctx, plan, hop, outcome, None, None);
    }
    log_attempt(plan, &remote, None, plan.pre_connect().as_str(), &reason);
    failure(4, format!("TLS policy: {reason}"), Some(remote), false)
}

/// Connects to `addr` of `hop` and negotiates TLS as the hop plan requires.
pub(crate) async fn connect(
    ctx: &Context,
    plan: &HopPlan,
    hop: &Hop,
    addr: IpAddr,
) -> Result<Session, Failure> {
    let remote = format!("{}[{addr}]:{}", hop.name, hop.port);
    let options = delivery_options();
    let (Some(attempt), Some(settings)) = (
        plan.attempt(options),
        plan.client_settings(ctx.config.ehlo_name.clone(), ctx.anchors.clone()),
    ) else {
        return Err(held(ctx, hop, plan).await);
    };
    // RFC 5321 §4.5.3.2 defaults (5 minutes) for greeting, commands and the handshake.
    let mut settings = settings.with_timeouts(Timeouts::default());
    settings.client_certificate = ctx.client_cert.clone();
    let (outcome, local) = exchange(ctx, hop, addr, attempt, &settings, &remote).await?;
    // The plan's verdict on this handshake (a fresh verifier per connection, no resumption):
    // the MTA-STS failure under `testing` is only in it.
    let verdict = settings.verifier.last_verdict();
    record_decision(
        ctx,
        plan,
        hop,
        &outcome.decision,
        verdict.as_ref(),
        local,
        addr,
    );
    log_decision(plan, &remote, &outcome.transcript, &outcome.decision);
    match (outcome.decision.action, outcome.connection) {
        (DeliveryAction::ContinueTls | DeliveryAction::ContinuePlaintext(_), Some(conn)) => {
            Ok(Session::new(conn, remote, &outcome.decision))
        }
        (DeliveryAction::RetryPlaintext(token), _) => {
            // `preferred`: the handshake failed after 220; a new connection without STARTTLS.
            let retry = DeliveryAttempt::plaintext_retry(&plan.policy().domain, token, options);
            let (outcome, local) = exchange(ctx, hop, addr, retry, &settings, &remote).await?;
            record_decision(ctx, plan, hop, &outcome.decision, None, local, addr);
            log_decision(plan, &remote, &outcome.transcript, &outcome.decision);
            match (outcome.decision.action, outcome.connection) {
                (DeliveryAction::ContinuePlaintext(_), Some(conn)) => {
                    Ok(Session::new(conn, remote, &outcome.decision))
                }
                _ => Err(decided(ctx, &outcome.decision, remote).await),
            }
        }
        _ => Err(decided(ctx, &outcome.decision, remote).await),
    }
}

async fn exchange(
    ctx: &Context,
    hop: &Hop,
    addr: IpAddr,
    attempt: DeliveryAttempt,
    settings: &ClientSettings,
    remote: &str,
) -> Result<(ClientOutcome<TcpStream>, Option<IpAddr>), Failure> {
    let sa = SocketAddr::new(addr, hop.port);
    let tcp = match tokio::time::timeout(ctx.config.connect_timeout(), TcpStream::connect(sa)).await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::info!(host = %hop.name, %sa, error = %e, "delivery: connect failed");
            return Err(connection_failure(format!("connect: {e}"), remote.into()));
        }
        Err(_) => {
            tracing::info!(host = %hop.name, %sa, "delivery: connect timed out");
            return Err(connection_failure(
                "connect timed out".into(),
                remote.into(),
            ));
        }
    };
    let _ = tcp.set_nodelay(true);
    let local = tcp.local_addr().ok().map(|a| a.ip());
    let outcome = negotiate(tcp, attempt, settings).await.map_err(|e| {
        tracing::info!(host = %hop.name, %sa, error = %e, "delivery: session failed before the transaction");
        connection_failure(e.to_string(), remote.into())
    })?;
    Ok((outcome, local))
}

/// TLS-RPT (RFC 8460): counts the machine's decision on a connection, when it says anything
/// about TLS (`of_decision`: STARTTLS missing, handshake, certificate, DANE; a plaintext
/// retry's own decision is not a second session). `verdict` = the plan's verdict on the
/// handshake, when one completed: it decides the outcome (`of_handshake`: DANE, the MTA-STS
/// failure — also under `testing`, where delivery goes on — then PKIX).
fn record_decision(
    ctx: &Context,
    plan: &HopPlan,
    hop: &Hop,
    decision: &Decision,
    verdict: Option<&PeerVerdict>,
    local: Option<IpAddr>,
    addr: IpAddr,
) {
    if ctx.tlsrpt.is_none() {
        return;
    }
    if let Some(outcome) = TlsOutcome::of_decision(plan, decision, verdict) {
        record(ctx, plan, hop, outcome, local, Some(addr));
    }
}

/// Hands one session to the TLS-RPT recorder (never waits). Not for plans relaxed by
/// `TLS-Required: No` (RFC 8689 §4.2.2: the domain's policy is not applied to them; TLS
/// reports are always sent so, so a report's own delivery is never counted).
fn record(
    ctx: &Context,
    plan: &HopPlan,
    hop: &Hop,
    outcome: TlsOutcome,
    local: Option<IpAddr>,
    receiving: Option<IpAddr>,
) {
    let Some(recorder) = &ctx.tlsrpt else {
        return;
    };
    if let Some(session) = session(plan, hop, outcome, local, receiving) {
        recorder.record(session);
    }
}

/// The TLS-RPT session of an attempt at `hop` under `plan`: the policy of
/// `ReportedPolicy::for_plan` (the one table: `tlsa`, `sts` for an `enforce` or `testing`
/// verdict — with the hop's policy text and `mx` patterns — else `no-policy-found`) and the
/// result of `outcome`. `None` for a plan relaxed by `TLS-Required: No`.
pub(crate) fn session(
    plan: &HopPlan,
    hop: &Hop,
    outcome: TlsOutcome,
    local: Option<IpAddr>,
    receiving: Option<IpAddr>,
) -> Option<TlsRptSession> {
    if plan.tls_request().tls_optional() {
        return None;
    }
    let endpoints = Endpoints::new(local, receiving, Some(&hop.name));
    Some(TlsRptSession::of_plan(
        plan,
        hop.sts_policy.as_deref(),
        outcome,
        endpoints,
    ))
}

/// TLS-RPT (RFC 8460 §4.3.2.2): a failed MTA-STS policy fetch of `domain` (nothing cached, or
/// a refresh that failed while `applied`, the cached policy, still holds) is one failed
/// session under the domain's `sts` policy, of the failure's own result type
/// (`sts-policy-fetch-error`, `sts-policy-invalid`, `sts-webpki-invalid`; `TlsOutcome`'s
/// table), no MX involved. Counted once per delivery attempt to the domain; never for
/// `TLS-Required: No` attempts (`tls_optional`: a report's own delivery).
pub(crate) fn record_sts_failure(
    ctx: &Context,
    domain: &str,
    applied: Option<&StsPolicy>,
    failure: &StsFailure,
    tls_optional: bool,
) {
    let Some(recorder) = &ctx.tlsrpt else {
        return;
    };
    if !tls_optional {
        recorder.record(sts_failure_session(domain, applied, failure));
    }
}

/// The session of [`record_sts_failure`]: the policy text of `applied` only when it is in
/// force (`enforce` or `testing`), as for the connection sessions.
pub(crate) fn sts_failure_session(
    domain: &str,
    applied: Option<&StsPolicy>,
    failure: &StsFailure,
) -> TlsRptSession {
    let in_force = applied.filter(|p| matches!(p.mode, Mode::Enforce | Mode::Testing));
    TlsRptSession::new(
        ReportedPolicy::sts(domain, in_force),
        SessionResult::new(TlsOutcome::of_sts_failure(failure), Endpoints::default()),
    )
}

/// A decision that ends the attempt: raise the alert (if any) and describe the failure.
async fn decided(ctx: &Context, decision: &Decision, remote: String) -> Failure {
    if let Some(a) = decision.alert() {
        alert::raise(ctx, a).await;
    }
    let permanent = decision.action == DeliveryAction::Bounce;
    failure(
        if permanent { 5 } else { 4 },
        format!("TLS policy: {}", decision.reason),
        Some(remote),
        permanent,
    )
}

fn log_decision(plan: &HopPlan, remote: &str, transcript: &Transcript, decision: &Decision) {
    log_attempt(
        plan,
        remote,
        Some(transcript),
        decision.action.as_str(),
        &decision.reason,
    );
}

/// One structured record per connection attempt (no message content, no key material), with
/// the hop plan's explanation as JSON.
fn log_attempt(
    plan: &HopPlan,
    remote: &str,
    transcript: Option<&Transcript>,
    action: &str,
    reason: &dyn Display,
) {
    let tls = transcript.and_then(|t| t.tls.as_ref());
    let policy = plan.policy();
    let reference_ids: Vec<String> = plan
        .reference_ids()
        .iter()
        .map(ToString::to_string)
        .collect();
    let explanation = serde_json::to_string(plan.explanation()).unwrap_or_default();
    tracing::info!(
        domain = %policy.domain,
        host = %plan.host(),
        remote,
        mode = policy.tls.as_str(),
        dane_setting = ?policy.dane,
        dane = plan.dane_action().as_str(),
        pre_connect = plan.pre_connect().as_str(),
        reference_ids = ?reference_ids,
        tls_protocol = tls.map(|t| t.protocol.as_str()),
        tls_cipher = tls.map(|t| t.cipher_suite.as_str()),
        pkix = ?tls.map(|t| &t.pkix),
        dane_verdict = ?tls.and_then(|t| t.dane.as_ref()),
        starttls_reply = ?transcript.and_then(|t| t.starttls_reply.as_ref().map(|r| r.0)),
        handshake_error = transcript.and_then(|t| t.handshake_error.as_deref()),
        action,
        reason = %reason,
        plan = %explanation,
        "delivery attempt"
    );
}

#[cfg(test)]
#[path = "connect_tests.rs"]
mod tests;
