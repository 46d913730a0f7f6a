//! One inbound connection: HAT verdict, greeting, the SMTP session through smtp-tls-policy's
//! STARTTLS gate, mail transactions, and the durable hand-off to the spool.

use std::net::SocketAddr;
use std::time::SystemTime;

use smtp_proto::Request;
use smtp_tls_policy::io::{ServerSession, ServerSessionConfig, SessionCommand};
use smtp_tls_policy::listener::CloseReason;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use super::data::{DataOutcome, read_message};
use super::policy::{ConnectAction, ConnectionPolicy};
use super::received::{TraceInfo, received_header};
use super::tls_required::has_tls_required_no;
use super::transaction::{Reply, Transaction};
use super::{ListenerContext, facts, shutting_down};
use crate::{Envelope, TlsInfo, TlsRequest};

/// Runs one connection to its end. Never returns an error: every problem is an SMTP reply, a
/// closed connection and a log event.
pub(crate) async fn handle<S>(
    ctx: &ListenerContext,
    mut stream: S,
    peer: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let ip = peer.ip().to_canonical();
    let slot = ctx.counter.open(ip);
    if ctx.counter.total() > ctx.limits.max_connections {
        tracing::warn!(
            max = ctx.limits.max_connections,
            "listener connection limit reached"
        );
        let _ = write_and_close(
            &mut stream,
            "421 4.3.2 Too many connections, try again later",
        )
        .await;
        return;
    }
    let gathered = facts::gather(ctx, ip).await;
    if gathered.tentative {
        tracing::info!("connection: a DNS lookup the HAT verdict depends on failed");
        let _ = write_and_close(
            &mut stream,
            "421 4.4.3 Temporary DNS failure, try again later",
        )
        .await;
        return;
    }
    let verdict = ctx.hat.matches(&gathered.facts);
    // The forward-confirmed reverse name, when the HAT needed the PTR lookup (trace header).
    let ptr = gathered.facts.confirmed_names().next().map(str::to_owned);
    let policy = ConnectionPolicy::from_verdict(&verdict, &ctx.limits);
    let action = policy.connect_action(slot.count());
    tracing::info!(
        sender_group = policy.sender_group.as_deref().unwrap_or("-"),
        policy = policy.policy.as_deref().unwrap_or("-"),
        behavior = policy.behavior.as_str(),
        tls = ?policy.tls,
        matched_entry = verdict.matched_entry().map(|e| e.as_str()).unwrap_or("-"),
        from_ip = slot.count(),
        "connection: HAT verdict"
    );
    let control = match action {
        ConnectAction::Serve(c) => c,
        ConnectAction::TcpRefuse => return,
        ConnectAction::Reject => {
            let text = policy.banner.as_deref().unwrap_or("Access denied");
            let _ = write_and_close(&mut stream, &format!("554 5.7.1 {text}")).await;
            return;
        }
        ConnectAction::TooManyConnections => {
            let _ = write_and_close(
                &mut stream,
                "421 4.7.0 Too many connections from your address, try again later",
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
        return;
    }
    let mut extensions = vec![
        format!("SIZE {}", policy.limits.max_message_size),
        "PIPELINING".to_owned(),
        "8BITMIME".to_owned(),
        "ENHANCEDSTATUSCODES".to_owned(),
    ];
    extensions.shrink_to_fit();
    // RFC 8689 §2: REQUIRETLS is advertised only inside TLS.
    let config = ServerSessionConfig::new(ctx.hostname.clone(), extensions)
        .with_tls_extensions(vec!["REQUIRETLS".to_owned()])
        .with_timeouts(ctx.limits.timeouts());
    let acceptor = ctx.acceptor.clone();
    let mut session = match ServerSession::start(stream, policy.tls, acceptor, config).await {
        Ok(s) => s,
        Err(e) => {
            tracing::info!(error = %e, "connection: greeting failed");
            return;
        }
    };
    let mut tx = Transaction::new(policy.limits, control, ctx.accepted_domains.clone());
    // Protocol and cipher, once TLS is up (looked up and formatted once per connection).
    let mut tls: Option<TlsInfo> = None;
    let mut client = ClientTrace { ptr, esmtp: false };
    let reason = loop {
        let next = if tx.in_transaction() {
            session.next_command().await
        } else {
            // Biased, shutdown first: once the relay is shutting down, a command that is already
            // buffered gets `421`, never a random pick between the two ready branches.
            tokio::select! {
                biased;
                () = shutting_down(&mut shutdown) => {
                    let _ = session.reply(421, "4.3.2 Service shutting down").await;
                    break CloseReason::ProtocolError { detail: "relay shutting down".into() };
                }
                r = session.next_command() => r,
            }
        };
        if tls.is_none()
            && let Some(t) = tls_info(&session)
        {
            // RFC 3207 §4.2: everything known before the handshake is discarded.
            tx.reset();
            tx.set_tls();
            tracing::info!(
                tls_protocol = %t.protocol,
                tls_cipher = %t.cipher,
                "connection: TLS established"
            );
            tls = Some(t);
        }
        let request = match next {
            Ok(SessionCommand::Command(r)) => r,
            Ok(SessionCommand::Quit) => {
                tracing::info!(messages = tx.messages(), "connection: closed (QUIT)");
                return;
            }
            // RFC 5321 §4.1.4: EHLO/HELO clears a transaction in progress, like RSET.
            Ok(SessionCommand::Greeted { extended }) => {
                tx.reset();
                client.esmtp = extended;
                continue;
            }
            Ok(_) => continue,
            Err(e) => {
                // The session already logged the close (and answered `500` to an overlong line).
                tracing::info!(messages = tx.messages(), error = %e, "connection: ended");
                return;
            }
        };
        let reply = match request {
            Request::Mail { from } => tx.mail(&from.address, from.size as u64, from.flags),
            Request::Rcpt { to } => {
                let r = tx.rcpt(&to.address);
                if r.is_positive() {
                    session.recipient_accepted();
                }
                r
            }
            Request::Data => {
                let r = tx.data();
                if r.code != 354 {
                    r
                } else {
                    if session.reply(r.code, &r.text).await.is_err() {
                        return;
                    }
                    match receive(ctx, &mut session, &mut tx, peer, tls.clone(), &client).await {
                        Some(r) => r,
                        None => return,
                    }
                }
            }
            Request::Rset => tx.rset(),
            Request::Noop { .. } => tx.noop(),
            Request::Vrfy { .. } => tx.vrfy(),
            Request::Help { .. } => tx.help(),
            other => tx.not_implemented(other.name()),
        };
        if session.reply(reply.code, &reply.text).await.is_err() {
            return;
        }
        if reply.close {
            break CloseReason::ProtocolError {
                detail: reply.text.clone(),
            };
        }
    };
    tracing::info!(messages = tx.messages(), %reason, "connection: closed by the relay");
    // The last reply may be held behind commands the client pipelined (RFC 2920 §3.2).
    let _ = session.flush().await;
    let _ = session.close(reason);
}

/// What the trace header says about the client besides its address and EHLO/HELO name.
struct ClientTrace {
    /// Forward-confirmed reverse name (only when the HAT needed the PTR lookup).
    ptr: Option<String>,
    /// The last greeting was EHLO (ESMTP), not HELO.
    esmtp: bool,
}

/// Reads the message after `354`, spools it (fsynced) and hands it to delivery. Returns the
/// reply to send, or `None` when the connection is gone.
async fn receive<S>(
    ctx: &ListenerContext,
    session: &mut ServerSession<S>,
    tx: &mut Transaction,
    peer: SocketAddr,
    tls: Option<TlsInfo>,
    client: &ClientTrace,
) -> Option<Reply>
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
            return Some(Reply::new(
                552,
                "5.3.4 Message size exceeds fixed maximum message size",
            ));
        }
        DataOutcome::LineTooLong => {
            let _ = tx.finish(false);
            return Some(Reply::new(
                554,
                format!(
                    "5.6.0 Message has a line longer than {} octets (RFC 5321 section 4.5.3.1.6)",
                    ctx.limits.max_line_length
                ),
            ));
        }
        DataOutcome::Failed(reply) => {
            let _ = tx.finish(false);
            if let Some((code, text)) = reply {
                let _ = session.reply(code, text).await;
                let _ = session.flush().await;
            }
            return None;
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
        ptr: client.ptr.as_deref(),
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
    // RFC 5321 §6.1: `250` only once the message is safely stored (fsynced).
    match ctx.spool.accept(env, message).await {
        Ok(env) => {
            tracing::info!(id = %env.id, size, recipients, tls_request = ?env.tls_request, "message accepted");
            let reply = Reply::new(250, format!("2.0.0 Ok: queued as {}", env.id));
            (ctx.enqueue)(env);
            Some(reply)
        }
        Err(e) => {
            tracing::error!(error = %e, "spool: cannot store message");
            Some(Reply::new(
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

async fn write_and_close<S: AsyncWrite + Unpin>(stream: &mut S, line: &str) -> std::io::Result<()> {
    stream.write_all(format!("{line}\r\n").as_bytes()).await?;
    stream.flush().await?;
    stream.shutdown().await
}
