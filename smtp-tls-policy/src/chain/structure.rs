//! RFC 5280 and CA/Browser Forum structural rules that rustls-webpki does not check, applied
//! with x509-parser to every certificate of a validated path (leaf, intermediates and — when its
//! certificate is known — the trust anchor).

use std::fmt;

use x509_parser::certificate::{Validity, X509Certificate};
use x509_parser::der_parser::oid::Oid;
use x509_parser::extensions::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, GeneralName, KeyIdentifier,
    KeyUsage, ParsedExtension,
};
use x509_parser::oid_registry::{
    OID_EC_P256, OID_NIST_EC_P384, OID_NIST_EC_P521, OID_SIG_ED25519,
    OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER, OID_X509_EXT_BASIC_CONSTRAINTS,
    OID_X509_EXT_CERTIFICATE_POLICIES, OID_X509_EXT_CRL_DISTRIBUTION_POINTS,
    OID_X509_EXT_EXTENDED_KEY_USAGE, OID_X509_EXT_KEY_USAGE, OID_X509_EXT_NAME_CONSTRAINTS,
    OID_X509_EXT_SUBJECT_ALT_NAME, OID_X509_EXT_SUBJECT_KEY_IDENTIFIER,
};
use x509_parser::public_key::PublicKey;
use x509_parser::time::ASN1Time;

use rustls_pki_types::UnixTime;

use super::ChainProfile;

/// A certificate's place in the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CertPosition {
    /// The end-entity (server) certificate.
    Leaf,
    /// An intermediate, counted from 1 next to the leaf (or, before path building, its index in
    /// the presented chain).
    Intermediate(usize),
    /// The trust anchor's certificate.
    Anchor,
}

impl fmt::Display for CertPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Leaf => f.write_str("leaf"),
            Self::Intermediate(i) => write!(f, "intermediate #{i}"),
            Self::Anchor => f.write_str("trust anchor"),
        }
    }
}

