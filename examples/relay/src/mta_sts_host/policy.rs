//! The policies we publish (RFC 8461 §3.2), sans-IO: a validated policy, its text and the `id`
//! of the `_mta-sts` TXT record that announces it (RFC 8461 §3.1).
//!
//! The vocabulary is the library's ([`smtp_tls_policy::mta_sts`]): [`Mode`], [`MxPattern`],
//! [`PolicyDomain`], and the generated text must parse back ([`Policy::parse`]) to the policy
//! it was made from, so we never publish a file our own sender would read differently.

use sha2::{Digest, Sha256};
use smtp_tls_policy::identity::DnsName;
pub use smtp_tls_policy::mta_sts::{Mode, MxPattern, MxPatternError, Policy, PolicyDomain};

use super::MtaStsHostError;

/// Largest `max_age` (RFC 8461 §3.2: "up to 31557600", about one year).
pub const MAX_MAX_AGE: u64 = 31_557_600;
/// Most `mx` patterns in one policy (a bound of ours; the RFC sets none).
pub const MAX_MX_PATTERNS: usize = 64;
/// Hex digits of SHA-256 used as the TXT record's `id` (RFC 8461 §3.1: 1–32 alphanumerics).
pub const ID_LEN: usize = 16;

/// A wildcard's place, in [`MtaStsHostError::BadMxPattern`].
const MISPLACED_WILDCARD: &str = "a wildcard must be the whole left-most label (`*.example.com`)";

/// Parses one configured `mx` pattern with the library's parser, with this host's stricter
/// rules and messages: IP addresses named as such, a wildcard needs at least two labels after
/// it (`*.test` would cover a whole TLD).
pub fn parse_mx_pattern(input: &str) -> Result<MxPattern, MtaStsHostError> {
    let bad = |reason: &'static str| MtaStsHostError::BadMxPattern {
        pattern: input.to_owned(),
        reason,
    };
    let name = input.strip_prefix("*.").unwrap_or(input);
    if name.is_empty() {
        return Err(bad("empty"));
    }
    if name.contains('*') {
        return Err(bad(MISPLACED_WILDCARD));
    }
    let pattern = MxPattern::parse(input).map_err(|e| match e {
        MxPatternError::IpAddress => MtaStsHostError::MxIsIpAddress {
            pattern: input.to_owned(),
        },
        MxPatternError::Empty => bad("empty"),
        MxPatternError::MisplacedWildcard => bad(MISPLACED_WILDCARD),
        _ => bad("not a host name"),
    })?;
    if let MxPattern::Wildcard { parent } = &pattern {
        if !parent.as_str().contains('.') {
            return Err(bad("a wildcard needs at least two labels after it"));
        }
    }
    Ok(pattern)
}

/// A validated policy for one domain, with its text and TXT record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedPolicy {
    domain: PolicyDomain,
    /// The generated text as the library reads it back.
    policy: Policy,
    id: String,
}

impl PublishedPolicy {
    /// Validates a policy for `domain` (RFC 8461 §3.2): `max_age` at most [`MAX_MAX_AGE`], at
    /// least one `mx` unless the mode is `none`, every pattern valid and none repeated; then
    /// checks that the generated text parses back ([`Policy::parse`]) to this very policy.
    pub fn new(
        domain: &str,
        mode: Mode,
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
        if mx.is_empty() && mode != Mode::None {
            return Err(MtaStsHostError::NoMx { mode });
        }
        let mut patterns: Vec<MxPattern> = Vec::with_capacity(mx.len());
        for m in mx {
            let p = parse_mx_pattern(m)?;
            if patterns.contains(&p) {
                return Err(MtaStsHostError::DuplicateMx {
                    pattern: p.to_string(),
                });
            }
            patterns.push(p);
        }
        let text = policy_text(mode, max_age, &patterns);
        let policy = Policy::parse(text.as_bytes())
            .map_err(|source| MtaStsHostError::GeneratedPolicyUnreadable { source })?;
        if policy.mode != mode
            || policy.max_age != max_age
            || policy.mx != patterns
            || !policy.notes.is_empty()
            || policy.text != text
        {
            return Err(MtaStsHostError::GeneratedPolicyDiffers {
                domain: domain.to_string(),
            });
        }
        let id = policy_id(&text);
        Ok(Self { domain, policy, id })
    }

    /// The policy domain (lowercase A-labels).
    #[must_use]
    pub fn domain(&self) -> &str {
        self.domain.as_str()
    }

    /// The policy as a sender reads it.
    #[must_use]
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The mode.
    #[must_use]
    pub fn mode(&self) -> Mode {
        self.policy.mode
    }

    /// `max_age` in seconds.
    #[must_use]
    pub fn max_age(&self) -> u64 {
        self.policy.max_age
    }

    /// The `mx` patterns, normalised.
    #[must_use]
    pub fn mx(&self) -> &[MxPattern] {
        &self.policy.mx
    }

    /// The served text: `version: STSv1`, `mode`, the `mx` lines, `max_age`, each line ended
    /// by CRLF.
    #[must_use]
    pub fn text(&self) -> &str {
        &self.policy.text
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
        self.domain.policy_host()
    }

    /// The TXT record to publish, as a zone-file line without TTL:
    /// `_mta-sts.<domain> TXT "v=STSv1; id=<id>"`.
    #[must_use]
    pub fn txt_record(&self) -> String {
        format!("{} TXT \"v=STSv1; id={}\"", self.domain.txt_name(), self.id)
    }
}

/// Normalises a policy domain and checks that it has two labels at least and that
/// `mta-sts.<domain>` is a host name.
pub(crate) fn policy_domain(domain: &str) -> Result<PolicyDomain, MtaStsHostError> {
    let bad = || MtaStsHostError::BadDomain {
        domain: domain.to_owned(),
    };
    let name = PolicyDomain::parse(domain).map_err(|_| bad())?;
    if !name.as_str().contains('.') {
        return Err(bad());
    }
    DnsName::parse(&name.policy_host()).map_err(|_| bad())?;
    Ok(name)
}

fn policy_text(mode: Mode, max_age: u64, mx: &[MxPattern]) -> String {
    let mut text = format!("version: STSv1\r\nmode: {}\r\n", mode.as_str());
    for m in mx {
        text.push_str(&format!("mx: {m}\r\n"));
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
