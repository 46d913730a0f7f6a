//! The `[delivery]` table of the relay configuration: how mail leaves the relay.
//!
//! ```toml
//! [delivery]
//! ehlo_name = "relay.example.test"
//! destination_controls = "destinations.toml"
//! max_connections_per_destination = 10
//! max_concurrent_deliveries = 100 # delivery tasks (connections) over all destinations
//! max_messages_per_connection = 100
//! max_session_secs = 1800         # wall-clock limit of one delivery attempt (all its messages)
//! connection_cache_secs = 2       # an idle session waits this long for more jobs (0: off)
//! mx_port = 25                    # the port of MX hosts (test labs, non-standard deployments)
//! local_domains = ["localhost"]   # ["*"]: every domain (nothing leaves the relay)
//! maildir = "relay-data/maildir"
//! [[delivery.route]]
//! domain = "example.net"
//! hosts = ["127.0.0.1:2526"]
//! [delivery.resolver]
//! mode = "validating"             # the default: DNSSEC validated in-process (DANE available)
//! probe_name = "."                # a signed name whose SOA must validate (the root zone)
//! [delivery.retry]
//! initial_secs = 300
//! [delivery.alerts]
//! recipients = ["postmaster@example.test"]
//! ```

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use smtp_tls_policy::destination::{
    ConfiguredDane, DestinationControls, DestinationEntry, TlsMode,
};

use super::error::OutboundError;
use super::sts_config::MtaStsConfig;
use crate::RetryPolicy;

/// Most routes accepted.
pub const MAX_ROUTES: usize = 10_000;
/// Most next hops in one route.
pub const MAX_ROUTE_HOSTS: usize = 16;
/// Default of `delivery.max_concurrent_deliveries` (as Postfix's `default_process_limit`).
pub const DEFAULT_MAX_CONCURRENT_DELIVERIES: usize = 100;
/// Default of `delivery.max_session_secs`: 30 minutes for one delivery attempt, connection
/// set-up and every message of its batch together.
pub const DEFAULT_MAX_SESSION_SECS: u64 = 1800;
/// Default of `delivery.connection_cache_secs` (as Postfix's `smtp_connection_cache_time_limit`).
pub(crate) const DEFAULT_CONNECTION_CACHE_SECS: u64 = 2;
/// Largest `delivery.connection_cache_secs` accepted.
pub(crate) const MAX_CONNECTION_CACHE_SECS: u64 = 300;
/// A cached delivery session takes new mail only this long after it was opened (as Postfix's
/// `smtp_connection_reuse_time_limit`): mail handed to it reuses the hop plan (MX host, TLS
/// policy from destination controls, MTA-STS and DANE) made when it was opened, so a changed
/// policy reaches delivery within this time.
pub(crate) const CONNECTION_REUSE_TIME_LIMIT: Duration = Duration::from_secs(300);
/// The SMTP port (RFC 5321 §4.5.4.2 / IANA), used when a route host names none.
pub const SMTP_PORT: u16 = 25;
/// The `local_domains` entry meaning **every** domain: all mail goes to the local maildir and
/// nothing leaves the relay (the embedded default: a demonstration relay must never send mail
/// to the internet).
pub(crate) const CATCH_ALL: &str = "*";

