//! The resolver configuration an embedder reads from its own configuration file (serde; the
//! example relay's `[delivery.resolver]` table): how DNSSEC answers are obtained
//! ([`ResolverMode`]), from which nameservers and trust anchors, and how validation is probed.
//! Validated once ([`ResolverConfig::validate`]), then turned into a [`Validation`] and a
//! [`DaneResolver`] ([`ResolverConfig::resolver`]).
//!
//! ```
//! use dane_verify::resolver::{ResolverConfig, ResolverMode};
//! let c: ResolverConfig = serde_json::from_str(
//!     r#"{"mode": "trust-ad", "address": "127.0.0.1:53", "probe_name": "test."}"#,
//! ).unwrap();
//! c.validate().unwrap();
//! assert_eq!(c.mode, ResolverMode::TrustAd);
//! assert_eq!(c.probe_interval_secs, 300);
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use hickory_resolver::proto::rr::Name;
use serde::Deserialize;

use super::{BUILT_IN_ROOT_ANCHORS, DaneResolver, Limits, MAX_UPSTREAMS, Validation};
use crate::Error;

/// Default of [`ResolverConfig::probe_name`]: the root zone (signed since 2010).
pub const DEFAULT_PROBE_NAME: &str = ".";
/// Default of [`ResolverConfig::probe_interval_secs`].
pub const DEFAULT_PROBE_INTERVAL_SECS: u64 = 300;
/// Largest [`ResolverConfig::probe_interval_secs`] (one day).
pub const MAX_PROBE_INTERVAL_SECS: u64 = 86_400;
/// Where the system's nameservers are read from.
pub const RESOLV_CONF: &str = "/etc/resolv.conf";

/// How DNS answers (and their DNSSEC status) are obtained.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ResolverMode {
    /// The system's resolver (`/etc/resolv.conf`); no DNSSEC, so no DANE and every answer is
    /// treated as insecure. [`ResolverConfig::validation`] gives `None`.
    System,
    /// The default: validate DNSSEC in-process (hickory) from `trust_anchor`, or without it
    /// from the IANA root anchors built in, asking `address` or, without it, the system's
    /// nameservers (`/etc/resolv.conf`; they need not validate, only pass DNSSEC records).
    #[default]
    Validating,
    /// Trust the AD bit of the validating resolver at `address` (loopback only, RFC 7672 §8.3).
    TrustAd,
}

impl ResolverMode {
    /// The configuration spelling: `system`, `validating`, `trust-ad`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::System => "system",
            Self::Validating => "validating",
            Self::TrustAd => "trust-ad",
        }
    }
}

/// Where [`ResolverConfig::upstreams`] took the nameservers from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UpstreamSource {
    /// [`ResolverConfig::address`].
    Address,
    /// The system's nameservers ([`RESOLV_CONF`]).
    System,
    /// `127.0.0.1:53`, as the C library does, because the system configuration names no
    /// nameserver or cannot be read.
    SystemFallback {
        /// Why.
        reason: String,
    },
}

impl std::fmt::Display for UpstreamSource {
    /// `address`, `system (/etc/resolv.conf)`, `system fallback: <why>`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Address => f.write_str("address"),
            Self::System => write!(f, "system ({RESOLV_CONF})"),
            Self::SystemFallback { reason } => write!(f, "system fallback: {reason}"),
        }
    }
}

/// The resolver configuration. Every field has a default (`validating` from the built-in root
/// anchors, the system's nameservers, probe `.` every 300 s); unknown keys are refused.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct ResolverConfig {
    /// The mode (default `validating`).
    pub mode: ResolverMode,
    /// The resolver to ask: the upstream of `validating` (default: the system's nameservers),
    /// the validating resolver of `trust-ad` (required, loopback), the only nameserver of
    /// `system` (default: the system's configuration).
    pub address: Option<SocketAddr>,
    /// DNSKEY trust-anchor file (`validating`); default: the IANA root anchors built in
    /// ([`BUILT_IN_ROOT_ANCHORS`]). A relative path is the embedder's to resolve.
    pub trust_anchor: Option<PathBuf>,
    /// A signed name whose SOA must validate before DNSSEC statuses are believed (`validating`,
    /// `trust-ad`): probed at start-up and every `probe_interval_secs`
    /// ([`DaneResolver::probe`]). Default `.`; a private trust anchor needs a name under it
    /// (the test lab: `test.`).
    pub probe_name: String,
    /// Seconds between two validation probes (1 to [`MAX_PROBE_INTERVAL_SECS`], default
    /// [`DEFAULT_PROBE_INTERVAL_SECS`]).
    pub probe_interval_secs: u64,
}

