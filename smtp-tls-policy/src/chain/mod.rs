//! Chain trust: rustls-webpki path validation (server-auth EKU, caller's trust anchors, a given
//! time) plus the RFC 5280 / CA/Browser Forum structural checks webpki lacks ([`Violation`]).
//!
//! Seed "Enabling TLS and Certificate Verification on Delivery": *the chain of issuer
//! certificates for the SMTP session ends in a certificate issued by a trusted certificate
//! authority (CA)*.

mod memo;
mod refusal;
#[cfg(feature = "cert-store")]
mod store_anchors;
mod structure;

use std::cell::{Cell, RefCell};
use std::sync::OnceLock;

use rustls_pki_types::{CertificateDer, SignatureVerificationAlgorithm, TrustAnchor, UnixTime};
use webpki::{EndEntityCert, KeyUsage};
use x509_parser::certificate::{Validity, X509Certificate};
use x509_parser::prelude::FromDer;

pub use dane_verify::{ConstraintBreach, MAX_CN_CONSTRAINT_COMPARISONS};
use dane_verify::{PathCa, check_cn_name_constraints, check_server_key_usage};
use memo::{IntermediateMemo, IntermediateOutcome};
use structure::Staged;
pub use structure::{CertPosition, Violation};

use crate::error::Error;
use crate::identity::cn_dns_id;

/// Most certificates a peer may present (leaf + intermediates); longer chains are refused before
/// any parsing (bounded work).
pub const MAX_PRESENTED_CERTIFICATES: usize = 16;
/// Default limit on intermediates in a validated path.
pub const DEFAULT_MAX_INTERMEDIATES: usize = 8;

/// Which structural rules are applied on top of rustls-webpki.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ChainProfile {
    /// rustls-webpki alone.
    WebpkiOnly,
    /// Plus RFC 5280 structure: serial numbers, empty names, AKI/SKI presence and criticality,
    /// duplicate or unknown critical extensions, the anchor's basicConstraints/keyUsage, AIA.
    #[default]
    Rfc5280,
    /// Plus the CA/Browser Forum Baseline Requirements: leaf not a CA, leaf EKU not critical and
    /// without anyEKU, no EKU in roots, root AKI form, SAN criticality, subscriber key sizes, CN a
    /// copy of a SAN entry.
    CabForum,
}

/// Trust anchors handed in by the caller, with their certificates when known (the structural
/// checks then also cover the anchor).
///
/// Verification is cheap to repeat against one `TrustAnchors` (share it, e.g. in an `Arc`): the
/// structural checks of each anchor's certificate are done once, here, and the outcome of each
/// intermediate seen on a validated path is remembered (keyed by its whole DER encoding, at most
/// 64 of them), so later handshakes through the same CA skip re-parsing it.
///
/// ```
/// use smtp_tls_policy::chain::TrustAnchors;
/// let key = rcgen::KeyPair::generate().unwrap();
/// let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
/// params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
/// let ca = params.self_signed(&key).unwrap();
/// let anchors = TrustAnchors::from_certificates([ca.der().clone()]).unwrap();
/// assert_eq!(anchors.len(), 1);
/// ```
#[derive(Debug, Clone, Default)]
pub struct TrustAnchors {
    anchors: Vec<TrustAnchor<'static>>,
    /// Per anchor, when its certificate is known: the structural checks' outcome, computed once
    /// here rather than by re-parsing the certificate on every verification.
    certificates: Vec<Option<AnchorChecks>>,
    /// Structural outcomes of intermediates already seen on paths to these anchors.
    intermediates: IntermediateMemo,
}

/// What the structural checks established about a trust anchor's certificate, per profile, and
/// its validity period (the one time-dependent rule, applied at verification time).
#[derive(Debug, Clone)]
struct AnchorChecks {
    /// `Err` when x509-parser cannot parse the certificate (reported, as before, only when a
    /// path ending at this anchor is checked with a profile beyond [`ChainProfile::WebpkiOnly`]).
    parsed: Result<ParsedAnchor, Error>,
}

#[derive(Debug, Clone)]
struct ParsedAnchor {
    validity: Validity,
    rfc5280: Staged,
    cabforum: Staged,
}