/// The `[delivery]` table. Every field has a default, so the table may be absent.
///
/// ```
/// use relay::outbound::OutboundConfig;
/// let c: OutboundConfig = toml::from_str("local_domains = [\"example.test\"]\n").unwrap();
/// assert!(c.is_local_domain("EXAMPLE.test"));
/// assert_eq!(c.max_messages_per_connection, 100);
/// c.validate().unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct OutboundConfig {
    /// Our name in EHLO/HELO (default: the host name).
    pub ehlo_name: String,
    /// smtp-tls-policy's destination-control TOML (relative to the relay config file); absent:
    /// one default entry, TLS `preferred`, DANE `none`.
    pub destination_controls: Option<PathBuf>,
    /// The cert-store certificate presented on outgoing TLS connections (client auth).
    pub outgoing_certificate: Option<String>,
    /// Most simultaneous connections to one destination domain.
    pub max_connections_per_destination: usize,
    /// Most delivery tasks at once over all destinations (each holds at most one connection):
    /// many slow or tarpitting destinations cannot take every connection and task of the relay
    /// (default [`DEFAULT_MAX_CONCURRENT_DELIVERIES`]).
    pub max_concurrent_deliveries: usize,
    /// Most messages sent over one connection (RSET between them).
    pub max_messages_per_connection: usize,
    /// Wall-clock limit of one delivery attempt to a destination, in seconds: DNS aside, every
    /// connection attempt and every message of the batch together (default
    /// [`DEFAULT_MAX_SESSION_SECS`]). The per-reply timeouts of RFC 5321 §4.5.3.2 bound each
    /// step, not their sum: a tarpit answering each reply just in time could otherwise hold a
    /// delivery task (one of `max_concurrent_deliveries`) for days. On expiry the messages
    /// not yet settled are deferred (4.4.2) and retried; nothing counts as delivered.
    pub max_session_secs: u64,
    /// How long a delivery session that has carried its batch stays open for more jobs of the
    /// same destination and TLS request kind, in seconds (default 2, at most 300; 0: QUIT at
    /// once). A waiting session keeps its delivery slot, and gives it up at once when another
    /// destination waits for one.
    pub connection_cache_secs: u64,
    /// The port MX hosts are connected on (default [`SMTP_PORT`], 25, RFC 5321 §4.5.4.2);
    /// for test labs and non-standard deployments. RFC 7672 §3: the TLSA base name follows
    /// the port actually connected to, `_PORT._tcp.HOST`, so the TLSA lookup uses it too.
    /// SMTP routes name their own ports and are not affected.
    pub mx_port: u16,
    /// TCP connect timeout.
    pub connect_timeout_secs: u64,
    /// Domains delivered to the local maildir instead of over SMTP. `"*"` (alone
    /// or among other names) means every domain: nothing is sent over SMTP, so no SMTP route
    /// may be configured with it. Other wildcards are refused.
    pub local_domains: Vec<String>,
    /// The maildir root (relative to the working directory); one maildir per recipient below.
    pub maildir: PathBuf,
    /// SMTP routes: a static next hop per domain (Cisco "SMTP routes").
    #[serde(rename = "route")]
    pub routes: Vec<RouteConfig>,
    /// How MX records are looked up.
    pub resolver: ResolverConfig,
    /// Retry backoff and maximum queue lifetime.
    pub retry: RetryConfig,
    /// Alert messages when a required TLS connection fails.
    pub alerts: AlertConfig,
    /// MTA-STS (RFC 8461) discovery and its policy cache (`[delivery.mta_sts]`).
    pub mta_sts: MtaStsConfig,
    /// Where the policy cache and the report counters are kept: the relay configuration's
    /// top-level `[state]`, copied here by `RelayConfig` (not a `[delivery]` key).
    #[serde(skip)]
    pub state: crate::state::StateConfig,
    /// TLS reporting: the top-level `[tlsrpt]`, copied here by `RelayConfig`.
    #[serde(skip)]
    pub tlsrpt: crate::tlsrpt::TlsRptConfig,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        Self {
            ehlo_name: host_name(),
            destination_controls: None,
            outgoing_certificate: None,
            max_connections_per_destination: 10,
            max_concurrent_deliveries: DEFAULT_MAX_CONCURRENT_DELIVERIES,
            max_messages_per_connection: 100,
            max_session_secs: DEFAULT_MAX_SESSION_SECS,
            connection_cache_secs: DEFAULT_CONNECTION_CACHE_SECS,
            mx_port: SMTP_PORT,
            connect_timeout_secs: 30,
            local_domains: vec!["localhost".into()],
            maildir: PathBuf::from("relay-data/maildir"),
            routes: Vec::new(),
            resolver: ResolverConfig::default(),
            retry: RetryConfig::default(),
            alerts: AlertConfig::default(),
            mta_sts: MtaStsConfig::default(),
            state: crate::state::StateConfig::default(),
            tlsrpt: crate::tlsrpt::TlsRptConfig::default(),
        }
    }
}

