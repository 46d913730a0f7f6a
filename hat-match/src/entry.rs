//! Sender entries: the AsyncOS-style syntax of one line of a sender group
//! (seed "Enabling TLS on a Listener's HAT"; CRES note, step 4).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::error::Error;
use crate::name::normalize_name;

/// Longest sender entry accepted (a 253-octet name plus `dnslist[` `]`, with room to spare).
pub const MAX_ENTRY_LEN: usize = 300;

/// What a sender entry matches, parsed. Host names are normalised (see [`crate::normalize_name`]).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// One address: `10.1.1.1`, `2001:db8::1`.
    Address(IpAddr),
    /// A CIDR block: `208.90.57.0/26`, `2001:db8::/32`.
    Cidr(IpNet),
    /// An inclusive range: `10.1.1.10-20`, `10.1.1.10-10.1.2.20`, `2001:db8::1-2001:db8::ff`.
    Range {
        /// First address.
        first: IpAddr,
        /// Last address (same family, not below `first`).
        last: IpAddr,
    },
    /// A partial IPv4 address ending in a dot: `10.2.3.` (a /24), `10.2.` (a /16), `10.` (a /8).
    Ipv4Prefix(Ipv4Net),
    /// An exact host name, matched against forward-confirmed PTR names: `mail.example.com`.
    Host(Box<str>),
    /// A domain suffix written `.example.com`: matches forward-confirmed PTR names *below*
    /// `example.com`, not `example.com` itself. Stored without the leading dot.
    Suffix(Box<str>),
    /// `dnslist[zone]`: matches when the client's reversed-IP query in `zone` answered.
    DnsList(Box<str>),
    /// `ALL`: matches every client.
    All,
}

/// One sender entry: its parsed meaning and its spelling in the configuration.
///
/// ```
/// use hat_match::{EntryKind, SenderEntry};
/// let e: SenderEntry = "208.90.57.0/26".parse()?;
/// assert!(matches!(e.kind(), EntryKind::Cidr(_)));
/// assert_eq!(e.as_str(), "208.90.57.0/26");
/// let e: SenderEntry = ".Res.Cisco.com".parse()?;
/// assert_eq!(e.kind(), &EntryKind::Suffix("res.cisco.com".into()));
/// assert_eq!(e.as_str(), ".Res.Cisco.com"); // the config spelling is kept for verdicts
/// assert!("10.1.1.300".parse::<SenderEntry>().is_err());
/// # Ok::<(), hat_match::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SenderEntry {
    kind: EntryKind,
    text: Box<str>,
}

