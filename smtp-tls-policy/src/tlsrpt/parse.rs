//! The tolerant reader of received reports: JSON, gzip, or a whole report message, detected from
//! the bytes (RFC 8460 §5; the corpus README's "Reading them"), with a size bound on every path.
//!
//! - gzip starts with `1f 8b`; JSON with `{` after optional whitespace (and a UTF-8 BOM);
//!   anything else is read as an RFC 5322 message.
//! - In a message, the report is the first part whose media type is `application/tlsrpt+gzip`,
//!   `application/tlsrpt+json` or `application/tlsrpt`, or whose file name ends in `.json`,
//!   `.json.gz` or `.gz`. Its transfer encoding is undone, and it is gunzipped when the decoded
//!   bytes start with `1f 8b`: neither the media type nor the file name is a reliable indicator.
//! - Input and decompressed JSON are each bounded by the reader's size limit
//!   ([`MAX_REPORT_SIZE`] by default): a gzip bomb stops at the limit with
//!   [`ReportErrorKind::TooLarge`].

use std::io::Read;

use flate2::read::MultiGzDecoder;
use mail_parser::{MessageParser, MimeHeaders};

use super::report::Report;
use crate::Error;

/// The default bound on a report's input bytes and on its decompressed JSON: 16 MiB. Real reports
/// are kilobytes; big senders' daily reports stay far below a megabyte.
pub const MAX_REPORT_SIZE: usize = 16 * 1024 * 1024;

/// The gzip magic number (RFC 1952 §2.3.1).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// How a report arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Container {
    /// Bare JSON (`application/tlsrpt+json`, an HTTPS POST body).
    Json,
    /// Bare gzip (`application/tlsrpt+gzip`).
    Gzip,
    /// An e-mail message carrying the report as a part (or as its whole body).
    Message,
}

impl Container {
    /// Which container `bytes` are, from their first bytes.
    #[must_use]
    pub fn detect(bytes: &[u8]) -> Self {
        if bytes.starts_with(&GZIP_MAGIC) {
            Self::Gzip
        } else if skip_whitespace(bytes).first() == Some(&b'{') {
            Self::Json
        } else {
            Self::Message
        }
    }
}

/// Why a report could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReportErrorKind {
    /// The input, or the JSON it decompresses to, is larger than the limit.
    #[error("larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The input is empty.
    #[error("empty input")]
    Empty,
    /// The gzip stream is corrupt or truncated.
    #[error("gzip stream unreadable: {detail}")]
    Gzip {
        /// The decompressor's description.
        detail: String,
    },
    /// The input is neither JSON nor gzip, and no message headers could be read from it.
    #[error("neither JSON, gzip nor an e-mail message")]
    NotAMessage,
    /// The message carries no part with a TLS report.
    #[error("the message has no application/tlsrpt part")]
    NoReportPart,
    /// The report part of a message is neither JSON nor gzip.
    #[error("the report part is neither JSON nor gzip")]
    PartNotJson,
    /// The JSON is malformed, or is not a report (a required field missing or of a wrong type).
    #[error("JSON at line {line}, column {column}: {detail}")]
    Json {
        /// 1-based line of the problem (0 when not known).
        line: usize,
        /// 1-based column of the problem (0 when not known).
        column: usize,
        /// serde_json's description.
        detail: String,
    },
}

impl ReportErrorKind {
    pub(super) fn json(err: &serde_json::Error) -> Self {
        Self::Json {
            line: err.line(),
            column: err.column(),
            detail: err.to_string(),
        }
    }
}

impl From<ReportErrorKind> for Error {
    fn from(kind: ReportErrorKind) -> Self {
        Self::TlsRptReport { kind }
    }
}

/// Reads reports with a size limit.
///
/// ```
/// use smtp_tls_policy::tlsrpt::ReportReader;
/// let reader = ReportReader::new().with_size_limit(64 * 1024);
/// assert!(reader.read(b"not a report").is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportReader {
    limit: usize,
}

