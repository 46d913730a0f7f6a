//! Destination controls (seed "Enabling TLS and Certificate Verification on Delivery", Table 2,
//! and "Enabling TLS for Delivery with DANE Support"): per recipient domain, the TLS mode and DANE
//! setting used for delivery.
//!
//! Entries name an exact domain (`example.com`) or a parent (`.example.com`, which matches every
//! subdomain of `example.com` but not `example.com` itself). The most specific entry wins: an exact
//! entry, then the longest matching parent, then the default entry. A `default` TLS mode or DANE
//! setting in an entry inherits the default entry's value (Table 2, "Default").
//!
//! An entry may also say whether the recipient domain's MTA-STS policy (RFC 8461) applies:
//! `mta_sts = "honor"` (the default: local setting and remote policy combine to the stricter
//! requirement in the hop plan) or `mta_sts = "ignore"` ([`MtaStsSetting`]).

mod config;
mod mode;
mod table;
#[cfg(test)]
mod tests;

pub use config::{GlobalSettings, MAX_CONFIG_BYTES, MAX_ENTRIES};
pub use mode::{ConfiguredDane, DeliveryTls, MtaStsSetting, TlsMode};
pub use table::{
    DestinationControls, DestinationControlsBuilder, DestinationEntry, DestinationMatch,
    DestinationPolicy,
};