/// A structural rule a certificate breaks; each names its source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Violation {
    /// RFC 5280 §4.1.2.2: the serial number must be positive.
    #[error("serial number is zero or negative (RFC 5280 4.1.2.2)")]
    SerialNotPositive,
    /// RFC 5280 §4.1.2.2: at most 20 octets.
    #[error("serial number is {octets} octets long, more than 20 (RFC 5280 4.1.2.2)")]
    SerialTooLong {
        /// Octets in the encoded serial.
        octets: usize,
    },
    /// RFC 5280 §4.1.2.4: the issuer must be a non-empty name.
    #[error("issuer name is empty (RFC 5280 4.1.2.4)")]
    EmptyIssuer,
    /// RFC 5280 §4.1.2.6: a CA's subject must be a non-empty name.
    #[error("CA certificate has an empty subject (RFC 5280 4.1.2.6)")]
    EmptyCaSubject,
    /// RFC 5280 §4.1.1.2: `signatureAlgorithm` must equal `tbsCertificate.signature`.
    #[error("outer and inner signature algorithms differ (RFC 5280 4.1.1.2)")]
    SignatureAlgorithmMismatch,
    /// RFC 5280 §4.2: an extension appears twice.
    #[error("extension {oid} appears more than once (RFC 5280 4.2)")]
    DuplicateExtension {
        /// Dotted OID.
        oid: String,
    },
    /// RFC 5280 §4.2: a critical extension this verifier does not process.
    #[error("unrecognised critical extension {oid} (RFC 5280 4.2)")]
    UnknownCriticalExtension {
        /// Dotted OID.
        oid: String,
    },
    /// An extension's content could not be parsed.
    #[error("extension {oid} is malformed")]
    MalformedExtension {
        /// Dotted OID.
        oid: String,
    },
    /// RFC 5280 §4.2.1.1: the authority key identifier must not be critical.
    #[error("authorityKeyIdentifier is critical (RFC 5280 4.2.1.1)")]
    CriticalAuthorityKeyId,
    /// RFC 5280 §4.2.1.1: certificates not self-issued must carry an AKI keyIdentifier.
    #[error("authorityKeyIdentifier keyIdentifier is missing (RFC 5280 4.2.1.1)")]
    MissingAuthorityKeyId,
    /// RFC 5280 §4.2.1.2: the subject key identifier must not be critical.
    #[error("subjectKeyIdentifier is critical (RFC 5280 4.2.1.2)")]
    CriticalSubjectKeyId,
    /// RFC 5280 §4.2.1.2: every CA certificate must carry a subject key identifier.
    #[error("CA certificate has no subjectKeyIdentifier (RFC 5280 4.2.1.2)")]
    MissingSubjectKeyId,
    /// RFC 5280 §4.2.1.6: with an empty subject, the SAN must be critical.
    #[error("subject is empty but subjectAltName is not critical (RFC 5280 4.2.1.6)")]
    SanNotCriticalWithEmptySubject,
    /// RFC 5280 §4.2.1.9: a CA certificate must have a critical basicConstraints.
    #[error("CA certificate lacks a critical basicConstraints extension (RFC 5280 4.2.1.9)")]
    BasicConstraintsNotCritical,
    /// RFC 5280 §4.2.1.3/§4.2.1.9: a CA whose keyUsage omits keyCertSign cannot sign certificates.
    #[error("CA certificate's keyUsage lacks keyCertSign (RFC 5280 4.2.1.3)")]
    CaWithoutKeyCertSign,
    /// RFC 5280 §4.2.2.1: authorityInfoAccess must not be critical and must not be empty.
    #[error("authorityInfoAccess is critical or empty (RFC 5280 4.2.2.1)")]
    BadAuthorityInfoAccess,
    /// RFC 5280 §4.2.1.3/§4.2.1.9: keyCertSign asserted in a certificate that is not a CA.
    #[error("keyUsage keyCertSign asserted but basicConstraints cA is not (RFC 5280 4.2.1.9)")]
    KeyCertSignWithoutCa,
    /// RFC 5280 §4.2.1.10: nameConstraints only in CA certificates, with at least one non-empty
    /// subtree list.
    #[error("nameConstraints in a non-CA certificate, or with no subtrees (RFC 5280 4.2.1.10)")]
    BadNameConstraints,
    /// RFC 5280 §4.2.1.10: a dNSName constraint is a host name — no leading period (that is the
    /// URI and rfc822Name form; NSS and rustls-webpki read `.example.com` as "strictly below",
    /// OpenSSL as "example.com and below") and no wildcard.
    #[error(
        "dNSName constraint {constraint:?} is not a host name: a leading period or a wildcard is \
         not allowed (RFC 5280 4.2.1.10)"
    )]
    DnsConstraintNotHostName {
        /// The constraint as written.
        constraint: String,
    },
    /// The trust anchor's certificate is outside its validity period at verification time.
    #[error("trust anchor certificate is expired or not yet valid")]
    AnchorNotValidAtTime,
    /// CA/B BR §7.1.2.1.3: a root's AKI must be only a keyIdentifier equal to its SKI.
    #[error(
        "root authorityKeyIdentifier is not a lone keyIdentifier equal to the SKI (CABF BR 7.1.2.1.3)"
    )]
    BadRootAuthorityKeyId,
    /// CA/B BR §7.1.2.7.12: with a non-empty subject, the SAN must not be critical.
    #[error("subjectAltName is critical although the subject is not empty (CABF BR 7.1.2.7.12)")]
    SanCriticalWithSubject,
    /// CA/B BR §7.1.2.7.8: a subscriber (leaf) certificate must have cA=FALSE.
    #[error("leaf certificate is a CA (basicConstraints cA=TRUE) (CABF BR 7.1.2.7.8)")]
    LeafIsCa,
    /// CA/B BR §7.1.2.7.10: the leaf EKU must not be critical nor contain anyExtendedKeyUsage.
    #[error("leaf extKeyUsage is critical or contains anyExtendedKeyUsage (CABF BR 7.1.2.7.10)")]
    BadLeafExtendedKeyUsage,
    /// CA/B BR §7.1.2.1.2: a root must not carry extKeyUsage.
    #[error("root certificate carries extKeyUsage (CABF BR 7.1.2.1.2)")]
    RootHasExtendedKeyUsage,
    /// CA/B BR §6.1.5/§6.1.6: RSA ≥ 2048 bits with a modulus a multiple of 8, or ECDSA on P-256,
    /// P-384, P-521, or Ed25519.
    #[error("public key is not an allowed key type or size (CABF BR 6.1.5)")]
    WeakKey,
    /// CA/B BR §7.1.4.3: a CN must be a character-for-character copy of a SAN entry.
    #[error("subject CN {common_name:?} is not a copy of a SAN entry (CABF BR 7.1.4.3)")]
    CommonNameNotInSan {
        /// The CN value.
        common_name: String,
    },
}

