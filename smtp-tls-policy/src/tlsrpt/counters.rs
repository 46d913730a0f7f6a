//! The day's aggregate, laid out for an atomic shared store (Redis `HINCRBY` style) as well as
//! for memory ([`Aggregate`]).
//!
//! Each (policy, UTC day) is a bucket ([`CounterKey`]): the day and a stable id, the first 32
//! hex digits of the SHA-256 of the policy's store string ([`ReportedPolicy::to_store_string`],
//! kept once per bucket so the report can name the policy). A bucket is a hash of counters:
//!
//! - `s`: successful sessions;
//! - one field per distinct failure: `f|` and seven components separated by `|` — result type,
//!   sending MTA IP, receiving IP, receiving MX host, receiving MX HELO, failure-reason-code,
//!   additional information — each empty when unknown, cut to a bounded length, and
//!   percent-escaped (`%`, `|` and control characters as `%XX`), so that the field decodes back
//!   to exactly the failure it counts ([`decode_failure_field`]).
//!
//! The HELO name and additional information are kept only in the strict forms of
//! [`super::Endpoints::with_helo`] and [`SessionResult::with_additional_information`] (never
//! the peer's free text), and a bucket holds at most
//! [`CounterUpdate::MAX_FAILURE_FIELDS_PER_BUCKET`] failure fields plus overflow fields
//! ([`CounterUpdate::within_bound`]): result type, receiving IP and MX host only.
//!
//! A session is one [`CounterUpdate`] (key, field, +1). [`DayCounters::from_fields`] turns a
//! bucket's fields back into the report's `policies[]` entry.

use std::collections::BTreeMap;
use std::fmt;
use std::fmt::Write as _;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::Date;
use time::macros::format_description;

use super::report::{FailureDetail, PolicyReport, SessionCounts};
use super::result_type::ResultType;
use super::session::{
    MAX_NAME_LEN, ReportedPolicy, Session, SessionResult, clip, valid_helo, valid_info,
};

/// The field counting successful sessions.
pub const SUCCESS_FIELD: &str = "s";

/// The prefix of a failure field.
const FAILURE_PREFIX: &str = "f|";

/// Components of a failure field.
const COMPONENTS: usize = 7;

/// Longest result type or failure-reason-code kept in a field.
const MAX_CODE_LEN: usize = 64;

/// `YYYY-MM-DD`.
const DAY: &[time::format_description::BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]");

/// `day` as `YYYY-MM-DD`.
fn day_string(day: Date) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        day.year(),
        u8::from(day.month()),
        day.day()
    )
}

/// Where one session is counted: the UTC day and the policy's bucket id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub struct CounterKey {
    /// The UTC day.
    pub day: Date,
    /// The policy's bucket id: 32 lower-case hex digits.
    pub bucket: String,
}

impl CounterKey {
    /// The key of `policy` on `day`.
    #[must_use]
    pub fn new(day: Date, policy: &ReportedPolicy) -> Self {
        let digest = Sha256::digest(policy.to_store_string().as_bytes());
        let mut bucket = String::with_capacity(32);
        for byte in digest.iter().take(16) {
            let _ = write!(bucket, "{byte:02x}");
        }
        Self { day, bucket }
    }

    /// The key back from its string form `YYYY-MM-DD:<bucket>` ([`fmt::Display`]); `None`
    /// when `text` is not one.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        let (day, bucket) = text.split_once(':')?;
        let day = Date::parse(day, DAY).ok()?;
        let valid = bucket.len() == 32
            && bucket
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        valid.then(|| Self {
            day,
            bucket: bucket.to_owned(),
        })
    }
}

impl fmt::Display for CounterKey {
    /// `YYYY-MM-DD:<bucket>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", day_string(self.day), self.bucket)
    }
}

