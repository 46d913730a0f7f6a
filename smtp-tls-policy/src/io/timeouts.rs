//! Timeouts (RFC 5321 §4.5.3.2).

use std::time::Duration;

/// Timeouts of the drivers. Defaults are RFC 5321 §4.5.3.2's: 5 minutes for the initial `220`
/// and for each command reply (EHLO, STARTTLS have no value of their own; Postfix uses 300 s for
/// both), 5 minutes server idle timeout; the TLS handshake gets the same 5 minutes.
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
