//! Shared helpers for the example binaries (`smtp-tls-check`, and later `relay`).
#![forbid(unsafe_code)]
