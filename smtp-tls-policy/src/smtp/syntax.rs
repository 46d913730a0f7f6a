//! Address syntax shared by the listener (plaintext recipients) and the TLS-RPT composer
//! (header values): RFC 5322 dot-atoms and LDH domain names.

/// The longest domain name, octets (RFC 1035 §2.3.4, without the root's dot).
pub(crate) const MAX_DOMAIN_LEN: usize = 253;

/// An RFC 5322 dot-atom: atext runs separated by single dots (never empty).
pub(crate) fn is_dot_atom(text: &str) -> bool {
    let atext = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b);
    text.split('.')
        .all(|a| !a.is_empty() && a.bytes().all(atext))
}

/// A domain of LDH labels (letters, digits, hyphens; 1 to 63 octets, no hyphen at either
/// end), at most 253 octets: A-labels only.
pub(crate) fn is_ldh_domain(domain: &str) -> bool {
    let label = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    !domain.is_empty() && domain.len() <= MAX_DOMAIN_LEN && domain.split('.').all(label)
}
