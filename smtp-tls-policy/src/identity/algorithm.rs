//! The identity algorithms: which reference identities a delivery uses, which presented
//! identities a certificate offers, and which pair matched.
//!
//! Source: seed "Enabling TLS and Certificate Verification on Delivery" (TLS settings 4–6),
//! RFC 6125 §6, CA/Browser Forum BR §7.1.4.2.

use std::borrow::Cow;

use super::matching::{classify_presented, dns_name_matches};
use super::presented::{NameSource, PresentedIdentities, PresentedName};
use super::reference::{DnsName, ReferenceId};
use crate::destination::DeliveryTls;
use crate::error::Error;

/// Most MX host names a delivery target may carry (bounded work).
pub const MAX_MX_HOSTS: usize = 64;

/// How presented identities are chosen and which reference identities count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IdentityAlgorithm {
    /// ESA "Verify" (TLS settings *Preferred (Verify)* and *Required (Verify)*): presented
    /// identities are every subject CN **and** every SAN dNSName/iPAddress; reference identities
    /// are the destination domain, **every** MX host name as resolved — DNSSEC-secure or not — and
    /// the SMTP route host. Any match verifies.
    ///
    /// **Trust consequence:** MX host names from unsigned DNS are accepted as reference
    /// identities, so an attacker who can forge the MX answer can redirect mail to a host of their
    /// choosing that holds *any* publicly trusted certificate for its own name, and this algorithm
    /// will verify it. It protects against passive eavesdropping and naive interception, not
    /// against DNS forgery.
    Verify,
    /// ESA "Verify Hosted Domains" (TLS setting *Required – Verify Hosted Domains*): presented
    /// identities are the SAN dNSNames (and iPAddresses); the CN is used only when the certificate
    /// has **no** SAN dNSName at all (RFC 6125 §6.4.4). Reference identities are the destination
    /// domain, an explicitly configured SMTP route host, and the MX host names **only when the MX
    /// answer was DNSSEC-secure** ([`MxSecurity::Secure`]): an unsigned MX answer can be forged,
    /// so its host names prove nothing about the destination.
    HostedVerify,
    /// SAN only, never the CN (CA/Browser Forum BR §7.1.4.2.1 — the rule browsers and
    /// rustls-webpki apply). References as for [`Self::HostedVerify`]. Used by the x509-limbo
    /// harness; only with the `limbo` feature.
    #[cfg(feature = "limbo")]
    Strict,
}

impl IdentityAlgorithm {
    /// The identity algorithm of a delivery TLS setting (seed Table 2, settings 4–6):
    /// [`Self::HostedVerify`] for *Required – Verify Hosted Domains*, [`Self::Verify`] for every
    /// other setting (the verifying ones enforce it, the others only report it).
    ///
    /// ```
    /// use smtp_tls_policy::{destination::DeliveryTls, identity::IdentityAlgorithm};
    /// let hosted = IdentityAlgorithm::for_setting(DeliveryTls::RequiredVerifyHostedDomains);
    /// assert_eq!(hosted, IdentityAlgorithm::HostedVerify);
    /// let verify = IdentityAlgorithm::for_setting(DeliveryTls::PreferredVerify);
    /// assert_eq!(verify, IdentityAlgorithm::Verify);
    /// ```
    #[must_use]
    pub fn for_setting(tls: DeliveryTls) -> Self {
        match tls {
            DeliveryTls::RequiredVerifyHostedDomains => Self::HostedVerify,
            _ => Self::Verify,
        }
    }

