//! RFC 5280 §4.2.1.10 dNSName constraints applied to the subject CN when an identity algorithm
//! uses it as a DNS identity.
//!
//! rustls-webpki applies the name constraints of every CA on the path to the SAN entries only:
//! a technically constrained CA could otherwise issue `CN=mx.victim.example` and have it match
//! under [`crate::identity::IdentityAlgorithm::Verify`] (which always uses the CN) or
//! [`crate::identity::IdentityAlgorithm::HostedVerify`] (without SAN dNSNames). OpenSSL refuses
//! such a chain ("permitted subtree violation"); so does this module, during path building.
//!
//! Matching follows rustls-webpki's reading of §4.2.1.10 (`subject_name/dns_name.rs`), so a CN
//! and a SAN dNSName are held to the same rule:
//! * `example.com` permits `example.com` and every name below it, whole labels only
//!   (`badexample.com` is outside);
//! * `.example.com` (a leading period, NSS and rustls-webpki; refused by the RFC 5280 profile)
//!   permits only names strictly below `example.com`;
//! * the empty constraint covers every name;
//! * a wildcard CN is permitted only when every expansion is (`*.example.com` under
//!   `example.com`), and excluded when some expansion could be (`*.com` under an excluded
//!   `victim.com`, CVE-2025-61727);
//! * a constraint that is not a host name never permits and always excludes (fail closed).

use std::cell::Cell;

use x509_parser::asn1_rs::{Any, Class, Tag};
use x509_parser::extensions::{GeneralName, GeneralSubtree, NameConstraints, ParsedExtension};
use x509_parser::oid_registry::OID_X509_EXT_NAME_CONSTRAINTS;
use x509_parser::prelude::FromDer;

use super::CertPosition;
use crate::error::Error;
use crate::identity::reference::check_host_syntax;
use crate::identity::{NameError, cn_dns_id};

/// Most CN-against-subtree comparisons per verification, across every path tried: the budget
/// rustls-webpki gives its own name constraint checks (from Go's `crypto/x509`). Exceeding it
/// refuses the chain with rustls-webpki's error for that limit,
/// `MaximumNameConstraintComparisonsExceeded` (bounded work against peers that send many CNs
/// under many constraints).
pub const MAX_CN_CONSTRAINT_COMPARISONS: usize = 250_000;

/// How a CN breaks the dNSName constraints of one CA.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConstraintBreach {
    /// The CA lists permitted dNSName subtrees and the CN is in none of them.
    #[error("lies outside the permitted dNSName subtrees {permitted:?}")]
    NotPermitted {
        /// The permitted dNSName subtrees, as written in the certificate.
        permitted: Vec<String>,
    },
    /// The CN is in an excluded dNSName subtree.
    #[error("lies in the excluded dNSName subtree {excluded:?}")]
    Excluded {
        /// The excluded subtree, as written in the certificate.
        excluded: String,
    },
}

/// Which subtree list a constraint comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Subtrees {
    Permitted,
    Excluded,
}

/// The dNSName subtrees of one CA's nameConstraints, as written (compared ignoring ASCII case).
#[derive(Debug, Default)]
struct DnsSubtrees {
    permitted: Vec<String>,
    excluded: Vec<String>,
}

impl DnsSubtrees {
    fn from_constraints(nc: &NameConstraints<'_>) -> Self {
        let dns = |list: &Option<Vec<GeneralSubtree<'_>>>| {
            list.iter()
                .flatten()
                .filter_map(|s| match s.base {
                    GeneralName::DNSName(d) => Some(d.to_owned()),
                    _ => None,
                })
                .collect()
        };
        Self {
            permitted: dns(&nc.permitted_subtrees),
            excluded: dns(&nc.excluded_subtrees),
        }
    }

    /// The breach of `name` (a lowercase DNS-ID from [`cn_dns_id`]), if any. Without a
    /// permitted dNSName subtree, every name not excluded is permitted (RFC 5280 §4.2.1.10).
    fn check(&self, name: &str) -> Option<ConstraintBreach> {
        if let Some(excluded) = self
            .excluded
            .iter()
            .find(|base| within(name, base, Subtrees::Excluded))
        {
            return Some(ConstraintBreach::Excluded {
                excluded: excluded.clone(),
            });
        }
        let permitted = self.permitted.is_empty()
            || self
                .permitted
                .iter()
                .any(|base| within(name, base, Subtrees::Permitted));
        (!permitted).then(|| ConstraintBreach::NotPermitted {
            permitted: self.permitted.clone(),
        })
    }
}