/// Extensions this crate (or rustls-webpki) processes; a critical extension outside this list
/// is refused (RFC 5280 §4.2).
const KNOWN_EXTENSIONS: &[Oid<'static>] = &[
    OID_X509_EXT_SUBJECT_KEY_IDENTIFIER,
    OID_X509_EXT_KEY_USAGE,
    OID_X509_EXT_SUBJECT_ALT_NAME,
    OID_X509_EXT_BASIC_CONSTRAINTS,
    OID_X509_EXT_NAME_CONSTRAINTS,
    OID_X509_EXT_CERTIFICATE_POLICIES,
    OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER,
    OID_X509_EXT_EXTENDED_KEY_USAGE,
    OID_X509_EXT_CRL_DISTRIBUTION_POINTS,
];

/// `true` when every arc of `oid` is minimally encoded (no arc starts with a 0x80 octet), so
/// that two such OIDs are the same exactly when their octets are.
fn minimally_encoded(oid: &Oid<'_>) -> bool {
    let mut arc_start = true;
    oid.as_bytes().iter().all(|&b| {
        let ok = !(arc_start && b == 0x80);
        arc_start = b & 0x80 == 0;
        ok
    })
}

/// The same OID in dotted form; compares octets, and only formats both in the (non-DER) case of
/// a non-minimal arc encoding.
fn same_oid(a: &Oid<'_>, b: &Oid<'_>) -> bool {
    a == b
        || ((!minimally_encoded(a) || !minimally_encoded(b))
            && a.to_id_string() == b.to_id_string())
}

fn is_known_extension(oid: &Oid<'_>) -> bool {
    KNOWN_EXTENSIONS.iter().any(|known| same_oid(known, oid))
}

/// The outcome of the structural rules on one certificate, split around the one rule that
/// depends on the verification time (the trust anchor's validity period), so that an anchor's
/// outcome can be computed once, when the anchor is configured, and combined with the time on
/// every verification in exactly the order [`check`] applies the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Staged {
    /// Rules applied before the anchor's validity period.
    before_validity: Result<(), Violation>,
    /// Whether the validity period is checked at all (trust anchor, profile beyond webpki).
    checks_validity: bool,
    /// Rules applied after it (only reached when `before_validity` is `Ok`).
    after_validity: Result<(), Violation>,
}

impl Staged {
    /// Combines the staged outcome with the validity check (`valid_at` is only consulted for
    /// the trust anchor).
    pub(crate) fn finish(&self, valid_at: impl FnOnce() -> bool) -> Result<(), Violation> {
        self.before_validity.clone()?;
        if self.checks_validity && !valid_at() {
            return Err(Violation::AnchorNotValidAtTime);
        }
        self.after_validity.clone()
    }
}

/// Whether `validity` covers `time` (x509-parser's `Validity::is_valid_at`, inclusive bounds);
/// a time outside what x509-parser can represent is not covered.
pub(crate) fn valid_at(validity: &Validity, time: UnixTime) -> bool {
    i64::try_from(time.as_secs())
        .ok()
        .and_then(|t| ASN1Time::from_timestamp(t).ok())
        .is_some_and(|t| validity.is_valid_at(t))
}

/// Checks a leaf or an intermediate at `position` against `profile`'s rules (a trust anchor goes
/// through [`check_staged`], its validity period being checked at verification time).
///
/// A trust anchor is trusted by configuration (RFC 5280 §6.1.1 d), so the rules about how a CA
/// *issued* a certificate (serial number, AKI presence) are not applied to it.
pub(crate) fn check(
    cert: &X509Certificate<'_>,
    position: CertPosition,
    profile: ChainProfile,
) -> Result<(), Violation> {
    debug_assert_ne!(position, CertPosition::Anchor, "anchors are checked staged");
    check_staged(cert, position, profile).finish(|| true)
}

/// [`check`] without the time-dependent rule: see [`Staged`]. Allocates nothing unless a rule is
/// broken.
pub(crate) fn check_staged(
    cert: &X509Certificate<'_>,
    position: CertPosition,
    profile: ChainProfile,
) -> Staged {
    let checks_validity = position == CertPosition::Anchor && profile != ChainProfile::WebpkiOnly;
    match check_before_validity(cert, position, profile) {
        Ok(facts) => Staged {
            before_validity: Ok(()),
            checks_validity,
            after_validity: check_after_validity(cert, position, profile, &facts),
        },
        Err(violation) => Staged {
            before_validity: Err(violation),
            checks_validity,
            after_validity: Ok(()),
        },
    }
}

