//! Sink mode: a minimal but correct SMTP server that counts messages and discards bodies.

use std::borrow::Cow;
use std::fs::File;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use smtp_proto::Request;
use smtp_proto::request::receiver::{DataReceiver, RequestReceiver};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::tls;

/// Most header bytes scanned for the Message-ID.
const MAX_HEADER_SCAN: usize = 64 * 1024;
/// Most recipients per transaction.
const MAX_RECIPIENTS: usize = 1000;

/// Sink options.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Address to listen on (port 0: any free port; the chosen one is printed).
    #[arg(long)]
    listen: SocketAddr,
    /// Certificate chain (PEM): offer STARTTLS.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Private key (PEM) for `--tls-cert`.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Append each accepted message's Message-ID (or `-`) to this file, one per line.
    #[arg(long)]
    count_file: Option<PathBuf>,
    /// Host name in the banner and EHLO reply.
    #[arg(long, default_value = "smtp-load-sink.invalid")]
    hostname: String,
    /// Largest message accepted (advertised with SIZE, RFC 1870).
    #[arg(long, default_value_t = 32 << 20)]
    max_size: usize,
    /// Idle timeout per command, in seconds (RFC 5321 §4.5.3.2 suggests 5 minutes).
    #[arg(long, default_value_t = 300)]
    idle_timeout: u64,
}

struct Ctx {
    hostname: String,
    max_size: usize,
    idle: Duration,
    tls: Option<TlsAcceptor>,
    count_file: Option<Mutex<File>>,
    messages: AtomicU64,
    connections: AtomicU64,
}

/// Runs the sink until SIGINT/SIGTERM; prints a JSON line with the listening address first,
/// and a JSON summary at the end.
pub(crate) async fn run(args: Args) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => Some(TlsAcceptor::from(tls::server_config(c, k)?)),
        _ => None,
    };
    let count_file = match &args.count_file {
        Some(p) => Some(Mutex::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| format!("{}: {e}", p.display()))?,
        )),
        None => None,
    };
    let ctx = Arc::new(Ctx {
        hostname: args.hostname,
        max_size: args.max_size,
        idle: Duration::from_secs(args.idle_timeout),
        tls,
        count_file,
        messages: AtomicU64::new(0),
        connections: AtomicU64::new(0),
    });
    let listener = TcpListener::bind(args.listen).await?;
    println!(
        "{}",
        serde_json::json!({ "listening": listener.local_addr()?.to_string() })
    );
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((tcp, _peer)) = accepted else { continue };
                let _ = tcp.set_nodelay(true);
                ctx.connections.fetch_add(1, Ordering::Relaxed);
                let ctx = Arc::clone(&ctx);
                tokio::spawn(async move {
                    let _ = connection(tcp, &ctx).await;
                });
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = sigterm.recv() => break,
        }
    }
    println!(
        "{}",
        serde_json::json!({
            "messages": ctx.messages.load(Ordering::Relaxed),
            "connections": ctx.connections.load(Ordering::Relaxed),
        })
    );
    Ok(ExitCode::SUCCESS)
}

async fn connection(mut tcp: tokio::net::TcpStream, ctx: &Ctx) -> std::io::Result<()> {
    let banner = format!("220 {} ESMTP smtp-load sink\r\n", ctx.hostname);
    tcp.write_all(banner.as_bytes()).await?;
    if session(&mut tcp, ctx, false).await? == End::StartTls {
        if let Some(acceptor) = &ctx.tls {
            let mut stream = acceptor.accept(tcp).await?;
            session(&mut stream, ctx, true).await?;
            stream.shutdown().await?;
        }
    }
    Ok(())
}

#[derive(Debug, PartialEq, Eq)]
enum End {
    Closed,
    StartTls,
}

#[derive(Default)]
struct Txn {
    helo: bool,
    mail: bool,
    rcpts: usize,
}

