//! The aggregate report (RFC 8460 §4.4), one model for both directions: read with the tolerances
//! of [`super::lenient`], written as the RFC's JSON with its hyphenated field names.
//!
//! ```text
//! organization-name, date-range {start-datetime, end-datetime}, contact-info, report-id,
//! policies[] {policy {policy-type, policy-string[], policy-domain, mx-host[]},
//!             summary {total-successful-session-count, total-failure-session-count},
//!             failure-details[] {result-type, sending-mta-ip, receiving-mx-hostname,
//!                                receiving-mx-helo, receiving-ip, failed-session-count,
//!                                additional-information, failure-reason-code}}
//! ```

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::lenient;
use super::result_type::{PolicyType, ResultType};

/// One aggregate report: what one sending organisation saw for one recipient domain over one
/// period (normally a UTC day).
///
/// Fields a sender may leave out or set to `null` read as empty strings, `None` or empty lists;
/// unknown fields are ignored. Writing a report produces RFC 8460 §4.4 JSON (absent optional
/// fields and empty optional lists are omitted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub struct Report {
    /// `organization-name`: who sent the report.
    #[serde(default, deserialize_with = "lenient::string")]
    pub organization_name: String,
    /// `date-range`: the period covered.
    pub date_range: DateRange,
    /// `contact-info`: the reporter's contact (an e-mail address); `null` seen in the wild.
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub contact_info: Option<String>,
    /// `report-id`: a unique identifier, any scheme.
    #[serde(default, deserialize_with = "lenient::string")]
    pub report_id: String,
    /// `policies`: one entry per policy applied.
    #[serde(default, deserialize_with = "lenient::list")]
    pub policies: Vec<PolicyReport>,
}

impl Report {
    /// A report with the given header fields and no policies (the writing side fills
    /// [`Report::policies`]).
    #[must_use]
    pub fn new(
        organization_name: impl Into<String>,
        date_range: DateRange,
        contact_info: impl Into<String>,
        report_id: impl Into<String>,
    ) -> Self {
        Self {
            organization_name: organization_name.into(),
            date_range,
            contact_info: Some(contact_info.into()),
            report_id: report_id.into(),
            policies: Vec::new(),
        }
    }

    /// The RFC 8460 §4.4 JSON of this report.
    ///
    /// # Errors
    /// None in practice (every field serialises); a serde failure is returned as
    /// [`crate::Error::TlsRptReport`] with [`super::ReportErrorKind::Json`].
    pub fn to_json(&self) -> Result<String, crate::Error> {
        serde_json::to_string(self).map_err(|e| super::ReportErrorKind::json(&e).into())
    }
}

/// `date-range`: the period a report covers, in UTC.
///
/// Read from RFC 3339 date-times (`Z`, `z` or a numeric offset) and from date-times without a
/// zone designator, which Microsoft sends (`2023-01-10T00:00:00`): those are read as UTC, the
/// only sensible reading for a report period. Written as RFC 3339 UTC (`2016-04-01T00:00:00Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub struct DateRange {
    /// `start-datetime`.
    #[serde(with = "lenient::datetime")]
    pub start_datetime: OffsetDateTime,
    /// `end-datetime`.
    #[serde(with = "lenient::datetime")]
    pub end_datetime: OffsetDateTime,
}

impl DateRange {
    /// A period from `start` to `end`, both converted to UTC (kept in their offset when UTC
    /// cannot represent them).
    #[must_use]
    pub fn new(start: OffsetDateTime, end: OffsetDateTime) -> Self {
        let utc = |t: OffsetDateTime| t.checked_to_offset(time::UtcOffset::UTC).unwrap_or(t);
        Self {
            start_datetime: utc(start),
            end_datetime: utc(end),
        }
    }
}

/// One entry of `policies[]`: a policy and the sessions evaluated against it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub struct PolicyReport {
    /// `policy`: which policy.
    pub policy: Policy,
    /// `summary`: the session counts.
    #[serde(default)]
    pub summary: SessionCounts,
    /// `failure-details`: one entry per aggregate of failed sessions. The counts may overlap
    /// (RFC 8460 §4.4), so they need not add up to the summary's failure count.
    #[serde(
        default,
        deserialize_with = "lenient::list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub failure_details: Vec<FailureDetail>,
}

