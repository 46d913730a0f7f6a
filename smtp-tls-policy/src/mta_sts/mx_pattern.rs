//! `mx` patterns of a policy (RFC 8461 §3.2, §4.1) and matching an MX host against them.
//!
//! Rules:
//! * A pattern is a host name or `*.` followed by one (RFC 8461 §3.2 `sts-policy-mx-value`).
//!   U-labels are turned into A-labels (IDNA, as [`DnsName::parse`] does), case is folded and one
//!   trailing dot is dropped, on the pattern and on the host alike.
//! * `*.example.com` matches exactly one left-most label: `mx1.example.com`, but neither
//!   `example.com` nor `a.b.example.com` (RFC 8461 §4.1).
//! * IP addresses and empty patterns are refused: MTA-STS names hosts, never addresses.
//!
//! A miss says why ([`MxMiss`]): "pattern matches one label; host has two" rather than "no match".

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::identity::{DnsName, NameError};

/// One `mx` pattern: an exact host name or a one-label wildcard, normalised.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum MxPattern {
    /// A host name (lowercase A-labels, no trailing dot).
    Exact(DnsName),
    /// `*.` + `parent`: any host of exactly one more label under `parent`.
    Wildcard {
        /// The name after `*.`.
        parent: DnsName,
    },
}

/// Why an `mx` value is not a usable pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum MxPatternError {
    /// An empty value (or only `.`, or `*.` alone).
    #[error("empty pattern")]
    Empty,
    /// An IP address (or address literal): patterns name hosts.
    #[error("an IP address, not a host name")]
    IpAddress,
    /// `*` anywhere but as the whole left-most label.
    #[error("`*` is only allowed as the whole left-most label (`*.example.com`)")]
    MisplacedWildcard,
    /// Not a host name.
    #[error("not a host name: {detail}")]
    NotHostName {
        /// Why (the host-name check's reason).
        detail: String,
    },
}

impl MxPattern {
    /// Parses one `mx` value.
    ///
    /// ```
    /// use smtp_tls_policy::mta_sts::MxPattern;
    /// let p = MxPattern::parse("*.Mail.Example.COM.").unwrap();
    /// assert_eq!(p.to_string(), "*.mail.example.com");
    /// assert!(MxPattern::parse("192.0.2.1").is_err());
    /// ```
    pub fn parse(value: &str) -> Result<Self, MxPatternError> {
        let value = value.strip_suffix('.').unwrap_or(value);
        if value.is_empty() {
            return Err(MxPatternError::Empty);
        }
        let bare = value
            .strip_prefix('[')
            .and_then(|v| v.strip_suffix(']'))
            .unwrap_or(value);
        let bare = bare
            .get(..5)
            .filter(|tag| tag.eq_ignore_ascii_case("ipv6:"))
            .and_then(|_| bare.get(5..))
            .unwrap_or(bare);
        if bare.parse::<std::net::IpAddr>().is_ok() {
            return Err(MxPatternError::IpAddress);
        }
        let name = |v: &str| {
            DnsName::parse(v).map_err(|reason| match reason {
                NameError::Empty => MxPatternError::Empty,
                NameError::Wildcard => MxPatternError::MisplacedWildcard,
                NameError::NumericTld => MxPatternError::IpAddress,
                reason => MxPatternError::NotHostName {
                    detail: reason.to_string(),
                },
            })
        };
        match value.strip_prefix("*.") {
            Some(parent) => Ok(Self::Wildcard {
                parent: name(parent)?,
            }),
            None if value == "*" => Err(MxPatternError::Empty),
            None => name(value).map(Self::Exact),
        }
    }

    /// Matches one MX host name (as in the MX answer; a trailing dot, case and U-labels are
    /// normalised first).
    pub fn matches(&self, host: &str) -> MxMatch {
        match DnsName::parse(host) {
            Ok(host) => self.matches_name(&host),
            Err(reason) => MxMatch::Miss(MxMiss::InvalidHost {
                reason: reason.to_string(),
            }),
        }
    }

