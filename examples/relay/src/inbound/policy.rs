//! From a HAT verdict to what one connection may do (sans-IO): behavior, TLS setting, banner
//! and the effective limits (policy limits capped by the global ones).

use hat_match::{Behavior, HatVerdict, ListenerTls};

use super::limits::InboundLimits;
use super::transaction::{RelayControl, TransactionLimits};

/// What happens at connect time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[must_use]
#[non_exhaustive]
pub enum ConnectAction {
    /// Close without a greeting (`tcp-refuse`).
    #[default]
    TcpRefuse,
    /// `554` greeting, then close (`reject`, or no sender group matched: fail closed).
    Reject,
    /// Too many connections from this address: `421`, then close.
    TooManyConnections,
    /// Run the SMTP session.
    Serve(RelayControl),
}

/// The owned outcome of the HAT for one connection (the verdict borrows the table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionPolicy {
    /// The sender group (`None`: no group matched).
    pub sender_group: Option<String>,
    /// The mail flow policy's name.
    pub policy: Option<String>,
    /// The behavior (`reject` when no group matched).
    pub behavior: Behavior,
    /// The STARTTLS setting for the gate.
    pub tls: ListenerTls,
    /// The policy's banner text.
    pub banner: Option<String>,
    /// Effective message limits.
    pub limits: TransactionLimits,
    /// Effective concurrent connections per IP.
    pub max_connections_per_ip: u32,
}

impl ConnectionPolicy {
    /// Reads the verdict and caps its limits with the global ones.
    pub fn from_verdict(verdict: &HatVerdict<'_>, global: &InboundLimits) -> Self {
        let policy = verdict.policy();
        let l = policy.map(|p| *p.limits()).unwrap_or_default();
        let cap32 = |v: Option<std::num::NonZeroU32>, g: u32| v.map_or(g, |v| v.get().min(g));
        Self {
            sender_group: verdict.sender_group().map(str::to_owned),
            policy: policy.map(|p| p.name().to_owned()),
            behavior: verdict.behavior(),
            // No policy (no group matched): the seed's default, `No`.
            tls: verdict.tls().unwrap_or_default(),
            banner: policy.and_then(|p| p.banner()).map(str::to_owned),
            limits: TransactionLimits {
                max_message_size: l.max_message_size.map_or(global.max_message_size, |v| {
                    v.get().min(global.max_message_size)
                }),
                max_recipients: cap32(
                    l.max_recipients_per_message,
                    global.max_recipients_per_message,
                ),
                max_messages: cap32(
                    l.max_messages_per_connection,
                    global.max_messages_per_connection,
                ),
            },
            max_connections_per_ip: cap32(
                l.max_concurrent_connections_per_ip,
                global.max_connections_per_ip,
            ),
        }
    }

    /// What to do with a connection that is the `nth_from_ip` open one from its address.
    pub fn connect_action(&self, nth_from_ip: u32) -> ConnectAction {
        match self.behavior {
            Behavior::TcpRefuse => ConnectAction::TcpRefuse,
            Behavior::Accept | Behavior::Relay if nth_from_ip > self.max_connections_per_ip => {
                ConnectAction::TooManyConnections
            }
            Behavior::Accept => ConnectAction::Serve(RelayControl::LocalOnly),
            Behavior::Relay => ConnectAction::Serve(RelayControl::AnyDomain),
            // `continue` can never win; reject (and anything new) fails closed.
            _ => ConnectAction::Reject,
        }
    }
}
