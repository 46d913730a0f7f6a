//! SMTP TLS Reporting (RFC 8460): the `_smtp._tls` TXT record, the aggregate report model, and
//! the tolerant reader of received reports.
//!
//! - [`TlsRptRecord`] ([`record`](self::TlsRptRecord::parse)): `v=TLSRPTv1; rua=mailto:..,https://..`
//!   parsed strictly, each `rua` URI judged on its own; [`TlsRptRecord::discover`] applies §3's
//!   "not exactly one record means none".
//! - [`Report`] and its parts: the §4.4 JSON model, read and written with the RFC's hyphenated
//!   field names; [`ResultType`] and [`PolicyType`] keep values they do not know.
//! - [`read_report`] / [`ReportReader`]: JSON, gzip or a whole report message (MIME, single-part
//!   or multipart, CRLF or LF), bounded by a size limit; fields senders omit, `null`, `""` IPs,
//!   date-times without a zone and the `policy-string` / `mx-host` shapes found in the wild are
//!   accepted.
//! - [`Summary`]: reports summed per policy domain and UTC day — successes, failures, failures
//!   by result type and by receiving MX host.
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
