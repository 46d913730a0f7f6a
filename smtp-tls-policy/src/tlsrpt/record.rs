//! The `_smtp._tls.<domain>` TXT record (RFC 8460 §3), parsed strictly:
//!
//! ```text
//! tlsrpt-record     = tlsrpt-version 1*(field-delim tlsrpt-field) [field-delim]
//! field-delim       = *WSP ";" *WSP
//! tlsrpt-field      = tlsrpt-rua / tlsrpt-extension
//! tlsrpt-version    = %s"v=TLSRPTv1"
//! tlsrpt-rua        = %s"rua=" tlsrpt-uri *(*WSP "," *WSP tlsrpt-uri)
//! tlsrpt-uri        = URI                       ; "mailto:" (RFC 6068) or "https:"
//! tlsrpt-extension  = tlsrpt-ext-name "=" tlsrpt-ext-value
//! tlsrpt-ext-name   = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")
//! tlsrpt-ext-value  = 1*(%x21-3A / %x3C / %x3E-7E)
//! ```
//!
//! A record that breaks this grammar, has no `rua`, or has two, is refused. Each `rua` URI is
//! then judged on its own: a bad one (`rua=postmaster@example.com` without `mailto:`, an
//! `http:` URI, a malformed address) is skipped with a [`SkippedRua`] note, never failing the
//! record while another URI is usable. Unknown extension fields are ignored (§3).

use std::fmt;

use crate::Error;

/// The longest record text accepted (all TXT strings of the record concatenated).
pub const MAX_RECORD_LEN: usize = 4096;

/// The most `rua` URIs kept from one record; further ones are skipped
/// ([`RuaProblem::OverLimit`]).
pub const MAX_RUA: usize = 16;

const VERSION: &str = "v=TLSRPTv1";

/// A destination for aggregate reports, from `rua=`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReportUri {
    /// `mailto:`: send the report by e-mail (RFC 8460 §5.3).
    Mailto {
        /// The URI as written.
        uri: String,
        /// The recipient address, percent-decoded.
        address: String,
    },
    /// `https:`: POST the report (RFC 8460 §5.4).
    Https {
        /// The URI as written.
        uri: String,
    },
}

impl ReportUri {
    /// The URI as written in the record.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::Mailto { uri, .. } | Self::Https { uri } => uri,
        }
    }
}

impl fmt::Display for ReportUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a `rua` URI was skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RuaProblem {
    /// An empty element of the list (`rua=mailto:a@example.com,`).
    #[error("empty URI")]
    Empty,
    /// No URI scheme, e.g. a bare address `postmaster@example.com` without `mailto:`.
    #[error("no URI scheme (a bare address needs `mailto:`)")]
    MissingScheme,
    /// A scheme other than `mailto:` and `https:` (RFC 8460 §3 allows only these two).
    #[error("unsupported scheme `{scheme}` (only mailto: and https:)")]
    UnsupportedScheme {
        /// The scheme, lower case.
        scheme: String,
    },
    /// A character no URI may hold (space, control, non-ASCII) or a bad `%` escape.
    #[error("invalid character or escape in the URI")]
    InvalidCharacter,
    /// A `mailto:` URI whose address is not `local@domain.name`.
    #[error("mailto: address is not local-part@domain")]
    InvalidMailto,
    /// An `https:` URI without a usable host (`https://host[:port]/...`).
    #[error("https: URI has no valid host")]
    InvalidHttps,
    /// More than [`MAX_RUA`] URIs: the rest are skipped.
    #[error("more than {limit} rua URIs")]
    OverLimit {
        /// The limit.
        limit: usize,
    },
}

/// A `rua` URI that was skipped, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SkippedRua {
    /// The URI as written (truncated to 80 characters).
    pub uri: String,
    /// Why it was skipped.
    pub problem: RuaProblem,
}

/// Why a TXT record is not a usable TLS-RPT record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordErrorKind {
    /// The record is longer than [`MAX_RECORD_LEN`].
    #[error("record longer than {limit} bytes")]
    TooLong {
        /// The limit in bytes.
        limit: usize,
    },
    /// The record does not start with `v=TLSRPTv1`.
    #[error("record does not start with v=TLSRPTv1")]
    NotTlsRptV1,
    /// A field breaks the grammar (empty field, bad name, bad value).
    #[error("malformed field `{field}`")]
    MalformedField {
        /// The field as written (truncated to 80 characters).
        field: String,
    },
    /// No `rua=` field.
    #[error("no rua= field")]
    MissingRua,
    /// Two `rua=` fields.
    #[error("more than one rua= field")]
    DuplicateRua,
    /// Every `rua` URI was skipped: nowhere to send reports.
    #[error("no usable rua URI ({} skipped)", skipped.len())]
    NoUsableRua {
        /// The URIs skipped, and why.
        skipped: Vec<SkippedRua>,
    },
}

