//! SMTP replies (RFC 5321 §4.2) on the client path.

use smtp_proto::response::parser::ResponseReceiver;
use smtp_proto::{EXT_PIPELINING, EXT_START_TLS, EhloResponse};

use crate::error::Error;

/// Longest reply or command line accepted, in octets including CRLF. RFC 5321 §4.5.3.1.5 sets
/// 512 for replies and §4.5.3.1.4 512 for commands; real servers exceed it slightly, so twice that
/// is accepted and anything longer is a typed error.
pub const MAX_LINE_LEN: usize = 1024;

/// Most lines accepted in one multi-line reply (an EHLO reply has one per extension).
pub const MAX_REPLY_LINES: usize = 64;

/// One complete SMTP reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit reply code.
    pub code: u16,
    /// The enhanced status code (RFC 3463) of the first line, if present.
    pub enhanced: Option<[u8; 3]>,
    /// The text of each line, after the code and separator.
    pub lines: Vec<String>,
    raw: Vec<u8>,
}

impl Reply {
    /// `2yz`: positive completion.
    pub fn is_positive(&self) -> bool {
        self.code / 100 == 2
    }

    /// `4yz`: transient negative completion.
    pub fn is_transient(&self) -> bool {
        self.code / 100 == 4
    }

    /// `5yz`: permanent negative completion.
    pub fn is_permanent(&self) -> bool {
        self.code / 100 == 5
    }

    /// The first line's text, truncated to 200 characters (for logs and errors).
    pub fn first_line(&self) -> String {
        self.lines
            .first()
            .map(|l| l.chars().take(200).collect())
            .unwrap_or_default()
    }

    /// The reply as received (CRLF line ends).
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }
}

/// Sans-IO accumulator: feed it reply lines, it returns the reply once the last line arrives.
#[derive(Debug, Default)]
pub struct ReplyAccumulator {
    raw: Vec<u8>,
    lines: Vec<String>,
    code: Option<u16>,
}

impl ReplyAccumulator {
    /// A fresh accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one line (with or without its CR LF). Returns the reply when `line` was its last line.
    ///
    /// Errors: [`Error::LineTooLong`], [`Error::TooManyReplyLines`], [`Error::MalformedReply`]
    /// (no code, bad separator, or a code differing from the first line's, RFC 5321 §4.2.1).
    pub fn push_line(&mut self, line: &[u8]) -> Result<Option<Reply>, Error> {
        if line.len() > MAX_LINE_LEN {
            return Err(Error::LineTooLong {
                limit: MAX_LINE_LEN,
            });
        }
        if self.lines.len() >= MAX_REPLY_LINES {
            return Err(Error::TooManyReplyLines {
                limit: MAX_REPLY_LINES,
            });
        }
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let (code, last, text) = match line {
            [a, b, c, rest @ ..] if [a, b, c].iter().all(|d| d.is_ascii_digit()) => {
                let code =
                    u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0');
                match rest {
                    [] => (code, true, &[][..]),
                    [b' ', text @ ..] => (code, true, text),
                    [b'-', text @ ..] => (code, false, text),
                    _ => {
                        return Err(Error::MalformedReply {
                            reason: "bad separator after code",
                        });
                    }
                }
            }
            _ => {
                return Err(Error::MalformedReply {
                    reason: "line does not start with a code",
                });
            }
        };
        if !(200..600).contains(&code) {
            return Err(Error::MalformedReply {
                reason: "reply code out of range",
            });
        }
        if *self.code.get_or_insert(code) != code {
            return Err(Error::MalformedReply {
                reason: "reply lines carry different codes",
            });
        }
        if text.iter().any(|&b| b == b'\r' || b == 0) {
            return Err(Error::MalformedReply {
                reason: "control character in reply text",
            });
        }
        self.lines.push(String::from_utf8_lossy(text).into_owned());
        self.raw.extend_from_slice(line);
        self.raw.extend_from_slice(b"\r\n");
        if !last {
            return Ok(None);
        }
        let raw = std::mem::take(&mut self.raw);
        let lines = std::mem::take(&mut self.lines);
        self.code = None;
        // Content parse by smtp-proto (enhanced status code extraction).
        let parsed = ResponseReceiver::default()
            .parse(&mut raw.iter())
            .map_err(|_| Error::MalformedReply {
                reason: "rejected by the SMTP reply parser",
            })?;
        let enhanced = (parsed.esc != [0, 0, 0]).then_some(parsed.esc);
        Ok(Some(Reply {
            code,
            enhanced,
            lines,
            raw,
        }))
    }

    /// True when no line of an unfinished reply is buffered.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}

/// Parses one complete reply from the start of `bytes`; returns it and the bytes consumed.
///
/// Incomplete input is [`Error::MalformedReply`] with reason `"incomplete reply"`.
pub fn parse_reply(bytes: &[u8]) -> Result<(Reply, usize), Error> {
    let mut acc = ReplyAccumulator::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let window = &bytes[pos..bytes.len().min(pos + MAX_LINE_LEN + 1)];
        let Some(nl) = window.iter().position(|&b| b == b'\n') else {
            if window.len() > MAX_LINE_LEN {
                return Err(Error::LineTooLong {
                    limit: MAX_LINE_LEN,
                });
            }
            break;
        };
        let line = &bytes[pos..pos + nl + 1];
        pos += nl + 1;
        if let Some(reply) = acc.push_line(line)? {
            return Ok((reply, pos));
        }
    }
    Err(Error::MalformedReply {
        reason: "incomplete reply",
    })
}

