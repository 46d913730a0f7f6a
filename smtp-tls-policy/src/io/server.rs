//! Listener side: one inbound connection's command loop through the STARTTLS gate.

use smtp_proto::Request;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_rustls::TlsAcceptor;

use super::held::HeldWrites;
use super::lines::LineReader;
use super::stream::SmtpStream;
use super::timeouts::{Deadline, Timeouts};
use crate::error::{Error, IoKind};
use crate::listener::{CloseReason, Gate, GateVerdict, ListenerEvent, PlaintextRecipients};
use crate::smtp::{CommandKind, parse_command};

/// Settings of a listener session.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerSessionConfig {
    /// The name in the greeting and EHLO reply.
    pub hostname: String,
    /// Extension keywords the application supports (e.g. `PIPELINING`, `SIZE 10240000`,
    /// `8BITMIME`); `STARTTLS` is added by the gate when allowed.
    pub extensions: Vec<String>,
    /// Extension keywords advertised only inside TLS, after [`Self::extensions`] (e.g.
    /// `REQUIRETLS`, which RFC 8689 §2 offers only over a TLS session).
    pub tls_extensions: Vec<String>,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Recipients accepted before STARTTLS when TLS is required (the TLS-RPT mailboxes); see
    /// [`Gate::with_plaintext_recipients`]. Empty by default: no exception.
    pub plaintext_recipients: PlaintextRecipients,
}

impl ServerSessionConfig {
    /// A configuration with default timeouts.
    pub fn new(hostname: impl Into<String>, extensions: Vec<String>) -> Self {
        Self {
            hostname: hostname.into(),
            extensions,
            tls_extensions: Vec::new(),
            timeouts: Timeouts::default(),
            plaintext_recipients: PlaintextRecipients::default(),
        }
    }

    /// Sets the extension keywords advertised only inside TLS.
    pub fn with_tls_extensions(mut self, tls_extensions: Vec<String>) -> Self {
        self.tls_extensions = tls_extensions;
        self
    }

    /// Sets the timeouts.
    pub fn with_timeouts(mut self, t: Timeouts) -> Self {
        self.timeouts = t;
        self
    }

    /// Sets the recipients a TLS-required session accepts before STARTTLS (the TLS-RPT
    /// mailboxes, RFC 8460 §3); see [`Gate::with_plaintext_recipients`].
    pub fn with_plaintext_recipients(mut self, recipients: PlaintextRecipients) -> Self {
        self.plaintext_recipients = recipients;
        self
    }
}

/// What [`ServerSession::next_command`] hands to the application.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionCommand {
    /// A well-formed command the gate let through (MAIL, RCPT, DATA, RSET, ...). Answer it with
    /// [`ServerSession::reply`].
    Command(Request<String>),
    /// The client sent QUIT; `221` was sent.
    Quit,
    /// The client greeted (EHLO, LHLO or HELO) and the session answered `250`. RFC 5321 §4.1.4:
    /// a greeting in the middle of a transaction clears it, as RSET does — the application
    /// resets its transaction state. The name given is [`ServerSession::client_name`].
    Greeted {
        /// `true` for EHLO/LHLO (ESMTP), `false` for HELO.
        extended: bool,
    },
}

/// Longest client EHLO/HELO name kept by [`ServerSession::client_name`] (a domain is at most 255
/// octets, RFC 5321 §4.5.3.1.2; an address literal is shorter).
const MAX_CLIENT_NAME: usize = 255;

/// One inbound SMTP connection driven through the [`Gate`].
///
/// The session answers `EHLO`/`HELO`/`LHLO`, `NOOP`, `QUIT` and `STARTTLS` itself, refuses what the
/// gate refuses (`530`, `502`, `454`, `503`) and returns every other command to the application.
/// At STARTTLS it sends `220`, drops every byte the client had pipelined after the command, runs
/// the handshake and resets the state (the client must EHLO again). Gate events are logged with
/// `tracing` and kept for [`ServerSession::events`].
pub struct ServerSession<S> {
    /// `None` only while the handshake owns the plain stream, or after it failed.
    stream: Option<SmtpStream<S>>,
    reader: LineReader,
    gate: Gate,
    acceptor: Option<TlsAcceptor>,
    config: ServerSessionConfig,
    events: Vec<ListenerEvent>,
    /// The argument of the last EHLO/HELO, sanitised.
    client_name: Option<String>,
    /// Replies not yet written: held while the client's pipelined commands are still buffered
    /// (RFC 2920 §3.2), so a command group is answered with one write.
    out: Vec<u8>,
}

