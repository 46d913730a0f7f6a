//! The destination-control table and its lookup.

use std::collections::HashMap;

use dane_verify::DaneSetting;

use super::config::GlobalSettings;
use super::mode::{ConfiguredDane, DeliveryTls, MtaStsSetting, TlsMode};
use crate::error::{DestinationConfigErrorKind, Error};

/// One destination-control entry as configured (`default` values not yet resolved).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DestinationEntry {
    /// The TLS setting.
    pub tls: TlsMode,
    /// The DANE setting.
    pub dane: ConfiguredDane,
    /// Whether the domain's MTA-STS policy applies (`Default`: inherit the default entry's).
    pub mta_sts: MtaStsSetting,
}

impl DestinationEntry {
    /// An entry with the given settings (MTA-STS: inherit the default entry's).
    pub fn new(tls: TlsMode, dane: ConfiguredDane) -> Self {
        Self {
            tls,
            dane,
            mta_sts: MtaStsSetting::Default,
        }
    }

    /// The entry with the MTA-STS setting `mta_sts`.
    pub fn with_mta_sts(mut self, mta_sts: MtaStsSetting) -> Self {
        self.mta_sts = mta_sts;
        self
    }
}

/// Which entry a lookup used.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DestinationMatch {
    /// An exact-domain entry.
    Exact(String),
    /// A `.parent` entry (the stored key, with its leading dot).
    Parent(String),
    /// The default entry.
    Default,
}

/// The effective policy for one recipient domain.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
#[non_exhaustive]
pub struct DestinationPolicy {
    /// The recipient domain looked up (normalised).
    pub domain: String,
    /// The entry used.
    pub matched: DestinationMatch,
    /// The effective TLS setting.
    pub tls: DeliveryTls,
    /// The effective DANE setting (`None` whenever `tls` is `No`: DANE needs TLS).
    pub dane: DaneSetting,
    /// Whether the domain's MTA-STS policy applies (`Honor` or `Ignore`, never `Default`).
    pub mta_sts: MtaStsSetting,
}

/// The destination-control table: immutable once built, cheap to share behind an `Arc`.
///
/// ```
/// use smtp_tls_policy::destination::*;
/// let controls = DestinationControls::builder()
///     .default_entry(DestinationEntry::new(TlsMode::Preferred, ConfiguredDane::None))
///     .unwrap()
///     .entry("example.com", DestinationEntry::new(TlsMode::RequiredVerify, ConfiguredDane::Default))
///     .unwrap()
///     .entry(".example.com", DestinationEntry::new(TlsMode::Required, ConfiguredDane::Default))
///     .unwrap()
///     .build();
/// assert_eq!(controls.lookup("Example.COM.")?.tls, DeliveryTls::RequiredVerify);
/// assert_eq!(controls.lookup("mx.example.com")?.tls, DeliveryTls::Required);
/// assert_eq!(controls.lookup("example.net")?.tls, DeliveryTls::Preferred);
/// // Never the default entry for a name that cannot be compared:
/// assert!(controls.lookup("bad name.example.com").is_err());
/// # Ok::<(), smtp_tls_policy::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct DestinationControls {
    default_tls: DeliveryTls,
    default_dane: DaneSetting,
    default_mta_sts: MtaStsSetting,
    exact: HashMap<String, DestinationEntry>,
    parents: HashMap<String, DestinationEntry>,
    global: GlobalSettings,
}

impl DestinationControls {
    /// A builder; without a default entry the default is TLS `no`, DANE `none` (the seed's
    /// factory setting).
    pub fn builder() -> DestinationControlsBuilder {
        DestinationControlsBuilder {
            inner: Self::default(),
        }
    }

    /// The global settings.
    pub fn global(&self) -> &GlobalSettings {
        &self.global
    }

    /// Number of domain entries (not counting the default entry).
    pub fn len(&self) -> usize {
        self.exact.len() + self.parents.len()
    }

    /// Whether there are no domain entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The effective policy for a recipient domain: exact entry, else longest `.parent`, else
    /// default; `default` settings inherit from the default entry.
    ///
    /// The name is compared in lower-case A-label form. An ASCII name that IDNA (UTS #46)
    /// refuses (e.g. `xn--zz.secure.example`, a label that is not valid Punycode) is compared
    /// byte-wise in lower case, so a `.secure.example` entry still applies to it. A name that
    /// cannot be compared at all (empty, too long, not a domain, or not ASCII and refused by
    /// IDNA) is an [`Error::InvalidDestinationDomain`]: it never falls back to the default
    /// entry (fail closed; issue 11, finding 7).
    pub fn lookup(&self, domain: &str) -> Result<DestinationPolicy, Error> {
        let name = normalise(domain).map_err(|reason| Error::InvalidDestinationDomain {
            domain: domain.chars().take(80).collect(),
            reason,
        })?;
        let (matched, entry) = self.find(&name);
        let tls = entry.tls.resolve(self.default_tls);
        let dane = if tls == DeliveryTls::No {
            DaneSetting::None
        } else {
            entry.dane.resolve(self.default_dane)
        };
        Ok(DestinationPolicy {
            domain: name,
            matched,
            tls,
            dane,
            mta_sts: entry
                .mta_sts
                .resolve(self.default_mta_sts.resolve(MtaStsSetting::Honor)),
        })
    }

