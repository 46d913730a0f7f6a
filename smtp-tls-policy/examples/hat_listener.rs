//! A listener with a Host Access Table, public API only: loads a HAT TOML, evaluates the HAT for
//! each connecting client, gates STARTTLS with the verdict's TLS setting ([`listener::Gate`] in
//! the [`io::ServerSession`] driver), accepts one message and prints it.
//!
//! `cargo run -p smtp-tls-policy --all-features --example hat_listener -- HAT.toml [ADDR]`
//! (`ADDR` defaults to `127.0.0.1:0`; the bound address is printed as `listening on ADDR`).
//!
//! The certificate is self-signed for `mx.example.test`, made at start. Only the client's address
//! is matched (no PTR or DNS-list lookups: hat-match's `resolver` feature makes them).
//!
//! [`listener::Gate`]: smtp_tls_policy::listener::Gate

use std::io::Write;
use std::sync::Arc;

use hat_match::{Behavior, Facts, HostAccessTable, ListenerTls};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use smtp_proto::Request;
use smtp_tls_policy::io::{ServerSession, ServerSessionConfig, SessionCommand};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// Most lines of one message this example keeps.
const MAX_MESSAGE_LINES: usize = 10_000;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: hat_listener HAT.toml [ADDR]")?;
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:0".into());
    let table = HostAccessTable::from_file(&path)?;
    let listener = TcpListener::bind(&addr).await?;
    println!("listening on {}", listener.local_addr()?);
    std::io::stdout().flush()?;

    let key = rcgen::KeyPair::generate()?;
    let cert = rcgen::CertificateParams::new(vec!["mx.example.test".into()])?.self_signed(&key)?;
    let chain = vec![CertificateDer::from(cert.der().to_vec())];
    let key = PrivateKeyDer::try_from(key.serialize_der())?;
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    let acceptor = TlsAcceptor::from(Arc::new(config));

    loop {
        let (mut stream, peer) = listener.accept().await?;
        let verdict = table.matches(&Facts::new(peer.ip()));
        let group = verdict.sender_group().unwrap_or("(none)");
        let tls = verdict.tls().unwrap_or(ListenerTls::No);
        println!("client {peer}: sender group {group}, tls {tls:?}");
        if !matches!(verdict.behavior(), Behavior::Accept | Behavior::Relay) {
            println!("client {peer}: {:?}", verdict.behavior());
            stream.write_all(b"554 5.7.1 Access denied\r\n").await?;
            continue;
        }
        let config = ServerSessionConfig::new("mx.example.test", vec!["8BITMIME".into()]);
        let mut session = ServerSession::start(stream, tls, Some(acceptor.clone()), config).await?;
        if let Some(message) = one_message(&mut session).await? {
            let tls = session.tls_parameters().map(|(v, _)| format!("{v:?}"));
            println!("message over {}:", tls.as_deref().unwrap_or("plaintext"));
            print!("{message}");
            return Ok(());
        }
    }
}

/// Runs the session until one message is accepted (`Some`) or the client leaves (`None`).
async fn one_message<S>(
    session: &mut ServerSession<S>,
) -> Result<Option<String>, Box<dyn std::error::Error>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut envelope = String::new();
    let mut message = None;
    loop {
        let command = match session.next_command().await {
            Ok(SessionCommand::Command(c)) => c,
            Ok(SessionCommand::Greeted { .. }) => continue,
            Ok(SessionCommand::Quit) | Err(_) => return Ok(message),
            Ok(_) => continue,
        };
        match command {
            Request::Mail { from } => {
                envelope = format!("from <{}>\n", from.address);
                session.reply(250, "2.1.0 OK").await?;
            }
            Request::Rcpt { to } => {
                envelope.push_str(&format!("to <{}>\n", to.address));
                session.recipient_accepted();
                session.reply(250, "2.1.5 OK").await?;
            }
            Request::Data => {
                session
                    .reply(354, "End data with <CR><LF>.<CR><LF>")
                    .await?;
                session.flush().await?;
                let mut text = std::mem::take(&mut envelope);
                for _ in 0..MAX_MESSAGE_LINES {
                    let line = session.read_line().await?;
                    if line == b".\r\n" {
                        message = Some(text);
                        break;
                    }
                    let line = line.strip_prefix(b".").unwrap_or(&line);
                    text.push_str(&String::from_utf8_lossy(line).replace("\r\n", "\n"));
                }
                let (code, reply) = match message {
                    Some(_) => (250, "2.0.0 Accepted"),
                    None => (552, "5.3.4 Message too long"),
                };
                session.reply(code, reply).await?;
                if message.is_none() {
                    return Ok(None);
                }
            }
            Request::Rset => session.reply(250, "2.0.0 OK").await?,
            _ => session.reply(502, "5.5.1 Not implemented here").await?,
        }
    }
}
