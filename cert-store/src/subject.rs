//! The subject of a certificate to create, and FQDN validation.
//!
//! Seed, "Creating a Self-Signed Certificate": Common Name (the fully qualified domain name),
//! Organization, Organizational Unit, City (Locality), State (Province), Country ("the two
//! letter ISO abbreviation"). Upper bounds are RFC 5280 appendix A.1 (`ub-common-name` 64, ...).

use std::net::IpAddr;

use rustls_pki_types::DnsName;

use crate::error::{Error, Result};

/// RFC 5280 `ub-common-name`, `ub-organization-name`, ... (all 64 except locality/state 128).
const UB_NAME: usize = 64;
const UB_PLACE: usize = 128;
/// Most SAN names accepted on one certificate.
pub const MAX_SANS: usize = 100;

/// Whether CN and SAN names must be fully qualified domain names (seed: "FQDN Validation").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum FqdnCheck {
    /// Names are only checked to be non-empty and of bounded length.
    #[default]
    Off,
    /// CN and every DNS SAN must be an FQDN (at least two labels, LDH syntax; IP SANs pass).
    Required,
}

/// The distinguished name and alternative names of a certificate to create.
///
/// ```
/// use cert_store::Subject;
/// let s = Subject::new("mail.example.com").with_country("SE").with_san("mx.example.com");
/// assert!(s.validate().is_ok());
/// assert!(Subject::new("mx").with_country("Sweden").validate().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Subject {
    /// Common name: the fully qualified domain name.
    pub common_name: String,
    /// Organization: the exact legal name.
    pub organization: Option<String>,
    /// Organizational unit.
    pub organizational_unit: Option<String>,
    /// City (locality).
    pub locality: Option<String>,
    /// State (province).
    pub state: Option<String>,
    /// Two-letter ISO 3166 country code.
    pub country: Option<String>,
    /// Subject alternative names (DNS names or IP addresses).
    pub sans: Vec<String>,
}

impl Subject {
    /// A subject with only a common name.
    pub fn new(common_name: impl Into<String>) -> Self {
        Self {
            common_name: common_name.into(),
            ..Self::default()
        }
    }

    /// Adds a subject alternative name.
    pub fn with_san(mut self, name: impl Into<String>) -> Self {
        self.sans.push(name.into());
        self
    }

    /// Sets the organization.
    pub fn with_organization(mut self, o: impl Into<String>) -> Self {
        self.organization = Some(o.into());
        self
    }

    /// Sets the country code.
    pub fn with_country(mut self, c: impl Into<String>) -> Self {
        self.country = Some(c.into());
        self
    }

    /// Checks lengths, the country code, and that names are present.
    pub fn validate(&self) -> Result<()> {
        check_text("common name", &self.common_name, UB_NAME)?;
        for (field, value, ub) in [
            ("organization", &self.organization, UB_NAME),
            ("organizational unit", &self.organizational_unit, UB_NAME),
            ("city", &self.locality, UB_PLACE),
            ("state", &self.state, UB_PLACE),
        ] {
            if let Some(v) = value {
                check_text(field, v, ub)?;
            }
        }
        if let Some(c) = &self.country
            && (c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()))
        {
            return Err(Error::InvalidSubject {
                field: "country",
                reason: "must be a two-letter ISO 3166 code in capitals, e.g. SE",
            });
        }
        if self.sans.len() > MAX_SANS {
            return Err(Error::InvalidSubject {
                field: "subject alternative names",
                reason: "more than 100 names",
            });
        }
        for san in &self.sans {
            if san.parse::<IpAddr>().is_err() && DnsName::try_from(san.as_str()).is_err() {
                return Err(Error::InvalidSubject {
                    field: "subject alternative name",
                    reason: "neither a DNS name nor an IP address",
                });
            }
        }
        Ok(())
    }

    /// Validates, then applies the FQDN check when asked.
    pub fn validate_with(&self, fqdn: FqdnCheck) -> Result<()> {
        self.validate()?;
        check_fqdn_names(
            &self.common_name,
            self.sans.iter().map(String::as_str),
            fqdn,
        )
    }
}

