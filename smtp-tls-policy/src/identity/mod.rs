//! Identity verification: reference identities (what the client expects), presented identities
//! (what the certificate claims), the matching rules, the ESA algorithms and the optional checks.
//!
//! Parsing ([`reference`](mod@reference), [`presented`]) is kept apart from the decisions
//! ([`matching`], [`algorithm`], [`checks`]), which are pure functions.

pub mod algorithm;
pub mod checks;
pub mod matching;
pub mod presented;
pub mod reference;

pub(crate) use algorithm::cn_dns_id;
pub use algorithm::{
    DeliveryTarget, DeliveryTargetBuilder, IdentityAlgorithm, IdentityMatch, IdentityVerdict,
    MAX_MX_HOSTS, MxSecurity, check_identity, presented_matches,
};
pub use checks::{
    FqdnValidation, X509Validation, check_cn_in_san, check_fqdn, check_x509, is_fqdn,
};
pub use matching::{dns_name_matches, is_public_suffix};
pub use presented::{NameSource, PresentedIdentities, PresentedName, SignatureHash};
pub use reference::{DnsName, NameError, ReferenceId};

#[cfg(test)]
mod tests;