/// What a server's positive EHLO reply (RFC 5321 §4.1.1.1) says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EhloCapabilities {
    /// The hostname on the first line.
    pub hostname: String,
    /// Extension keywords, upper-cased, in the order advertised.
    pub keywords: Vec<String>,
    /// `STARTTLS` advertised (RFC 3207 §4).
    pub starttls: bool,
    /// `PIPELINING` advertised (RFC 2920).
    pub pipelining: bool,
}

impl EhloCapabilities {
    /// Reads the capabilities from a `250` EHLO reply.
    ///
    /// ```
    /// use smtp_tls_policy::smtp::{EhloCapabilities, parse_reply};
    /// let (reply, _) = parse_reply(b"250-mx.example\r\n250-PIPELINING\r\n250 STARTTLS\r\n").unwrap();
    /// let caps = EhloCapabilities::from_reply(&reply).unwrap();
    /// assert!(caps.starttls);
    /// assert_eq!(caps.keywords, ["PIPELINING", "STARTTLS"]);
    /// ```
    pub fn from_reply(reply: &Reply) -> Result<Self, Error> {
        if reply.code != 250 {
            return Err(Error::SmtpReply {
                command: "EHLO",
                code: reply.code,
                text: reply.first_line(),
            });
        }
        let parsed =
            EhloResponse::parse(&mut reply.raw.iter()).map_err(|_| Error::MalformedReply {
                reason: "rejected by the EHLO reply parser",
            })?;
        let keywords = reply
            .lines
            .iter()
            .skip(1)
            .filter_map(|l| l.split_ascii_whitespace().next())
            .map(str::to_ascii_uppercase)
            .collect();
        Ok(Self {
            hostname: reply
                .lines
                .first()
                .and_then(|l| l.split_ascii_whitespace().next())
                .unwrap_or_default()
                .to_owned(),
            keywords,
            starttls: parsed.has_capability(EXT_START_TLS),
            pipelining: parsed.has_capability(EXT_PIPELINING),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies() {
        let cases: &[(&[u8], Result<u16, Error>)] = &[
            (b"220 mx ESMTP\r\n", Ok(220)),
            (b"250-a\r\n250 b\r\n", Ok(250)),
            (b"454 4.7.0 TLS not available\r\n", Ok(454)),
            (b"250\r\n", Ok(250)),
            (
                b"250-a\r\n251 b\r\n",
                Err(Error::MalformedReply {
                    reason: "reply lines carry different codes",
                }),
            ),
            (
                b"25 x\r\n",
                Err(Error::MalformedReply {
                    reason: "line does not start with a code",
                }),
            ),
            (
                b"250x\r\n",
                Err(Error::MalformedReply {
                    reason: "bad separator after code",
                }),
            ),
            (
                b"099 x\r\n",
                Err(Error::MalformedReply {
                    reason: "reply code out of range",
                }),
            ),
            (
                b"250-a\r\n",
                Err(Error::MalformedReply {
                    reason: "incomplete reply",
                }),
            ),
        ];
        for (input, want) in cases {
            let got = parse_reply(input).map(|(r, _)| r.code);
            assert_eq!(&got, want, "{}", String::from_utf8_lossy(input));
        }
        let (r, _) = parse_reply(b"454 4.7.0 TLS not available\r\n").unwrap();
        assert_eq!(r.enhanced, Some([4, 7, 0]));
    }

    #[test]
    fn limits() {
        let long = format!("250 {}\r\n", "x".repeat(MAX_LINE_LEN));
        assert_eq!(
            parse_reply(long.as_bytes()).unwrap_err(),
            Error::LineTooLong {
                limit: MAX_LINE_LEN
            }
        );
        let many = "250-x\r\n".repeat(MAX_REPLY_LINES) + "250 y\r\n";
        assert_eq!(
            parse_reply(many.as_bytes()).unwrap_err(),
            Error::TooManyReplyLines {
                limit: MAX_REPLY_LINES
            }
        );
    }

    #[test]
    fn ehlo() {
        let (r, n) =
            parse_reply(b"250-mx.example Hi\r\n250-SIZE 1000\r\n250 8BITMIME\r\nextra").unwrap();
        assert_eq!(n, 48);
        let caps = EhloCapabilities::from_reply(&r).unwrap();
        assert_eq!(caps.hostname, "mx.example");
        assert!(!caps.starttls);
        assert_eq!(caps.keywords, ["SIZE", "8BITMIME"]);
        let (r, _) = parse_reply(b"502 no\r\n").unwrap();
        assert!(EhloCapabilities::from_reply(&r).is_err());
    }
}
