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
    assert!(matches!(
        s.next_command().await.unwrap(),
        SessionCommand::Greeted { .. }
    ));
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
    assert!(matches!(
        s.next_command().await.unwrap(),
        SessionCommand::Greeted { .. }
    ));
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
    assert!(matches!(
        s.next_command().await.unwrap(),
        SessionCommand::Greeted { .. }
    ));
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
    assert!(matches!(
        s.next_command().await.unwrap(),
        SessionCommand::Greeted { .. }
    ));
    // STARTTLS is handled by the session; then the EHLO inside TLS
    assert!(matches!(
        s.next_command().await.unwrap(),
        SessionCommand::Greeted { .. }
    ));
    let before = writes.load(Ordering::Relaxed);
    assert_eq!(s.next_command().await.unwrap(), SessionCommand::Quit);
    assert_eq!(
        writes.load(Ordering::Relaxed) - before,
        1,
        "221 and close_notify in one write"
    );
    assert_eq!(client.await.unwrap().unwrap(), b"221 2.0.0 Bye\r\n");
}