/// One `[[delivery.route]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RouteConfig {
    /// An exact domain, or `.example.net` for every subdomain of `example.net`.
    pub domain: String,
    /// Next hops tried in order: `host`, `host:port`, `[v6]:port`, or `maildir`.
    pub hosts: Vec<String>,
}

/// A parsed next hop of a route.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RouteHop {
    /// An SMTP server: a host name or IP literal, and a port.
    Smtp {
        /// Host name or IP address (without brackets).
        host: String,
        /// TCP port.
        port: u16,
    },
    /// Deliver into the local maildir.
    Maildir,
}

impl RouteHop {
    /// Parses `host`, `host:port`, `a.b.c.d:port`, `[v6]:port`, a bare IPv6 address or
    /// `maildir`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("maildir") {
            return Ok(Self::Maildir);
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Self::Smtp {
                host: ip.to_string(),
                port: SMTP_PORT,
            });
        }
        if let Ok(sa) = s.parse::<SocketAddr>() {
            return Ok(Self::Smtp {
                host: sa.ip().to_string(),
                port: sa.port(),
            });
        }
        let (host, port) = match s.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>().map_err(|_| format!("bad port in {s:?}"))?,
            ),
            None => (s, SMTP_PORT),
        };
        if port == 0 {
            return Err(format!("port 0 in {s:?}"));
        }
        smtp_tls_policy::identity::DnsName::parse(host)
            .map_err(|e| format!("bad host name {host:?}: {e}"))?;
        Ok(Self::Smtp {
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

use dane_verify::resolver::UpstreamSource;
/// `[delivery.resolver]`: dane-verify's resolver configuration, its keys below
/// `delivery.resolver`. Relative `trust_anchor` paths follow the relay config file
/// ([`OutboundConfig::resolve_paths`]).
pub use dane_verify::resolver::{ResolverConfig, ResolverMode};

/// A resolver-configuration error of dane-verify, named by its `delivery.resolver.` key.
pub(crate) fn resolver_error(e: dane_verify::Error) -> OutboundError {
    match e {
        dane_verify::Error::ConfigValue { key, reason } => {
            OutboundError::invalid(format!("delivery.resolver.{key}"), reason)
        }
        dane_verify::Error::ConfigMissing { key, because } => OutboundError::Missing {
            key: match key {
                "address" => "delivery.resolver.address",
                _ => "delivery.resolver",
            },
            because,
        },
        dane_verify::Error::TrustAnchor { .. } => {
            OutboundError::invalid("delivery.resolver.trust_anchor", e.to_string())
        }
        _ => OutboundError::Resolver(e.to_string()),
    }
}

/// Where the resolver's upstreams come from, as `relay --check-config` and the logs say it:
/// `delivery.resolver.address`, `system (/etc/resolv.conf)` or `system fallback: <why>`.
pub(crate) fn upstream_source_text(source: &UpstreamSource) -> String {
    match source {
        UpstreamSource::Address => "delivery.resolver.address".into(),
        other => other.to_string(),
    }
}

/// `[delivery.retry]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct RetryConfig {
    /// Delay after the first failed attempt.
    pub initial_secs: u64,
    /// Longest delay between two attempts.
    pub max_backoff_secs: u64,
    /// Maximum queue lifetime; then the message bounces (DSN).
    pub max_lifetime_secs: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            initial_secs: 300,
            max_backoff_secs: 4000,
            max_lifetime_secs: 432_000,
        }
    }
}

