//! One connection attempt to one address of a next hop: the destination control's TLS mode and
//! DANE setting plus dane-verify's decision for the host go into smtp-tls-policy's delivery
//! machine; `io::negotiate` runs greeting, EHLO, STARTTLS and the handshake as it directs; the
//! decision's action is then followed exactly (the plaintext actions carry the machine's permit
//! tokens — this module never decides plaintext on its own).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use dane_verify::policy::Action as DaneAction;
use rustls::pki_types::ServerName;
use smtp_tls_policy::delivery::dane::tlsa_status;
use smtp_tls_policy::delivery::{Action, Decision, DeliveryAttempt, DeliveryOptions, TlsaStatus};
use smtp_tls_policy::destination::{DeliveryTls, DestinationPolicy};
use smtp_tls_policy::identity::{DeliveryTarget, IdentityAlgorithm, MxSecurity};
use smtp_tls_policy::io::{ClientOutcome, ClientSettings, Timeouts, Transcript, negotiate};
use smtp_tls_policy::verifier::{SmtpCertVerifier, VerificationMode};
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
    /// Configured by an SMTP route (a reference identity of its own) rather than found by MX.
    pub(crate) route: bool,
    /// DNSSEC status of the MX answer.
    pub(crate) security: MxSecurity,
    /// dane-verify's RFC 7672 action for the host.
    pub(crate) dane: DaneAction,
    /// Addresses to try, in order.
    pub(crate) addresses: Vec<IpAddr>,
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

