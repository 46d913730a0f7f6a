//! The SMTP mail transaction on a negotiated connection (RFC 5321 §3.3): MAIL, RCPT per
//! recipient with its own result, DATA with dot-stuffing (§4.5.2), RSET between messages, QUIT.

use std::time::Duration;

use tokio::time::Instant;

use smtp_tls_policy::delivery::{
    Decision, RequireTlsRoute, RequireTlsSession, RequireTlsVerdict, requiretls_verdict,
};
use smtp_tls_policy::io::{ClientConnection, Deadline, LineReader, SmtpStream};
use smtp_tls_policy::smtp::{EhloCapabilities, Reply, ReplyAccumulator};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::{AttemptOutcome, Diagnostic};

/// The transaction's timeouts (RFC 5321 §4.5.3.2). Each bounds a whole reply (every line of a
/// multi-line reply together) or a whole write, never a single line or chunk: a peer that
/// drips a reply or reads the message text slowly cannot hold a delivery task longer than
/// these (issue 11, finding 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timeouts {
    /// Writing a command group and reading each command's reply (§4.5.3.2.2-3: 5 minutes).
    pub(crate) command: Duration,
    /// The reply to DATA (§4.5.3.2.4, "DATA initiation": 2 minutes).
    pub(crate) data_init: Duration,
    /// Sending the message text: §4.5.3.2.5's "data block" timer (3 minutes) times each TCP
    /// send; here it bounds the whole transfer, extended by the text's size at
    /// `min_data_rate` (as Postfix's `smtp_min_data_rate`), so a large message on a slow but
    /// moving link is not cut while a peer that stops reading is.
    pub(crate) data_block: Duration,
    /// Slowest acceptable transfer of the message text, in octets per second.
    pub(crate) min_data_rate: u64,
    /// The reply after the final `.` (§4.5.3.2.6, "DATA termination": 10 minutes).
    pub(crate) data_end: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            command: Duration::from_secs(300),
            data_init: Duration::from_secs(120),
            data_block: Duration::from_secs(180),
            min_data_rate: 500,
            data_end: Duration::from_secs(600),
        }
    }
}

impl Timeouts {
    /// The deadline of a transfer of `len` octets of message text.
    fn data_transfer(&self, len: usize) -> Duration {
        let extra = (len as u64).div_ceil(self.min_data_rate.max(1));
        self.data_block.saturating_add(Duration::from_secs(extra))
    }
}

/// An open SMTP session, ready for mail transactions.
pub(crate) struct Session {
    stream: SmtpStream<TcpStream>,
    reader: LineReader,
    caps: Option<EhloCapabilities>,
    /// What REQUIRETLS (RFC 8689) depends on: TLS, authenticated peer, advertised extension.
    requiretls: RequireTlsSession,
    /// The current message goes with `MAIL FROM:<..> REQUIRETLS`.
    requiretls_parameter: bool,
    timeouts: Timeouts,
    /// The wall-clock end of the delivery attempt (`delivery.max_session_secs`), if any.
    ends: Option<Instant>,
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
    /// A session the delivery machine let continue with `decision`.
    pub(crate) fn new(
        conn: ClientConnection<TcpStream>,
        remote: String,
        decision: &Decision,
    ) -> Self {
        let requiretls = RequireTlsSession::from_decision(decision, conn.capabilities.as_ref());
        let mut session = Self::from_parts(
            conn.stream,
            conn.reader,
            conn.capabilities,
            remote,
            Timeouts::default(),
        );
        session.requiretls = requiretls;
        session
    }

    /// A session over an already negotiated transport.
    pub(crate) fn from_parts(
        stream: SmtpStream<TcpStream>,
        reader: LineReader,
        caps: Option<EhloCapabilities>,
        remote: String,
        timeouts: Timeouts,
    ) -> Self {
        Self {
            stream,
            reader,
            caps,
            requiretls: RequireTlsSession::default(),
            requiretls_parameter: false,
            timeouts,
            ends: None,
            remote,
            messages: 0,
        }
    }

    /// Ends the session at `ends` (the delivery attempt's wall-clock limit).
    pub(crate) fn with_deadline(mut self, ends: Instant) -> Self {
        self.ends = Some(ends);
        self
    }

    /// Whether the session's wall-clock limit has passed.
    pub(crate) fn expired(&self) -> bool {
        self.ends.is_some_and(|e| Instant::now() >= e)
    }

    /// Whether a message that asked (`requested`) or not for REQUIRETLS may go over this
    /// session (RFC 8689 §4.2.1); `route` is the hop plan's answer to the route condition
    /// (DNSSEC-secure MX or MTA-STS `enforce`: `HopPlan::requiretls_route`).
    pub(crate) fn requiretls_verdict(
        &self,
        requested: bool,
        route: RequireTlsRoute,
    ) -> RequireTlsVerdict {
        requiretls_verdict(requested, route, self.requiretls)
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

    /// `timeout`, cut to what is left of the session's wall-clock limit; an error once that
    /// has passed.
    fn bounded(&self, timeout: Duration) -> Result<Duration, String> {
        let Some(ends) = self.ends else {
            return Ok(timeout);
        };
        let left = ends.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(self.expiry())
        } else {
            Ok(timeout.min(left))
        }
    }

