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
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod delivery;
pub mod destination;
mod error;
#[cfg(feature = "tokio")]
pub mod io;
pub mod listener;
pub mod smtp;

pub use error::{DestinationConfigErrorKind, Error, IoKind};
