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
//! - [`tlsrpt`]: SMTP TLS Reporting (RFC 8460) — the `_smtp._tls` record, the report model,
//!   the tolerant reader of received reports and their summary per policy domain and day.
//! - [`mta_sts`]: MTA-STS (RFC 8461) — TXT record, policy file, `mx` matching, the cache state
//!   machine and the per-MX-host verdict, sans-IO; the HTTPS policy fetch with feature
//!   `mta-sts-fetch`.
//! - [`chain`], [`identity`], [`plan`]: certificate verification on delivery (below).
//!
//! # Certificate verification on delivery
//! Seed "Enabling TLS and Certificate Verification on Delivery": a receiving MTA's certificate is
//! verified when its chain ends at a trusted CA ([`chain`], rustls-webpki plus the RFC 5280 and
//! CA/Browser Forum checks webpki lacks) and one of its presented identities matches a reference
//! identity of the delivery ([`identity`]). Two algorithms exist:
//! [`identity::IdentityAlgorithm::Verify`] (*Preferred/Required (Verify)*, which **trusts
//! unsigned MX answers**) and [`identity::IdentityAlgorithm::HostedVerify`] (*Required – Verify
//! Hosted Domains*, MX host names only when DNSSEC-secure), plus a `Strict` SAN-only variant (feature `limbo`, with the x509-limbo harness).
//! [`verify_server_certificate`] returns a structured [`PkixVerdict`]; the hop plan's
//! [`plan::PlanVerifier`] runs it (and DANE) as the rustls `ServerCertVerifier` of a delivery.
//!
//! Decisions are sans-IO: pure functions and state machines over parsed values and given facts;
//! only `io` touches sockets.
//!
//! # One delivery decision: the hop plan
//! [`plan`] composes the above into one call per next hop: recipient domain → destination
//! policy, facts about one MX host (DNSSEC statuses, TLSA records) → [`HopPlan`] (connect / skip
//! host / defer, SNI, reference identities, TLS requirement, an explanation as serde data) →
//! [`HopPlan::verify_peer`] on the presented chain (PKIX per mode and DANE, once) → a
//! [`PeerVerdict`] for the delivery state machine. Remote and per-message policy sources join
//! the same decision: the recipient domain's MTA-STS verdict for the host
//! ([`HopPlan::with_mta_sts`]) and the sender's REQUIRETLS / `TLS-Required: No`
//! ([`HopPlan::with_tls_request`]); the [`plan`] module documents the precedence (DANE decides
//! for a DANE host, MTA-STS and the local setting combine to the stricter, `TLS-Required: No`
//! relaxes to opportunistic) and the explanation says which source decided.
//!
//! ```
//! # use dane_verify::{DnssecStatus::Secure, HostFacts, TlsaLookup};
//! # use smtp_tls_policy::{chain::TrustAnchors, destination::DestinationControls, *};
//! # let key = rcgen::KeyPair::generate()?;
//! # let cert = rcgen::CertificateParams::new(vec!["mx.example.net".into()])?.self_signed(&key)?;
//! # let (chain, now) = (vec![cert.der().clone()], rustls::pki_types::UnixTime::now());
//! # let records = dane_verify::server_tlsa_records(cert.der(), None)?; // `3 1 1` of the key
//! # let toml = "[default]\ntls = \"required-verify\"\ndane = \"opportunistic\"";
//! let controls = DestinationControls::from_toml("d.toml", toml)?; // required-verify + DANE
//! let policy = controls.lookup("example.com")?;
//! let facts = HostFacts { next_hop: "example.com".into(), mx_host: "mx.example.net".into(),
//!     mx_status: Secure, address_status: Secure, tlsa_base: "mx.example.net".into(),
//!     tlsa: TlsaLookup::Found { records, status: Secure } };
//! let plan = HopPlan::new(&policy, &facts, PlanOptions::new());
//! assert_eq!(plan.pre_connect(), &PreConnect::Connect); // and DANE authenticates, not PKIX:
//! let verdict = plan.verify_peer(&chain, &TrustAnchors::mozilla(), now);
//! assert!(verdict.satisfies_requirement);
//! println!("{}", serde_json::to_string(&plan)?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod chain;
pub mod delivery;
pub mod destination;
mod error;
pub mod identity;
#[cfg(feature = "tokio")]
pub mod io;
#[cfg(feature = "limbo")]
pub mod limbo;
pub mod listener;
pub mod mta_sts;
pub mod plan;
pub mod smtp;
pub mod tlsrpt;
mod verify;

pub use error::{DestinationConfigErrorKind, Error, IoKind};
pub use plan::{HopPlan, PeerVerdict, PlanOptions, PreConnect};
pub use verify::{
    PkixStatus, PkixVerdict, VerificationPolicy, verify_server_certificate,
    verify_with_reference_ids,
};