/// What the rules after the validity check need from the extension walk.
struct Facts<'c, 'a> {
    cabf: bool,
    is_ca: bool,
    self_issued: bool,
    basic_constraints: Option<(bool, &'c BasicConstraints)>,
    key_usage: Option<&'c KeyUsage>,
    aki: Option<&'c AuthorityKeyIdentifier<'a>>,
    ski: Option<&'c KeyIdentifier<'a>>,
    eku: Option<(bool, &'c ExtendedKeyUsage<'a>)>,
}

fn check_before_validity<'c, 'a>(
    cert: &'c X509Certificate<'a>,
    position: CertPosition,
    profile: ChainProfile,
) -> Result<Facts<'c, 'a>, Violation> {
    let cabf = profile == ChainProfile::CabForum;
    let inert = Facts {
        cabf,
        is_ca: false,
        self_issued: false,
        basic_constraints: None,
        key_usage: None,
        aki: None,
        ski: None,
        eku: None,
    };
    if profile == ChainProfile::WebpkiOnly {
        return Ok(inert);
    }
    let tbs = &cert.tbs_certificate;
    let anchor = position == CertPosition::Anchor;
    if !anchor {
        check_serial(cert.raw_serial())?;
    }
    if cert.signature_algorithm != tbs.signature {
        return Err(Violation::SignatureAlgorithmMismatch);
    }
    if cert.issuer().as_raw().len() <= 2 || cert.issuer().iter().next().is_none() {
        return Err(Violation::EmptyIssuer);
    }
    let subject_empty = cert.subject().iter().next().is_none();
    let self_issued = cert.subject().as_raw() == cert.issuer().as_raw();
    let (mut aki, mut ski, mut bc, mut ku, mut san, mut eku, mut nc) =
        (None, None, None, None, None, None, None);
    let extensions = cert.extensions();
    for (index, ext) in extensions.iter().enumerate() {
        if extensions[..index]
            .iter()
            .any(|e| same_oid(&e.oid, &ext.oid))
        {
            return Err(Violation::DuplicateExtension {
                oid: ext.oid.to_id_string(),
            });
        }
        match ext.parsed_extension() {
            ParsedExtension::ParseError { .. } => {
                return Err(Violation::MalformedExtension {
                    oid: ext.oid.to_id_string(),
                });
            }
            ParsedExtension::AuthorityKeyIdentifier(a) => aki = Some((ext.critical, a)),
            ParsedExtension::SubjectKeyIdentifier(s) => ski = Some((ext.critical, s)),
            ParsedExtension::BasicConstraints(b) => bc = Some((ext.critical, b)),
            ParsedExtension::KeyUsage(k) => ku = Some(k),
            ParsedExtension::SubjectAlternativeName(_) => san = Some(ext.critical),
            ParsedExtension::ExtendedKeyUsage(e) => eku = Some((ext.critical, e)),
            ParsedExtension::NameConstraints(n) => nc = Some(n),
            ParsedExtension::AuthorityInfoAccess(aia)
                if ext.critical || aia.accessdescs.is_empty() =>
            {
                return Err(Violation::BadAuthorityInfoAccess);
            }
            _ if ext.critical && !is_known_extension(&ext.oid) => {
                return Err(Violation::UnknownCriticalExtension {
                    oid: ext.oid.to_id_string(),
                });
            }
            _ => {}
        }
    }
    let is_ca = bc.is_some_and(|(_, b)| b.ca);
    if is_ca && subject_empty {
        return Err(Violation::EmptyCaSubject);
    }
    match aki {
        Some((true, _)) => return Err(Violation::CriticalAuthorityKeyId),
        Some((false, a)) if a.key_identifier.is_none() && !self_issued && !anchor => {
            return Err(Violation::MissingAuthorityKeyId);
        }
        None if !self_issued && !anchor => return Err(Violation::MissingAuthorityKeyId),
        _ => {}
    }
    match ski {
        Some((true, _)) => return Err(Violation::CriticalSubjectKeyId),
        None if is_ca => return Err(Violation::MissingSubjectKeyId),
        _ => {}
    }
    match san {
        Some(false) if subject_empty => return Err(Violation::SanNotCriticalWithEmptySubject),
        Some(true) if cabf && !subject_empty => return Err(Violation::SanCriticalWithSubject),
        _ => {}
    }
    if !is_ca && ku.is_some_and(|k| k.key_cert_sign()) {
        return Err(Violation::KeyCertSignWithoutCa);
    }
    if let Some(n) = nc {
        let non_empty = |t: &Option<Vec<_>>| t.as_ref().is_some_and(|v| !v.is_empty());
        if !is_ca || !(non_empty(&n.permitted_subtrees) || non_empty(&n.excluded_subtrees)) {
            return Err(Violation::BadNameConstraints);
        }
        // dNSName constraints are host names: no leading period, no wildcard (RFC 5280 §4.2.1.10).
        let bad_dns = n
            .permitted_subtrees
            .iter()
            .chain(&n.excluded_subtrees)
            .flatten()
            .find_map(|t| match t.base {
                GeneralName::DNSName(d) if d.starts_with('.') || d.contains('*') => Some(d),
                _ => None,
            });
        if let Some(constraint) = bad_dns {
            return Err(Violation::DnsConstraintNotHostName {
                constraint: constraint.to_owned(),
            });
        }
    }
    Ok(Facts {
        cabf,
        is_ca,
        self_issued,
        basic_constraints: bc,
        key_usage: ku,
        aki: aki.map(|(_, a)| a),
        ski: ski.map(|(_, s)| s),
        eku,
    })
}

fn check_after_validity(
    cert: &X509Certificate<'_>,
    position: CertPosition,
    profile: ChainProfile,
    facts: &Facts<'_, '_>,
) -> Result<(), Violation> {
    if profile == ChainProfile::WebpkiOnly {
        return Ok(());
    }
    let is_ca = facts.is_ca;
    if position == CertPosition::Anchor {
        if facts
            .basic_constraints
            .is_none_or(|(critical, _)| !critical)
        {
            return Err(Violation::BasicConstraintsNotCritical);
        }
        if is_ca && facts.key_usage.is_some_and(|k| !k.key_cert_sign()) {
            return Err(Violation::CaWithoutKeyCertSign);
        }
    }
    if !facts.cabf {
        return Ok(());
    }
    match position {
        // CABF root rules apply to self-issued roots, not to an intermediate configured as anchor.
        CertPosition::Anchor if facts.self_issued => {
            check_key(cert)?;
            if facts.eku.is_some() {
                return Err(Violation::RootHasExtendedKeyUsage);
            }
            if let Some(a) = facts.aki {
                let ski_value = facts.ski.map(|s| s.0);
                if a.authority_cert_issuer.is_some()
                    || a.authority_cert_serial.is_some()
                    || a.key_identifier.as_ref().map(|k| k.0) != ski_value
                    || ski_value.is_none()
                {
                    return Err(Violation::BadRootAuthorityKeyId);
                }
            }
        }
        CertPosition::Leaf => {
            if is_ca {
                return Err(Violation::LeafIsCa);
            }
            if facts.eku.is_some_and(|(critical, e)| critical || e.any) {
                return Err(Violation::BadLeafExtendedKeyUsage);
            }
            check_key(cert)?;
        }
        CertPosition::Anchor | CertPosition::Intermediate(_) => check_key(cert)?,
    }
    Ok(())
}

fn check_serial(serial: &[u8]) -> Result<(), Violation> {
    // DER INTEGER content: a leading 0x00 only pads a positive value with its top bit set.
    let magnitude = match serial {
        [0, rest @ ..] if !rest.is_empty() => rest,
        other => other,
    };
    if serial.first().is_none_or(|b| b & 0x80 != 0) || magnitude.iter().all(|b| *b == 0) {
        return Err(Violation::SerialNotPositive);
    }
    if serial.len() > 20 {
        return Err(Violation::SerialTooLong {
            octets: serial.len(),
        });
    }
    Ok(())
}

fn check_key(cert: &X509Certificate<'_>) -> Result<(), Violation> {
    let spki = cert.public_key();
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => {
            let modulus = rsa.modulus;
            let first = modulus
                .iter()
                .position(|b| *b != 0)
                .unwrap_or(modulus.len());
            let significant = &modulus[first..];
            let bits = significant.first().map_or(0, |top| {
                significant.len() * 8 - top.leading_zeros() as usize
            });
            if bits >= 2048 && bits % 8 == 0 {
                Ok(())
            } else {
                Err(Violation::WeakKey)
            }
        }
        Ok(PublicKey::EC(_)) => {
            // namedCurve parameter: P-256, P-384, P-521
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok());
            match curve {
                Some(c) if [OID_EC_P256, OID_NIST_EC_P384, OID_NIST_EC_P521].contains(&c) => Ok(()),
                _ => Err(Violation::WeakKey),
            }
        }
        Ok(PublicKey::Unknown(_)) if spki.algorithm.algorithm == OID_SIG_ED25519 => Ok(()),
        _ => Err(Violation::WeakKey),
    }
}
