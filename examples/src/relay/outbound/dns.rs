//! Next hops of a destination domain from DNS: MX hosts with their addresses and DNSSEC facts,
//! through dane-verify's resolver adapter.
//!
//! - `validating` / `trust-ad`: DNSSEC statuses are used as they come: they feed DANE
//!   (RFC 7672) and the hosted-domain identity check ([`MxSecurity`]).
//! - `system`: MX records from the first `nameserver` of `/etc/resolv.conf` (or
//!   `delivery.resolver.address`), host addresses from the system's `getaddrinfo` (so
//!   `/etc/hosts` applies); the answers are used for routing only: every MX is treated as
//!   insecure and no host is DANE-protected.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use dane_verify::DnssecStatus;
use dane_verify::policy::{Action as DaneAction, DaneSetting, HostFacts, NoDaneReason};
use dane_verify::resolver::{DaneResolver, Limits, Validation};
use smtp_tls_policy::identity::MxSecurity;

use super::config::{ResolverConfig, ResolverMode, SMTP_PORT};
use super::error::OutboundError;

/// Longest time spent resolving one destination.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(30);

/// One MX host of a destination, ready to connect to.
#[derive(Debug, Clone)]
pub(crate) struct MxHost {
    /// The host name (or the domain itself when it has no MX record).
    pub(crate) name: String,
    /// Its addresses (A then AAAA).
    pub(crate) addresses: Vec<IpAddr>,
    /// Whether the MX answer was DNSSEC-secure.
    pub(crate) security: MxSecurity,
    /// dane-verify's RFC 7672 action for this host under the destination's DANE setting.
    pub(crate) dane: DaneAction,
}

/// Why a destination has no host to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NoRoute {
    /// Temporary: the lookup failed (SERVFAIL, timeout, bogus).
    Temporary(String),
    /// Permanent: null MX (RFC 7505) or no such domain.
    Permanent(String),
}

pub(crate) struct Dns {
    resolver: Arc<DaneResolver>,
    validating: bool,
}

impl Dns {
    pub(crate) fn new(config: &ResolverConfig) -> Result<Self, OutboundError> {
        let limits = Limits::default();
        let err = |e: dane_verify::Error| OutboundError::Resolver(e.to_string());
        let (validation, validating) = match config.mode {
            ResolverMode::TrustAd => {
                let resolver = config.address.ok_or(OutboundError::Missing {
                    key: "delivery.resolver.address",
                    because: "mode = \"trust-ad\"",
                })?;
                (Validation::TrustAd { resolver }, true)
            }
            ResolverMode::Validating => {
                let upstream = config.address.ok_or(OutboundError::Missing {
                    key: "delivery.resolver.address",
                    because: "mode = \"validating\"",
                })?;
                let anchors = config.trust_anchor.as_ref().ok_or(OutboundError::Missing {
                    key: "delivery.resolver.trust_anchor",
                    because: "mode = \"validating\"",
                })?;
                (
                    Validation::in_process_from_file(upstream, anchors).map_err(err)?,
                    true,
                )
            }
            ResolverMode::System => {
                let upstream = config.address.unwrap_or_else(system_nameserver);
                let validation = Validation::InProcess {
                    upstream,
                    trust_anchors: Arc::new(Default::default()),
                };
                (validation, false)
            }
        };
        let resolver = DaneResolver::new(validation, limits).map_err(err)?;
        Ok(Self {
            resolver: Arc::new(resolver),
            validating,
        })
    }

    /// The MX hosts of `domain` in preference order, each with its addresses and DANE action.
    pub(crate) async fn mx_hosts(
        &self,
        domain: &str,
        setting: DaneSetting,
    ) -> Result<Vec<MxHost>, NoRoute> {
        let facts =
            tokio::time::timeout(RESOLVE_TIMEOUT, self.resolver.destination(domain, MX_PORT))
                .await
                .map_err(|_| NoRoute::Temporary(format!("MX lookup of {domain} timed out")))?
                .map_err(|e| NoRoute::Temporary(format!("MX lookup of {domain}: {e}")))?;
        if let Some(f) = facts.mx_failure {
            return Err(NoRoute::Temporary(format!(
                "MX lookup of {domain} failed: {f:?} ({})",
                facts.mx_status.as_str()
            )));
        }
        if self.validating && facts.mx_status.is_failure() {
            return Err(NoRoute::Temporary(format!(
                "MX answer of {domain} is {}",
                facts.mx_status.as_str()
            )));
        }
        if facts.hosts.is_empty() {
            // RFC 7505 §3: a null MX (or NXDOMAIN) means the domain accepts no mail.
            return Err(NoRoute::Permanent(format!(
                "{domain} accepts no mail (null MX or no such domain)"
            )));
        }
        let mut out = Vec::with_capacity(facts.hosts.len());
        for h in &facts.hosts {
            let addresses = self.addresses(&h.mx_host).await;
            out.push(self.host(h, addresses, setting));
        }
        Ok(out)
    }

    fn host(&self, facts: &HostFacts, addresses: Vec<IpAddr>, setting: DaneSetting) -> MxHost {
        let (security, dane) = if self.validating {
            let security = if facts.mx_status == DnssecStatus::Secure {
                MxSecurity::Secure
            } else {
                MxSecurity::Insecure
            };
            (security, dane_verify::policy::decide(setting, facts))
        } else {
            // No validation: nothing is DNSSEC-secure; mandatory DANE cannot be satisfied.
            let dane = match setting {
                DaneSetting::None => DaneAction::ConfiguredTls(NoDaneReason::SettingNone),
                DaneSetting::Mandatory => DaneAction::Defer(
                    dane_verify::policy::DeferReason::DaneRequired(NoDaneReason::MxInsecure),
                ),
                _ => DaneAction::ConfiguredTls(NoDaneReason::MxInsecure),
            };
            (MxSecurity::Insecure, dane)
        };
        MxHost {
            name: facts.mx_host.clone(),
            addresses,
            security,
            dane,
        }
    }

    /// The addresses of a host name (route hosts, MX hosts).
    pub(crate) async fn addresses(&self, host: &str) -> Vec<IpAddr> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return vec![ip];
        }
        if !self.validating {
            // The system resolver proper (getaddrinfo: /etc/hosts, then DNS).
            let lookup = tokio::net::lookup_host((host, 0));
            return match tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
                Ok(Ok(addrs)) => {
                    let mut v: Vec<IpAddr> = addrs.map(|a| a.ip()).collect();
                    v.dedup();
                    v
                }
                _ => Vec::new(),
            };
        }
        match tokio::time::timeout(RESOLVE_TIMEOUT, self.resolver.addresses(host)).await {
            Ok(Ok(a)) => a,
            Ok(Err(e)) => {
                tracing::debug!(%host, error = %e, "address lookup failed");
                Vec::new()
            }
            Err(_) => Vec::new(),
        }
    }
}

/// The first `nameserver` of `/etc/resolv.conf`, or loopback.
fn system_nameserver() -> SocketAddr {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let ip = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .find_map(|rest| rest.trim().parse::<IpAddr>().ok())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]));
    SocketAddr::new(ip, 53)
}

/// The SMTP port for MX hosts.
pub(crate) const MX_PORT: u16 = SMTP_PORT;
