//! Delivery status notifications (RFC 3464) for bounced and expired recipients.
//!
//! The DSN is a `multipart/report; report-type=delivery-status` message (RFC 6522) with three
//! parts: a human-readable explanation, the `message/delivery-status` fields (RFC 3464 §2.2,
//! §2.3), and the original message's header as `text/rfc822-headers`. It is sent with the null
//! reverse-path `<>` (RFC 5321 §4.5.5), and never for a message that itself has a null sender.

use std::fmt::Write as _;
use std::time::SystemTime;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc2822;

use super::envelope::{Diagnostic, Envelope, MessageId, RecipientState};
use super::error::RelayError;

/// Most bytes of the original header copied into the DSN.
pub const MAX_ORIGINAL_HEADER: usize = 64 * 1024;

/// A DSN ready to be queued: null reverse-path, one recipient (the original sender).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dsn {
    /// The reverse-path: always empty (`MAIL FROM:<>`).
    pub sender: String,
    /// The recipient: the original message's sender.
    pub recipient: String,
    /// The complete RFC 5322 message.
    pub message: Vec<u8>,
}

/// Builds the DSN for the recipients of `env` that bounced or expired.
///
/// `reporting_mta` is this relay's host name, `original` the original message (only its header
/// is used). Errors: [`RelayError::NullSender`] for a bounce of a bounce,
/// [`RelayError::NothingToReport`] if no recipient bounced or expired.
///
/// ```
/// use relay::{dsn, Envelope, RecipientState};
/// let mut env = Envelope::new("a@example.org", ["b@example.net"], std::time::SystemTime::now());
/// env.recipients[0].state = RecipientState::Expired;
/// let d = dsn::build(&env, "relay.example.org", b"Subject: x\r\n\r\nbody\r\n", env.arrival).unwrap();
/// assert_eq!(d.sender, "");
/// assert!(String::from_utf8_lossy(&d.message).contains("Action: failed"));
/// ```
pub fn build(
    env: &Envelope,
    reporting_mta: &str,
    original: &[u8],
    now: SystemTime,
) -> Result<Dsn, RelayError> {
    if env.is_bounce() {
        return Err(RelayError::NullSender);
    }
    let failed: Vec<_> = env
        .recipients
        .iter()
        .filter(|r| matches!(r.state, RecipientState::Bounced | RecipientState::Expired))
        .collect();
    if failed.is_empty() {
        return Err(RelayError::NothingToReport);
    }
    let mta = clean(reporting_mta);
    let sender = clean(&env.sender);
    let boundary = format!("{}/{mta}", MessageId::generate());
    let date = rfc2822(now);
    let mut m = String::with_capacity(2048);
    // Header (RFC 5322) with Auto-Submitted (RFC 3834 §5) so responders stay quiet.
    let _ = write!(
        m,
        "From: Mail Delivery System <MAILER-DAEMON@{mta}>\r\n\
         To: <{sender}>\r\n\
         Subject: Undelivered Mail Returned to Sender\r\n\
         Date: {date}\r\n\
         Message-ID: <{}@{mta}>\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status;\r\n\
         \tboundary=\"{boundary}\"\r\n\
         \r\n\
         This is a MIME-encapsulated message.\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\
         \r\n\
         This is the mail system at host {mta}.\r\n\
         \r\n\
         Your message could not be delivered to one or more recipients.\r\n\
         \r\n",
        MessageId::generate()
    );
    for r in &failed {
        let why = match (&r.state, &r.last) {
            (RecipientState::Expired, _) => "delivery time expired".to_owned(),
            (_, Some(d)) => clean(&d.text),
            _ => "permanent failure".to_owned(),
        };
        let _ = write!(m, "<{}>: {why}\r\n", clean(&r.address));
    }
    // Per-message fields (RFC 3464 §2.2).
    let _ = write!(
        m,
        "\r\n--{boundary}\r\n\
         Content-Type: message/delivery-status\r\n\
         \r\n\
         Reporting-MTA: dns; {mta}\r\n\
         X-Spool-Id: {}\r\n\
         Arrival-Date: {}\r\n",
        env.id,
        rfc2822(env.arrival)
    );
    // Per-recipient fields (RFC 3464 §2.3), each group preceded by a blank line.
    for r in &failed {
        let status = status_of(r.state, r.last.as_ref());
        let _ = write!(
            m,
            "\r\nFinal-Recipient: rfc822; {}\r\nAction: failed\r\nStatus: {}.{}.{}\r\n",
            clean(&r.address),
            status.0,
            status.1,
            status.2
        );
        if let Some(d) = &r.last {
            if let Some(remote) = &d.remote_mta {
                let _ = write!(m, "Remote-MTA: dns; {}\r\n", clean(remote));
            }
            if d.code != 0 {
                let _ = write!(
                    m,
                    "Diagnostic-Code: smtp; {} {}\r\n",
                    d.code,
                    clean(&d.text)
                );
            }
        }
        if let Some(t) = r.last_attempt {
            let _ = write!(m, "Last-Attempt-Date: {}\r\n", rfc2822(t));
        }
    }
    let _ = write!(
        m,
        "\r\n--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n"
    );
    let mut message = m.into_bytes();
    message.extend_from_slice(original_header(original));
    if !message.ends_with(b"\r\n") {
        message.extend_from_slice(b"\r\n");
    }
    message.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    Ok(Dsn {
        sender: String::new(),
        recipient: env.sender.clone(),
        message,
    })
}

/// The RFC 3463 status for a failed recipient: the last reply's enhanced code if it had one,
/// `4.4.7` (delivery time expired) for an expiry without one, else `5.0.0`.
fn status_of(state: RecipientState, last: Option<&Diagnostic>) -> (u8, u16, u16) {
    match (state, last.and_then(|d| d.status)) {
        (_, Some(s)) => s,
        (RecipientState::Expired, None) => (4, 4, 7),
        _ => match last.map(|d| d.code / 100) {
            Some(4) => (4, 0, 0),
            _ => (5, 0, 0),
        },
    }
}

/// The original message's header block (up to and excluding the blank line), bounded.
fn original_header(original: &[u8]) -> &[u8] {
    let end = original
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 2)
        .or_else(|| {
            original
                .windows(2)
                .position(|w| w == b"\n\n")
                .map(|p| p + 1)
        })
        .unwrap_or(original.len());
    let mut end = end.min(MAX_ORIGINAL_HEADER);
    // Keep whole lines only when truncating.
    if end < original.len() && end == MAX_ORIGINAL_HEADER {
        end = original[..end]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1);
    }
    &original[..end]
}

/// A header-safe copy: printable ASCII only (no CR/LF injection from hostile peers), bounded.
fn clean(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(998 - 40)
        .collect()
}

fn rfc2822(t: SystemTime) -> String {
    OffsetDateTime::from(t)
        .format(&Rfc2822)
        .unwrap_or_else(|_| "Thu, 01 Jan 1970 00:00:00 +0000".to_owned())
}

#[cfg(test)]
mod tests;