impl Default for ReportReader {
    fn default() -> Self {
        Self::new()
    }
}

impl ReportReader {
    /// A reader with the default limit, [`MAX_REPORT_SIZE`].
    #[must_use]
    pub fn new() -> Self {
        Self {
            limit: MAX_REPORT_SIZE,
        }
    }

    /// The same reader with another bound on input and decompressed bytes.
    #[must_use]
    pub fn with_size_limit(self, limit: usize) -> Self {
        Self { limit }
    }

    /// Reads one report from JSON, gzip or message bytes.
    ///
    /// # Errors
    /// [`Error::TlsRptReport`] with the [`ReportErrorKind`] of the first problem.
    pub fn read(&self, bytes: &[u8]) -> Result<Report, Error> {
        if bytes.len() > self.limit {
            return Err(ReportErrorKind::TooLarge { limit: self.limit }.into());
        }
        if skip_whitespace(bytes).is_empty() {
            return Err(ReportErrorKind::Empty.into());
        }
        match Container::detect(bytes) {
            Container::Json => parse_json(bytes),
            Container::Gzip => parse_json(&self.gunzip(bytes)?),
            Container::Message => self.read_message(bytes),
        }
    }

    /// The JSON of the report part of a message.
    fn read_message(&self, bytes: &[u8]) -> Result<Report, Error> {
        let message = MessageParser::new()
            .parse(bytes)
            .ok_or(ReportErrorKind::NotAMessage)?;
        if message.parts.first().is_none_or(|p| p.headers.is_empty()) {
            return Err(ReportErrorKind::NotAMessage.into());
        }
        let part = message
            .parts
            .iter()
            .find(|part| is_report_part(part))
            .ok_or(ReportErrorKind::NoReportPart)?;
        let body = part.contents();
        match Container::detect(body) {
            Container::Gzip => parse_json(&self.gunzip(body)?),
            Container::Json => parse_json(body),
            Container::Message => Err(ReportErrorKind::PartNotJson.into()),
        }
    }

    /// Decompresses `bytes`, stopping past the limit.
    fn gunzip(&self, bytes: &[u8]) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        let cap = u64::try_from(self.limit)
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        MultiGzDecoder::new(bytes)
            .take(cap)
            .read_to_end(&mut out)
            .map_err(|e| ReportErrorKind::Gzip {
                detail: e.to_string(),
            })?;
        if out.len() > self.limit {
            return Err(ReportErrorKind::TooLarge { limit: self.limit }.into());
        }
        Ok(out)
    }
}

/// Reads one report from JSON, gzip or message bytes with the default limit
/// ([`ReportReader::new`]).
///
/// # Errors
/// [`Error::TlsRptReport`] with the [`ReportErrorKind`] of the first problem.
pub fn read_report(bytes: &[u8]) -> Result<Report, Error> {
    ReportReader::new().read(bytes)
}

fn parse_json(bytes: &[u8]) -> Result<Report, Error> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    serde_json::from_slice(bytes).map_err(|e| ReportErrorKind::json(&e).into())
}

/// Whether a message part carries the report: by media type, else by file name.
fn is_report_part(part: &mail_parser::MessagePart<'_>) -> bool {
    let by_type = part.content_type().is_some_and(|ct| {
        ct.ctype().eq_ignore_ascii_case("application")
            && ct.subtype().is_some_and(|sub| {
                ["tlsrpt+gzip", "tlsrpt+json", "tlsrpt"]
                    .iter()
                    .any(|t| sub.eq_ignore_ascii_case(t))
            })
    });
    let by_name = part.attachment_name().is_some_and(|name| {
        let name = name.trim().to_ascii_lowercase();
        name.ends_with(".json") || name.ends_with(".json.gz") || name.ends_with(".gz")
    });
    by_type || (by_name && part.sub_parts().is_none())
}

fn skip_whitespace(bytes: &[u8]) -> &[u8] {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    bytes.get(start..).unwrap_or_default()
}
