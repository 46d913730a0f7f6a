//! Tests of the SMTP mail transaction: reply and session timeouts, REQUIRETLS, dot-stuffing.

use std::time::Duration;

use smtp_tls_policy::io::{LineReader, SmtpStream};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use smtp_tls_policy::delivery::{RequireTlsRoute, RequireTlsVerdict};

use super::{Session, Timeouts, dot_stuff};
use crate::AttemptOutcome;

/// Writes a `lines`-line `250` reply, one line every `every`.
async fn drip(tcp: &mut TcpStream, lines: usize, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    for i in 1..=lines {
        ticks.tick().await;
        let sep = if i == lines { ' ' } else { '-' };
        let line = format!("250{sep}2.0.0 tarpit line {i}\r\n");
        if tcp.write_all(line.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// A next hop without PIPELINING that drips one reply, `lines` lines `every` apart: the
/// reply to MAIL (`at_end = false`) or the reply after the message text.
async fn tarpit(lines: usize, every: Duration, at_end: bool) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut tcp, _) = l.accept().await.unwrap();
        let mut r = LineReader::new();
        let t = Duration::from_secs(30);
        let Ok(mail) = r.read_line(&mut tcp, t, "s").await else {
            return;
        };
        assert!(mail.starts_with(b"MAIL FROM:"));
        if at_end {
            let _ = tcp.write_all(b"250 2.1.0 ok\r\n").await;
        } else {
            drip(&mut tcp, lines, every).await;
        }
        let Ok(_rcpt) = r.read_line(&mut tcp, t, "s").await else {
            return;
        };
        let _ = tcp.write_all(b"250 2.1.5 ok\r\n").await;
        let Ok(_data) = r.read_line(&mut tcp, t, "s").await else {
            return;
        };
        let _ = tcp.write_all(b"354 go ahead\r\n").await;
        while let Ok(line) = r.read_line(&mut tcp, t, "s").await {
            if line == b".\r\n" {
                break;
            }
        }
        if at_end {
            drip(&mut tcp, lines, every).await;
        } else {
            let _ = tcp.write_all(b"250 2.0.0 queued\r\n").await;
        }
        // Answer whatever follows (RSET, QUIT) until the client goes.
        while r.read_line(&mut tcp, t, "s").await.is_ok() {
            let _ = tcp.write_all(b"250 2.0.0 ok\r\n").await;
        }
    });
    port
}

/// Issue 11, finding 6: each timeout bounds the whole reply, not each line. The tarpit
/// drips 40 lines 100 ms apart (4 s) as the reply to MAIL, then as the reply after the
/// message text; with 300 ms timeouts the transaction must give up (the recipient
/// deferred, the session broken) long before the reply is complete (generous bound: 3 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tarpit_reply_times_out_as_a_whole() {
    let ms = Duration::from_millis(300);
    let timeouts = Timeouts {
        command: ms,
        data_init: ms,
        data_block: ms,
        min_data_rate: 500,
        data_end: ms,
    };
    for at_end in [false, true] {
        let port = tarpit(40, Duration::from_millis(100), at_end).await;
        let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut session = Session::from_parts(
            SmtpStream::Plain(tcp),
            LineReader::new(),
            None,
            "tarpit.test".into(),
            timeouts,
        );
        let started = tokio::time::Instant::now();
        let (settled, broken) = session
            .send(
                "a@client.test",
                &[(0, "b@tarpit.test".into())],
                b"hi\r\n",
                RequireTlsVerdict::NotRequested,
            )
            .await
            .unwrap();
        let took = started.elapsed();
        let reason = broken
            .unwrap_or_else(|| panic!("at_end={at_end}: not broken: {settled:?}"))
            .0;
        assert!(reason.contains("timeout"), "at_end={at_end}: {reason}");
        assert!(
            matches!(settled.as_slice(), [(0, AttemptOutcome::Deferred(_))]),
            "at_end={at_end}: {settled:?}"
        );
        assert!(
            took < Duration::from_secs(3),
            "at_end={at_end}: the reply deadline did not hold: {took:?}"
        );
    }
}

/// A next hop without PIPELINING that answers every command `delay` late (within the
/// reply timeout), takes the message text and answers it `250`.
async fn slow_peer(delay: Duration) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut tcp, _) = l.accept().await.unwrap();
        let mut r = LineReader::new();
        let t = Duration::from_secs(30);
        while let Ok(line) = r.read_line(&mut tcp, t, "s").await {
            tokio::time::sleep(delay).await;
            let reply: &[u8] = if line.starts_with(b"DATA") {
                b"354 go ahead\r\n"
            } else {
                b"250 2.0.0 ok\r\n"
            };
            if tcp.write_all(reply).await.is_err() {
                return;
            }
            if line.starts_with(b"DATA") {
                while let Ok(line) = r.read_line(&mut tcp, t, "s").await {
                    if line == b".\r\n" {
                        break;
                    }
                }
                tokio::time::sleep(delay).await;
                let _ = tcp.write_all(b"250 2.0.0 queued\r\n").await;
            }
        }
    });
    port
}