    /// The reason given when the session's wall-clock limit ends it.
    fn expiry(&self) -> String {
        format!(
            "delivery session time limit reached with {} (delivery.max_session_secs)",
            self.remote
        )
    }

    /// A failure's reason: the session limit when that is what cut the step short.
    fn failed(&self, reason: String) -> String {
        if self.expired() {
            self.expiry()
        } else {
            reason
        }
    }

    async fn write(&mut self, bytes: &[u8], timeout: Duration) -> Result<(), String> {
        let timeout = self.bounded(timeout)?;
        let fut = async {
            self.stream.write_all(bytes).await?;
            self.stream.flush().await
        };
        match tokio::time::timeout(timeout, fut).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("write to {}: {e}", self.remote)),
            Err(_) => Err(self.failed(format!("write to {} timed out", self.remote))),
        }
    }

    /// One reply, all its lines within `timeout` together (RFC 5321 §4.5.3.2 times replies),
    /// and within the session's wall-clock limit.
    async fn reply(&mut self, timeout: Duration) -> Result<Reply, String> {
        let mut deadline = Deadline::new(self.bounded(timeout)?);
        let mut acc = ReplyAccumulator::new();
        loop {
            let line = match self
                .reader
                .read_line_by(&mut self.stream, &mut deadline, "transaction")
                .await
            {
                Ok(line) => line,
                Err(e) => return Err(self.failed(format!("reply from {}: {e}", self.remote))),
            };
            if let Some(r) = acc
                .push_line(line)
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
        requiretls: RequireTlsVerdict,
    ) -> Result<(Vec<(usize, AttemptOutcome)>, Option<Broken>), Stale> {
        if let RequireTlsVerdict::Refuse(r) = requiretls {
            // The caller checks first; never send a flagged message where it may not go.
            return Err(Stale(format!("REQUIRETLS: {r}")));
        }
        self.requiretls_parameter = requiretls.mail_parameter();
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
        if self.requiretls_parameter {
            out.extend_from_slice(b" REQUIRETLS");
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
        let t = self.timeouts;
        let sent = self.write(&out, t.command).await;
        if rset {
            // The connection was reused: a failure before RSET's reply means it had gone stale.
            sent.map_err(TxError::Stale)?;
            let r = self.reply(t.command).await.map_err(TxError::Stale)?;
            if !r.is_positive() {
                return Err(TxError::Stale(format!("RSET answered {}", r.code)));
            }
        } else {
            sent.map_err(TxError::Broken)?;
        }
        let mail = self.reply(t.command).await.map_err(TxError::Broken)?;
        for (i, _) in recipients {
            let r = self.reply(t.command).await.map_err(TxError::Broken)?;
            if !mail.is_positive() {
                settled.push((*i, self.outcome(&mail)));
            } else if r.is_positive() {
                accepted.push(*i);
            } else {
                settled.push((*i, self.outcome(&r)));
            }
        }
        let r = self.reply(t.data_init).await.map_err(TxError::Broken)?;
        if accepted.is_empty() {
            if r.code == 354 {
                // RFC 2920 §3.1: DATA should have been refused; end it with no text.
                self.write(b".\r\n", t.data_block)
                    .await
                    .map_err(TxError::Broken)?;
                self.reply(t.data_end).await.map_err(TxError::Broken)?;
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
        // One deadline for the whole transfer, one for the whole final reply.
        self.write(&data, self.timeouts.data_transfer(data.len()))
            .await?;
        let r = self.reply(self.timeouts.data_end).await?;
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
        let t = self.timeouts;
        self.write(&mail, t.command).await?;
        let r = self.reply(t.command).await?;
        if !r.is_positive() {
            for (i, _) in recipients {
                settled.push((*i, self.outcome(&r)));
            }
            return self.rset().await;
        }
        for (i, rcpt) in recipients {
            let r = self
                .command(&format!("RCPT TO:<{rcpt}>\r\n"), t.command)
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
        let r = self.command("DATA\r\n", t.data_init).await?;
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
        let r = self.command("RSET\r\n", self.timeouts.command).await?;
        if r.is_positive() {
            Ok(())
        } else {
            Err(format!("RSET answered {}", r.code))
        }
    }

    /// QUIT and close (within the command timeout and the session's limit: past it the
    /// connection is just dropped).
    pub(crate) async fn quit(mut self) {
        let t = self.timeouts.command;
        if self.write(b"QUIT\r\n", t).await.is_ok() {
            let _ = self.reply(t).await;
        }
        if let Ok(t) = self.bounded(t) {
            let _ = tokio::time::timeout(t, self.stream.shutdown()).await;
        }
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
#[path = "transaction_tests.rs"]
mod tests;
