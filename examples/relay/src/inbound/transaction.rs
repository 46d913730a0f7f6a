//! The SMTP mail transaction of one inbound connection, sans-IO (RFC 5321 §3.3, §4.1.1).
//!
//! [`Transaction`] decides the reply to MAIL, RCPT, DATA, RSET, VRFY and HELP from the
//! connection's mail flow policy (relay control, limits) and the transaction state; the tokio
//! session only carries bytes. Replies carry RFC 3463 enhanced status codes (RFC 2034).

use smtp_proto::{MAIL_BODY_BINARYMIME, MAIL_REQUIRETLS, MAIL_SMTPUTF8};

use super::domains::DomainSet;

/// Longest reverse-path or forward-path accepted, in octets (RFC 5321 §4.5.3.1.3).
pub const MAX_PATH_LEN: usize = 256;
/// Longest local part accepted, in octets (RFC 5321 §4.5.3.1.1).
pub const MAX_LOCAL_PART_LEN: usize = 64;

/// Whether the client may send to any domain, or only to the relay's own domains
/// (mail flow policy behavior `relay` vs `accept`, seed "Enabling TLS on a Listener's HAT").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RelayControl {
    /// `accept`: recipients in the local domains or in a domain with an SMTP route only.
    #[default]
    LocalOnly,
    /// `relay`: any recipient domain.
    AnyDomain,
}

/// Limits of one connection (the policy's limits, capped by the global ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransactionLimits {
    /// Largest message accepted, in octets (advertised as `SIZE`, RFC 1870).
    pub max_message_size: u64,
    /// Most recipients in one message (RFC 5321 §4.5.3.1.8: at least 100 should be accepted).
    pub max_recipients: u32,
    /// Most messages in one connection.
    pub max_messages: u32,
}

/// A reply to send: code and single-line text (starting with the enhanced status code).
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Reply {
    /// The three-digit code.
    pub code: u16,
    /// The text, e.g. `2.1.0 Sender OK`.
    pub text: String,
    /// Whether the connection is closed after this reply.
    pub close: bool,
}

impl Reply {
    /// A reply that keeps the connection open.
    pub fn new(code: u16, text: impl Into<String>) -> Self {
        Self {
            code,
            text: text.into(),
            close: false,
        }
    }

    fn closing(code: u16, text: impl Into<String>) -> Self {
        Self {
            close: true,
            ..Self::new(code, text)
        }
    }

    /// Whether the reply is positive (2xx or 3xx).
    #[must_use]
    pub fn is_positive(&self) -> bool {
        self.code < 400
    }
}

/// Where the transaction stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    /// No MAIL yet (or after RSET / a finished message).
    #[default]
    Idle,
    /// MAIL accepted.
    Mail,
    /// At least one RCPT accepted.
    Rcpt,
    /// `354` sent; the session is reading the message.
    Data,
}

/// The envelope collected by a transaction, handed to the spool at the end of DATA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collected {
    /// The reverse-path (empty for `<>`).
    pub sender: String,
    /// The accepted forward-paths.
    pub recipients: Vec<String>,
    /// `MAIL FROM:<..> REQUIRETLS` was accepted (RFC 8689 §4.1): the flag applies to the whole
    /// message.
    pub requiretls: bool,
}

/// The mail transaction state machine of one connection.
///
/// ```
/// use relay::inbound::{
///     DomainSet, RelayControl, Transaction, TransactionLimits,
/// };
/// let limits = TransactionLimits { max_message_size: 1000, max_recipients: 2, max_messages: 1 };
/// let mut t = Transaction::new(limits, RelayControl::LocalOnly, DomainSet::new(["example.org"])?);
/// assert_eq!(t.mail("a@example.net", 0, 0).code, 250);
/// assert_eq!(t.rcpt("b@example.org").code, 250);
/// assert_eq!(t.rcpt("b@elsewhere.test").code, 550); // relay denied
/// assert_eq!(t.data().code, 354);
/// # Ok::<(), relay::inbound::InboundError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Transaction {
    limits: TransactionLimits,
    control: RelayControl,
    accepted_domains: DomainSet,
    state: State,
    sender: String,
    recipients: Vec<String>,
    requiretls: bool,
    /// The session is inside TLS (REQUIRETLS is accepted only there, RFC 8689 §4.1).
    tls: bool,
    messages: u32,
}

