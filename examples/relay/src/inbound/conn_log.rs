//! The one log line of an inbound connection (like Postfix's `disconnect from` line in the
//! maillog): everything an operator needs about the connection, emitted once when it ends,
//! on every path (also when the task is aborted at shutdown), with structured fields.
//!
//! Level INFO, or WARN when the connection's policy required TLS and the client never
//! established it (what smtp-tls-policy's gate logs as "closed without any successful
//! recipient") and when the listener's connection cap turned it away; details along the way
//! are DEBUG.

use std::net::SocketAddr;
use std::time::Instant;

use hat_match::{Behavior, ListenerTls};
use smtp_tls_policy::listener::ListenerEvent;

use crate::TlsInfo;

/// How a connection ended (the `result` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Still running (the task was dropped: shutdown grace expired).
    Aborted,
    /// The client sent QUIT.
    Quit,
    /// The client closed without QUIT.
    PeerClosed,
    /// A read or write timed out.
    Timeout,
    /// The TLS handshake failed.
    TlsFailed,
    /// A protocol or I/O error (detail in `error`).
    Error,
    /// The relay closed it after a reply (e.g. too many messages).
    ClosedByRelay,
    /// The relay is shutting down (`421` sent).
    Shutdown,
    /// The listener-wide connection cap (`421 4.3.2`).
    ListenerFull,
    /// A DNS lookup the HAT verdict depends on failed (`421 4.4.3`).
    DnsTempFail,
    /// `tcp-refuse`: closed without a greeting.
    Refused,
    /// `reject` or no sender group (`554`).
    Rejected,
    /// Over the per-address cap (`421 4.7.0`).
    TooManyFromIp,
    /// The greeting could not be written.
    GreetingFailed,
    /// The connection failed while reading a message (detail in `error`).
    DataFailed,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Aborted => "aborted",
            Self::Quit => "quit",
            Self::PeerClosed => "peer-closed",
            Self::Timeout => "timeout",
            Self::TlsFailed => "tls-failed",
            Self::Error => "error",
            Self::ClosedByRelay => "closed-by-relay",
            Self::Shutdown => "shutdown",
            Self::ListenerFull => "listener-full",
            Self::DnsTempFail => "dns-tempfail",
            Self::Refused => "tcp-refused",
            Self::Rejected => "rejected",
            Self::TooManyFromIp => "too-many-from-ip",
            Self::GreetingFailed => "greeting-failed",
            Self::DataFailed => "data-failed",
        }
    }
}

/// Commands seen on the connection (Postfix's `ehlo=1 mail=1 rcpt=1 data=1 quit=1`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counts {
    pub(crate) ehlo: u32,
    pub(crate) mail: u32,
    pub(crate) rcpt: u32,
    pub(crate) rcpt_ok: u32,
    pub(crate) data: u32,
    pub(crate) rset: u32,
    pub(crate) other: u32,
    pub(crate) messages: u32,
}

/// What is known of one connection; logs its line when dropped.
#[derive(Debug)]
pub(crate) struct ConnLog<'a> {
    listener: &'a str,
    peer: SocketAddr,
    start: Instant,
    pub(crate) from_ip: u32,
    pub(crate) sender_group: Option<&'a str>,
    pub(crate) policy: Option<&'a str>,
    pub(crate) matched_entry: Option<&'a str>,
    pub(crate) behavior: Option<Behavior>,
    pub(crate) tls_setting: Option<ListenerTls>,
    /// Forward-confirmed reverse name (only when the HAT needed the PTR lookup).
    pub(crate) ptr: Option<String>,
    /// The client's last EHLO/HELO name (sanitised by the session).
    pub(crate) helo: Option<String>,
    pub(crate) tls: Option<TlsInfo>,
    pub(crate) counts: Counts,
    pub(crate) outcome: Outcome,
    /// Error detail (not peer data beyond what the session already sanitised).
    pub(crate) detail: Option<String>,
    /// `530 Must issue a STARTTLS command first` replies sent.
    must_issue_starttls: u32,
    /// Recipients the gate let through without TLS (TLS-RPT mailboxes, TLS required).
    plaintext_tlsrpt: u32,
    /// Plaintext bytes pipelined after STARTTLS and discarded (RFC 3207 §4.2).
    discarded: usize,
    /// The gate's close event: TLS required, no successful recipient.
    closed_without_recipients: bool,
}

