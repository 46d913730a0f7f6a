//! `[delivery.mta_sts]`: whether and how the relay discovers and honours the MTA-STS policies
//! (RFC 8461) of its destination domains.
//!
//! ```toml
//! [delivery.mta_sts]
//! enabled = true                      # the default: discover and honour MTA-STS policies
//! cache_dir = "relay-data/mta-sts"    # the policy cache (survives restarts)
//! policy_port = 443                   # the HTTPS port of mta-sts.DOMAIN (test labs only)
//! connect_timeout_secs = 10           # policy fetch: TCP + TLS connect
//! fetch_timeout_secs = 30             # policy fetch: the whole request
//! ```
//!
//! The policy hosts (`mta-sts.DOMAIN`) are verified against the certificate store's enabled CA
//! lists (smtp-tls-policy's `TrustAnchors::from_cert_store`; Mozilla's list without a store),
//! the same anchors as outgoing SMTP. A destination control may still say `mta_sts = "ignore"`
//! for one domain (an operator working around a broken receiver).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::OutboundError;

/// Default of `delivery.mta_sts.cache_dir` (relative to the working directory, as the maildir).
pub const DEFAULT_MTA_STS_CACHE_DIR: &str = "relay-data/mta-sts";
/// Default of `delivery.mta_sts.policy_port`: HTTPS (RFC 8461 §3.3).
pub const DEFAULT_POLICY_PORT: u16 = 443;
/// Longest accepted fetch timeout: a policy fetch holds a delivery task.
const MAX_FETCH_TIMEOUT_SECS: u64 = 300;

/// `[delivery.mta_sts]`. Every field has a default, so the table may be absent.
///
/// ```
/// use relay::outbound::MtaStsConfig;
/// let c: MtaStsConfig = toml::from_str("policy_port = 8443\n").unwrap();
/// assert!(c.enabled);
/// assert_eq!(c.policy_port, 8443);
/// c.validate().unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct MtaStsConfig {
    /// Discover and honour MTA-STS policies (default `true`).
    pub enabled: bool,
    /// The policy cache directory (relative to the working directory); one crash-safe file per
    /// policy domain; it persists across restarts (RFC 8461 §5.1: a cached policy still
    /// applies when DNS or the policy host is down).
    pub cache_dir: PathBuf,
    /// The TCP port of the policy host `mta-sts.DOMAIN` (default 443; another port only for
    /// test labs).
    pub policy_port: u16,
    /// Policy fetch: connect and TLS handshake limit, seconds.
    pub connect_timeout_secs: u64,
    /// Policy fetch: limit of the whole request, seconds.
    pub fetch_timeout_secs: u64,
}

impl Default for MtaStsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            cache_dir: PathBuf::from(DEFAULT_MTA_STS_CACHE_DIR),
            policy_port: DEFAULT_POLICY_PORT,
            connect_timeout_secs: 10,
            fetch_timeout_secs: 30,
        }
    }
}

impl MtaStsConfig {
    /// Checks every value, naming its `delivery.mta_sts.` key.
    pub fn validate(&self) -> Result<(), OutboundError> {
        if self.policy_port == 0 {
            return Err(OutboundError::invalid(
                "delivery.mta_sts.policy_port",
                "must be a TCP port (1 to 65535)",
            ));
        }
        if self.cache_dir.as_os_str().is_empty() {
            return Err(OutboundError::invalid(
                "delivery.mta_sts.cache_dir",
                "must name a directory",
            ));
        }
        for (key, v) in [
            (
                "delivery.mta_sts.connect_timeout_secs",
                self.connect_timeout_secs,
            ),
            (
                "delivery.mta_sts.fetch_timeout_secs",
                self.fetch_timeout_secs,
            ),
        ] {
            if v == 0 || v > MAX_FETCH_TIMEOUT_SECS {
                return Err(OutboundError::invalid(
                    key,
                    format!("must be 1 to {MAX_FETCH_TIMEOUT_SECS}"),
                ));
            }
        }
        if self.connect_timeout_secs > self.fetch_timeout_secs {
            return Err(OutboundError::invalid(
                "delivery.mta_sts.connect_timeout_secs",
                "must not exceed fetch_timeout_secs",
            ));
        }
        Ok(())
    }

    /// The cache directory.
    #[must_use]
    pub fn cache_dir(&self) -> &Path {
        &self.cache_dir
    }

    /// The fetch's connect limit.
    #[must_use]
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_secs)
    }

    /// The fetch's total limit.
    #[must_use]
    pub fn fetch_timeout(&self) -> Duration {
        Duration::from_secs(self.fetch_timeout_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_bad_values_name_their_key() {
        let c = MtaStsConfig::default();
        assert!(c.enabled);
        assert_eq!(c.policy_port, 443);
        assert_eq!(c.cache_dir(), Path::new(DEFAULT_MTA_STS_CACHE_DIR));
        c.validate().unwrap();
        for (text, key) in [
            ("policy_port = 0", "delivery.mta_sts.policy_port"),
            ("cache_dir = \"\"", "delivery.mta_sts.cache_dir"),
            (
                "fetch_timeout_secs = 0",
                "delivery.mta_sts.fetch_timeout_secs",
            ),
            (
                "connect_timeout_secs = 301",
                "delivery.mta_sts.connect_timeout_secs",
            ),
            (
                "connect_timeout_secs = 20\nfetch_timeout_secs = 10",
                "delivery.mta_sts.connect_timeout_secs",
            ),
        ] {
            let c: MtaStsConfig = toml::from_str(text).unwrap();
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(key), "{text}: {e}");
        }
        assert!(toml::from_str::<MtaStsConfig>("enable = true").is_err());
    }
}
