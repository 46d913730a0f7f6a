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