impl Transaction {
    /// A transaction machine for a connection.
    #[must_use]
    pub fn new(
        limits: TransactionLimits,
        control: RelayControl,
        accepted_domains: DomainSet,
    ) -> Self {
        Self {
            limits,
            control,
            accepted_domains,
            state: State::Idle,
            sender: String::new(),
            recipients: Vec::new(),
            requiretls: false,
            tls: false,
            messages: 0,
        }
    }

    /// The session is now inside TLS (after the STARTTLS handshake).
    pub fn set_tls(&mut self) {
        self.tls = true;
    }

    /// The connection's limits.
    #[must_use]
    pub fn limits(&self) -> TransactionLimits {
        self.limits
    }

    /// Messages accepted on this connection so far.
    #[must_use]
    pub fn messages(&self) -> u32 {
        self.messages
    }

    /// Whether a transaction is open (MAIL accepted, not yet finished or reset).
    #[must_use]
    pub fn in_transaction(&self) -> bool {
        self.state != State::Idle
    }

    /// EHLO/HELO and STARTTLS reset the transaction (RFC 5321 §4.1.4, RFC 3207 §4.2).
    pub fn reset(&mut self) {
        self.state = State::Idle;
        self.sender.clear();
        self.recipients.clear();
        self.requiretls = false;
    }

    /// `RSET` (RFC 5321 §4.1.1.5).
    pub fn rset(&mut self) -> Reply {
        self.reset();
        Reply::new(250, "2.0.0 Reset OK")
    }

    /// `MAIL FROM` (RFC 5321 §4.1.1.2): the reverse-path (empty for `<>`), the declared
    /// `SIZE` (0 if none) and smtp-proto's `MAIL_*` parameter flags.
    pub fn mail(&mut self, address: &str, declared_size: u64, flags: u64) -> Reply {
        if self.state != State::Idle {
            return Reply::new(503, "5.5.1 Nested MAIL command");
        }
        if self.messages >= self.limits.max_messages {
            return Reply::closing(
                421,
                "4.7.0 Too many messages in this connection, try again later",
            );
        }
        // Extensions not advertised in EHLO (RFC 5321 §4.1.1.11: 555).
        if flags & (MAIL_SMTPUTF8 | MAIL_BODY_BINARYMIME) != 0 {
            return Reply::new(555, "5.5.4 SMTPUTF8 and BINARYMIME are not supported");
        }
        // RFC 8689 §4.1: REQUIRETLS is offered only inside TLS; outside it the client must
        // issue STARTTLS first (RFC 3207 §4: 530; RFC 3463 5.7.10, "encryption needed").
        let requiretls = flags & MAIL_REQUIRETLS != 0;
        if requiretls && !self.tls {
            return Reply::new(
                530,
                "5.7.10 REQUIRETLS needs a TLS session: issue STARTTLS first",
            );
        }
        // RFC 1870 §6.2: a declared size above the limit is refused at MAIL.
        if declared_size > self.limits.max_message_size {
            return Reply::new(552, "5.3.4 Message size exceeds fixed maximum message size");
        }
        if !address.is_empty()
            && let Err(r) = check_path(address, "5.1.7", "sender")
        {
            return r;
        }
        self.sender = address.to_owned();
        self.requiretls = requiretls;
        self.state = State::Mail;
        Reply::new(250, "2.1.0 Sender OK")
    }