impl AnchorChecks {
    fn new(der: &[u8]) -> Self {
        let parsed = parse(der, CertPosition::Anchor).map(|cert| ParsedAnchor {
            validity: cert.validity().clone(),
            rfc5280: structure::check_staged(&cert, CertPosition::Anchor, ChainProfile::Rfc5280),
            cabforum: structure::check_staged(&cert, CertPosition::Anchor, ChainProfile::CabForum),
        });
        Self { parsed }
    }

    /// The anchor's structural verdict under `profile` at `time`, exactly as checking the
    /// freshly parsed certificate would give it.
    fn check(&self, profile: ChainProfile, time: UnixTime) -> Result<(), Error> {
        let staged = match (&self.parsed, profile) {
            (_, ChainProfile::WebpkiOnly) => return Ok(()),
            (Err(e), _) => return Err(e.clone()),
            (Ok(p), ChainProfile::Rfc5280) => &p.rfc5280,
            (Ok(p), ChainProfile::CabForum) => &p.cabforum,
        };
        let validity = self.parsed.as_ref().map(|p| &p.validity);
        staged
            .finish(|| validity.is_ok_and(|v| structure::valid_at(v, time)))
            .map_err(|violation| Error::Structure {
                position: CertPosition::Anchor,
                violation,
            })
    }
}

impl TrustAnchors {
    /// No anchor: every chain fails with [`Error::NoTrustAnchors`].
    #[must_use]
    pub fn empty() -> Self {
        Self::default()
    }

    /// Anchors from CA certificates (e.g. a PEM CA list).
    pub fn from_certificates(
        certs: impl IntoIterator<Item = CertificateDer<'static>>,
    ) -> Result<Self, Error> {
        let mut out = Self::default();
        for (index, cert) in certs.into_iter().enumerate() {
            out.add_certificate(cert).map_err(|e| match e {
                Error::InvalidTrustAnchor { detail, .. } => {
                    Error::InvalidTrustAnchor { index, detail }
                }
                other => other,
            })?;
        }
        Ok(out)
    }

    /// Adds one CA certificate.
    pub fn add_certificate(&mut self, cert: CertificateDer<'static>) -> Result<(), Error> {
        let anchor = webpki::anchor_from_trusted_cert(&cert)
            .map_err(|e| Error::InvalidTrustAnchor {
                index: self.anchors.len(),
                detail: format!("{e:?}"),
            })?
            .to_owned();
        self.anchors.push(anchor);
        self.certificates.push(Some(AnchorChecks::new(&cert)));
        Ok(())
    }

    /// Adds bare anchors (subject + key, e.g. from `webpki-roots`); no structural checks apply to
    /// them since their certificates are unknown.
    pub fn add_anchors(&mut self, anchors: impl IntoIterator<Item = TrustAnchor<'static>>) {
        for anchor in anchors {
            self.anchors.push(anchor);
            self.certificates.push(None);
        }
    }

    /// Mozilla's CA list (this project's "system" list), from the `webpki-roots` crate.
    #[cfg(feature = "mozilla-roots")]
    #[must_use]
    pub fn mozilla() -> Self {
        let mut out = Self::default();
        out.add_anchors(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        out
    }

    /// Number of anchors.
    #[must_use]
    pub fn len(&self) -> usize {
        self.anchors.len()
    }

    /// `true` when no anchor is configured.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.anchors.is_empty()
    }

    /// The anchors, as rustls-webpki takes them.
    #[must_use]
    pub fn anchors(&self) -> &[TrustAnchor<'static>] {
        &self.anchors
    }

    fn checks_for(&self, anchor: &TrustAnchor<'_>) -> Option<&AnchorChecks> {
        self.anchors
            .iter()
            .position(|a| {
                a.subject.as_ref() == anchor.subject.as_ref()
                    && a.subject_public_key_info.as_ref() == anchor.subject_public_key_info.as_ref()
            })
            .and_then(|i| self.certificates.get(i)?.as_ref())
    }
}

/// How to validate a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChainOptions {
    /// Validation time.
    pub time: UnixTime,
    /// Most intermediates in the validated path.
    pub max_intermediates: usize,
    /// Structural rules on top of webpki.
    pub profile: ChainProfile,
}

