//! Host name normalisation, applied the same way to configured entries and to PTR facts.
//!
//! Matching is case-insensitive, ignores one trailing dot, and compares IDNA A-labels
//! (UTS #46, so `MAIL.Bücher.example.` and `mail.xn--bcher-kva.example` are the same name).

use crate::error::{Error, NameProblem};

/// Longest name (RFC 1035 §2.3.4, presentation form without the root dot).
const MAX_NAME_LEN: usize = 253;
/// Longest label (RFC 1035 §2.3.4).
const MAX_LABEL_LEN: usize = 63;

/// Normalises a DNS name: lowercase, one trailing dot dropped, IDNA to A-labels, then checked
/// label by label (letters, digits, `-`, `_`; 1–63 octets; at most 253 octets in all).
///
/// ```
/// assert_eq!(&*hat_match::normalize_name("MXNAT3.Res.Cisco.COM.")?, "mxnat3.res.cisco.com");
/// assert_eq!(&*hat_match::normalize_name("mail.bücher.example")?, "mail.xn--bcher-kva.example");
/// assert!(hat_match::normalize_name("bad..example").is_err());
/// # Ok::<(), hat_match::Error>(())
/// ```
pub fn normalize_name(text: &str) -> Result<Box<str>, Error> {
    let problem = |problem| Error::InvalidName {
        text: text.to_owned(),
        problem,
    };
    let trimmed = text.strip_suffix('.').unwrap_or(text);
    if trimmed.is_empty() {
        return Err(problem(NameProblem::Empty));
    }
    // Fast path: plain ASCII letter-digit-hyphen names need no IDNA work beyond lowercasing.
    let ascii: Box<str> = if trimmed
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && !trimmed
            .split('.')
            .any(|l| l.len() >= 4 && l.as_bytes()[..4].eq_ignore_ascii_case(b"xn--"))
    {
        trimmed.to_ascii_lowercase().into()
    } else {
        idna::domain_to_ascii_cow(trimmed.as_bytes(), idna::AsciiDenyList::EMPTY)
            .map_err(|_| problem(NameProblem::Idna))?
            .into_owned()
            .into()
    };
    if ascii.is_empty() {
        return Err(problem(NameProblem::Empty));
    }
    if ascii.len() > MAX_NAME_LEN {
        return Err(problem(NameProblem::NameTooLong));
    }
    for label in ascii.split('.') {
        if label.is_empty() {
            return Err(problem(NameProblem::EmptyLabel));
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(problem(NameProblem::LabelTooLong));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Err(problem(NameProblem::BadCharacter));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(problem(NameProblem::HyphenAtLabelEdge));
        }
    }
    Ok(ascii)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases() {
        let ok = [
            ("mail.example.com", "mail.example.com"),
            ("Mail.Example.COM.", "mail.example.com"),
            ("xn--bcher-kva.example", "xn--bcher-kva.example"),
            ("XN--BCHER-KVA.example", "xn--bcher-kva.example"),
            ("bücher.example", "xn--bcher-kva.example"),
            ("BÜCHER.example", "xn--bcher-kva.example"),
            ("_dmarc.example", "_dmarc.example"),
            ("localhost", "localhost"),
        ];
        for (input, want) in ok {
            assert_eq!(normalize_name(input).as_deref(), Ok(want), "{input}");
        }
        let bad = [
            ("", NameProblem::Empty),
            (".", NameProblem::Empty),
            ("a..b", NameProblem::EmptyLabel),
            ("a.b..", NameProblem::EmptyLabel),
            ("-a.example", NameProblem::HyphenAtLabelEdge),
            ("a b.example", NameProblem::BadCharacter),
            ("a/b.example", NameProblem::BadCharacter),
        ];
        for (input, want) in bad {
            match normalize_name(input) {
                Err(Error::InvalidName { problem, .. }) => assert_eq!(problem, want, "{input}"),
                other => panic!("{input}: {other:?}"),
            }
        }
        let long_label = format!("{}.example", "a".repeat(64));
        assert!(matches!(
            normalize_name(&long_label),
            Err(Error::InvalidName {
                problem: NameProblem::LabelTooLong,
                ..
            })
        ));
        let long_name = vec!["a".repeat(60); 5].join(".");
        assert!(matches!(
            normalize_name(&long_name),
            Err(Error::InvalidName {
                problem: NameProblem::NameTooLong,
                ..
            })
        ));
    }
}
