//! Borrowed views of the parts of a certificate that TLSA records select (RFC 6698 §2.1.2).

use rustls_pki_types::CertificateDer;
use sha2::{Digest, Sha256, Sha512};
use x509_parser::extensions::KeyUsage;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::Error;
use crate::tlsa::{Matching, Selector};

/// A chain certificate with its selectable parts located once.
#[derive(Debug)]
pub(crate) struct CertParts<'a> {
    pub(crate) der: &'a [u8],
    pub(crate) spki: &'a [u8],
    pub(crate) issuer: &'a [u8],
}

impl<'a> CertParts<'a> {
    /// Parses `der` (at chain position `depth`, for the error).
    pub(crate) fn parse(der: &'a CertificateDer<'_>, depth: usize) -> Result<Self, Error> {
        let bytes: &'a [u8] = der.as_ref();
        let (rest, cert) = X509Certificate::from_der(bytes).map_err(|e| Error::BadCertificate {
            depth,
            reason: e.to_string(),
        })?;
        if !rest.is_empty() {
            return Err(Error::BadCertificate {
                depth,
                reason: format!("{} bytes after the certificate", rest.len()),
            });
        }
        let tbs = &cert.tbs_certificate;
        Ok(Self {
            der: bytes,
            spki: tbs.subject_pki.raw,
            issuer: tbs.issuer.as_raw(),
        })
    }

    /// The content a selector picks (RFC 6698 §2.1.2); `None` for selectors not implemented.
    pub(crate) fn select(&self, selector: Selector) -> Option<&'a [u8]> {
        match selector {
            Selector::Cert => Some(self.der),
            Selector::Spki => Some(self.spki),
            Selector::Unassigned(_) | Selector::Private => None,
        }
    }
}

/// Whether `content` matches `data` under `matching` (RFC 6698 §2.1.3).
pub(crate) fn matches(matching: Matching, content: &[u8], data: &[u8]) -> bool {
    match matching {
        Matching::Full => content == data,
        Matching::Sha256 => Sha256::digest(content).as_slice() == data,
        Matching::Sha512 => Sha512::digest(content).as_slice() == data,
        Matching::Unassigned(_) | Matching::Private => false,
    }
}

/// The SHA-256 digest of `content`.
pub(crate) fn sha256(content: &[u8]) -> Vec<u8> {
    Sha256::digest(content).to_vec()
}

/// Checks that a leaf certificate may serve as a TLS server certificate by its keyUsage: when
/// the extension is present it must assert digitalSignature, keyEncipherment or keyAgreement
/// (RFC 5280 §4.2.1.3 with RFC 5246/8446 key exchange; the rule of OpenSSL's `ssl_server`
/// purpose, `X509_check_purpose`). A leaf without the extension passes.
///
/// `DaneMatcher` applies it after every validated path (DANE-TA, PKIX-TA, PKIX-EE), not to
/// DANE-EE(3), whose leaf is pinned by its key alone (RFC 7672 §3.1.1; OpenSSL skips it too).
/// Public so that PKIX verification (`smtp-tls-policy`) applies the same rule to its leaf.
///
/// # Errors
///
/// [`Error::KeyUsageNotForServer`] when the extension excludes TLS server use;
/// [`Error::BadCertificate`] when the certificate or its keyUsage extension cannot be parsed
/// (also a duplicated keyUsage extension).
///
/// ```
/// use rcgen::{CertificateParams, KeyPair, KeyUsagePurpose};
/// let key = KeyPair::generate().unwrap();
/// let mut params = CertificateParams::new(vec!["mx.example".into()]).unwrap();
/// params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
/// let cert = params.self_signed(&key).unwrap();
/// assert!(matches!(
///     dane_verify::check_server_key_usage(cert.der()),
///     Err(dane_verify::Error::KeyUsageNotForServer { .. })
/// ));
/// params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
/// let cert = params.self_signed(&key).unwrap();
/// assert_eq!(dane_verify::check_server_key_usage(cert.der()), Ok(()));
/// ```
pub fn check_server_key_usage(leaf: &CertificateDer<'_>) -> Result<(), Error> {
    let bad = |reason: String| Error::BadCertificate { depth: 0, reason };
    let (_, cert) = X509Certificate::from_der(leaf.as_ref()).map_err(|e| bad(e.to_string()))?;
    let Some(ku) = cert.key_usage().map_err(|e| bad(e.to_string()))? else {
        return Ok(());
    };
    let ku = ku.value;
    if ku.digital_signature() || ku.key_encipherment() || ku.key_agreement() {
        return Ok(());
    }
    Err(Error::KeyUsageNotForServer {
        found: key_usage_names(ku),
    })
}

/// The RFC 5280 names of the bits a keyUsage asserts, comma-separated.
fn key_usage_names(ku: &KeyUsage) -> String {
    let names: Vec<&str> = [
        (ku.digital_signature(), "digitalSignature"),
        (ku.non_repudiation(), "nonRepudiation"),
        (ku.key_encipherment(), "keyEncipherment"),
        (ku.data_encipherment(), "dataEncipherment"),
        (ku.key_agreement(), "keyAgreement"),
        (ku.key_cert_sign(), "keyCertSign"),
        (ku.crl_sign(), "cRLSign"),
        (ku.encipher_only(), "encipherOnly"),
        (ku.decipher_only(), "decipherOnly"),
    ]
    .into_iter()
    .filter_map(|(set, name)| set.then_some(name))
    .collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}
