//! TLSA records (RFC 6698 §2): the registry enums, the record, and its two parsers.

mod parse;
mod record;

pub use parse::MAX_TEXT_LEN;
pub use record::{CertUsage, MAX_DATA_LEN, Matching, Selector, TlsaRecord};

#[cfg(test)]
mod tests;
