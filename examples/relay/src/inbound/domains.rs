//! The set of recipient domains a listener accepts mail for without relay permission.

use std::collections::HashSet;
use std::sync::Arc;

use super::error::InboundError;

/// Domains accepted under relay control `accept`: exact names (`example.org`) and parents
/// (`.example.org` = every name below it, not `example.org` itself, as in Cisco's RAT and SMTP
/// routes), or `*` = every domain (the relay's catch-all `local_domains = ["*"]`: everything is
/// delivered locally, so accepting any domain relays nothing). Names compare case-insensitively,
/// ignoring one trailing dot.
///
/// ```
/// use relay::inbound::DomainSet;
/// let set = DomainSet::new(["Example.ORG", ".example.net"])?;
/// assert!(set.contains("example.org."));
/// assert!(set.contains("mx.sub.example.net"));
/// assert!(!set.contains("example.net"));
/// assert!(!set.contains("evil-example.org"));
/// assert!(DomainSet::new(["*"])?.contains("anything.example"));
/// assert!(DomainSet::new(["*.example.org"]).is_err());
/// # Ok::<(), relay::inbound::InboundError>(())
/// ```
///
/// Cloning is cheap (the sets are shared): every connection's transaction holds one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DomainSet {
    inner: Arc<Domains>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Domains {
    exact: HashSet<String>,
    parents: HashSet<String>,
    /// `*`: every domain.
    all: bool,
}

impl DomainSet {
    /// Builds the set; refuses empty names, wildcards other than a lone `*` and characters
    /// outside host names.
    pub fn new<I, S>(names: I) -> Result<Self, InboundError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut set = Self::default();
        for n in names {
            set.insert(n.as_ref())?;
        }
        Ok(set)
    }

    /// Adds one entry.
    pub fn insert(&mut self, name: &str) -> Result<(), InboundError> {
        if name == "*" {
            Arc::make_mut(&mut self.inner).all = true;
            return Ok(());
        }
        let (parent, bare) = match name.strip_prefix('.') {
            Some(rest) => (true, rest),
            None => (false, name),
        };
        let bare = normalize(bare);
        let ok = !bare.is_empty()
            && bare.len() <= 253
            && bare.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        if !ok {
            return Err(InboundError::InvalidDomain { name: name.into() });
        }
        let d = Arc::make_mut(&mut self.inner);
        if parent {
            d.parents.insert(bare);
        } else {
            d.exact.insert(bare);
        }
        Ok(())
    }

    /// Whether `domain` is in the set.
    #[must_use]
    pub fn contains(&self, domain: &str) -> bool {
        let set = &*self.inner;
        if set.all {
            return true;
        }
        let d = normalize(domain);
        if set.exact.contains(&d) {
            return true;
        }
        let mut rest = d.as_str();
        while let Some((_, parent)) = rest.split_once('.') {
            if set.parents.contains(parent) {
                return true;
            }
            rest = parent;
        }
        false
    }

    /// Whether the set is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        let set = &*self.inner;
        !set.all && set.exact.is_empty() && set.parents.is_empty()
    }
}

fn normalize(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}
