//! The effective configuration, as `relay --check-config` prints it.

use std::net::SocketAddr;
use std::path::Path;

use serde::Serialize;

use super::{ListenerConfig, LogSection, RelayConfig, SpoolSection, TlsSection};
use crate::relay::inbound::InboundLimits;

/// The effective configuration as printed by `relay --check-config` (TOML or JSON): every
/// section with its defaults filled in and paths resolved.
#[derive(Debug, Serialize)]
pub struct EffectiveConfig<'a> {
    /// The listeners.
    pub listener: &'a [ListenerConfig],
    /// The spool.
    pub spool: &'a SpoolSection,
    /// Limits.
    pub limits: &'a InboundLimits,
    /// TLS.
    pub tls: &'a TlsSection,
    /// Logging.
    pub log: &'a LogSection,
    /// Delivery.
    pub delivery: DeliveryView<'a>,
}

/// The `[delivery]` table for printing (the outbound half's `OutboundConfig`).
#[derive(Debug, Serialize)]
pub struct DeliveryView<'a> {
    ehlo_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    destination_controls: Option<&'a Path>,
    #[serde(skip_serializing_if = "Option::is_none")]
    outgoing_certificate: Option<&'a str>,
    max_connections_per_destination: usize,
    max_messages_per_connection: usize,
    connect_timeout_secs: u64,
    local_domains: &'a [String],
    maildir: &'a Path,
    resolver: ResolverView<'a>,
    retry: RetryView,
    alerts: AlertView<'a>,
    route: Vec<RouteView<'a>>,
}

#[derive(Debug, Serialize)]
struct ResolverView<'a> {
    mode: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    address: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trust_anchor: Option<&'a Path>,
}

#[derive(Debug, Serialize)]
struct RetryView {
    initial_secs: u64,
    max_backoff_secs: u64,
    max_lifetime_secs: u64,
}

#[derive(Debug, Serialize)]
struct AlertView<'a> {
    recipients: &'a [String],
    min_interval_secs: u64,
}

#[derive(Debug, Serialize)]
struct RouteView<'a> {
    domain: &'a str,
    hosts: &'a [String],
}

impl<'a> EffectiveConfig<'a> {
    pub(super) fn new(c: &'a RelayConfig) -> Self {
        use crate::relay::outbound::ResolverMode;
        let d = &c.delivery;
        let mode = match d.resolver.mode {
            ResolverMode::System => "system",
            ResolverMode::Validating => "validating",
            ResolverMode::TrustAd => "trust-ad",
        };
        Self {
            listener: &c.listeners,
            spool: &c.spool,
            limits: &c.limits,
            tls: &c.tls,
            log: &c.log,
            delivery: DeliveryView {
                ehlo_name: &d.ehlo_name,
                destination_controls: d.destination_controls.as_deref(),
                outgoing_certificate: d.outgoing_certificate.as_deref(),
                max_connections_per_destination: d.max_connections_per_destination,
                max_messages_per_connection: d.max_messages_per_connection,
                connect_timeout_secs: d.connect_timeout_secs,
                local_domains: &d.local_domains,
                maildir: &d.maildir,
                resolver: ResolverView {
                    mode,
                    address: d.resolver.address,
                    trust_anchor: d.resolver.trust_anchor.as_deref(),
                },
                retry: RetryView {
                    initial_secs: d.retry.initial_secs,
                    max_backoff_secs: d.retry.max_backoff_secs,
                    max_lifetime_secs: d.retry.max_lifetime_secs,
                },
                alerts: AlertView {
                    recipients: &d.alerts.recipients,
                    min_interval_secs: d.alerts.min_interval_secs,
                },
                route: d
                    .routes
                    .iter()
                    .map(|r| RouteView {
                        domain: &r.domain,
                        hosts: &r.hosts,
                    })
                    .collect(),
            },
        }
    }

    /// As TOML.
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string(self)
    }

    /// As pretty JSON.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(self)
    }
}
