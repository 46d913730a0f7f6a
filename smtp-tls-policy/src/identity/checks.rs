//! The optional certificate checks of the seed ("Enabling TLS and Certificate Verification on
//! Delivery": *Optional Only if FQDN validation / X 509 validation enabled in SSL Configuration
//! settings*), and the CA/Browser Forum CN rule used by the strict profile.

use super::algorithm::presented_matches;
use super::presented::{PresentedIdentities, SignatureHash};
use super::reference::ReferenceId;
use crate::chain::{CertPosition, Violation};
use crate::error::Error;

/// FQDN validation switch: every CN and SAN dNSName must be in FQDN format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum FqdnValidation {
    /// Not checked (the seed's default).
    #[default]
    Disabled,
    /// Checked: see [`check_fqdn`].
    Enabled,
}

/// X.509 validation switch: signature algorithm, version and server name checks.
///
/// Two of the three are not optional here: path validation (rustls-webpki) always refuses
/// certificates that are not X.509 version 3 ([`Error::NotVersion3`]) and SHA-1 or MD5
/// signatures ([`Error::LegacySignature`]), whether this switch is on or off. Refusing is the
/// safer default; the switch adds the server name check (and the signature check, as defence in
/// depth, on the leaf's own view).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum X509Validation {
    /// Not checked (the seed's default).
    #[default]
    Disabled,
    /// Checked: see [`check_x509`].
    Enabled,
}

/// `true` when `name` is in FQDN format: [`dane_verify::is_fqdn`] (at least two labels, host-name
/// syntax, an optional left-most `*` label, one optional trailing dot) of its A-label form, so a
/// U-label name (`bücher.example`) is converted with IDNA first.
#[must_use]
pub fn is_fqdn(name: &str) -> bool {
    if name.is_ascii() {
        return dane_verify::is_fqdn(name);
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    let (wildcard, rest) = match name.strip_prefix("*.") {
        Some(rest) => ("*.", rest),
        None => ("", name),
    };
    match idna::domain_to_ascii_strict(rest) {
        Ok(ascii) => dane_verify::is_fqdn(&format!("{wildcard}{ascii}")),
        Err(_) => false,
    }
}

/// FQDN validation: every CN and every SAN dNSName must satisfy [`is_fqdn`].
pub fn check_fqdn(ids: &PresentedIdentities) -> Result<(), Error> {
    match ids
        .common_names
        .iter()
        .chain(&ids.san_dns_names)
        .find(|n| !is_fqdn(n))
    {
        Some(name) => Err(Error::NotFqdn { name: name.clone() }),
        None => Ok(()),
    }
}

/// X.509 validation of the server certificate: not signed with MD5 or SHA-1, and the server
/// (host) name present in the CN or a SAN dNSName (IP: in a SAN iPAddress).
///
/// The version is not checked here: a certificate that is not version 3 never gets this far,
/// path validation refuses it first ([`Error::NotVersion3`], see [`X509Validation`]).
pub fn check_x509(ids: &PresentedIdentities, server_name: &ReferenceId) -> Result<(), Error> {
    match ids.signature_hash {
        SignatureHash::Md5 => {
            return Err(Error::WeakSignature {
                algorithm: format!("MD5 ({})", ids.signature_algorithm),
            });
        }
        SignatureHash::Sha1 => {
            return Err(Error::WeakSignature {
                algorithm: format!("SHA-1 ({})", ids.signature_algorithm),
            });
        }
        _ => {}
    }
    if ids.all_names().any(|p| presented_matches(&p, server_name)) {
        Ok(())
    } else {
        Err(Error::ServerNameAbsent {
            server_name: server_name.to_string(),
        })
    }
}

/// CA/Browser Forum BR §7.1.4.3 (CA/B Forum profile): a subject CN that names one of the
/// certificate's identities must be encoded as a character-for-character copy of it.
///
/// * A CN that looks like an IP address (anything an `inet_aton`-style parser or an IPv6 parser
///   might accept: hex, leading zeros, uppercase, uncompressed forms) must be exactly the RFC 5952
///   / dotted-quad text of a SAN iPAddress.
/// * A CN that denotes a SAN dNSName (equal ignoring case, or equal once converted to A-labels)
///   must be byte-identical to it.
///
/// A DNS-looking CN unrelated to every SAN entry is tolerated (the BR forbid it, but legacy
/// certificates commonly carry one, and identity matching in the strict mode ignores the CN
/// anyway); see the divergences file for the two x509-limbo cases this leaves.
pub fn check_cn_in_san(ids: &PresentedIdentities) -> Result<(), Error> {
    for cn in &ids.common_names {
        let ok = if looks_like_ip(cn) {
            ids.san_ip_addresses.iter().any(|ip| ip.to_string() == *cn)
        } else {
            let ascii = idna::domain_to_ascii(cn).ok();
            let denotes = |d: &String| {
                d.eq_ignore_ascii_case(cn)
                    || ascii.as_deref().is_some_and(|a| d.eq_ignore_ascii_case(a))
            };
            ids.san_dns_names
                .iter()
                .filter(|d| denotes(d))
                .all(|d| d == cn)
        };
        if !ok {
            return Err(Error::Structure {
                position: CertPosition::Leaf,
                violation: Violation::CommonNameNotInSan {
                    common_name: cn.clone(),
                },
            });
        }
    }
    Ok(())
}

/// Could some IP parser read `text` as an address?
fn looks_like_ip(text: &str) -> bool {
    if text.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    let hex_or = |extra: &[u8]| {
        text.bytes()
            .all(|b| b.is_ascii_hexdigit() || extra.contains(&b))
    };
    let ipv6_like = text.contains(':') && hex_or(b":.");
    // No byte slicing of peer text: `strip_prefix` cannot cut a character in two.
    let hex_v4 = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .is_some_and(|rest| {
            !rest.is_empty()
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || b == b'.' || b == b'x' || b == b'X')
        });
    let dotted_numeric = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    ipv6_like || hex_v4 || dotted_numeric
}
