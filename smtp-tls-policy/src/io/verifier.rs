//! A certificate verifier that records the inner verifier's verdict instead of aborting the
//! handshake, so the delivery machine decides (`preferred-verify` delivers over TLS even when
//! verification fails; `required-verify` closes the TLS session without sending the message).

use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

use crate::delivery::PkixOutcome;

/// Wraps a [`ServerCertVerifier`]: the certificate verdict is recorded and the handshake goes
/// on; handshake signatures are still checked by the inner verifier, so the peer must hold the
/// private key of the certificate it presents.
#[derive(Debug)]
pub struct RecordingVerifier {
    inner: Arc<dyn ServerCertVerifier>,
    outcome: Mutex<PkixOutcome>,
}

impl RecordingVerifier {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn ServerCertVerifier>) -> Self {
        Self {
            inner,
            outcome: Mutex::new(PkixOutcome::NotChecked),
        }
    }

    /// The recorded verdict (`NotChecked` before the handshake reached the certificate).
    pub fn outcome(&self) -> PkixOutcome {
        self.outcome.lock().map(|o| o.clone()).unwrap_or_default()
    }
}

/// Maps a rustls verification error to the machine's input.
pub(crate) fn pkix_outcome(err: &rustls::Error) -> PkixOutcome {
    let detail = err.to_string();
    match err {
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => PkixOutcome::NameMismatch { detail },
        _ => PkixOutcome::UntrustedChain { detail },
    }
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        let outcome = match &verdict {
            Ok(_) => PkixOutcome::Verified,
            Err(e) => pkix_outcome(e),
        };
        if let Ok(mut o) = self.outcome.lock() {
            *o = outcome;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