impl<'a> ConnLog<'a> {
    pub(crate) fn new(listener: &'a str, peer: SocketAddr) -> Self {
        Self {
            listener,
            peer,
            start: Instant::now(),
            from_ip: 0,
            sender_group: None,
            policy: None,
            matched_entry: None,
            behavior: None,
            tls_setting: None,
            ptr: None,
            helo: None,
            tls: None,
            counts: Counts::default(),
            outcome: Outcome::Aborted,
            detail: None,
            must_issue_starttls: 0,
            plaintext_tlsrpt: 0,
            discarded: 0,
            closed_without_recipients: false,
        }
    }

    /// Ends with `outcome` (and an error detail).
    pub(crate) fn end(&mut self, outcome: Outcome, detail: Option<String>) {
        self.outcome = outcome;
        self.detail = detail;
    }

    /// Takes in the gate's events (the session keeps them; they are read once, at the end).
    pub(crate) fn gate_events(&mut self, events: &[ListenerEvent]) {
        for e in events {
            match e {
                ListenerEvent::MustIssueStartTlsSent { .. } => self.must_issue_starttls += 1,
                ListenerEvent::PlaintextRecipientAllowed { .. } => self.plaintext_tlsrpt += 1,
                ListenerEvent::PipelinedPlaintextDiscarded { bytes } => self.discarded += bytes,
                ListenerEvent::ClosedWithoutRecipients { .. } => {
                    self.closed_without_recipients = true;
                }
                _ => {}
            }
        }
    }

    fn emit(&self) {
        let c = &self.counts;
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        // Like Postfix's `disconnect` line, counters that stayed 0 are left out (each field
        // costs formatting on every connection); `messages` is always there.
        let nz = |n: u32| (n > 0).then_some(n);
        let tls_protocol = self
            .tls
            .as_ref()
            .map(|t| tracing::field::display(&t.protocol));
        let tls_cipher = self
            .tls
            .as_ref()
            .map(|t| tracing::field::display(&t.cipher));
        // Words the relay chose (no peer data): written as they are, without quoting.
        let word = |w: &'static str| tracing::field::display(w);
        // TLS required and never established: the gate's warning (seed "Logging", condition 3);
        // not for a TLS-RPT report received without TLS, as allowed.
        let tls_not_used = self.tls_setting == Some(ListenerTls::Required)
            && self.tls.is_none()
            && self.plaintext_tlsrpt == 0;
        macro_rules! line {
            ($level:expr) => {
                tracing::event!(
                    target: "relay::connection",
                    $level,
                    listener = self.listener,
                    peer = %self.peer,
                    ptr = self.ptr.as_deref(),
                    helo = self.helo.as_deref(),
                    sender_group = self.sender_group.unwrap_or("-"),
                    policy = self.policy.unwrap_or("-"),
                    behavior = word(self.behavior.map_or("-", Behavior::as_str)),
                    tls = word(self.tls_setting.map_or("-", ListenerTls::as_str)),
                    matched_entry = self.matched_entry,
                    from_ip = self.from_ip,
                    tls_protocol,
                    tls_cipher,
                    result = word(self.outcome.as_str()),
                    error = self.detail.as_deref(),
                    ehlo = nz(c.ehlo),
                    mail = nz(c.mail),
                    rcpt = nz(c.rcpt),
                    rcpt_ok = nz(c.rcpt_ok),
                    data = nz(c.data),
                    rset = nz(c.rset),
                    other = nz(c.other),
                    messages = c.messages,
                    must_issue_starttls = nz(self.must_issue_starttls),
                    plaintext_tlsrpt_rcpt = nz(self.plaintext_tlsrpt),
                    discarded_bytes = (self.discarded > 0).then_some(self.discarded),
                    closed_without_recipients = self.closed_without_recipients.then_some(true),
                    duration_ms = ms,
                    "disconnect"
                )
            };
        }
        let warn =
            (tls_not_used && self.outcome != Outcome::Rejected && self.outcome != Outcome::Refused)
                || self.outcome == Outcome::ListenerFull;
        if warn {
            line!(tracing::Level::WARN);
        } else {
            line!(tracing::Level::INFO);
        }
    }
}

impl Drop for ConnLog<'_> {
    fn drop(&mut self) {
        self.emit();
    }
}
