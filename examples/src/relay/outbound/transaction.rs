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
    pub(crate) async fn send(
        &mut self,
        sender: &str,
        recipients: &[(usize, String)],
        body: &[u8],
    ) -> (Vec<(usize, AttemptOutcome)>, Option<Broken>) {
        self.messages += 1;
        let mut settled: Vec<(usize, AttemptOutcome)> = Vec::with_capacity(recipients.len());
        let mut accepted: Vec<usize> = Vec::new();
        let result = self
            .transaction(sender, recipients, body, &mut settled, &mut accepted)
            .await;
        match result {
            Ok(()) => (settled, None),
            Err(reason) => {
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
                (settled, Some(Broken(reason)))
            }
        }
    }

    async fn transaction(
        &mut self,
        sender: &str,
        recipients: &[(usize, String)],
        body: &[u8],
        settled: &mut Vec<(usize, AttemptOutcome)>,
        accepted: &mut Vec<usize>,
    ) -> Result<(), String> {
        let mut mail = format!("MAIL FROM:<{sender}>");
        if self.has("SIZE") {
            mail.push_str(&format!(" SIZE={}", body.len()));
        }
        if self.has("8BITMIME") && body.iter().any(|b| *b >= 0x80) {
            mail.push_str(" BODY=8BITMIME");
        }
        mail.push_str("\r\n");
        let r = self.command(&mail, COMMAND_TIMEOUT).await?;
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
        let data = dot_stuff(body);
        self.write(&data, DATA_BLOCK_TIMEOUT).await?;
        let r = self.reply(DATA_END_TIMEOUT).await?;
        for i in accepted.iter() {
            let o = if r.is_positive() {
                AttemptOutcome::Delivered
            } else {
                self.outcome(&r)
            };
            settled.push((*i, o));
        }
        Ok(())
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
    let mut at_line_start = true;
    let mut prev = 0u8;
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

#[cfg(test)]
mod tests {
    use super::dot_stuff;

    #[test]
    fn stuffing() {
        assert_eq!(dot_stuff(b""), b".\r\n");
        assert_eq!(dot_stuff(b"a\r\n"), b"a\r\n.\r\n");
        assert_eq!(dot_stuff(b".a\r\n.\r\nb"), b"..a\r\n..\r\nb\r\n.\r\n");
        assert_eq!(dot_stuff(b"x\n.y\n"), b"x\r\n..y\r\n.\r\n");
    }
}
