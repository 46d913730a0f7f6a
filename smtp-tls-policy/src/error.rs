//! The crate's error type: every failure is a typed variant carrying its context.

use std::fmt;

/// Errors of the listener gate, the delivery machine, the destination-control config and the
/// STARTTLS drivers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The destination-control configuration is invalid.
    #[error("{file}:{line}:{column}: {kind} (at `{text}`)")]
    DestinationConfig {
        /// File name (or a caller-chosen label for in-memory text).
        file: String,
        /// 1-based line of the offending text.
        line: usize,
        /// 1-based column of the offending text.
        column: usize,
        /// The offending text (truncated to 80 characters).
        text: String,
        /// What is wrong.
        kind: DestinationConfigErrorKind,
    },
    /// A line from the peer exceeded the line-length limit (RFC 5321 §4.5.3.1).
    #[error("SMTP line longer than {limit} octets")]
    LineTooLong {
        /// The limit in octets.
        limit: usize,
    },
    /// A multi-line reply had more lines than allowed.
    #[error("SMTP reply has more than {limit} lines")]
    TooManyReplyLines {
        /// The limit in lines.
        limit: usize,
    },
    /// A reply could not be parsed.
    #[error("malformed SMTP reply: {reason}")]
    MalformedReply {
        /// What was wrong.
        reason: &'static str,
    },
    /// The peer answered a command with an unexpected reply.
    #[error("unexpected SMTP reply {code} to {command}: {text}")]
    SmtpReply {
        /// The command that was answered (`greeting` for the banner).
        command: &'static str,
        /// The reply code.
        code: u16,
        /// The reply text (first line, truncated).
        text: String,
    },
    /// A command line from the client could not be parsed.
    #[error("malformed SMTP command: {reason}")]
    MalformedCommand {
        /// What was wrong.
        reason: &'static str,
    },
    /// The peer closed the connection.
    #[error("connection closed by peer during {phase}")]
    ConnectionClosed {
        /// Which phase of the dialogue was running.
        phase: &'static str,
    },
    /// A network read or write failed.
    #[error("I/O error during {phase}: {kind}")]
    Io {
        /// Which phase of the dialogue was running.
        phase: &'static str,
        /// The I/O error kind.
        kind: IoKind,
    },
    /// A timeout (RFC 5321 §4.5.3.2) expired.
    #[error("timeout after {seconds} s during {phase}")]
    Timeout {
        /// Which phase of the dialogue was running.
        phase: &'static str,
        /// The timeout in seconds.
        seconds: u64,
    },
    /// The TLS handshake failed on the listener side.
    #[error("TLS handshake failed: {detail}")]
    TlsHandshake {
        /// The TLS library's description.
        detail: String,
    },
    /// A driver was used in a way the state machine does not allow.
    #[error("SMTP state violation: {what}")]
    StateViolation {
        /// What was attempted.
        what: &'static str,
    },
}

/// A copyable description of an [`std::io::ErrorKind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoKind(pub std::io::ErrorKind);

impl fmt::Display for IoKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What is wrong in a destination-control configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DestinationConfigErrorKind {
    /// TOML syntax or schema error, with the TOML parser's message.
    #[error("{message}")]
    Toml {
        /// The TOML parser's message.
        message: String,
    },
    /// The key is not a valid domain or `.domain` parent.
    #[error("not a valid destination domain")]
    InvalidDomain,
    /// The same domain appears twice (after case folding / IDNA mapping).
    #[error("duplicate destination domain `{domain}`")]
    DuplicateDomain {
        /// The normalised domain.
        domain: String,
    },
    /// The default entry's TLS mode or DANE setting is `default`, which has nothing to inherit.
    #[error("the default entry cannot use `default`")]
    DefaultInDefaultEntry,
    /// An entry enables DANE but disables TLS.
    #[error("DANE `{dane}` needs TLS, but the entry sets tls = \"no\"")]
    DaneWithoutTls {
        /// The DANE setting written.
        dane: &'static str,
    },
    /// Too many entries.
    #[error("more than {limit} destination entries")]
    TooManyEntries {
        /// The limit.
        limit: usize,
    },
    /// The file is larger than the limit.
    #[error("configuration larger than {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
}
