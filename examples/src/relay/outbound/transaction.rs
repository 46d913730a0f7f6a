//! The SMTP mail transaction on a negotiated connection (RFC 5321 §3.3): MAIL, RCPT per
//! recipient with its own result, DATA with dot-stuffing (§4.5.2), RSET between messages, QUIT.

use std::time::Duration;

use smtp_tls_policy::io::{ClientConnection, LineReader, SmtpStream};
use smtp_tls_policy::smtp::{EhloCapabilities, Reply, ReplyAccumulator};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::relay::{AttemptOutcome, Diagnostic};

/// RFC 5321 §4.5.3.2 timeouts.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);
const DATA_INIT_TIMEOUT: Duration = Duration::from_secs(120);
const DATA_BLOCK_TIMEOUT: Duration = Duration::from_secs(180);
const DATA_END_TIMEOUT: Duration = Duration::from_secs(600);

/// An open SMTP session, ready for mail transactions.
pub(crate) struct Session {
    stream: SmtpStream<TcpStream>,
    reader: LineReader,
    caps: Option<EhloCapabilities>,
    /// The remote MTA, for diagnostics (`host[ip]:port`).
    pub(crate) remote: String,
    /// Messages sent over this session.
    pub(crate) messages: usize,
}

/// The connection broke during a transaction: the message's unsettled recipients were
/// deferred, and the session must not be used again.
#[derive(Debug)]
pub(crate) struct Broken(pub(crate) String);

/// A reused connection did not answer RSET: nothing of the message was settled, and the
/// session must not be used again.
#[derive(Debug)]
pub(crate) struct Stale(pub(crate) String);

enum TxError {
    Stale(String),
    Broken(String),
}

impl Session {
    pub(crate) fn new(conn: ClientConnection<TcpStream>, remote: String) -> Self {
        Self {
            stream: conn.stream,
            reader: conn.reader,
            caps: conn.capabilities,
            remote,
            messages: 0,
        }
    }

    fn has(&self, keyword: &str) -> bool {
        self.caps
            .as_ref()
            .is_some_and(|c| c.keywords.iter().any(|k| k == keyword))
    }

    async fn command(&mut self, line: &str, timeout: Duration) -> Result<Reply, String> {
        self.write(line.as_bytes(), timeout).await?;
        self.reply(timeout).await
    }

