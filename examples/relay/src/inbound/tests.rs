//! Tables of cases for the sans-IO parts of the inbound side.

use proptest::prelude::*;

use super::data::data_receiver;
use super::*;

fn limits() -> TransactionLimits {
    TransactionLimits {
        max_message_size: 1000,
        max_recipients: 2,
        max_messages: 2,
    }
}

fn tx(control: RelayControl) -> Transaction {
    Transaction::new(
        limits(),
        control,
        DomainSet::new(["example.org", ".example.net"]).unwrap(),
    )
}

#[test]
fn command_sequence_and_codes() {
    let mut t = tx(RelayControl::LocalOnly);
    // (command, expected code, expected enhanced status prefix)
    let steps: &[(&str, u16, &str)] = &[
        ("RCPT b@example.org", 503, "5.5.1"),
        ("DATA", 503, "5.5.1"),
        ("MAIL a@elsewhere.test", 250, "2.1.0"),
        ("MAIL a@elsewhere.test", 503, "5.5.1"),
        ("DATA", 554, "5.5.1"),
        ("RCPT b@elsewhere.test", 550, "5.7.1"),
        ("RCPT b@example.net", 550, "5.7.1"),
        ("RCPT c@example.org.", 501, "5.1.3"),
        ("RCPT nodomain", 550, "5.1.3"),
        ("RCPT b@mx.example.net", 250, "2.1.5"),
        ("RCPT B@EXAMPLE.ORG", 250, "2.1.5"),
        ("RCPT c@example.org", 452, "4.5.3"),
        ("DATA", 354, ""),
        ("DATA", 503, "5.5.1"),
    ];
    for (i, (cmd, code, status)) in steps.iter().enumerate() {
        let r = match cmd.split_once(' ') {
            Some(("MAIL", a)) => t.mail(a, 0, 0),
            Some(("RCPT", a)) => t.rcpt(a),
            _ => t.data(),
        };
        assert_eq!(r.code, *code, "step {i} {cmd}: {r:?}");
        assert!(r.text.starts_with(status), "step {i} {cmd}: {r:?}");
    }
    let c = t.finish(true);
    assert_eq!(c.sender, "a@elsewhere.test");
    assert_eq!(c.recipients, ["b@mx.example.net", "B@EXAMPLE.ORG"]);
    assert!(!t.in_transaction());
}

#[test]
fn relay_policy_accepts_any_domain_and_null_sender() {
    let mut t = tx(RelayControl::AnyDomain);
    assert_eq!(t.mail("", 0, 0).code, 250);
    assert_eq!(t.rcpt("x@anywhere.test").code, 250);
    assert_eq!(t.rcpt("x@[192.0.2.1]").code, 250);
}

#[test]
fn bad_paths_are_refused() {
    let long_local = format!("{}@example.org", "a".repeat(65));
    let long_path = format!("a@{}.org", "b.".repeat(130));
    for (addr, code) in [
        (long_local.as_str(), 501),
        (long_path.as_str(), 501),
        ("@example.org", 501),
        ("a@exa mple.org", 501),
        ("a@exa..org", 501),
        ("a@", 501),
    ] {
        let mut t = tx(RelayControl::AnyDomain);
        assert_eq!(t.mail(addr, 0, 0).code, code, "MAIL {addr}");
        let mut t = tx(RelayControl::AnyDomain);
        assert_eq!(t.mail("", 0, 0).code, 250);
        assert_eq!(t.rcpt(addr).code, code, "RCPT {addr}");
    }
}

#[test]
fn size_and_extension_parameters() {
    let mut t = tx(RelayControl::AnyDomain);
    assert_eq!(t.mail("a@b.test", 1001, 0).code, 552);
    assert_eq!(t.mail("a@b.test", 0, smtp_proto::MAIL_SMTPUTF8).code, 555);
    assert_eq!(
        t.mail("a@b.test", 1000, smtp_proto::MAIL_BODY_8BITMIME)
            .code,
        250
    );
}

