//! The sending side's report (RFC 8460 §4.4) and its two delivery forms (§5): the gzip body of
//! an HTTPS POST ([`ReportBody`]) and the report message ([`compose_message`]).
//!
//! - One report per policy domain and UTC day ([`compose_reports`]): `date-range` is
//!   `00:00:00Z` to `23:59:59Z` of the day, `report-id` ([`report_id`]) is stable for (policy
//!   domain, day, submitter) — a resent report keeps its id — and unique across them.
//! - The message (§5.3): `multipart/report; report-type="tlsrpt"` with a human-readable
//!   `text/plain` part and the `application/tlsrpt+gzip` part, base64, named
//!   `submitter!policy-domain!begin-timestamp!end-timestamp.json.gz` (§5.1; the optional
//!   unique-id is left out: submitter, domain and day already make it unique). Headers:
//!   `From`, `To`, `Date`, `Subject: Report Domain: D Submitter: S Report-ID: <ID>`,
//!   `Message-ID`, `MIME-Version`, `TLS-Report-Domain`, `TLS-Report-Submitter` and
//!   `TLS-Required: No` (RFC 8689 §5: a report must not wait for TLS). CRLF line ends,
//!   7-bit; not signed (the relay DKIM-signs the bytes).

use std::fmt::Write as _;
use std::io::Write as _;

use data_encoding::BASE64_MIME;
use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc2822;
use time::{Date, OffsetDateTime, Time};

use super::counters::{Aggregate, DayCounters};
use super::report::{DateRange, PolicyReport, Report};
use super::session::normalise_domain;
use crate::error::Error;
use crate::smtp::syntax::{is_dot_atom, is_ldh_domain};

/// The media type of a gzip-compressed report (RFC 8460 §6.4), for the message part and the
/// HTTPS POST.
pub const TLSRPT_GZIP: &str = "application/tlsrpt+gzip";

/// Why a report could not be composed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ComposeErrorKind {
    /// A value for a header is empty, not ASCII, holds a control character (CR, LF: header
    /// injection), or is not of the header's form (one bare addr-spec for `To` and `From`, LDH
    /// labels for the report and submitter domains).
    #[error("unusable value for the {header} header")]
    HeaderValue {
        /// The header.
        header: &'static str,
    },
    /// The report did not serialise or compress.
    #[error("report encoding failed: {detail}")]
    Encoding {
        /// What failed.
        detail: String,
    },
}

impl From<ComposeErrorKind> for Error {
    fn from(kind: ComposeErrorKind) -> Self {
        Self::TlsRptCompose { kind }
    }
}

/// Who sends the reports: the report's `organization-name` and `contact-info`, the submitter
/// (the domain of the reporting system, §5.3 `TLS-Report-Submitter`) and the `From` address.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reporter {
    /// `organization-name`.
    pub organization_name: String,
    /// `contact-info` (an e-mail address).
    pub contact_info: String,
    /// The submitter domain.
    pub submitter: String,
    /// The `From` address of report messages (bare `local@domain`).
    pub from: String,
}

impl Reporter {
    /// A reporter; the submitter is normalised (lower case, no trailing dot).
    #[must_use]
    pub fn new(
        organization_name: impl Into<String>,
        contact_info: impl Into<String>,
        submitter: &str,
        from: impl Into<String>,
    ) -> Self {
        Self {
            organization_name: organization_name.into(),
            contact_info: contact_info.into(),
            submitter: normalise_domain(submitter),
            from: from.into(),
        }
    }
}

/// The `report-id` of the report for `policy_domain` on `day` by `submitter`:
/// `YYYYMMDD.<16 hex digits>@submitter` (the digits from SHA-256 of the three), usable as the
/// Subject's `<Report-ID>` and as a Message-ID.
#[must_use]
pub fn report_id(policy_domain: &str, day: Date, submitter: &str) -> String {
    let (domain, submitter) = (normalise_domain(policy_domain), normalise_domain(submitter));
    let ymd = format!(
        "{:04}{:02}{:02}",
        day.year(),
        u8::from(day.month()),
        day.day()
    );
    let digest = Sha256::digest(format!("{domain}\n{ymd}\n{submitter}").as_bytes());
    let mut id = ymd;
    id.push('.');
    for byte in digest.iter().take(8) {
        let _ = write!(id, "{byte:02x}");
    }
    id.push('@');
    id.push_str(&submitter);
    id
}

/// The report period of `day`: `00:00:00Z` to `23:59:59Z`.
#[must_use]
pub fn day_range(day: Date) -> DateRange {
    let start = day.with_time(Time::MIDNIGHT).assume_utc();
    let end = day
        .with_hms(23, 59, 59)
        .unwrap_or_else(|_| day.with_time(Time::MIDNIGHT))
        .assume_utc();
    DateRange::new(start, end)
}