impl ChainOptions {
    /// Options at `time`, default limit and profile.
    #[must_use]
    pub fn at(time: UnixTime) -> Self {
        Self {
            time,
            max_intermediates: DEFAULT_MAX_INTERMEDIATES,
            profile: ChainProfile::default(),
        }
    }

    /// Sets the structural profile.
    #[must_use]
    pub fn with_profile(mut self, profile: ChainProfile) -> Self {
        self.profile = profile;
        self
    }

    /// Sets the intermediate limit.
    #[must_use]
    pub fn with_max_intermediates(mut self, max: usize) -> Self {
        self.max_intermediates = max;
        self
    }
}

/// What a successful path validation established.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ValidatedPath {
    /// Intermediates on the path (excluding the leaf and the anchor).
    pub intermediates: usize,
    /// DER subject of the trust anchor the path ends at.
    pub anchor_subject: Vec<u8>,
}

/// The signature algorithms accepted in chains: those of rustls' aws-lc-rs provider.
#[must_use]
pub fn supported_algorithms() -> &'static [&'static dyn SignatureVerificationAlgorithm] {
    // Building the provider allocates (cipher suite and group lists): do it once.
    static ALGORITHMS: OnceLock<&'static [&'static dyn SignatureVerificationAlgorithm]> =
        OnceLock::new();
    ALGORITHMS.get_or_init(|| {
        rustls::crypto::aws_lc_rs::default_provider()
            .signature_verification_algorithms
            .all
    })
}

pub(crate) fn parse(der: &[u8], position: CertPosition) -> Result<X509Certificate<'_>, Error> {
    parse_certificate(der).map_err(|detail| Error::MalformedCertificate { position, detail })
}