    fn find(&self, name: &str) -> (DestinationMatch, DestinationEntry) {
        if let Some(e) = self.exact.get(name) {
            return (DestinationMatch::Exact(name.to_owned()), *e);
        }
        // Longest parent first: ".b.c" before ".c" for "a.b.c".
        let mut rest = name;
        while let Some(dot) = rest.find('.') {
            let parent = &rest[dot..];
            if let Some(e) = self.parents.get(parent) {
                return (DestinationMatch::Parent(parent.to_owned()), *e);
            }
            rest = &rest[dot + 1..];
        }
        (DestinationMatch::Default, DestinationEntry::default())
    }
}

/// Builds a [`DestinationControls`]; each step validates its input.
#[derive(Debug, Clone)]
pub struct DestinationControlsBuilder {
    inner: DestinationControls,
}

impl DestinationControlsBuilder {
    /// Sets the default entry. Its settings cannot be `default`.
    pub fn default_entry(mut self, entry: DestinationEntry) -> Result<Self, Error> {
        let err = |kind| Error::DestinationConfig {
            file: String::new(),
            line: 0,
            column: 0,
            text: "default".into(),
            kind,
        };
        check_entry(entry).map_err(err)?;
        if entry.tls == TlsMode::Default || entry.dane == ConfiguredDane::Default {
            return Err(err(DestinationConfigErrorKind::DefaultInDefaultEntry));
        }
        self.inner.default_tls = entry.tls.resolve(DeliveryTls::No);
        self.inner.default_dane = entry.dane.resolve(DaneSetting::None);
        self.inner.default_mta_sts = entry.mta_sts.resolve(MtaStsSetting::Honor);
        Ok(self)
    }

    /// Adds an entry for `key`: `example.com` (exact) or `.example.com` (subdomains).
    pub fn entry(mut self, key: &str, entry: DestinationEntry) -> Result<Self, Error> {
        let err = |kind| Error::DestinationConfig {
            file: String::new(),
            line: 0,
            column: 0,
            text: key.chars().take(80).collect(),
            kind,
        };
        self.insert(key, entry).map_err(err)?;
        Ok(self)
    }

    pub(crate) fn insert(
        &mut self,
        key: &str,
        entry: DestinationEntry,
    ) -> Result<(), DestinationConfigErrorKind> {
        check_entry(entry)?;
        if self.inner.len() >= super::MAX_ENTRIES {
            return Err(DestinationConfigErrorKind::TooManyEntries {
                limit: super::MAX_ENTRIES,
            });
        }
        let (map, bare) = match key.strip_prefix('.') {
            Some(bare) => (&mut self.inner.parents, bare),
            None => (&mut self.inner.exact, key),
        };
        let name = normalise(bare).map_err(|_| DestinationConfigErrorKind::InvalidDomain)?;
        let stored = if key.starts_with('.') {
            format!(".{name}")
        } else {
            name
        };
        if map.contains_key(&stored) {
            return Err(DestinationConfigErrorKind::DuplicateDomain { domain: stored });
        }
        map.insert(stored, entry);
        Ok(())
    }

    /// Sets the global settings.
    pub fn global(mut self, global: GlobalSettings) -> Self {
        self.inner.global = global;
        self
    }

    /// The finished, immutable table.
    pub fn build(self) -> DestinationControls {
        self.inner
    }
}

fn check_entry(entry: DestinationEntry) -> Result<(), DestinationConfigErrorKind> {
    if entry.tls == TlsMode::No
        && !matches!(entry.dane, ConfiguredDane::Default | ConfiguredDane::None)
    {
        return Err(DestinationConfigErrorKind::DaneWithoutTls {
            dane: entry.dane.name(),
        });
    }
    Ok(())
}

// Why a name cannot be compared against the table (`Error::InvalidDestinationDomain`).
const EMPTY: &str = "empty name";
const TOO_LONG: &str = "longer than 253 octets";
const NOT_A_DOMAIN: &str = "not a domain name (labels of letters, digits, '-' and '_')";
const IDNA_REFUSED: &str = "not ASCII, and IDNA (UTS #46) refuses it";

/// The form names are compared in, without the trailing dot: the lower-case A-label form; for
/// an ASCII name that IDNA refuses (invalid Punycode after `xn--`, hyphen rules), the name
/// lower-cased byte-wise, so that `.parent` entries still apply to it (fail closed). A non-ASCII
/// name IDNA refuses cannot equal any stored (ASCII) key and is refused, as is anything that is
/// not a domain name.
pub(crate) fn normalise(domain: &str) -> Result<String, &'static str> {
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    if domain.is_empty() {
        return Err(EMPTY);
    }
    if domain.len() > 253 {
        return Err(TOO_LONG);
    }
    if let Ok(ascii) = idna::domain_to_ascii(domain)
        && is_domain(&ascii)
    {
        return Ok(ascii);
    }
    if !domain.is_ascii() {
        return Err(IDNA_REFUSED);
    }
    let lower = domain.to_ascii_lowercase();
    if is_domain(&lower) {
        Ok(lower)
    } else {
        Err(NOT_A_DOMAIN)
    }
}

/// At most 253 octets of non-empty labels (at most 63 octets) of letters, digits, `-`, `_`.
fn is_domain(ascii: &str) -> bool {
    !ascii.is_empty()
        && ascii.len() <= 253
        && ascii.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}