impl Default for ResolverConfig {
    fn default() -> Self {
        Self {
            mode: ResolverMode::default(),
            address: None,
            trust_anchor: None,
            probe_name: DEFAULT_PROBE_NAME.into(),
            probe_interval_secs: DEFAULT_PROBE_INTERVAL_SECS,
        }
    }
}

impl ResolverConfig {
    /// The upstream resolvers and where they come from: [`Self::address`], or the system's
    /// nameservers (at most [`MAX_UPSTREAMS`]; `127.0.0.1:53` when [`RESOLV_CONF`] names
    /// none, as the C library does). Reads [`RESOLV_CONF`], never the network.
    #[must_use]
    pub fn upstreams(&self) -> (Vec<SocketAddr>, UpstreamSource) {
        if let Some(a) = self.address {
            return (vec![a], UpstreamSource::Address);
        }
        let fallback = |reason: String| {
            (
                vec![SocketAddr::from(([127, 0, 0, 1], 53))],
                UpstreamSource::SystemFallback { reason },
            )
        };
        match hickory_resolver::system_conf::read_system_conf() {
            Ok((conf, _)) => {
                let mut v: Vec<SocketAddr> = Vec::new();
                for ns in conf.name_servers() {
                    let port = ns.connections.first().map_or(53, |c| c.port);
                    let a = SocketAddr::new(ns.ip, port);
                    if !v.contains(&a) && v.len() < MAX_UPSTREAMS {
                        v.push(a);
                    }
                }
                if v.is_empty() {
                    fallback(format!("{RESOLV_CONF} names no nameserver"))
                } else {
                    (v, UpstreamSource::System)
                }
            }
            Err(e) => fallback(format!("{RESOLV_CONF}: {e}")),
        }
    }

    /// What the in-process validator trusts: `file <path>` for [`Self::trust_anchor`], or
    /// [`BUILT_IN_ROOT_ANCHORS`].
    #[must_use]
    pub fn anchor_source(&self) -> String {
        match &self.trust_anchor {
            Some(p) => format!("file {}", p.display()),
            None => BUILT_IN_ROOT_ANCHORS.to_owned(),
        }
    }

    /// The [`Validation`] of the DNSSEC modes; `None` for `system` (no DNSSEC). Reads the
    /// trust-anchor file and the system's nameservers, never the network.
    ///
    /// Errors: [`Error::ConfigMissing`] (`trust-ad` without `address`), [`Error::ConfigValue`]
    /// (`trust-ad` with a non-loopback `address`), [`Error::TrustAnchor`] (the file).
    pub fn validation(&self) -> Result<Option<Validation>, Error> {
        match self.mode {
            ResolverMode::System => Ok(None),
            ResolverMode::TrustAd => {
                let resolver = self.address.ok_or(Error::ConfigMissing {
                    key: "address",
                    because: "mode = \"trust-ad\"",
                })?;
                if !resolver.ip().is_loopback() {
                    return Err(Error::ConfigValue {
                        key: "address",
                        reason: format!(
                            "the AD bit is trusted only from a loopback resolver, not {resolver}"
                        ),
                    });
                }
                Ok(Some(Validation::TrustAd { resolver }))
            }
            ResolverMode::Validating => {
                Validation::in_process(self.upstreams().0, self.trust_anchor.as_deref()).map(Some)
            }
        }
    }

    /// The DNSSEC resolver of this configuration, not probed yet (probe it with
    /// [`Self::probe_name`] every [`Self::probe_interval`]); `None` for `system`. Build it
    /// inside a tokio runtime.
    pub fn resolver(&self, limits: Limits) -> Result<Option<DaneResolver>, Error> {
        self.validation()?
            .map(|v| DaneResolver::new(v, limits))
            .transpose()
    }

    /// The probe interval.
    #[must_use]
    pub fn probe_interval(&self) -> Duration {
        Duration::from_secs(self.probe_interval_secs)
    }

