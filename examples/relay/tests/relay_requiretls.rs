//! REQUIRETLS (RFC 8689) end to end, through the built binary on loopback: the listener offers
//! and accepts `REQUIRETLS` only inside TLS and stores the flag (and a `TLS-Required: No`
//! header) with the message across a restart; a flagged message goes to a next hop only over
//! authenticated TLS to a host that advertises REQUIRETLS — Postfix 3.7 does not (bounce,
//! 5.7.30, with a DSN saying why), a second relay does (delivered, the flag kept there).
//!
//! Not tested here: the route condition (DNSSEC-secure MX or MTA-STS `enforce`, RFC 8689
//! §4.2.1 item 1) — the hop plan does not decide it yet; the relay enforces only the session
//! conditions (TLS, authenticated peer, advertised extension).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use relay::{Envelope, TlsRequest};
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use test_support::pki::TestCa;
use test_support::postfix::Postfix;

mod common;
use common::{Relay, wait_until};

/// The sender of every test message: a local mailbox, so a DSN lands in the maildir.
const SENDER: &str = "s@localhost";

/// A relay site: listener certificate (issued by the test CA for `names`), the test CA as the
/// only trust anchor for delivery, a HAT letting loopback relay with TLS offered, `routes`
/// (domain, port) and the destination-control file `destinations`.
struct Node {
    dir: tempfile::TempDir,
    listen: SocketAddr,
    name: String,
}

impl Node {
    fn new(ca: &TestCa, names: &[&str], routes: &[(&str, &[u16])], destinations: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let listen = test_support::free_addr();
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let cert = ca.issue(&names);
        let mut store = cert_store::CertStore::open(dir.path().join("certs")).unwrap();
        store
            .import_pem(
                "relay",
                cert.chain_pem.as_bytes(),
                cert.key_pem.as_bytes(),
                cert_store::FqdnCheck::Off,
            )
            .unwrap();
        store
            .import_custom_ca(ca.pem.as_bytes(), cert_store::BadEntryPolicy::Reject)
            .unwrap();
        store
            .set_ca_enabled(cert_store::CaList::Custom, true)
            .unwrap();
        store
            .set_ca_enabled(cert_store::CaList::System, false)
            .unwrap();
        std::fs::write(
            dir.path().join("hat.toml"),
            r#"
[[mail_flow_policy]]
name = "LOOPBACK"
behavior = "relay"
tls = "preferred"
[[mail_flow_policy]]
name = "BLOCKED"
behavior = "reject"
[[sender_group]]
name = "RELAYLIST"
order = 1
policy = "LOOPBACK"
senders = ["127.0.0.0/8"]
[[sender_group]]
name = "ALL"
order = 2
policy = "BLOCKED"
senders = ["ALL"]
"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("destinations.toml"), destinations).unwrap();
        let mut route_text = String::new();
        for (domain, ports) in routes {
            let hosts: Vec<String> = ports.iter().map(|p| format!("\"127.0.0.1:{p}\"")).collect();
            route_text.push_str(&format!(
                "[[delivery.route]]\ndomain = \"{domain}\"\nhosts = [{}]\n",
                hosts.join(", ")
            ));
        }
        let d = dir.path().display();
        let name = names[0].clone();
        std::fs::write(
            dir.path().join("relay.toml"),
            format!(
                r#"
[[listener]]
name = "test"
address = "{listen}"
certificate = "relay"
hat = "hat.toml"
hostname = "{name}"

[spool]
dir = "{d}/spool"

[tls]
cert_store = "{d}/certs"

[limits]
shutdown_grace_secs = 5

[delivery]
ehlo_name = "{name}"
destination_controls = "destinations.toml"
local_domains = ["localhost"]
maildir = "{d}/maildir"
connect_timeout_secs = 5
[delivery.retry]
initial_secs = 3600
{route_text}
"#
            ),
        )
        .unwrap();
        Self { dir, listen, name }
    }

    fn start(&self, n: usize) -> Relay {
        Relay::spawn(
            self.dir.path(),
            &[
                "--config".as_ref(),
                self.dir.path().join("relay.toml").as_os_str(),
            ],
            self.listen,
            &format!("relay-{n}.log"),
            "info,smtp_tls_policy=debug",
        )
    }

    fn spooled(&self) -> Vec<Envelope> {
        relay::list_spool(&self.dir.path().join("spool")).unwrap_or_default()
    }

    fn spooled_envelope(&self, id: &str) -> Option<Envelope> {
        self.spooled().into_iter().find(|e| e.id.as_str() == id)
    }

    /// Every file delivered to the local mailbox `rcpt`, as text.
    fn mailbox(&self, rcpt: &str) -> Vec<String> {
        let new = self.dir.path().join("maildir").join(rcpt).join("new");
        let Ok(entries) = std::fs::read_dir(new) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .collect()
    }
}

/// A port nothing listens on: a route there defers (connection refused) and the message stays.
fn closed_port() -> u16 {
    test_support::free_port(&[])
}

// ------------------------------------------------------------------ an SMTP client with STARTTLS

enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
    /// In between (during the switch to TLS).
    Closed,
}

