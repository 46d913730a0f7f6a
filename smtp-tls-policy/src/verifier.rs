//! rustls 0.23 [`ServerCertVerifier`]s for the delivery verification modes, so a mail server
//! plugs them into tokio-rustls; handshake signatures are checked by the aws-lc-rs provider.
//!
//! The structured [`Verdict`] of the last handshake is kept and readable with
//! [`SmtpCertVerifier::last_verdict`] — also when the verifier let the handshake go on
//! ([`FailureAction::RecordAndContinue`], used by *Preferred (Verify)*: "TLS is negotiated, but
//! the certificate is not verified. The mail is delivered via an encrypted session"). Use one
//! verifier (one `ClientConfig`) per delivery connection so "last" means "this connection's"; or
//! run [`crate::verify_server_certificate`] on `peer_certificates()` after the handshake.

use std::sync::{Arc, Mutex, PoisonError};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::chain::TrustAnchors;
use crate::error::Error;
use crate::identity::{DeliveryTarget, IdentityAlgorithm};
use crate::verify::{Verdict, VerificationPolicy, verify_server_certificate};

/// The seed's verifying TLS settings for delivery (Table 2, settings 4–6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum VerificationMode {
    /// *Preferred (Verify)*: [`IdentityAlgorithm::Verify`]; a failed verification is recorded and
    /// the TLS session continues.
    PreferredVerify,
    /// *Required (Verify)*: [`IdentityAlgorithm::Verify`]; a failed verification aborts the
    /// handshake.
    RequiredVerify,
    /// *Required – Verify Hosted Domains*: [`IdentityAlgorithm::HostedVerify`]; a failed
    /// verification aborts the handshake.
    RequiredVerifyHostedDomains,
}

impl VerificationMode {
    /// The identity algorithm of this mode.
    #[must_use]
    pub fn algorithm(self) -> IdentityAlgorithm {
        match self {
            Self::PreferredVerify | Self::RequiredVerify => IdentityAlgorithm::Verify,
            Self::RequiredVerifyHostedDomains => IdentityAlgorithm::HostedVerify,
        }
    }

    /// What a failed verification does to the handshake in this mode.
    #[must_use]
    pub fn on_failure(self) -> FailureAction {
        match self {
            Self::PreferredVerify => FailureAction::RecordAndContinue,
            Self::RequiredVerify | Self::RequiredVerifyHostedDomains => FailureAction::Reject,
        }
    }

    /// The mode's name as the CLI spells it (`preferred-verify`, ...).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::PreferredVerify => "preferred-verify",
            Self::RequiredVerify => "required-verify",
            Self::RequiredVerifyHostedDomains => "required-verify-hosted-domains",
        }
    }
}

/// What a verifier does when verification fails. The default is the safe one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum FailureAction {
    /// Abort the handshake with a certificate error.
    #[default]
    Reject,
    /// Record the verdict and let the handshake continue (encrypted but unauthenticated).
    RecordAndContinue,
}

/// A rustls server-certificate verifier for one delivery.
///
/// ```
/// use std::sync::Arc;
/// use smtp_tls_policy::{chain::TrustAnchors, identity::DeliveryTarget};
/// use smtp_tls_policy::verifier::{SmtpCertVerifier, VerificationMode};
/// let target = DeliveryTarget::builder("example.com").with_mx_host("mx.example.com").build()?;
/// let verifier = Arc::new(SmtpCertVerifier::new(
///     VerificationMode::RequiredVerify,
///     target,
///     Arc::new(TrustAnchors::mozilla()),
/// ));
/// let config = rustls::ClientConfig::builder_with_provider(Arc::new(
///         rustls::crypto::aws_lc_rs::default_provider()))
///     .with_safe_default_protocol_versions()?
///     .dangerous()
///     .with_custom_certificate_verifier(verifier.clone())
///     .with_no_client_auth();
/// # let _ = config;
/// assert!(verifier.last_verdict().is_none()); // no handshake yet
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct SmtpCertVerifier {
    policy: VerificationPolicy,
    on_failure: FailureAction,
    target: DeliveryTarget,
    anchors: Arc<TrustAnchors>,
    algorithms: WebPkiSupportedAlgorithms,
    time: Option<UnixTime>,
    last: Mutex<Option<Verdict>>,
}

impl SmtpCertVerifier {
    /// A verifier for `mode` (its algorithm and failure action, default checks).
    #[must_use]
    pub fn new(mode: VerificationMode, target: DeliveryTarget, anchors: Arc<TrustAnchors>) -> Self {
        Self::with_policy(
            VerificationPolicy::new(mode.algorithm()),
            mode.on_failure(),
            target,
            anchors,
        )
    }

    /// A verifier with an explicit policy (e.g. FQDN / X.509 validation switched on).
    #[must_use]
    pub fn with_policy(
        policy: VerificationPolicy,
        on_failure: FailureAction,
        target: DeliveryTarget,
        anchors: Arc<TrustAnchors>,
    ) -> Self {
        let provider: CryptoProvider = rustls::crypto::aws_lc_rs::default_provider();
        Self {
            policy,
            on_failure,
            target,
            anchors,
            algorithms: provider.signature_verification_algorithms,
            time: None,
            last: Mutex::new(None),
        }
    }

    /// Verifies at a fixed time instead of the handshake's "now" (tests, replay).
    #[must_use]
    pub fn at_time(mut self, time: UnixTime) -> Self {
        self.time = Some(time);
        self
    }

    /// The verdict of the most recent certificate verification, if any.
    #[must_use]
    pub fn last_verdict(&self) -> Option<Verdict> {
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Maps a verification error onto the closest rustls certificate error (the full error is in
/// the verdict).
fn to_rustls(error: &Error) -> rustls::Error {
    let cert_error = match error {
        Error::NameMismatch { .. } | Error::NoPresentedIdentity { .. } => {
            CertificateError::NotValidForName
        }
        Error::NoTrustAnchors => CertificateError::UnknownIssuer,
        Error::Chain(webpki::Error::UnknownIssuer) => CertificateError::UnknownIssuer,
        Error::Chain(webpki::Error::CertExpired { .. }) => CertificateError::Expired,
        Error::Chain(webpki::Error::CertNotValidYet { .. }) => CertificateError::NotValidYet,
        Error::Chain(webpki::Error::InvalidSignatureForPublicKey) => CertificateError::BadSignature,
        Error::MalformedCertificate { .. } | Error::EmptyChain => CertificateError::BadEncoding,
        other => CertificateError::Other(OtherError(Arc::new(other.clone()))),
    };
    rustls::Error::InvalidCertificate(cert_error)
}

impl ServerCertVerifier for SmtpCertVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // Reference identities come from the delivery target, not from the SNI name.
        let mut chain = Vec::with_capacity(intermediates.len() + 1);
        chain.push(end_entity.clone());
        chain.extend(intermediates.iter().cloned());
        let time = self.time.unwrap_or(now);
        let verdict =
            verify_server_certificate(&self.policy, &self.target, &chain, &self.anchors, time);
        let result = match (&verdict.error, self.on_failure) {
            (None, _) | (Some(_), FailureAction::RecordAndContinue) => {
                Ok(ServerCertVerified::assertion())
            }
            (Some(e), FailureAction::Reject) => Err(to_rustls(e)),
        };
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(verdict);
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
