//! Shared fixtures of the `smtp-tls-check` tests: the Postfix lab driver of the relay's tests,
//! included by path rather than copied.
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;

#[path = "../../../relay/tests/common/postfix.rs"]
pub mod postfix;

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}
