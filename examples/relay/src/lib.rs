//! The example relay: durable spool, retry queue, delivery status notifications, the inbound
//! SMTP session and the outbound delivery engine, and the configuration that ties them together.
//!
//! The spool, the queue and the DSNs need no network: the inbound SMTP session and the outbound
//! delivery are layered on top of them. The `relay` binary (`src/bin/relay/`) runs it all.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
pub mod dsn;
mod envelope;
mod error;
pub mod inbound;
pub mod local;
pub mod mta_sts_host;
pub mod outbound;
pub mod queue;
mod spool;
pub mod state;
pub mod tlsrpt;

pub use envelope::{
    Diagnostic, Envelope, MAX_ID_LEN, MessageId, Recipient, RecipientState, TlsInfo, TlsRequest,
};
pub use error::{RelayError, SpoolDefect};
pub use queue::{AttemptOutcome, Disposition, Job, Queue, RetryPolicy};
pub use spool::{
    CommitMode, QUARANTINE_DIR, Quarantined, Recovery, Spool, SpoolConfig, list_spool,
};
