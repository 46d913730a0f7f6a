//! The report counters' interface (TLS-RPT, RFC 8460): per reporting period ("day") a set of
//! buckets, each a hash of counters plus one description (`meta`), and named claims that let
//! exactly one relay produce a period's report.
//!
//! Days, buckets, fields and meta values are opaque strings: their encoding belongs to the
//! caller (smtp-tls-policy's `tlsrpt::counters`). A day is whatever period the caller reports
//! on (a UTC date, or a shorter period in tests); buckets of different days never mix.

use std::future::Future;
use std::time::Duration;

use smtp_tls_policy::tlsrpt::{CounterUpdate, SessionResult, decode_failure_field, encode_field};

use super::error::StateError;

/// Longest day name.
pub const MAX_DAY_LEN: usize = 64;
/// Longest bucket, field or claim name.
pub const MAX_NAME_LEN: usize = 1024;
/// Longest meta value (a policy description with its policy text and MX list).
pub const MAX_META_LEN: usize = 256 * 1024;
/// How long a finished claim ([`ReportCounters::done`]) keeps another relay from claiming
/// the same name.
pub const DONE_RETENTION: Duration = Duration::from_secs(8 * 86_400);

/// One bucket as read back: its description and its counters, by field name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BucketData {
    /// The value of the first [`ReportCounters::set_meta`], if any.
    pub meta: Option<String>,
    /// Every field with its sum, sorted by field.
    pub fields: Vec<(String, u64)>,
}

impl BucketData {
    /// The sum of `field` (0 when never incremented).
    #[must_use]
    pub fn get(&self, field: &str) -> u64 {
        self.fields
            .iter()
            .find(|(f, _)| f == field)
            .map_or(0, |(_, n)| *n)
    }
}

/// The report counters, implemented by the file backend and the Redis backend alike.
///
/// `incr` and `set_meta` never block delivery on a lost Redis connection: the Redis backend
/// buffers them and retries. The reading side (`buckets`, `read`, `claim`, `done`,
/// `delete_day`) needs the store and says [`StateError::Unavailable`] when it is unreachable:
/// the report is then produced later.
pub trait ReportCounters: Send + Sync {
    /// Adds `by` to `field` of `bucket` in `day` (atomically: concurrent increments, from any
    /// number of tasks or relays, sum exactly) and lists the bucket under `day`.
    ///
    /// A TLS-RPT failure field (smtp-tls-policy's `encode_field`) that the bucket does not
    /// hold yet is counted in its overflow field once the bucket holds
    /// [`CounterUpdate::MAX_FAILURE_FIELDS_PER_BUCKET`] fields besides the success field —
    /// across the whole store (every relay, every restart), checked and incremented at once.
    fn incr(
        &self,
        day: &str,
        bucket: &str,
        field: &str,
        by: u64,
    ) -> impl Future<Output = Result<(), StateError>> + Send;

    /// Sets the bucket's description unless one is set (the first writer wins) and lists the
    /// bucket under `day`.
    fn set_meta(
        &self,
        day: &str,
        bucket: &str,
        value: &str,
    ) -> impl Future<Output = Result<(), StateError>> + Send;

    /// The buckets of `day`, sorted.
    fn buckets(&self, day: &str) -> impl Future<Output = Result<Vec<String>, StateError>> + Send;

    /// One bucket of `day` (empty when unknown).
    fn read(
        &self,
        day: &str,
        bucket: &str,
    ) -> impl Future<Output = Result<BucketData, StateError>> + Send;

