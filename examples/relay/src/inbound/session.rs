//! One inbound connection: HAT verdict, greeting, the SMTP session through smtp-tls-policy's
//! STARTTLS gate, mail transactions, and the durable hand-off to the spool.

use std::net::SocketAddr;
use std::time::SystemTime;

use smtp_proto::Request;
use smtp_tls_policy::Error as SessionError;
use smtp_tls_policy::io::{ServerSession, ServerSessionConfig, SessionCommand};
use smtp_tls_policy::listener::CloseReason;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use super::conn_log::{ConnLog, Outcome};
use super::data::{DataOutcome, read_message};
use super::policy::{ConnectAction, ConnectionPolicy};
use super::received::{TraceInfo, received_header};
use super::tls_required::has_tls_required_no;
use super::transaction::{Reply, Transaction};
use super::{ListenerContext, facts, shutting_down};
use crate::{Envelope, TlsInfo, TlsRequest};
use hat_match::ListenerTls;

/// Runs one connection to its end. Never returns an error: every problem is an SMTP reply, a
/// closed connection and the connection's log line ([`ConnLog`], one per connection, emitted
/// on every path).
pub(crate) async fn handle<S>(
    ctx: &ListenerContext,
    stream: S,
    peer: SocketAddr,
    shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut log = ConnLog::new(&ctx.name, peer);
    run(ctx, stream, peer, shutdown, &mut log).await;
}

async fn run<'a, S>(
    ctx: &'a ListenerContext,
    mut stream: S,
    peer: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
    log: &mut ConnLog<'a>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let ip = peer.ip().to_canonical();
    let slot = ctx.counter.open(ip);
    log.from_ip = slot.count();
    if slot.total() > ctx.limits.max_connections {
        log.end(Outcome::ListenerFull, None);
        let _ = write_and_close(
            &mut stream,
            b"421 4.3.2 Too many connections, try again later\r\n",
        )
        .await;
        return;
    }
    let gathered = facts::gather(ctx, ip).await;
    if gathered.tentative {
        log.end(
            Outcome::DnsTempFail,
            Some("a DNS lookup the HAT verdict depends on failed".into()),
        );
        let _ = write_and_close(
            &mut stream,
            b"421 4.4.3 Temporary DNS failure, try again later\r\n",
        )
        .await;
        return;
    }
    let verdict = ctx.hat.matches(&gathered.facts);
    // The forward-confirmed reverse name, when the HAT needed the PTR lookup (trace header).
    log.ptr = gathered.facts.confirmed_names().next().map(str::to_owned);
    let policy = ConnectionPolicy::from_verdict(&verdict, &ctx.limits);
    let action = policy.connect_action(slot.count());
    log.sender_group = verdict.sender_group();
    log.policy = verdict.policy().map(|p| p.name());
    log.matched_entry = verdict.matched_entry().map(|e| e.as_str());
    log.behavior = Some(policy.behavior);
    log.tls_setting = Some(policy.tls);
    tracing::debug!(
        peer = %peer,
        sender_group = policy.sender_group.as_deref().unwrap_or("-"),
        policy = policy.policy.as_deref().unwrap_or("-"),
        behavior = policy.behavior.as_str(),
        tls = policy.tls.as_str(),
        from_ip = slot.count(),
        "connect: HAT verdict"
    );
    let control = match action {
        ConnectAction::Serve(c) => c,
        ConnectAction::TcpRefuse => {
            log.end(Outcome::Refused, None);
            return;
        }
        ConnectAction::Reject => {
            log.end(Outcome::Rejected, None);
            let text = policy.banner.as_deref().unwrap_or("Access denied");
            let _ = write_and_close(&mut stream, format!("554 5.7.1 {text}\r\n").as_bytes()).await;
            return;
        }
        ConnectAction::TooManyConnections => {
            log.end(Outcome::TooManyFromIp, None);
            let _ = write_and_close(
                &mut stream,
                b"421 4.7.0 Too many connections from your address, try again later\r\n",
            )
            .await;
            return;
        }
    };
    // A policy banner goes on the first line of a multi-line greeting (RFC 5321 §4.2.1); the
    // session sends the final `220 <hostname> ESMTP` line.
    if let Some(b) = &policy.banner
        && stream
            .write_all(format!("220-{b}\r\n").as_bytes())
            .await
            .is_err()
    {
        log.end(Outcome::GreetingFailed, None);
        return;
    }
    let config = session_config(ctx, policy.limits.max_message_size);
    let acceptor = ctx.acceptor.clone();
    let mut session = match ServerSession::start(stream, policy.tls, acceptor, config).await {
        Ok(s) => s,
        Err(e) => {
            log.end(Outcome::GreetingFailed, Some(e.to_string()));
            return;
        }
    };
    let mut tx = Transaction::new(policy.limits, control, ctx.accepted_domains.clone());
    let mut client = ClientTrace {
        ptr: None,
        esmtp: false,
        tls_required: policy.tls == ListenerTls::Required,
    };
    let ended = serve_commands(
        ctx,
        &mut session,
        &mut tx,
        &mut shutdown,
        peer,
        log,
        &mut client,
    )
    .await;
    log.counts.messages = tx.messages();
    match ended {
        Some(reason) => {
            // The last reply may be held behind commands the client pipelined (RFC 2920 §3.2).
            let _ = session.flush().await;
            log.gate_events(&session.close(reason));
        }
        None => log.gate_events(session.events()),
    }
}

