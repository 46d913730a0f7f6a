//! The leaf's name check for DANE-TA(2), PKIX and (generic mode, when asked) DANE-EE(3), and
//! the one rule that holds a subject CN used as a DNS identity to the name constraints of its
//! path ([`check_cn_name_constraints`], shared with `smtp-tls-policy`'s PKIX verification).
//!
//! RFC 7672 §3.2.3: the reference identifiers are matched against the leaf's DNS-IDs (SAN
//! dNSName), and against its CN-ID only when it has no DNS-ID — as OpenSSL's
//! `X509_check_host` (and so Postfix) do. DNS-IDs go through rustls-webpki; a CN-ID is matched
//! here (RFC 6125 §6.4: case-insensitive, a wildcard only as the whole left-most label with at
//! least two labels after it) and, because rustls-webpki applies name constraints to SANs only,
//! it is held to the dNSName constraints of every CA certificate on the validated path
//! (RFC 5280 §4.2.1.10): both the CN and the reference name it matched must be permitted and not
//! excluded. That work is bounded per verification by [`MAX_CN_CONSTRAINT_COMPARISONS`]; the
//! constraints of a path are read once, however many (CN, reference name) pairs are checked
//! against them, and a CN the leaf repeats is checked once.
//!
//! Subtree matching follows rustls-webpki's reading of §4.2.1.10 (`subject_name/dns_name.rs`),
//! so a CN and a SAN dNSName are held to the same rule:
//! * `example.com` permits `example.com` and every name below it, whole labels only
//!   (`badexample.com` is outside); ASCII case is ignored, one trailing dot of the name too;
//! * `.example.com` (a leading period, NSS and rustls-webpki) permits only names strictly below
//!   `example.com`;
//! * the empty constraint covers every name;
//! * a wildcard name is permitted only when every expansion is (`*.example.com` under
//!   `example.com`), and excluded when some expansion could be (`*.com` under an excluded
//!   `victim.com`, CVE-2025-61727);
//! * a constraint that is not a host name (also one with a trailing dot), and a name that is not
//!   ASCII, never permit and always exclude (fail closed);
//! * constraints of other forms (iPAddress, rfc822Name, ...) do not apply to DNS names.

use std::cell::Cell;
use std::collections::HashSet;

use rustls_pki_types::{CertificateDer, DnsName, ServerName};
use webpki::EndEntityCert;
use x509_parser::asn1_rs::{Any, Class, Tag};
use x509_parser::extensions::{GeneralName, GeneralSubtree, NameConstraints};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::Error;
use crate::fqdn::is_host_name;

/// Most name-against-subtree comparisons [`check_cn_name_constraints`] makes in one
/// verification (every name, record and path tried): the budget rustls-webpki gives its own
/// name-constraint checks of SANs (from Go's `crypto/x509`).
pub const MAX_CN_CONSTRAINT_COMPARISONS: usize = 250_000;

/// How a name breaks the dNSName constraints of one CA.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConstraintBreach {
    /// The CA lists permitted dNSName subtrees and the name is in none of them.
    #[error("lies outside the permitted dNSName subtrees {permitted:?}")]
    NotPermitted {
        /// The permitted dNSName subtrees, as written in the certificate.
        permitted: Vec<String>,
    },
    /// The name is in an excluded dNSName subtree.
    #[error("lies in the excluded dNSName subtree {excluded:?}")]
    Excluded {
        /// The excluded subtree, as written in the certificate.
        excluded: String,
    },
}

