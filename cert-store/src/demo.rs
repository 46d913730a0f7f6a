//! The demonstration certificate (seed, "Working with Certificates", Caution: "Your email
//! gateway ships with a demonstration certificate to test the TLS and HTTPS functionality, but
//! enabling either service with the demonstration certificate is not secure").
//!
//! It is embedded (`demo/demo-cert.pem`, `demo/demo-key.pem`, made by
//! `cargo run -p cert-store --example gen_demo_cert`; see `demo/PROVENANCE.md`). Its private key
//! is public, so every use logs a warning.

use rustls_pki_types::CertificateDer;

use crate::error::Result;
use crate::import::{BadEntryPolicy, parse_bundle};
use crate::key::PrivateKey;
use crate::store::{Origin, StoredCert};

/// Name of the built-in demonstration certificate.
pub const DEMO_NAME: &str = "demo";

const DEMO_CERT: &str = include_str!("../demo/demo-cert.pem");
const DEMO_KEY: &str = include_str!("../demo/demo-key.pem");

/// The demonstration certificate, logging that it is not secure.
pub(crate) fn demo_cert() -> Result<StoredCert> {
    tracing::warn!(
        certificate = DEMO_NAME,
        "using the demonstration certificate: its private key is public, this is not secure; \
         create or import a certificate of your own"
    );
    demo_cert_quiet()
}

/// The demonstration certificate without the warning (for listing only).
pub(crate) fn demo_cert_quiet() -> Result<StoredCert> {
    let chain: Vec<CertificateDer<'static>> =
        parse_bundle(DEMO_CERT.as_bytes(), BadEntryPolicy::Reject)?.certs;
    Ok(StoredCert {
        name: DEMO_NAME.into(),
        chain,
        key: PrivateKey::from_pem_or_der(DEMO_KEY.as_bytes())?,
        csr_pem: None,
        origin: Origin::Demo,
    })
}
