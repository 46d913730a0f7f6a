//! The core of the example relay: durable spool, retry queue and delivery status notifications.
//!
//! These parts need no network: the inbound SMTP session and the outbound delivery are layered
//! on top of them.

pub mod config;
pub mod dsn;
mod envelope;
mod error;
pub mod inbound;
pub mod local;
pub mod outbound;
pub mod queue;
mod recover;
mod spool;
mod spool_commit;
mod spool_file;
mod spool_index;
mod spool_io;
mod spool_list;

pub use envelope::{
    Diagnostic, Envelope, MAX_ID_LEN, MessageId, Recipient, RecipientState, TlsInfo,
};
pub use error::{RelayError, SpoolDefect};
pub use queue::{AttemptOutcome, Disposition, Job, Queue, RetryPolicy};
pub use recover::{QUARANTINE_DIR, Quarantined, Recovery};
pub use spool::{CommitMode, Spool, SpoolConfig};
pub use spool_list::list_spool;