    /// Short name, used in errors and the CLI.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Verify => "verify",
            Self::HostedVerify => "hosted-verify",
            #[cfg(feature = "limbo")]
            Self::Strict => "strict",
        }
    }

    /// The presented identities this algorithm considers, in matching order.
    #[must_use]
    pub fn presented_names(self, ids: &PresentedIdentities) -> Vec<PresentedName> {
        if self.uses_common_name(ids) {
            ids.all_names().collect()
        } else {
            ids.san_names().collect()
        }
    }

    /// Whether this algorithm uses the subject CN of a certificate with these identities as a
    /// DNS identity: [`Self::Verify`] always, [`Self::HostedVerify`] when there is no SAN
    /// dNSName, `Strict` (feature `limbo`) never. Such a CN is then also held to the dNSName
    /// constraints of the validated path (RFC 5280 §4.2.1.10), as a SAN dNSName is.
    #[must_use]
    pub fn uses_common_name(self, ids: &PresentedIdentities) -> bool {
        match self {
            Self::Verify => true,
            Self::HostedVerify => ids.san_dns_names.is_empty(),
            #[cfg(feature = "limbo")]
            Self::Strict => false,
        }
    }
}

/// Whether the MX answer the delivery used was validated by DNSSEC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum MxSecurity {
    /// Unsigned, bogus, or unknown: the least-trusted value.
    #[default]
    Insecure,
    /// The MX RRset validated as DNSSEC-secure.
    Secure,
}

/// The facts about one delivery that reference identities are made from.
///
/// ```
/// use smtp_tls_policy::identity::{DeliveryTarget, IdentityAlgorithm, MxSecurity};
/// let target = DeliveryTarget::builder("example.com")
///     .with_mx_host("mx1.example.net")
///     .build()
///     .unwrap();
/// // The legacy algorithm trusts the (unsigned) MX answer, hosted-domain verification does not.
/// assert_eq!(target.reference_ids(IdentityAlgorithm::Verify).len(), 2);
/// assert_eq!(target.reference_ids(IdentityAlgorithm::HostedVerify).len(), 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeliveryTarget {
    domain: ReferenceId,
    mx_hosts: Vec<DnsName>,
    mx_security: MxSecurity,
    route_host: Option<ReferenceId>,
}

/// Builds a [`DeliveryTarget`]; names are parsed and checked by [`Self::build`].
#[derive(Debug, Clone)]
pub struct DeliveryTargetBuilder {
    domain: String,
    mx_hosts: Vec<String>,
    mx_security: MxSecurity,
    route_host: Option<String>,
}

impl DeliveryTargetBuilder {
    /// Adds an MX host name (as resolved, in preference order).
    #[must_use]
    pub fn with_mx_host(mut self, host: impl Into<String>) -> Self {
        self.mx_hosts.push(host.into());
        self
    }

    /// Records whether the MX answer was DNSSEC-secure (default: [`MxSecurity::Insecure`]).
    #[must_use]
    pub fn with_mx_security(mut self, security: MxSecurity) -> Self {
        self.mx_security = security;
        self
    }

    /// Sets the explicitly configured SMTP route host (a name or an IP literal).
    #[must_use]
    pub fn with_route_host(mut self, host: impl Into<String>) -> Self {
        self.route_host = Some(host.into());
        self
    }

    /// Parses every name (see [`ReferenceId::parse`]) and checks the limits.
    pub fn build(self) -> Result<DeliveryTarget, Error> {
        let invalid = |name: &str, reason| Error::InvalidReferenceId {
            name: name.to_owned(),
            reason,
        };
        if self.mx_hosts.len() > MAX_MX_HOSTS {
            return Err(Error::TooManyMxHosts {
                count: self.mx_hosts.len(),
                limit: MAX_MX_HOSTS,
            });
        }
        let domain = ReferenceId::parse(&self.domain).map_err(|e| invalid(&self.domain, e))?;
        let mx_hosts = self
            .mx_hosts
            .iter()
            .map(|h| DnsName::parse(h).map_err(|e| invalid(h, e)))
            .collect::<Result<_, _>>()?;
        let route_host = match &self.route_host {
            Some(h) => Some(ReferenceId::parse(h).map_err(|e| invalid(h, e))?),
            None => None,
        };
        Ok(DeliveryTarget {
            domain,
            mx_hosts,
            mx_security: self.mx_security,
            route_host,
        })
    }
}