impl<S> std::fmt::Debug for ServerSession<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerSession")
            .field("gate", &self.gate)
            .field("tls_configured", &self.acceptor.is_some())
            .field("config", &self.config)
            .field("client_name", &self.client_name)
            .finish_non_exhaustive()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> ServerSession<S> {
    /// Starts the session: sends the `220` greeting. `acceptor` is the listener's TLS
    /// configuration (its certificate); `None` means no certificate is configured.
    pub async fn start(
        stream: S,
        tls: crate::listener::ListenerTls,
        acceptor: Option<TlsAcceptor>,
        config: ServerSessionConfig,
    ) -> Result<Self, Error> {
        let certificate = if acceptor.is_some() {
            crate::listener::ListenerCertificate::Configured
        } else {
            crate::listener::ListenerCertificate::Missing
        };
        let gate = Gate::new(tls, certificate)
            .with_plaintext_recipients(config.plaintext_recipients.clone());
        let mut s = Self {
            stream: Some(SmtpStream::Plain(stream)),
            reader: LineReader::new(),
            gate,
            acceptor,
            config,
            events: Vec::new(),
            client_name: None,
            out: Vec::with_capacity(256),
        };
        s.flush_events();
        s.out.extend_from_slice(b"220 ");
        s.out.extend_from_slice(s.config.hostname.as_bytes());
        s.out.extend_from_slice(b" ESMTP\r\n");
        s.send().await?;
        Ok(s)
    }

    /// The gate (TLS state, greeting state).
    pub fn gate(&self) -> &Gate {
        &self.gate
    }

    /// The name the client gave in its last EHLO/LHLO/HELO (RFC 5321 §4.1.1.1), for trace
    /// headers and logs: printable ASCII only (controls, spaces and non-ASCII removed), at most
    /// 255 octets (RFC 5321 §4.5.3.1.2). Not verified — the client may give any name. `None` before
    /// the first greeting and after STARTTLS (RFC 3207 §4.2: the client must greet again).
    pub fn client_name(&self) -> Option<&str> {
        self.client_name.as_deref()
    }

    /// Every gate event so far.
    pub fn events(&self) -> &[ListenerEvent] {
        &self.events
    }

    /// The negotiated TLS protocol version and cipher suite, once TLS is up.
    pub fn tls_parameters(&self) -> Option<(rustls::ProtocolVersion, rustls::CipherSuite)> {
        match self.stream.as_ref()? {
            SmtpStream::ServerTls(s) => {
                let c = s.get_ref().1;
                Some((c.protocol_version()?, c.negotiated_cipher_suite()?.suite()))
            }
            _ => None,
        }
    }

    /// Tells the gate the application accepted a recipient (for the close-time log event).
    pub fn recipient_accepted(&mut self) {
        self.gate.recipient_accepted();
    }

    /// Sends a reply (`code` and single-line `text`; CR and LF in `text` are dropped).
    ///
    /// While the client has further pipelined commands buffered, the reply is held and written
    /// together with the following ones (RFC 2920 §3.2); it is written at the latest before the
    /// session waits for input. Before [`ServerSession::close`] or
    /// [`ServerSession::into_stream`], call [`ServerSession::flush`].
    pub async fn reply(&mut self, code: u16, text: &str) -> Result<(), Error> {
        let code = code.min(999);
        self.out.extend_from_slice(&[
            b'0' + (code / 100) as u8,
            b'0' + (code / 10 % 10) as u8,
            b'0' + (code % 10) as u8,
            b' ',
        ]);
        self.out
            .extend(text.bytes().filter(|b| *b != b'\r' && *b != b'\n'));
        self.out.extend_from_slice(b"\r\n");
        self.send_unless_pipelined().await
    }

    /// Writes every held reply now.
    pub async fn flush(&mut self) -> Result<(), Error> {
        if self.out.is_empty() {
            return Ok(());
        }
        self.send().await
    }

    /// Reads one raw line (for DATA content), bounded like every other read.
    pub async fn read_line(&mut self) -> Result<Vec<u8>, Error> {
        self.read_line_ref().await.map(<[u8]>::to_vec)
    }

    /// Like [`ServerSession::read_line`], without copying: the line is borrowed from the
    /// session's buffer until the next read.
    pub async fn read_line_ref(&mut self) -> Result<&[u8], Error> {
        // Held replies go out before the session can wait for input.
        if !self.out.is_empty() && !self.reader.has_line() {
            self.send().await?;
        }
        let t = self.config.timeouts.server_idle;
        let stream = self.stream.as_mut().ok_or(GONE)?;
        self.reader.read_line_ref(stream, t, "data").await
    }

    /// Like [`ServerSession::read_line_ref`], but before `deadline`: pass one [`Deadline`] for
    /// every line of a DATA transfer so that a client dripping the message text one line at a
    /// time cannot extend it (RFC 5321 §4.5.3.2 times the transfer, not each line).
    pub async fn read_line_by(&mut self, deadline: &mut Deadline) -> Result<&[u8], Error> {
        if !self.out.is_empty() && !self.reader.has_line() {
            self.send().await?;
        }
        let stream = self.stream.as_mut().ok_or(GONE)?;
        self.reader.read_line_by(stream, deadline, "data").await
    }

    /// Ends the session (after the application is done), logging the close event. Replies
    /// still held are dropped: call [`ServerSession::flush`] first.
    pub fn close(mut self, reason: CloseReason) -> Vec<ListenerEvent> {
        self.gate.closed(reason);
        self.flush_events();
        self.events
    }

    /// The transport, for an application that continues on its own (`None` after a failed
    /// handshake).
    pub fn into_stream(self) -> Option<SmtpStream<S>> {
        self.stream
    }

    /// Runs the command loop until a command for the application arrives (or QUIT).
    pub async fn next_command(&mut self) -> Result<SessionCommand, Error> {
        loop {
            if !self.out.is_empty() && !self.reader.has_line() {
                self.send().await?;
            }
            let t = self.config.timeouts.server_idle;
            let stream = self.stream.as_mut().ok_or(GONE)?;
            let line = match self.reader.read_line(stream, t, "command").await {
                Ok(l) => l,
                Err(e) => {
                    let reason = match &e {
                        Error::ConnectionClosed { .. } => CloseReason::PeerClosed,
                        Error::Timeout { .. } => CloseReason::Timeout,
                        Error::LineTooLong { .. } => {
                            let _ = self.reply(500, "5.5.2 Line too long").await;
                            let _ = self.flush().await;
                            CloseReason::ProtocolError {
                                detail: e.to_string(),
                            }
                        }
                        other => CloseReason::ProtocolError {
                            detail: other.to_string(),
                        },
                    };
                    self.gate.closed(reason);
                    self.flush_events();
                    return Err(e);
                }
            };
            let cmd = parse_command(&line)?;
            let verdict = if cmd.kind == CommandKind::StartTls
                && (cmd.request.is_err() || !is_bare_starttls(&line))
            {
                self.gate.on_starttls_with_parameters()
            } else {
                self.gate.on_parsed_command(&cmd)
            };
            self.flush_events();
            match verdict {
                GateVerdict::Refuse(r) => self.write(r.to_wire().as_bytes()).await?,
                GateVerdict::StartTls => self.start_tls().await?,
                GateVerdict::Proceed { advertise_starttls } => {
                    let request = match cmd.request {
                        Ok(r) => r,
                        Err(e) => {
                            let (code, text) = match cmd.kind {
                                CommandKind::Unknown => (500, "5.5.2 Command unrecognized"),
                                _ => (501, "5.5.4 Syntax error in parameters"),
                            };
                            tracing::debug!(error = %e, "malformed command");
                            self.reply(code, text).await?;
                            continue;
                        }
                    };
                    match request {
                        Request::Ehlo { host } | Request::Lhlo { host } => {
                            self.ehlo_reply(advertise_starttls).await?;
                            self.client_name = sanitise_client_name(&host);
                            return Ok(SessionCommand::Greeted { extended: true });
                        }
                        Request::Helo { host } => {
                            self.out.extend_from_slice(b"250 ");
                            self.out.extend_from_slice(self.config.hostname.as_bytes());
                            self.out.extend_from_slice(b"\r\n");
                            self.send_unless_pipelined().await?;
                            self.client_name = sanitise_client_name(&host);
                            return Ok(SessionCommand::Greeted { extended: false });
                        }
                        Request::Noop { .. } => self.reply(250, "2.0.0 OK").await?,
                        Request::Quit => {
                            self.out.extend_from_slice(b"221 2.0.0 Bye\r\n");
                            // Inside TLS the 221 (with any held replies) and the close_notify
                            // are queued in the TLS session and go out in one write.
                            self.queue_tls_close();
                            self.send().await?;
                            // Close TLS cleanly (close_notify, if not sent yet) or the TCP
                            // write side.
                            if let Some(stream) = self.stream.as_mut() {
                                let _ = stream.shutdown().await;
                            }
                            self.gate.closed(CloseReason::Quit);
                            self.flush_events();
                            return Ok(SessionCommand::Quit);
                        }
                        other => return Ok(SessionCommand::Command(other)),
                    }
                }
            }
        }
    }

    async fn ehlo_reply(&mut self, advertise_starttls: bool) -> Result<(), Error> {
        let starttls = advertise_starttls.then_some("STARTTLS");
        let in_tls: &[String] = if self.tls_parameters().is_some() {
            &self.config.tls_extensions
        } else {
            &[]
        };
        let lines = std::iter::once(self.config.hostname.as_str())
            .chain(self.config.extensions.iter().map(String::as_str))
            .chain(in_tls.iter().map(String::as_str))
            .chain(starttls);
        let n = 1 + self.config.extensions.len() + in_tls.len() + usize::from(advertise_starttls);
        for (i, l) in lines.enumerate() {
            self.out
                .extend_from_slice(if i + 1 == n { b"250 " } else { b"250-" });
            self.out.extend_from_slice(l.as_bytes());
            self.out.extend_from_slice(b"\r\n");
        }
        self.send_unless_pipelined().await
    }

    async fn start_tls(&mut self) -> Result<(), Error> {
        self.write(
            crate::listener::GateReply::READY_TO_START_TLS
                .to_wire()
                .as_bytes(),
        )
        .await?;
        // The `220` (and anything held before it) goes out now, whatever the client pipelined.
        self.flush().await?;
        // RFC 3207 §4.2 / CVE-2011-0411: nothing the client sent before the handshake counts.
        let discarded = self.reader.discard();
        self.gate.discarded_pipelined(discarded);
        self.client_name = None;
        let Some(acceptor) = self.acceptor.clone() else {
            return Err(Error::StateViolation {
                what: "STARTTLS without a certificate",
            });
        };
        let plain = match self.stream.take() {
            Some(SmtpStream::Plain(s)) => s,
            other => {
                self.stream = other;
                return Err(Error::StateViolation {
                    what: "STARTTLS inside TLS",
                });
            }
        };
        let t = self.config.timeouts.handshake;
        // The handshake's writes are held until it waits for the client (see `HeldWrites`):
        // what is left at its end (the TLS 1.3 session ticket) goes out with the first reply.
        // Boxed: the handshake future holds the whole rustls connection; inline, it would make
        // every session's future (and so every idle connection) that much larger.
        let accept = Box::pin(acceptor.accept(HeldWrites::new(plain)).into_fallible());
        let result = tokio::time::timeout(t, accept).await;
        match result {
            Ok(Ok(mut tls)) => {
                tls.get_mut().0.release();
                self.stream = Some(SmtpStream::ServerTls(Box::new(tls)));
                self.gate.handshake_succeeded();
                self.flush_events();
                Ok(())
            }
            Ok(Err((e, mut io))) => {
                // The fatal alert rustls queued is held: one attempt to write it, without
                // waiting (as tokio-rustls' own last write before the error), then the
                // connection is dropped.
                io.release();
                let _ = std::future::poll_fn(|cx| {
                    std::task::Poll::Ready(std::pin::Pin::new(&mut io).poll_flush(cx))
                })
                .await;
                self.gate.handshake_failed(e.to_string());
                self.flush_events();
                Err(Error::TlsHandshake {
                    detail: e.to_string(),
                })
            }
            Err(_) => {
                self.gate.handshake_failed("timeout");
                self.flush_events();
                Err(Error::Timeout {
                    phase: "TLS handshake",
                    seconds: t.as_secs(),
                })
            }
        }
    }

    /// Inside TLS: moves the held replies into the TLS session and queues close_notify after
    /// them, for [`ServerSession::send`] to write both in one go. What the session does not
    /// take stays held (written next, close_notify then follows at shutdown).
    fn queue_tls_close(&mut self) {
        let Some(SmtpStream::ServerTls(tls)) = self.stream.as_mut() else {
            return;
        };
        let conn = tls.get_mut().1;
        let taken = std::io::Write::write(&mut conn.writer(), &self.out).unwrap_or(0);
        self.out.drain(..taken);
        if self.out.is_empty() {
            conn.send_close_notify();
        }
    }

    /// Queues `bytes` as a reply (see [`ServerSession::reply`]).
    async fn write(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.out.extend_from_slice(bytes);
        self.send_unless_pipelined().await
    }

    /// Writes the held replies unless another complete command is already buffered.
    async fn send_unless_pipelined(&mut self) -> Result<(), Error> {
        if self.reader.has_line() {
            Ok(())
        } else {
            self.send().await
        }
    }

    /// Writes the held replies (one write, one TLS record for a command group).
    async fn send(&mut self) -> Result<(), Error> {
        let t = self.config.timeouts.server_idle;
        let stream = self.stream.as_mut().ok_or(GONE)?;
        let out = &mut self.out;
        let fut = async {
            stream.write_all(out).await?;
            out.clear();
            stream.flush().await
        };
        match tokio::time::timeout(t, fut).await {
            Ok(r) => r.map_err(|e| Error::Io {
                phase: "reply",
                kind: IoKind(e.kind()),
            }),
            Err(_) => Err(Error::Timeout {
                phase: "reply",
                seconds: t.as_secs(),
            }),
        }
    }

    fn flush_events(&mut self) {
        for e in self.gate.take_events() {
            log_event(&e);
            self.events.push(e);
        }
    }
}

