//! The delivery `ServerCertVerifier` built from a plan: it runs [`HopPlan::verify_peer`] (PKIX
//! per the mode and DANE, once) on the chain rustls received and records the [`PeerVerdict`] for
//! the state machine. Handshake signatures are checked with the aws-lc-rs provider, so the peer
//! must hold the key of the certificate it presents.

use std::sync::{Arc, Mutex, PoisonError};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::{CertificateError, DigitallySignedStruct, OtherError, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::{HopPlan, PeerVerdict};
use crate::chain::TrustAnchors;
use crate::delivery::{DaneOutcome, PkixOutcome};

/// What a verifier does when verification fails. The default is the safe one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum FailureAction {
    /// Abort the handshake with a certificate error.
    #[default]
    Reject,
    /// Record the verdict and let the handshake continue (encrypted but unauthenticated).
    RecordAndContinue,
}

/// A rustls server-certificate verifier for one connection under a [`HopPlan`].
///
/// The rustls `server_name` is not used: the reference identities are the plan's (PKIX) and the
/// TLSA base domain, MX host and next-hop domain (DANE-TA, RFC 7672 §3.2.2). Use one verifier per
/// connection so its recorded verdict is this connection's.
///
/// - Reject (the default, [`HopPlan::verifier`]): the handshake fails unless
///   the verdict satisfies the plan's requirement; a plan without a connection rejects every
///   chain.
/// - Record and continue ([`PlanVerifier::record_and_continue`]): the handshake
///   goes on; the driver feeds [`PeerVerdict::handshake_outcome`] of
///   [`PlanVerifier::last_verdict`] to the state machine, which decides (`preferred-verify`
///   delivers and reports, `required-verify` closes the session unused).
#[derive(Debug)]
pub struct PlanVerifier {
    plan: HopPlan,
    anchors: Arc<TrustAnchors>,
    on_failure: FailureAction,
    algorithms: WebPkiSupportedAlgorithms,
    time: Option<UnixTime>,
    /// The last verdict and the leaf it was made for.
    last: Mutex<Option<(CertificateDer<'static>, PeerVerdict)>>,
}

impl HopPlan {
    /// The rustls verifier for one connection under this plan, rejecting chains that do not
    /// satisfy the requirement (see [`PlanVerifier`]).
    pub fn verifier(&self, anchors: Arc<TrustAnchors>) -> PlanVerifier {
        PlanVerifier {
            plan: self.clone(),
            anchors,
            on_failure: FailureAction::Reject,
            algorithms: rustls::crypto::aws_lc_rs::default_provider()
                .signature_verification_algorithms,
            time: None,
            last: Mutex::new(None),
        }
    }
}

impl PlanVerifier {
    /// Lets the handshake continue whatever the verdict; the state machine decides.
    #[must_use]
    pub fn record_and_continue(mut self) -> Self {
        self.on_failure = FailureAction::RecordAndContinue;
        self
    }

    /// Verifies at a fixed time instead of the handshake's "now" (tests, replay).
    #[must_use]
    pub fn at_time(mut self, time: UnixTime) -> Self {
        self.time = Some(time);
        self
    }

    /// The plan.
    pub fn plan(&self) -> &HopPlan {
        &self.plan
    }

    /// The verdict of the most recent chain verification, if any.
    #[must_use]
    pub fn last_verdict(&self) -> Option<PeerVerdict> {
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|(_, v)| v.clone())
    }

    /// The verdict for the presented `chain` (leaf first): the one recorded when the handshake
    /// verified this leaf (no second verification), else the plan's verification of `chain` now.
    #[cfg(feature = "tokio")]
    pub(crate) fn verdict_for_chain(&self, chain: &[CertificateDer<'_>]) -> PeerVerdict {
        let recorded = chain.first().and_then(|leaf| {
            let last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
            match last.as_ref() {
                Some((l, v)) if l.as_ref() == leaf.as_ref() => Some(v.clone()),
                _ => None,
            }
        });
        recorded.unwrap_or_else(|| {
            let now = self.time.unwrap_or_else(UnixTime::now);
            self.plan.verify_peer(chain, &self.anchors, now)
        })
    }
}

/// The closest rustls error for a verdict that does not satisfy the requirement (the DANE
/// failure first when the requirement is DANE).
fn to_rustls(v: &PeerVerdict) -> rustls::Error {
    let dane_failed = matches!(v.dane, Some(DaneOutcome::Failed { .. }));
    if !dane_failed {
        return pkix_error(v);
    }
    let cert_error = match &v.dane_detail {
        Some(d) if d.outcome == dane_verify::DaneMatchOutcome::NameMismatch => {
            CertificateError::NotValidForName
        }
        _ => CertificateError::ApplicationVerificationFailure,
    };
    rustls::Error::InvalidCertificate(cert_error)
}

/// The closest rustls error for the PKIX outcome of a verdict.
fn pkix_error(v: &PeerVerdict) -> rustls::Error {
    let error = v.pkix_detail.as_ref().and_then(|d| d.error.clone());
    let cert_error = match (&v.pkix, error) {
        (PkixOutcome::NameMismatch { .. }, _) => CertificateError::NotValidForName,
        (_, Some(crate::Error::Chain(webpki::Error::UnknownIssuer))) => {
            CertificateError::UnknownIssuer
        }
        (_, Some(crate::Error::Chain(webpki::Error::CertExpired { .. }))) => {
            CertificateError::Expired
        }
        (_, Some(e)) => CertificateError::Other(OtherError(Arc::new(e))),
        (_, None) => CertificateError::ApplicationVerificationFailure,
    };
    rustls::Error::InvalidCertificate(cert_error)
}

impl ServerCertVerifier for PlanVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let mut chain = Vec::with_capacity(intermediates.len() + 1);
        chain.push(end_entity.clone());
        chain.extend(intermediates.iter().cloned());
        let verdict = self
            .plan
            .verify_peer(&chain, &self.anchors, self.time.unwrap_or(now));
        let result = if !self.plan.may_connect() {
            // No connection was planned: never a session, whatever the failure action.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        } else if verdict.satisfies_requirement
            || self.on_failure == FailureAction::RecordAndContinue
        {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(to_rustls(&verdict))
        };
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((end_entity.clone().into_owned(), verdict));
        result
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