impl DeliveryTarget {
    /// Starts a target for the destination (recipient) domain.
    #[must_use]
    pub fn builder(domain: impl Into<String>) -> DeliveryTargetBuilder {
        DeliveryTargetBuilder {
            domain: domain.into(),
            mx_hosts: Vec::new(),
            mx_security: MxSecurity::default(),
            route_host: None,
        }
    }

    /// A target made of a single reference identity (what x509-limbo and browsers use).
    #[must_use]
    pub fn single(reference: ReferenceId) -> Self {
        Self {
            domain: reference,
            mx_hosts: Vec::new(),
            mx_security: MxSecurity::Insecure,
            route_host: None,
        }
    }

    /// The destination domain.
    #[must_use]
    pub fn domain(&self) -> &ReferenceId {
        &self.domain
    }

    /// The name of the host actually connected to, for X.509 validation's "server name" check:
    /// the route host if configured, else the first MX host, else the destination domain.
    #[must_use]
    pub fn server_name(&self) -> ReferenceId {
        self.route_host
            .clone()
            .or_else(|| self.mx_hosts.first().cloned().map(ReferenceId::Dns))
            .unwrap_or_else(|| self.domain.clone())
    }

    /// The reference identities `algorithm` uses, in order, without duplicates.
    #[must_use]
    pub fn reference_ids(&self, algorithm: IdentityAlgorithm) -> Vec<ReferenceId> {
        let mx_trusted = match algorithm {
            IdentityAlgorithm::Verify => true,
            IdentityAlgorithm::HostedVerify => self.mx_security == MxSecurity::Secure,
            #[cfg(feature = "limbo")]
            IdentityAlgorithm::Strict => self.mx_security == MxSecurity::Secure,
        };
        let mut ids = vec![self.domain.clone()];
        let mut push = |id: ReferenceId| {
            if !ids.contains(&id) {
                ids.push(id);
            }
        };
        match algorithm {
            IdentityAlgorithm::Verify => {
                self.mx_hosts
                    .iter()
                    .cloned()
                    .map(ReferenceId::Dns)
                    .for_each(&mut push);
                self.route_host.iter().cloned().for_each(&mut push);
            }
            _ => {
                self.route_host.iter().cloned().for_each(&mut push);
                if mx_trusted {
                    self.mx_hosts
                        .iter()
                        .cloned()
                        .map(ReferenceId::Dns)
                        .for_each(&mut push);
                }
            }
        }
        ids
    }
}

/// Which reference identity matched which presented identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdentityMatch {
    /// The reference identity that matched.
    pub reference: ReferenceId,
    /// The presented identity it matched.
    pub presented: PresentedName,
}

/// The outcome of an identity check: every reference identity tried and the match, if any.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IdentityVerdict {
    /// Reference identities tried, in order.
    pub reference_ids: Vec<ReferenceId>,
    /// The first matching pair (reference order, then presented order); `None` = not verified.
    pub matched: Option<IdentityMatch>,
}

/// Does one presented identity match one reference identity? IP references match only SAN
/// iPAddresses; DNS references match dNSNames and (where the algorithm passes them) CNs, a
/// non-ASCII CN being converted to A-labels with IDNA first.
#[must_use]
pub fn presented_matches(presented: &PresentedName, reference: &ReferenceId) -> bool {
    match (reference, presented.source) {
        (ReferenceId::Ip(ip), NameSource::SanIp) => presented.value.parse() == Ok(*ip),
        (ReferenceId::Dns(name), NameSource::SanDns) => dns_name_matches(&presented.value, name),
        (ReferenceId::Dns(name), NameSource::CommonName) => cn_matches(&presented.value, name),
        _ => false,
    }
}

