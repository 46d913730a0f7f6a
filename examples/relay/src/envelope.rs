//! The SMTP envelope of a spooled message, with per-recipient delivery state.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Longest message id accepted ([`MessageId::parse`]); ids become file names.
pub const MAX_ID_LEN: usize = 64;

/// A spool message id: lower-case hex digits and `-`, at most [`MAX_ID_LEN`] bytes, so it is
/// always a safe file name.
///
/// ```
/// use relay::MessageId;
/// let id = MessageId::generate();
/// assert_eq!(MessageId::parse(id.as_str()), Some(id.clone()));
/// assert_eq!(MessageId::parse("../etc/passwd"), None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MessageId(String);

static COUNTER: AtomicU64 = AtomicU64::new(0);
/// The process id, asked once (`std::process::id` is a `getpid` syscall per call).
static PID: std::sync::LazyLock<u32> = std::sync::LazyLock::new(std::process::id);

impl MessageId {
    /// A fresh id: arrival time in microseconds, process id, a per-process counter and 32 random
    /// bits (unique across restarts and concurrent processes).
    #[must_use]
    pub fn generate() -> Self {
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros());
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        Self(format!(
            "{micros:x}-{:x}-{n:x}-{:08x}",
            *PID,
            fastrand::u32(..)
        ))
    }

    /// Parses an id, accepting only what [`MessageId::generate`] could produce.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        let ok = !s.is_empty()
            && s.len() <= MAX_ID_LEN
            && s.bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f' | b'-'));
        ok.then(|| Self(s.to_owned()))
    }

    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for MessageId {
    type Error = &'static str;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s).ok_or("invalid message id")
    }
}

impl From<MessageId> for String {
    fn from(id: MessageId) -> Self {
        id.0
    }
}

/// Where a recipient stands. `#[default]` is `Pending`: nothing is assumed delivered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum RecipientState {
    /// Not yet delivered; will be (re)tried.
    #[default]
    Pending,
    /// The next hop accepted it (`250` after DATA). Never tried again.
    Delivered,
    /// Permanently refused (`5xx`); a DSN is owed to the sender.
    Bounced,
    /// Still undelivered after the maximum queue lifetime; a DSN is owed to the sender.
    Expired,
}

impl RecipientState {
    /// Whether no further delivery attempt will be made.
    #[must_use]
    pub fn is_final(self) -> bool {
        !matches!(self, Self::Pending)
    }
}

/// An SMTP reply (or local reason) recorded for a recipient's last attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    /// The three-digit reply code (RFC 5321 §4.2); `0` for a local failure (no reply).
    pub code: u16,
    /// The RFC 3463 enhanced status code (`class.subject.detail`), when known.
    pub status: Option<(u8, u16, u16)>,
    /// The reply text (or local reason), one line.
    pub text: String,
    /// The remote MTA that answered, when there was one.
    pub remote_mta: Option<String>,
}

/// One envelope recipient (RFC 5321 `RCPT TO`) and its delivery state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    /// The forward-path mailbox, without angle brackets.
    pub address: String,
    /// Delivery state.
    pub state: RecipientState,
    /// Delivery attempts made for this recipient.
    pub attempts: u32,
    /// Earliest time of the next attempt (meaningful while `Pending`).
    pub next_attempt: SystemTime,
    /// The outcome of the last attempt, if any.
    pub last: Option<Diagnostic>,
    /// When the last attempt was made.
    pub last_attempt: Option<SystemTime>,
}

impl Recipient {
    /// The domain part of the address (after the last `@`), lower-cased; empty if none.
    #[must_use]
    pub fn domain(&self) -> String {
        self.address
            .rsplit_once('@')
            .map_or(String::new(), |(_, d)| d.to_ascii_lowercase())
    }
}

/// What is known of the TLS session the message arrived over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsInfo {
    /// Protocol version, e.g. `TLSv1_3`.
    pub protocol: String,
    /// Cipher suite name.
    pub cipher: String,
}

/// What the sender asked of TLS for the onward relay of a message (RFC 8689): the library's
/// type, the hop plan's input ([`smtp_tls_policy::HopPlan::with_tls_request`]). Stored with the
/// message in the spool under the same kebab-case names; absent in older records, which read
/// back as [`TlsRequest::Default`].
///
/// ```
/// use relay::{Envelope, TlsRequest};
/// let mut env = Envelope::new("a@example.org", ["b@example.net"], std::time::SystemTime::now());
/// assert!(!env.tls_request.requires_tls());
/// env.tls_request = TlsRequest::RequireTls;
/// assert!(env.tls_request.requires_tls() && !env.tls_request.tls_optional());
/// ```
pub use smtp_tls_policy::delivery::TlsRequest;

