//! SMTP TLS Reporting (RFC 8460): the `_smtp._tls` TXT record, the aggregate report model, the
//! sending side (sessions, day counters, report messages) and the tolerant reader of received
//! reports. Sans-IO: no DNS, no clock, no network here.
//!
//! - [`TlsRptRecord`] ([`record`](self::TlsRptRecord::parse)): `v=TLSRPTv1; rua=mailto:..,https://..`
//!   parsed strictly, each `rua` URI judged on its own; [`TlsRptRecord::discover`] applies §3's
//!   "not exactly one record means none".
//! - [`Report`] and its parts: the §4.4 JSON model, read and written with the RFC's hyphenated
//!   field names; [`ResultType`] and [`PolicyType`] keep values they do not know.
//! - Sending, step 1, one delivery attempt: [`Session`] = the [`ReportedPolicy`] it counts under
//!   ([`ReportedPolicy::for_plan`]: `tlsa`, `sts` or `no-policy-found`) and its
//!   [`SessionResult`], from the hop plan's verdict through [`TlsOutcome`] — whose
//!   [`TlsOutcome::classify`] is the one table from outcome to result type.
//! - Sending, step 2, the day's counters: a [`CounterUpdate`] per session (bucket
//!   [`CounterKey`] = UTC day + policy id, field `s` or an encoded failure, +1), for an atomic
//!   shared store (`HINCRBY`) or the in-memory [`Aggregate`]; [`DayCounters::from_fields`] reads
//!   a bucket back.
//! - Sending, step 3, the report: [`compose_reports`] (one per policy domain and day, stable
//!   [`report_id`]), [`ReportBody`] (gzip, the HTTPS POST body) and [`compose_message`] (the
//!   §5.3 `multipart/report` message, unsigned).
//! - [`read_report`] / [`ReportReader`]: JSON, gzip or a whole report message (MIME, single-part
//!   or multipart, CRLF or LF), bounded by a size limit; fields senders omit, `null`, `""` IPs,
//!   date-times without a zone and the `policy-string` / `mx-host` shapes found in the wild are
//!   accepted.
//! - [`Summary`]: reports summed per policy domain and UTC day — successes, failures, failures
//!   by result type and by receiving MX host.
//!
//! Sending: count a few sessions, then build the day's report and its message.
//!
//! ```
//! use smtp_tls_policy::mta_sts::{Policy as StsPolicy, StsFailure, StsFailureKind};
//! use smtp_tls_policy::tlsrpt::{
//!     Aggregate, Endpoints, ReportedPolicy, Reporter, Session, SessionResult, TlsOutcome,
//!     compose_message, read_report,
//! };
//! use time::macros::{date, datetime};
//!
//! let sts = StsPolicy::parse(b"version: STSv1\nmode: testing\nmx: *.example.com\nmax_age: 86400\n")?;
//! // In the relay: `ReportedPolicy::for_plan(&plan, Some(&sts))` and
//! // `TlsOutcome::of_handshake(&plan, &verdict)` / `of_hold` / `of_decision`.
//! let policy = ReportedPolicy::sts("Example.COM", Some(&sts));
//! let mx = Endpoints::new(
//!     Some("192.0.2.1".parse()?),
//!     Some("198.51.100.25".parse()?),
//!     Some("mx1.example.com"),
//! );
//! let day = date!(2026 - 12 - 04);
//! let mut counters = Aggregate::new();
//! for _ in 0..3 {
//!     counters.record(day, &Session::new(policy.clone(), SessionResult::Success));
//! }
//! let failed = SessionResult::new(TlsOutcome::CertificateExpired, mx);
//! counters.record(day, &Session::new(policy.clone(), failed));
//! // A policy fetch that failed: no MX involved.
//! let fetch = StsFailure::new(StsFailureKind::StsPolicyFetchError, "connection refused");
//! let result = SessionResult::new(TlsOutcome::of_sts_failure(&fetch), Endpoints::default());
//! counters.record(day, &Session::new(ReportedPolicy::sts("other.example", None), result));
//!
//! let reporter = Reporter::new("Relay Example", "tlsrpt@sender.example",
//!     "mail.sender.example", "noreply@sender.example");
//! let reports = counters.reports(&reporter, day);
//! assert_eq!(reports.len(), 2); // one per policy domain
//! let report = &reports[0];
//! assert_eq!(report.policies[0].summary.total_successful_session_count, 3);
//! assert_eq!(report.policies[0].failure_details[0].result_type.as_str(), "certificate-expired");
//!
//! let message = compose_message(&reporter, report, "tlsrpt@example.com",
//!     datetime!(2026-12-05 00:10:00 UTC))?;
//! assert_eq!(&read_report(&message)?, report);
//! assert!(String::from_utf8_lossy(&message).contains("\r\nTLS-Report-Domain: example.com\r\n"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Reading:
//!
//! ```
//! use smtp_tls_policy::tlsrpt::{read_report, Summary};
//! let json = br#"{"organization-name":"Mail.example","report-id":"r1",
//!   "date-range":{"start-datetime":"2025-04-12T00:00:00Z","end-datetime":"2025-04-12T23:59:59"},
//!   "contact-info":null,
//!   "policies":[{"policy":{"policy-type":"sts","policy-domain":"Example.com"},
//!     "summary":{"total-successful-session-count":9,"total-failure-session-count":1},
//!     "failure-details":[{"result-type":"certificate-expired","sending-mta-ip":"",
//!       "receiving-mx-hostname":"mx1.example.com","failed-session-count":1}]}]}"#;
//! let report = read_report(json)?;
//! let summary = Summary::of([&report]);
//! let day = summary.domains().next().unwrap();
//! assert_eq!(day.policy_domain.as_deref(), Some("example.com"));
//! assert_eq!((day.successes, day.failures), (9, 1));
//! assert_eq!(day.failures_by_type["certificate-expired"], 1);
//! assert!(summary.has_failures());
//! # Ok::<(), smtp_tls_policy::Error>(())
//! ```

mod compose;
mod counters;
mod lenient;
mod parse;
mod record;
mod report;
mod result_type;
mod session;
mod summary;

pub use compose::{
    ComposeErrorKind, ReportBody, Reporter, TLSRPT_GZIP, compose_message, compose_reports,
    day_range, report_filename, report_id,
};
pub use counters::{
    Aggregate, CounterKey, CounterUpdate, DayCounters, SUCCESS_FIELD, decode_failure_field,
    encode_field,
};
pub use parse::{Container, MAX_REPORT_SIZE, ReportErrorKind, ReportReader, read_report};
pub use record::{
    MAX_RECORD_LEN, MAX_RUA, RecordDiscovery, RecordErrorKind, ReportUri, RuaProblem, SkippedRua,
    TlsRptRecord,
};
pub use report::{DateRange, FailureDetail, Policy, PolicyReport, Report, SessionCounts};
pub use result_type::{PolicyType, ResultType};
pub use session::{
    Endpoints, MAX_INFO_LEN, MAX_NAME_LEN, ReportedPolicy, Session, SessionResult, TlsOutcome,
};
pub use summary::{DomainDay, Summary, UNKNOWN_MX};