/// RFC 8689 §4.1: `REQUIRETLS` on MAIL FROM only inside TLS (530 5.7.10 outside, with no
/// transaction opened); inside, the flag goes with the whole message and RSET clears it.
#[test]
fn requiretls_only_inside_tls_and_for_the_whole_message() {
    let flag = smtp_proto::MAIL_REQUIRETLS;
    let mut t = tx(RelayControl::AnyDomain);
    let r = t.mail("a@b.test", 0, flag);
    assert_eq!(r.code, 530);
    assert!(r.text.starts_with("5.7.10"), "{}", r.text);
    assert!(!t.in_transaction());
    t.set_tls();
    assert_eq!(t.mail("a@b.test", 0, flag).code, 250);
    assert_eq!(t.rcpt("c@d.test").code, 250);
    assert_eq!(t.rcpt("e@d.test").code, 250);
    assert_eq!(t.data().code, 354);
    let c = t.finish(true);
    assert!(c.requiretls);
    assert_eq!(c.recipients.len(), 2);
    // The next message, without the parameter; and a flagged one reset by RSET.
    assert_eq!(t.mail("a@b.test", 0, flag).code, 250);
    let _ = t.rset();
    assert_eq!(t.mail("a@b.test", 0, 0).code, 250);
    assert_eq!(t.rcpt("c@d.test").code, 250);
    assert_eq!(t.data().code, 354);
    assert!(!t.finish(true).requiretls);
}

#[test]
fn messages_per_connection_limit_closes() {
    let mut t = tx(RelayControl::AnyDomain);
    for _ in 0..2 {
        assert_eq!(t.mail("a@b.test", 0, 0).code, 250);
        assert_eq!(t.rcpt("c@d.test").code, 250);
        assert_eq!(t.data().code, 354);
        let _ = t.finish(true);
    }
    let r = t.mail("a@b.test", 0, 0);
    assert_eq!((r.code, r.close), (421, true));
    // A refused message does not count.
    let mut t = tx(RelayControl::AnyDomain);
    assert_eq!(t.mail("a@b.test", 0, 0).code, 250);
    assert_eq!(t.rcpt("c@d.test").code, 250);
    let _ = t.finish(false);
    assert_eq!(t.messages(), 0);
}

#[test]
fn rset_vrfy_help() {
    let mut t = tx(RelayControl::AnyDomain);
    assert_eq!(t.mail("a@b.test", 0, 0).code, 250);
    assert_eq!(t.rset().code, 250);
    assert!(!t.in_transaction());
    assert_eq!(t.vrfy().code, 252);
    assert_eq!(t.help().code, 214);
    assert_eq!(t.not_implemented("EXPN").code, 502);
}

fn hat(text: &str) -> HostAccessTable {
    HostAccessTable::from_toml("t.toml", text).unwrap()
}