/// Parses one whole DER certificate with x509-parser; `Err` carries the reason.
fn parse_certificate(der: &[u8]) -> Result<X509Certificate<'_>, String> {
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err("trailing data".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Validates `leaf` up to one of `anchors` for TLS server authentication, then applies the
/// structural checks of `options.profile` to the leaf, the intermediates of the path, and the
/// anchor's certificate when known. Paths breaking a structural rule are rejected *during* path
/// building, so rustls-webpki goes on to try other paths.
///
/// Name constraints are applied to the SAN entries (by rustls-webpki), not to the subject CN:
/// whether the CN is a DNS identity depends on the identity algorithm, so
/// [`crate::verify_server_certificate`] checks it (see [`ConstraintBreach`]).
pub fn verify_chain(
    leaf: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    anchors: &TrustAnchors,
    options: &ChainOptions,
) -> Result<ValidatedPath, Error> {
    check_inputs(intermediates, anchors)?;
    let parsed_leaf = parse(leaf, CertPosition::Leaf)?;
    verify_parsed_chain(leaf, &parsed_leaf, intermediates, anchors, options, &[])
}

/// The limits checked before any parsing: the presented chain's length (bounded work) and at
/// least one trust anchor.
fn check_inputs(intermediates: &[CertificateDer<'_>], anchors: &TrustAnchors) -> Result<(), Error> {
    if intermediates.len() + 1 > MAX_PRESENTED_CERTIFICATES {
        return Err(Error::TooManyCertificates {
            count: intermediates.len() + 1,
            limit: MAX_PRESENTED_CERTIFICATES,
        });
    }
    if anchors.is_empty() {
        return Err(Error::NoTrustAnchors);
    }
    Ok(())
}

/// [`verify_chain`] with the leaf already parsed by x509-parser (parsed once per verification),
/// holding `dns_common_names` — the leaf's subject CNs the identity algorithm uses as DNS
/// identities — to the dNSName constraints of every CA on the path (RFC 5280 §4.2.1.10), as
/// rustls-webpki holds the SAN entries, during path building so that other paths are tried.
/// Then the leaf's keyUsage must allow TLS server use, under every profile.
pub(crate) fn verify_parsed_chain(
    leaf: &CertificateDer<'_>,
    parsed_leaf: &X509Certificate<'_>,
    intermediates: &[CertificateDer<'_>],
    anchors: &TrustAnchors,
    options: &ChainOptions,
    dns_common_names: &[String],
) -> Result<ValidatedPath, Error> {
    check_inputs(intermediates, anchors)?;
    let refused = |e| refusal::explain(e, parsed_leaf, intermediates);
    let ee = EndEntityCert::try_from(leaf).map_err(refused)?;
    let cn_dns_ids = dns_identities(dns_common_names);
    let cn_budget = Cell::new(MAX_CN_CONSTRAINT_COMPARISONS);
    let rejected: RefCell<Option<Error>> = RefCell::new(None);
    // webpki may try several paths through the same intermediates: check each once.
    let outcomes = RefCell::new(vec![None; intermediates.len()]);
    let check_path = |path: &webpki::VerifiedPath<'_>| -> Result<(), webpki::Error> {
        let mut outcomes = outcomes.borrow_mut();
        let mut checked = IntermediateChecks {
            presented: intermediates,
            outcomes: &mut outcomes,
            memo: &anchors.intermediates,
        };
        let outcome = check_path_structure(path, anchors, options, &mut checked)
            .and_then(|()| check_common_names(path, &cn_dns_ids, &cn_budget));
        match outcome {
            Ok(()) => Ok(()),
            Err(e) => {
                rejected.borrow_mut().get_or_insert(e);
                Err(webpki::Error::UnknownIssuer)
            }
        }
    };
    let result = ee.verify_for_usage(
        supported_algorithms(),
        anchors.anchors(),
        intermediates,
        options.time,
        KeyUsage::server_auth(),
        None,
        Some(&check_path),
    );
    let path = match result {
        Ok(path) => path,
        Err(e) => return Err(rejected.into_inner().unwrap_or_else(|| refused(e))),
    };
    structure::check(parsed_leaf, CertPosition::Leaf, options.profile).map_err(|violation| {
        Error::Structure {
            position: CertPosition::Leaf,
            violation,
        }
    })?;
    // One leaf keyUsage rule with DANE-TA and PKIX in dane-verify (OpenSSL's `ssl_server`
    // purpose); rustls-webpki checks only the extended key usage.
    check_server_key_usage(leaf).map_err(|e| match e {
        dane_verify::Error::KeyUsageNotForServer { found } => {
            Error::LeafKeyUsageNotForServer { found }
        }
        other => Error::MalformedCertificate {
            position: CertPosition::Leaf,
            detail: other.to_string(),
        },
    })?;
    Ok(ValidatedPath {
        intermediates: path.intermediate_certificates().count(),
        anchor_subject: path.anchor().subject.as_ref().to_vec(),
    })
}

/// The CNs (of `common_names`) that can be DNS identities, each with its DNS-ID form.
fn dns_identities(common_names: &[String]) -> Vec<(&str, String)> {
    common_names
        .iter()
        .filter_map(|cn| cn_dns_id(cn).map(|id| (cn.as_str(), id)))
        .collect()
}

/// Holds every CN of `names` (CN, DNS-ID) to the dNSName constraints of each CA on `path`
/// (intermediates from the leaf up, then the trust anchor's constraints, also those of a bare
/// anchor), by dane-verify's rule for a CN used as a DNS identity ([`check_cn_name_constraints`],
/// the one DANE-TA uses). `budget` is what is left of [`MAX_CN_CONSTRAINT_COMPARISONS`] for this
/// verification; spent, the chain is refused with rustls-webpki's error for that limit.
fn check_common_names(
    path: &webpki::VerifiedPath<'_>,
    names: &[(&str, String)],
    budget: &Cell<usize>,
) -> Result<(), Error> {
    if names.is_empty() {
        return Ok(());
    }
    let intermediates: Vec<CertificateDer<'_>> =
        path.intermediate_certificates().map(|c| c.der()).collect();
    let mut cas: Vec<PathCa<'_>> = intermediates
        .iter()
        .map(|c| PathCa::Certificate(c.as_ref()))
        .collect();
    if let Some(constraints) = &path.anchor().name_constraints {
        cas.push(PathCa::AnchorNameConstraints(constraints.as_ref()));
    }
    let position = |depth: usize| {
        if depth <= intermediates.len() {
            CertPosition::Intermediate(depth)
        } else {
            CertPosition::Anchor
        }
    };
    let dns_ids: Vec<&str> = names.iter().map(|(_, id)| id.as_str()).collect();
    check_cn_name_constraints(&dns_ids, &cas, budget).map_err(|e| match e {
        dane_verify::Error::CnOutsideNameConstraints {
            name,
            depth,
            breach,
        } => Error::CommonNameOutsideNameConstraints {
            common_name: names
                .iter()
                .find(|(_, id)| *id == name)
                .map_or(name, |(cn, _)| (*cn).to_owned()),
            constrained_by: position(depth),
            breach,
        },
        dane_verify::Error::Limit { .. } => {
            Error::Chain(webpki::Error::MaximumNameConstraintComparisonsExceeded)
        }
        dane_verify::Error::BadCertificate { depth, reason } => Error::MalformedCertificate {
            position: position(depth),
            detail: reason,
        },
        // Not returned by the check (its errors are documented); refused all the same.
        other => Error::MalformedCertificate {
            position: position(cas.len()),
            detail: other.to_string(),
        },
    })
}

/// Per-verification memo of the intermediates' structural outcomes, indexed like the presented
/// intermediates (the outcome is a function of the certificate's bytes and the profile only).
struct IntermediateChecks<'p, 'c> {
    presented: &'p [CertificateDer<'c>],
    outcomes: &'p mut [Option<IntermediateOutcome>],
    /// The anchors' memo across verifications.
    memo: &'p IntermediateMemo,
}

impl IntermediateChecks<'_, '_> {
    fn check(
        &mut self,
        der: &[u8],
        position: CertPosition,
        profile: ChainProfile,
    ) -> Result<(), Error> {
        let memo = self.memo;
        let compute = || {
            memo.get_or_compute(der, profile, || match parse_certificate(der) {
                Ok(parsed) => match structure::check(&parsed, position, profile) {
                    Ok(()) => IntermediateOutcome::Conforms,
                    Err(violation) => IntermediateOutcome::Breaks(violation),
                },
                Err(detail) => IntermediateOutcome::Malformed(detail),
            })
        };
        let index = self.presented.iter().position(|c| c.as_ref() == der);
        let outcome = match index.and_then(|i| self.outcomes.get_mut(i)) {
            Some(slot) => slot.get_or_insert_with(compute).clone(),
            None => compute(),
        };
        match outcome {
            IntermediateOutcome::Conforms => Ok(()),
            IntermediateOutcome::Malformed(detail) => {
                Err(Error::MalformedCertificate { position, detail })
            }
            IntermediateOutcome::Breaks(violation) => Err(Error::Structure {
                position,
                violation,
            }),
        }
    }
}

fn check_path_structure(
    path: &webpki::VerifiedPath<'_>,
    anchors: &TrustAnchors,
    options: &ChainOptions,
    intermediates: &mut IntermediateChecks<'_, '_>,
) -> Result<(), Error> {
    // Self-issued intermediates do not count towards the path length (RFC 5280 §6.1.4 (l)).
    let found = path
        .intermediate_certificates()
        .filter(|c| c.subject() != c.issuer())
        .count();
    if found > options.max_intermediates {
        return Err(Error::ChainTooLong {
            found,
            limit: options.max_intermediates,
        });
    }
    if options.profile == ChainProfile::WebpkiOnly {
        return Ok(());
    }
    for (i, cert) in path.intermediate_certificates().enumerate() {
        let position = CertPosition::Intermediate(i + 1);
        intermediates.check(cert.der().as_ref(), position, options.profile)?;
    }
    if let Some(checks) = anchors.checks_for(path.anchor()) {
        checks.check(options.profile, options.time)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::dns_identities;

    #[test]
    fn cn_dns_identities() {
        let cns = [
            "MX.Example.COM.".to_owned(),
            "Example Mail Server".to_owned(),
            "bücher.example".to_owned(),
            "*.example.com".to_owned(),
            "192.0.2.1".to_owned(),
            "a中".to_owned(),
        ];
        let ids: Vec<_> = dns_identities(&cns).into_iter().map(|(_, id)| id).collect();
        assert_eq!(
            ids,
            [
                "mx.example.com",
                "xn--bcher-kva.example",
                "*.example.com",
                "xn--a-lq6a"
            ]
        );
    }
}