/// Delivery starvation by tarpits: a peer that answers every reply in time (150 ms each,
/// timeout 300 ms) cannot hold a session past its wall-clock limit. 30 recipients one
/// command at a time take 32 replies (≈ 4.8 s); the session limit of 1 s ends the
/// transaction long before (generous bound: 3 s) with every recipient deferred (4.4.2,
/// retried later, none delivered) and the session broken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_limit_ends_a_slow_but_timely_transaction() {
    let ms = Duration::from_millis(300);
    let timeouts = Timeouts {
        command: ms,
        data_init: ms,
        data_block: ms,
        min_data_rate: 500,
        data_end: ms,
    };
    let port = slow_peer(Duration::from_millis(150)).await;
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let started = tokio::time::Instant::now();
    let mut session = Session::from_parts(
        SmtpStream::Plain(tcp),
        LineReader::new(),
        None,
        "slow.test".into(),
        timeouts,
    )
    .with_deadline(started + Duration::from_secs(1));
    let recipients: Vec<(usize, String)> =
        (0..30).map(|i| (i, format!("r{i}@slow.test"))).collect();
    let (settled, broken) = session
        .send(
            "a@client.test",
            &recipients,
            b"hi\r\n",
            RequireTlsVerdict::NotRequested,
        )
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "session limit did not hold: {took:?}"
    );
    let reason = broken
        .unwrap_or_else(|| panic!("not broken after {took:?}: {settled:?}"))
        .0;
    assert!(reason.contains("max_session_secs"), "{reason}");
    assert!(session.expired());
    assert_eq!(settled.len(), 30, "{settled:?}");
    for (i, o) in &settled {
        match o {
            AttemptOutcome::Deferred(d) => assert_eq!(d.status, Some((4, 4, 2)), "{i}: {d:?}"),
            o => panic!("recipient {i}: {o:?}"),
        }
    }
}

/// A next hop without PIPELINING that answers everything `250` (`354` to DATA) and sends
/// back, over the channel, every command line it received.
async fn recording_peer() -> (u16, tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let (mut tcp, _) = l.accept().await.unwrap();
        let mut r = LineReader::new();
        let t = Duration::from_secs(30);
        while let Ok(line) = r.read_line(&mut tcp, t, "s").await {
            let _ = tx.send(line.clone());
            let data = line.starts_with(b"DATA");
            let reply: &[u8] = if data {
                b"354 go\r\n"
            } else {
                b"250 2.0.0 ok\r\n"
            };
            if tcp.write_all(reply).await.is_err() {
                return;
            }
            if data {
                while let Ok(line) = r.read_line(&mut tcp, t, "s").await {
                    if line == b".\r\n" {
                        break;
                    }
                }
                let _ = tcp.write_all(b"250 2.0.0 queued\r\n").await;
            }
        }
    });
    (port, rx)
}

/// RFC 8689 §4.2.1: a flagged message goes with `MAIL FROM:<..> REQUIRETLS` over an
/// authenticated TLS session whose EHLO listed REQUIRETLS; over a plaintext session it is
/// refused before anything is written.
#[tokio::test]
async fn requiretls_parameter_only_where_the_verdict_allows() {
    use smtp_tls_policy::delivery::{RequireTlsRefusal, RequireTlsSession};
    let (port, mut lines) = recording_peer().await;
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut session = Session::from_parts(
        SmtpStream::Plain(tcp),
        LineReader::new(),
        None,
        "peer.test".into(),
        Timeouts::default(),
    );
    // A plaintext session: refused, and `send` refuses to write a flagged message.
    let refused = session.requiretls_verdict(true, RequireTlsRoute::NotChecked);
    assert_eq!(
        refused,
        RequireTlsVerdict::Refuse(RequireTlsRefusal::NotTls)
    );
    let rcpt = [(0, "b@peer.test".to_owned())];
    assert!(
        session
            .send("a@c.test", &rcpt, b"x\r\n", refused)
            .await
            .is_err()
    );
    assert_eq!(
        session.requiretls_verdict(false, RequireTlsRoute::NotChecked),
        RequireTlsVerdict::NotRequested
    );
    // The facts of an authenticated TLS session that advertised REQUIRETLS (the transport
    // itself stays plain here: only the command text is under test).
    session.requiretls = RequireTlsSession::new(true, true, true);
    let verdict = session.requiretls_verdict(true, RequireTlsRoute::NotChecked);
    assert_eq!(verdict, RequireTlsVerdict::Send);
    let (settled, broken) = session
        .send("a@c.test", &rcpt, b"x\r\n", verdict)
        .await
        .unwrap();
    assert!(broken.is_none());
    assert!(
        matches!(settled.as_slice(), [(0, AttemptOutcome::Delivered)]),
        "{settled:?}"
    );
    assert_eq!(
        lines.recv().await.unwrap(),
        b"MAIL FROM:<a@c.test> REQUIRETLS\r\n"
    );
    // The next message of the session, unflagged: no parameter.
    let (settled, _) = session
        .send("a@c.test", &rcpt, b"y\r\n", RequireTlsVerdict::NotRequested)
        .await
        .unwrap();
    assert!(
        matches!(settled.as_slice(), [(0, AttemptOutcome::Delivered)]),
        "{settled:?}"
    );
    let mut mails = Vec::new();
    while let Ok(l) = lines.try_recv() {
        if l.starts_with(b"MAIL") {
            mails.push(l);
        }
    }
    assert_eq!(mails, [b"MAIL FROM:<a@c.test>\r\n".to_vec()]);
}

#[test]
fn data_transfer_deadline_grows_with_the_text() {
    let t = Timeouts::default();
    assert_eq!(t.data_transfer(0), Duration::from_secs(180));
    assert_eq!(t.data_transfer(500_000), Duration::from_secs(1180));
}

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