/// A CA of a validated path, as [`check_cn_name_constraints`] reads its name constraints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathCa<'a> {
    /// A CA certificate (DER): an intermediate, or the certificate of the trust anchor.
    Certificate(&'a [u8]),
    /// A trust anchor known only by subject and key (as `webpki-roots` ships them): the content
    /// of its nameConstraints SEQUENCE, as `rustls_pki_types::TrustAnchor::name_constraints`
    /// holds it.
    AnchorNameConstraints(&'a [u8]),
}

/// Holds `names` — DNS identities taken from a leaf's subject CN (ASCII A-labels, any case, an
/// optional trailing dot, maybe a `*.` wildcard) — to the dNSName constraints of every CA on
/// `path` (RFC 5280 §4.2.1.10), as rustls-webpki holds the SAN dNSNames. `path` lists the CAs
/// above the leaf, from its issuer (depth 1) up to the trust anchor.
///
/// `budget` is what is left of [`MAX_CN_CONSTRAINT_COMPARISONS`] for the verification: each
/// constrained CA costs `names.len()` × its dNSName subtrees, charged before the work.
///
/// # Errors
///
/// * [`Error::CnOutsideNameConstraints`]: the first name, from the issuer up, that a CA does not
///   permit or excludes;
/// * [`Error::BadCertificate`]: a CA certificate or its nameConstraints cannot be parsed (at the
///   CA's depth);
/// * [`Error::Limit`]: the budget is spent (the chain is refused without deciding).
///
/// ```
/// use std::cell::Cell;
/// use dane_verify::{MAX_CN_CONSTRAINT_COMPARISONS, PathCa, check_cn_name_constraints};
/// let key = rcgen::KeyPair::generate().unwrap();
/// let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
/// ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
/// ca.name_constraints = Some(rcgen::NameConstraints {
///     permitted_subtrees: vec![rcgen::GeneralSubtree::DnsName("example.net".into())],
///     excluded_subtrees: vec![],
/// });
/// let ca = ca.self_signed(&key).unwrap();
/// let path = [PathCa::Certificate(ca.der())];
/// let budget = Cell::new(MAX_CN_CONSTRAINT_COMPARISONS);
/// assert!(check_cn_name_constraints(&["MX.Example.NET."], &path, &budget).is_ok());
/// assert!(matches!(
///     check_cn_name_constraints(&["mx.victim.example"], &path, &budget),
///     Err(dane_verify::Error::CnOutsideNameConstraints { depth: 1, .. })
/// ));
/// ```
pub fn check_cn_name_constraints(
    names: &[&str],
    path: &[PathCa<'_>],
    budget: &Cell<usize>,
) -> Result<(), Error> {
    if names.is_empty() {
        return Ok(());
    }
    PathConstraints::read(path).check(names, budget)
}

/// The dNSName constraints of a validated path, read once per path and verification: each CA
/// (by depth, from the issuer up) whose nameConstraints hold a dNSName subtree, or the error
/// reading them. CAs without such subtrees permit every name and are left out.
struct PathConstraints {
    cas: Vec<(usize, Result<DnsSubtrees, Error>)>,
}

impl PathConstraints {
    fn read(path: &[PathCa<'_>]) -> Self {
        let cas = path
            .iter()
            .enumerate()
            .filter_map(|(i, ca)| {
                let depth = i + 1;
                let subtrees = match *ca {
                    PathCa::Certificate(der) => certificate_subtrees(der, depth).transpose()?,
                    PathCa::AnchorNameConstraints(content) => anchor_subtrees(content, depth),
                };
                match subtrees {
                    Ok(s) if s.permitted.is_empty() && s.excluded.is_empty() => None,
                    other => Some((depth, other)),
                }
            })
            .collect();
        Self { cas }
    }

    /// [`check_cn_name_constraints`] on the constraints read: CA by CA from the issuer up, each
    /// charged `names.len()` × its dNSName subtrees before the work.
    fn check(&self, names: &[&str], budget: &Cell<usize>) -> Result<(), Error> {
        for (depth, subtrees) in &self.cas {
            let (depth, subtrees) = (*depth, subtrees.as_ref().map_err(Clone::clone)?);
            // Charged up front, at the most it can cost: a pathological chain is refused before
            // the work, not after.
            let cost = names
                .len()
                .saturating_mul(subtrees.permitted.len() + subtrees.excluded.len());
            let Some(left) = budget.get().checked_sub(cost) else {
                let spent = MAX_CN_CONSTRAINT_COMPARISONS.saturating_sub(budget.get());
                budget.set(0);
                return Err(Error::Limit {
                    what: "CN name-constraint comparisons",
                    max: MAX_CN_CONSTRAINT_COMPARISONS,
                    found: spent.saturating_add(cost),
                });
            };
            budget.set(left);
            for name in names {
                let dns_id = name.strip_suffix('.').unwrap_or(name);
                if let Some(breach) = subtrees.check(dns_id) {
                    return Err(Error::CnOutsideNameConstraints {
                        name: (*name).to_owned(),
                        depth,
                        breach,
                    });
                }
            }
        }
        Ok(())
    }
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

    /// The breach of `name` (a DNS-ID without trailing dot), if any. Without a permitted
    /// dNSName subtree, every name not excluded is permitted (RFC 5280 §4.2.1.10).
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

/// Is `name` (a DNS-ID without trailing dot, maybe a `*.` wildcard) in the subtree `base`?
fn within(name: &str, base: &str, subtrees: Subtrees) -> bool {
    if base.is_empty() {
        return true;
    }
    let (subdomains_only, host) = match base.strip_prefix('.') {
        Some(rest) => (true, rest),
        None => (false, base),
    };
    // A malformed constraint, or a name that is not ASCII (it could be the U-label form of a
    // constrained A-label), never permits and always excludes (fail closed).
    if !is_host_name(host) || !name.is_ascii() {
        return subtrees == Subtrees::Excluded;
    }
    // Both are ASCII: compare ignoring case.
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

/// DER of the nameConstraints OID (2.5.29.30): a certificate without these octets has no
/// nameConstraints extension, and is not parsed.
const NAME_CONSTRAINTS_OID_DER: [u8; 5] = [0x06, 0x03, 0x55, 0x1d, 0x1e];

/// The dNSName subtrees of a CA certificate's nameConstraints, if it has the extension. A
/// certificate that does not parse whole, or whose extension does not parse or is repeated,
/// is refused.
fn certificate_subtrees(der: &[u8], depth: usize) -> Result<Option<DnsSubtrees>, Error> {
    if !der
        .windows(NAME_CONSTRAINTS_OID_DER.len())
        .any(|w| w == NAME_CONSTRAINTS_OID_DER)
    {
        return Ok(None);
    }
    let bad = |reason: String| Error::BadCertificate { depth, reason };
    #[cfg(test)]
    tests::CA_PARSES.with(|n| n.set(n.get() + 1));
    let cert = match X509Certificate::from_der(der) {
        Ok(([], cert)) => cert,
        Ok((rest, _)) => return Err(bad(format!("{} bytes after the certificate", rest.len()))),
        Err(e) => return Err(bad(e.to_string())),
    };
    let nc = cert
        .name_constraints()
        .map_err(|e| bad(format!("nameConstraints extension cannot be parsed: {e}")))?;
    Ok(nc.map(|nc| DnsSubtrees::from_constraints(nc.value)))
}

/// The dNSName subtrees of a trust anchor's nameConstraints (rustls-webpki keeps the content of
/// the extension's SEQUENCE, without its tag and length): exactly an optional `[0]` permitted
/// and an optional `[1]` excluded list, nothing after them.
fn anchor_subtrees(content: &[u8], depth: usize) -> Result<DnsSubtrees, Error> {
    let malformed = || Error::BadCertificate {
        depth,
        reason: "trust anchor nameConstraints cannot be parsed".into(),
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

/// Why a leaf's names do not pass.
#[derive(Debug)]
pub(crate) enum NameFailure {
    /// Not valid for any reference identity (or a CN-ID outside the path's name constraints).
    Mismatch(String),
    /// The name-constraint work bound ran out: refused without deciding.
    Budget,
}

/// Checks that `leaf` is valid for one of `names`; `path_cas` are the CAs of the validated path
/// above the leaf (intermediates, then the anchor's certificate when known); `budget` is what
/// is left of [`MAX_CN_CONSTRAINT_COMPARISONS`] for this verification.
pub(crate) fn check(
    leaf: &CertificateDer<'_>,
    names: &[ServerName<'static>],
    path_cas: &[PathCa<'_>],
    budget: &Cell<usize>,
) -> Result<(), NameFailure> {
    use NameFailure::Mismatch;
    let ee = EndEntityCert::try_from(leaf).map_err(|e| Mismatch(e.to_string()))?;
    if names
        .iter()
        .any(|n| ee.verify_is_valid_for_subject_name(n).is_ok())
    {
        return Ok(());
    }
    let wanted = || {
        names
            .iter()
            .map(|n| n.to_str().into_owned())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (_, cert) =
        X509Certificate::from_der(leaf.as_ref()).map_err(|e| Mismatch(e.to_string()))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| Mismatch(e.to_string()))?;
    let has_dns_id = san.is_some_and(|s| {
        s.value
            .general_names
            .iter()
            .any(|g| matches!(g, GeneralName::DNSName(_)))
    });
    if has_dns_id {
        return Err(Mismatch(format!(
            "certificate is not valid for any of {}",
            wanted()
        )));
    }
    // Each CN once: a repeat (also in another ASCII case, or with one trailing dot more or
    // less) matches the same names and meets the same constraints.
    let mut seen = HashSet::new();
    let cns = cert
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok())
        .filter(|cn| seen.insert(cn.strip_suffix('.').unwrap_or(cn).to_ascii_lowercase()));
    // The path's constraints are read when a CN first matches, then once for every pair.
    let mut constraints = None;
    let mut refused = None;
    for cn in cns {
        for name in names {
            let ServerName::DnsName(reference) = name else {
                continue;
            };
            let reference = reference.as_ref();
            if !cn_matches(cn, reference) {
                continue;
            }
            let constraints = constraints.get_or_insert_with(|| PathConstraints::read(path_cas));
            // Both the CN and the reference name it stands for are held to the constraints,
            // charged per pair as [`check_cn_name_constraints`] charges.
            match constraints.check(&[cn, reference], budget) {
                Ok(()) => return Ok(()),
                Err(Error::Limit { .. }) => return Err(NameFailure::Budget),
                Err(e) => {
                    refused = Some(Mismatch(format!("CN-ID {cn:?} used for {reference}: {e}")))
                }
            }
        }
    }
    Err(refused.unwrap_or_else(|| {
        Mismatch(format!(
            "certificate (no DNS-ID; CN checked) is not valid for any of {}",
            wanted()
        ))
    }))
}

/// Whether the CN-ID `cn` names `reference` (RFC 6125 §6.4.3, RFC 7672 §3.2.3).
pub(crate) fn cn_matches(cn: &str, reference: &str) -> bool {
    let cn = cn.strip_suffix('.').unwrap_or(cn);
    let reference = reference.strip_suffix('.').unwrap_or(reference);
    if let Some(rest) = cn.strip_prefix("*.") {
        // at least two labels after the wildcard, as rustls-webpki requires for SANs
        if !rest.contains('.') || DnsName::try_from(rest).is_err() {
            return false;
        }
        return reference
            .split_once('.')
            .is_some_and(|(label, tail)| !label.is_empty() && tail.eq_ignore_ascii_case(rest));
    }
    DnsName::try_from(cn).is_ok() && cn.eq_ignore_ascii_case(reference)
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use proptest::prelude::*;
    use rcgen::{CertificateParams, DnType, GeneralSubtree, KeyPair, NameConstraints};
    use rustls_pki_types::ServerName;

    use super::Subtrees::{Excluded, Permitted};
    use super::{
        ConstraintBreach, DnsSubtrees, MAX_CN_CONSTRAINT_COMPARISONS, NameFailure, PathCa,
        Subtrees, anchor_subtrees, check, cn_matches, within,
    };

    thread_local! {
        /// CA certificates parsed for their nameConstraints on this thread.
        pub(super) static CA_PARSES: Cell<usize> = const { Cell::new(0) };
    }

    /// Security review, finding 1: each CA of the path is parsed once per check, not once per
    /// (CN, reference name) pair, also one whose DER holds the nameConstraints OID without the
    /// extension (not charged to the budget); a CN the leaf repeats is checked once. Each pair
    /// is still charged 2 × the subtrees of each constrained CA.
    #[test]
    fn path_cas_are_parsed_once_and_repeated_cns_checked_once() {
        let cert = |f: &dyn Fn(&mut CertificateParams)| {
            let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
            f(&mut p);
            p.self_signed(&KeyPair::generate().unwrap()).unwrap()
        };
        // the OID's five octets in a subject attribute: parsed, but no constraints
        let oid_in_subject = cert(&|p| {
            p.distinguished_name
                .push(DnType::OrganizationName, "\u{6}\u{3}U\u{1d}\u{1e}");
        });
        let constrained = cert(&|p| {
            p.name_constraints = Some(NameConstraints {
                permitted_subtrees: (0..1000)
                    .map(|i| GeneralSubtree::DnsName(format!("n{i}.invalid")))
                    .collect(),
                excluded_subtrees: vec![],
            });
        });
        let leaf = cert(&|p| {
            p.distinguished_name
                .push(DnType::CommonName, "*.example.net");
            p.distinguished_name
                .push(DnType::CustomDnType(vec![2, 5, 4, 3]), "*.EXAMPLE.net.");
        });
        let names: Vec<ServerName<'static>> = (0..10)
            .map(|i| ServerName::try_from(format!("h{i}.example.net")).unwrap())
            .collect();
        let path = [
            PathCa::Certificate(oid_in_subject.der()),
            PathCa::Certificate(constrained.der()),
        ];
        let budget = Cell::new(MAX_CN_CONSTRAINT_COMPARISONS);
        CA_PARSES.with(|n| n.set(0));
        let result = check(leaf.der(), &names, &path, &budget);
        assert!(
            matches!(result, Err(NameFailure::Mismatch(_))),
            "{result:?}"
        );
        assert_eq!(CA_PARSES.with(Cell::get), 2);
        assert_eq!(
            MAX_CN_CONSTRAINT_COMPARISONS - budget.get(),
            10 * 2 * 1000,
            "one CN x 10 names, 2 names per pair x 1000 subtrees"
        );
    }

    /// Label by label: the plain reference for [`cn_matches`] on syntactically valid names.
    fn naive_cn_matches(cn: &str, reference: &str) -> bool {
        let cn: Vec<String> = cn.split('.').map(str::to_ascii_lowercase).collect();
        let reference: Vec<String> = reference.split('.').map(str::to_ascii_lowercase).collect();
        if cn.len() != reference.len() {
            return false;
        }
        if cn[0] == "*" {
            return cn.len() >= 3 && !reference[0].is_empty() && cn[1..] == reference[1..];
        }
        cn == reference
    }

    proptest! {
        #[test]
        fn cn_matcher_agrees_with_label_by_label(
            reference in "[a-zA-Z][a-zA-Z0-9]{0,4}(\\.[a-zA-Z][a-zA-Z0-9]{0,4}){0,3}",
            other in "(\\*|[a-z][a-zA-Z0-9]{0,4})(\\.[a-zA-Z][a-zA-Z0-9]{0,4}){0,3}",
            shape in 0..4u8,
        ) {
            // near misses and hits, not only unrelated pairs
            let tail = reference.split_once('.').map_or("", |(_, t)| t);
            let cn = match shape {
                0 => reference.to_ascii_uppercase(),
                1 => format!("*.{tail}"),
                2 => format!("*.{reference}"),
                _ => other,
            };
            prop_assert_eq!(cn_matches(&cn, &reference), naive_cn_matches(&cn, &reference));
        }

        #[test]
        fn cn_matcher_never_panics(cn in "\\PC{0,40}", reference in "\\PC{0,40}") {
            let _ = cn_matches(&cn, &reference);
            let _ = within(&cn, &reference, Permitted);
            let _ = within(&cn, &reference, Excluded);
        }
    }

    #[test]
    fn cn_id_table() {
        for (cn, reference, expected) in [
            ("mx.example", "mx.example", true),
            ("MX.Example.", "mx.example", true),
            ("mx.example", "mx.example.", true),
            ("mx.example", "other.example", false),
            ("*.example.net", "mx.example.net", true),
            ("*.example.net", "a.mx.example.net", false),
            ("*.example.net", "example.net", false),
            ("*.net", "example.net", false),
            ("m*.example.net", "mx.example.net", false),
            ("*", "mx", false),
            ("", "mx.example", false),
            ("a中.example", "a.example", false),
            ("not a name", "not a name", false),
        ] {
            assert_eq!(cn_matches(cn, reference), expected, "{cn} vs {reference}");
        }
    }

    #[test]
    fn dns_subtree_table() {
        for (name, base, expected) in [
            ("mx.example.com", "example.com", true),
            ("example.com", "example.com", true),
            ("badexample.com", "example.com", false),
            ("example.com", ".example.com", false),
            ("mx.example.com", ".example.com", true),
            ("mx.example.com", "", true),
            ("*.example.com", "example.com", true),
            ("mx.example.org", "example.com", false),
        ] {
            // the same whichever list the subtree is in (no wildcard expansion involved)
            for subtrees in [Permitted, Excluded] {
                assert_eq!(
                    within(name, base, subtrees),
                    expected,
                    "{name} in {subtrees:?} {base}"
                );
            }
        }
    }

    /// `(DNS-ID, subtree base, list, within?)`, after rustls-webpki's `dns_name.rs` table.
    const CASES: &[(&str, &str, Subtrees, bool)] = &[
        ("example.com", "example.com", Permitted, true),
        ("mx.example.com", "example.com", Permitted, true),
        ("a.b.example.com", "example.com", Permitted, true),
        ("badexample.com", "example.com", Permitted, false),
        ("example.org", "example.com", Permitted, false),
        ("com", "example.com", Permitted, false),
        ("mx.example.com", "Example.COM", Permitted, true),
        ("MX.Example.com", "example.com", Permitted, true),
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
        ("mx.example.com", "example.com.", Permitted, false),
        ("mx.example.com", "example.com.", Excluded, true),
        ("mx.example.com", "exa mple.com", Excluded, true),
        ("mx.example.com", "ex\u{e4}mple.com", Excluded, true),
        // A name that is not ASCII: never permitted, always excluded.
        ("b\u{fc}cher.example.com", "example.com", Permitted, false),
        ("b\u{fc}cher.example.com", "other.example", Excluded, true),
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
    fn anchor_constraints_round_trip() {
        // [0] { SEQUENCE { [2] "allowed.example" } }, [1] { SEQUENCE { [2] "bad.example" } }
        let mut content = vec![0xa0, 19, 0x30, 17, 0x82, 15];
        content.extend(b"allowed.example");
        content.extend([0xa1, 15, 0x30, 13, 0x82, 11]);
        content.extend(b"bad.example");
        let subtrees = anchor_subtrees(&content, 1).unwrap();
        assert_eq!(subtrees.permitted, ["allowed.example"]);
        assert_eq!(subtrees.excluded, ["bad.example"]);
        assert!(anchor_subtrees(&content[..content.len() - 1], 1).is_err());
        // Octets after the lists, lists out of order or of another tag: refused.
        assert!(anchor_subtrees(&[content.as_slice(), &[0x05, 0x00]].concat(), 1).is_err());
        assert!(anchor_subtrees(&[&content[21..], &content[..21]].concat(), 1).is_err());
        assert!(anchor_subtrees(&[0x01, 0x02], 1).is_err());
        assert_eq!(
            anchor_subtrees(&[], 1).unwrap().permitted,
            Vec::<String>::new()
        );
        // A long (> 127 octets) content takes the long length form.
        let long = "a".repeat(60) + "." + &"b".repeat(60) + ".example";
        let len = u8::try_from(long.len()).unwrap();
        let mut content = vec![0xa0, 0x81, len + 6, 0x30, 0x81, len + 3, 0x82, 0x81, len];
        content.extend(long.as_bytes());
        assert_eq!(anchor_subtrees(&content, 1).unwrap().permitted, [long]);
    }
}
