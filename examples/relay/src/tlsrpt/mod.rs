//! The relay's TLS-RPT sending side (RFC 8460), built on smtp-tls-policy's `tlsrpt` module
//! and the shared state store ([`crate::state`]):
//!
//! - [`Recorder`] ([`recorder`](self::Recorder)): every outbound connection attempt's TLS
//!   outcome (from the hop plan and the delivery machine's decision) is handed, without
//!   waiting, to a recorder task over a bounded channel; the task adds it to the period's
//!   counters in the state store (an atomic increment, shared by every relay with Redis).
//!   A full channel drops the session and the log says how many were dropped; delivery never
//!   waits. Sessions of messages sent with `TLS-Required: No` (RFC 8689: the domain's policy
//!   is not applied to them) are not counted — TLS reports are always sent so, so a report
//!   is never counted in a report.
//! - the reporter task (`spawn_reporter`): once per period (a UTC day; shorter with
//!   `report_interval_secs`, for tests) it claims the finished period across relays, builds
//!   one report per policy domain, looks up `_smtp._tls.<domain>` through the delivery
//!   resolver (validating, or plain DNS in mode `system`: RFC 8460 §3 needs no DNSSEC) and
//!   delivers to every valid `rua` (a bad one is skipped and logged): `mailto:` as a message in
//!   the relay's own spool and queue, then `https:` as POSTs over rustls, several at once, each
//!   within its time limit (a slow receiver delays no `mailto:` and no other domain); then
//!   deletes the period's counters. Each run (at start, then once per period) takes every
//!   completed period the store still holds counters for (within its retention): periods
//!   missed while the relay was down, or whose claiming relay crashed, are reported late
//!   rather than never. A period another relay holds is tried again (within ten minutes)
//!   until the store says it is done; the holder extends its claim while its run lasts, and
//!   a run that fails releases it.
//!   Report messages are DKIM-signed with `[tlsrpt.dkim]` ([`Dkim`], mail-auth's signer).
//! - [`TlsRptConfig`]: the `[tlsrpt]` section.

mod config;
mod dkim;
mod period;
mod post;
mod recorder;
mod reporter;

pub use config::{DEFAULT_REPORT_INTERVAL_SECS, TlsRptConfig};
pub use dkim::{Dkim, DkimConfig, DkimError, SIGNED_HEADERS};
pub use period::Period;
pub use post::{CONNECT_LIMIT, MAX_RESPONSE_BODY, PostError, post_report};
pub use recorder::{DEFAULT_CAPACITY, Recorder, write as write_session};
pub(crate) use reporter::spawn_reporter;
pub use reporter::{PeriodRun, collect_reports, due_periods, reporter, run_period};

#[cfg(test)]
mod tests;
