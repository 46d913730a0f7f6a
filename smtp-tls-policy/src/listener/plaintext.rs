//! Mailboxes a TLS-required listener still accepts over plaintext (RFC 8460 §3: TLS reports
//! may arrive without TLS, as Mox accepts them).

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::smtp::syntax::{is_dot_atom, is_ldh_domain};

/// Longest address compared (RFC 5321 §4.5.3.1.3: a path is at most 256 octets with its angle
/// brackets).
const MAX_ADDRESS_LEN: usize = 254;
/// Longest local part (RFC 5321 §4.5.3.1.1).
const MAX_LOCAL_LEN: usize = 64;

/// A configured mailbox that is not a single bare addr-spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("mailbox {index}: {reason}")]
#[non_exhaustive]
pub struct InvalidMailbox {
    /// Position of the entry in the list (from 0).
    pub index: usize,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// The recipients a [`Gate`](super::Gate) with TLS `required` lets through before STARTTLS —
/// the listener's TLS-RPT mailboxes (RFC 8460 §3), since reports may arrive over plaintext.
///
/// Each entry must be one bare addr-spec: a dot-atom local part (at most 64 octets, no quoted
/// string, no comment, no display name) `@` an LDH domain (A-labels, at most 253 octets). A
/// recipient matches an entry when its local part is **exactly** equal (RFC 5321 §2.4: local
/// parts are case-sensitive; a variant in another case is refused, fail closed) and its domain
/// is equal ignoring ASCII case. Anything else — longer than 254 octets, no `@`, a U-label
/// domain, a trailing dot — never matches. Cloning is cheap (the set is shared).
///
/// ```
/// use smtp_tls_policy::listener::PlaintextRecipients;
///
/// let r = PlaintextRecipients::new(["tlsrpt@Example.org"]).unwrap();
/// assert!(r.contains("tlsrpt@example.ORG"));
/// assert!(!r.contains("TLSRPT@example.org"));
/// assert!(!r.contains("postmaster@example.org"));
/// assert!(PlaintextRecipients::new(["Reports <tlsrpt@example.org>"]).is_err());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlaintextRecipients(Arc<BTreeSet<String>>);

impl PlaintextRecipients {
    /// The set of `mailboxes`.
    ///
    /// # Errors
    /// [`InvalidMailbox`] for the first entry that is not a single bare addr-spec.
    pub fn new<I, S>(mailboxes: I) -> Result<Self, InvalidMailbox>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut set = BTreeSet::new();
        for (index, m) in mailboxes.into_iter().enumerate() {
            let m = m.as_ref();
            check(m).map_err(|reason| InvalidMailbox { index, reason })?;
            set.extend(normalise(m));
        }
        Ok(Self(Arc::new(set)))
    }

    /// Whether no mailbox is configured (the gate then behaves as without the exception).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `address` (a `RCPT TO` path's address, without angle brackets) is one of the
    /// mailboxes; see the type's documentation for the comparison.
    pub fn contains(&self, address: &str) -> bool {
        !self.0.is_empty() && normalise(address).is_some_and(|k| self.0.contains(&k))
    }

    /// The mailbox as configured (domain in lower case) that `address` matches.
    pub(crate) fn get(&self, address: &str) -> Option<&str> {
        if self.0.is_empty() {
            return None;
        }
        let key = normalise(address)?;
        self.0.get(&key).map(String::as_str)
    }
}

/// `local@domain` with the domain in ASCII lower case, or `None` when `address` is not a bare
/// addr-spec within the length limits.
fn normalise(address: &str) -> Option<String> {
    check(address).ok()?;
    let (local, domain) = address.rsplit_once('@')?;
    let mut key = String::with_capacity(address.len());
    key.push_str(local);
    key.push('@');
    key.push_str(&domain.to_ascii_lowercase());
    Some(key)
}

fn check(address: &str) -> Result<(), &'static str> {
    if address.len() > MAX_ADDRESS_LEN {
        return Err("longer than 254 octets");
    }
    let Some((local, domain)) = address.rsplit_once('@') else {
        return Err("no @");
    };
    if local.is_empty() || local.len() > MAX_LOCAL_LEN || !is_dot_atom(local) {
        return Err("local part is not a dot-atom of at most 64 octets");
    }
    if !is_ldh_domain(domain) {
        return Err("domain is not an LDH domain name");
    }
    Ok(())
}
