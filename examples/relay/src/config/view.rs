//! The effective configuration, as `relay --check-config` prints it.

use std::net::SocketAddr;
use std::path::Path;

use serde::Serialize;

use super::{ListenerConfig, LogSection, RelayConfig, SpoolSection, TlsSection};
use crate::inbound::InboundLimits;
use crate::mta_sts_host::HttpsListenerConfig;

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
    /// The MTA-STS policy host's HTTPS listeners (absent when none).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub https_listener: &'a [HttpsListenerConfig],
    /// The MTA-STS policies served, with the TXT record to publish (absent when none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mta_sts_policy: Vec<MtaStsPolicyView>,
    /// `[state]`: the backend of the MTA-STS policy cache and the report counters (the Redis
    /// URL without its password).
    pub state: StateView<'a>,
    /// `[runtime]`: the threads in effect.
    pub runtime: RuntimeView,
}

/// `[runtime]` as in effect.
#[derive(Debug, Serialize)]
pub struct RuntimeView {
    /// Threads serving the SMTP listeners (the default or the configured number; 0 elsewhere
    /// than on Linux).
    listener_threads: usize,
    /// Where SMTP connections run.
    connections: String,
}

impl RuntimeView {
    fn new(c: &RelayConfig) -> Self {
        let n = c.listener_threads();
        Self {
            listener_threads: n,
            connections: match n {
                0 => "the shared multi-thread runtime".into(),
                n => format!(
                    "{n} current-thread runtimes, one SO_REUSEPORT socket each per listener"
                ),
            },
        }
    }
}

/// `[state]` as in effect.
#[derive(Debug, Serialize)]
pub struct StateView<'a> {
    #[serde(flatten)]
    config: &'a crate::state::StateConfig,
    /// Where the MTA-STS policies are cached.
    policy_cache: String,
    /// Where the TLS-RPT counters are kept.
    report_counters: String,
}

impl<'a> StateView<'a> {
    fn new(c: &'a RelayConfig) -> Self {
        use crate::state::Backend;
        let local = c.delivery.mta_sts.cache_dir().display().to_string();
        let (policy_cache, report_counters) = match (c.state.backend, &c.state.url) {
            (Backend::Redis, Some(url)) => (
                format!("Redis {url} (local copy in {local}, used while Redis is unreachable)"),
                format!("Redis {url} (buffered in memory while Redis is unreachable)"),
            ),
            _ => (
                format!("files in {local}"),
                format!(
                    "journal in {} (one relay process)",
                    c.state.dir_next_to(&c.spool.dir).display()
                ),
            ),
        };
        Self {
            config: &c.state,
            policy_cache,
            report_counters,
        }
    }
}

/// One `[[mta_sts_policy]]` as served: normalised, with its `id` and the DNS records it needs.
#[derive(Debug, Serialize)]
pub struct MtaStsPolicyView {
    domain: String,
    mode: &'static str,
    max_age: u64,
    mx: Vec<String>,
    /// The host that must point at an HTTPS listener.
    policy_host: String,
    /// The TXT record to publish.
    txt_record: String,
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
    max_concurrent_deliveries: usize,
    max_messages_per_connection: usize,
    max_session_secs: u64,
    connection_cache_secs: u64,
    mx_port: u16,
    connect_timeout_secs: u64,
    local_domains: &'a [String],
    maildir: &'a Path,
    resolver: ResolverView<'a>,
    retry: RetryView,
    alerts: AlertView<'a>,
    route: Vec<RouteView<'a>>,
    /// `[delivery.mta_sts]` (RFC 8461): discovery, cache, policy port, fetch limits, and the
    /// CA lists that verify policy hosts.
    mta_sts: MtaStsView<'a>,
}

/// `[delivery.mta_sts]` as in effect.
#[derive(Debug, Serialize)]
struct MtaStsView<'a> {
    #[serde(flatten)]
    config: &'a crate::outbound::MtaStsConfig,
    /// Which CA lists verify the policy hosts `mta-sts.DOMAIN`.
    policy_host_cas: &'static str,
}

