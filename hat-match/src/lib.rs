//! Host Access Table (HAT): ordered sender groups matched to mail flow policies.
#![forbid(unsafe_code)]