/// Runs `algorithm` over a certificate's identities and the given reference identities.
///
/// ```
/// use smtp_tls_policy::identity::{check_identity, IdentityAlgorithm, PresentedIdentities, ReferenceId};
/// let mut ids = PresentedIdentities::default();
/// ids.common_names.push("mx1.example.com".into());
/// let refs = [ReferenceId::parse("mx1.example.com").unwrap()];
/// assert!(check_identity(&ids, &refs, IdentityAlgorithm::Verify).matched.is_some());
/// // With a SAN dNSName, Hosted Verify no longer reads the CN.
/// ids.san_dns_names.push("other.example.com".into());
/// assert!(check_identity(&ids, &refs, IdentityAlgorithm::HostedVerify).matched.is_none());
/// ```
pub fn check_identity(
    ids: &PresentedIdentities,
    reference_ids: &[ReferenceId],
    algorithm: IdentityAlgorithm,
) -> IdentityVerdict {
    // Borrowed matching: nothing is allocated until a pair matches.
    let use_cn = algorithm.uses_common_name(ids);
    let found = |source, value: &str| PresentedName {
        source,
        value: value.to_owned(),
    };
    let matched = reference_ids.iter().find_map(|reference| {
        let presented = match reference {
            ReferenceId::Ip(ip) => ids
                .san_ip_addresses
                .iter()
                .find(|a| *a == ip)
                .map(|a| found(NameSource::SanIp, &a.to_string())),
            ReferenceId::Dns(name) => use_cn
                .then(|| ids.common_names.iter().find(|cn| cn_matches(cn, name)))
                .flatten()
                .map(|cn| found(NameSource::CommonName, cn))
                .or_else(|| {
                    ids.san_dns_names
                        .iter()
                        .find(|d| dns_name_matches(d, name))
                        .map(|d| found(NameSource::SanDns, d))
                }),
        }?;
        Some(IdentityMatch {
            reference: reference.clone(),
            presented,
        })
    });
    IdentityVerdict {
        reference_ids: reference_ids.to_vec(),
        matched,
    }
}

/// A CN matches like a dNSName, after IDNA conversion when it is not ASCII.
fn cn_matches(cn: &str, name: &DnsName) -> bool {
    cn_ascii(cn).is_some_and(|ascii| dns_name_matches(&ascii, name))
}

/// A CN as the ASCII text it is matched as: itself, or its A-label form when it is not ASCII.
fn cn_ascii(cn: &str) -> Option<Cow<'_, str>> {
    if cn.is_ascii() {
        Some(Cow::Borrowed(cn))
    } else {
        idna::domain_to_ascii_strict(cn).ok().map(Cow::Owned)
    }
}

/// The DNS identity a subject CN stands for when an algorithm uses it as one: its ASCII form
/// (see [`cn_matches`]), lowercase, without a trailing dot; `None` when the CN can never match a
/// DNS reference identity (not a host name nor a `*.` wildcard over one).
pub(crate) fn cn_dns_id(cn: &str) -> Option<String> {
    let ascii = cn_ascii(cn)?;
    classify_presented(&ascii)?;
    let name = ascii.strip_suffix('.').unwrap_or(&ascii);
    Some(name.to_ascii_lowercase())
}

impl IdentityVerdict {
    /// The match, or the error explaining why there is none.
    pub fn into_result(
        self,
        ids: &PresentedIdentities,
        algorithm: IdentityAlgorithm,
    ) -> Result<IdentityMatch, Error> {
        if let Some(m) = self.matched {
            return Ok(m);
        }
        let presented: Vec<String> = algorithm
            .presented_names(ids)
            .iter()
            .map(ToString::to_string)
            .collect();
        if presented.is_empty() {
            return Err(Error::NoPresentedIdentity {
                algorithm: algorithm.name(),
            });
        }
        Err(Error::NameMismatch {
            reference_ids: self.reference_ids.iter().map(ToString::to_string).collect(),
            presented,
        })
    }
}
