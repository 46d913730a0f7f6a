//! Next hops of a destination domain from DNS: MX hosts with their addresses and DNSSEC facts.
//!
//! - `validating` (the default) / `trust-ad`: through dane-verify's resolver adapter; DNSSEC
//!   statuses (dane-verify's [`HostFacts`]) feed the hop plan: DANE (RFC 7672) and the
//!   hosted-domain identity check.
//!   Validation must be **proven**: a background task probes `delivery.resolver.probe_name`
//!   at start-up and every `probe_interval_secs` ([`Dns::spawn_probe`]); lookups wait for the
//!   first probe (bounded by its timeout), never start-up. While validation is not proven
//!   (dane-verify's [`ValidationState`]) every status is `Indeterminate`, never `Insecure`:
//!   DANE-mandatory destinations defer; the others are delivered without DANE under their
//!   configured TLS mode (mail is not held because a validator is broken), and each change of
//!   state is logged once, at warn with what to fix.
//! - `system`: hickory-resolver configured from the system (`/etc/resolv.conf`, `/etc/hosts`),
//!   or asking only `delivery.resolver.address` when it is set. No DNSSEC: every host's facts
//!   are smtp-tls-policy's `facts_without_dnssec`, so no host is DANE-protected and mandatory
//!   DANE defers (logged at start-up). A
//!   resolver that strips DNSSEC records does not matter here. MX answers (RFC 5321 §5.1): MX
//!   hosts by preference; no MX record → the domain itself (implicit MX); null MX (RFC 7505 §3)
//!   or NXDOMAIN → bounce; SERVFAIL, REFUSED, timeout or network error → defer.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use dane_verify::DnssecStatus;
use dane_verify::resolver::{DaneResolver, Limits, UpstreamSource, ValidationState};
use dane_verify::{DaneAction, DaneSetting, HostFacts, decide};
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig as HickoryConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use smtp_tls_policy::plan::{HostSource, facts_without_dnssec};
use tokio::sync::watch;

use super::config::{ResolverConfig, ResolverMode, SMTP_PORT, resolver_error};
use super::error::OutboundError;

/// Longest time spent resolving one destination.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(30);
/// Most MX hosts of one destination that are tried (bounded work).
pub(crate) const MAX_MX_HOSTS: usize = 16;
/// Most addresses kept per host.
const MAX_ADDRESSES: usize = 16;
/// Per-query timeout of the system resolver when it asks an explicit nameserver.
const SYSTEM_QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// One MX host of a destination, ready to connect to.
#[derive(Debug, Clone)]
pub(crate) struct MxHost {
    /// The host name (or the domain itself when it has no MX record).
    pub(crate) name: String,
    /// Its addresses (A then AAAA).
    pub(crate) addresses: Vec<IpAddr>,
    /// An MX record, or the implicit MX (RFC 5321 §5.1: no MX record, the domain itself).
    pub(crate) source: HostSource,
    /// What DNS said about the host: DNSSEC statuses of the MX answer, the addresses and the
    /// TLSA lookup, the TLSA records (all insecure, TLSA not queried, in `system` mode).
    pub(crate) facts: HostFacts,
    /// dane-verify's RFC 7672 action for this host under the destination's DANE setting.
    pub(crate) action: DaneAction,
    /// The port to connect to (`delivery.mx_port`); its TLSA records were looked up at
    /// `_PORT._tcp.HOST` (RFC 7672 §3).
    pub(crate) port: u16,
}

/// Why a destination has no host to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NoRoute {
    /// Temporary: the lookup failed (SERVFAIL, timeout, bogus).
    Temporary(String),
    /// Permanent: null MX (RFC 7505) or no such domain.
    Permanent(String),
}

enum Backend {
    /// dane-verify's adapter (`validating`, `trust-ad`).
    Dnssec(Arc<DaneResolver>),
    /// hickory-resolver without DNSSEC (`system`).
    System(Box<TokioResolver>),
}

pub(crate) struct Dns {
    backend: Backend,
    /// The port MX hosts are connected on, and so the port of their TLSA base names.
    mx_port: u16,
    /// With a probe task ([`Dns::spawn_probe`]): becomes `true` once the first probe has
    /// finished, whatever its outcome; dropping it ends the task.
    first_probe: Option<watch::Receiver<bool>>,
}