impl SenderEntry {
    /// Parses one entry. Surrounding ASCII whitespace is ignored; anything else that is not one
    /// of the documented forms is an error.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let t = text.trim_ascii();
        if t.is_empty() {
            return Err(Error::EmptyEntry);
        }
        if t.len() > MAX_ENTRY_LEN {
            return Err(Error::EntryTooLong {
                len: t.len(),
                max: MAX_ENTRY_LEN,
            });
        }
        Ok(Self {
            kind: parse_kind(t)?,
            text: t.into(),
        })
    }

    /// What the entry matches.
    pub fn kind(&self) -> &EntryKind {
        &self.kind
    }

    /// The entry as written in the configuration (trimmed).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether matching this entry needs PTR facts (host names and suffixes).
    pub fn needs_ptr(&self) -> bool {
        matches!(self.kind, EntryKind::Host(_) | EntryKind::Suffix(_))
    }

    /// The inclusive address interval of an address-like entry (`ALL` gives one interval per
    /// family, so it returns `None` here; see [`Self::matches_ip`]).
    pub fn ip_interval(&self) -> Option<(IpAddr, IpAddr)> {
        match &self.kind {
            EntryKind::Address(a) => Some((*a, *a)),
            EntryKind::Cidr(n) => Some((n.network(), n.broadcast())),
            EntryKind::Range { first, last } => Some((*first, *last)),
            EntryKind::Ipv4Prefix(n) => Some((n.network().into(), n.broadcast().into())),
            _ => None,
        }
    }

    /// Whether this entry matches `ip` on the address alone (address-like entries and `ALL`).
    pub fn matches_ip(&self, ip: IpAddr) -> bool {
        match &self.kind {
            EntryKind::All => true,
            EntryKind::Address(a) => *a == ip,
            EntryKind::Cidr(n) => n.contains(&ip),
            EntryKind::Ipv4Prefix(n) => matches!(ip, IpAddr::V4(v4) if n.contains(&v4)),
            EntryKind::Range { first, last } => match (first, last, ip) {
                (IpAddr::V4(f), IpAddr::V4(l), IpAddr::V4(i)) => *f <= i && i <= *l,
                (IpAddr::V6(f), IpAddr::V6(l), IpAddr::V6(i)) => *f <= i && i <= *l,
                _ => false,
            },
            EntryKind::Host(_) | EntryKind::Suffix(_) | EntryKind::DnsList(_) => false,
        }
    }

    /// Whether this host-name entry matches the normalised name `name` (exact, or strictly
    /// below a suffix).
    pub fn matches_name(&self, name: &str) -> bool {
        match &self.kind {
            EntryKind::Host(h) => **h == *name,
            EntryKind::Suffix(s) => {
                name.len() > s.len() + 1
                    && name.ends_with(&**s)
                    && name.as_bytes()[name.len() - s.len() - 1] == b'.'
            }
            _ => false,
        }
    }
}

impl FromStr for SenderEntry {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::parse(s)
    }
}

impl fmt::Display for SenderEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn parse_kind(t: &str) -> Result<EntryKind, Error> {
    if t.eq_ignore_ascii_case("ALL") {
        return Ok(EntryKind::All);
    }
    if t.len() >= 8 && t.as_bytes()[..8].eq_ignore_ascii_case(b"dnslist[") {
        let zone = t[8..]
            .strip_suffix(']')
            .filter(|z| !z.contains(['[', ']']))
            .ok_or_else(|| Error::InvalidDnsList { text: t.to_owned() })?;
        return Ok(EntryKind::DnsList(normalize_name(zone)?));
    }
    if t.contains(':') {
        return parse_v6(t);
    }
    if t.as_bytes()[0].is_ascii_digit()
        && t.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'/'))
    {
        return parse_v4(t);
    }
    if let Some(suffix) = t.strip_prefix('.') {
        if suffix.starts_with('.') || suffix.is_empty() {
            return Err(Error::InvalidName {
                text: t.to_owned(),
                problem: crate::NameProblem::EmptyLabel,
            });
        }
        return Ok(EntryKind::Suffix(normalize_name(suffix)?));
    }
    Ok(EntryKind::Host(normalize_name(t)?))
}

fn bad_v4(t: &str) -> Error {
    Error::InvalidIpv4 { text: t.to_owned() }
}

fn bad_v6(t: &str) -> Error {
    Error::InvalidIpv6 { text: t.to_owned() }
}