impl PolicyReport {
    /// An entry for `policy` with no sessions counted yet.
    #[must_use]
    pub fn new(policy: Policy) -> Self {
        Self {
            policy,
            summary: SessionCounts::default(),
            failure_details: Vec::new(),
        }
    }
}

/// `policy`: the policy a sending MTA applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub struct Policy {
    /// `policy-type`.
    pub policy_type: PolicyType,
    /// `policy-string`: the MTA-STS policy lines, or TLSA RDATA (`3 1 1 <hex>`), one per
    /// element. Read from an array, from one string (split into lines), and from an array whose
    /// element is itself a JSON array of strings (Microsoft's TLSA entries), flattened.
    #[serde(
        default,
        deserialize_with = "lenient::policy_strings",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub policy_string: Vec<String>,
    /// `policy-domain`: the domain the policy is for (A-labels); some senders leave it out.
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub policy_domain: Option<String>,
    /// `mx-host`: the MX patterns of an MTA-STS policy. Read from an array or a single string
    /// (the RFC's own Appendix B example, erratum 6241).
    #[serde(
        default,
        deserialize_with = "lenient::string_or_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub mx_host: Vec<String>,
}

impl Policy {
    /// A policy of `policy_type` for `policy_domain`, without policy text or MX patterns.
    #[must_use]
    pub fn new(policy_type: PolicyType, policy_domain: impl Into<String>) -> Self {
        Self {
            policy_type,
            policy_string: Vec::new(),
            policy_domain: Some(policy_domain.into()),
            mx_host: Vec::new(),
        }
    }
}

/// `summary`: the sessions that succeeded and failed under one policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub struct SessionCounts {
    /// `total-successful-session-count`.
    #[serde(default, deserialize_with = "lenient::count")]
    pub total_successful_session_count: u64,
    /// `total-failure-session-count` (absent in some Google reports: read as 0).
    #[serde(default, deserialize_with = "lenient::count")]
    pub total_failure_session_count: u64,
}

impl SessionCounts {
    /// Counts of `successes` and `failures`.
    #[must_use]
    pub fn new(successes: u64, failures: u64) -> Self {
        Self {
            total_successful_session_count: successes,
            total_failure_session_count: failures,
        }
    }
}

/// One entry of `failure-details`: failed sessions sharing a result type and endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub struct FailureDetail {
    /// `result-type`.
    pub result_type: ResultType,
    /// `sending-mta-ip`: `""`, `null`, absent or not an IP address read as `None`.
    #[serde(
        default,
        deserialize_with = "lenient::opt_ip",
        skip_serializing_if = "Option::is_none"
    )]
    pub sending_mta_ip: Option<IpAddr>,
    /// `receiving-mx-hostname`.
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub receiving_mx_hostname: Option<String>,
    /// `receiving-mx-helo`.
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub receiving_mx_helo: Option<String>,
    /// `receiving-ip`: as `sending-mta-ip`.
    #[serde(
        default,
        deserialize_with = "lenient::opt_ip",
        skip_serializing_if = "Option::is_none"
    )]
    pub receiving_ip: Option<IpAddr>,
    /// `failed-session-count`.
    #[serde(default, deserialize_with = "lenient::count")]
    pub failed_session_count: u64,
    /// `additional-information`: a URI by the RFC, kept as written (the RFC's own example is not
    /// a valid URI).
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub additional_information: Option<String>,
    /// `failure-reason-code`: free text.
    #[serde(
        default,
        deserialize_with = "lenient::opt_string",
        skip_serializing_if = "Option::is_none"
    )]
    pub failure_reason_code: Option<String>,
}

impl FailureDetail {
    /// `count` failed sessions of `result_type`, endpoints unknown.
    #[must_use]
    pub fn new(result_type: ResultType, count: u64) -> Self {
        Self {
            result_type,
            sending_mta_ip: None,
            receiving_mx_hostname: None,
            receiving_mx_helo: None,
            receiving_ip: None,
            failed_session_count: count,
            additional_information: None,
            failure_reason_code: None,
        }
    }
}