/// The reports of `day`, one per policy domain, from the day's buckets (any order; entries
/// of one domain are ordered by policy). Buckets without sessions are left out.
#[must_use]
pub fn compose_reports(
    reporter: &Reporter,
    day: Date,
    counters: impl IntoIterator<Item = DayCounters>,
) -> Vec<Report> {
    let mut by_domain: std::collections::BTreeMap<String, Vec<PolicyReport>> =
        std::collections::BTreeMap::new();
    for bucket in counters {
        let entry = bucket.policy_report;
        let counts = entry.summary;
        if counts.total_successful_session_count == 0 && counts.total_failure_session_count == 0 {
            continue;
        }
        let domain = normalise_domain(entry.policy.policy_domain.as_deref().unwrap_or_default());
        by_domain.entry(domain).or_default().push(entry);
    }
    by_domain
        .into_iter()
        .map(|(domain, mut policies)| {
            policies.sort_by(|a, b| {
                (a.policy.policy_type.as_str(), &a.policy.policy_string)
                    .cmp(&(b.policy.policy_type.as_str(), &b.policy.policy_string))
            });
            let mut report = Report::new(
                reporter.organization_name.clone(),
                day_range(day),
                reporter.contact_info.clone(),
                report_id(&domain, day, &reporter.submitter),
            );
            report.policies = policies;
            report
        })
        .collect()
}

impl Aggregate {
    /// The reports of `day` from these counters ([`compose_reports`]).
    #[must_use]
    pub fn reports(&self, reporter: &Reporter, day: Date) -> Vec<Report> {
        compose_reports(reporter, day, self.day(day))
    }
}

/// A report ready to send: its gzip-compressed JSON, the body of an HTTPS POST with content
/// type [`TLSRPT_GZIP`] (§5.4) and the content of the message part.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReportBody {
    /// The gzip-compressed RFC 8460 §4.4 JSON.
    pub gzip: Vec<u8>,
}

impl ReportBody {
    /// The compressed JSON of `report`.
    ///
    /// # Errors
    /// [`Error::TlsRptCompose`] with [`ComposeErrorKind::Encoding`] (not seen in practice).
    pub fn of(report: &Report) -> Result<Self, Error> {
        let json = report.to_json()?;
        let encoding = |e: std::io::Error| ComposeErrorKind::Encoding {
            detail: e.to_string(),
        };
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(json.as_bytes()).map_err(encoding)?;
        Ok(Self {
            gzip: gz.finish().map_err(encoding)?,
        })
    }

    /// The content type of an HTTPS POST of this body.
    #[must_use]
    pub fn content_type(&self) -> &'static str {
        TLSRPT_GZIP
    }
}

/// The report's file name (§5.1): `submitter!policy-domain!begin!end.json.gz`, the
/// timestamps in seconds since the epoch. The policy domain is the first one set in the
/// report's policies.
#[must_use]
pub fn report_filename(report: &Report, submitter: &str) -> String {
    format!(
        "{}!{}!{}!{}.json.gz",
        normalise_domain(submitter),
        report_domain(report),
        report.date_range.start_datetime.unix_timestamp(),
        report.date_range.end_datetime.unix_timestamp()
    )
}

/// The report message for `report` to the `mailto:` address `to`, dated `date` (§5.3):
/// CRLF line ends, 7-bit, unsigned.
///
/// # Errors
/// [`Error::TlsRptCompose`]: [`ComposeErrorKind::HeaderValue`] when `to` or the reporter's
/// `from` is not a single bare addr-spec (`local@domain`), the submitter or the report's
/// policy domain is not a domain of LDH labels (A-labels), or the report id is not
/// `dot-atom@domain`; [`ComposeErrorKind::Encoding`] when compression fails.
pub fn compose_message(
    reporter: &Reporter,
    report: &Report,
    to: &str,
    date: OffsetDateTime,
) -> Result<Vec<u8>, Error> {
    let domain = report_domain(report);
    let submitter = normalise_domain(&reporter.submitter);
    header_value("To", to, is_addr_spec)?;
    header_value("From", &reporter.from, is_addr_spec)?;
    header_value("TLS-Report-Submitter", &submitter, is_ldh_domain)?;
    header_value("TLS-Report-Domain", &domain, is_ldh_domain)?;
    header_value("Report-ID", &report.report_id, |id| {
        id.split_once('@')
            .is_some_and(|(l, d)| is_dot_atom(l) && is_ldh_domain(d))
    })?;
    let date = date
        .checked_to_offset(time::UtcOffset::UTC)
        .unwrap_or(date)
        .format(&Rfc2822)
        .map_err(|e| ComposeErrorKind::Encoding {
            detail: e.to_string(),
        })?;
    let body = ReportBody::of(report)?;
    let filename = report_filename(report, &submitter);
    let boundary = boundary(&report.report_id);
    let text = human_text(reporter, report, &domain);

    let mut m = String::new();
    let mut header = |name: &str, value: &str| {
        m.push_str(name);
        m.push_str(": ");
        m.push_str(value);
        m.push_str("\r\n");
    };
    header("From", &reporter.from);
    header("To", to);
    header("Date", &date);
    header(
        "Subject",
        &fold(&format!(
            "Report Domain: {domain} Submitter: {submitter} Report-ID: <{}>",
            report.report_id
        )),
    );
    header("Message-ID", &format!("<{}>", report.report_id));
    header("MIME-Version", "1.0");
    header("TLS-Report-Domain", &domain);
    header("TLS-Report-Submitter", &submitter);
    header("TLS-Required", "No");
    header(
        "Content-Type",
        &format!("multipart/report; report-type=\"tlsrpt\";\r\n\tboundary=\"{boundary}\""),
    );
    m.push_str("\r\nThis is a multipart message in MIME format.\r\n\r\n");
    let _ = write!(m, "--{boundary}\r\n");
    m.push_str("Content-Type: text/plain; charset=\"utf-8\"\r\n");
    if text.is_ascii() {
        m.push_str("Content-Transfer-Encoding: 7bit\r\n\r\n");
        m.push_str(&text);
    } else {
        m.push_str("Content-Transfer-Encoding: base64\r\n\r\n");
        m.push_str(&BASE64_MIME.encode(text.as_bytes()));
    }
    let _ = write!(m, "\r\n--{boundary}\r\n");
    let _ = write!(
        m,
        "Content-Type: {TLSRPT_GZIP}\r\nContent-Transfer-Encoding: base64\r\n\
         Content-Disposition: attachment;\r\n\tfilename=\"{filename}\"\r\n\r\n"
    );
    m.push_str(&BASE64_MIME.encode(&body.gzip));
    let _ = write!(m, "\r\n--{boundary}--\r\n");
    Ok(m.into_bytes())
}