impl Dns {
    /// Builds the resolver of `delivery.resolver` (no network: reads the trust-anchor file and
    /// the system's nameservers). `system` mode logs at warn that DANE is off.
    pub(crate) fn new(config: &ResolverConfig) -> Result<Self, OutboundError> {
        let limits = Limits::default();
        let Some(validation) = config.validation().map_err(resolver_error)? else {
            tracing::warn!(
                "delivery.resolver.mode = \"system\": DNSSEC is not validated, so DANE is off \
                 (every MX counts as insecure; destinations with DANE mandatory defer); remove \
                 the mode line to validate in-process (the default, mode = \"validating\")"
            );
            let resolver = match config.address {
                Some(ns) => system_for_nameserver(ns, SYSTEM_QUERY_TIMEOUT)?,
                None => system_from_os()?,
            };
            return Ok(Self::system(resolver));
        };
        if config.mode == ResolverMode::Validating {
            let (upstreams, source) = config.upstreams();
            if matches!(source, UpstreamSource::SystemFallback { .. }) {
                tracing::warn!(reason = %source, "no system nameserver: asking 127.0.0.1:53");
            }
            tracing::info!(
                upstreams = ?upstreams,
                trust_anchor = %config.anchor_source(),
                probe_name = %config.probe_name,
                "delivery resolver: DNSSEC validated in-process"
            );
        }
        let resolver = DaneResolver::new(validation, limits)
            .map_err(|e| OutboundError::Resolver(e.to_string()))?;
        Ok(Self {
            backend: Backend::Dnssec(Arc::new(resolver)),
            mx_port: SMTP_PORT,
            first_probe: None,
        })
    }

    /// A `system`-mode resolver over a hickory resolver the caller built.
    pub(crate) fn system(resolver: TokioResolver) -> Self {
        Self {
            backend: Backend::System(Box::new(resolver)),
            mx_port: SMTP_PORT,
            first_probe: None,
        }
    }

    /// The DNSSEC modes: starts the validation probe task (the start-up probe at once, then
    /// one every `probe_interval_secs`; each bounded by the resolver's query timeout). It
    /// logs each change of [`ValidationState`] once and ends when this `Dns` is dropped.
    /// Never blocks: a failing probe (offline, no validation) only keeps DANE off.
    pub(crate) fn spawn_probe(&mut self, config: &ResolverConfig) {
        let Backend::Dnssec(resolver) = &self.backend else {
            return;
        };
        let (tx, rx) = watch::channel(false);
        self.first_probe = Some(rx);
        let resolver = Arc::downgrade(resolver);
        let name = config.probe_name.clone();
        let interval = config.probe_interval();
        let mode = config.mode;
        tokio::spawn(async move {
            let mut logged: Option<ValidationState> = None;
            loop {
                let Some(r) = resolver.upgrade() else { return };
                let result = r.probe(&name).await;
                let state = r.validation_state();
                drop(r);
                if logged != Some(state) {
                    log_validation(state, mode, &name, result.err());
                    logged = Some(state);
                }
                tx.send_replace(true);
                tokio::select! {
                    () = tokio::time::sleep(interval) => {}
                    () = tx.closed() => return,
                }
            }
        });
    }

    /// Waits (bounded) until the first validation probe has finished, so that no delivery
    /// right after start-up is decided before it.
    async fn wait_first_probe(&self) {
        if let Some(rx) = &self.first_probe {
            let mut rx = rx.clone();
            let bound = Limits::default().timeout + Duration::from_secs(1);
            let _ = tokio::time::timeout(bound, rx.wait_for(|done| *done)).await;
        }
    }

    /// dane-verify's resolver (the DNSSEC modes), for MTA-STS discovery: the `_mta-sts` TXT
    /// lookup and the policy host's addresses go through the delivery resolver.
    pub(crate) fn dane_resolver(&self) -> Option<&DaneResolver> {
        match &self.backend {
            Backend::Dnssec(r) => Some(r),
            Backend::System(_) => None,
        }
    }

    /// The `system`-mode resolver (no DNSSEC), for the lookups that need none: TLS-RPT's
    /// `_smtp._tls` TXT record (RFC 8460 §3).
    pub(crate) fn system_resolver(&self) -> Option<&TokioResolver> {
        match &self.backend {
            Backend::System(r) => Some(r),
            Backend::Dnssec(_) => None,
        }
    }

    /// Connects to MX hosts on `port` instead of 25 (`delivery.mx_port`), and looks their TLSA
    /// records up at `_PORT._tcp.HOST`: RFC 7672 §3, the TLSA base name follows the port
    /// actually connected to.
    pub(crate) fn with_mx_port(mut self, port: u16) -> Self {
        self.mx_port = port;
        self
    }