    /// Checks every value ([`Error::ConfigValue`] names the key) and reads the trust anchors
    /// ([`Self::validation`]), so a bad configuration is refused at start-up.
    pub fn validate(&self) -> Result<(), Error> {
        if self.probe_interval_secs == 0 || self.probe_interval_secs > MAX_PROBE_INTERVAL_SECS {
            return Err(Error::ConfigValue {
                key: "probe_interval_secs",
                reason: format!("must be 1 to {MAX_PROBE_INTERVAL_SECS}"),
            });
        }
        let name = if self.probe_name.ends_with('.') {
            self.probe_name.clone()
        } else {
            format!("{}.", self.probe_name)
        };
        if self.probe_name.is_empty() || Name::from_ascii(&name).is_err() {
            return Err(Error::ConfigValue {
                key: "probe_name",
                reason: format!("{:?} is not a DNS name", self.probe_name),
            });
        }
        self.validation().map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> ResolverConfig {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn defaults() {
        let c = parse("{}");
        assert_eq!(c, ResolverConfig::default());
        assert_eq!(c.mode, ResolverMode::Validating);
        assert_eq!(c.probe_name, ".");
        assert_eq!(c.probe_interval(), Duration::from_secs(300));
        assert_eq!(c.anchor_source(), BUILT_IN_ROOT_ANCHORS);
        assert!(serde_json::from_str::<ResolverConfig>(r#"{"unknown": 1}"#).is_err());
        assert!(serde_json::from_str::<ResolverConfig>(r#"{"mode": "trust_ad"}"#).is_err());
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            (
                r#"{"mode": "trust-ad"}"#,
                Error::ConfigMissing {
                    key: "address",
                    because: "mode = \"trust-ad\"",
                },
            ),
            (
                r#"{"mode": "trust-ad", "address": "192.0.2.1:53"}"#,
                Error::ConfigValue {
                    key: "address",
                    reason: "the AD bit is trusted only from a loopback resolver, not \
                             192.0.2.1:53"
                        .into(),
                },
            ),
            (
                r#"{"probe_interval_secs": 0}"#,
                Error::ConfigValue {
                    key: "probe_interval_secs",
                    reason: "must be 1 to 86400".into(),
                },
            ),
            (
                r#"{"probe_interval_secs": 86401}"#,
                Error::ConfigValue {
                    key: "probe_interval_secs",
                    reason: "must be 1 to 86400".into(),
                },
            ),
            (
                r#"{"probe_name": ""}"#,
                Error::ConfigValue {
                    key: "probe_name",
                    reason: "\"\" is not a DNS name".into(),
                },
            ),
        ];
        for (json, want) in cases {
            assert_eq!(parse(json).validate(), Err(want), "{json}");
        }
        let e = parse(r#"{"trust_anchor": "/nonexistent/anchors"}"#).validate();
        assert!(matches!(e, Err(Error::TrustAnchor { .. })), "{e:?}");
    }

    #[test]
    fn modes_and_upstreams() {
        let c = parse(r#"{"mode": "system"}"#);
        c.validate().unwrap();
        assert!(matches!(c.validation(), Ok(None)));
        let c = parse(r#"{"mode": "trust-ad", "address": "127.0.0.1:5353"}"#);
        let want: SocketAddr = "127.0.0.1:5353".parse().unwrap();
        assert!(matches!(
            c.validation(),
            Ok(Some(Validation::TrustAd { resolver })) if resolver == want
        ));
        assert_eq!(
            c.upstreams(),
            (
                vec!["127.0.0.1:5353".parse().unwrap()],
                UpstreamSource::Address
            )
        );
        let (system, source) = parse("{}").upstreams();
        assert!(!system.is_empty() && system.len() <= MAX_UPSTREAMS);
        assert_ne!(source, UpstreamSource::Address);
        assert_eq!(
            UpstreamSource::System.to_string(),
            "system (/etc/resolv.conf)"
        );
        for (mode, word) in [
            (ResolverMode::System, "system"),
            (ResolverMode::Validating, "validating"),
            (ResolverMode::TrustAd, "trust-ad"),
        ] {
            assert_eq!(mode.as_str(), word);
            assert_eq!(parse(&format!(r#"{{"mode": "{word}"}}"#)).mode, mode);
        }
    }
}
