//! DANE for SMTP: TLSA records, DNSSEC-validated lookups and RFC 7672 verdicts.
#![forbid(unsafe_code)]
