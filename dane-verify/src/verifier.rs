//! A rustls [`ServerCertVerifier`] that enforces a DANE verdict during the handshake: the
//! handshake fails unless the presented chain verifies against the TLSA RRset.

use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{
    CryptoProvider, WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature,
};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error as TlsError, SignatureScheme};

use crate::matching::{DaneMatcher, Outcome, Verdict};
use crate::tlsa::TlsaRecord;

/// Enforces DANE in a rustls client: accepts the server's chain only when the
/// [`DaneMatcher`] verdict is [`Outcome::Verified`]. Handshake signatures are checked with the
/// aws-lc-rs provider. The last verdict is kept for reporting ([`DaneVerifier::last_verdict`]).
///
/// The rustls `server_name` is not used for matching: the reference identities are the
/// matcher's (RFC 7672 §3.2.2); send the TLSA base domain as SNI (RFC 7672 §8.1).
///
/// ```
/// use std::sync::Arc;
/// use dane_verify::{DaneMatcher, DaneVerifier};
/// let records = vec!["3 1 1 0000000000000000000000000000000000000000000000000000000000000000"
///     .parse().unwrap()];
/// let verifier = Arc::new(DaneVerifier::new(DaneMatcher::smtp(["mx.example"]).unwrap(), records));
/// let config = rustls::ClientConfig::builder_with_provider(Arc::new(
///         rustls::crypto::aws_lc_rs::default_provider()))
///     .with_safe_default_protocol_versions().unwrap()
///     .dangerous()
///     .with_custom_certificate_verifier(verifier)
///     .with_no_client_auth();
/// # let _ = config;
/// ```
#[derive(Debug)]
pub struct DaneVerifier {
    matcher: DaneMatcher,
    records: Vec<TlsaRecord>,
    algorithms: WebPkiSupportedAlgorithms,
    last: Mutex<Option<Verdict>>,
}

impl DaneVerifier {
    /// A verifier for `records` under `matcher`'s rules.
    #[must_use]
    pub fn new(matcher: DaneMatcher, records: Vec<TlsaRecord>) -> Self {
        Self::with_provider(
            matcher,
            records,
            &rustls::crypto::aws_lc_rs::default_provider(),
        )
    }

    /// A verifier using `provider`'s signature algorithms.
    #[must_use]
    pub fn with_provider(
        matcher: DaneMatcher,
        records: Vec<TlsaRecord>,
        provider: &CryptoProvider,
    ) -> Self {
        Self {
            matcher,
            records,
            algorithms: provider.signature_verification_algorithms,
            last: Mutex::new(None),
        }
    }

    /// The verdict of the last handshake this verifier saw, if any.
    pub fn last_verdict(&self) -> Option<Verdict> {
        self.last.lock().map(|g| g.clone()).unwrap_or(None)
    }

    /// Convenience: wraps `self` in an `Arc` for `dangerous().with_custom_certificate_verifier`.
    #[must_use]
    pub fn into_arc(self) -> Arc<Self> {
        Arc::new(self)
    }
}

impl ServerCertVerifier for DaneVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        let mut chain = Vec::with_capacity(1 + intermediates.len());
        chain.push(end_entity.clone());
        chain.extend(intermediates.iter().cloned());
        let verdict = self.matcher.verify(&self.records, &chain, now);
        let outcome = verdict.outcome;
        if let Ok(mut g) = self.last.lock() {
            *g = Some(verdict);
        }
        match outcome {
            Outcome::Verified => Ok(ServerCertVerified::assertion()),
            Outcome::NameMismatch => Err(TlsError::InvalidCertificate(
                CertificateError::NotValidForName,
            )),
            Outcome::ChainError => Err(TlsError::InvalidCertificate(CertificateError::BadEncoding)),
            Outcome::NoMatch | Outcome::Unusable => Err(TlsError::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