/// The command loop; `Some(reason)` when the relay ends the connection (the caller flushes
/// and closes the session), `None` when it already ended (QUIT, client gone, error).
async fn serve_commands<'a, S>(
    ctx: &'a ListenerContext,
    session: &mut ServerSession<S>,
    tx: &mut Transaction,
    shutdown: &mut watch::Receiver<bool>,
    peer: SocketAddr,
    log: &mut ConnLog<'a>,
    client: &mut ClientTrace<'a>,
) -> Option<CloseReason>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        let next = if tx.in_transaction() {
            session.next_command().await
        } else {
            // Biased, shutdown first: once the relay is shutting down, a command that is already
            // buffered gets `421`, never a random pick between the two ready branches.
            tokio::select! {
                biased;
                () = shutting_down(shutdown) => {
                    let _ = session.reply(421, "4.3.2 Service shutting down").await;
                    log.end(Outcome::Shutdown, None);
                    return Some(CloseReason::ProtocolError { detail: "relay shutting down".into() });
                }
                r = session.next_command() => r,
            }
        };
        if log.tls.is_none()
            && let Some(t) = tls_info(session)
        {
            // RFC 3207 §4.2: everything known before the handshake is discarded.
            tx.reset();
            tx.set_tls();
            tracing::debug!(
                tls_protocol = %t.protocol,
                tls_cipher = %t.cipher,
                "connection: TLS established"
            );
            log.tls = Some(t);
        }
        let request = match next {
            Ok(SessionCommand::Command(r)) => r,
            Ok(SessionCommand::Quit) => {
                log.end(Outcome::Quit, None);
                return None;
            }
            // RFC 5321 §4.1.4: EHLO/HELO clears a transaction in progress, like RSET.
            Ok(SessionCommand::Greeted { extended }) => {
                tx.reset();
                client.esmtp = extended;
                log.counts.ehlo += 1;
                log.helo = session.client_name().map(str::to_owned);
                continue;
            }
            Ok(_) => continue,
            Err(e) => {
                // The session already answered `500` to an overlong line.
                let outcome = match &e {
                    SessionError::ConnectionClosed { .. } => Outcome::PeerClosed,
                    SessionError::Timeout { .. } => Outcome::Timeout,
                    SessionError::TlsHandshake { .. } => Outcome::TlsFailed,
                    _ => Outcome::Error,
                };
                let detail = (outcome != Outcome::PeerClosed).then(|| e.to_string());
                log.end(outcome, detail);
                return None;
            }
        };
        let reply = match request {
            Request::Mail { from } => {
                log.counts.mail += 1;
                tx.mail(&from.address, from.size as u64, from.flags)
            }
            Request::Rcpt { to } => {
                log.counts.rcpt += 1;
                let r = tx.rcpt(&to.address);
                if r.is_positive() {
                    log.counts.rcpt_ok += 1;
                    session.recipient_accepted();
                }
                r
            }
            Request::Data => {
                log.counts.data += 1;
                let r = tx.data();
                if r.code != 354 {
                    r
                } else {
                    if let Err(e) = session.reply(r.code, &r.text).await {
                        log.end(Outcome::Error, Some(e.to_string()));
                        return None;
                    }
                    let trace = ClientTrace {
                        ptr: log.ptr.as_deref(),
                        ..*client
                    };
                    match receive(ctx, session, tx, peer, log.tls.clone(), &trace).await {
                        Ok(r) => {
                            // Counted now: the line is also written if the task is dropped.
                            log.counts.messages = tx.messages();
                            r
                        }
                        Err(detail) => {
                            log.end(Outcome::DataFailed, Some(detail));
                            return None;
                        }
                    }
                }
            }
            Request::Rset => {
                log.counts.rset += 1;
                tx.rset()
            }
            Request::Noop { .. } => tx.noop(),
            Request::Vrfy { .. } => {
                log.counts.other += 1;
                tx.vrfy()
            }
            Request::Help { .. } => {
                log.counts.other += 1;
                tx.help()
            }
            other => {
                log.counts.other += 1;
                tx.not_implemented(other.name())
            }
        };
        if let Err(e) = session.reply(reply.code, &reply.text).await {
            log.end(Outcome::Error, Some(e.to_string()));
            return None;
        }
        if reply.close {
            log.end(Outcome::ClosedByRelay, Some(reply.text.clone()));
            return Some(CloseReason::ProtocolError { detail: reply.text });
        }
    }
}

