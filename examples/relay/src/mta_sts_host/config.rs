//! `[[https_listener]]` and `[[mta_sts_policy]]` in `relay.toml`.
//!
//! ```toml
//! [[https_listener]]
//! name = "mta-sts"
//! address = "0.0.0.0:443"
//! certificate = "mta-sts"          # cert-store name; absent: `certs assign --https-listener`
//! max_connections_per_ip = 8       # connections at once from one client address (default)
//!
//! [[mta_sts_policy]]
//! domain = "example.org"           # served as https://mta-sts.example.org/.well-known/mta-sts.txt
//! mode = "enforce"                 # enforce | testing | none
//! max_age = 604800                 # seconds, at most 31557600
//! mx = ["mx1.example.org", "*.mx.example.org"]
//! ```
//!
//! Every HTTPS listener serves every policy.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::MtaStsHostError;
use super::policy::{Mode, PublishedPolicy};

/// Most HTTPS listeners.
pub const MAX_HTTPS_LISTENERS: usize = 16;
/// Most policies.
pub const MAX_POLICIES: usize = 1024;

/// One `[[https_listener]]`: an HTTPS server that serves only the MTA-STS policies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct HttpsListenerConfig {
    /// Unique name among the HTTPS listeners (logs, cert-store assignment).
    pub name: String,
    /// Address and port to listen on.
    pub address: SocketAddr,
    /// Certificate name in the cert store (`demo` = the built-in demonstration certificate);
    /// absent: the certificate assigned in the store to this HTTPS listener
    /// (`smtp-tls-check certs assign --https-listener NAME`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    /// Most connections at once; more are closed at once.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Most connections at once from one client address (IPv4-mapped IPv6 counted as IPv4);
    /// more from it are closed at once.
    #[serde(default = "default_max_connections_per_ip")]
    pub max_connections_per_ip: usize,
    /// Time allowed for the TLS handshake and a request's header.
    #[serde(default = "default_header_timeout")]
    pub header_read_timeout_secs: u64,
    /// Longest life of one connection, whatever it does.
    #[serde(default = "default_lifetime")]
    pub connection_lifetime_secs: u64,
}

fn default_max_connections() -> usize {
    256
}
fn default_max_connections_per_ip() -> usize {
    8
}
fn default_header_timeout() -> u64 {
    10
}
fn default_lifetime() -> u64 {
    30
}

impl HttpsListenerConfig {
    /// Checks the limits; `Err((key, reason))` names the key within the table.
    pub(crate) fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.name.is_empty() || self.name.len() > 64 || self.name.chars().any(char::is_control) {
            return Err(("name", "1 to 64 printable characters".into()));
        }
        if let Some(c) = &self.certificate
            && cert_store::validate_name(c).is_err()
        {
            return Err(("certificate", format!("{c:?} is not a certificate name")));
        }
        if !(1..=65_536).contains(&self.max_connections) {
            return Err(("max_connections", "1 to 65536".into()));
        }
        if !(1..=65_536).contains(&self.max_connections_per_ip) {
            return Err(("max_connections_per_ip", "1 to 65536".into()));
        }
        if !(1..=300).contains(&self.header_read_timeout_secs) {
            return Err(("header_read_timeout_secs", "1 to 300".into()));
        }
        if !(1..=3600).contains(&self.connection_lifetime_secs) {
            return Err(("connection_lifetime_secs", "1 to 3600".into()));
        }
        Ok(())
    }
}

/// One `[[mta_sts_policy]]`: the policy of a domain we receive mail for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct MtaStsPolicyConfig {
    /// The policy domain (the domain of the recipient addresses).
    pub domain: String,
    /// `enforce`, `testing` or `none`.
    pub mode: Mode,
    /// How long senders may cache the policy, in seconds (at most 31557600).
    pub max_age: u64,
    /// The MX host patterns (`mx1.example.org`, `*.example.org`); none only with `mode = "none"`.
    #[serde(default)]
    pub mx: Vec<String>,
}

impl MtaStsPolicyConfig {
    /// The validated policy.
    pub fn publish(&self) -> Result<PublishedPolicy, MtaStsHostError> {
        PublishedPolicy::new(&self.domain, self.mode, self.max_age, &self.mx)
    }
}