/// One counter increment for a store: `HINCRBY key field increment`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CounterUpdate {
    /// The bucket.
    pub key: CounterKey,
    /// The field within the bucket ([`SUCCESS_FIELD`] or an encoded failure).
    pub field: String,
    /// The increment (1 for one session).
    pub increment: u64,
}

impl CounterUpdate {
    /// The most failure fields a bucket takes with their full detail; past it, a new failure
    /// is counted in its overflow field ([`Self::within_bound`]), so a bucket holds at most
    /// this many fields plus one overflow field per (result type, receiving IP, MX host).
    pub const MAX_FAILURE_FIELDS_PER_BUCKET: usize = 256;

    /// This update within [`Self::MAX_FAILURE_FIELDS_PER_BUCKET`], for a store that knows its
    /// bucket: `failure_fields` is how many failure fields the bucket holds now, `known`
    /// whether this update's field is one of them. Unchanged for a success, a known field or
    /// while the bucket is under the bound; else the field becomes the overflow field of the
    /// failure (result type, receiving IP and MX host; no sending IP, HELO, reason code or
    /// additional information).
    #[must_use]
    pub fn within_bound(mut self, failure_fields: usize, known: bool) -> Self {
        if known || failure_fields < Self::MAX_FAILURE_FIELDS_PER_BUCKET {
            return self;
        }
        if let Some(result) = decode_failure_field(&self.field) {
            self.field = overflow_field(&result);
        }
        self
    }

    /// The update counting `session` on `day`.
    #[must_use]
    pub fn of(day: Date, session: &Session) -> Self {
        Self {
            key: CounterKey::new(day, &session.policy),
            field: encode_field(&session.result),
            increment: 1,
        }
    }
}

/// The field counting `result` ([`SUCCESS_FIELD`] for a success).
#[must_use]
pub fn encode_field(result: &SessionResult) -> String {
    let SessionResult::Failure {
        result_type,
        sending_mta_ip,
        receiving_ip,
        receiving_mx_hostname,
        receiving_mx_helo,
        failure_reason_code,
        additional_information,
    } = result
    else {
        return SUCCESS_FIELD.to_owned();
    };
    let ip = |ip: &Option<IpAddr>| ip.map(|ip| ip.to_string()).unwrap_or_default();
    let text = |t: &Option<String>, max| clip(t.as_deref().unwrap_or_default(), max);
    let strict = |t: &Option<String>, valid: fn(&str) -> Option<String>| {
        t.as_deref().and_then(valid).unwrap_or_default()
    };
    let parts = [
        clip(result_type.as_str(), MAX_CODE_LEN),
        ip(sending_mta_ip),
        ip(receiving_ip),
        text(receiving_mx_hostname, MAX_NAME_LEN),
        strict(receiving_mx_helo, valid_helo),
        text(failure_reason_code, MAX_CODE_LEN),
        strict(additional_information, valid_info),
    ];
    join_field(&parts)
}

/// The overflow field of `result`: result type, receiving IP and MX host only.
fn overflow_field(result: &SessionResult) -> String {
    let SessionResult::Failure {
        result_type,
        receiving_ip,
        receiving_mx_hostname,
        ..
    } = result
    else {
        return SUCCESS_FIELD.to_owned();
    };
    let parts = [
        clip(result_type.as_str(), MAX_CODE_LEN),
        String::new(),
        receiving_ip.map(|ip| ip.to_string()).unwrap_or_default(),
        clip(
            receiving_mx_hostname.as_deref().unwrap_or_default(),
            MAX_NAME_LEN,
        ),
        String::new(),
        String::new(),
        String::new(),
    ];
    join_field(&parts)
}

fn join_field(parts: &[String; COMPONENTS]) -> String {
    let mut field = String::from(FAILURE_PREFIX);
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            field.push('|');
        }
        escape_into(&mut field, part);
    }
    field
}

