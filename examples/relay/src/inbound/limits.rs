//! The relay's global limits (`[limits]` in the configuration): caps over every mail flow
//! policy, RFC 5321 timeouts and the line-length limit.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Longest line the SMTP layer reads at all (smtp-tls-policy's bounded reader,
/// `smtp::MAX_LINE_LEN`); `max_line_length` may not exceed it.
pub const MAX_READABLE_LINE: u32 = 1024;

/// Global limits. A mail flow policy's limit applies when set, capped by the value here; the
/// value here applies when the policy sets none.
///
/// ```
/// use relay::inbound::InboundLimits;
/// let l = InboundLimits::default();
/// assert_eq!(l.command_timeout_secs, 300); // RFC 5321 §4.5.3.2.7
/// assert_eq!(l.max_line_length, 1000);     // RFC 5321 §4.5.3.1.6
/// assert!(l.validate().is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct InboundLimits {
    /// Most simultaneous connections per listener (new ones get `421 4.3.2`).
    pub max_connections: u32,
    /// Default and cap of the policies' `max_concurrent_connections_per_ip`.
    pub max_connections_per_ip: u32,
    /// Default and cap of the policies' `max_message_size`, in octets (advertised in `SIZE`).
    pub max_message_size: u64,
    /// Default and cap of the policies' `max_recipients_per_message`.
    pub max_recipients_per_message: u32,
    /// Default and cap of the policies' `max_messages_per_connection`.
    pub max_messages_per_connection: u32,
    /// Waiting for the next command (RFC 5321 §4.5.3.2.7 server timeout: 5 minutes).
    pub command_timeout_secs: u64,
    /// The TLS handshake after `220 Ready to start TLS`.
    pub tls_handshake_timeout_secs: u64,
    /// Whole message transfer, `354` to the final `.` (each line also waits at most
    /// `command_timeout_secs`); bounds slow senders.
    pub data_timeout_secs: u64,
    /// Longest line of message text, CRLF included (RFC 5321 §4.5.3.1.6: 1000); at most
    /// [`MAX_READABLE_LINE`].
    pub max_line_length: u32,
    /// At shutdown, how long in-flight transactions may take to finish.
    pub shutdown_grace_secs: u64,
}

impl Default for InboundLimits {
    fn default() -> Self {
        Self {
            max_connections: 1000,
            max_connections_per_ip: 50,
            max_message_size: 50 << 20,
            max_recipients_per_message: 1000,
            max_messages_per_connection: 1000,
            command_timeout_secs: 300,
            tls_handshake_timeout_secs: 300,
            data_timeout_secs: 600,
            max_line_length: 1000,
            shutdown_grace_secs: 30,
        }
    }
}

impl InboundLimits {
    /// Checks the values: every limit at least 1, the line length within
    /// 512..=[`MAX_READABLE_LINE`]; returns the offending key and why.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let positive = [
            ("max_connections", u64::from(self.max_connections)),
            (
                "max_connections_per_ip",
                u64::from(self.max_connections_per_ip),
            ),
            ("max_message_size", self.max_message_size),
            (
                "max_recipients_per_message",
                u64::from(self.max_recipients_per_message),
            ),
            (
                "max_messages_per_connection",
                u64::from(self.max_messages_per_connection),
            ),
            ("command_timeout_secs", self.command_timeout_secs),
            (
                "tls_handshake_timeout_secs",
                self.tls_handshake_timeout_secs,
            ),
            ("data_timeout_secs", self.data_timeout_secs),
        ];
        for (key, v) in positive {
            if v == 0 {
                return Err((key, "must be at least 1".into()));
            }
        }
        if !(512..=MAX_READABLE_LINE).contains(&self.max_line_length) {
            return Err((
                "max_line_length",
                format!(
                    "must be between 512 and {MAX_READABLE_LINE} (RFC 5321 §4.5.3.1: 512 for \
                     commands, 1000 for text lines)"
                ),
            ));
        }
        Ok(())
    }

    /// The SMTP session timeouts.
    #[must_use]
    pub fn timeouts(&self) -> smtp_tls_policy::io::Timeouts {
        let mut t = smtp_tls_policy::io::Timeouts::uniform(secs(self.command_timeout_secs));
        t.handshake = secs(self.tls_handshake_timeout_secs);
        t
    }
}

pub(crate) fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}
