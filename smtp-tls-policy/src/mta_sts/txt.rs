//! The `_mta-sts.DOMAIN` TXT record (RFC 8461 §3.1): which record of an answer counts, and its
//! `id`.
//!
//! Rules, each from RFC 8461 §3.1:
//! * A record is the concatenation of its character-strings (RFC 7208-style joining, no
//!   separator).
//! * Records that do not begin with `v=STSv1` are discarded; if the number of remaining records
//!   is not exactly one, or the remaining record is invalid, the domain has no available policy.
//! * Fields are separated by `;` with optional surrounding whitespace (`*WSP ";" *WSP`); one
//!   trailing `;` is allowed.
//! * `id` is required: 1 to 32 letters and digits. Other fields (extensions) are ignored; the
//!   first `id` wins when several are given.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Most TXT records of one answer considered (bounded work); more make the answer invalid.
pub const MAX_TXT_RECORDS: usize = 64;
/// Longest joined record considered, in octets (bounded work).
pub const MAX_TXT_RECORD_LEN: usize = 4096;
/// Longest policy id (RFC 8461 §3.1: `1*32(ALPHA / DIGIT)`).
pub const MAX_ID_LEN: usize = 32;

/// The policy id of a TXT record: 1 to 32 ASCII letters and digits, compared exactly.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StsId(String);

impl StsId {
    /// Parses an id (`1*32(ALPHA / DIGIT)`).
    pub fn parse(id: &str) -> Result<Self, TxtInvalid> {
        if id.is_empty() {
            return Err(TxtInvalid::EmptyId);
        }
        if id.len() > MAX_ID_LEN {
            return Err(TxtInvalid::IdTooLong { len: id.len() });
        }
        if !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(TxtInvalid::IdSyntax);
        }
        Ok(Self(id.to_owned()))
    }

    /// The id text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StsId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for StsId {
    type Error = TxtInvalid;
    fn try_from(s: String) -> Result<Self, TxtInvalid> {
        Self::parse(&s)
    }
}

impl From<StsId> for String {
    fn from(id: StsId) -> Self {
        id.0
    }
}

/// A valid `v=STSv1` TXT record.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StsTxtRecord {
    /// The policy id.
    pub id: StsId,
}

/// Why the one `v=STSv1` record is invalid.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "reason", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum TxtInvalid {
    /// The record is not `v=STSv1` followed by `;` or its end.
    #[error("the record does not start with the field `v=STSv1`")]
    NoVersion,
    /// No `id` field.
    #[error("the record has no `id` field")]
    MissingId,
    /// `id=` with no value.
    #[error("the `id` field is empty")]
    EmptyId,
    /// `id` longer than [`MAX_ID_LEN`].
    #[error("the `id` is {len} characters long (at most {MAX_ID_LEN})")]
    IdTooLong {
        /// Its length.
        len: usize,
    },
    /// `id` with a character other than letters and digits.
    #[error("the `id` has characters other than letters and digits")]
    IdSyntax,
    /// A field that is not `name=value` (an empty field other than the trailing one included).
    #[error("field #{index} is not `name=value`")]
    MalformedField {
        /// 0-based index of the field after `v=STSv1`.
        index: usize,
    },
    /// The record is not UTF-8 text.
    #[error("the record is not text")]
    NotText,
    /// The record is longer than [`MAX_TXT_RECORD_LEN`].
    #[error("the record is longer than {MAX_TXT_RECORD_LEN} octets")]
    TooLong,
}

/// Which policy, if any, an `_mta-sts` TXT answer announces.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum TxtOutcome {
    /// Exactly one valid `v=STSv1` record.
    Record(StsTxtRecord),
    /// No record starts with `v=STSv1` (or the answer is empty): no policy.
    NoRecord,
    /// Several records start with `v=STSv1`: no policy (RFC 8461 §3.1).
    SeveralRecords {
        /// How many.
        count: usize,
    },
    /// The one `v=STSv1` record is invalid: no policy.
    Invalid {
        /// Why.
        reason: TxtInvalid,
    },
    /// More than [`MAX_TXT_RECORDS`] records: not examined, no policy.
    TooManyRecords {
        /// How many.
        count: usize,
    },
}