/// The session settings of a connection: the listener's (built once, in [`serve`]) when the
/// policy's message size limit is the global one, otherwise with its own `SIZE`.
///
/// [`serve`]: super::serve
fn session_config(ctx: &ListenerContext, max_message_size: u64) -> ServerSessionConfig {
    ServerSessionConfig::new(ctx.hostname.clone(), extensions(max_message_size))
        .with_tls_extensions(vec!["REQUIRETLS".to_owned()])
        .with_timeouts(ctx.limits.timeouts())
        .with_plaintext_recipients(ctx.plaintext_recipients.clone())
}

/// The EHLO keywords besides STARTTLS (added by the gate) and REQUIRETLS (inside TLS only,
/// RFC 8689 §2).
fn extensions(max_message_size: u64) -> Vec<String> {
    vec![
        format!("SIZE {max_message_size}"),
        "PIPELINING".to_owned(),
        "8BITMIME".to_owned(),
        "ENHANCEDSTATUSCODES".to_owned(),
    ]
}

/// What the trace header says about the client besides its address and EHLO/HELO name.
struct ClientTrace<'a> {
    /// Forward-confirmed reverse name (only when the HAT needed the PTR lookup).
    ptr: Option<&'a str>,
    /// The last greeting was EHLO (ESMTP), not HELO.
    esmtp: bool,
    /// The connection's mail flow policy requires TLS: a message received without it went
    /// only to TLS-RPT mailboxes (the gate refuses every other recipient before STARTTLS).
    tls_required: bool,
}

