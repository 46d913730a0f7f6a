//! Tokio STARTTLS drivers (feature `tokio`): thin I/O layers over the sans-IO [`crate::listener`]
//! gate and [`crate::delivery`] machine.
//!
//! - Listener side: [`ServerSession`] runs one inbound connection's SMTP command loop through the
//!   gate. It answers EHLO/HELO/NOOP/QUIT itself, enforces `530`, performs STARTTLS (discarding
//!   pipelined plaintext, CVE-2011-0411) and hands every other command to the application, which
//!   answers with [`ServerSession::reply`] — a mail server builds its transaction on it.
//! - Delivery side: [`negotiate`] runs greeting, EHLO (HELO fallback), STARTTLS, handshake and the
//!   second EHLO as the [`crate::delivery::DeliveryAttempt`] directs, and returns the decision, a
//!   [`Transcript`] and the connection to deliver over (TLS or, where the policy allows, plain).
//!
//! Every read is bounded by a line-length limit and a timeout ([`Timeouts`], RFC 5321 §4.5.3.2);
//! a multi-line reply is bounded as a whole ([`Deadline`]), not line by line.

mod client;
mod held;
mod lines;
mod server;
mod stream;
mod timeouts;

pub use client::{
    ClientConnection, ClientOutcome, ClientSettings, TlsSummary, Transcript, negotiate,
};
pub use held::HeldWrites;
pub use lines::LineReader;
pub use server::{ServerSession, ServerSessionConfig, SessionCommand};
pub use stream::SmtpStream;
pub use timeouts::{Deadline, Timeouts};