impl RetryConfig {
    /// The queue's retry policy (25 % jitter).
    pub fn policy(&self) -> Result<RetryPolicy, OutboundError> {
        RetryPolicy::new(
            Duration::from_secs(self.initial_secs),
            Duration::from_secs(self.max_backoff_secs),
            25,
            Duration::from_secs(self.max_lifetime_secs),
        )
        .map_err(|e| OutboundError::invalid("delivery.retry", e.to_string()))
    }
}

/// `[delivery.alerts]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct AlertConfig {
    /// Addresses that receive alert messages (sent through the relay itself).
    pub recipients: Vec<String>,
    /// At most one alert message per destination domain in this interval.
    pub min_interval_secs: u64,
}

impl Default for AlertConfig {
    fn default() -> Self {
        Self {
            recipients: Vec::new(),
            min_interval_secs: 300,
        }
    }
}

impl OutboundConfig {
    /// Makes the paths that are relative to the relay configuration file absolute
    /// (`destination_controls`, `resolver.trust_anchor`); `maildir` stays relative to the
    /// working directory.
    pub fn resolve_paths(&mut self, config_dir: &Path) {
        for p in [
            self.destination_controls.as_mut(),
            self.resolver.trust_anchor.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            if p.is_relative() {
                *p = config_dir.join(&*p);
            }
        }
    }

    /// Checks every value and loads the destination controls and trust anchors, so a bad
    /// configuration is refused at start-up with the key it is about.
    pub fn validate(&self) -> Result<(), OutboundError> {
        if self.ehlo_name.is_empty() || self.ehlo_name.len() > 255 {
            return Err(OutboundError::invalid(
                "delivery.ehlo_name",
                "must be a host name of 1 to 255 octets",
            ));
        }
        // RFC 5321 §4.1.1.1: a domain or an address literal; refuse what would break the line.
        if !self
            .ehlo_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b))
        {
            return Err(OutboundError::invalid(
                "delivery.ehlo_name",
                format!("{:?} is not a host name", self.ehlo_name),
            ));
        }
        if self.mx_port == 0 {
            return Err(OutboundError::invalid(
                "delivery.mx_port",
                "must be a TCP port (1 to 65535)",
            ));
        }
        let positive = [
            (
                "delivery.max_connections_per_destination",
                self.max_connections_per_destination as u64,
            ),
            (
                "delivery.max_concurrent_deliveries",
                self.max_concurrent_deliveries as u64,
            ),
            (
                "delivery.max_messages_per_connection",
                self.max_messages_per_connection as u64,
            ),
            ("delivery.connect_timeout_secs", self.connect_timeout_secs),
            ("delivery.max_session_secs", self.max_session_secs),
        ];
        for (key, v) in positive {
            if v == 0 {
                return Err(OutboundError::invalid(key, "must be at least 1"));
            }
        }
        if self.connection_cache_secs > MAX_CONNECTION_CACHE_SECS {
            return Err(OutboundError::invalid(
                "delivery.connection_cache_secs",
                format!("must be at most {MAX_CONNECTION_CACHE_SECS}"),
            ));
        }
        for d in &self.local_domains {
            if d != CATCH_ALL {
                check_domain("delivery.local_domains", d)?;
            }
        }
        if self.delivers_everything_locally() && !self.routes.is_empty() {
            return Err(OutboundError::invalid(
                "delivery.route",
                "unused: local_domains contains \"*\" (every domain goes to the maildir)",
            ));
        }
        if self.routes.len() > MAX_ROUTES {
            return Err(OutboundError::invalid(
                "delivery.route",
                format!("{} routes, limit {MAX_ROUTES}", self.routes.len()),
            ));
        }
        for (i, r) in self.routes.iter().enumerate() {
            let key = format!("delivery.route[{i}]");
            check_domain(&format!("{key}.domain"), r.domain.trim_start_matches('.'))?;
            if r.hosts.is_empty() || r.hosts.len() > MAX_ROUTE_HOSTS {
                return Err(OutboundError::invalid(
                    format!("{key}.hosts"),
                    format!("1 to {MAX_ROUTE_HOSTS} hosts needed"),
                ));
            }
            for h in &r.hosts {
                RouteHop::parse(h)
                    .map_err(|e| OutboundError::invalid(format!("{key}.hosts"), e))?;
            }
        }
        for a in &self.alerts.recipients {
            if !a.contains('@') || a.len() > 254 || a.bytes().any(|b| b <= b' ' || b == b'>') {
                return Err(OutboundError::invalid(
                    "delivery.alerts.recipients",
                    format!("{a:?} is not a mailbox"),
                ));
            }
        }
        self.retry.policy()?;
        self.mta_sts.validate()?;
        self.load_destination_controls()?;
        self.resolver.validate().map_err(resolver_error)
    }

    /// Loads the destination controls (or the built-in default: TLS `preferred`, DANE `none`).
    pub fn load_destination_controls(&self) -> Result<DestinationControls, OutboundError> {
        match &self.destination_controls {
            Some(path) => Ok(DestinationControls::from_file(path)?),
            None => Ok(DestinationControls::builder()
                .default_entry(DestinationEntry::new(
                    TlsMode::Preferred,
                    ConfiguredDane::None,
                ))?
                .build()),
        }
    }

    /// Whether `domain` is delivered to the local maildir (listed, or `"*"` is listed).
    #[must_use]
    pub fn is_local_domain(&self, domain: &str) -> bool {
        let d = domain.trim_end_matches('.');
        self.local_domains
            .iter()
            .any(|l| l == CATCH_ALL || l.eq_ignore_ascii_case(d))
    }

    /// Whether every domain is delivered to the local maildir (`local_domains` has `"*"`): the
    /// relay sends nothing over SMTP.
    #[must_use]
    pub fn delivers_everything_locally(&self) -> bool {
        self.local_domains.iter().any(|l| l == CATCH_ALL)
    }

    /// The route for `domain`: an exact entry first, then the longest `.parent` entry.
    #[must_use]
    pub fn route(&self, domain: &str) -> Option<&RouteConfig> {
        let d = domain.trim_end_matches('.').to_ascii_lowercase();
        if let Some(r) = self
            .routes
            .iter()
            .find(|r| r.domain.eq_ignore_ascii_case(&d))
        {
            return Some(r);
        }
        self.routes
            .iter()
            .filter(|r| r.domain.starts_with('.') && d.ends_with(&r.domain.to_ascii_lowercase()))
            .max_by_key(|r| r.domain.len())
    }

    /// The connect timeout.
    #[must_use]
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_secs)
    }

    /// How long an idle delivery session waits for more jobs (`connection_cache_secs`).
    #[must_use]
    pub fn connection_cache(&self) -> Duration {
        Duration::from_secs(self.connection_cache_secs)
    }

    /// The wall-clock limit of one delivery attempt (`max_session_secs`).
    #[must_use]
    pub fn max_session(&self) -> Duration {
        Duration::from_secs(self.max_session_secs)
    }
}

