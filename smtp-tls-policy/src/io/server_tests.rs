//! The session's greeting handling over an in-memory stream: `Greeted` after every EHLO/HELO,
//! the client name kept sanitised and bounded, forgotten at STARTTLS' reset.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};

use super::*;
use crate::listener::ListenerTls;

async fn session(tls: ListenerTls) -> (ServerSession<DuplexStream>, DuplexStream) {
    let (server, mut client) = duplex(64 * 1024);
    let cfg = ServerSessionConfig::new("mx.example.test", vec!["PIPELINING".into()])
        .with_timeouts(Timeouts::uniform(Duration::from_secs(5)));
    let s = ServerSession::start(server, tls, None, cfg).await.unwrap();
    let greeting = read_reply(&mut client).await;
    assert_eq!(greeting, "220 mx.example.test ESMTP\r\n");
    (s, client)
}

/// Reads what the server wrote until a final reply line (`NNN ` at a line start).
async fn read_reply(client: &mut DuplexStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf))
            .await
            .expect("reply in time")
            .unwrap();
        assert!(n > 0, "server closed");
        out.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&out);
        if text.ends_with("\r\n")
            && text
                .lines()
                .last()
                .is_some_and(|l| l.as_bytes().get(3) == Some(&b' '))
        {
            return text.into_owned();
        }
    }
}

#[tokio::test]
async fn greetings_are_reported_with_the_client_name() {
    let (mut s, mut c) = session(ListenerTls::Preferred).await;
    assert_eq!(s.client_name(), None);

    c.write_all(b"EHLO client.example.org\r\n").await.unwrap();
    assert_eq!(
        s.next_command().await.unwrap(),
        SessionCommand::Greeted { extended: true }
    );
    assert_eq!(s.client_name(), Some("client.example.org"));
    let reply = read_reply(&mut c).await;
    assert!(reply.starts_with("250-mx.example.test\r\n"), "{reply}");

    // A transaction command goes to the application; the name stays.
    c.write_all(b"MAIL FROM:<a@example.org>\r\n").await.unwrap();
    assert!(matches!(
        s.next_command().await.unwrap(),
        SessionCommand::Command(Request::Mail { .. })
    ));
    assert_eq!(s.client_name(), Some("client.example.org"));
    s.reply(250, "2.1.0 OK").await.unwrap();
    read_reply(&mut c).await;

    // HELO mid-transaction: reported (the application resets), the name replaced.
    c.write_all(b"HELO [192.0.2.1]\r\n").await.unwrap();
    assert_eq!(
        s.next_command().await.unwrap(),
        SessionCommand::Greeted { extended: false }
    );
    assert_eq!(s.client_name(), Some("[192.0.2.1]"));
    assert_eq!(read_reply(&mut c).await, "250 mx.example.test\r\n");

    // LHLO counts as an extended greeting.
    c.write_all(b"LHLO lmtp.example.org\r\n").await.unwrap();
    assert_eq!(
        s.next_command().await.unwrap(),
        SessionCommand::Greeted { extended: true }
    );
    assert_eq!(s.client_name(), Some("lmtp.example.org"));
    read_reply(&mut c).await;
}

#[tokio::test]
async fn hostile_names_are_sanitised_and_bounded() {
    let (mut s, mut c) = session(ListenerTls::No).await;
    // Control characters, parentheses kept as printable ASCII, non-ASCII dropped.
    c.write_all("EHLO a\u{1}b\u{e9}c\r\n".as_bytes())
        .await
        .unwrap();
    expect_greeted(&mut s).await;
    let name = s.client_name().unwrap();
    assert!(name.chars().all(|c| c.is_ascii_graphic()), "{name:?}");
    assert!(name.starts_with('a') && name.ends_with('c'), "{name:?}");
    read_reply(&mut c).await;

    // An over-long name is refused by the parser (`501`): the earlier name stays.
    let long = "x".repeat(300);
    c.write_all(format!("EHLO {long}\r\nRSET\r\n").as_bytes())
        .await
        .unwrap();
    assert_eq!(
        s.next_command().await.unwrap(),
        SessionCommand::Command(Request::Rset)
    );
    // The `501` is held while RSET (pipelined behind it) is being answered (RFC 2920 §3.2).
    s.reply(250, "2.0.0 Reset OK").await.unwrap();
    let replies = read_reply(&mut c).await;
    assert!(replies.starts_with("501 "), "{replies:?}");
    assert!(
        replies.ends_with("\r\n250 2.0.0 Reset OK\r\n"),
        "{replies:?}"
    );
    assert!(s.client_name().unwrap().starts_with('a'));
}