    /// Matches one already normalised host name.
    pub fn matches_name(&self, host: &DnsName) -> MxMatch {
        let host = host.as_str();
        match self {
            Self::Exact(name) if name.as_str() == host => MxMatch::Match,
            Self::Exact(_) => MxMatch::Miss(MxMiss::DifferentHost),
            Self::Wildcard { parent } => {
                let parent = parent.as_str();
                if host == parent {
                    return MxMatch::Miss(MxMiss::WildcardParentItself);
                }
                match host.strip_suffix(parent).and_then(|p| p.strip_suffix('.')) {
                    Some(prefix) => {
                        let labels = prefix.split('.').count();
                        if labels == 1 {
                            MxMatch::Match
                        } else {
                            MxMatch::Miss(MxMiss::WildcardDepth {
                                host_labels: labels,
                            })
                        }
                    }
                    None => MxMatch::Miss(MxMiss::OutsideWildcard),
                }
            }
        }
    }
}

impl fmt::Display for MxPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(name) => name.fmt(f),
            Self::Wildcard { parent } => write!(f, "*.{parent}"),
        }
    }
}

impl TryFrom<String> for MxPattern {
    type Error = MxPatternError;
    fn try_from(s: String) -> Result<Self, MxPatternError> {
        Self::parse(&s)
    }
}

impl From<MxPattern> for String {
    fn from(p: MxPattern) -> Self {
        p.to_string()
    }
}

/// Whether one pattern matches one host.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum MxMatch {
    /// The host matches the pattern.
    Match,
    /// It does not, and why.
    Miss(MxMiss),
}

/// Why a host does not match a pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "miss", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum MxMiss {
    /// An exact pattern naming another host.
    DifferentHost,
    /// The host is not under the wildcard's parent.
    OutsideWildcard,
    /// The host is the wildcard's parent itself: `*.` stands for one label, not none.
    WildcardParentItself,
    /// The host has more than one label in place of the wildcard's one.
    WildcardDepth {
        /// How many labels the host has where the pattern has `*`.
        host_labels: usize,
    },
    /// The host is not a valid host name.
    InvalidHost {
        /// Why.
        reason: String,
    },
}

impl fmt::Display for MxMiss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DifferentHost => f.write_str("pattern names another host"),
            Self::OutsideWildcard => f.write_str("host is not under the wildcard's parent"),
            Self::WildcardParentItself => {
                f.write_str("pattern matches one label; host has none in its place")
            }
            Self::WildcardDepth { host_labels } => write!(
                f,
                "pattern matches one label; host has {}",
                number_word(*host_labels)
            ),
            Self::InvalidHost { reason } => write!(f, "host name is invalid: {reason}"),
        }
    }
}

fn number_word(n: usize) -> String {
    match n {
        2 => "two".into(),
        3 => "three".into(),
        4 => "four".into(),
        n => n.to_string(),
    }
}

/// An MX host checked against every pattern of a policy.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum MxListMatch {
    /// The first pattern that matched.
    Matched {
        /// The pattern.
        pattern: MxPattern,
    },
    /// No pattern matched: each one's reason, in policy order.
    NotListed {
        /// `(pattern, why it missed)`.
        misses: Vec<(MxPattern, MxMiss)>,
    },
}

impl MxListMatch {
    /// `true` for [`Self::Matched`].
    #[must_use]
    pub fn is_match(&self) -> bool {
        matches!(self, Self::Matched { .. })
    }
}

/// Checks `host` against `patterns` in order.
pub fn match_mx_host(patterns: &[MxPattern], host: &str) -> MxListMatch {
    let mut misses = Vec::new();
    let parsed = DnsName::parse(host);
    for pattern in patterns {
        let result = match &parsed {
            Ok(name) => pattern.matches_name(name),
            Err(reason) => MxMatch::Miss(MxMiss::InvalidHost {
                reason: reason.to_string(),
            }),
        };
        match result {
            MxMatch::Match => {
                return MxListMatch::Matched {
                    pattern: pattern.clone(),
                };
            }
            MxMatch::Miss(miss) => misses.push((pattern.clone(), miss)),
        }
    }
    MxListMatch::NotListed { misses }
}
