//! Certificates, private keys, certificate-authority lists and rustls configurations for mail
//! servers: the seed's "Working with Certificates" and "Managing Lists of Certificate
//! Authorities" (Cisco ESA) as a library.
//!
//! - [`CertStore`]: a crash-safe directory of named certificates ([`store`] documents the
//!   layout), created self-signed with a CSR ([`SelfSignedRequest`]), replaced by the CA-signed
//!   certificate ([`CertStore::upload_signed`]), imported from PEM/DER or PKCS#12 and exported
//!   to PKCS#12; assigned to listeners and to all outgoing TLS connections; a built-in
//!   demonstration certificate ([`DEMO_NAME`]) whose every use logs a warning.
//! - CA lists ([`CaList`]): Mozilla's list as the system list, a custom PEM list, each enabled
//!   or disabled, exported as PEM.
//! - rustls: [`CertStore::server_config`], [`CertStore::root_store`],
//!   [`CertStore::client_config`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod ca;
mod demo;
mod error;
mod fsutil;
mod import;
mod info;
mod key;
mod manage;
mod pkcs12;
mod rustls_config;
mod self_signed;
pub mod store;
mod subject;

pub use ca::{CaList, CaStatus, system_ca_certs};
pub use demo::DEMO_NAME;
pub use error::{Error, Result};
pub use import::{
    BadEntry, BadEntryPolicy, BadEntryReason, CertBundle, Location, MAX_BUNDLE_BYTES,
    MAX_BUNDLE_CERTS, certs_to_pem, parse_bundle,
};
pub use info::CertInfo;
pub use key::{KeySpec, MAX_KEY_BYTES, MIN_RSA_BITS, PrivateKey};
pub use manage::ListedCert;
pub use pkcs12::{Identity, MAX_PKCS12_BYTES, check_key_matches, export_pkcs12, import_pkcs12};
pub use self_signed::{
    Created, MAX_VALIDITY_DAYS, SelfSignedRequest, SignatureAlgorithm, create_self_signed,
};
pub use store::{CertStore, FileProblem, Origin, StoredCert, validate_name};
pub use subject::{FqdnCheck, MAX_SANS, Subject, check_fqdn_names};