#[tokio::test]
async fn pipelined_group_is_answered_in_one_write() {
    let (mut s, mut c) = session(ListenerTls::No).await;
    c.write_all(b"EHLO c.example\r\n").await.unwrap();
    expect_greeted(&mut s).await;
    read_reply(&mut c).await;
    c.write_all(b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nNOOP\r\nDATA\r\n")
        .await
        .unwrap();
    for (want, text) in [("MAIL", "2.1.0 Sender OK"), ("RCPT", "2.1.5 Recipient OK")] {
        let SessionCommand::Command(r) = s.next_command().await.unwrap() else {
            panic!("{want}: not a command");
        };
        assert_eq!(r.name(), want);
        s.reply(250, text).await.unwrap();
    }
    // NOOP is answered by the session itself; DATA goes to the application.
    assert_eq!(
        s.next_command().await.unwrap(),
        SessionCommand::Command(Request::Data)
    );
    // Nothing was written yet: the client's group is still being answered.
    let mut probe = [0u8; 64];
    assert!(
        tokio::time::timeout(Duration::from_millis(50), c.read(&mut probe))
            .await
            .is_err(),
        "a reply went out before the group was answered"
    );
    s.reply(354, "Start mail input\r\n(CRLF dropped)")
        .await
        .unwrap();
    let mut buf = vec![0u8; 1024];
    let n = c.read(&mut buf).await.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&buf[..n]),
        "250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n250 2.0.0 OK\r\n\
         354 Start mail input(CRLF dropped)\r\n"
    );
    // Message text: borrowed lines; the final reply goes out at once (nothing buffered).
    c.write_all(b"Subject: x\r\n\r\n.\r\n").await.unwrap();
    assert_eq!(s.read_line_ref().await.unwrap(), b"Subject: x\r\n");
    assert_eq!(s.read_line().await.unwrap(), b"\r\n");
    assert_eq!(s.read_line_ref().await.unwrap(), b".\r\n");
    s.reply(250, "2.0.0 Ok: queued").await.unwrap();
    assert_eq!(read_reply(&mut c).await, "250 2.0.0 Ok: queued\r\n");
}

#[test]
fn sanitising_reference() {
    assert_eq!(
        sanitise_client_name("mx.example"),
        Some("mx.example".into())
    );
    assert_eq!(sanitise_client_name(" \t\r\n"), None);
    assert_eq!(
        sanitise_client_name("a b\r\nX-Evil: 1"),
        Some("abX-Evil:1".into())
    );
    assert_eq!(
        sanitise_client_name(&"y".repeat(300)).map(|n| n.len()),
        Some(255)
    );
}

