//! SMTP TLS policy: the listener STARTTLS gate (RFC 3207), delivery TLS modes per destination, and
//! certificate identity verification.
//!
//! - [`listener`]: the per-connection STARTTLS gate for a listener whose mail flow policy says TLS
//!   `no` / `preferred` / `required`.
//! - [`destination`]: destination controls — per recipient domain TLS mode and DANE setting, from
//!   TOML.
//! - [`delivery`]: the sans-IO delivery TLS state machine, one per connection attempt.
//! - [`smtp`]: bounded SMTP reply / EHLO / command parsing over `smtp-proto`.
//! - `io` (feature `tokio`): STARTTLS drivers for both sides.
//! - [`chain`], [`identity`], [`verifier`]: certificate verification on delivery (below).
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
//! Decisions are sans-IO: pure functions and state machines over parsed values and given facts;
//! only `io` touches sockets.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod chain;
pub mod delivery;
pub mod destination;
mod error;
pub mod identity;
#[cfg(feature = "tokio")]
pub mod io;
pub mod limbo;
pub mod listener;
pub mod plan;
pub mod smtp;
pub mod verifier;
mod verify;

pub use error::{DestinationConfigErrorKind, Error, IoKind};
pub use plan::{HopPlan, PeerVerdict, PlanOptions, PreConnect};
pub use verify::{
    Verdict, VerificationPolicy, VerificationStatus, verify_server_certificate,
    verify_with_reference_ids,
};
