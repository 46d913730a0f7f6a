//! The MTA-STS policy host (RFC 8461 §3.3): an optional HTTPS listener serving
//! `https://mta-sts.<domain>/.well-known/mta-sts.txt` for the domains configured in
//! `[[mta_sts_policy]]`, and nothing else — as Mox and Stalwart host their domains' policies.
//!
//! - [`policy`]: a validated policy, its text and the `id` of its `_mta-sts` TXT record (sans-IO);
//! - [`config`]: the `[[https_listener]]` and `[[mta_sts_policy]]` tables;
//! - [`route`]: which answer a request gets (sans-IO);
//! - [`serve`](mod@serve): the tokio / rustls / hyper adapter;
//! - [`start`]: start-up (certificates, the DNS records to publish).
//!
//! The certificate comes from cert-store like an SMTP listener's (the demonstration certificate
//! logs its warning here too); it must be valid for every `mta-sts.<domain>` served, since
//! senders check it (RFC 8461 §3.3).

use std::net::SocketAddr;

pub mod config;
pub mod policy;
pub mod route;
pub mod serve;
pub mod start;

#[cfg(test)]
mod tests;

pub use config::{HttpsListenerConfig, MtaStsPolicyConfig};
pub use policy::{Mode, MxPattern, PublishedPolicy};
pub use route::{Answer, POLICY_PATH, PolicyTable, decide};
pub use serve::{HttpsHost, bind, serve};
pub use start::prepare;

/// Why a policy or an HTTPS listener was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MtaStsHostError {
    /// The policy domain is not a domain name (or `mta-sts.<domain>` is not a host name).
    #[error("{domain:?} is not a policy domain (a domain name with at least two labels)")]
    BadDomain {
        /// The configured domain.
        domain: String,
    },
    /// Two policies for one domain.
    #[error("a second policy for {domain}")]
    DuplicateDomain {
        /// The domain, normalised.
        domain: String,
    },
    /// `max_age` over the RFC's limit.
    #[error(
        "max_age {max_age} is over {}, the RFC 8461 limit",
        policy::MAX_MAX_AGE
    )]
    MaxAgeTooLarge {
        /// The configured value.
        max_age: u64,
    },
    /// `enforce` or `testing` without an `mx` pattern (RFC 8461 §3.2).
    #[error("mode {} needs at least one mx pattern", mode.as_str())]
    NoMx {
        /// The mode.
        mode: Mode,
    },
    /// More `mx` patterns than [`policy::MAX_MX_PATTERNS`].
    #[error("{count} mx patterns, at most {limit}")]
    TooManyMx {
        /// How many were configured.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// An `mx` pattern that is an IP address (RFC 8461 §3.2: patterns are host names).
    #[error("mx {pattern:?} is an IP address; patterns are host names")]
    MxIsIpAddress {
        /// The pattern.
        pattern: String,
    },
    /// An `mx` pattern that is not a host name or `*.` + host name.
    #[error("mx {pattern:?}: {reason}")]
    BadMxPattern {
        /// The pattern.
        pattern: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The same `mx` pattern twice.
    #[error("mx {pattern:?} appears twice")]
    DuplicateMx {
        /// The pattern, normalised.
        pattern: String,
    },
    /// The generated policy text does not parse (a bug of the generator, never published).
    #[error("the generated policy does not parse: {source}")]
    GeneratedPolicyUnreadable {
        /// The parser's error.
        source: smtp_tls_policy::mta_sts::PolicyError,
    },
    /// The generated policy text parses to another policy than the one configured (a bug of
    /// the generator, never published).
    #[error("the generated policy for {domain} reads back differently")]
    GeneratedPolicyDiffers {
        /// The policy domain.
        domain: String,
    },
    /// An HTTPS listener without a certificate in `relay.toml` or assigned in the store.
    #[error(
        "https listener {listener:?} has no certificate: set `certificate` or assign one \
         (smtp-tls-check certs assign --https-listener {listener})"
    )]
    NoCertificate {
        /// The listener.
        listener: String,
    },
    /// The listener's certificate cannot be loaded.
    #[error("https listener {listener:?}: certificate {certificate:?}: {source}")]
    Certificate {
        /// The listener.
        listener: String,
        /// The certificate name.
        certificate: String,
        /// The store's error.
        source: cert_store::Error,
    },
    /// The listening socket cannot be bound.
    #[error("https listener {listener:?}: cannot listen on {address}: {kind}")]
    Bind {
        /// The listener.
        listener: String,
        /// The address.
        address: SocketAddr,
        /// The OS error kind.
        kind: std::io::ErrorKind,
    },
}

/// Validates every policy (domains unique); `Err((index, error))` names the failing entry.
pub fn publish_all(
    policies: &[MtaStsPolicyConfig],
) -> Result<Vec<PublishedPolicy>, (usize, MtaStsHostError)> {
    let mut out: Vec<PublishedPolicy> = Vec::with_capacity(policies.len());
    for (i, p) in policies.iter().enumerate() {
        let published = p.publish().map_err(|e| (i, e))?;
        if out.iter().any(|q| q.domain() == published.domain()) {
            return Err((
                i,
                MtaStsHostError::DuplicateDomain {
                    domain: published.domain().to_owned(),
                },
            ));
        }
        out.push(published);
    }
    Ok(out)
}

/// The certificate name of an HTTPS listener: its `certificate`, else the one assigned in the
/// store to this HTTPS listener.
pub fn certificate_name(
    listener: &HttpsListenerConfig,
    store: Option<&cert_store::CertStore>,
) -> Result<String, MtaStsHostError> {
    listener
        .certificate
        .clone()
        .or_else(|| {
            store.and_then(|s| {
                s.https_listener_certificate(&listener.name)
                    .map(str::to_owned)
            })
        })
        .ok_or_else(|| MtaStsHostError::NoCertificate {
            listener: listener.name.clone(),
        })
}