/// Is `name` (lowercase ASCII, host-name syntax, maybe a `*.` wildcard) in the subtree `base`?
fn within(name: &str, base: &str, subtrees: Subtrees) -> bool {
    if base.is_empty() {
        return true;
    }
    let (subdomains_only, host) = match base.strip_prefix('.') {
        Some(rest) => (true, rest),
        None => (false, base),
    };
    // A malformed constraint never permits and always excludes (fail closed).
    if !host_syntax_any_case(host) {
        return subtrees == Subtrees::Excluded;
    }
    // `name` is lowercase ASCII; `host` is ASCII (host syntax): compare ignoring case.
    let below = name.len() > host.len()
        && name
            .get(name.len() - host.len()..)
            .is_some_and(|tail| tail.eq_ignore_ascii_case(host))
        && name
            .get(..name.len() - host.len())
            .and_then(|prefix| prefix.strip_suffix('.'))
            .is_some_and(|label| !label.is_empty());
    let literal = below || (!subdomains_only && name.eq_ignore_ascii_case(host));
    if literal || subtrees == Subtrees::Permitted {
        // In a permitted subtree the wildcard label is taken literally: `*.example.com` is
        // within `example.com`, `*.com` is not (some of its expansions are outside).
        return literal;
    }
    // Excluded: could one expansion of the wildcard label fall inside the subtree? When the
    // subtree's host is one label in front of the wildcard's parent (`.victim.com` is read so
    // too, conservatively, as rustls-webpki does).
    name.strip_prefix("*.").is_some_and(|parent| {
        host.split_once('.')
            .is_some_and(|(first, rest)| !first.is_empty() && rest.eq_ignore_ascii_case(parent))
    })
}

/// Host-name syntax (RFC 1123, any case; an all-digit last label allowed) without allocating
/// for the usual lowercase constraint.
fn host_syntax_any_case(host: &str) -> bool {
    let lower;
    let host = if host.bytes().any(|b| b.is_ascii_uppercase()) {
        lower = host.to_ascii_lowercase();
        &lower
    } else {
        host
    };
    matches!(check_host_syntax(host), Ok(()) | Err(NameError::NumericTld))
}

/// DER of the nameConstraints OID (2.5.29.30): a certificate without these octets has no
/// nameConstraints extension rustls-webpki would honour, and is not parsed again.
const NAME_CONSTRAINTS_OID_DER: [u8; 5] = [0x06, 0x03, 0x55, 0x1d, 0x1e];

/// The dNSName subtrees of an intermediate's nameConstraints, if it has any.
fn intermediate_subtrees(der: &[u8], position: CertPosition) -> Result<Option<DnsSubtrees>, Error> {
    if !der
        .windows(NAME_CONSTRAINTS_OID_DER.len())
        .any(|w| w == NAME_CONSTRAINTS_OID_DER)
    {
        return Ok(None);
    }
    let cert = super::parse(der, position)?;
    let mut found = None;
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::NameConstraints(nc) => found = Some(DnsSubtrees::from_constraints(nc)),
            _ if ext.oid == OID_X509_EXT_NAME_CONSTRAINTS => {
                return Err(Error::MalformedCertificate {
                    position,
                    detail: "nameConstraints extension cannot be parsed".into(),
                });
            }
            _ => {}
        }
    }
    Ok(found)
}

