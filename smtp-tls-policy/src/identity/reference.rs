//! Reference identities (RFC 6125 §1.8): the names the *client* expects, parsed and normalised
//! once.
//!
//! Normalisation: IDNA (UTS #46, `idna::domain_to_ascii_strict`: STD3 rules, DNS length limits)
//! turns U-labels into A-labels and lowercases; one trailing dot is dropped. An IP literal (also
//! `[v6]` or `[IPv6:v6]`, RFC 5321 §4.1.3 address literals) becomes a [`ReferenceId::Ip`].

use std::fmt;
use std::net::IpAddr;

/// Longest DNS name in presentation format without the trailing dot (RFC 1035 §2.3.4).
pub const MAX_NAME_LEN: usize = 253;
/// Longest DNS label (RFC 1035 §2.3.4).
pub const MAX_LABEL_LEN: usize = 63;

/// Why a name was refused as a reference identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// The name is empty (or only a dot).
    #[error("empty name")]
    Empty,
    /// Longer than [`MAX_NAME_LEN`] octets.
    #[error("longer than {MAX_NAME_LEN} octets")]
    TooLong,
    /// A label is empty (`a..b`) or longer than [`MAX_LABEL_LEN`].
    #[error("empty label or label longer than {MAX_LABEL_LEN} octets")]
    BadLabelLength,
    /// A character outside letters, digits and hyphen (RFC 1123 §2.1), or a label starting or
    /// ending with a hyphen.
    #[error("not in host name syntax (letters, digits, inner hyphens)")]
    Syntax,
    /// A `*` in a reference identity: wildcards are only meaningful in presented identities.
    #[error("wildcards are not allowed in reference identities")]
    Wildcard,
    /// IDNA processing refused the name (bad U-label or A-label).
    #[error("IDNA processing failed")]
    Idna,
    /// The last label is all digits: neither a host name nor a valid IP address.
    #[error("numeric top-level label (not a host name, not an IP address)")]
    NumericTld,
}

/// A DNS name used as a reference identity: lowercase A-labels, no trailing dot, syntax checked.
///
/// ```
/// use smtp_tls_policy::identity::DnsName;
/// let name = DnsName::parse("MX1.Bücher.Example.").unwrap();
/// assert_eq!(name.as_str(), "mx1.xn--bcher-kva.example");
/// assert!(DnsName::parse("*.example.com").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DnsName(String);

impl DnsName {
    /// Parses and normalises a host name (see the module docs).
    pub fn parse(input: &str) -> Result<Self, NameError> {
        let trimmed = input.strip_suffix('.').unwrap_or(input);
        if trimmed.is_empty() {
            return Err(NameError::Empty);
        }
        if trimmed.contains('*') {
            return Err(NameError::Wildcard);
        }
        // Bound the work before IDNA sees it: a U-label name can be longer in characters than its
        // A-label form, but not by more than a factor well below 4.
        if trimmed.len() > 4 * MAX_NAME_LEN {
            return Err(NameError::TooLong);
        }
        let ascii = if trimmed.is_ascii() {
            trimmed.to_ascii_lowercase()
        } else {
            idna::domain_to_ascii_strict(trimmed).map_err(|_| NameError::Idna)?
        };
        check_host_syntax(&ascii)?;
        if ascii.starts_with("xn--") || ascii.contains(".xn--") {
            // A-labels must round-trip through IDNA (RFC 5891 §5.4).
            let checked = idna::domain_to_ascii_strict(&ascii).map_err(|_| NameError::Idna)?;
            if checked != ascii {
                return Err(NameError::Idna);
            }
        }
        Ok(Self(ascii))
    }

    /// The normalised name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Number of labels.
    #[must_use]
    pub fn label_count(&self) -> usize {
        self.0.split('.').count()
    }
}

impl fmt::Display for DnsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks RFC 1123 §2.1 host name syntax on an ASCII, lowercase name without trailing dot.
pub(crate) fn check_host_syntax(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong);
    }
    let mut last = "";
    for label in name.split('.') {
        if label.is_empty() || label.len() > MAX_LABEL_LEN {
            return Err(NameError::BadLabelLength);
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            || label.starts_with('-')
            || label.ends_with('-')
        {
            return Err(NameError::Syntax);
        }
        last = label;
    }
    if last.bytes().all(|b| b.is_ascii_digit()) {
        return Err(NameError::NumericTld);
    }
    Ok(())
}

/// A reference identity: what the client expects the server to be (RFC 6125 §6.2).
///
/// ```
/// use smtp_tls_policy::identity::ReferenceId;
/// assert!(matches!(ReferenceId::parse("[192.0.2.1]"), Ok(ReferenceId::Ip(_))));
/// assert!(matches!(ReferenceId::parse("mail.example.com."), Ok(ReferenceId::Dns(_))));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ReferenceId {
    /// A DNS-ID (matched against SAN dNSNames, and the CN where the algorithm allows).
    Dns(DnsName),
    /// An IP address (matched only against SAN iPAddresses).
    Ip(IpAddr),
}

impl ReferenceId {
    /// Parses an IP literal (bare, `[..]` or `[IPv6:..]`) or a host name.
    pub fn parse(input: &str) -> Result<Self, NameError> {
        let inner = input
            .strip_prefix('[')
            .and_then(|s| s.strip_suffix(']'))
            .map(strip_ipv6_tag);
        if let Some(literal) = inner {
            return literal.parse().map(Self::Ip).map_err(|_| NameError::Syntax);
        }
        if let Ok(ip) = input.parse::<IpAddr>() {
            return Ok(Self::Ip(ip));
        }
        DnsName::parse(input).map(Self::Dns)
    }
}

fn strip_ipv6_tag(s: &str) -> &str {
    match s.get(..5) {
        Some(tag) if tag.eq_ignore_ascii_case("ipv6:") => &s[5..],
        _ => s,
    }
}

impl From<DnsName> for ReferenceId {
    fn from(name: DnsName) -> Self {
        Self::Dns(name)
    }
}

impl From<IpAddr> for ReferenceId {
    fn from(ip: IpAddr) -> Self {
        Self::Ip(ip)
    }
}

impl fmt::Display for ReferenceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dns(name) => name.fmt(f),
            Self::Ip(ip) => ip.fmt(f),
        }
    }
}
