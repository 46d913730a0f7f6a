//! The leaf's name check for DANE-TA(2), PKIX and (generic mode, when asked) DANE-EE(3).
//!
//! RFC 7672 §3.2.3: the reference identifiers are matched against the leaf's DNS-IDs (SAN
//! dNSName), and against its CN-ID only when it has no DNS-ID — as OpenSSL's
//! `X509_check_host` (and so Postfix) do. DNS-IDs go through rustls-webpki; a CN-ID is matched
//! here (RFC 6125 §6.4: case-insensitive, a wildcard only as the whole left-most label with at
//! least two labels after it) and, because rustls-webpki applies name constraints to SANs only,
//! it is held to the dNSName constraints of every CA certificate on the validated path
//! (RFC 5280 §4.2.1.10): both the CN and the reference name it matched must be permitted and not
//! excluded. That work is bounded per verification by [`MAX_CN_CONSTRAINT_COMPARISONS`].

use std::cell::Cell;

use rustls_pki_types::{CertificateDer, DnsName, ServerName};
use webpki::EndEntityCert;
use x509_parser::extensions::{GeneralName, GeneralSubtree};
use x509_parser::prelude::{FromDer, X509Certificate};

/// Most CN-against-subtree comparisons in one `DaneMatcher::verify` (every record and path
/// tried): the budget rustls-webpki gives name-constraint checks of SANs.
pub(crate) const MAX_CN_CONSTRAINT_COMPARISONS: usize = 250_000;

/// Why a leaf's names do not pass.
#[derive(Debug)]
pub(crate) enum NameFailure {
    /// Not valid for any reference identity (or a CN-ID outside the path's name constraints).
    Mismatch(String),
    /// The name-constraint work bound ran out: refused without deciding.
    Budget,
}

/// Checks that `leaf` is valid for one of `names`; `path_cas` are the DER certificates of the
/// validated path above the leaf (intermediates and the anchor's certificate when known);
/// `budget` is what is left of [`MAX_CN_CONSTRAINT_COMPARISONS`] for this verification.
pub(crate) fn check(
    leaf: &CertificateDer<'_>,
    names: &[ServerName<'static>],
    path_cas: &[&[u8]],
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
    let mut refused = None;
    for cn in cert.subject().iter_common_name() {
        let Ok(cn) = cn.as_str() else { continue };
        for name in names {
            let ServerName::DnsName(reference) = name else {
                continue;
            };
            let reference = reference.as_ref();
            if !cn_matches(cn, reference) {
                continue;
            }
            match constraints_allow(path_cas, cn, reference, budget) {
                Ok(()) => return Ok(()),
                Err(NameFailure::Budget) => return Err(NameFailure::Budget),
                Err(e) => refused = Some(e),
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

/// The dNSName constraints of every certificate in `cas` allow `cn` and `reference`; each
/// comparison is charged to `budget`, up front per certificate.
fn constraints_allow(
    cas: &[&[u8]],
    cn: &str,
    reference: &str,
    budget: &Cell<usize>,
) -> Result<(), NameFailure> {
    use NameFailure::Mismatch;
    for der in cas {
        let (_, ca) = X509Certificate::from_der(der).map_err(|e| Mismatch(e.to_string()))?;
        let Some(nc) = ca.name_constraints().map_err(|e| Mismatch(e.to_string()))? else {
            continue;
        };
        let dns = |trees: &Option<Vec<GeneralSubtree<'_>>>| -> Vec<String> {
            trees
                .iter()
                .flatten()
                .filter_map(|t| match t.base {
                    GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
                    _ => None,
                })
                .collect()
        };
        let permitted = dns(&nc.value.permitted_subtrees);
        let excluded = dns(&nc.value.excluded_subtrees);
        let cost = 2 * (permitted.len() + excluded.len());
        match budget.get().checked_sub(cost) {
            Some(left) => budget.set(left),
            None => {
                budget.set(0);
                return Err(NameFailure::Budget);
            }
        }
        for name in [cn, reference] {
            let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
            let outside = !permitted.is_empty() && !permitted.iter().any(|b| within(&name, b));
            if outside || excluded.iter().any(|b| within(&name, b)) {
                return Err(Mismatch(format!(
                    "CN-ID {cn:?} used for {reference} violates the name constraints of {} \
                     (RFC 5280 4.2.1.10)",
                    ca.subject()
                )));
            }
        }
    }
    Ok(())
}

/// Whether the lower-case `name` lies within the dNSName subtree `base` (RFC 5280
/// §4.2.1.10): equal to it or below it; a base with a leading period (an OpenSSL convention)
/// covers only names below it; the empty base covers everything.
pub(crate) fn within(name: &str, base: &str) -> bool {
    let base = base.strip_suffix('.').unwrap_or(base);
    if base.is_empty() {
        return true;
    }
    if base.starts_with('.') {
        return name.len() > base.len() && name.ends_with(base);
    }
    name == base
        || name
            .strip_suffix(base)
            .is_some_and(|head| head.ends_with('.'))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{cn_matches, within};

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
            let _ = within(&cn, &reference);
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
            assert_eq!(within(name, base), expected, "{name} in {base}");
        }
    }
}
