//! Host-name syntax and the one FQDN predicate of the workspace (smtp-tls-policy's FQDN
//! validation of presented names and cert-store's subject checks use it).

use rustls_pki_types::DnsName;

/// RFC 1123 §2.1 host-name syntax, any case: labels of 1 to 63 letters, digits and inner
/// hyphens, 253 octets in all (one label, and an all-digit last label, are allowed: a name
/// constraint may be `com` or `example.123`).
pub(crate) fn is_host_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// `true` when `name` is in FQDN format: ASCII host-name syntax (RFC 1123 §2.1: letters, digits,
/// inner hyphens; labels of 1 to 63 octets; 253 octets), at least two labels, a last label that is
/// not a number (all digits, or `0x` hex, as rustls-pki-types reads it), one optional trailing
/// dot, and an optional wildcard that is the whole left-most label of a name that is an FQDN
/// without it (`*.example.com`, not `*.com`).
///
/// A U-label (`bücher.example`) is not ASCII and so not an FQDN here; convert it to its A-label
/// first (smtp-tls-policy's `identity::is_fqdn` does, with IDNA).
///
/// ```
/// use dane_verify::is_fqdn;
/// assert!(is_fqdn("mx.example.com.") && is_fqdn("*.example.com"));
/// assert!(!is_fqdn("localhost") && !is_fqdn("*.com") && !is_fqdn("192.0.2.1"));
/// ```
#[must_use]
pub fn is_fqdn(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    let base = name.strip_prefix("*.").unwrap_or(name);
    base.contains('.') && is_host_name(base) && DnsName::try_from(base).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(name, is_fqdn)`; the comments name the differences the three former predicates had.
    #[test]
    fn fqdn_table() {
        for (name, expected) in [
            ("mail.example.com", true),
            ("MAIL.Example.COM", true),
            ("mail.example.com.", true),
            ("*.example.com", true),
            ("a.*.example.com", false),
            ("*", false),
            ("localhost", false),
            ("example", false),
            ("1.2.3.4", false),
            ("example.123", false),
            // rustls-pki-types reads a `0x` last label as a number (cert-store accepted it).
            ("example.0x1f", false),
            ("-bad.example.com", false),
            ("bad-.example.com", false),
            ("under_score.example.com", false),
            ("", false),
            (".", false),
            ("a..b", false),
            ("example.com..", false),
            // A wildcard over a single label: cert-store accepted it, smtp-tls-policy did not.
            ("*.com", false),
            // Not ASCII: smtp-tls-policy converts U-labels first; cert-store refused them.
            ("bücher.example", false),
            (&format!("{}.example", "a".repeat(63)), true),
            (&format!("{}.example", "a".repeat(64)), false),
        ] {
            assert_eq!(is_fqdn(name), expected, "{name:?}");
        }
    }

    #[test]
    fn host_name_allows_what_a_constraint_may_be() {
        assert!(is_host_name("com") && is_host_name("example.123"));
        assert!(!is_host_name("example.com.") && !is_host_name("*.example.com"));
    }
}