fn closed() -> std::io::Error {
    std::io::Error::from(std::io::ErrorKind::NotConnected)
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Self::Plain(s) => s.read(buf),
            Self::Tls(s) => s.read(buf),
            Self::Closed => Err(closed()),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Self::Plain(s) => s.write(buf),
            Self::Tls(s) => s.write(buf),
            Self::Closed => Err(closed()),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Self::Plain(s) => s.flush(),
            Self::Tls(s) => s.flush(),
            Self::Closed => Err(closed()),
        }
    }
}

/// A submission client: reads byte by byte (nothing is buffered across STARTTLS).
struct Smtp {
    s: Stream,
}

impl Smtp {
    fn connect(addr: SocketAddr) -> Self {
        let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut c = Self {
            s: Stream::Plain(tcp),
        };
        let greeting = c.reply();
        assert!(greeting.starts_with("220"), "{greeting}");
        c
    }

    fn reply(&mut self) -> String {
        let mut all = String::new();
        for _ in 0..100 {
            let mut line = Vec::new();
            let mut b = [0u8];
            while line.last() != Some(&b'\n') {
                assert_eq!(self.s.read(&mut b).unwrap(), 1, "closed after {all:?}");
                line.push(b[0]);
            }
            let line = String::from_utf8_lossy(&line).into_owned();
            all.push_str(&line);
            if line.as_bytes().get(3) == Some(&b' ') {
                return all;
            }
        }
        panic!("reply too long: {all}");
    }

    fn cmd(&mut self, line: &str) -> String {
        self.s.write_all(format!("{line}\r\n").as_bytes()).unwrap();
        self.s.flush().unwrap();
        self.reply()
    }

    /// STARTTLS, the handshake verified against `ca` for `name`, and EHLO again; returns the
    /// EHLO reply inside TLS.
    fn starttls(&mut self, ca: &str, name: &str) -> String {
        let r = self.cmd("STARTTLS");
        assert!(r.starts_with("220"), "{r}");
        let Stream::Plain(tcp) = std::mem::replace(&mut self.s, Stream::Closed) else {
            panic!("not a plaintext session")
        };
        let conn = ClientConnection::new(
            client_config(ca),
            rustls_pki_types::ServerName::try_from(name.to_owned()).unwrap(),
        )
        .unwrap();
        self.s = Stream::Tls(Box::new(StreamOwned::new(conn, tcp)));
        self.cmd("EHLO client.test")
    }

    /// One message with `MAIL FROM:<sender>{params}`; the final reply (or the first refusal).
    fn send(&mut self, params: &str, to: &str, message: &str) -> String {
        let r = self.cmd(&format!("MAIL FROM:<{SENDER}>{params}"));
        if !r.starts_with("250") {
            return r;
        }
        let r = self.cmd(&format!("RCPT TO:<{to}>"));
        if !r.starts_with("250") {
            return r;
        }
        let r = self.cmd("DATA");
        assert!(r.starts_with("354"), "{r}");
        self.cmd(&format!("{message}\r\n."))
    }
}