impl TxtOutcome {
    /// The announced id when there is exactly one valid record.
    #[must_use]
    pub fn id(&self) -> Option<&StsId> {
        match self {
            Self::Record(r) => Some(&r.id),
            _ => None,
        }
    }
}

/// Selects the `_mta-sts` record from a TXT answer, each record given as its character-strings
/// (joined here), and parses it.
///
/// ```
/// use smtp_tls_policy::mta_sts::{TxtOutcome, select_txt_record};
/// let answer = [vec!["v=STSv1; id=2016", "0920T010101"], vec!["v=spf1 -all"]];
/// let outcome = select_txt_record(&answer);
/// assert_eq!(outcome.id().map(|id| id.as_str()), Some("20160920T010101"));
/// assert_eq!(select_txt_record(&[vec!["v=spf1 -all"]]), TxtOutcome::NoRecord);
/// ```
pub fn select_txt_record<R, S>(records: &[R]) -> TxtOutcome
where
    R: AsRef<[S]>,
    S: AsRef<[u8]>,
{
    if records.len() > MAX_TXT_RECORDS {
        return TxtOutcome::TooManyRecords {
            count: records.len(),
        };
    }
    let mut candidates = Vec::new();
    for record in records {
        let mut joined = Vec::new();
        let mut too_long = false;
        for part in record.as_ref() {
            joined.extend_from_slice(part.as_ref());
            if joined.len() > MAX_TXT_RECORD_LEN {
                too_long = true;
                break;
            }
        }
        if starts_with_version(&joined) {
            candidates.push((joined, too_long));
        }
    }
    match candidates.as_slice() {
        [] => TxtOutcome::NoRecord,
        [(_, true)] => TxtOutcome::Invalid {
            reason: TxtInvalid::TooLong,
        },
        [(text, false)] => match std::str::from_utf8(text) {
            Ok(text) => match parse_txt_record(text) {
                Ok(record) => TxtOutcome::Record(record),
                Err(reason) => TxtOutcome::Invalid { reason },
            },
            Err(_) => TxtOutcome::Invalid {
                reason: TxtInvalid::NotText,
            },
        },
        several => TxtOutcome::SeveralRecords {
            count: several.len(),
        },
    }
}

/// `true` when the record is a candidate: `v=STSv1` then its end, `;` or whitespace.
fn starts_with_version(record: &[u8]) -> bool {
    record
        .strip_prefix(b"v=STSv1")
        .is_some_and(|rest| matches!(rest.first(), None | Some(b';' | b' ' | b'\t')))
}

/// Parses one joined record (RFC 8461 §3.1 grammar, extensions ignored).
pub fn parse_txt_record(text: &str) -> Result<StsTxtRecord, TxtInvalid> {
    if text.len() > MAX_TXT_RECORD_LEN {
        return Err(TxtInvalid::TooLong);
    }
    let mut fields = text.split(';').map(|f| f.trim_matches([' ', '\t']));
    if fields.next() != Some("v=STSv1") {
        return Err(TxtInvalid::NoVersion);
    }
    let rest: Vec<&str> = fields.collect();
    let mut id = None;
    for (index, field) in rest.iter().enumerate() {
        if field.is_empty() && index + 1 == rest.len() {
            break; // the one trailing `;`
        }
        let Some((name, value)) = field.split_once('=') else {
            return Err(TxtInvalid::MalformedField { index });
        };
        if name.is_empty() || name.contains([' ', '\t']) {
            return Err(TxtInvalid::MalformedField { index });
        }
        if name == "id" && id.is_none() {
            id = Some(StsId::parse(value)?);
        }
    }
    id.map(|id| StsTxtRecord { id })
        .ok_or(TxtInvalid::MissingId)
}