    async fn write(&mut self, bytes: &[u8], timeout: Duration) -> Result<(), String> {
        let fut = async {
            self.stream.write_all(bytes).await?;
            self.stream.flush().await
        };
        match tokio::time::timeout(timeout, fut).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("write to {}: {e}", self.remote)),
            Err(_) => Err(format!("write to {} timed out", self.remote)),
        }
    }

    async fn reply(&mut self, timeout: Duration) -> Result<Reply, String> {
        let mut acc = ReplyAccumulator::new();
        loop {
            let line = self
                .reader
                .read_line(&mut self.stream, timeout, "transaction")
                .await
                .map_err(|e| format!("reply from {}: {e}", self.remote))?;
            if let Some(r) = acc
                .push_line(&line)
                .map_err(|e| format!("reply from {}: {e}", self.remote))?
            {
                return Ok(r);
            }
        }
    }

    fn diagnostic(&self, r: &Reply) -> Diagnostic {
        Diagnostic {
            code: r.code,
            status: r.enhanced.map(|[a, b, c]| (a, u16::from(b), u16::from(c))),
            text: r.first_line(),
            remote_mta: Some(self.remote.clone()),
        }
    }

    fn outcome(&self, r: &Reply) -> AttemptOutcome {
        if r.is_permanent() {
            AttemptOutcome::Failed(self.diagnostic(r))
        } else {
            AttemptOutcome::Deferred(self.diagnostic(r))
        }
    }

    /// Sends one message to `recipients` (index into the envelope, address). Returns every
    /// recipient's outcome; on [`Broken`] the outcomes settled so far and the rest deferred.
    /// From the second message on, the transaction starts with RSET; [`Stale`] when that RSET
    /// fails (nothing of the message was settled: it goes back to the queue as it was).
    ///
    /// With PIPELINING (RFC 2920) RSET, MAIL, every RCPT and DATA go out in one write and their
    /// replies are read in order; the message text follows a `354` as always.
    pub(crate) async fn send(
        &mut self,
        sender: &str,
        recipients: &[(usize, String)],
        body: &[u8],
    ) -> Result<(Vec<(usize, AttemptOutcome)>, Option<Broken>), Stale> {
        let rset = self.messages > 0;
        self.messages += 1;
        let mut settled: Vec<(usize, AttemptOutcome)> = Vec::with_capacity(recipients.len());
        let mut accepted: Vec<usize> = Vec::with_capacity(recipients.len());
        let result = if self.pipelining() {
            self.pipelined(rset, sender, recipients, body, &mut settled, &mut accepted)
                .await
        } else {
            if rset {
                self.rset().await.map_err(Stale)?;
            }
            self.transaction(sender, recipients, body, &mut settled, &mut accepted)
                .await
                .map_err(TxError::Broken)
        };
        match result {
            Ok(()) => Ok((settled, None)),
            Err(TxError::Stale(reason)) => Err(Stale(reason)),
            Err(TxError::Broken(reason)) => {
                let diag = Diagnostic {
                    code: 0,
                    status: Some((4, 4, 2)),
                    text: reason.clone(),
                    remote_mta: Some(self.remote.clone()),
                };
                for (i, _) in recipients {
                    if !settled.iter().any(|(j, _)| j == i) {
                        settled.push((*i, AttemptOutcome::Deferred(diag.clone())));
                    }
                }
                Ok((settled, Some(Broken(reason))))
            }
        }
    }

    fn pipelining(&self) -> bool {
        self.caps.as_ref().is_some_and(|c| c.pipelining)
    }

    /// `MAIL FROM:<sender>` with SIZE and BODY as the server allows, CRLF-terminated.
    fn mail_command(&self, out: &mut Vec<u8>, sender: &str, body: &[u8]) {
        out.extend_from_slice(b"MAIL FROM:<");
        out.extend_from_slice(sender.as_bytes());
        out.push(b'>');
        if self.has("SIZE") {
            out.extend_from_slice(format!(" SIZE={}", body.len()).as_bytes());
        }
        if self.has("8BITMIME") && !body.is_ascii() {
            out.extend_from_slice(b" BODY=8BITMIME");
        }
        out.extend_from_slice(b"\r\n");
    }

    /// RFC 2920: the command group in one write, then the replies in order.
    async fn pipelined(
        &mut self,
        rset: bool,
        sender: &str,
        recipients: &[(usize, String)],
        body: &[u8],
        settled: &mut Vec<(usize, AttemptOutcome)>,
        accepted: &mut Vec<usize>,
    ) -> Result<(), TxError> {
        let mut out = Vec::with_capacity(64 + 48 * recipients.len());
        if rset {
            out.extend_from_slice(b"RSET\r\n");
        }
        self.mail_command(&mut out, sender, body);
        for (_, rcpt) in recipients {
            out.extend_from_slice(b"RCPT TO:<");
            out.extend_from_slice(rcpt.as_bytes());
            out.extend_from_slice(b">\r\n");
        }
        out.extend_from_slice(b"DATA\r\n");
        let sent = self.write(&out, COMMAND_TIMEOUT).await;
        if rset {
            // The connection was reused: a failure before RSET's reply means it had gone stale.
            sent.map_err(TxError::Stale)?;
            let r = self.reply(COMMAND_TIMEOUT).await.map_err(TxError::Stale)?;
            if !r.is_positive() {
                return Err(TxError::Stale(format!("RSET answered {}", r.code)));
            }
        } else {
            sent.map_err(TxError::Broken)?;
        }
        let mail = self.reply(COMMAND_TIMEOUT).await.map_err(TxError::Broken)?;
        for (i, _) in recipients {
            let r = self.reply(COMMAND_TIMEOUT).await.map_err(TxError::Broken)?;
            if !mail.is_positive() {
                settled.push((*i, self.outcome(&mail)));
            } else if r.is_positive() {
                accepted.push(*i);
            } else {
                settled.push((*i, self.outcome(&r)));
            }
        }
        let r = self
            .reply(DATA_INIT_TIMEOUT)
            .await
            .map_err(TxError::Broken)?;
        if accepted.is_empty() {
            if r.code == 354 {
                // RFC 2920 §3.1: DATA should have been refused; end it with no text.
                self.write(b".\r\n", DATA_BLOCK_TIMEOUT)
                    .await
                    .map_err(TxError::Broken)?;
                self.reply(DATA_END_TIMEOUT)
                    .await
                    .map_err(TxError::Broken)?;
            }
            // The next transaction starts with RSET.
            return Ok(());
        }
        if r.code != 354 {
            for i in accepted.iter() {
                settled.push((*i, self.outcome(&r)));
            }
            return if r.is_positive() {
                Err(TxError::Broken(format!(
                    "unexpected reply {} to DATA",
                    r.code
                )))
            } else {
                Ok(())
            };
        }
        self.data(body, accepted, settled)
            .await
            .map_err(TxError::Broken)
    }

    /// The message text after `354`, and its outcome for the accepted recipients.
    async fn data(
        &mut self,
        body: &[u8],
        accepted: &[usize],
        settled: &mut Vec<(usize, AttemptOutcome)>,
    ) -> Result<(), String> {
        let data = dot_stuff(body);
        self.write(&data, DATA_BLOCK_TIMEOUT).await?;
        let r = self.reply(DATA_END_TIMEOUT).await?;
        for i in accepted {
            let o = if r.is_positive() {
                AttemptOutcome::Delivered
            } else {
                self.outcome(&r)
            };
            settled.push((*i, o));
        }
        Ok(())
    }

    /// One command at a time (the server does not offer PIPELINING).
    async fn transaction(
        &mut self,
        sender: &str,
        recipients: &[(usize, String)],
        body: &[u8],
        settled: &mut Vec<(usize, AttemptOutcome)>,
        accepted: &mut Vec<usize>,
    ) -> Result<(), String> {
        let mut mail = Vec::with_capacity(64);
        self.mail_command(&mut mail, sender, body);
        self.write(&mail, COMMAND_TIMEOUT).await?;
        let r = self.reply(COMMAND_TIMEOUT).await?;
        if !r.is_positive() {
            for (i, _) in recipients {
                settled.push((*i, self.outcome(&r)));
            }
            return self.rset().await;
        }
        for (i, rcpt) in recipients {
            let r = self
                .command(&format!("RCPT TO:<{rcpt}>\r\n"), COMMAND_TIMEOUT)
                .await?;
            if r.is_positive() {
                accepted.push(*i);
            } else {
                settled.push((*i, self.outcome(&r)));
            }
        }
        if accepted.is_empty() {
            return self.rset().await;
        }
        let r = self.command("DATA\r\n", DATA_INIT_TIMEOUT).await?;
        if r.code != 354 {
            for i in accepted.iter() {
                settled.push((*i, self.outcome(&r)));
            }
            return if r.is_positive() {
                Err(format!("unexpected reply {} to DATA", r.code))
            } else {
                self.rset().await
            };
        }
        self.data(body, accepted, settled).await
    }

    /// RSET (RFC 5321 §4.1.1.5) before the next transaction; a failure breaks the session.
    pub(crate) async fn rset(&mut self) -> Result<(), String> {
        let r = self.command("RSET\r\n", COMMAND_TIMEOUT).await?;
        if r.is_positive() {
            Ok(())
        } else {
            Err(format!("RSET answered {}", r.code))
        }
    }

    /// QUIT and close.
    pub(crate) async fn quit(mut self) {
        if self.write(b"QUIT\r\n", COMMAND_TIMEOUT).await.is_ok() {
            let _ = self.reply(COMMAND_TIMEOUT).await;
        }
        let _ = self.stream.shutdown().await;
    }
}

