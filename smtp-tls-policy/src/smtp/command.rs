//! SMTP commands (RFC 5321 §4.1) on the listener path.

use smtp_proto::Request;

use super::reply::MAX_LINE_LEN;
use crate::error::Error;

/// The verb of a client command, which is all the listener gate needs to decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CommandKind {
    /// `EHLO` (RFC 5321 §4.1.1.1).
    Ehlo,
    /// `HELO`.
    Helo,
    /// `LHLO` (RFC 2033).
    Lhlo,
    /// `STARTTLS` (RFC 3207).
    StartTls,
    /// `NOOP`.
    Noop,
    /// `QUIT`.
    Quit,
    /// `RSET`.
    Rset,
    /// `MAIL FROM`.
    Mail,
    /// `RCPT TO`.
    Rcpt,
    /// `DATA`.
    Data,
    /// `BDAT` (RFC 3030).
    Bdat,
    /// `AUTH` (RFC 4954).
    Auth,
    /// `VRFY`, `EXPN`, `HELP`, `ETRN`, `ATRN`, `BURL`.
    Other,
    /// Not an SMTP verb smtp-proto knows.
    Unknown,
}

impl CommandKind {
    /// The kind of a parsed request.
    pub fn of<T>(request: &Request<T>) -> Self {
        match request {
            Request::Ehlo { .. } => Self::Ehlo,
            Request::Helo { .. } => Self::Helo,
            Request::Lhlo { .. } => Self::Lhlo,
            Request::StartTls => Self::StartTls,
            Request::Noop { .. } => Self::Noop,
            Request::Quit => Self::Quit,
            Request::Rset => Self::Rset,
            Request::Mail { .. } => Self::Mail,
            Request::Rcpt { .. } => Self::Rcpt,
            Request::Data => Self::Data,
            Request::Bdat { .. } => Self::Bdat,
            Request::Auth { .. } => Self::Auth,
            _ => Self::Other,
        }
    }

    /// The verb as written on the wire (`OTHER` / `UNKNOWN` for the catch-alls).
    pub fn name(self) -> &'static str {
        match self {
            Self::Ehlo => "EHLO",
            Self::Helo => "HELO",
            Self::Lhlo => "LHLO",
            Self::StartTls => "STARTTLS",
            Self::Noop => "NOOP",
            Self::Quit => "QUIT",
            Self::Rset => "RSET",
            Self::Mail => "MAIL",
            Self::Rcpt => "RCPT",
            Self::Data => "DATA",
            Self::Bdat => "BDAT",
            Self::Auth => "AUTH",
            Self::Other => "OTHER",
            Self::Unknown => "UNKNOWN",
        }
    }

    /// Classifies a command line by its verb alone, for lines smtp-proto rejects (a syntax error
    /// in `MAIL FROM:` must still get `530` from a TLS-required listener, not `501`).
    fn of_verb(line: &[u8]) -> Self {
        let verb = line
            .split(|b| b.is_ascii_whitespace())
            .next()
            .unwrap_or_default();
        let verb = verb.split(|&b| b == b':').next().unwrap_or_default();
        match verb.to_ascii_uppercase().as_slice() {
            b"EHLO" => Self::Ehlo,
            b"HELO" => Self::Helo,
            b"LHLO" => Self::Lhlo,
            b"STARTTLS" => Self::StartTls,
            b"NOOP" => Self::Noop,
            b"QUIT" => Self::Quit,
            b"RSET" => Self::Rset,
            b"MAIL" => Self::Mail,
            b"RCPT" => Self::Rcpt,
            b"DATA" => Self::Data,
            b"BDAT" => Self::Bdat,
            b"AUTH" => Self::Auth,
            b"VRFY" | b"EXPN" | b"HELP" | b"ETRN" | b"ATRN" | b"BURL" => Self::Other,
            _ => Self::Unknown,
        }
    }
}

/// A command line: its verb and, when well-formed, the request smtp-proto parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedCommand {
    /// The verb.
    pub kind: CommandKind,
    /// The parsed request, or why it is malformed.
    pub request: Result<Request<String>, Error>,
}