impl From<RecordErrorKind> for Error {
    fn from(kind: RecordErrorKind) -> Self {
        Self::TlsRptRecord { kind }
    }
}

/// A valid `_smtp._tls` record: where to send reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsRptRecord {
    /// The usable `rua` URIs, in record order (never empty).
    pub rua: Vec<ReportUri>,
    /// The `rua` URIs skipped, with the reason: to be logged by the caller.
    pub skipped: Vec<SkippedRua>,
}

impl TlsRptRecord {
    /// Parses one record's text (its TXT strings concatenated).
    ///
    /// ```
    /// use smtp_tls_policy::tlsrpt::{ReportUri, RuaProblem, TlsRptRecord};
    /// let r = TlsRptRecord::parse("v=TLSRPTv1; rua=postmaster@example.com,https://r.example/tls")?;
    /// assert!(matches!(&r.rua[..], [ReportUri::Https { .. }]));
    /// assert_eq!(r.skipped[0].problem, RuaProblem::MissingScheme);
    /// # Ok::<(), smtp_tls_policy::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::TlsRptRecord`] with the [`RecordErrorKind`].
    pub fn parse(text: &str) -> Result<Self, Error> {
        if text.len() > MAX_RECORD_LEN {
            return Err(RecordErrorKind::TooLong {
                limit: MAX_RECORD_LEN,
            }
            .into());
        }
        let text = text.trim_end_matches(is_wsp);
        let mut fields = text.split(';');
        if fields.next().map(|v| v.trim_end_matches(is_wsp)) != Some(VERSION) {
            return Err(RecordErrorKind::NotTlsRptV1.into());
        }
        let fields: Vec<&str> = fields.map(|f| f.trim_matches(is_wsp)).collect();
        let mut rua = None;
        for (i, field) in fields.iter().enumerate() {
            if field.is_empty() && i + 1 == fields.len() {
                continue; // the optional trailing field-delim
            }
            let malformed = || RecordErrorKind::MalformedField {
                field: truncate(field),
            };
            let (name, value) = field.split_once('=').ok_or_else(malformed)?;
            if name == "rua" {
                if rua.is_some() {
                    return Err(RecordErrorKind::DuplicateRua.into());
                }
                rua = Some(value);
            } else if !is_ext_name(name) || !is_ext_value(value) {
                return Err(malformed().into());
            }
        }
        let rua = rua.ok_or(RecordErrorKind::MissingRua)?;
        let mut record = Self {
            rua: Vec::new(),
            skipped: Vec::new(),
        };
        for uri in rua.split(',').map(|u| u.trim_matches(is_wsp)) {
            let judged = if record.rua.len() >= MAX_RUA {
                Err(RuaProblem::OverLimit { limit: MAX_RUA })
            } else {
                parse_uri(uri)
            };
            match judged {
                Ok(uri) => record.rua.push(uri),
                Err(problem) => record.skipped.push(SkippedRua {
                    uri: truncate(uri),
                    problem,
                }),
            }
        }
        if record.rua.is_empty() {
            return Err(RecordErrorKind::NoUsableRua {
                skipped: record.skipped,
            }
            .into());
        }
        Ok(record)
    }

    /// Picks the domain's record from all TXT records at `_smtp._tls.<domain>` (RFC 8460 §3):
    /// records not starting with `v=TLSRPTv1` are discarded; if not exactly one remains, the
    /// domain is taken not to implement TLS-RPT.
    ///
    /// # Errors
    /// [`Error::TlsRptRecord`] when the one remaining record is invalid.
    pub fn discover<I, S>(txt_records: I) -> Result<RecordDiscovery, Error>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut found: Option<String> = None;
        let mut count = 0usize;
        for txt in txt_records {
            let txt = txt.as_ref();
            let rest = txt.strip_prefix(VERSION);
            if rest.is_some_and(|r| r.is_empty() || r.starts_with([';', ' ', '\t'])) {
                count = count.saturating_add(1);
                if found.is_none() {
                    found = Some(txt.to_owned());
                }
            }
        }
        match (count, found) {
            (1, Some(text)) => Ok(RecordDiscovery::Found(Self::parse(&text)?)),
            (0, _) | (_, None) => Ok(RecordDiscovery::NotPublished),
            (count, Some(_)) => Ok(RecordDiscovery::Multiple { count }),
        }
    }
}

impl std::str::FromStr for TlsRptRecord {
    type Err = Error;
    fn from_str(text: &str) -> Result<Self, Error> {
        Self::parse(text)
    }
}

/// What the TXT records at `_smtp._tls.<domain>` say.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
#[non_exhaustive]
pub enum RecordDiscovery {
    /// No `v=TLSRPTv1` record: the domain does not ask for reports.
    NotPublished,
    /// More than one `v=TLSRPTv1` record: treated as none (RFC 8460 §3).
    Multiple {
        /// How many there were.
        count: usize,
    },
    /// Exactly one valid record.
    Found(TlsRptRecord),
}