/// The policy domain a report is for: the first policy domain set in its policies (the
/// grouping key of [`compose_reports`]: a report it writes has one domain), skipping
/// policies without one; empty only when no policy names a domain (then [`compose_message`]
/// refuses the report).
fn report_domain(report: &Report) -> String {
    report
        .policies
        .iter()
        .filter_map(|p| p.policy.policy_domain.as_deref())
        .map(normalise_domain)
        .find(|d| !d.is_empty())
        .unwrap_or_default()
}

/// `value` for `header` when it is printable ASCII, at most 512 octets, and of the header's
/// form (`valid`).
fn header_value(
    header: &'static str,
    value: &str,
    valid: impl Fn(&str) -> bool,
) -> Result<(), Error> {
    let ok = !value.trim().is_empty()
        && value.len() <= 512
        && value.bytes().all(|b| (0x20..0x7f).contains(&b))
        && valid(value);
    if ok {
        Ok(())
    } else {
        Err(ComposeErrorKind::HeaderValue { header }.into())
    }
}

/// A single bare addr-spec `local@domain`: a dot-atom local part (no quoted string, no
/// comment, no display name, no list: no `,`, `;`, `<`, `>`, `"` or white space) and an LDH
/// domain.
fn is_addr_spec(address: &str) -> bool {
    address
        .rsplit_once('@')
        .is_some_and(|(local, domain)| is_dot_atom(local) && is_ldh_domain(domain))
}

/// `text` for the text part: control characters (CR, LF, ...) and other line or paragraph
/// separators become spaces, so that no value starts a line of its own (a MIME boundary),
/// at most 200 characters.
fn text_value(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
                ' '
            } else {
                c
            }
        })
        .take(200)
        .collect()
}

/// A Subject folded before ` Submitter:` and ` Report-ID:` when longer than 78 characters.
fn fold(subject: &str) -> String {
    if subject.len() + "Subject: ".len() <= 78 {
        return subject.to_owned();
    }
    subject
        .replacen(" Submitter: ", "\r\n Submitter: ", 1)
        .replacen(" Report-ID: ", "\r\n Report-ID: ", 1)
}

/// A boundary that cannot occur in base64 (`=_`) nor in the text part (it names no hash).
fn boundary(report_id: &str) -> String {
    let digest = Sha256::digest(report_id.as_bytes());
    let mut b = String::from("=_tlsrpt_");
    for byte in digest.iter().take(12) {
        let _ = write!(b, "{byte:02x}");
    }
    b
}

fn human_text(reporter: &Reporter, report: &Report, domain: &str) -> String {
    let (ok, failed) = report.policies.iter().fold((0u64, 0u64), |(s, f), p| {
        (
            s.saturating_add(p.summary.total_successful_session_count),
            f.saturating_add(p.summary.total_failure_session_count),
        )
    });
    let org = text_value(&reporter.organization_name);
    let contact = text_value(&reporter.contact_info);
    let mut text = String::new();
    let _ = write!(
        text,
        "This is an aggregate TLS report (RFC 8460, SMTP TLS Reporting).\r\n\
         Reporting organization: {org}\r\n\
         Contact: {contact}\r\n\
         Submitter: {}\r\n\
         Policy domain: {domain}\r\n\
         Period: {} to {}\r\n\
         Successful sessions: {ok}\r\n\
         Failed sessions: {failed}\r\n\
         The report is attached as {TLSRPT_GZIP}.\r\n",
        reporter.submitter,
        report.date_range.start_datetime.date(),
        report.date_range.end_datetime.date(),
    );
    text
}