/// `[delivery.resolver]` as in effect: for the DNSSEC modes the upstreams actually asked (the
/// system's nameservers when `address` is not set), the trust anchors and the probe.
#[derive(Debug, Serialize)]
struct ResolverView<'a> {
    mode: &'static str,
    /// What DNSSEC does in this mode (`validated in-process`, ...; `off` for `system`).
    dnssec: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    address: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trust_anchor: Option<&'a Path>,
    /// `validating`: the file or the built-in root anchors.
    #[serde(skip_serializing_if = "Option::is_none")]
    trust_anchor_source: Option<String>,
    /// `validating`, `trust-ad`: the resolvers asked.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    upstream: Vec<String>,
    /// Where `upstream` comes from: `delivery.resolver.address` or `/etc/resolv.conf`.
    #[serde(skip_serializing_if = "Option::is_none")]
    upstream_source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    probe_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    probe_interval_secs: Option<u64>,
}

impl<'a> ResolverView<'a> {
    fn new(r: &'a crate::outbound::ResolverConfig) -> Self {
        use crate::outbound::ResolverMode;
        let mut v = Self {
            mode: r.mode.as_str(),
            dnssec: "off: no validation, no DANE",
            address: r.address,
            trust_anchor: r.trust_anchor.as_deref(),
            trust_anchor_source: None,
            upstream: Vec::new(),
            upstream_source: None,
            probe_name: None,
            probe_interval_secs: None,
        };
        if r.mode == ResolverMode::System {
            return v;
        }
        v.probe_name = Some(&r.probe_name);
        v.probe_interval_secs = Some(r.probe_interval_secs);
        if r.mode == ResolverMode::TrustAd {
            v.dnssec = "AD bit of a validating resolver on loopback";
            v.upstream = r.address.iter().map(ToString::to_string).collect();
            v.upstream_source = Some("delivery.resolver.address".into());
            return v;
        }
        v.dnssec = "validated in-process";
        v.trust_anchor_source = Some(r.anchor_source());
        let (upstreams, source) = r.upstreams();
        v.upstream = upstreams.iter().map(ToString::to_string).collect();
        v.upstream_source = Some(crate::outbound::upstream_source_text(&source));
        v
    }
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
        let d = &c.delivery;
        // Validated when the configuration was loaded.
        let policies = crate::mta_sts_host::publish_all(&c.mta_sts_policies).unwrap_or_default();
        Self {
            state: StateView::new(c),
            runtime: RuntimeView::new(c),
            https_listener: &c.https_listeners,
            mta_sts_policy: policies
                .iter()
                .map(|p| MtaStsPolicyView {
                    domain: p.domain().to_owned(),
                    mode: p.mode().as_str(),
                    max_age: p.max_age(),
                    mx: p.mx().iter().map(ToString::to_string).collect(),
                    policy_host: p.policy_host(),
                    txt_record: p.txt_record(),
                })
                .collect(),
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
                max_concurrent_deliveries: d.max_concurrent_deliveries,
                max_messages_per_connection: d.max_messages_per_connection,
                max_session_secs: d.max_session_secs,
                connection_cache_secs: d.connection_cache_secs,
                mx_port: d.mx_port,
                connect_timeout_secs: d.connect_timeout_secs,
                local_domains: &d.local_domains,
                maildir: &d.maildir,
                resolver: ResolverView::new(&d.resolver),
                retry: RetryView {
                    initial_secs: d.retry.initial_secs,
                    max_backoff_secs: d.retry.max_backoff_secs,
                    max_lifetime_secs: d.retry.max_lifetime_secs,
                },
                alerts: AlertView {
                    recipients: &d.alerts.recipients,
                    min_interval_secs: d.alerts.min_interval_secs,
                },
                mta_sts: MtaStsView {
                    config: &d.mta_sts,
                    policy_host_cas: "the certificate store's enabled CA lists \
                                      (Mozilla's list without a store)",
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