/// One decimal octet, no sign, no leading zero (a leading zero reads as octal to some tools).
fn octet(s: &str) -> Option<u8> {
    if s.is_empty() || s.len() > 3 || (s.len() > 1 && s.starts_with('0')) {
        return None;
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn parse_prefix_len(t: &str, len: &str, max: u8) -> Result<u8, Error> {
    let valid = !len.is_empty() && len.len() <= 3 && len.bytes().all(|b| b.is_ascii_digit());
    let value: u32 = if valid {
        len.parse().unwrap_or(u32::MAX)
    } else {
        u32::MAX
    };
    if !valid || (len.len() > 1 && len.starts_with('0')) {
        return Err(if max == 32 { bad_v4(t) } else { bad_v6(t) });
    }
    u8::try_from(value)
        .ok()
        .filter(|v| *v <= max)
        .ok_or_else(|| Error::PrefixLength {
            text: t.to_owned(),
            len: value,
            max,
        })
}

fn parse_v4(t: &str) -> Result<EntryKind, Error> {
    if let Some((addr, len)) = t.split_once('/') {
        let addr = Ipv4Addr::from_str(addr).map_err(|_| bad_v4(t))?;
        let len = parse_prefix_len(t, len, 32)?;
        let net = Ipv4Net::new(addr, len).map_err(|_| bad_v4(t))?;
        if net.network() != addr {
            return Err(Error::CidrHostBits {
                text: t.to_owned(),
                network: net.trunc().to_string(),
            });
        }
        return Ok(EntryKind::Cidr(net.into()));
    }
    if let Some((first, last)) = t.split_once('-') {
        let first = Ipv4Addr::from_str(first).map_err(|_| bad_v4(t))?;
        let last = if last.contains('.') {
            Ipv4Addr::from_str(last).map_err(|_| bad_v4(t))?
        } else {
            // `10.1.1.10-20`: the range is in the last octet.
            let [a, b, c, _] = first.octets();
            Ipv4Addr::new(a, b, c, octet(last).ok_or_else(|| bad_v4(t))?)
        };
        if last < first {
            return Err(Error::ReversedRange { text: t.to_owned() });
        }
        return Ok(EntryKind::Range {
            first: first.into(),
            last: last.into(),
        });
    }
    if let Some(partial) = t.strip_suffix('.') {
        // `10.2.3.`, `10.2.`, `10.`: a prefix of whole octets.
        let mut octets = [0u8; 4];
        let mut count = 0usize;
        for part in partial.split('.') {
            if count == 3 {
                return Err(bad_v4(t));
            }
            octets[count] = octet(part).ok_or_else(|| bad_v4(t))?;
            count += 1;
        }
        let len = u8::try_from(count * 8).map_err(|_| bad_v4(t))?;
        let net = Ipv4Net::new(Ipv4Addr::from(octets), len).map_err(|_| bad_v4(t))?;
        return Ok(EntryKind::Ipv4Prefix(net));
    }
    Ipv4Addr::from_str(t)
        .map(|a| EntryKind::Address(a.into()))
        .map_err(|_| bad_v4(t))
}

fn check_not_mapped(t: &str, first: Ipv6Addr, last: Ipv6Addr) -> Result<(), Error> {
    let mapped = |a: Ipv6Addr| a.to_ipv4_mapped().is_some();
    if mapped(first) && mapped(last) {
        return Err(Error::Ipv4Mapped { text: t.to_owned() });
    }
    Ok(())
}

fn parse_v6(t: &str) -> Result<EntryKind, Error> {
    if let Some((addr, len)) = t.split_once('/') {
        let addr = Ipv6Addr::from_str(addr).map_err(|_| bad_v6(t))?;
        let len = parse_prefix_len(t, len, 128)?;
        let net = Ipv6Net::new(addr, len).map_err(|_| bad_v6(t))?;
        if net.network() != addr {
            return Err(Error::CidrHostBits {
                text: t.to_owned(),
                network: net.trunc().to_string(),
            });
        }
        check_not_mapped(t, net.network(), net.broadcast())?;
        return Ok(EntryKind::Cidr(net.into()));
    }
    if let Some((first, last)) = t.split_once('-') {
        let first = Ipv6Addr::from_str(first).map_err(|_| bad_v6(t))?;
        let last = Ipv6Addr::from_str(last).map_err(|_| bad_v6(t))?;
        if last < first {
            return Err(Error::ReversedRange { text: t.to_owned() });
        }
        check_not_mapped(t, first, last)?;
        return Ok(EntryKind::Range {
            first: first.into(),
            last: last.into(),
        });
    }
    let addr = Ipv6Addr::from_str(t).map_err(|_| bad_v6(t))?;
    check_not_mapped(t, addr, addr)?;
    Ok(EntryKind::Address(addr.into()))
}

#[cfg(test)]
#[path = "entry_tests.rs"]
mod tests;
