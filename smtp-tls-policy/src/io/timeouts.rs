//! Timeouts (RFC 5321 §4.5.3.2).

use std::time::Duration;

use tokio::time::Instant;

/// Timeouts of the drivers. Defaults are RFC 5321 §4.5.3.2's: 5 minutes for the initial `220`
/// and for each command reply (EHLO, STARTTLS have no value of their own; Postfix uses 300 s for
/// both), 5 minutes server idle timeout; the TLS handshake gets the same 5 minutes.
///
/// RFC 5321 §4.5.3.2 times a command's *reply*, so each timeout bounds a whole reply — all the
/// lines of a multi-line reply together ([`Deadline`]) — not each line: a peer dripping a
/// 64-line reply one line per 299 s cannot hold the connection for 64 × 300 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Timeouts {
    /// Waiting for the server's `220` greeting (§4.5.3.2.1).
    pub greeting: Duration,
    /// Waiting for the reply to a command (EHLO, HELO, STARTTLS, QUIT).
    pub command: Duration,
    /// The TLS handshake.
    pub handshake: Duration,
    /// Server side: waiting for the next command (§4.5.3.2.7).
    pub server_idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            greeting: Duration::from_secs(300),
            command: Duration::from_secs(300),
            handshake: Duration::from_secs(300),
            server_idle: Duration::from_secs(300),
        }
    }
}

impl Timeouts {
    /// The same timeout everywhere (tests, interactive checks).
    pub fn uniform(d: Duration) -> Self {
        Self {
            greeting: d,
            command: d,
            handshake: d,
            server_idle: d,
        }
    }
}

/// One deadline for a unit of work that takes several reads: a whole multi-line reply, a
/// command line, a DATA transfer (RFC 5321 §4.5.3.2 times replies and transfers, not reads).
///
/// The clock starts at the first read that has to wait (a reply that is already buffered
/// costs no clock read), and it is not reset by the lines that arrive in between.
///
/// ```
/// use std::time::Duration;
/// use smtp_tls_policy::io::{Deadline, LineReader};
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let (mut a, mut b) = tokio::io::duplex(64);
/// tokio::io::AsyncWriteExt::write_all(&mut b, b"250-first\r\n").await.unwrap();
/// let mut r = LineReader::new();
/// let mut reply = Deadline::new(Duration::from_millis(50));
/// assert_eq!(r.read_line_by(&mut a, &mut reply, "EHLO").await.unwrap(), b"250-first\r\n");
/// // The second line never comes: the reply's deadline, not a fresh one per line, expires.
/// assert!(r.read_line_by(&mut a, &mut reply, "EHLO").await.is_err());
/// # });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    budget: Duration,
    at: Option<Instant>,
}

impl Deadline {
    /// A deadline `budget` after the first read that has to wait.
    pub fn new(budget: Duration) -> Self {
        Self { budget, at: None }
    }

    /// A deadline `budget` from now.
    pub fn starting_now(budget: Duration) -> Self {
        Self {
            budget,
            at: Some(Instant::now() + budget),
        }
    }

    /// The time allowed in all.
    pub fn budget(&self) -> Duration {
        self.budget
    }

    /// The instant it expires, starting the clock if it has not started.
    pub fn instant(&mut self) -> Instant {
        let budget = self.budget;
        *self.at.get_or_insert_with(|| Instant::now() + budget)
    }
}