const GONE: Error = Error::StateViolation {
    what: "session used after a failed handshake",
};

/// The client's greeting name as kept: printable ASCII, bounded; `None` when nothing is left.
fn sanitise_client_name(host: &str) -> Option<String> {
    let name: String = host
        .chars()
        .filter(char::is_ascii_graphic)
        .take(MAX_CLIENT_NAME)
        .collect();
    (!name.is_empty()).then_some(name)
}

fn is_bare_starttls(line: &[u8]) -> bool {
    let t = line.strip_suffix(b"\n").unwrap_or(line);
    let t = t.strip_suffix(b"\r").unwrap_or(t);
    t.trim_ascii_end().eq_ignore_ascii_case(b"STARTTLS")
}

fn log_event(e: &ListenerEvent) {
    match e {
        // The application logs the connection's policy (TLS required) at info already.
        ListenerEvent::TlsRequired => tracing::debug!("listener: TLS required for this connection"),
        ListenerEvent::MustIssueStartTlsSent { command } => {
            tracing::info!(
                ?command,
                "listener: sent 530 Must issue a STARTTLS command first"
            )
        }
        ListenerEvent::ClosedWithoutRecipients {
            reason,
            tls_established,
            must_issue_starttls_count,
        } => {
            tracing::warn!(%reason, tls_established, must_issue_starttls_count,
                "listener: TLS required, connection closed without any successful recipient")
        }
        ListenerEvent::PlaintextRecipientAllowed { recipient } => {
            tracing::info!(
                recipient = recipient.as_str(),
                "listener: TLS required, recipient accepted without TLS (TLS-RPT mailbox)"
            )
        }
        other => tracing::debug!(event = ?other, "listener"),
    }
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
