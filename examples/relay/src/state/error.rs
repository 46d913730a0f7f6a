//! The shared state's typed error.

use std::path::{Path, PathBuf};

use smtp_tls_policy::mta_sts::StoreError;

/// A state operation that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The file system refused (file backend).
    #[error("state: {op} {}: {detail}", path.display())]
    Io {
        /// The operation.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        detail: String,
    },
    /// Redis is unreachable or answered with an error (the URL's password is never included).
    #[error("state: Redis unavailable: {detail}")]
    Unavailable {
        /// What failed.
        detail: String,
    },
    /// A day, bucket, field or claim name the store cannot keep.
    #[error("state: invalid {what} {value:?}: {reason}")]
    InvalidName {
        /// `day`, `bucket`, `field`, `meta` or `claim name`.
        what: &'static str,
        /// The value (shortened).
        value: String,
        /// Why.
        reason: &'static str,
    },
    /// A stored value cannot be read back.
    #[error("state: corrupt {what}: {detail}")]
    Corrupt {
        /// What was read.
        what: String,
        /// Why it is unusable.
        detail: String,
    },
    /// `[state]` is not usable (names the key).
    #[error("state.{key}: {reason}")]
    Config {
        /// The key below `state.`.
        key: &'static str,
        /// Why.
        reason: String,
    },
    /// The MTA-STS policy store refused.
    #[error("state: MTA-STS policy store: {0}")]
    Policy(#[from] StoreError),
}

impl StateError {
    pub(crate) fn io(op: &'static str, path: &Path, e: &std::io::Error) -> Self {
        Self::Io {
            op,
            path: path.to_owned(),
            detail: e.to_string(),
        }
    }

    pub(crate) fn redis(e: &redis::RedisError) -> Self {
        Self::Unavailable {
            detail: e.to_string(),
        }
    }
}
