//! DANE for SMTP: TLSA records, DNSSEC-validated lookups and RFC 7672 verdicts.
//!
//! - [`TlsaRecord`]: TLSA RDATA from presentation text (`"3 1 1 ab.."`) or wire form, with
//!   lossless registry enums [`CertUsage`], [`Selector`], [`Matching`] (RFC 6698 §2).
//! - [`DaneMatcher`]: matches a presented chain against a TLSA RRset in SMTP mode (RFC 7672) or
//!   generic mode (RFC 6698/7671), giving a [`DaneVerdict`] (which record, which depth).
//! - [`DnssecStatus`] and [`decide`]: the sans-IO RFC 7672 decision per MX host.
//! - [`server_tlsa_records`]: the records a server should publish for its own certificate.
//! - [`check_server_key_usage`]: the leaf keyUsage rule (TLS server use) applied after every
//!   validated DANE-TA/PKIX path, shared with PKIX verification.
//! - [`check_cn_name_constraints`]: the dNSName constraints of a validated path applied to a
//!   subject CN used as a DNS identity (RFC 5280 §4.2.1.10), shared with PKIX verification.
//! - `resolver` (feature `resolver`): a hickory-resolver adapter that gathers the DNSSEC facts.
//!
//! # The RFC 7672 matrix
//!
//! DaneAction per MX host, by DANE setting (Opportunistic / Mandatory), the DNSSEC status of the MX
//! RRset, and the TLSA lookup (the host's address records secure). Each row is a test against
//! the DNSSEC lab (`tests/matrix.rs`).
//!
//! | MX RRset | TLSA lookup                     | Opportunistic              | Mandatory |
//! |----------|---------------------------------|----------------------------|-----------|
//! | secure   | usable records (`3 1 1`, `2 1 1`) | DANE                     | DANE      |
//! | secure   | only unusable (`0 ..`, `1 ..`)  | TLS mandatory, unauthenticated | defer |
//! | secure   | secure NXDOMAIN/NODATA          | configured TLS mode        | defer     |
//! | secure   | bogus                           | defer                      | defer     |
//! | secure   | SERVFAIL / timeout              | defer                      | defer     |
//! | insecure | (any: not looked up)            | configured TLS mode        | defer     |
//! | bogus    | (any: not looked up)            | defer                      | defer     |
//!
//! Further rules: setting `None` always uses the configured TLS mode; address records insecure
//! means no TLSA lookup (configured TLS mode / defer under Mandatory), so a TLSA SERVFAIL for a
//! host in an insecure zone (the Outlook case) never blocks delivery, while for a secure host it
//! defers; a CNAME'd MX host is looked up at the expanded name, then the original
//! (RFC 7672 §2.2.2). See [`decide`] for details.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod cert;
mod dnssec;
mod error;
mod fqdn;
mod matching;
mod names;
mod output;
mod policy;
#[cfg(feature = "resolver")]
pub mod resolver;
mod tlsa;
mod verdict;

pub use cert::check_server_key_usage;
pub use dnssec::DnssecStatus;
pub use error::Error;
pub use fqdn::is_fqdn;
pub use matching::{DaneEeNames, DaneMatcher, MAX_CHAIN_LEN, MatchMode};
pub use names::{
    ConstraintBreach, MAX_CN_CONSTRAINT_COMPARISONS, PathCa, check_cn_name_constraints,
};
pub use output::server_tlsa_records;
pub use policy::{
    DaneAction, DaneSetting, DeferReason, HostFacts, LookupFailure, NoDaneReason, TlsaLookup,
    TxtLookup, TxtRecord, decide,
};
pub use tlsa::{CertUsage, MAX_DATA_LEN, MAX_TEXT_LEN, Matching, Selector, TlsaRecord};
pub use verdict::{DaneMatchOutcome, DaneVerdict};