    /// Claims `name` for `ttl`: `true` for exactly one caller (across relays with Redis)
    /// until the claim expires; `false` while someone's claim holds or after [`Self::done`].
    fn claim(
        &self,
        name: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, StateError>> + Send;

    /// Gives up this store's claim on `name` (a run that failed before it finished: its retry,
    /// or another relay, may claim it at once instead of after the claim's `ttl`). Nothing
    /// changes when the claim is someone else's, done, or not held.
    fn release(&self, name: &str) -> impl Future<Output = Result<(), StateError>> + Send;

    /// Extends this store's own claim on `name` to `ttl` from now (a run longer than the
    /// claim's first `ttl`); `false` when the claim is not this store's (expired and taken by
    /// another, released, or done): nothing changes then.
    fn extend(
        &self,
        name: &str,
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, StateError>> + Send;

    /// `true` once the claim `name` is [`Self::done`] (for [`DONE_RETENTION`]); `false` while
    /// it is free or held, so a relay refused by [`Self::claim`] knows whether to try again
    /// (its holder may crash: the claim then expires and the period is still to be reported).
    fn is_done(&self, name: &str) -> impl Future<Output = Result<bool, StateError>> + Send;

    /// The days the store holds counters for (every relay's, with Redis), sorted: the
    /// periods not reported yet (or reported while late updates came in). Bounded by the
    /// retention ([`COUNTER_RETENTION`](super::COUNTER_RETENTION)): older days are dropped.
    fn days(&self) -> impl Future<Output = Result<Vec<String>, StateError>> + Send;

    /// Marks the claim `name` finished: nobody claims it again for [`DONE_RETENTION`].
    fn done(&self, name: &str) -> impl Future<Output = Result<(), StateError>> + Send;

    /// Removes `day` with all its buckets (after its reports were sent). The Redis backend
    /// then drops the day's late updates (another relay's, buffered through an outage) for
    /// [`COUNTER_RETENTION`](super::COUNTER_RETENTION) after the last; the file backend, which
    /// only this relay updates, keeps a late one until the next run deletes it (the report's
    /// claim is done by then).
    fn delete_day(&self, day: &str) -> impl Future<Output = Result<(), StateError>> + Send;
}

fn invalid(what: &'static str, value: &str, reason: &'static str) -> StateError {
    let mut shown: String = value.chars().take(64).collect();
    if shown.len() < value.len() {
        shown.push('…');
    }
    StateError::InvalidName {
        what,
        value: shown,
        reason,
    }
}

/// A day: 1 to [`MAX_DAY_LEN`] printable characters, no `:` or `/` (it is part of key and
/// file names).
pub(crate) fn check_day(day: &str) -> Result<(), StateError> {
    if day.is_empty() || day.len() > MAX_DAY_LEN {
        return Err(invalid("day", day, "1 to 64 bytes"));
    }
    if day
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || matches!(c, ':' | '/' | '\\'))
    {
        return Err(invalid(
            "day",
            day,
            "no spaces, control characters, ':' or '/'",
        ));
    }
    Ok(())
}

/// A bucket or field: 1 to [`MAX_NAME_LEN`] bytes, anything else goes.
pub(crate) fn check_name(what: &'static str, name: &str) -> Result<(), StateError> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(invalid(what, name, "1 to 1024 bytes"));
    }
    Ok(())
}

/// A meta value: at most [`MAX_META_LEN`] bytes.
pub(crate) fn check_meta(value: &str) -> Result<(), StateError> {
    if value.len() > MAX_META_LEN {
        return Err(invalid("meta", value, "at most 256 KiB"));
    }
    Ok(())
}

/// A claim name: 1 to 128 of `A-Z a-z 0-9 . _ -`, not starting with `.` (a file name).
pub(crate) fn check_claim(name: &str) -> Result<(), StateError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "claim name",
            name,
            "1 to 128 of A-Z a-z 0-9 . _ -, not starting with '.'",
        ))
    }
}

/// The failure fields a bucket holds besides its overflow fields, store-wide.
pub(crate) const FIELD_BOUND: usize = CounterUpdate::MAX_FAILURE_FIELDS_PER_BUCKET;

/// Unix time in milliseconds.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The overflow field of a TLS-RPT failure field (result type, receiving IP and MX host only:
/// [`CounterUpdate::within_bound`]); `None` for any other field (not bounded).
pub(crate) fn overflow_of(field: &str) -> Option<String> {
    let SessionResult::Failure {
        result_type,
        receiving_ip,
        receiving_mx_hostname,
        ..
    } = decode_failure_field(field)?
    else {
        return None;
    };
    Some(encode_field(&SessionResult::Failure {
        result_type,
        sending_mta_ip: None,
        receiving_ip,
        receiving_mx_hostname,
        receiving_mx_helo: None,
        failure_reason_code: None,
        additional_information: None,
    }))
}
