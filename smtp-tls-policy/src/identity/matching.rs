//! Matching one presented DNS identifier against one reference DNS name (RFC 6125 §6.4).
//!
//! Rules, each from the source named beside it:
//! * Case-insensitive ASCII comparison, label by label; one trailing dot on either side ignored
//!   (RFC 6125 §6.4.1, RFC 4343).
//! * The presented name must be ASCII in host-name syntax (RFC 5280 §4.2.1.6 "preferred name
//!   syntax", §7.2 IA5String/A-labels): `_`, spaces, non-ASCII (U-labels, emoji) never match.
//! * Wildcards (RFC 6125 §6.4.3, RFC 2818 §3.1, CA/B Forum BR "Wildcard Domain Name"): only a
//!   left-most label that is exactly `*`; it matches exactly one non-empty label, so
//!   `*.example.com` matches `a.example.com` but not `example.com` nor `a.b.example.com`.
//!   Refused: `*` inside a label (`ba*.example.com`, `xn--*-abc.example.com`: partial labels and
//!   wildcards embedded in A-labels), `*` in any other label (`foo.*.example.com`), and a
//!   wildcard whose parent is a public suffix (see [`is_public_suffix`]).
//!
//! The parent ("the part after `*.`") must have at least two labels — this alone refuses `*`,
//! `*.com`, `*.local` — and must not be one of the multi-label public suffixes in
//! [`MULTI_LABEL_PUBLIC_SUFFIXES`], a short embedded excerpt of the Public Suffix List (ICANN
//! second-level registries such as `co.uk`, and the private suffixes most abused for wildcards such
//! as `s3.amazonaws.com`). It is an excerpt, not the whole PSL: wildcards over suffixes missing
//! from it are only caught by the two-label rule.

use super::reference::{DnsName, check_host_syntax};

/// Multi-label public suffixes over which a wildcard is refused (excerpt of the Public Suffix
/// List, <https://publicsuffix.org/list/>: the largest ICANN second-level registries and common
/// private hosting suffixes). Sorted, lowercase.
pub const MULTI_LABEL_PUBLIC_SUFFIXES: &[&str] = &[
    "ac.jp",
    "ac.uk",
    "ac.za",
    "appspot.com",
    "azurewebsites.net",
    "blogspot.com",
    "cloudfront.net",
    "co.at",
    "co.id",
    "co.il",
    "co.in",
    "co.jp",
    "co.kr",
    "co.nz",
    "co.th",
    "co.uk",
    "co.za",
    "com.ar",
    "com.au",
    "com.br",
    "com.cn",
    "com.co",
    "com.hk",
    "com.mx",
    "com.my",
    "com.ng",
    "com.pk",
    "com.sg",
    "com.tr",
    "com.tw",
    "com.ua",
    "com.vn",
    "edu.au",
    "edu.cn",
    "github.io",
    "gitlab.io",
    "go.jp",
    "gov.au",
    "gov.br",
    "gov.cn",
    "gov.uk",
    "herokuapp.com",
    "ltd.uk",
    "me.uk",
    "ne.jp",
    "net.au",
    "net.br",
    "net.cn",
    "or.jp",
    "org.au",
    "org.br",
    "org.cn",
    "org.uk",
    "plc.uk",
    "s3.amazonaws.com",
    "sch.uk",
];

/// `true` when `suffix` (lowercase, no trailing dot) is a public suffix as far as wildcard
/// refusal goes: a single label, or one of [`MULTI_LABEL_PUBLIC_SUFFIXES`].
#[must_use]
pub fn is_public_suffix(suffix: &str) -> bool {
    !suffix.contains('.') || MULTI_LABEL_PUBLIC_SUFFIXES.binary_search(&suffix).is_ok()
}

/// The shape of a presented DNS identifier, once checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresentedShape<'a> {
    /// A plain host name (ASCII, host-name syntax, no trailing dot).
    Exact(&'a str),
    /// `*.` followed by the parent name (host-name syntax, not a public suffix).
    Wildcard {
        /// The name after `*.`.
        parent: &'a str,
    },
}

/// Classifies a presented dNSName (or CN), or returns `None` when it can never match anything:
/// not ASCII, bad syntax, a misplaced or partial-label wildcard, or a wildcard over a public
/// suffix.
#[must_use]
pub fn classify_presented(presented: &str) -> Option<PresentedShape<'_>> {
    let name = presented.strip_suffix('.').unwrap_or(presented);
    if !name.is_ascii() {
        return None;
    }
    if let Some(parent) = name.strip_prefix("*.") {
        if parent.contains('*') || check_syntax_any_case(parent).is_err() {
            return None;
        }
        let lower = parent.to_ascii_lowercase();
        if is_public_suffix(&lower) {
            return None;
        }
        return Some(PresentedShape::Wildcard { parent });
    }
    if name.contains('*') || check_syntax_any_case(name).is_err() {
        return None;
    }
    Some(PresentedShape::Exact(name))
}

fn check_syntax_any_case(name: &str) -> Result<(), super::NameError> {
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        check_host_syntax(&name.to_ascii_lowercase())
    } else {
        check_host_syntax(name)
    }
}

/// Does the presented DNS identifier match the reference name? (RFC 6125 §6.4.1, §6.4.3.)
///
/// ```
/// use smtp_tls_policy::identity::{DnsName, dns_name_matches};
/// let reference = DnsName::parse("mx1.example.com").unwrap();
/// assert!(dns_name_matches("*.Example.COM.", &reference));
/// assert!(!dns_name_matches("*.com", &DnsName::parse("example.com").unwrap()));
/// ```
#[must_use]
pub fn dns_name_matches(presented: &str, reference: &DnsName) -> bool {
    let reference = reference.as_str();
    match classify_presented(presented) {
        None => false,
        Some(PresentedShape::Exact(name)) => name.eq_ignore_ascii_case(reference),
        Some(PresentedShape::Wildcard { parent }) => match reference.split_once('.') {
            // The wildcard stands for exactly one non-empty left-most label.
            Some((first, rest)) => !first.is_empty() && rest.eq_ignore_ascii_case(parent),
            None => false,
        },
    }
}

#[cfg(test)]
#[path = "matching_tests.rs"]
mod tests;
