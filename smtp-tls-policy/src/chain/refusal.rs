//! Names the cause of a rustls-webpki refusal that the seed makes look optional.
//!
//! The seed's X.509 validation ("Enabling TLS and Certificate Verification on Delivery") is an
//! optional check of the signature algorithm and the version of the server certificate. Here
//! both are enforced by path validation, always: rustls-webpki accepts only X.509 version 3
//! certificates and verifies no SHA-1 or MD5 signature. Refusing is the safer default, and
//! the switch cannot turn it off; the error says so, so that an administrator knows why such a
//! host is deferred.

use std::borrow::Cow;

use rustls_pki_types::CertificateDer;
use x509_parser::certificate::X509Certificate;
use x509_parser::der_parser::oid::Oid;
use x509_parser::x509::X509Version;

use super::{CertPosition, parse_certificate};
use crate::error::Error;
use crate::identity::SignatureHash;
use crate::identity::presented::hash_of;

/// The error for rustls-webpki's refusal `e` of the chain `parsed_leaf` + `intermediates`
/// (presented order): a version or weak-signature refusal names the certificate and the
/// reason, anything else stays [`Error::Chain`].
pub(crate) fn explain(
    e: webpki::Error,
    parsed_leaf: &X509Certificate<'_>,
    intermediates: &[CertificateDer<'_>],
) -> Error {
    let explained = match &e {
        webpki::Error::UnsupportedCertVersion => not_version_3(parsed_leaf, intermediates),
        webpki::Error::UnsupportedSignatureAlgorithmContext(ctx) => {
            weak_signature(&ctx.signature_algorithm_id, parsed_leaf, intermediates)
        }
        webpki::Error::UnsupportedSignatureAlgorithmForPublicKeyContext(ctx) => {
            weak_signature(&ctx.signature_algorithm_id, parsed_leaf, intermediates)
        }
        _ => None,
    };
    explained.unwrap_or(Error::Chain(e))
}

/// The presented certificates with their positions, leaf first; intermediates x509-parser
/// cannot read are left out.
fn presented<'a>(
    parsed_leaf: &'a X509Certificate<'a>,
    intermediates: &'a [CertificateDer<'a>],
) -> impl Iterator<Item = (CertPosition, Cow<'a, X509Certificate<'a>>)> {
    let rest = intermediates.iter().enumerate().filter_map(|(i, der)| {
        parse_certificate(der)
            .ok()
            .map(|cert| (CertPosition::Intermediate(i + 1), Cow::Owned(cert)))
    });
    std::iter::once((CertPosition::Leaf, Cow::Borrowed(parsed_leaf))).chain(rest)
}

fn not_version_3(
    parsed_leaf: &X509Certificate<'_>,
    intermediates: &[CertificateDer<'_>],
) -> Option<Error> {
    presented(parsed_leaf, intermediates).find_map(|(position, cert)| {
        (cert.version() != X509Version::V3).then(|| Error::NotVersion3 {
            position,
            version: cert.version().0.saturating_add(1),
        })
    })
}

/// `algorithm_id` is the content of the refused AlgorithmIdentifier (the OID, then parameters).
fn weak_signature(
    algorithm_id: &[u8],
    parsed_leaf: &X509Certificate<'_>,
    intermediates: &[CertificateDer<'_>],
) -> Option<Error> {
    let oid_octets = match algorithm_id {
        [0x06, len @ 0..=0x7f, rest @ ..] => rest.get(..usize::from(*len))?,
        _ => return None,
    };
    let oid = Oid::new(Cow::Borrowed(oid_octets));
    let dotted = oid.to_id_string();
    let family = match hash_of(&dotted) {
        SignatureHash::Sha1 => "SHA-1",
        SignatureHash::Md5 => "MD5",
        _ => return None,
    };
    presented(parsed_leaf, intermediates).find_map(|(position, cert)| {
        (cert.signature_algorithm.algorithm == oid).then(|| Error::LegacySignature {
            position,
            algorithm: format!("{family} ({dotted})"),
        })
    })
}