/// One SMTP session on `stream` (plaintext or inside TLS). Returns `StartTls` after answering
/// `220` to STARTTLS; anything the client pipelined after it is discarded (RFC 3207 §4.2).
async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    ctx: &Ctx,
    in_tls: bool,
) -> std::io::Result<End> {
    let mut rx = RequestReceiver::default();
    let mut txn = Txn::default();
    let mut out: Vec<u8> = Vec::with_capacity(512);
    let mut chunk = vec![0u8; 16 * 1024];
    let mut data: Option<DataState> = None;
    loop {
        if !out.is_empty() {
            stream.write_all(&out).await?;
            out.clear();
        }
        let n = match tokio::time::timeout(ctx.idle, stream.read(&mut chunk)).await {
            Ok(r) => r?,
            Err(_) => {
                let _ = stream.write_all(b"421 4.4.2 idle timeout\r\n").await;
                return Ok(End::Closed);
            }
        };
        if n == 0 {
            return Ok(End::Closed);
        }
        let mut iter = chunk[..n].iter();
        loop {
            if let Some(d) = &mut data {
                if !d.ingest(&mut iter) {
                    break;
                }
                let d = data.take().unwrap_or_default();
                out.extend_from_slice(d.finish(ctx).as_bytes());
                txn = Txn {
                    helo: true,
                    ..Txn::default()
                };
                continue;
            }
            let request = match rx.ingest(&mut iter) {
                Ok(r) => r,
                Err(smtp_proto::Error::NeedsMoreData { .. }) => break,
                Err(smtp_proto::Error::ResponseTooLong) => {
                    out.extend_from_slice(b"500 5.5.2 line too long\r\n");
                    continue;
                }
                Err(_) => {
                    out.extend_from_slice(b"500 5.5.2 syntax error\r\n");
                    continue;
                }
            };
            match reply(request, &mut txn, ctx, in_tls) {
                Action::Reply(r) => out.extend_from_slice(r.as_bytes()),
                Action::Data => {
                    out.extend_from_slice(b"354 end data with <CR><LF>.<CR><LF>\r\n");
                    data = Some(DataState::default());
                }
                Action::Quit => {
                    out.extend_from_slice(format!("221 2.0.0 {} bye\r\n", ctx.hostname).as_bytes());
                    stream.write_all(&out).await?;
                    return Ok(End::Closed);
                }
                Action::StartTls => {
                    // Bytes after STARTTLS in this read (and in `rx`) are dropped unread.
                    out.extend_from_slice(b"220 2.0.0 ready to start TLS\r\n");
                    stream.write_all(&out).await?;
                    return Ok(End::StartTls);
                }
            }
        }
    }
}

enum Action {
    Reply(Cow<'static, str>),
    Data,
    Quit,
    StartTls,
}

fn reply(req: Request<Cow<'_, str>>, txn: &mut Txn, ctx: &Ctx, in_tls: bool) -> Action {
    let r = |s: &'static str| Action::Reply(Cow::Borrowed(s));
    match req {
        Request::Ehlo { .. } => {
            *txn = Txn {
                helo: true,
                ..Txn::default()
            };
            let mut caps = vec![
                ctx.hostname.clone(),
                "PIPELINING".into(),
                format!("SIZE {}", ctx.max_size),
                "8BITMIME".into(),
                "ENHANCEDSTATUSCODES".into(),
            ];
            if ctx.tls.is_some() && !in_tls {
                caps.push("STARTTLS".into());
            }
            let last = caps.len() - 1;
            let text = caps
                .iter()
                .enumerate()
                .map(|(i, c)| format!("250{}{c}\r\n", if i == last { ' ' } else { '-' }))
                .collect::<String>();
            Action::Reply(Cow::Owned(text))
        }
        Request::Helo { .. } => {
            *txn = Txn {
                helo: true,
                ..Txn::default()
            };
            Action::Reply(Cow::Owned(format!("250 {}\r\n", ctx.hostname)))
        }
        Request::Mail { from } => {
            if !txn.helo {
                r("503 5.5.1 EHLO first\r\n")
            } else if txn.mail {
                r("503 5.5.1 nested MAIL\r\n")
            } else if from.size > ctx.max_size {
                r("552 5.3.4 message size exceeds limit\r\n")
            } else {
                txn.mail = true;
                r("250 2.1.0 ok\r\n")
            }
        }
        Request::Rcpt { .. } => {
            if !txn.mail {
                r("503 5.5.1 MAIL first\r\n")
            } else if txn.rcpts >= MAX_RECIPIENTS {
                r("452 4.5.3 too many recipients\r\n")
            } else {
                txn.rcpts += 1;
                r("250 2.1.5 ok\r\n")
            }
        }
        Request::Data if txn.rcpts == 0 => r("503 5.5.1 RCPT first\r\n"),
        Request::Data => Action::Data,
        Request::Rset => {
            *txn = Txn {
                helo: txn.helo,
                ..Txn::default()
            };
            r("250 2.0.0 ok\r\n")
        }
        Request::Noop { .. } => r("250 2.0.0 ok\r\n"),
        Request::Quit => Action::Quit,
        Request::StartTls if in_tls => r("503 5.5.1 TLS already active\r\n"),
        Request::StartTls if ctx.tls.is_none() => r("502 5.5.1 STARTTLS not offered\r\n"),
        Request::StartTls => Action::StartTls,
        _ => r("502 5.5.1 command not implemented\r\n"),
    }
}

/// The DATA phase: un-stuffing by smtp-proto, header kept for the Message-ID, body counted.
#[derive(Default)]
struct DataState {
    rx: Option<DataReceiver>,
    buf: Vec<u8>,
    header: Vec<u8>,
    header_done: bool,
    /// Body bytes (at most one over, see the test `header_split_across_reads_is_found`).
    size: usize,
}

impl DataState {
    /// Feeds bytes; `true` once the end-of-data line has been seen.
    fn ingest(&mut self, iter: &mut std::slice::Iter<'_, u8>) -> bool {
        let rx = self.rx.get_or_insert_with(data_receiver);
        let done = rx.ingest(iter, &mut self.buf);
        self.size += self.buf.len();
        if !self.header_done {
            // Search only the new bytes (and the 3 before them): linear in the header size.
            let from = self.header.len().saturating_sub(3);
            self.header.extend_from_slice(&self.buf);
            if let Some(p) = find(&self.header[from..], b"\r\n\r\n") {
                self.header.truncate(from + p + 2);
                self.header_done = true;
            } else if self.header.len() > MAX_HEADER_SCAN || done {
                self.header_done = true;
            }
        }
        self.buf.clear();
        done
    }

