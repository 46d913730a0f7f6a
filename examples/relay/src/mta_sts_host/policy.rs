//! The policies we publish (RFC 8461 §3.2), sans-IO: a validated policy, its text and the `id`
//! of the `_mta-sts` TXT record that announces it (RFC 8461 §3.1).
//!
//! Kept small on purpose: when `smtp_tls_policy::mta_sts` (the policy parser) lands, `MxPattern`
//! and `PolicyMode` should become its types and [`PublishedPolicy::new`] should check that the
//! generated text parses back to the same policy.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use smtp_tls_policy::identity::DnsName;

use super::MtaStsHostError;

/// Largest `max_age` (RFC 8461 §3.2: "up to 31557600", about one year).
pub const MAX_MAX_AGE: u64 = 31_557_600;
/// Most `mx` patterns in one policy (a bound of ours; the RFC sets none).
pub const MAX_MX_PATTERNS: usize = 64;
/// Hex digits of SHA-256 used as the TXT record's `id` (RFC 8461 §3.1: 1–32 alphanumerics).
pub const ID_LEN: usize = 16;

/// `mode` (RFC 8461 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum PolicyMode {
    /// Senders must not deliver to an MX host that fails the policy.
    Enforce,
    /// Senders deliver anyway and report failures (TLS-RPT).
    Testing,
    /// Senders drop any cached policy: the domain leaves MTA-STS.
    None,
}

impl PolicyMode {
    /// The value in the policy file.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enforce => "enforce",
            Self::Testing => "testing",
            Self::None => "none",
        }
    }
}

/// One `mx` pattern: a host name, or `*.` followed by one (the wildcard covers exactly one
/// left-most label, RFC 8461 §4.1). Lowercase A-labels, no trailing dot.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MxPattern(String);

impl MxPattern {
    /// Parses and normalises a pattern; IP addresses, empty patterns and wildcards other than a
    /// whole left-most `*` label are refused.
    pub fn parse(input: &str) -> Result<Self, MtaStsHostError> {
        let bad = |reason: &'static str| MtaStsHostError::BadMxPattern {
            pattern: input.to_owned(),
            reason,
        };
        let bare = input.strip_prefix('[').and_then(|s| s.strip_suffix(']'));
        if input.parse::<IpAddr>().is_ok() || bare.is_some_and(|s| s.parse::<IpAddr>().is_ok()) {
            return Err(MtaStsHostError::MxIsIpAddress {
                pattern: input.to_owned(),
            });
        }
        let (wildcard, name) = match input.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, input),
        };
        if name.is_empty() {
            return Err(bad("empty"));
        }
        if name.contains('*') {
            return Err(bad(
                "a wildcard must be the whole left-most label (`*.example.com`)",
            ));
        }
        let name = DnsName::parse(name).map_err(|_| bad("not a host name"))?;
        if wildcard && !name.as_str().contains('.') {
            return Err(bad("a wildcard needs at least two labels after it"));
        }
        Ok(Self(if wildcard {
            format!("*.{}", name.as_str())
        } else {
            name.as_str().to_owned()
        }))
    }

    /// The pattern as written in the policy file.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A validated policy for one domain, with its text and TXT record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedPolicy {
    domain: DnsName,
    mode: PolicyMode,
    max_age: u64,
    mx: Vec<MxPattern>,
    text: String,
    id: String,
}

impl PublishedPolicy {
    /// Validates a policy for `domain` (RFC 8461 §3.2): `max_age` at most [`MAX_MAX_AGE`], at
    /// least one `mx` unless the mode is `none`, every pattern valid and none repeated.
    pub fn new(
        domain: &str,
        mode: PolicyMode,
        max_age: u64,
        mx: &[String],
    ) -> Result<Self, MtaStsHostError> {
        let domain = policy_domain(domain)?;
        if max_age > MAX_MAX_AGE {
            return Err(MtaStsHostError::MaxAgeTooLarge { max_age });
        }
        if mx.len() > MAX_MX_PATTERNS {
            return Err(MtaStsHostError::TooManyMx {
                count: mx.len(),
                limit: MAX_MX_PATTERNS,
            });
        }
        if mx.is_empty() && mode != PolicyMode::None {
            return Err(MtaStsHostError::NoMx { mode });
        }
        let mut patterns: Vec<MxPattern> = Vec::with_capacity(mx.len());
        for m in mx {
            let p = MxPattern::parse(m)?;
            if patterns.contains(&p) {
                return Err(MtaStsHostError::DuplicateMx {
                    pattern: p.as_str().to_owned(),
                });
            }
            patterns.push(p);
        }
        let text = policy_text(mode, max_age, &patterns);
        let id = policy_id(&text);
        Ok(Self {
            domain,
            mode,
            max_age,
            mx: patterns,
            text,
            id,
        })
    }

    /// The policy domain (lowercase A-labels).
    #[must_use]
    pub fn domain(&self) -> &str {
        self.domain.as_str()
    }

    /// The mode.
    #[must_use]
    pub fn mode(&self) -> PolicyMode {
        self.mode
    }

    /// `max_age` in seconds.
    #[must_use]
    pub fn max_age(&self) -> u64 {
        self.max_age
    }

    /// The `mx` patterns, normalised.
    #[must_use]
    pub fn mx(&self) -> &[MxPattern] {
        &self.mx
    }

    /// The served text: `version: STSv1`, `mode`, the `mx` lines, `max_age`, each line ended
    /// by CRLF.
    #[must_use]
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The TXT record's `id`: the first [`ID_LEN`] hex digits of the SHA-256 of [`Self::text`],
    /// so it changes exactly when the policy does.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The host senders fetch the policy from: `mta-sts.<domain>` (RFC 8461 §3.3).
    #[must_use]
    pub fn policy_host(&self) -> String {
        format!("mta-sts.{}", self.domain.as_str())
    }

    /// The TXT record to publish, as a zone-file line without TTL:
    /// `_mta-sts.<domain> TXT "v=STSv1; id=<id>"`.
    #[must_use]
    pub fn txt_record(&self) -> String {
        format!(
            "_mta-sts.{} TXT \"v=STSv1; id={}\"",
            self.domain.as_str(),
            self.id
        )
    }
}

/// Normalises a policy domain and checks that `mta-sts.<domain>` is a host name.
pub(crate) fn policy_domain(domain: &str) -> Result<DnsName, MtaStsHostError> {
    let bad = || MtaStsHostError::BadDomain {
        domain: domain.to_owned(),
    };
    let name = DnsName::parse(domain).map_err(|_| bad())?;
    if !name.as_str().contains('.') {
        return Err(bad());
    }
    DnsName::parse(&format!("mta-sts.{}", name.as_str())).map_err(|_| bad())?;
    Ok(name)
}

fn policy_text(mode: PolicyMode, max_age: u64, mx: &[MxPattern]) -> String {
    let mut text = format!("version: STSv1\r\nmode: {}\r\n", mode.as_str());
    for m in mx {
        text.push_str("mx: ");
        text.push_str(m.as_str());
        text.push_str("\r\n");
    }
    text.push_str(&format!("max_age: {max_age}\r\n"));
    text
}

/// The `id` of a policy text: the first [`ID_LEN`] lowercase hex digits of its SHA-256.
#[must_use]
pub fn policy_id(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let mut id = String::with_capacity(ID_LEN);
    for b in digest.iter().take(ID_LEN / 2) {
        id.push_str(&format!("{b:02x}"));
    }
    id
}