fn client_config(ca: &str) -> Arc<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let bundle =
        cert_store::parse_bundle(ca.as_bytes(), cert_store::BadEntryPolicy::Reject).unwrap();
    for c in bundle.certs {
        roots.add(c).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Arc::new(
        ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// The queue id of a `250 2.0.0 Ok: queued as ID` reply.
fn queued(reply: &str) -> String {
    reply
        .trim()
        .strip_prefix("250 2.0.0 Ok: queued as ")
        .unwrap_or_else(|| panic!("not queued: {reply}"))
        .to_owned()
}

/// Submits one message over TLS with `MAIL FROM:<..> REQUIRETLS`; returns its queue id.
fn submit_flagged(node: &Node, ca: &str, to: &str) -> String {
    let mut c = Smtp::connect(node.listen);
    assert!(c.cmd("EHLO client.test").starts_with("250"));
    let ehlo = c.starttls(ca, &node.name);
    assert!(ehlo.contains("REQUIRETLS"), "{ehlo}");
    let id = queued(&c.send(" REQUIRETLS", to, "Subject: flagged\r\n\r\nsecret\r\n"));
    let _ = c.cmd("QUIT");
    id
}

const MESSAGE: &str = "Subject: t\r\n\r\nhello\r\n";
const RELAXED: &str = "Subject: t\r\nTLS-Required:\r\n no\r\n\r\nhello\r\n";

// ------------------------------------------------------------------ tests

/// RFC 8689 §2, §3, §4.1 on the listener: REQUIRETLS is offered and accepted only inside TLS
/// (530 5.7.10 in plaintext), a repeated parameter is a syntax error (501), and the flag — or
/// a `TLS-Required: No` header, which REQUIRETLS overrides — is stored with the message and
/// still there after a restart.
#[test]
fn listener_offers_requiretls_only_inside_tls_and_stores_the_flag() {
    let ca = TestCa::new("requiretls test CA");
    let node = Node::new(
        &ca,
        &["relay-a.test"],
        &[("sink.example", &[closed_port()])],
        "[default]\ntls = \"no\"\ndane = \"none\"\n",
    );
    let mut relay = node.start(1);
    let mut c = Smtp::connect(node.listen);
    let ehlo = c.cmd("EHLO client.test");
    assert!(ehlo.contains("STARTTLS"), "{ehlo}");
    assert!(!ehlo.contains("REQUIRETLS"), "offered in plaintext: {ehlo}");
    let r = c.cmd(&format!("MAIL FROM:<{SENDER}> REQUIRETLS"));
    assert!(r.starts_with("530 5.7.10"), "{r}");
    // The refusal opened no transaction; a plaintext message with the header is relaxed.
    let relaxed = queued(&c.send("", "r1@sink.example", RELAXED));
    let plain = queued(&c.send("", "r2@sink.example", MESSAGE));
    let ehlo = c.starttls(&ca.pem, &node.name);
    assert!(
        ehlo.contains("250-REQUIRETLS") || ehlo.contains("250 REQUIRETLS"),
        "{ehlo}"
    );
    let r = c.cmd(&format!("MAIL FROM:<{SENDER}> REQUIRETLS REQUIRETLS"));
    assert!(r.starts_with("501"), "{r}");
    // REQUIRETLS takes precedence over the header (RFC 8689 §4.1).
    let flagged = queued(&c.send(" REQUIRETLS", "r3@sink.example", RELAXED));
    let tls_only = queued(&c.send("", "r4@sink.example", MESSAGE));
    let _ = c.cmd("QUIT");

    let expected = [
        (&relaxed, TlsRequest::TlsOptional),
        (&plain, TlsRequest::Default),
        (&flagged, TlsRequest::RequireTls),
        (&tls_only, TlsRequest::Default),
    ];
    let check = |when: &str| {
        for (id, want) in &expected {
            let env = node
                .spooled_envelope(id)
                .unwrap_or_else(|| panic!("{when}: {id} not spooled: {:?}", node.spooled()));
            assert_eq!(env.tls_request, *want, "{when}: {id}");
        }
    };
    check("before the restart");
    assert!(relay.terminate().success(), "{}", relay.log());
    let relay = node.start(2);
    check("after the restart");
    drop(relay);
}

/// A flagged message to Postfix 3.7 (no REQUIRETLS) over verified TLS: not sent, bounced with
/// 5.7.30 and a DSN saying why; an unflagged message over the same route is delivered.
#[test]
fn flagged_message_to_postfix_bounces_with_5_7_30() {
    let ca = TestCa::new("requiretls test CA");
    let pf = Postfix::with_tls(&ca, &["pf.example"]);
    let node = Node::new(
        &ca,
        &["relay-a.test"],
        &[("pf.example", &[pf.port()])],
        "[default]\ntls = \"no\"\ndane = \"none\"\n\
         [destinations.\"pf.example\"]\ntls = \"required-verify\"\n",
    );
    let relay = node.start(1);
    let flagged = submit_flagged(&node, &ca.pem, "u@pf.example");
    let mut c = Smtp::connect(node.listen);
    assert!(c.cmd("EHLO client.test").starts_with("250"));
    let plain = queued(&c.send("", "v@pf.example", MESSAGE));
    let _ = c.cmd("QUIT");

    wait_until(
        Duration::from_secs(60),
        || format!("spool {:?}\n{}", node.spooled(), relay.log()),
        || {
            node.spooled_envelope(&flagged).is_none()
                && node.spooled_envelope(&plain).is_none()
                && !node.mailbox(SENDER).is_empty()
        },
    );
    let dsns = node.mailbox(SENDER);
    assert_eq!(dsns.len(), 1, "{dsns:?}");
    let dsn = &dsns[0];
    assert!(
        dsn.contains("Final-Recipient: rfc822; u@pf.example"),
        "{dsn}"
    );
    assert!(dsn.contains("Status: 5.7.30"), "{dsn}");
    assert!(dsn.contains("REQUIRETLS support required"), "{dsn}");
    assert!(dsn.contains("does not advertise REQUIRETLS"), "{dsn}");
    assert!(!dsn.contains("v@pf.example"), "{dsn}");
    let log = pf.wait_log(Duration::from_secs(20), |l| l.contains("status=sent"));
    assert!(log.contains("to=<v@pf.example>"), "{log}");
    assert!(
        !log.contains("u@pf.example"),
        "the flagged message reached Postfix: {log}"
    );
    let ours = relay.log();
    assert!(
        ours.contains("REQUIRETLS: message not sent to this host"),
        "{ours}"
    );
}

/// Relay A → relay B (our own listener, which advertises REQUIRETLS inside TLS): over
/// verified TLS (`required-verify`) the flagged message is delivered with REQUIRETLS and B
/// stores the flag; over TLS that is not verified (`required`) it is not sent (the peer is
/// not authenticated) and bounces with 5.7.30.
#[test]
fn flagged_message_to_our_own_listener_keeps_the_flag() {
    let ca = TestCa::new("requiretls test CA");
    let b = Node::new(
        &ca,
        &["relay-b.test", "b.example", "c.example"],
        &[
            ("b.example", &[closed_port()]),
            ("c.example", &[closed_port()]),
        ],
        "[default]\ntls = \"no\"\ndane = \"none\"\n",
    );
    let relay_b = b.start(1);
    let port_b = b.listen.port();
    let a = Node::new(
        &ca,
        &["relay-a.test"],
        &[("b.example", &[port_b]), ("c.example", &[port_b])],
        "[default]\ntls = \"no\"\ndane = \"none\"\n\
         [destinations.\"b.example\"]\ntls = \"required-verify\"\n\
         [destinations.\"c.example\"]\ntls = \"required\"\n",
    );
    let relay_a = a.start(1);
    let to_b = submit_flagged(&a, &ca.pem, "u@b.example");
    let to_c = submit_flagged(&a, &ca.pem, "u@c.example");
    wait_until(
        Duration::from_secs(60),
        || {
            format!(
                "A: {:?}\nB: {:?}\n{}\n{}",
                a.spooled(),
                b.spooled(),
                relay_a.log(),
                relay_b.log()
            )
        },
        || {
            a.spooled_envelope(&to_b).is_none()
                && a.spooled_envelope(&to_c).is_none()
                && !a.mailbox(SENDER).is_empty()
                && b.spooled()
                    .iter()
                    .any(|e| e.recipients[0].address == "u@b.example")
        },
    );
    let at_b: Vec<Envelope> = b.spooled();
    assert_eq!(at_b.len(), 1, "{at_b:?}");
    assert_eq!(at_b[0].recipients[0].address, "u@b.example");
    assert_eq!(at_b[0].tls_request, TlsRequest::RequireTls);
    let dsns = a.mailbox(SENDER);
    assert_eq!(dsns.len(), 1, "{dsns:?}");
    assert!(
        dsns[0].contains("Final-Recipient: rfc822; u@c.example"),
        "{}",
        dsns[0]
    );
    assert!(dsns[0].contains("Status: 5.7.30"), "{}", dsns[0]);
    assert!(dsns[0].contains("not authenticated"), "{}", dsns[0]);
    assert!(!dsns[0].contains("u@b.example"), "{}", dsns[0]);
}

/// RFC 8689 §4.2.1 "try the next MX": a flagged message whose first host (Postfix) lacks
/// REQUIRETLS goes to the next host (relay B, which has it); when the other host fails only
/// temporarily (connection refused) the message is not bounced but retried later (4.7.30),
/// since that host may support REQUIRETLS.
#[test]
fn flagged_message_tries_the_next_host_and_defers_when_one_was_unreachable() {
    let ca = TestCa::new("requiretls test CA");
    let pf = Postfix::with_tls(&ca, &["next.example", "later.example"]);
    let b = Node::new(
        &ca,
        &["relay-b.test", "next.example"],
        &[("next.example", &[closed_port()])],
        "[default]\ntls = \"no\"\ndane = \"none\"\n",
    );
    let relay_b = b.start(1);
    let a = Node::new(
        &ca,
        &["relay-a.test"],
        &[
            ("next.example", &[pf.port(), b.listen.port()]),
            ("later.example", &[pf.port(), closed_port()]),
        ],
        "[default]\ntls = \"required-verify\"\ndane = \"none\"\n",
    );
    let relay_a = a.start(1);
    let next = submit_flagged(&a, &ca.pem, "u@next.example");
    let later = submit_flagged(&a, &ca.pem, "u@later.example");
    let deferred = |e: &Envelope| {
        e.recipients[0]
            .last
            .as_ref()
            .is_some_and(|d| d.status == Some((4, 7, 30)))
    };
    wait_until(
        Duration::from_secs(60),
        || {
            format!(
                "A: {:?}\nB: {:?}\n{}\n{}",
                a.spooled(),
                b.spooled(),
                relay_a.log(),
                relay_b.log()
            )
        },
        || {
            a.spooled_envelope(&next).is_none()
                && b.spooled().len() == 1
                && a.spooled_envelope(&later).is_some_and(|e| deferred(&e))
        },
    );
    let at_b = b.spooled();
    assert_eq!(at_b[0].recipients[0].address, "u@next.example");
    assert_eq!(at_b[0].tls_request, TlsRequest::RequireTls);
    let env = a.spooled_envelope(&later).unwrap();
    assert_eq!(env.recipients[0].state, relay::RecipientState::Pending);
    let d = env.recipients[0].last.clone().unwrap();
    assert!(d.text.contains("does not advertise REQUIRETLS"), "{d:?}");
    assert!(a.mailbox(SENDER).is_empty(), "{:?}", a.mailbox(SENDER));
    let log = pf.maillog();
    assert!(
        !log.contains("status=sent"),
        "Postfix got a flagged message: {log}"
    );
}