    /// The MX hosts of `domain` in preference order, each with its addresses and DANE action.
    pub(crate) async fn mx_hosts(
        &self,
        domain: &str,
        setting: DaneSetting,
    ) -> Result<Vec<MxHost>, NoRoute> {
        let resolver = match &self.backend {
            Backend::Dnssec(r) => return self.dnssec_mx_hosts(r, domain, setting).await,
            Backend::System(r) => r,
        };
        let (names, source) = tokio::time::timeout(RESOLVE_TIMEOUT, system_mx(resolver, domain))
            .await
            .map_err(|_| NoRoute::Temporary(format!("MX lookup of {domain} timed out")))??;
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            let addresses = self.addresses(&name).await;
            // No DNSSEC: no host is DANE-protected; mandatory DANE defers (RFC 7672 §2.2.1).
            let facts = facts_without_dnssec(domain, &name);
            let action = decide(setting, &facts);
            out.push(MxHost {
                name,
                addresses,
                source,
                facts,
                action,
                port: self.mx_port,
            });
        }
        Ok(out)
    }

    async fn dnssec_mx_hosts(
        &self,
        resolver: &DaneResolver,
        domain: &str,
        setting: DaneSetting,
    ) -> Result<Vec<MxHost>, NoRoute> {
        self.wait_first_probe().await;
        let facts =
            tokio::time::timeout(RESOLVE_TIMEOUT, resolver.destination(domain, self.mx_port))
                .await
                .map_err(|_| NoRoute::Temporary(format!("MX lookup of {domain} timed out")))?
                .map_err(|e| NoRoute::Temporary(format!("MX lookup of {domain}: {e}")))?;
        if let Some(f) = facts.mx_failure {
            return Err(NoRoute::Temporary(format!(
                "MX lookup of {domain} failed: {f:?} ({})",
                facts.mx_status.as_str()
            )));
        }
        // Unproven validation: every status reads indeterminate; the answer is used as plain
        // DNS (only a bogus one defers), dane-verify's actions keep mandatory DANE deferred.
        let failed = if facts.validation.is_proven() {
            facts.mx_status.is_failure()
        } else {
            facts.mx_status == DnssecStatus::Bogus
        };
        if failed {
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
        let actions = facts.actions(setting);
        let mut out = Vec::with_capacity(facts.hosts.len());
        for (h, (_, action)) in facts.hosts.iter().zip(actions).take(MAX_MX_HOSTS) {
            let addresses = self.addresses(&h.mx_host).await;
            // The resolver lists the domain itself when it has no MX record.
            let source = if same_name(&h.mx_host, domain) {
                HostSource::ImplicitMx
            } else {
                HostSource::Mx
            };
            out.push(MxHost {
                name: h.mx_host.clone(),
                addresses,
                source,
                facts: h.clone(),
                action,
                port: self.mx_port,
            });
        }
        Ok(out)
    }

    /// The addresses of a host name (route hosts, MX hosts): A then AAAA, at most
    /// [`MAX_ADDRESSES`]; empty when the lookup fails.
    pub(crate) async fn addresses(&self, host: &str) -> Vec<IpAddr> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return vec![ip];
        }
        let mut v = match &self.backend {
            Backend::System(r) => {
                let lookup = r.lookup_ip(fqdn(host));
                match tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
                    Ok(Ok(found)) => found.iter().collect(),
                    Ok(Err(e)) => {
                        tracing::debug!(%host, error = %e, "address lookup failed");
                        Vec::new()
                    }
                    Err(_) => Vec::new(),
                }
            }
            Backend::Dnssec(r) => {
                match tokio::time::timeout(RESOLVE_TIMEOUT, r.addresses(host)).await {
                    Ok(Ok(a)) => a,
                    Ok(Err(e)) => {
                        tracing::debug!(%host, error = %e, "address lookup failed");
                        Vec::new()
                    }
                    Err(_) => Vec::new(),
                }
            }
        };
        // A before AAAA, each family in answer order.
        v.sort_by_key(IpAddr::is_ipv6);
        v.dedup();
        v.truncate(MAX_ADDRESSES);
        v
    }
}

/// `host.` (absolute: no search-domain expansion).
fn fqdn(host: &str) -> String {
    format!("{}.", host.trim_end_matches('.'))
}

