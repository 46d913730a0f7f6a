//! SMTP TLS policy: the listener STARTTLS gate (RFC 3207), delivery TLS modes per destination, and
//! certificate identity verification.
//!
//! # Certificate verification on delivery
//! Seed "Enabling TLS and Certificate Verification on Delivery": a receiving MTA's certificate is
//! verified when its chain ends at a trusted CA ([`chain`], rustls-webpki plus the RFC 5280 and
//! CA/Browser Forum checks webpki lacks) and one of its presented identities matches a reference
//! identity of the delivery ([`identity`]). Two algorithms exist:
//! [`identity::IdentityAlgorithm::Verify`] (*Preferred/Required (Verify)*, which **trusts
//! unsigned MX answers**) and [`identity::IdentityAlgorithm::HostedVerify`] (*Required – Verify
//! Hosted Domains*, MX host names only when DNSSEC-secure), plus a `Strict` SAN-only variant.
//! [`verify_server_certificate`] returns a structured [`Verdict`]; [`verifier::SmtpCertVerifier`]
//! wraps it as a rustls `ServerCertVerifier`.
//!
//! Everything here is sans-IO: pure functions over parsed certificates and given facts.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod chain;
mod error;
pub mod identity;
pub mod limbo;
pub mod verifier;
mod verify;

pub use error::Error;
pub use verify::{
    Verdict, VerificationPolicy, VerificationStatus, verify_server_certificate,
    verify_with_reference_ids,
};