/// The dNSName subtrees of a trust anchor's nameConstraints (rustls-webpki keeps the content of
/// the extension's SEQUENCE, without its tag and length): exactly an optional `[0]` permitted
/// and an optional `[1]` excluded list, nothing after them.
fn anchor_subtrees(content: &[u8]) -> Result<DnsSubtrees, Error> {
    let malformed = || Error::MalformedCertificate {
        position: CertPosition::Anchor,
        detail: "nameConstraints cannot be parsed".into(),
    };
    // x509-parser ignores octets left over inside the SEQUENCE: walk the top level first.
    let mut rest = content;
    let mut tags = Vec::new();
    while !rest.is_empty() {
        let (next, any) = Any::from_der(rest).map_err(|_| malformed())?;
        tags.push((any.class(), any.tag()));
        rest = next;
    }
    let permitted = (Class::ContextSpecific, Tag(0));
    let excluded = (Class::ContextSpecific, Tag(1));
    let well_formed = match tags.as_slice() {
        [] => true,
        [only] => *only == permitted || *only == excluded,
        [first, second] => *first == permitted && *second == excluded,
        _ => false,
    };
    if !well_formed {
        return Err(malformed());
    }
    if tags.is_empty() {
        return Ok(DnsSubtrees::default());
    }
    let mut der = vec![0x30];
    match u32::try_from(content.len()) {
        Ok(short @ 0..=0x7f) => der.push(short as u8),
        Ok(long) => {
            let octets: Vec<u8> = long
                .to_be_bytes()
                .into_iter()
                .skip_while(|b| *b == 0)
                .collect();
            der.push(0x80 | octets.len() as u8);
            der.extend(octets);
        }
        Err(_) => return Err(malformed()),
    }
    der.extend_from_slice(content);
    match NameConstraints::from_der(&der) {
        Ok(([], nc)) => Ok(DnsSubtrees::from_constraints(&nc)),
        _ => Err(malformed()),
    }
}

/// Holds every CN in `common_names` that can be a DNS identity to the dNSName constraints of
/// each CA on `path` (intermediates from the leaf up, then the trust anchor).
/// `budget` is what is left of [`MAX_CN_CONSTRAINT_COMPARISONS`] for this verification.
pub(crate) fn check_common_names(
    path: &webpki::VerifiedPath<'_>,
    names: &[(&str, String)],
    budget: &Cell<usize>,
) -> Result<(), Error> {
    if names.is_empty() {
        return Ok(());
    }
    let check = |subtrees: &DnsSubtrees, position: CertPosition| {
        // Charged up front, at the most it can cost: a pathological chain is refused before
        // the work, not after.
        let cost = names
            .len()
            .saturating_mul(subtrees.permitted.len() + subtrees.excluded.len());
        match budget.get().checked_sub(cost) {
            Some(left) => budget.set(left),
            None => {
                budget.set(0);
                return Err(Error::Chain(
                    webpki::Error::MaximumNameConstraintComparisonsExceeded,
                ));
            }
        }
        for (cn, dns_id) in names {
            if let Some(breach) = subtrees.check(dns_id) {
                return Err(Error::CommonNameOutsideNameConstraints {
                    common_name: (*cn).to_owned(),
                    constrained_by: position,
                    breach,
                });
            }
        }
        Ok(())
    };
    for (i, cert) in path.intermediate_certificates().enumerate() {
        let position = CertPosition::Intermediate(i + 1);
        if let Some(subtrees) = intermediate_subtrees(cert.der().as_ref(), position)? {
            check(&subtrees, position)?;
        }
    }
    if let Some(content) = &path.anchor().name_constraints {
        check(&anchor_subtrees(content.as_ref())?, CertPosition::Anchor)?;
    }
    Ok(())
}

