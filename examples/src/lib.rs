//! Shared helpers for the example binaries (`smtp-tls-check`, `smtp-load`, and later `relay`).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod relay;
