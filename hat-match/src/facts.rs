//! Facts about a connecting client, gathered by the caller (or by the `resolver` adapter) and
//! handed to the sans-IO matcher.

use std::net::IpAddr;

use crate::error::Error;
use crate::name::normalize_name;

/// Most PTR names considered for one client.
pub const MAX_PTR_NAMES: usize = 16;
/// Most forward (A/AAAA) addresses kept per PTR name.
pub const MAX_FORWARD_ADDRESSES: usize = 32;
/// Most answered DNS-list zones for one client.
pub const MAX_DNSLIST_ZONES: usize = 64;

/// A PTR name of the client with the addresses its forward (A/AAAA) lookup returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PtrName {
    name: Box<str>,
    addresses: Vec<IpAddr>,
}

impl PtrName {
    /// The normalised name (see [`crate::normalize_name`]).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The forward addresses (IPv4-mapped IPv6 addresses are stored as IPv4).
    pub fn addresses(&self) -> &[IpAddr] {
        &self.addresses
    }

    /// Whether the name is forward-confirmed for `ip`: one of its forward addresses is `ip`.
    pub fn confirms(&self, ip: IpAddr) -> bool {
        self.addresses.contains(&ip)
    }
}

/// What is known about a client when it connects.
///
/// The client address is canonicalised: an IPv4-mapped IPv6 address (`::ffff:192.0.2.1`, as a
/// dual-stack socket reports IPv4 clients) is matched as IPv4.
///
/// ```
/// use hat_match::Facts;
/// let mut facts = Facts::new("184.94.241.96".parse()?);
/// facts.add_ptr("MXNAT3.res.cisco.com.", ["184.94.241.96".parse()?])?;
/// facts.add_dnslist("bl.example")?;
/// assert_eq!(facts.confirmed_names().collect::<Vec<_>>(), ["mxnat3.res.cisco.com"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    ip: IpAddr,
    ptr: Vec<PtrName>,
    dnslists: Vec<Box<str>>,
}

impl Facts {
    /// Facts holding only the client address.
    pub fn new(ip: IpAddr) -> Self {
        Self {
            ip: ip.to_canonical(),
            ptr: Vec::new(),
            dnslists: Vec::new(),
        }
    }

    /// Adds a PTR name and the addresses its forward lookup returned (an empty list: the
    /// forward lookup gave nothing, so the name is not confirmed).
    pub fn add_ptr(
        &mut self,
        name: &str,
        forward: impl IntoIterator<Item = IpAddr>,
    ) -> Result<&mut Self, Error> {
        if self.ptr.len() >= MAX_PTR_NAMES {
            return Err(Error::TooManyPtrNames { max: MAX_PTR_NAMES });
        }
        let name = normalize_name(name)?;
        let mut addresses = Vec::new();
        for a in forward {
            if addresses.len() >= MAX_FORWARD_ADDRESSES {
                return Err(Error::TooManyForwardAddresses {
                    name: name.into(),
                    max: MAX_FORWARD_ADDRESSES,
                });
            }
            addresses.push(a.to_canonical());
        }
        self.ptr.push(PtrName { name, addresses });
        Ok(self)
    }

    /// Records that the client's reversed-IP query in DNS-list `zone` answered.
    pub fn add_dnslist(&mut self, zone: &str) -> Result<&mut Self, Error> {
        let zone = normalize_name(zone)?;
        if !self.dnslists.contains(&zone) {
            if self.dnslists.len() >= MAX_DNSLIST_ZONES {
                return Err(Error::TooManyDnsLists {
                    max: MAX_DNSLIST_ZONES,
                });
            }
            self.dnslists.push(zone);
        }
        Ok(self)
    }

    /// The client address (canonical).
    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    /// Every PTR name handed in, confirmed or not.
    pub fn ptr_names(&self) -> &[PtrName] {
        &self.ptr
    }

    /// The PTR names forward-confirmed for the client address: the only names host-name entries
    /// are matched against (otherwise anyone controlling their own PTR record could claim any
    /// name).
    pub fn confirmed_names(&self) -> impl Iterator<Item = &str> {
        self.ptr
            .iter()
            .filter(|p| p.confirms(self.ip))
            .map(PtrName::name)
    }

    /// The DNS-list zones whose query answered (normalised).
    pub fn dnslists(&self) -> impl Iterator<Item = &str> {
        self.dnslists.iter().map(|z| &**z)
    }
}
