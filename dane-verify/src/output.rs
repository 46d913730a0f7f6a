//! The TLSA records a server should publish for its own certificate, in the form
//! `postfix tls output-server-tlsa` prints (`3 1 1` for the leaf key, `2 1 1` for the issuer).

use rustls_pki_types::CertificateDer;

use crate::Error;
use crate::cert::{CertParts, sha256};
use crate::tlsa::{CertUsage, Matching, Selector, TlsaRecord};

/// The TLSA records to publish for `leaf` (and its issuing CA, when given).
///
/// Returns `3 1 1 SHA256(leaf SPKI)` (DANE-EE, survives renewals that keep the key,
/// RFC 7671 §5.1 / RFC 7672 §3.1.1) and, with `issuer`, `2 1 1 SHA256(issuer SPKI)` (DANE-TA,
/// RFC 7672 §3.1.2; the server must then send the issuer in its chain).
///
/// ```
/// # use rustls_pki_types::CertificateDer;
/// let key = rcgen::KeyPair::generate().unwrap();
/// let cert = rcgen::CertificateParams::new(vec!["mx.example".into()])
///     .unwrap()
///     .self_signed(&key)
///     .unwrap();
/// let records = dane_verify::server_tlsa_records(cert.der(), None).unwrap();
/// assert_eq!(records.len(), 1);
/// assert!(records[0].to_string().starts_with("3 1 1 "));
/// assert!(records[0].to_rr_line("mx.example", 25).starts_with("_25._tcp.mx.example. IN TLSA 3 1 1 "));
/// ```
pub fn server_tlsa_records(
    leaf: &CertificateDer<'_>,
    issuer: Option<&CertificateDer<'_>>,
) -> Result<Vec<TlsaRecord>, Error> {
    let leaf_parts = CertParts::parse(leaf, 0)?;
    let mut out = vec![TlsaRecord::new(
        CertUsage::DaneEe,
        Selector::Spki,
        Matching::Sha256,
        sha256(leaf_parts.spki),
    )?];
    if let Some(issuer) = issuer {
        let ca = CertParts::parse(issuer, 1)?;
        out.push(TlsaRecord::new(
            CertUsage::DaneTa,
            Selector::Spki,
            Matching::Sha256,
            sha256(ca.spki),
        )?);
    }
    Ok(out)
}