/// Connects to `addr` of `hop` and negotiates TLS as the destination policy requires.
pub(crate) async fn connect(
    ctx: &Context,
    policy: &DestinationPolicy,
    hop: &Hop,
    addr: IpAddr,
) -> Result<Session, Failure> {
    let remote = format!("{}[{addr}]:{}", hop.name, hop.port);
    let options = DeliveryOptions::new(true);
    let tlsa = tlsa_status(&hop.dane);
    let mut attempt = DeliveryAttempt::for_policy(policy, tlsa.clone(), options);
    let target = target(policy, hop).map_err(|e| {
        failure(
            4,
            format!("no reference identity: {e}"),
            Some(remote.clone()),
            false,
        )
    })?;
    let algorithm = if policy.tls == DeliveryTls::RequiredVerifyHostedDomains {
        IdentityAlgorithm::HostedVerify
    } else {
        IdentityAlgorithm::Verify
    };
    let reference_ids: Vec<String> = target
        .reference_ids(algorithm)
        .iter()
        .map(ToString::to_string)
        .collect();
    // DANE mandatory without usable records, failed TLSA lookup: no connection at all.
    if let Some(decision) = attempt.preflight() {
        log_attempt(policy, hop, &remote, &tlsa, &reference_ids, None, &decision);
        return Err(decided(ctx, &decision, remote).await);
    }
    let settings = settings(ctx, policy, hop, target)?;
    let outcome = exchange(ctx, hop, addr, attempt, &settings, &remote).await?;
    log_attempt(
        policy,
        hop,
        &remote,
        &tlsa,
        &reference_ids,
        Some(&outcome.transcript),
        &outcome.decision,
    );
    match (outcome.decision.action, outcome.connection) {
        (Action::ContinueTls | Action::ContinuePlaintext(_), Some(conn)) => {
            Ok(Session::new(conn, remote))
        }
        (Action::RetryPlaintext(token), _) => {
            // `preferred`: the handshake failed after 220; a new connection without STARTTLS.
            let retry = DeliveryAttempt::plaintext_retry(&policy.domain, token, options);
            let outcome = exchange(ctx, hop, addr, retry, &settings, &remote).await?;
            log_attempt(
                policy,
                hop,
                &remote,
                &tlsa,
                &reference_ids,
                Some(&outcome.transcript),
                &outcome.decision,
            );
            match (outcome.decision.action, outcome.connection) {
                (Action::ContinuePlaintext(_), Some(conn)) => Ok(Session::new(conn, remote)),
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
) -> Result<ClientOutcome<TcpStream>, Failure> {
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
    negotiate(tcp, attempt, settings).await.map_err(|e| {
        tracing::info!(host = %hop.name, %sa, error = %e, "delivery: session failed before the transaction");
        connection_failure(e.to_string(), remote.into())
    })
}

/// A decision that ends the attempt: raise the alert (if any) and describe the failure.
async fn decided(ctx: &Context, decision: &Decision, remote: String) -> Failure {
    if let Some(a) = decision.alert() {
        alert::raise(ctx, a).await;
    }
    let permanent = decision.action == Action::Bounce;
    failure(
        if permanent { 5 } else { 4 },
        format!("TLS policy: {}", decision.reason),
        Some(remote),
        permanent,
    )
}

/// The reference identities' facts: the destination domain, the MX host (with the MX answer's
/// DNSSEC status) or the route host.
fn target(policy: &DestinationPolicy, hop: &Hop) -> Result<DeliveryTarget, smtp_tls_policy::Error> {
    let b = DeliveryTarget::builder(policy.domain.clone());
    let b = if hop.route {
        b.with_route_host(hop.name.clone())
    } else {
        b.with_mx_host(hop.name.clone())
            .with_mx_security(hop.security)
    };
    b.build()
}

fn settings(
    ctx: &Context,
    policy: &DestinationPolicy,
    hop: &Hop,
    target: DeliveryTarget,
) -> Result<ClientSettings, Failure> {
    let mode = if policy.tls == DeliveryTls::RequiredVerifyHostedDomains {
        VerificationMode::RequiredVerifyHostedDomains
    } else {
        VerificationMode::RequiredVerify
    };
    // Its verdict is recorded by the driver; the machine decides what it means for the mode.
    let verifier = Arc::new(SmtpCertVerifier::new(mode, target, ctx.anchors.clone()));
    let sni = match &hop.dane {
        DaneAction::UseDane { sni, .. } => sni.clone(),
        _ => hop.name.clone(),
    };
    let server_name = match sni.parse::<IpAddr>() {
        Ok(ip) => ServerName::IpAddress(ip.into()),
        Err(_) => ServerName::try_from(sni.clone()).map_err(|e| {
            failure(
                4,
                format!("server name {sni:?}: {e}"),
                Some(hop.name.clone()),
                false,
            )
        })?,
    };
    // RFC 5321 §4.5.3.2 defaults (5 minutes) for greeting, commands and the handshake.
    let mut s = ClientSettings::new(ctx.config.ehlo_name.clone(), server_name, verifier)
        .with_timeouts(Timeouts::default());
    if let (DaneAction::UseDane { records, .. }, Some(matcher)) = (&hop.dane, hop.dane.matcher()) {
        match matcher {
            Ok(m) => {
                s = s.with_dane(Arc::new(dane_verify::DaneVerifier::new(m, records.clone())));
            }
            Err(e) => {
                return Err(failure(
                    4,
                    format!("DANE reference names: {e}"),
                    Some(hop.name.clone()),
                    false,
                ));
            }
        }
    }
    s.client_certificate = ctx.client_cert.clone();
    Ok(s)
}

/// One structured record per connection attempt (no message content, no key material).
fn log_attempt(
    policy: &DestinationPolicy,
    hop: &Hop,
    remote: &str,
    tlsa: &TlsaStatus,
    reference_ids: &[String],
    transcript: Option<&Transcript>,
    decision: &Decision,
) {
    let tls = transcript.and_then(|t| t.tls.as_ref());
    tracing::info!(
        domain = %policy.domain,
        host = %hop.name,
        remote,
        mode = policy.tls.as_str(),
        dane_setting = ?policy.dane,
        dane = hop.dane.as_str(),
        tlsa = ?tlsa,
        reference_ids = ?reference_ids,
        tls_protocol = tls.map(|t| t.protocol.as_str()),
        tls_cipher = tls.map(|t| t.cipher_suite.as_str()),
        pkix = ?tls.map(|t| &t.pkix),
        dane_verdict = ?tls.and_then(|t| t.dane.as_ref()),
        starttls_reply = ?transcript.and_then(|t| t.starttls_reply.as_ref().map(|r| r.0)),
        handshake_error = transcript.and_then(|t| t.handshake_error.as_deref()),
        action = decision.action.as_str(),
        reason = %decision.reason,
        "delivery attempt"
    );
}