    fn finish(self, ctx: &Ctx) -> String {
        if self.size > ctx.max_size {
            return "552 5.3.4 message size exceeds limit\r\n".into();
        }
        let id = message_id(&self.header).unwrap_or_else(|| "-".into());
        if let Some(f) = &ctx.count_file {
            let mut f = f.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if writeln!(f, "{id}").is_err() {
                return "451 4.3.0 cannot record message\r\n".into();
            }
        }
        let n = ctx.messages.fetch_add(1, Ordering::Relaxed) + 1;
        format!("250 2.0.0 ok: queued as {n}\r\n")
    }
}

/// A DATA receiver primed with the CRLF that ended the `DATA` command line.
///
/// smtp-proto 0.2's `DataReceiver` starts as if in the middle of a line, so on its own it
/// neither un-stuffs a leading `..` on the first line nor sees an immediate `.` (empty
/// message) as the end of data; RFC 5321 §4.5.2 counts the first line like any other.
pub(crate) fn data_receiver() -> DataReceiver {
    let mut rx = DataReceiver::new();
    let mut scratch = Vec::new();
    rx.ingest(&mut b"\r\n".iter(), &mut scratch);
    rx
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The Message-ID field value (RFC 5322 §3.6.4), unfolded and restricted to printable ASCII.
fn message_id(header: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(header);
    let mut lines = text.split("\r\n").peekable();
    while let Some(line) = lines.next() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if !name.eq_ignore_ascii_case("message-id") {
            continue;
        }
        let mut v = value.to_owned();
        while let Some(next) = lines.next_if(|l| l.starts_with([' ', '\t'])) {
            v.push_str(next);
        }
        let v: String = v.chars().filter(char::is_ascii_graphic).take(998).collect();
        return (!v.is_empty()).then_some(v);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_line_dot_and_empty_message() {
        for (wire, body) in [
            (&b".\r\n"[..], &b""[..]),
            (b"..x\r\n.\r\n", b".x\r\n"),
            (b"a\r\n.\r\n", b"a\r\n"),
        ] {
            let mut out = Vec::new();
            assert!(data_receiver().ingest(&mut wire.iter(), &mut out));
            assert_eq!(out, body);
        }
    }

    #[test]
    fn header_split_across_reads_is_found() {
        let wire =
            b"Subject: a\r\nMessage-ID: <split@x>\r\n\r\nbody\r\nMessage-ID: <no@x>\r\n.\r\n";
        let mut d = DataState::default();
        let mut done = false;
        for b in wire.chunks(1) {
            assert!(!done);
            done = d.ingest(&mut b.iter());
        }
        assert!(done);
        assert_eq!(message_id(&d.header), Some("<split@x>".into()));
        // Exact when the end-of-data line arrives in one read; one byte over when its CR and LF
        // arrive separately (the CR was already counted when smtp-proto takes it back).
        assert!(
            (wire.len() - 3..=wire.len() - 2).contains(&d.size),
            "{}",
            d.size
        );
    }

    #[test]
    fn message_id_is_found_and_unfolded() {
        assert_eq!(
            message_id(b"Subject: x\r\nmessage-ID:\r\n <a@b>\r\n"),
            Some("<a@b>".into())
        );
        assert_eq!(message_id(b"Subject: x\r\n"), None);
    }
}