    /// `RCPT TO` (RFC 5321 §4.1.1.3), with relay control and the recipient limit.
    pub fn rcpt(&mut self, address: &str) -> Reply {
        if self.state == State::Idle {
            return Reply::new(503, "5.5.1 Need MAIL before RCPT");
        }
        if self.recipients.len() >= self.limits.max_recipients as usize {
            // RFC 5321 §4.5.3.1.10: 452, the client sends the rest in another transaction.
            return Reply::new(452, "4.5.3 Too many recipients");
        }
        if let Err(r) = check_path(address, "5.1.3", "recipient") {
            return r;
        }
        let domain = domain_of(address);
        if self.control == RelayControl::LocalOnly && !self.accepted_domains.contains(domain) {
            return Reply::new(550, "5.7.1 Relaying denied");
        }
        self.recipients.push(address.to_owned());
        self.state = State::Rcpt;
        Reply::new(250, "2.1.5 Recipient OK")
    }

    /// `DATA` (RFC 5321 §4.1.1.4): `354` moves to reading the message.
    pub fn data(&mut self) -> Reply {
        match self.state {
            State::Idle => Reply::new(503, "5.5.1 Need MAIL command"),
            State::Mail => Reply::new(554, "5.5.1 No valid recipients"),
            State::Data => Reply::new(503, "5.5.1 Already in DATA"),
            State::Rcpt => {
                self.state = State::Data;
                Reply::new(354, "Start mail input; end with <CRLF>.<CRLF>")
            }
        }
    }

    /// The end of DATA: hands out the envelope and resets. `accepted` counts the message
    /// against the per-connection limit.
    pub fn finish(&mut self, accepted: bool) -> Collected {
        let c = Collected {
            sender: std::mem::take(&mut self.sender),
            recipients: std::mem::take(&mut self.recipients),
            requiretls: self.requiretls,
        };
        if accepted {
            self.messages += 1;
        }
        self.reset();
        c
    }

    /// `NOOP` (RFC 5321 §4.1.1.9), should it reach the application.
    pub fn noop(&self) -> Reply {
        Reply::new(250, "2.0.0 OK")
    }

    /// `VRFY`: 252, we do not disclose mailboxes (RFC 5321 §3.5.3, §7.3).
    pub fn vrfy(&self) -> Reply {
        Reply::new(
            252,
            "2.5.2 Cannot VRFY user, but will accept message and attempt delivery",
        )
    }

    /// `HELP` (RFC 5321 §4.1.1.8).
    pub fn help(&self) -> Reply {
        Reply::new(
            214,
            "2.0.0 Commands: EHLO HELO STARTTLS MAIL RCPT DATA RSET NOOP VRFY HELP QUIT",
        )
    }

    /// Commands that exist but are not offered here (EXPN, ETRN, BDAT, AUTH, ...).
    pub fn not_implemented(&self, name: &str) -> Reply {
        Reply::new(502, format!("5.5.1 {name} not implemented"))
    }
}

/// The domain of a path (after the last `@`).
#[must_use]
pub(crate) fn domain_of(address: &str) -> &str {
    address.rsplit_once('@').map_or("", |(_, d)| d)
}

/// Checks a path's shape: length limits, a local part and a domain (RFC 5321 §4.1.2,
/// §4.5.3.1), no control characters or spaces.
fn check_path(address: &str, status: &str, what: &str) -> Result<(), Reply> {
    if address.len() > MAX_PATH_LEN {
        return Err(Reply::new(
            501,
            format!("5.1.3 The {what} address is too long"),
        ));
    }
    let Some((local, domain)) = address.rsplit_once('@') else {
        return Err(Reply::new(
            550,
            format!("{status} The {what} address has no domain"),
        ));
    };
    if local.is_empty() || local.len() > MAX_LOCAL_PART_LEN {
        return Err(Reply::new(501, format!("{status} Bad {what} local part")));
    }
    if address.chars().any(|c| c.is_control() || c == ' ') || !valid_domain(domain) {
        return Err(Reply::new(
            501,
            format!("{status} Bad {what} address syntax"),
        ));
    }
    Ok(())
}

/// A domain name (letters, digits, `-`, `.`, `_`) or an address literal `[...]`.
fn valid_domain(d: &str) -> bool {
    if let Some(inner) = d.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_graphic() && b != b'[');
    }
    !d.is_empty()
        && d.len() <= 253
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}
