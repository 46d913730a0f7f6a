//! Certificates, private keys, certificate-authority lists and rustls configurations for mail
//! servers: the seed's "Working with Certificates" and "Managing Lists of Certificate
//! Authorities" (Cisco ESA) as a library.
//!
//! - [`CertStore`]: a crash-safe directory of named certificates (layout below), created self-signed with a CSR ([`SelfSignedRequest`]), replaced by the CA-signed
//!   certificate ([`CertStore::upload_signed`]), imported from PEM/DER or PKCS#12 and exported
//!   to PKCS#12; assigned to listeners and to all outgoing TLS connections; a built-in
//!   demonstration certificate ([`DEMO_NAME`]) whose every use logs a warning.
//! - CA lists ([`CaList`]): Mozilla's list as the system list, a custom PEM list, each enabled
//!   or disabled, exported as PEM.
//! - rustls: [`CertStore::server_config`], [`CertStore::root_store`],
//!   [`CertStore::client_config`].
//!
//! # On-disk layout
//!
//! ```text
//! STORE/
//!   store.toml            format, CA list switches, assignments, SHA-256 of ca/custom.pem
//!   ca/custom.pem         the custom CA list (PEM)
//!   certs/NAME/cert.pem   the certificate (leaf)
//!   certs/NAME/chain.pem  intermediates served after it (may be empty)
//!   certs/NAME/key.pem    its private key, PKCS#8 PEM, mode 0600
//!   certs/NAME/csr.pem    the CSR, for certificates created here
//!   certs/NAME/meta.toml  origin, creation time and the SHA-256 of each file above
//! ```
//!
//! Every file is replaced atomically (temporary file, fsync, rename, fsync of the directory).
//! `meta.toml` is written last and records each file's digest, so an update interrupted
//! between two files, a truncated file or an entry whose `meta.toml` never got written is
//! detected on [`CertStore::open`] and reported with the file's name
//! ([`Error::StoreCorrupt`]); nothing is silently dropped. Names starting with `.` are
//! temporary files of interrupted writes and are ignored (the previous file is intact).
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
mod store;
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
pub use store::{
    CertStore, FileProblem, MAX_CERTIFICATES, MAX_FILE_BYTES, Origin, StoredCert, validate_name,
};
pub use subject::{FqdnCheck, MAX_SANS, Subject, check_fqdn_names};