/// Parses one command line (ending in LF, CR optional) with smtp-proto.
///
/// ```
/// use smtp_tls_policy::smtp::{CommandKind, parse_command};
/// let cmd = parse_command(b"MAIL FROM:<a@example.org>\r\n").unwrap();
/// assert_eq!(cmd.kind, CommandKind::Mail);
/// assert!(cmd.request.is_ok());
/// ```
///
/// Errors: [`Error::LineTooLong`] past [`MAX_LINE_LEN`]; an unterminated line is
/// [`Error::MalformedCommand`].
pub fn parse_command(line: &[u8]) -> Result<ParsedCommand, Error> {
    if line.len() > MAX_LINE_LEN {
        return Err(Error::LineTooLong {
            limit: MAX_LINE_LEN,
        });
    }
    if line.last() != Some(&b'\n') || line[..line.len() - 1].contains(&b'\n') {
        return Err(Error::MalformedCommand {
            reason: "not exactly one LF-terminated line",
        });
    }
    let request = match Request::parse(&mut line.iter()) {
        Ok(r) => Ok(r.into_owned()),
        Err(smtp_proto::Error::UnknownCommand) => Err(Error::MalformedCommand {
            reason: "unknown command",
        }),
        Err(smtp_proto::Error::InvalidSenderAddress) => Err(Error::MalformedCommand {
            reason: "invalid sender address",
        }),
        Err(smtp_proto::Error::InvalidRecipientAddress) => Err(Error::MalformedCommand {
            reason: "invalid recipient address",
        }),
        Err(smtp_proto::Error::SyntaxError { syntax }) => {
            Err(Error::MalformedCommand { reason: syntax })
        }
        Err(_) => Err(Error::MalformedCommand {
            reason: "invalid parameter",
        }),
    };
    // smtp-proto merges repeated keywords (flags are OR-ed, values overwritten); a parameter
    // given twice is a syntax error here (RFC 5321 §4.1.1.11, answered 501), so that e.g. a
    // `REQUIRETLS` (RFC 8689) is never silently taken from one of two disagreeing copies.
    let request = match request {
        Ok(Request::Mail { .. } | Request::Rcpt { .. }) if has_duplicate_parameter(line) => {
            Err(Error::MalformedCommand {
                reason: "parameter given twice",
            })
        }
        other => other,
    };
    let kind = match &request {
        Ok(r) => CommandKind::of(r),
        Err(_) => CommandKind::of_verb(line),
    };
    Ok(ParsedCommand { kind, request })
}

/// Longest parameter list examined for duplicates (a command line is at most 512 octets
/// with extensions' allowances, so this bounds nothing a valid client sends).
const MAX_PARAMETERS: usize = 64;

/// Whether the `esmtp-keyword`s after the path of a MAIL/RCPT line repeat (compared without
/// case). Bounded: a line with more than [`MAX_PARAMETERS`] parameters counts as repeating.
fn has_duplicate_parameter(line: &[u8]) -> bool {
    // The parameters start after the path's closing `>` (smtp-proto has checked the syntax).
    let Some(end) = line.iter().position(|&b| b == b'>') else {
        return false;
    };
    let Some(rest) = line.get(end + 1..) else {
        return false;
    };
    let mut seen: Vec<Vec<u8>> = Vec::new();
    for word in rest
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty())
    {
        let keyword = word.split(|&b| b == b'=').next().unwrap_or_default();
        let keyword = keyword.to_ascii_uppercase();
        if seen.len() >= MAX_PARAMETERS || seen.contains(&keyword) {
            return true;
        }
        seen.push(keyword);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::{CommandKind, has_duplicate_parameter, parse_command};
    use smtp_proto::{MAIL_REQUIRETLS, Request};

    #[test]
    fn requiretls_is_parsed_once_and_refused_twice() {
        let cmd = parse_command(b"MAIL FROM:<a@example.org> REQUIRETLS\r\n").unwrap();
        let Ok(Request::Mail { from }) = cmd.request else {
            panic!("{cmd:?}")
        };
        assert_ne!(from.flags & MAIL_REQUIRETLS, 0);
        for line in [
            &b"MAIL FROM:<a@example.org> REQUIRETLS requiretls\r\n"[..],
            b"MAIL FROM:<a@example.org> SIZE=10 REQUIRETLS SIZE=20\r\n",
        ] {
            let cmd = parse_command(line).unwrap();
            assert_eq!(cmd.kind, CommandKind::Mail);
            assert!(cmd.request.is_err(), "{cmd:?}");
        }
    }

    #[test]
    fn duplicate_parameters_table() {
        for (line, dup) in [
            (&b"MAIL FROM:<a@b> SIZE=1 BODY=8BITMIME\r\n"[..], false),
            (b"MAIL FROM:<a@b> size=1 SIZE=2\r\n", true),
            (b"MAIL FROM:<> REQUIRETLS\r\n", false),
            (b"MAIL FROM:<>\r\n", false),
            (b"RCPT TO:<a@b> NOTIFY=NEVER NOTIFY=SUCCESS\r\n", true),
            (b"no path at all", false),
        ] {
            assert_eq!(has_duplicate_parameter(line), dup, "{line:?}");
        }
    }
}