/// The failure a field counts; `None` for [`SUCCESS_FIELD`] and for anything that is not a
/// field [`encode_field`] writes.
#[must_use]
pub fn decode_failure_field(field: &str) -> Option<SessionResult> {
    let body = field.strip_prefix(FAILURE_PREFIX)?;
    let parts: Vec<String> = body.split('|').map(unescape).collect::<Option<_>>()?;
    let [rt, sip, rip, mx, helo, code, info]: [String; COMPONENTS] = parts.try_into().ok()?;
    if rt.is_empty() {
        return None;
    }
    let ip = |s: String| -> Option<Option<IpAddr>> {
        if s.is_empty() {
            Some(None)
        } else {
            s.parse().ok().map(Some)
        }
    };
    let opt = |s: String| (!s.is_empty()).then_some(s);
    Some(SessionResult::Failure {
        result_type: ResultType::from(rt.as_str()),
        sending_mta_ip: ip(sip)?,
        receiving_ip: ip(rip)?,
        receiving_mx_hostname: opt(mx),
        receiving_mx_helo: opt(helo),
        failure_reason_code: opt(code),
        additional_information: opt(info),
    })
}

fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        if c == '%' || c == '|' || (c.is_control() && c.is_ascii()) {
            let _ = write!(out, "%{:02X}", u32::from(c));
        } else {
            out.push(c);
        }
    }
}

fn unescape(text: &str) -> Option<String> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hi = char::from(bytes.next()?).to_digit(16)?;
            let lo = char::from(bytes.next()?).to_digit(16)?;
            out.push(u8::try_from(hi * 16 + lo).ok()?);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

/// A bucket's counters read back: the report's `policies[]` entry, and the fields that did
/// not decode (skipped, so that one damaged field never loses a domain's report).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DayCounters {
    /// The entry: policy, summary, one failure detail per failure field.
    pub policy_report: PolicyReport,
    /// Fields that are neither [`SUCCESS_FIELD`] nor a failure field.
    pub skipped_fields: Vec<String>,
}

impl DayCounters {
    /// The entry of `policy` from its bucket's `(field, count)` pairs (a field given twice
    /// adds up; counts saturate). Failure details are ordered by field.
    #[must_use]
    pub fn from_fields<I, S>(policy: &ReportedPolicy, fields: I) -> Self
    where
        I: IntoIterator<Item = (S, u64)>,
        S: AsRef<str>,
    {
        let mut successes = 0u64;
        let mut failures: BTreeMap<String, (SessionResult, u64)> = BTreeMap::new();
        let mut skipped_fields = Vec::new();
        for (field, count) in fields {
            let field = field.as_ref();
            if field == SUCCESS_FIELD {
                successes = successes.saturating_add(count);
            } else if let Some(result) = decode_failure_field(field) {
                let slot = failures
                    .entry(field.to_owned())
                    .or_insert_with(|| (result, 0));
                slot.1 = slot.1.saturating_add(count);
            } else {
                skipped_fields.push(field.to_owned());
            }
        }
        let mut entry = PolicyReport::new(policy.to_policy());
        let mut failed = 0u64;
        for (result, count) in failures.into_values() {
            if count == 0 {
                continue;
            }
            failed = failed.saturating_add(count);
            if let Some(detail) = failure_detail(result, count) {
                entry.failure_details.push(detail);
            }
        }
        entry.summary = SessionCounts::new(successes, failed);
        Self {
            policy_report: entry,
            skipped_fields,
        }
    }
}

fn failure_detail(result: SessionResult, count: u64) -> Option<FailureDetail> {
    let SessionResult::Failure {
        result_type,
        sending_mta_ip,
        receiving_ip,
        receiving_mx_hostname,
        receiving_mx_helo,
        failure_reason_code,
        additional_information,
    } = result
    else {
        return None;
    };
    let mut detail = FailureDetail::new(result_type, count);
    detail.sending_mta_ip = sending_mta_ip;
    detail.receiving_ip = receiving_ip;
    detail.receiving_mx_hostname = receiving_mx_hostname;
    detail.receiving_mx_helo = receiving_mx_helo;
    detail.failure_reason_code = failure_reason_code;
    detail.additional_information = additional_information;
    Some(detail)
}