/// A message's envelope: sender, recipients with their state, provenance and retry bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The spool id (also the file name).
    pub id: MessageId,
    /// The reverse-path; empty for the null reverse-path `<>` (a bounce).
    pub sender: String,
    /// The recipients.
    pub recipients: Vec<Recipient>,
    /// When the message was accepted.
    pub arrival: SystemTime,
    /// Delivery attempts made for the message (any recipient).
    pub attempts: u32,
    /// Earliest next attempt over the pending recipients.
    pub next_attempt: SystemTime,
    /// The client it came from.
    pub source: Option<SocketAddr>,
    /// The client's EHLO/HELO name.
    pub helo: Option<String>,
    /// The inbound TLS session, if any.
    pub tls: Option<TlsInfo>,
    /// Body length in bytes (checked when the spool is recovered).
    pub body_len: u64,
    /// The sender's TLS request (RFC 8689); omitted from the record when nothing was asked.
    #[serde(default, skip_serializing_if = "TlsRequest::is_default")]
    pub tls_request: TlsRequest,
}

impl Envelope {
    /// A new envelope with a fresh id, every recipient pending and due now.
    ///
    /// ```
    /// use relay::Envelope;
    /// let env = Envelope::new("a@example.org", ["b@example.net"], std::time::SystemTime::now());
    /// assert_eq!(env.recipients.len(), 1);
    /// assert!(!env.is_bounce());
    /// ```
    #[must_use]
    pub fn new<I, S>(sender: &str, recipients: I, now: SystemTime) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            id: MessageId::generate(),
            sender: sender.to_owned(),
            recipients: recipients
                .into_iter()
                .map(|address| Recipient {
                    address: address.into(),
                    state: RecipientState::Pending,
                    attempts: 0,
                    next_attempt: now,
                    last: None,
                    last_attempt: None,
                })
                .collect(),
            arrival: now,
            attempts: 0,
            next_attempt: now,
            source: None,
            helo: None,
            tls: None,
            body_len: 0,
            tls_request: TlsRequest::Default,
        }
    }

    /// Whether the sender is the null reverse-path (the message is itself a bounce).
    #[must_use]
    pub fn is_bounce(&self) -> bool {
        self.sender.is_empty()
    }

    /// Whether every recipient has reached a final state.
    #[must_use]
    pub fn is_done(&self) -> bool {
        self.recipients.iter().all(|r| r.state.is_final())
    }

    /// Recomputes [`Envelope::next_attempt`] from the pending recipients.
    pub fn refresh_next_attempt(&mut self) {
        if let Some(t) = self
            .recipients
            .iter()
            .filter(|r| r.state == RecipientState::Pending)
            .map(|r| r.next_attempt)
            .min()
        {
            self.next_attempt = t;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Envelope, TlsRequest};

    /// A record written before the flag existed (no `tls_request` key) reads back as
    /// `Default`; a flagged one round-trips.
    #[test]
    fn tls_request_is_compatible_with_older_records() {
        let mut env = Envelope::new(
            "a@example.org",
            ["b@example.net"],
            std::time::SystemTime::now(),
        );
        let mut old = serde_json::to_value(&env).unwrap();
        assert!(old.get("tls_request").is_none());
        old.as_object_mut().unwrap().remove("tls_request");
        let back: Envelope = serde_json::from_value(old).unwrap();
        assert_eq!(back.tls_request, TlsRequest::Default);
        for t in [TlsRequest::RequireTls, TlsRequest::TlsOptional] {
            env.tls_request = t;
            let json = serde_json::to_string(&env).unwrap();
            let back: Envelope = serde_json::from_str(&json).unwrap();
            assert_eq!(back, env);
        }
        assert!(serde_json::from_str::<TlsRequest>(r#""maybe""#).is_err());
    }

    #[test]
    fn requiretls_takes_precedence_over_the_header() {
        assert_eq!(TlsRequest::from_receipt(true, true), TlsRequest::RequireTls);
        assert_eq!(
            TlsRequest::from_receipt(false, true),
            TlsRequest::TlsOptional
        );
        assert_eq!(TlsRequest::from_receipt(false, false), TlsRequest::Default);
    }
}
