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
    let kind = match &request {
        Ok(r) => CommandKind::of(r),
        Err(_) => CommandKind::of_verb(line),
    };
    Ok(ParsedCommand { kind, request })
}
