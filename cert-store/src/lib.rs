//! Certificates, private keys, certificate-authority lists and rustls configurations.
#![forbid(unsafe_code)]