#[test]
fn connect_actions_from_the_hat() {
    let table = hat(r#"
[[mail_flow_policy]]
name = "LIMITED"
behavior = "accept"
tls = "required"
max_message_size = 100
max_concurrent_connections_per_ip = 2
max_recipients_per_message = 5000
[[mail_flow_policy]]
name = "RELAYED"
behavior = "relay"
[[mail_flow_policy]]
name = "DROP"
behavior = "tcp-refuse"
[[mail_flow_policy]]
name = "NO"
behavior = "reject"
banner = "go away"
[[sender_group]]
name = "A"
order = 1
policy = "LIMITED"
senders = ["192.0.2.1"]
[[sender_group]]
name = "B"
order = 2
policy = "RELAYED"
senders = ["192.0.2.2"]
[[sender_group]]
name = "C"
order = 3
policy = "DROP"
senders = ["192.0.2.3"]
[[sender_group]]
name = "D"
order = 4
policy = "NO"
senders = ["192.0.2.4"]
"#);
    let global = InboundLimits::default();
    let p = |ip: &str| {
        let v = table.matches(&hat_match::Facts::new(ip.parse().unwrap()));
        ConnectionPolicy::from_verdict(&v, &global)
    };
    let a = p("192.0.2.1");
    assert_eq!(
        a.connect_action(2),
        ConnectAction::Serve(RelayControl::LocalOnly)
    );
    assert_eq!(a.connect_action(3), ConnectAction::TooManyConnections);
    assert_eq!(a.tls, smtp_tls_policy::listener::ListenerTls::Required);
    assert_eq!(a.limits.max_message_size, 100);
    // The policy asks for more than the global cap: the cap wins.
    assert_eq!(a.limits.max_recipients, global.max_recipients_per_message);
    assert_eq!(
        p("192.0.2.2").connect_action(1),
        ConnectAction::Serve(RelayControl::AnyDomain)
    );
    assert_eq!(
        p("192.0.2.2").limits.max_message_size,
        global.max_message_size
    );
    assert_eq!(p("192.0.2.3").connect_action(1), ConnectAction::TcpRefuse);
    let d = p("192.0.2.4");
    assert_eq!(
        (d.connect_action(1), d.banner.as_deref()),
        (ConnectAction::Reject, Some("go away"))
    );
    // No group matched (no ALL group): fail closed.
    let none = p("198.51.100.1");
    assert_eq!(none.sender_group, None);
    assert_eq!(none.connect_action(1), ConnectAction::Reject);
}

#[test]
fn data_receiver_unstuffs_the_first_line_and_sees_an_empty_message() {
    for (wire, body) in [
        (&b".\r\n"[..], &b""[..]),
        (b"..x\r\n.\r\n", b".x\r\n"),
        (b"a\r\n..\r\n.\r\n", b"a\r\n.\r\n"),
    ] {
        let mut out = Vec::new();
        assert!(data_receiver().ingest(&mut wire.iter(), &mut out));
        assert_eq!(out, body);
    }
}

/// Dot-stuffing per RFC 5321 §4.5.2, the reference.
fn stuff(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in body.split_inclusive(|&b| b == b'\n') {
        if line.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(line);
    }
    out.extend_from_slice(b".\r\n");
    out
}

proptest! {
    /// Fed line by line, as the session reads it, the receiver returns the original body.
    #[test]
    fn line_by_line_unstuffing_round_trips(
        lines in proptest::collection::vec("[.a-z ]{0,12}", 0..12)
    ) {
        let body: Vec<u8> = lines.iter().flat_map(|l| format!("{l}\r\n").into_bytes()).collect();
        let wire = stuff(&body);
        let mut rx = data_receiver();
        let mut out = Vec::new();
        let mut done = false;
        for line in wire.split_inclusive(|&b| b == b'\n') {
            prop_assert!(!done);
            done = rx.ingest(&mut line.iter(), &mut out);
        }
        prop_assert!(done);
        prop_assert_eq!(out, body);
    }
}

#[test]
fn received_header_without_tls_says_esmtp() {
    let h = received_header(&TraceInfo {
        helo: None,
        esmtp: true,
        ptr: None,
        ip: "::ffff:127.0.0.1".parse().unwrap(),
        by: "relay.test",
        id: "1-2",
        tls: None,
        for_recipient: None,
        when: std::time::UNIX_EPOCH,
    });
    assert!(
        h.starts_with("Received: from unknown ([127.0.0.1])\r\n\tby relay.test"),
        "{h}"
    );
    assert!(h.contains("with ESMTP id 1-2;"), "{h}");
    assert!(!h.contains("version="));
    assert!(h.lines().all(|l| l.len() < 100));
}

#[test]
fn received_header_names_the_client_and_its_ptr() {
    let base = TraceInfo {
        helo: Some("client.example.org"),
        esmtp: false,
        ptr: Some("host.example.org"),
        ip: "192.0.2.7".parse().unwrap(),
        by: "relay.test",
        id: "1-2",
        tls: None,
        for_recipient: Some("user@example.com"),
        when: std::time::UNIX_EPOCH,
    };
    let h = received_header(&base);
    assert!(
        h.starts_with("Received: from client.example.org (host.example.org [192.0.2.7])\r\n"),
        "{h}"
    );
    assert!(h.contains("with SMTP id 1-2"), "HELO is plain SMTP: {h}");
    assert!(h.contains("for <user@example.com>"), "{h}");
    // Hostile or empty names: no header injection, `unknown` when nothing is left.
    let h = received_header(&TraceInfo {
        helo: Some(" \r\n"),
        ptr: Some("(evil)\r\nX: y"),
        ..base
    });
    assert!(
        h.starts_with("Received: from unknown (evilX:y [192.0.2.7])\r\n"),
        "{h}"
    );
    assert_eq!(h.matches("\r\n").count(), h.lines().count(), "{h}");
}

/// `bind` sets `TCP_NODELAY` on the listening socket only; on Linux the accepted sockets
/// inherit it (so the accept loop skips one `setsockopt` per connection).
#[tokio::test]
async fn accepted_sockets_inherit_nodelay() {
    let listener = bind("t", "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (client, accepted) = tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
    let (client, (accepted, _)) = (client.unwrap(), accepted.unwrap());
    assert!(!client.nodelay().unwrap(), "the client socket is untouched");
    assert_eq!(accepted.nodelay().unwrap(), NODELAY_INHERITED);
}

/// Log output captured in memory.
#[derive(Clone, Default)]
struct Capture(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// Reads one (possibly multi-line) reply.
async fn read_reply<R: tokio::io::AsyncBufRead + Unpin>(r: &mut R) -> String {
    use tokio::io::AsyncBufReadExt;
    let mut all = String::new();
    for _ in 0..50 {
        let mut line = String::new();
        assert!(
            r.read_line(&mut line).await.unwrap() > 0,
            "closed after {all:?}"
        );
        all.push_str(&line);
        if line.as_bytes().get(3) == Some(&b' ') {
            return all;
        }
    }
    panic!("reply too long: {all}")
}

/// A listener context over a fresh spool: 192.0.2.1 relays (TLS off), everyone else is
/// rejected.
async fn context(dir: &std::path::Path) -> ListenerContext {
    let (spool, _) = Spool::open(dir, crate::SpoolConfig::default())
        .await
        .unwrap();
    ListenerContext {
        name: "test".into(),
        hostname: "relay.test".into(),
        hat: Arc::new(hat(r#"
[[mail_flow_policy]]
name = "RELAYED"
behavior = "relay"
[[mail_flow_policy]]
name = "NO"
behavior = "reject"
[[sender_group]]
name = "TRUSTED"
order = 1
policy = "RELAYED"
senders = ["192.0.2.1"]
[[sender_group]]
name = "REST"
order = 2
policy = "NO"
senders = ["ALL"]
"#)),
        acceptor: None,
        accepted_domains: DomainSet::new(["example.org"]).unwrap(),
        limits: InboundLimits::default(),
        spool,
        enqueue: Arc::new(|_| {}),
        counter: ConnectionCounter::default(),
        dns: None,
        plaintext_recipients: Default::default(),
    }
}

/// Issue 15: exactly one INFO line per connection (the `disconnect` line with the HAT verdict,
/// result and command counts) and one per message; nothing else at INFO.
#[tokio::test]
async fn one_info_line_per_connection_and_one_per_message() {
    use tokio::io::{AsyncWriteExt, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path()).await;
    let logs = Capture::default();
    let w = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || w.clone())
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);
    let (_rx_keep, rx) = {
        let (tx, rx) = watch::channel(false);
        (tx, rx)
    };

    // One message, then QUIT.
    let (client, server) = tokio::io::duplex(1 << 16);
    let peer: SocketAddr = "192.0.2.1:4000".parse().unwrap();
    let script = async {
        let (r, mut w) = tokio::io::split(client);
        let mut r = BufReader::new(r);
        assert!(read_reply(&mut r).await.starts_with("220 "));
        for (cmd, code) in [
            ("EHLO client.test", "250"),
            ("MAIL FROM:<a@client.test>", "250"),
            ("RCPT TO:<b@example.org>", "250"),
            ("RCPT TO:<c@example.org>", "250"),
            ("DATA", "354"),
            ("Subject: t\r\n\r\nhello\r\n.", "250"),
            ("QUIT", "221"),
        ] {
            w.write_all(format!("{cmd}\r\n").as_bytes()).await.unwrap();
            let reply = read_reply(&mut r).await;
            assert!(reply.starts_with(code), "{cmd}: {reply}");
        }
    };
    tokio::join!(session::handle(&ctx, server, peer, rx.clone()), script);

    // A rejected client.
    let (client, server) = tokio::io::duplex(1 << 16);
    let other: SocketAddr = "198.51.100.7:5000".parse().unwrap();
    let script = async {
        let mut r = BufReader::new(client);
        assert!(read_reply(&mut r).await.starts_with("554 5.7.1"));
    };
    tokio::join!(session::handle(&ctx, server, other, rx.clone()), script);

    let lines = logs.lines();
    let text = lines.join("\n");
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines.iter().all(|l| l.contains(" INFO ")), "{text}");
    let message = &lines[0];
    assert!(message.contains("message accepted"), "{text}");
    assert!(message.contains("peer=192.0.2.1:4000"), "{text}");
    assert!(message.contains("recipients=2"), "{text}");
    let served = &lines[1];
    for fact in [
        "disconnect",
        "listener=\"test\"",
        "peer=192.0.2.1:4000",
        "helo=\"client.test\"",
        "sender_group=\"TRUSTED\"",
        "policy=\"RELAYED\"",
        "behavior=relay",
        "tls=no",
        "result=quit",
        "ehlo=1 mail=1 rcpt=2 rcpt_ok=2 data=1",
        "messages=1",
        "duration_ms=",
    ] {
        assert!(served.contains(fact), "{fact}: {served}");
    }
    assert!(!served.contains("tls_protocol"), "{served}");
    let rejected = &lines[2];
    for fact in [
        "peer=198.51.100.7:5000",
        "sender_group=\"REST\"",
        "behavior=reject",
        "result=rejected",
        "messages=0",
    ] {
        assert!(rejected.contains(fact), "{fact}: {rejected}");
    }
    // Counters that stayed 0 are left out (as in Postfix's disconnect line).
    assert!(
        !rejected.contains("ehlo=") && !rejected.contains("rcpt="),
        "{rejected}"
    );
}