fn check_text(field: &'static str, v: &str, ub: usize) -> Result<()> {
    if v.trim().is_empty() {
        return Err(Error::InvalidSubject {
            field,
            reason: "is empty",
        });
    }
    if v.chars().count() > ub {
        return Err(Error::InvalidSubject {
            field,
            reason: "is longer than RFC 5280 allows",
        });
    }
    if v.chars().any(char::is_control) {
        return Err(Error::InvalidSubject {
            field,
            reason: "contains control characters",
        });
    }
    Ok(())
}

/// Checks the common name and DNS SANs against the FQDN rule when `fqdn` is `Required`.
pub fn check_fqdn_names<'a>(
    common_name: &str,
    sans: impl Iterator<Item = &'a str>,
    fqdn: FqdnCheck,
) -> Result<()> {
    if fqdn == FqdnCheck::Off {
        return Ok(());
    }
    if !is_fqdn(common_name) {
        return Err(Error::NotFqdn {
            field: "common name",
            name: common_name.into(),
        });
    }
    for san in sans {
        if san.parse::<IpAddr>().is_err() && !is_fqdn(san) {
            return Err(Error::NotFqdn {
                field: "subject alternative name",
                name: san.into(),
            });
        }
    }
    Ok(())
}

/// A fully qualified domain name: the rule of `dane_verify::is_fqdn` (cert-store depends on
/// none of the workspace's crates, so it is written on rustls-pki-types' DNS-name syntax, which
/// also refuses a numeric last label, and a test holds the two to the same answers): LDH labels
/// of 1..=63 octets (rustls-pki-types also accepts `_`, refused here), at least two labels, an
/// optional trailing dot, a wildcard only as the whole leftmost label of a name that is an FQDN
/// without it.
pub(crate) fn is_fqdn(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    let base = name.strip_prefix("*.").unwrap_or(name);
    // rustls-pki-types also accepts `_` and a trailing dot: refused here (one was stripped above).
    base.contains('.')
        && !base.contains('_')
        && !base.ends_with('.')
        && DnsName::try_from(base).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fqdn_table() {
        for (name, expected) in [
            ("mail.example.com", true),
            ("mail.example.com.", true),
            ("*.example.com", true),
            ("a.*.example.com", false),
            ("localhost", false),
            ("example", false),
            ("1.2.3.4", false),
            ("-bad.example.com", false),
            ("bad-.example.com", false),
            ("under_score.example.com", false),
            ("", false),
            ("a..b", false),
            // Resolved with the workspace's one rule (`dane_verify::is_fqdn`): a wildcard over
            // one label is not an FQDN (this predicate accepted `*.com`), nor is a numeric `0x`
            // last label.
            ("*.com", false),
            ("example.0x1f", false),
            ("bücher.example", false),
            ("*.a..", false),
        ] {
            assert_eq!(is_fqdn(name), expected, "{name}");
            assert_eq!(dane_verify::is_fqdn(name), expected, "dane-verify: {name}");
        }
    }

    proptest::proptest! {
        /// The same answers as the workspace's FQDN predicate, `dane_verify::is_fqdn`.
        #[test]
        fn agrees_with_dane_verify(name in "[*]?[.]?([a-z0-9_-]{0,4}[.]?){0,4}(0x[0-9a-f]{1,2})?[.]?") {
            proptest::prop_assert_eq!(is_fqdn(&name), dane_verify::is_fqdn(&name), "{}", name);
        }
    }

    #[test]
    fn country_must_be_two_capitals() {
        for (c, ok) in [("SE", true), ("se", false), ("SWE", false), ("", false)] {
            assert_eq!(
                Subject::new("x").with_country(c).validate().is_ok(),
                ok,
                "{c}"
            );
        }
    }

    #[test]
    fn fqdn_check_applies_to_cn_and_sans() {
        let s = Subject::new("mail.example.com").with_san("mx");
        assert!(s.validate_with(FqdnCheck::Off).is_ok());
        assert_eq!(
            s.validate_with(FqdnCheck::Required),
            Err(Error::NotFqdn {
                field: "subject alternative name",
                name: "mx".into()
            })
        );
        let ip = Subject::new("mail.example.com").with_san("192.0.2.1");
        assert!(ip.validate_with(FqdnCheck::Required).is_ok());
    }
}