/// MX host names of `domain` by preference (RFC 5321 §5.1), through the system resolver, and
/// whether they came from MX records or are the implicit MX.
async fn system_mx(
    resolver: &TokioResolver,
    domain: &str,
) -> Result<(Vec<String>, HostSource), NoRoute> {
    let domain = domain.trim_end_matches('.');
    let name = Name::from_ascii(fqdn(domain))
        .map_err(|e| NoRoute::Permanent(format!("{domain} is not a domain name: {e}")))?;
    let mut mx: Vec<(u16, Name)> = match resolver.lookup(name, RecordType::MX).await {
        Ok(lookup) => lookup
            .answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::MX(m) => Some((m.preference, m.exchange.clone())),
                _ => None,
            })
            .collect(),
        Err(NetError::Dns(DnsError::NoRecordsFound(nr))) => {
            if nr.response_code == ResponseCode::NXDomain {
                return Err(NoRoute::Permanent(format!(
                    "{domain} accepts no mail (no such domain)"
                )));
            }
            Vec::new()
        }
        Err(e) => {
            return Err(NoRoute::Temporary(format!("MX lookup of {domain}: {e}")));
        }
    };
    if mx.is_empty() {
        // RFC 5321 §5.1: no MX record, the domain itself is the implicit MX.
        return Ok((vec![domain.to_ascii_lowercase()], HostSource::ImplicitMx));
    }
    // RFC 7505 §3: a null MX ("." as exchange) means the domain accepts no mail.
    if mx.iter().all(|(_, n)| n.is_root()) {
        return Err(NoRoute::Permanent(format!(
            "{domain} accepts no mail (null MX, RFC 7505)"
        )));
    }
    mx.retain(|(_, n)| !n.is_root());
    mx.sort_by_key(|(pref, _)| *pref);
    let mut names: Vec<String> = Vec::with_capacity(mx.len().min(MAX_MX_HOSTS));
    for (_, n) in mx {
        let host = n.to_ascii().trim_end_matches('.').to_ascii_lowercase();
        if !names.contains(&host) {
            names.push(host);
        }
        if names.len() == MAX_MX_HOSTS {
            break;
        }
    }
    Ok((names, HostSource::Mx))
}

/// Whether two DNS names are the same (ASCII case, trailing dot ignored).
fn same_name(a: &str, b: &str) -> bool {
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}

/// Logs a new validation state once: info when proven, warn (with what to fix) otherwise.
fn log_validation(
    state: ValidationState,
    mode: ResolverMode,
    probe_name: &str,
    error: Option<dane_verify::Error>,
) {
    let error = error.map(|e| e.to_string()).unwrap_or_default();
    let fix = match mode {
        ResolverMode::TrustAd => {
            "point delivery.resolver.address at a validating resolver (unbound/BIND with the \
             root trust anchor), or remove mode = \"trust-ad\" to validate in-process"
        }
        _ => {
            "check that delivery.resolver.address (or /etc/resolv.conf) reaches a resolver that \
             passes DNSSEC records, that delivery.resolver.trust_anchor is current, and that \
             delivery.resolver.probe_name is signed under it"
        }
    };
    match state {
        ValidationState::Validating => tracing::info!(
            validation = state.as_str(),
            probe_name,
            "DNSSEC validation proven: DANE available"
        ),
        _ => tracing::warn!(
            validation = state.as_str(),
            probe_name,
            error = %error,
            "DNSSEC validation not proven: DNSSEC status is indeterminate and DANE is off \
             (DANE-mandatory destinations defer, opportunistic ones are delivered without DANE \
             under their configured TLS mode); fix: {fix}"
        ),
    }
}

/// The system resolver: `/etc/resolv.conf` and `/etc/hosts`.
fn system_from_os() -> Result<TokioResolver, OutboundError> {
    let mut builder = TokioResolver::builder_tokio()
        .map_err(|e| OutboundError::Resolver(format!("system configuration: {e}")))?;
    let opts = builder.options_mut();
    opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    opts.validate = false;
    builder
        .build()
        .map_err(|e| OutboundError::Resolver(format!("system configuration: {e}")))
}

/// A `system`-mode resolver asking only `nameserver` (UDP, TCP on truncation), with
/// `/etc/hosts`, no search domains.
pub(crate) fn system_for_nameserver(
    nameserver: SocketAddr,
    timeout: Duration,
) -> Result<TokioResolver, OutboundError> {
    let mut ns = NameServerConfig::udp_and_tcp(nameserver.ip());
    for c in &mut ns.connections {
        c.port = nameserver.port();
    }
    let mut opts = ResolverOpts::default();
    opts.timeout = timeout;
    opts.attempts = 2;
    opts.ndots = 0;
    opts.use_hosts_file = ResolveHosts::Auto;
    opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    TokioResolver::builder_with_config(
        HickoryConfig::from_name_servers(vec![ns]),
        TokioRuntimeProvider::default(),
    )
    .with_options(opts)
    .build()
    .map_err(|e| OutboundError::Resolver(format!("nameserver {nameserver}: {e}")))
}

#[cfg(test)]
#[path = "dns_tests.rs"]
mod tests;
