//! The reading tolerances of the report model: serde helpers for the shapes senders really write
//! (see `../shared/corpora/tlsrpt/README.md`): `null` for strings and lists, single strings for
//! lists, `""` and junk for IP addresses, date-times without a zone.

use std::net::IpAddr;

use serde::{Deserialize, Deserializer};

/// A string or `null` (read as `""`).
pub(super) fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

/// A string or `null` (read as `None`).
pub(super) fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<String>::deserialize(d)
}

/// A list or `null` (read as empty).
pub(super) fn list<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// An unsigned count: a JSON integer, a string of digits, or `null` (read as 0).
pub(super) fn count<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Count {
        Number(u64),
        Text(String),
    }
    match Option::<Count>::deserialize(d)? {
        None => Ok(0),
        Some(Count::Number(n)) => Ok(n),
        Some(Count::Text(text)) => text.trim().parse().map_err(|_| {
            serde::de::Error::custom(format_args!("session count {text:?} is not a number"))
        }),
    }
}

/// One string or a list of strings (`null` elements dropped).
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<Option<String>>),
}

/// `mx-host`: a list, a single string (RFC 8460 Appendix B) or `null`.
pub(super) fn string_or_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(match Option::<OneOrMany>::deserialize(d)? {
        None => Vec::new(),
        Some(OneOrMany::One(one)) if one.trim().is_empty() => Vec::new(),
        Some(OneOrMany::One(one)) => vec![one],
        Some(OneOrMany::Many(many)) => many.into_iter().flatten().collect(),
    })
}

/// `policy-string`: a list of lines; one string holding every line; or a list whose element is
/// itself the JSON text of a list of strings (Microsoft's TLSA entries), flattened.
pub(super) fn policy_strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(match Option::<OneOrMany>::deserialize(d)? {
        None => Vec::new(),
        Some(OneOrMany::One(text)) => {
            let mut lines = Vec::new();
            for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
                push_line(&mut lines, line.to_owned());
            }
            lines
        }
        Some(OneOrMany::Many(items)) => {
            let mut lines = Vec::with_capacity(items.len());
            for item in items.into_iter().flatten() {
                push_line(&mut lines, item);
            }
            lines
        }
    })
}

/// Adds `item`, or the strings of the JSON list it holds.
fn push_line(lines: &mut Vec<String>, item: String) {
    match nested_list(&item) {
        Some(nested) => lines.extend(nested),
        None => lines.push(item),
    }
}

/// The strings of `item` when it is the JSON text of a list of strings, none of which looks
/// like a list itself (one level only: what is read then writes and reads back the same).
fn nested_list(item: &str) -> Option<Vec<String>> {
    if !looks_like_list(item) {
        return None;
    }
    let nested: Vec<String> = serde_json::from_str(item).ok()?;
    (!nested.iter().any(|s| looks_like_list(s))).then_some(nested)
}

fn looks_like_list(item: &str) -> bool {
    item.trim_start().starts_with('[')
}

/// An IP address; `null`, `""` and text that is no IP address read as `None` (a report is not
/// refused over an endpoint it could not name).
pub(super) fn opt_ip<'de, D: Deserializer<'de>>(d: D) -> Result<Option<IpAddr>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.and_then(|text| text.trim().parse().ok()))
}

/// `start-datetime` / `end-datetime`: RFC 3339 (any case, any offset, converted to UTC) or a
/// date-time without a zone designator, read as UTC; written as RFC 3339 UTC.
pub(super) mod datetime {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::format_description::well_known::Rfc3339;
    use time::macros::format_description;
    use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

    pub(crate) fn serialize<S: Serializer>(
        value: &OffsetDateTime,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let text = value
            .checked_to_offset(UtcOffset::UTC)
            .ok_or_else(|| serde::ser::Error::custom("date-time out of range in UTC"))?
            .format(&Rfc3339)
            .map_err(serde::ser::Error::custom)?;
        serializer.serialize_str(&text)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<OffsetDateTime, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format_args!("date-time {text:?} is not RFC 3339"))
        })
    }

    /// The instant `text` names, in UTC, within the years 0000 to 9999 (which RFC 3339 can
    /// write).
    pub(crate) fn parse(text: &str) -> Option<OffsetDateTime> {
        let text = text.trim().to_ascii_uppercase();
        let zoneless = format_description!(
            "[year repr:full sign:automatic]-[month]-[day]T[hour]:[minute]:[second]\
             [optional [.[subsecond]]]"
        );
        let utc = match OffsetDateTime::parse(&text, &Rfc3339) {
            Ok(dt) => dt.checked_to_offset(UtcOffset::UTC)?,
            Err(_) => PrimitiveDateTime::parse(&text, zoneless).ok()?.assume_utc(),
        };
        (0..=9999).contains(&utc.year()).then_some(utc)
    }

    #[cfg(test)]
    mod tests {
        use time::macros::datetime;

        use super::parse;

        #[test]
        fn zones_and_their_absence() {
            let cases = [
                (
                    "2016-04-01T00:00:00Z",
                    Some(datetime!(2016-04-01 00:00 UTC)),
                ),
                (
                    "2016-04-01t00:00:00z",
                    Some(datetime!(2016-04-01 00:00 UTC)),
                ),
                (
                    "2016-04-01T02:00:00+02:00",
                    Some(datetime!(2016-04-01 00:00 UTC)),
                ),
                (
                    "2023-01-10T23:59:59",
                    Some(datetime!(2023-01-10 23:59:59 UTC)),
                ),
                (
                    "2023-01-10T23:59:59.5",
                    Some(datetime!(2023-01-10 23:59:59.5 UTC)),
                ),
                ("2023-01-10", None),
                ("9999-12-31T23:59:59-01:00", None),
                ("-0001-01-01T00:00:00", None),
                ("yesterday", None),
                ("", None),
            ];
            for (text, expected) in cases {
                assert_eq!(parse(text), expected, "{text}");
            }
        }
    }
}
