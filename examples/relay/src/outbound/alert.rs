//! Alerts when a required TLS connection (or DANE) fails (seed "Sending Alerts When a Required
//! TLS Connection Fails"): always a `warn!` naming the destination domain; with
//! `delivery.alerts.recipients`, an alert message spooled to them through the relay itself, at
//! most one per destination domain per `min_interval_secs`.

use std::fmt::Write as _;
use std::time::{Duration, Instant, SystemTime};

use smtp_tls_policy::delivery::RequiredTlsAlert;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;

use super::context::Context;
use crate::{Envelope, MessageId};

/// Logs the alert and, rate-limited, spools the alert message.
pub(crate) async fn raise(ctx: &Context, alert: &RequiredTlsAlert) {
    tracing::warn!(domain = %alert.domain, reason = %alert.reason, "ALERT: {alert}");
    let recipients = &ctx.config.alerts.recipients;
    if recipients.is_empty() || !allowed(ctx, &alert.domain) {
        return;
    }
    let now = SystemTime::now();
    let message = message(&ctx.config.ehlo_name, recipients, alert, now);
    // Null reverse-path: an undeliverable alert never produces a bounce (RFC 5321 §4.5.5).
    let env = Envelope::new("", recipients.iter().cloned(), now);
    match ctx.spool.accept(env, message).await {
        Ok(env) => ctx.handle.enqueue(env),
        Err(e) => tracing::error!(error = %e, "alert message could not be spooled"),
    }
}

/// The rate limit: one alert message per domain per interval.
fn allowed(ctx: &Context, domain: &str) -> bool {
    let interval = Duration::from_secs(ctx.config.alerts.min_interval_secs);
    let mut sent = ctx
        .alerts_sent
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let now = Instant::now();
    sent.retain(|_, t| now.duration_since(*t) < interval);
    if sent.contains_key(domain) {
        return false;
    }
    sent.insert(domain.to_owned(), now);
    true
}

fn message(
    ehlo: &str,
    recipients: &[String],
    alert: &RequiredTlsAlert,
    now: SystemTime,
) -> Vec<u8> {
    let date = OffsetDateTime::from(now)
        .format(&Rfc2822)
        .unwrap_or_default();
    let clean = |s: &str| -> String {
        s.chars()
            .filter(|c| c.is_ascii_graphic() || *c == ' ')
            .collect()
    };
    let mut m = String::new();
    let _ = write!(
        m,
        "From: Mail Relay Alerts <MAILER-DAEMON@{ehlo}>\r\n\
         To: {}\r\n\
         Subject: [ALERT] required TLS connection to {} failed\r\n\
         Date: {date}\r\n\
         Message-ID: <{}@{ehlo}>\r\n\
         Auto-Submitted: auto-generated\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\
         \r\n\
         Severity: Warning\r\n\
         Type: System\r\n\
         \r\n\
         {}\r\n\
         \r\n\
         Mail for this domain stays queued and is retried; it is never sent without the\r\n\
         required TLS protection.\r\n",
        recipients
            .iter()
            .map(|r| format!("<{}>", clean(r)))
            .collect::<Vec<_>>()
            .join(", "),
        clean(&alert.domain),
        MessageId::generate(),
        clean(&alert.to_string()),
    );
    m.into_bytes()
}
