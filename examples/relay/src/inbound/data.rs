//! Reading the message text after `354` (RFC 5321 §4.1.1.4, §4.5.2), bounded in size, line
//! length and time.

use std::time::Duration;

use smtp_proto::request::receiver::DataReceiver;
use smtp_tls_policy::Error as SessionError;
use smtp_tls_policy::io::ServerSession;
use tokio::io::{AsyncRead, AsyncWrite};

/// How reading the message ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DataOutcome {
    /// The whole message (dot-unstuffed, without the final `.` line).
    Complete(Vec<u8>),
    /// More than the size limit; the rest was read and discarded.
    TooBig,
    /// A line over the configured limit (but within the readable bound); read to the end.
    LineTooLong,
    /// The connection cannot continue: the reply to send before closing, if any, and why
    /// (for the connection's log line).
    Failed {
        reply: Option<(u16, &'static str)>,
        detail: String,
    },
}

/// A `DataReceiver` primed with the CRLF that ended the `DATA` line: smtp-proto 0.2's receiver
/// starts mid-line, so alone it would neither un-stuff `..` on the first line nor see an
/// immediate `.` (RFC 5321 §4.5.2 treats the first line like any other).
pub(crate) fn data_receiver() -> DataReceiver {
    let mut rx = DataReceiver::new();
    let mut scratch = Vec::new();
    rx.ingest(&mut b"\r\n".iter(), &mut scratch);
    rx
}

/// Reads lines until the end-of-data line. Past the size limit, text is read and dropped
/// (RFC 5321 §4.5.3.1.10: the server reads to the end, then answers `552`).
pub(crate) async fn read_message<S>(
    session: &mut ServerSession<S>,
    max_size: u64,
    max_line: usize,
    total: Duration,
) -> DataOutcome
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let fut = async {
        let mut rx = data_receiver();
        let mut body = Vec::new();
        let mut scratch = Vec::new();
        let mut too_big = false;
        let mut too_long = false;
        loop {
            let line = match session.read_line_ref().await {
                Ok(l) => l,
                Err(e) => return failed(&e),
            };
            too_long |= line.len() > max_line;
            let sink = if too_big { &mut scratch } else { &mut body };
            let done = rx.ingest(&mut line.iter(), sink);
            scratch.clear();
            if !too_big && body.len() as u64 > max_size {
                too_big = true;
                body = Vec::new();
            }
            if done {
                break;
            }
        }
        if too_big {
            DataOutcome::TooBig
        } else if too_long {
            DataOutcome::LineTooLong
        } else {
            DataOutcome::Complete(body)
        }
    };
    match tokio::time::timeout(total, fut).await {
        Ok(o) => o,
        Err(_) => DataOutcome::Failed {
            reply: Some((421, "4.4.2 Timeout during message transfer")),
            detail: format!("message transfer too slow (over {} s)", total.as_secs()),
        },
    }
}

fn failed(e: &SessionError) -> DataOutcome {
    let reply = match e {
        SessionError::LineTooLong { .. } => Some((500, "5.5.2 Line too long")),
        SessionError::Timeout { .. } => Some((421, "4.4.2 Timeout during message transfer")),
        _ => None,
    };
    DataOutcome::Failed {
        reply,
        detail: format!("lost during DATA: {e}"),
    }
}