/// The DATA payload: CRLF line endings, a `.` doubled at the start of a line (RFC 5321
/// §4.5.2), and the terminating `.` line.
pub(crate) fn dot_stuff(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / 64 + 8);
    // Line by line (a copy per line, not per byte).
    for line in body.split_inclusive(|b| *b == b'\n') {
        if line.first() == Some(&b'.') {
            out.push(b'.');
        }
        match line.strip_suffix(b"\n") {
            Some(text) if !text.ends_with(b"\r") => {
                out.extend_from_slice(text);
                out.extend_from_slice(b"\r\n");
            }
            _ => out.extend_from_slice(line),
        }
    }
    if !out.is_empty() && !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::dot_stuff;

    #[test]
    fn stuffing() {
        assert_eq!(dot_stuff(b""), b".\r\n");
        assert_eq!(dot_stuff(b"a\r\n"), b"a\r\n.\r\n");
        assert_eq!(dot_stuff(b".a\r\n.\r\nb"), b"..a\r\n..\r\nb\r\n.\r\n");
        assert_eq!(dot_stuff(b"x\n.y\n"), b"x\r\n..y\r\n.\r\n");
        assert_eq!(dot_stuff(b"\r\n.\n\r"), b"\r\n..\r\n\r\r\n.\r\n");
    }

    /// The line-wise version against a byte-at-a-time reference.
    fn reference(body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let (mut at_line_start, mut prev) = (true, 0u8);
        for &b in body {
            if at_line_start && b == b'.' {
                out.push(b'.');
            }
            if b == b'\n' && prev != b'\r' {
                out.push(b'\r');
            }
            out.push(b);
            at_line_start = b == b'\n';
            prev = b;
        }
        if !out.is_empty() && !out.ends_with(b"\r\n") {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
        out
    }

    proptest::proptest! {
        #[test]
        fn stuffing_matches_reference(body in proptest::collection::vec(
            proptest::sample::select(vec![b'.', b'\r', b'\n', b'a']), 0..64)) {
            proptest::prop_assert_eq!(dot_stuff(&body), reference(&body));
        }
    }
}