/// The counters in memory: buckets of `(field, count)` with their policy, per day. For a
/// single relay's file-backed store and for tests; serialisable (serde) as a list of buckets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Vec<StoredBucket>", into = "Vec<StoredBucket>")]
#[must_use]
pub struct Aggregate {
    buckets: BTreeMap<CounterKey, Bucket>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Bucket {
    policy: ReportedPolicy,
    fields: BTreeMap<String, u64>,
}

impl Aggregate {
    /// No sessions.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts `session` on `day`; returns the update applied (what a shared store would be
    /// sent).
    pub fn record(&mut self, day: Date, session: &Session) -> CounterUpdate {
        let update = CounterUpdate::of(day, session);
        self.apply(&update, &session.policy);
        update
    }

    /// Applies one update of a bucket of `policy` (counts saturate), within
    /// [`CounterUpdate::MAX_FAILURE_FIELDS_PER_BUCKET`] ([`CounterUpdate::within_bound`]).
    pub fn apply(&mut self, update: &CounterUpdate, policy: &ReportedPolicy) {
        let bucket = self
            .buckets
            .entry(update.key.clone())
            .or_insert_with(|| Bucket {
                policy: policy.clone(),
                fields: BTreeMap::new(),
            });
        let known = bucket.fields.contains_key(&update.field);
        let failure_fields = if known {
            0
        } else {
            bucket
                .fields
                .keys()
                .filter(|f| f.starts_with(FAILURE_PREFIX))
                .count()
        };
        let field = update.clone().within_bound(failure_fields, known).field;
        let count = bucket.fields.entry(field).or_default();
        *count = count.saturating_add(update.increment);
    }

    /// The days with counters, in order.
    pub fn days(&self) -> Vec<Date> {
        let mut days: Vec<Date> = self.buckets.keys().map(|k| k.day).collect();
        days.dedup();
        days
    }

    /// The buckets of `day`, read back ([`DayCounters::from_fields`]), ordered by bucket id.
    pub fn day(&self, day: Date) -> Vec<DayCounters> {
        self.buckets
            .iter()
            .filter(|(k, _)| k.day == day)
            .map(|(_, b)| {
                DayCounters::from_fields(&b.policy, b.fields.iter().map(|(f, n)| (f, *n)))
            })
            .collect()
    }

    /// Removes the counters of `day` (after its reports are sent).
    pub fn remove_day(&mut self, day: Date) {
        self.buckets.retain(|k, _| k.day != day);
    }

    /// Whether nothing is counted.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

/// One bucket as serialised.
#[derive(Serialize, Deserialize)]
struct StoredBucket {
    /// `YYYY-MM-DD`.
    day: String,
    policy: ReportedPolicy,
    fields: BTreeMap<String, u64>,
}

impl From<Vec<StoredBucket>> for Aggregate {
    fn from(stored: Vec<StoredBucket>) -> Self {
        let mut aggregate = Self::new();
        for b in stored {
            let Ok(day) = Date::parse(&b.day, DAY) else {
                continue;
            };
            let policy =
                ReportedPolicy::from_store_string(&b.policy.to_store_string()).unwrap_or(b.policy);
            let key = CounterKey::new(day, &policy);
            for (field, increment) in b.fields {
                aggregate.apply(
                    &CounterUpdate {
                        key: key.clone(),
                        field,
                        increment,
                    },
                    &policy,
                );
            }
        }
        aggregate
    }
}

impl From<Aggregate> for Vec<StoredBucket> {
    fn from(aggregate: Aggregate) -> Self {
        aggregate
            .buckets
            .into_iter()
            .map(|(k, b)| StoredBucket {
                day: day_string(k.day),
                policy: b.policy,
                fields: b.fields,
            })
            .collect()
    }
}
