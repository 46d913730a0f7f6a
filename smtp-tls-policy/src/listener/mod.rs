//! The listener STARTTLS gate (RFC 3207; seed "Enabling TLS on a Listener's HAT", Table 1).
//!
//! A [`Gate`] is a sans-IO state machine, one per inbound connection. The server feeds it each
//! command's [`CommandKind`](crate::smtp::CommandKind); it answers with a [`GateVerdict`]: let
//! the application handle the command, send a fixed refusal, or start TLS. It also records the
//! events the seed's "Logging" section asks for ([`ListenerEvent`]); the caller drains and logs
//! them.

mod events;
mod gate;
mod plaintext;
#[cfg(test)]
mod plaintext_tests;
#[cfg(test)]
mod tests;

pub use events::{CloseReason, ListenerEvent};
pub use gate::{Gate, GatePhase, GateReply, GateVerdict, ListenerCertificate, ListenerTls};
pub use plaintext::{InvalidMailbox, PlaintextRecipients};