/// Reads the message after `354`, spools it (fsynced) and hands it to delivery. Returns the
/// reply to send, or why the connection is gone.
async fn receive<S>(
    ctx: &ListenerContext,
    session: &mut ServerSession<S>,
    tx: &mut Transaction,
    peer: SocketAddr,
    tls: Option<TlsInfo>,
    client: &ClientTrace<'_>,
) -> Result<Reply, String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let limits = tx.limits();
    let outcome = read_message(
        session,
        limits.max_message_size,
        ctx.limits.max_line_length as usize,
        super::limits::secs(ctx.limits.data_timeout_secs),
    )
    .await;
    let body = match outcome {
        DataOutcome::Complete(body) => body,
        DataOutcome::TooBig => {
            let _ = tx.finish(false);
            return Ok(Reply::new(
                552,
                "5.3.4 Message size exceeds fixed maximum message size",
            ));
        }
        DataOutcome::LineTooLong => {
            let _ = tx.finish(false);
            return Ok(Reply::new(
                554,
                format!(
                    "5.6.0 Message has a line longer than {} octets (RFC 5321 section 4.5.3.1.6)",
                    ctx.limits.max_line_length
                ),
            ));
        }
        DataOutcome::Failed { reply, detail } => {
            let _ = tx.finish(false);
            if let Some((code, text)) = reply {
                let _ = session.reply(code, text).await;
                let _ = session.flush().await;
            }
            return Err(detail);
        }
    };
    let collected = tx.finish(true);
    let now = SystemTime::now();
    let tls_request = TlsRequest::from_receipt(collected.requiretls, has_tls_required_no(&body));
    let mut env = Envelope::new(&collected.sender, collected.recipients, now);
    env.tls_request = tls_request;
    env.source = Some(peer);
    env.helo = session.client_name().map(str::to_owned);
    env.tls = tls;
    let trace = received_header(&TraceInfo {
        helo: session.client_name(),
        esmtp: client.esmtp,
        ptr: client.ptr,
        ip: peer.ip(),
        by: &ctx.hostname,
        id: env.id.as_str(),
        tls: env
            .tls
            .as_ref()
            .map(|t| (t.protocol.as_str(), t.cipher.as_str())),
        for_recipient: (env.recipients.len() == 1).then(|| env.recipients[0].address.as_str()),
        when: now,
    });
    let mut message = Vec::with_capacity(trace.len() + body.len());
    message.extend_from_slice(trace.as_bytes());
    message.extend_from_slice(&body);
    drop(body);
    let recipients = env.recipients.len();
    let size = message.len();
    let tls = match &env.tls {
        Some(t) => t.protocol.clone(),
        None if client.tls_required => "none (TLS-RPT mailbox)".to_owned(),
        None => "none".to_owned(),
    };
    // RFC 5321 §6.1: `250` only once the message is safely stored (fsynced).
    match ctx.spool.accept(env, message).await {
        Ok(env) => {
            // The message's one line (Postfix: `cleanup`/`qmgr` `from=<..>, size=.., nrcpt=..`).
            tracing::info!(
                target: "relay::message",
                id = %env.id,
                listener = %ctx.name,
                peer = %peer,
                size,
                recipients,
                tls,
                tls_request = ?env.tls_request,
                "message accepted"
            );
            let reply = Reply::new(250, format!("2.0.0 Ok: queued as {}", env.id));
            (ctx.enqueue)(env);
            Ok(reply)
        }
        Err(e) => {
            tracing::error!(listener = %ctx.name, peer = %peer, error = %e,
                "spool: cannot store message");
            Ok(Reply::new(
                451,
                "4.3.0 Local error in processing, try again later",
            ))
        }
    }
}

fn tls_info<S: AsyncRead + AsyncWrite + Unpin>(session: &ServerSession<S>) -> Option<TlsInfo> {
    session.tls_parameters().map(|(p, c)| TlsInfo {
        protocol: format!("{p:?}"),
        cipher: format!("{c:?}"),
    })
}

/// Writes one reply (CRLF included) and closes the write side.
async fn write_and_close<S: AsyncWrite + Unpin>(
    stream: &mut S,
    reply: &[u8],
) -> std::io::Result<()> {
    stream.write_all(reply).await?;
    stream.flush().await?;
    stream.shutdown().await
}