/// Issue 11, finding 6: one deadline for a whole DATA transfer. The client sends one line, then
/// drips the rest slower than the deadline allows in all (each line well within it).
#[tokio::test]
async fn data_read_with_one_deadline_stops_a_dripping_client() {
    let (mut s, mut c) = session(ListenerTls::Preferred).await;
    let dripper = tokio::spawn(async move {
        for i in 0..40 {
            let line = format!("line {i}\r\n");
            if c.write_all(line.as_bytes()).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let mut transfer = Deadline::new(Duration::from_millis(300));
    let started = tokio::time::Instant::now();
    let mut lines = 0;
    let e = loop {
        match s.read_line_by(&mut transfer).await {
            Ok(_) => lines += 1,
            Err(e) => break e,
        }
    };
    assert!(matches!(e, Error::Timeout { phase: "data", .. }), "{e}");
    assert!(lines < 40, "{lines} lines read: the deadline was extended");
    assert!(started.elapsed() < Duration::from_secs(3));
    dripper.abort();
}

#[tokio::test]
async fn tls_required_session_takes_mail_for_plaintext_recipients_only() {
    let (server, mut c) = duplex(64 * 1024);
    let reports = PlaintextRecipients::new(["tlsrpt@example.org"]).unwrap();
    let cfg = ServerSessionConfig::new("mx.example.test", vec![])
        .with_timeouts(Timeouts::uniform(Duration::from_secs(5)))
        .with_plaintext_recipients(reports);
    let mut s = ServerSession::start(server, ListenerTls::Required, None, cfg)
        .await
        .unwrap();
    read_reply(&mut c).await;
    c.write_all(b"EHLO reporter.example\r\n").await.unwrap();
    expect_greeted(&mut s).await;
    read_reply(&mut c).await;
    c.write_all(b"MAIL FROM:<r@reporter.example>\r\n")
        .await
        .unwrap();
    assert!(matches!(
        s.next_command().await.unwrap(),
        SessionCommand::Command(Request::Mail { .. })
    ));
    s.reply(250, "2.1.0 OK").await.unwrap();
    read_reply(&mut c).await;
    // Another recipient: refused by the session, never handed to the application; the exempt
    // one is.
    c.write_all(b"RCPT TO:<user@example.org>\r\nRCPT TO:<tlsrpt@EXAMPLE.org>\r\n")
        .await
        .unwrap();
    match s.next_command().await.unwrap() {
        SessionCommand::Command(Request::Rcpt { to }) => {
            assert_eq!(to.address, "tlsrpt@EXAMPLE.org")
        }
        other => panic!("{other:?}"),
    }
    s.reply(250, "2.1.5 OK").await.unwrap();
    assert_eq!(
        read_reply(&mut c).await,
        "530 5.7.0 Must issue a STARTTLS command first\r\n250 2.1.5 OK\r\n"
    );
    c.write_all(b"DATA\r\n").await.unwrap();
    assert!(matches!(
        s.next_command().await.unwrap(),
        SessionCommand::Command(Request::Data)
    ));
    assert!(
        s.events()
            .contains(&ListenerEvent::PlaintextRecipientAllowed {
                recipient: "tlsrpt@example.org".into()
            })
    );
}

/// The server side of an in-memory stream, counting the writes that carry bytes (a vectored
/// write is one write, as `writev` on a socket).
struct CountingStream {
    inner: DuplexStream,
    writes: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl AsyncRead for CountingStream {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountingStream {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, std::task::Poll::Ready(Ok(n)) if n > 0) {
            self.writes
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        r
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let all: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
        self.poll_write(cx, &all)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[tokio::test]
async fn quit_inside_tls_sends_221_and_close_notify_in_one_write() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};

    let ck = rcgen::generate_simple_self_signed(vec!["mx.example.test".to_owned()]).unwrap();
    let cert = CertificateDer::from(ck.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let server_tls = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let client_tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();

    let (server, mut c) = duplex(64 * 1024);
    let writes = Arc::new(AtomicUsize::new(0));
    let server = CountingStream {
        inner: server,
        writes: Arc::clone(&writes),
    };
    let cfg = ServerSessionConfig::new("mx.example.test", vec![])
        .with_timeouts(Timeouts::uniform(Duration::from_secs(5)));
    let acceptor = TlsAcceptor::from(Arc::new(server_tls));
    let mut s = ServerSession::start(server, ListenerTls::Required, Some(acceptor), cfg)
        .await
        .unwrap();
    let client = tokio::spawn(async move {
        read_reply(&mut c).await;
        c.write_all(b"EHLO c.example\r\n").await.unwrap();
        read_reply(&mut c).await;
        c.write_all(b"STARTTLS\r\n").await.unwrap();
        assert!(read_reply(&mut c).await.starts_with("220 "));
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client_tls));
        let name = ServerName::try_from("mx.example.test").unwrap();
        let mut tls = connector.connect(name, c).await.unwrap();
        tls.write_all(b"EHLO c.example\r\n").await.unwrap();
        let mut buf = [0u8; 256];
        let n = tls.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"250"), "{:?}", &buf[..n]);
        tls.write_all(b"QUIT\r\n").await.unwrap();
        // read_to_end succeeds only on close_notify (a bare EOF is UnexpectedEof)
        let mut rest = Vec::new();
        tls.read_to_end(&mut rest).await.map(|_| rest)
    });
    expect_greeted(&mut s).await;
    // STARTTLS is handled by the session; then the EHLO inside TLS
    expect_greeted(&mut s).await;
    let before = writes.load(Ordering::Relaxed);
    assert_eq!(s.next_command().await.unwrap(), SessionCommand::Quit);
    assert_eq!(
        writes.load(Ordering::Relaxed) - before,
        1,
        "221 and close_notify in one write"
    );
    assert_eq!(client.await.unwrap().unwrap(), b"221 2.0.0 Bye\r\n");
}

/// A server and a client TLS configuration for `mx.example.test` (a self-signed certificate),
/// each limited to the given protocol versions.
fn tls_configs(
    server_versions: &[&'static rustls::SupportedProtocolVersion],
    client_versions: &[&'static rustls::SupportedProtocolVersion],
) -> (rustls::ServerConfig, rustls::ClientConfig) {
    use std::sync::Arc;

    use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

    let ck = rcgen::generate_simple_self_signed(vec!["mx.example.test".to_owned()]).unwrap();
    let cert = CertificateDer::from(ck.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(server_versions)
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(client_versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (server, client)
}

/// A TLS-required session over a [`CountingStream`] (the counter returned) and the client end,
/// which has sent EHLO and STARTTLS and read the `220`; the session has not yet read them.
async fn tls_session(
    server_tls: rustls::ServerConfig,
) -> (
    ServerSession<CountingStream>,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
    DuplexStream,
) {
    let (server, mut c) = duplex(64 * 1024);
    let writes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let server = CountingStream {
        inner: server,
        writes: std::sync::Arc::clone(&writes),
    };
    let cfg = ServerSessionConfig::new("mx.example.test", vec![])
        .with_timeouts(Timeouts::uniform(Duration::from_secs(5)));
    let acceptor = TlsAcceptor::from(std::sync::Arc::new(server_tls));
    let s = ServerSession::start(server, ListenerTls::Required, Some(acceptor), cfg)
        .await
        .unwrap();
    read_reply(&mut c).await;
    (s, writes, c)
}

/// The client's plaintext part, up to the `220` to STARTTLS (the session answers it while it
/// runs `next_command`, in another task).
async fn client_starttls(c: &mut DuplexStream) {
    c.write_all(b"EHLO c.example\r\n").await.unwrap();
    read_reply(c).await;
    c.write_all(b"STARTTLS\r\n").await.unwrap();
    assert!(read_reply(c).await.starts_with("220 "));
}

/// Sans-IO client: writes everything it has queued in one write.
async fn send_tls(c: &mut DuplexStream, conn: &mut rustls::ClientConnection) {
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).unwrap();
    }
    c.write_all(&out).await.unwrap();
}

/// Sans-IO client: reads what the server wrote (one read, bounded in time) into `conn`; returns
/// the raw bytes.
async fn recv_tls(c: &mut DuplexStream, conn: &mut rustls::ClientConnection) -> Vec<u8> {
    let mut buf = vec![0u8; 32 * 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf))
        .await
        .expect("server bytes in time")
        .unwrap();
    assert!(n > 0, "server closed");
    buf.truncate(n);
    let mut rd = &buf[..];
    while !rd.is_empty() {
        conn.read_tls(&mut rd).unwrap();
        conn.process_new_packets().unwrap();
    }
    buf
}

/// Sans-IO client: the plaintext received so far.
fn take_plaintext(conn: &mut rustls::ClientConnection) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    while let Ok(n @ 1..) = std::io::Read::read(&mut conn.reader(), &mut buf) {
        out.extend_from_slice(&buf[..n]);
    }
    out
}

/// Whether `text` ends with a final reply line (`NNN ` at a line start).
/// The session's next command is a greeting (EHLO or HELO, answered by the session itself).
async fn expect_greeted<S: AsyncRead + AsyncWrite + Unpin>(s: &mut ServerSession<S>) {
    assert!(matches!(
        s.next_command().await.unwrap(),
        SessionCommand::Greeted { .. }
    ));
}

fn ends_with_final_reply(text: &[u8]) -> bool {
    let text = String::from_utf8_lossy(text);
    text.ends_with("\r\n")
        && text
            .lines()
            .last()
            .is_some_and(|l| l.as_bytes().get(3) == Some(&b' '))
}

/// Sans-IO client: ClientHello, then the server's flight until the client's side of the
/// handshake is done (its Finished queued, not sent).
async fn client_handshake(
    c: &mut DuplexStream,
    client_tls: rustls::ClientConfig,
) -> rustls::ClientConnection {
    let name = rustls_pki_types::ServerName::try_from("mx.example.test").unwrap();
    let mut conn = rustls::ClientConnection::new(std::sync::Arc::new(client_tls), name).unwrap();
    send_tls(c, &mut conn).await;
    while conn.is_handshaking() {
        recv_tls(c, &mut conn).await;
    }
    conn
}

/// Issue 15: a TLS 1.3 client sends its Finished and EHLO in one segment; the session ticket
/// the handshake leaves and the EHLO reply go out in ONE write (before: the ticket alone, when
/// the handshake ended, then the reply).
#[tokio::test]
async fn tls13_ticket_and_first_reply_go_out_in_one_write() {
    use std::io::Write as _;
    use std::sync::atomic::Ordering;

    let (server_tls, client_tls) =
        tls_configs(&[&rustls::version::TLS13], &[&rustls::version::TLS13]);
    assert!(server_tls.send_tls13_tickets > 0);
    let (mut s, writes, mut c) = tls_session(server_tls).await;
    let counter = std::sync::Arc::clone(&writes);
    let client = tokio::spawn(async move {
        client_starttls(&mut c).await;
        let mut conn = client_handshake(&mut c, client_tls).await;
        conn.writer().write_all(b"EHLO c.example\r\n").unwrap();
        let before = counter.load(Ordering::Relaxed);
        send_tls(&mut c, &mut conn).await; // Finished + EHLO, one segment
        let mut text = Vec::new();
        let mut received = 0;
        while !ends_with_final_reply(&text) {
            received += recv_tls(&mut c, &mut conn).await.len();
            text.extend(take_plaintext(&mut conn));
        }
        (counter.load(Ordering::Relaxed) - before, received, text)
    });
    expect_greeted(&mut s).await;
    expect_greeted(&mut s).await;
    let (writes_after_finished, received, text) = client.await.unwrap();
    assert!(text.starts_with(b"250 mx.example.test"), "{text:?}");
    assert_eq!(
        writes_after_finished, 1,
        "ticket and EHLO reply in one write"
    );
    // The write carried more than the reply's record: the ticket(s) came with it.
    assert!(
        received > text.len() + 22 + 22,
        "{received} bytes for {} of reply",
        text.len()
    );
}

/// A TLS 1.3 client that sends its Finished alone and waits for the server's bytes (the
/// ticket) before its EHLO: the session writes the held ticket when it waits for input.
#[tokio::test]
async fn tls13_client_waiting_after_its_finished_gets_the_ticket() {
    use std::io::Write as _;

    let (server_tls, client_tls) =
        tls_configs(&[&rustls::version::TLS13], &[&rustls::version::TLS13]);
    let (mut s, _writes, mut c) = tls_session(server_tls).await;
    let client = tokio::spawn(async move {
        client_starttls(&mut c).await;
        let mut conn = client_handshake(&mut c, client_tls).await;
        send_tls(&mut c, &mut conn).await; // Finished alone
        let ticket = recv_tls(&mut c, &mut conn).await;
        assert_eq!(
            ticket.first(),
            Some(&0x17),
            "an encrypted record: {ticket:?}"
        );
        assert!(take_plaintext(&mut conn).is_empty());
        conn.writer().write_all(b"EHLO c.example\r\n").unwrap();
        send_tls(&mut c, &mut conn).await;
        let mut text = Vec::new();
        while !ends_with_final_reply(&text) {
            recv_tls(&mut c, &mut conn).await;
            text.extend(take_plaintext(&mut conn));
        }
        text
    });
    expect_greeted(&mut s).await;
    expect_greeted(&mut s).await;
    let text = tokio::time::timeout(Duration::from_secs(10), client)
        .await
        .expect("client done in time")
        .unwrap();
    assert!(text.starts_with(b"250 mx.example.test"), "{text:?}");
}

/// TLS 1.2: the client waits for the server's Finished (the handshake's last flight) before
/// anything else; it is not held back.
#[tokio::test]
async fn tls12_handshake_completes() {
    use std::sync::Arc;

    let (server_tls, client_tls) = tls_configs(
        &[&rustls::version::TLS13, &rustls::version::TLS12],
        &[&rustls::version::TLS12],
    );
    let (mut s, _writes, mut c) = tls_session(server_tls).await;
    let client = tokio::spawn(async move {
        client_starttls(&mut c).await;
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client_tls));
        let name = rustls_pki_types::ServerName::try_from("mx.example.test").unwrap();
        let mut tls = tokio::time::timeout(Duration::from_secs(5), connector.connect(name, c))
            .await
            .expect("handshake in time")
            .unwrap();
        tls.write_all(b"EHLO c.example\r\n").await.unwrap();
        let mut text = Vec::new();
        let mut buf = [0u8; 256];
        while !ends_with_final_reply(&text) {
            let n = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf))
                .await
                .expect("reply in time")
                .unwrap();
            assert!(n > 0, "server closed");
            text.extend_from_slice(&buf[..n]);
        }
        text
    });
    expect_greeted(&mut s).await;
    expect_greeted(&mut s).await;
    assert_eq!(
        s.tls_parameters().map(|p| p.0),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    let text = client.await.unwrap();
    assert!(text.starts_with(b"250 mx.example.test"), "{text:?}");
}

/// A failed handshake (no common protocol version): the server's fatal alert reaches the
/// client (an alert is never held).
#[tokio::test]
async fn failed_handshake_still_sends_the_fatal_alert() {
    use std::sync::Arc;

    let (server_tls, client_tls) =
        tls_configs(&[&rustls::version::TLS13], &[&rustls::version::TLS12]);
    let (mut s, _writes, mut c) = tls_session(server_tls).await;
    let client = tokio::spawn(async move {
        client_starttls(&mut c).await;
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client_tls));
        let name = rustls_pki_types::ServerName::try_from("mx.example.test").unwrap();
        tokio::time::timeout(Duration::from_secs(5), connector.connect(name, c))
            .await
            .expect("handshake ends in time")
            .map(|_| ())
    });
    expect_greeted(&mut s).await;
    let e = s.next_command().await.unwrap_err();
    assert!(matches!(e, Error::TlsHandshake { .. }), "{e}");
    let e = client.await.unwrap().unwrap_err();
    let alert = e
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
        .cloned();
    assert_eq!(
        alert,
        Some(rustls::Error::AlertReceived(
            rustls::AlertDescription::ProtocolVersion
        )),
        "{e}"
    );
}