fn check_domain(key: &str, d: &str) -> Result<(), OutboundError> {
    smtp_tls_policy::identity::DnsName::parse(d)
        .map(|_| ())
        .map_err(|e| OutboundError::invalid(key, format!("{d:?}: {e}")))
}

/// The host name (`/proc/sys/kernel/hostname`), or `localhost`.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_routes() {
        let c: OutboundConfig = toml::from_str(
            "[[route]]\ndomain = \"example.net\"\nhosts = [\"127.0.0.1:2526\"]\n\
             [[route]]\ndomain = \".example.net\"\nhosts = [\"mx.example.net\", \"maildir\"]\n",
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.mx_port, SMTP_PORT);
        assert_eq!(c.route("Example.NET").unwrap().hosts[0], "127.0.0.1:2526");
        assert_eq!(c.route("a.example.net").unwrap().domain, ".example.net");
        assert!(c.route("example.org").is_none());
        assert!(c.route("badexample.net").is_none());
        assert_eq!(
            RouteHop::parse("[::1]:2526"),
            Ok(RouteHop::Smtp {
                host: "::1".into(),
                port: 2526
            })
        );
        assert_eq!(
            RouteHop::parse("mx.example.net"),
            Ok(RouteHop::Smtp {
                host: "mx.example.net".into(),
                port: 25
            })
        );
        assert_eq!(RouteHop::parse("MAILDIR"), Ok(RouteHop::Maildir));
        assert!(RouteHop::parse("mx:0").is_err());
        assert!(RouteHop::parse("bad host:25").is_err());
    }

    #[test]
    fn bad_values_name_their_key() {
        let bad = |text: &str, key: &str| {
            let c: OutboundConfig = toml::from_str(text).unwrap();
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(key), "{e}");
        };
        bad(
            "max_connections_per_destination = 0",
            "max_connections_per_destination",
        );
        bad(
            "max_concurrent_deliveries = 0",
            "delivery.max_concurrent_deliveries",
        );
        bad(
            "[[route]]\ndomain = \"x.test\"\nhosts = []",
            "delivery.route[0].hosts",
        );
        bad(
            "[resolver]\nmode = \"trust-ad\"",
            "delivery.resolver.address",
        );
        bad(
            "[resolver]\nmode = \"trust-ad\"\naddress = \"192.0.2.1:53\"",
            "loopback",
        );
        bad("[retry]\ninitial_secs = 0", "delivery.retry");
        bad("mx_port = 0", "delivery.mx_port");
        bad("max_session_secs = 0", "delivery.max_session_secs");
        bad(
            "connection_cache_secs = 301",
            "delivery.connection_cache_secs",
        );
        assert!(toml::from_str::<OutboundConfig>("mx_port = 65536").is_err());
        bad(
            "[alerts]\nrecipients = [\"nobody\"]",
            "delivery.alerts.recipients",
        );
        bad(
            "destination_controls = \"/nonexistent/d.toml\"",
            "delivery.destination_controls",
        );
        assert!(toml::from_str::<OutboundConfig>("unknown = 1").is_err());
        bad("local_domains = [\"*.example\"]", "delivery.local_domains");
        bad("local_domains = [\"**\"]", "delivery.local_domains");
        bad(
            "local_domains = [\"*\"]\n[[route]]\ndomain = \"x.test\"\nhosts = [\"maildir\"]",
            "delivery.route",
        );
    }

    #[test]
    fn outbound_errors_fold_into_the_relay_error() {
        let c: OutboundConfig = toml::from_str("connect_timeout_secs = 0").unwrap();
        let e: crate::RelayError = c.validate().unwrap_err().into();
        assert!(matches!(e, crate::RelayError::Outbound(_)));
        assert_eq!(
            e.to_string(),
            "delivery.connect_timeout_secs: must be at least 1"
        );
    }

    #[test]
    fn catch_all_makes_every_domain_local() {
        let c: OutboundConfig = toml::from_str("local_domains = [\"*\"]").unwrap();
        c.validate().unwrap();
        assert!(c.delivers_everything_locally());
        for d in ["example.com", "EXAMPLE.com.", "localhost", "a.b.c.test"] {
            assert!(c.is_local_domain(d), "{d}");
        }
        let c = OutboundConfig::default();
        assert!(!c.delivers_everything_locally());
        assert!(c.is_local_domain("localhost"));
        assert!(!c.is_local_domain("example.com"));
    }

    #[test]
    fn relative_paths_follow_the_config_file() {
        let mut c: OutboundConfig = toml::from_str(
            "destination_controls = \"d.toml\"\n[resolver]\ntrust_anchor = \"/abs/a.txt\"\n",
        )
        .unwrap();
        c.resolve_paths(Path::new("/etc/relay"));
        assert_eq!(
            c.destination_controls.as_deref(),
            Some(Path::new("/etc/relay/d.toml"))
        );
        assert_eq!(
            c.resolver.trust_anchor.as_deref(),
            Some(Path::new("/abs/a.txt"))
        );
        assert_eq!(c.maildir, PathBuf::from("relay-data/maildir"));
    }
}
