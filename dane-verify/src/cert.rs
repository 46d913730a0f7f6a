//! Borrowed views of the parts of a certificate that TLSA records select (RFC 6698 §2.1.2).

use rustls_pki_types::CertificateDer;
use sha2::{Digest, Sha256, Sha512};
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
