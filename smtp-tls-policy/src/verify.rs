//! Whole verification of a server certificate for one delivery: chain trust, then the optional
//! checks, then identity — a pure function returning a structured [`PkixVerdict`].

use rustls_pki_types::{CertificateDer, UnixTime};

use crate::chain::{
    ChainOptions, ChainProfile, DEFAULT_MAX_INTERMEDIATES, TrustAnchors, verify_parsed_chain,
};
use crate::error::Error;
use crate::identity::{
    DeliveryTarget, FqdnValidation, IdentityAlgorithm, IdentityMatch, PresentedIdentities,
    ReferenceId, X509Validation, check_cn_in_san, check_fqdn, check_identity, check_x509,
};

/// How a server certificate is verified: identity algorithm, optional checks, chain profile.
///
/// ```
/// use smtp_tls_policy::{VerificationPolicy, identity::{IdentityAlgorithm, X509Validation}};
/// let policy = VerificationPolicy::new(IdentityAlgorithm::HostedVerify)
///     .with_x509_validation(X509Validation::Enabled);
/// assert_eq!(policy.algorithm, IdentityAlgorithm::HostedVerify);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct VerificationPolicy {
    /// Identity algorithm.
    pub algorithm: IdentityAlgorithm,
    /// FQDN validation switch.
    pub fqdn: FqdnValidation,
    /// X.509 validation switch.
    pub x509: X509Validation,
    /// Structural rules on top of rustls-webpki.
    pub profile: ChainProfile,
    /// Most intermediates in a validated path.
    pub max_intermediates: usize,
}

impl VerificationPolicy {
    /// A policy with `algorithm`, switches off, [`ChainProfile::Rfc5280`] (for
    /// `IdentityAlgorithm::Strict`, feature `limbo`: [`ChainProfile::CabForum`]).
    #[must_use]
    pub fn new(algorithm: IdentityAlgorithm) -> Self {
        let profile = match algorithm {
            #[cfg(feature = "limbo")]
            IdentityAlgorithm::Strict => ChainProfile::CabForum,
            _ => ChainProfile::Rfc5280,
        };
        Self {
            algorithm,
            fqdn: FqdnValidation::Disabled,
            x509: X509Validation::Disabled,
            profile,
            max_intermediates: DEFAULT_MAX_INTERMEDIATES,
        }
    }

    /// Sets FQDN validation.
    #[must_use]
    pub fn with_fqdn_validation(mut self, fqdn: FqdnValidation) -> Self {
        self.fqdn = fqdn;
        self
    }

    /// Sets X.509 validation.
    #[must_use]
    pub fn with_x509_validation(mut self, x509: X509Validation) -> Self {
        self.x509 = x509;
        self
    }

    /// Sets the chain profile.
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

/// Whether the certificate was verified. The default is the least-trusted value.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PkixStatus {
    /// Not verified (see [`PkixVerdict::error`]).
    #[default]
    NotVerified,
    /// Chain trusted, checks passed, identity matched.
    Verified,
}

/// The structured outcome of verifying a server certificate.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PkixVerdict {
    /// Verified or not.
    pub status: PkixStatus,
    /// Reference identities tried, in order.
    pub reference_ids: Vec<ReferenceId>,
    /// The identity match, when the names matched (reported even when the chain failed).
    pub matched: Option<IdentityMatch>,
    /// Why it is not verified (`None` exactly when verified).
    pub error: Option<Error>,
}

impl PkixVerdict {
    /// `true` when [`PkixStatus::Verified`].
    #[must_use]
    pub fn is_verified(&self) -> bool {
        self.status == PkixStatus::Verified
    }
}

/// Verifies `chain` (leaf first) for the delivery `target` under `policy` at `time`.
pub fn verify_server_certificate(
    policy: &VerificationPolicy,
    target: &DeliveryTarget,
    chain: &[CertificateDer<'_>],
    anchors: &TrustAnchors,
    time: UnixTime,
) -> PkixVerdict {
    let reference_ids = target.reference_ids(policy.algorithm);
    verify_with_reference_ids(
        policy,
        reference_ids,
        &target.server_name(),
        chain,
        anchors,
        time,
    )
}

/// Like [`verify_server_certificate`] with explicit reference identities; `server_name` is the
/// name X.509 validation looks for.
pub fn verify_with_reference_ids(
    policy: &VerificationPolicy,
    reference_ids: Vec<ReferenceId>,
    server_name: &ReferenceId,
    chain: &[CertificateDer<'_>],
    anchors: &TrustAnchors,
    time: UnixTime,
) -> PkixVerdict {
    let mut verdict = PkixVerdict {
        reference_ids,
        ..PkixVerdict::default()
    };
    let Some((leaf, intermediates)) = chain.split_first() else {
        verdict.error = Some(Error::EmptyChain);
        return verdict;
    };
    let parsed_leaf = match crate::chain::parse(leaf, crate::chain::CertPosition::Leaf) {
        Ok(cert) => cert,
        Err(e) => {
            verdict.error = Some(e);
            return verdict;
        }
    };
    let ids = match PresentedIdentities::from_certificate(&parsed_leaf) {
        Ok(ids) => ids,
        Err(e) => {
            verdict.error = Some(e);
            return verdict;
        }
    };
    let identity = check_identity(&ids, &verdict.reference_ids, policy.algorithm);
    let options = ChainOptions::at(time)
        .with_profile(policy.profile)
        .with_max_intermediates(policy.max_intermediates);
    // A CN the algorithm matches as a DNS-ID is held to the path's dNSName constraints, as
    // SAN dNSNames are (RFC 5280 §4.2.1.10; issue 11, finding 1).
    let dns_common_names: &[String] = if policy.algorithm.uses_common_name(&ids) {
        &ids.common_names
    } else {
        &[]
    };
    let chain_outcome = verify_parsed_chain(
        leaf,
        &parsed_leaf,
        intermediates,
        anchors,
        &options,
        dns_common_names,
    )
    .and_then(|_path| {
        if policy.profile == ChainProfile::CabForum {
            check_cn_in_san(&ids)?;
        }
        if policy.fqdn == FqdnValidation::Enabled {
            check_fqdn(&ids)?;
        }
        if policy.x509 == X509Validation::Enabled {
            check_x509(&ids, server_name)?;
        }
        Ok(())
    });
    // The match is reported even when the chain failed; moved, not cloned, into the verdict.
    match chain_outcome {
        Err(e) => {
            verdict.matched = identity.matched;
            verdict.error = Some(e);
        }
        Ok(()) => match identity.into_result(&ids, policy.algorithm) {
            Ok(matched) => {
                verdict.matched = Some(matched);
                verdict.status = PkixStatus::Verified;
            }
            Err(e) => verdict.error = Some(e),
        },
    }
    verdict
}