impl RecordDiscovery {
    /// The record to send reports by, if any.
    #[must_use]
    pub fn record(&self) -> Option<&TlsRptRecord> {
        match self {
            Self::Found(record) => Some(record),
            Self::NotPublished | Self::Multiple { .. } => None,
        }
    }
}

fn is_wsp(c: char) -> bool {
    c == ' ' || c == '\t'
}

fn is_ext_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.len() <= 32
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

fn is_ext_value(value: &str) -> bool {
    !value.is_empty()
        && value
            .bytes()
            .all(|b| matches!(b, 0x21..=0x3A | 0x3C | 0x3E..=0x7E))
}

fn truncate(text: &str) -> String {
    text.chars().take(80).collect()
}

/// Judges one `rua` URI.
fn parse_uri(uri: &str) -> Result<ReportUri, RuaProblem> {
    if uri.is_empty() {
        return Err(RuaProblem::Empty);
    }
    let Some((scheme, rest)) = uri.split_once(':') else {
        return Err(RuaProblem::MissingScheme);
    };
    let scheme_ok = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok {
        return Err(RuaProblem::MissingScheme);
    }
    if !uri.bytes().all(|b| (0x21..=0x7E).contains(&b)) {
        return Err(RuaProblem::InvalidCharacter);
    }
    match scheme.to_ascii_lowercase().as_str() {
        "mailto" => {
            let encoded = rest.split('?').next().unwrap_or_default();
            let address = percent_decode(encoded).ok_or(RuaProblem::InvalidCharacter)?;
            if !is_mail_address(&address) {
                return Err(RuaProblem::InvalidMailto);
            }
            Ok(ReportUri::Mailto {
                uri: uri.to_owned(),
                address,
            })
        }
        "https" => {
            if percent_decode(rest).is_none() {
                return Err(RuaProblem::InvalidCharacter);
            }
            let authority = rest
                .strip_prefix("//")
                .and_then(|r| r.split(['/', '?', '#']).next())
                .ok_or(RuaProblem::InvalidHttps)?;
            if !is_authority(authority) {
                return Err(RuaProblem::InvalidHttps);
            }
            Ok(ReportUri::Https {
                uri: uri.to_owned(),
            })
        }
        other => Err(RuaProblem::UnsupportedScheme {
            scheme: truncate(other),
        }),
    }
}

/// `%HH` escapes decoded; `None` on a bad escape or a result that is not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            // two hex digits, checked first: `from_str_radix` alone would take "+f"
            let hex = bytes.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `local@domain` with a dot-atom local part and a host name of at least two labels.
fn is_mail_address(address: &str) -> bool {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
    local_ok && is_host_name(domain)
}

/// `host[:port]` of an https URI: a host name, an IPv4 address or a bracketed IPv6 address.
fn is_authority(authority: &str) -> bool {
    if authority.contains('@') {
        return false; // no user information in a report endpoint
    }
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        match after {
            "" => (None, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (None, Some(port)),
                None => return false,
            },
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(authority), None),
        }
    };
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
    let host_ok = host.is_none_or(|h| h.parse::<std::net::Ipv4Addr>().is_ok() || is_host_name(h));
    port_ok && host_ok && !authority.is_empty()
}

/// A host name of a report endpoint: an FQDN ([`dane_verify::is_fqdn`]: LDH labels, at least
/// two, not numeric at the end, an optional trailing dot) that is not a wildcard.
fn is_host_name(name: &str) -> bool {
    !name.contains('*') && dane_verify::is_fqdn(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(rua URI, kept)`: report endpoint hosts are FQDNs (`dane_verify::is_fqdn`), never
    /// wildcards; IP literals stay allowed for https.
    #[test]
    fn endpoint_hosts_are_fqdns() {
        for (uri, kept) in [
            ("mailto:tlsrpt@example.com", true),
            ("mailto:tlsrpt@example.com.", true),
            ("mailto:tlsrpt@example", false),
            ("mailto:tlsrpt@example.123", false),
            ("mailto:tlsrpt@*.example.com", false),
            ("mailto:tlsrpt@-bad.example.com", false),
            ("https://reports.example.com/r", true),
            ("https://reports.example.com:8443/r", true),
            ("https://192.0.2.1/r", true),
            ("https://[2001:db8::1]/r", true),
            ("https://localhost/r", false),
            ("https://*.example.com/r", false),
            ("https://1.2.3.999/r", false),
        ] {
            let record = TlsRptRecord::parse(&format!("v=TLSRPTv1; rua={uri}"));
            assert_eq!(record.is_ok(), kept, "{uri}: {record:?}");
        }
    }
}