/// The CNs (of `common_names`) that can be DNS identities, each with its DNS-ID form.
pub(crate) fn dns_identities(common_names: &[String]) -> Vec<(&str, String)> {
    common_names
        .iter()
        .filter_map(|cn| cn_dns_id(cn).map(|id| (cn.as_str(), id)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use Subtrees::{Excluded, Permitted};

    /// `(DNS-ID, subtree base, list, within?)`, after rustls-webpki's `dns_name.rs` table.
    const CASES: &[(&str, &str, Subtrees, bool)] = &[
        ("example.com", "example.com", Permitted, true),
        ("mx.example.com", "example.com", Permitted, true),
        ("a.b.example.com", "example.com", Permitted, true),
        ("badexample.com", "example.com", Permitted, false),
        ("example.org", "example.com", Permitted, false),
        ("com", "example.com", Permitted, false),
        ("mx.example.com", "Example.COM", Permitted, true),
        // Leading period: strictly below.
        ("mx.example.com", ".example.com", Permitted, true),
        ("example.com", ".example.com", Permitted, false),
        ("xexample.com", ".example.com", Permitted, false),
        ("example.com", ".example.com", Excluded, false),
        ("mx.example.com", ".example.com", Excluded, true),
        // The empty constraint covers everything.
        ("anything.example", "", Permitted, true),
        ("anything.example", "", Excluded, true),
        // Wildcards: literal when permitted, any expansion when excluded.
        ("*.example.com", "example.com", Permitted, true),
        ("*.example.com", ".example.com", Permitted, true),
        ("*.example.com", "mx.example.com", Permitted, false),
        ("*.com", "example.com", Permitted, false),
        ("*.com", "example.com", Excluded, true),
        ("*.com", ".example.com", Excluded, true),
        ("*.example.com", "mx.example.com", Excluded, true),
        ("*.example.com", "a.mx.example.com", Excluded, false),
        ("*.example.com", "example.com", Excluded, true),
        ("*.org", "example.com", Excluded, false),
        // Malformed constraints: never permit, always exclude.
        ("mx.example.com", "*.example.com", Permitted, false),
        ("mx.example.com", "*.example.com", Excluded, true),
        ("mx.example.com", "example..com", Permitted, false),
        ("mx.example.com", "example.com.", Excluded, true),
        ("mx.example.com", "exa mple.com", Excluded, true),
        ("mx.example.com", "ex\u{e4}mple.com", Excluded, true),
    ];

    #[test]
    fn subtree_table() {
        for (name, base, subtrees, expected) in CASES {
            assert_eq!(
                within(name, base, *subtrees),
                *expected,
                "{name} in {subtrees:?} {base}"
            );
        }
    }

    #[test]
    fn breach_order_and_permitted_default() {
        let subtrees = DnsSubtrees {
            permitted: vec!["example.com".into()],
            excluded: vec!["victim.example.com".into()],
        };
        assert_eq!(subtrees.check("mx.example.com"), None);
        assert_eq!(
            subtrees.check("mx.victim.example.com"),
            Some(ConstraintBreach::Excluded {
                excluded: "victim.example.com".into()
            })
        );
        assert_eq!(
            subtrees.check("mx.other.example"),
            Some(ConstraintBreach::NotPermitted {
                permitted: vec!["example.com".into()]
            })
        );
        // No permitted dNSName subtree: every name not excluded is permitted.
        let only_excluded = DnsSubtrees {
            permitted: Vec::new(),
            excluded: vec!["victim.example".into()],
        };
        assert_eq!(only_excluded.check("mx.other.example"), None);
    }

    #[test]
    fn cn_dns_identities() {
        let cns = [
            "MX.Example.COM.".to_owned(),
            "Example Mail Server".to_owned(),
            "bücher.example".to_owned(),
            "*.example.com".to_owned(),
            "192.0.2.1".to_owned(),
            "a中".to_owned(),
        ];
        let ids: Vec<_> = dns_identities(&cns).into_iter().map(|(_, id)| id).collect();
        assert_eq!(
            ids,
            [
                "mx.example.com",
                "xn--bcher-kva.example",
                "*.example.com",
                "xn--a-lq6a"
            ]
        );
    }

    #[test]
    fn anchor_constraints_round_trip() {
        // [0] { SEQUENCE { [2] "allowed.example" } }, [1] { SEQUENCE { [2] "bad.example" } }
        let mut content = vec![0xa0, 19, 0x30, 17, 0x82, 15];
        content.extend(b"allowed.example");
        content.extend([0xa1, 15, 0x30, 13, 0x82, 11]);
        content.extend(b"bad.example");
        let subtrees = anchor_subtrees(&content).unwrap();
        assert_eq!(subtrees.permitted, ["allowed.example"]);
        assert_eq!(subtrees.excluded, ["bad.example"]);
        assert!(anchor_subtrees(&content[..content.len() - 1]).is_err());
        // Octets after the lists, lists out of order or of another tag: refused.
        assert!(anchor_subtrees(&[content.as_slice(), &[0x05, 0x00]].concat()).is_err());
        assert!(anchor_subtrees(&[&content[21..], &content[..21]].concat()).is_err());
        assert!(anchor_subtrees(&[0x01, 0x02]).is_err());
        assert_eq!(
            anchor_subtrees(&[]).unwrap().permitted,
            Vec::<String>::new()
        );
        // A long (> 127 octets) content takes the long length form.
        let long = "a".repeat(60) + "." + &"b".repeat(60) + ".example";
        let len = u8::try_from(long.len()).unwrap();
        let mut content = vec![0xa0, 0x81, len + 6, 0x30, 0x81, len + 3, 0x82, 0x81, len];
        content.extend(long.as_bytes());
        assert_eq!(anchor_subtrees(&content).unwrap().permitted, [long]);
    }
}
