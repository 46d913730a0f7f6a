//! DANE at delivery through the DNSSEC lab (`scripts/dnssec-lab.sh`: knot-signed zones, a
//! validating unbound on loopback), with the built `relay` binary trusting the resolver's AD bit
//! (`[delivery.resolver] mode = "trust-ad"`) and DANE `mandatory` for every test destination.
//!
//! What is covered: the failures that must defer **without any connection** — a bogus MX RRset,
//! a bogus TLSA RRset, a TLSA lookup that SERVFAILs, and a routed destination (an SMTP route has
//! no DNSSEC facts, so mandatory DANE cannot be satisfied: the scripted peer behind the route sees
//! no connection at all). And delivery itself: tests never use port 25, so the relay connects to
//! MX hosts on a free port P (`[delivery] mx_port = P`) and the lab publishes TLSA records at
//! `_P._tcp` (`SMTP_PORT=P`; RFC 7672 §3, the TLSA base name follows the port connected to).
//! A real Postfix smtpd on 127.0.0.1:P serves the lab's MX certificate: mail to `dane.test`
//! (MX `mx.dane.test`, `3 1 1` of that key) is delivered over a DANE-verified TLS session, and
//! mail to `wrongkey.dane.test` (MX `mx-wrongkey.dane.test`, `3 1 1` of another key) is
//! deferred with nothing delivered.

mod common;

use std::collections::HashSet;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use relay::RecipientState;
use test_support::dnssec_lab::Lab;
use test_support::free_port;
use test_support::postfix::Postfix;

use common::peer::{Behaviour, Peer};
use common::{Client, Site, wait_until};
use test_support::pki::{CertKey, server_config};

/// One destination: the domain, what makes it fail, and whether the relay may even log a
/// delivery attempt (it does for per-host DANE decisions, not when the MX lookup itself fails).
struct Row {
    domain: &'static str,
    why: &'static str,
    attempt_logged: bool,
    /// Text the recorded diagnostic must contain.
    diagnostic: &'static str,
}

const ROWS: [Row; 4] = [
    Row {
        domain: "present.broken.test",
        why: "MX RRset bogus (tampered after signing)",
        attempt_logged: false,
        diagnostic: "MX lookup of present.broken.test failed",
    },
    Row {
        domain: "bogus.dane.test",
        why: "MX secure, TLSA RRset of mx.broken.test bogus",
        attempt_logged: true,
        diagnostic: "TLSA lookup failed",
    },
    Row {
        domain: "servfail.dane.test",
        why: "MX secure, TLSA lookup of mx-sf.dane.test SERVFAILs",
        attempt_logged: true,
        diagnostic: "TLSA lookup failed",
    },
    Row {
        domain: "routed.dane.test",
        why: "SMTP route: no DNSSEC facts for the next hop",
        attempt_logged: true,
        diagnostic: "DANE mandatory but the host is not DANE-protected: MX RRset is insecure",
    },
];

#[test]
fn dane_mandatory_failures_defer_without_connecting() {
    let lab = Lab::start();
    // The peer behind the route serves the lab's MX certificate and key (the one the TLSA
    // records of mx.dane.test name): even so, mandatory DANE cannot be met through a route.
    let mx = CertKey {
        chain_pem: std::fs::read_to_string(lab.var("MX_CHAIN")).unwrap(),
        key_pem: std::fs::read_to_string(lab.var("MX_KEY")).unwrap(),
    };
    let peer = Peer::start(Behaviour::Tls(server_config(&mx)));
    let delivery = format!(
        "[delivery.resolver]\nmode = \"trust-ad\"\naddress = \"{}\"\nprobe_name = \"test.\"\n\
         [delivery.retry]\ninitial_secs = 3600\n\
         [[delivery.route]]\ndomain = \"routed.dane.test\"\nhosts = [\"mx.dane.test:{}\"]\n",
        lab.validating(),
        peer.addr.port()
    );
    let mut controls = String::from("[default]\ntls = \"no\"\ndane = \"none\"\n");
    for r in &ROWS {
        // `preferred`: without DANE this mode would fall back to plaintext; mandatory DANE
        // must not.
        controls.push_str(&format!(
            "[destinations.\"{}\"]\ntls = \"preferred\"\ndane = \"mandatory\"\n",
            r.domain
        ));
    }
    let ca_pem = std::fs::read_to_string(lab.var("CA_CERT")).unwrap();
    let site = Site::new(&delivery, &controls, Some(&ca_pem));
    let relay = site.start();

    let mut client = Client::connect(site.listen).unwrap();
    let mut ids = Vec::new();
    for r in &ROWS {
        let marker = format!("DANE-MARKER-{}", r.domain);
        let body = format!("Subject: dane\r\n\r\n{marker}\r\n");
        let id = client
            .send("sender@client.test", &format!("rcpt@{}", r.domain), &body)
            .unwrap()
            .unwrap_or_else(|| panic!("relay refused {}: {}", r.domain, relay.log()));
        ids.push(id);
    }
    client.quit();

    // Each message's deferral is written to the spool (the pending envelope).
    wait_until(
        Duration::from_secs(30),
        || format!("deferrals not recorded: {}", relay.log()),
        || {
            ids.iter()
                .all(|id| site.spooled_envelope(id).is_some_and(|e| e.attempts >= 1))
        },
    );
    let log = relay.log();
    let mut failures = Vec::new();
    for (r, id) in ROWS.iter().zip(&ids) {
        let spooled = site.spooled_envelope(id);
        let env = format!("{spooled:?}");
        let attempts: Vec<&str> = log
            .lines()
            .filter(|l| {
                l.contains("delivery attempt") && l.contains(&format!("domain={} ", r.domain))
            })
            .collect();
        let outcome = log
            .lines()
            .find(|l| l.contains("delivery outcome") && l.contains(id.as_str()))
            .and_then(|l| l.split_once("diagnostic="))
            .map_or("", |(_, d)| d);
        println!("{}: {} -> {outcome}", r.domain, r.why);
        let pending = spooled.as_ref().is_some_and(|e| {
            e.recipients
                .iter()
                .all(|r| r.state == RecipientState::Pending && r.attempts == 1)
        });
        let problem = if !pending {
            Some(format!("not deferred in the spool: {env}"))
        } else if !outcome.contains(r.diagnostic) {
            Some(format!("diagnostic {outcome:?}, want {:?}", r.diagnostic))
        } else if attempts.is_empty() == r.attempt_logged {
            Some(format!("delivery-attempt lines: {attempts:?}"))
        } else if attempts
            .iter()
            .any(|l| !l.contains("action=\"defer\"") || !l.contains("starttls_reply=None"))
        {
            // A preflight decision: no greeting was read, so no connection was used.
            Some(format!("not a preflight defer: {attempts:?}"))
        } else if log.lines().any(|l| {
            (l.contains("connect failed") || l.contains("session failed"))
                && (l.contains(r.domain) || l.contains(":25"))
        }) {
            Some("a connection was tried".into())
        } else {
            None
        };
        if let Some(p) = problem {
            failures.push(format!("{} ({}): {p}", r.domain, r.why));
        }
    }
    println!(
        "DANE mandatory: {} destinations, {} deferred without a connection",
        ROWS.len(),
        ROWS.len() - failures.len()
    );
    assert!(
        failures.is_empty(),
        "{}\n--- relay log ---\n{log}",
        failures.join("\n")
    );
    // The routed destination's peer never saw a connection.
    assert!(peer.conns().is_empty(), "the route's peer was contacted");
}

#[test]
fn dane_verified_delivery_to_postfix_and_key_mismatch_defers() {
    let port = free_port(&[]);
    let lab = Lab::start_with_smtp_port(port);
    // A Postfix smtpd on 127.0.0.1:`port` serving the lab's MX certificate (accepts and discards).
    let port_text = port.to_string();
    let postfix = Postfix::start(
        Postfix::scratch(),
        &[
            ("SMTPD_PORT", port_text.as_ref()),
            ("SMTPD_TLS", "may".as_ref()),
            ("TLS_CERT", lab.var("MX_CHAIN").as_ref()),
            ("TLS_KEY", lab.var("MX_KEY").as_ref()),
        ],
    );
    let delivery = format!(
        "mx_port = {port}\n[delivery.resolver]\nmode = \"trust-ad\"\naddress = \"{}\"\n\
         probe_name = \"test.\"\n[delivery.retry]\ninitial_secs = 3600\n",
        lab.validating()
    );
    // `preferred`: without DANE a failed handshake would fall back to plaintext; mandatory
    // DANE must not.
    let controls = "[default]\ntls = \"no\"\ndane = \"none\"\n\
                    [destinations.\"dane.test\"]\ntls = \"preferred\"\ndane = \"mandatory\"\n\
                    [destinations.\"wrongkey.dane.test\"]\ntls = \"preferred\"\n\
                    dane = \"mandatory\"\n";
    let ca_pem = std::fs::read_to_string(lab.var("CA_CERT")).unwrap();
    let site = Site::new(&delivery, controls, Some(&ca_pem));
    let relay = site.start();

    let mut client = Client::connect(site.listen).unwrap();
    let mut send = |to: &str| {
        let body = format!("Subject: dane\r\n\r\nDANE-MARKER for {to}\r\n");
        client
            .send("sender@client.test", to, &body)
            .unwrap()
            .unwrap_or_else(|| panic!("relay refused {to}: {}", relay.log()))
    };
    let good = send("user@dane.test");
    let wrong = send("user@wrongkey.dane.test");
    client.quit();

    // Delivered: Postfix queued and "sent" (discard transport) the message, received over TLS.
    wait_until(
        Duration::from_secs(30),
        || {
            format!(
                "no delivery at Postfix\n--- maillog ---\n{}\n--- relay ---\n{}",
                postfix.maillog(),
                relay.log()
            )
        },
        || {
            postfix
                .maillog()
                .lines()
                .any(|l| l.contains("to=<user@dane.test>") && l.contains("status=sent"))
        },
    );
    // The mismatch is deferred: its envelope stays pending in the spool.
    wait_until(
        Duration::from_secs(30),
        || format!("mismatch not deferred: {}", relay.log()),
        || {
            site.spooled_envelope(&wrong).is_some_and(|e| {
                e.recipients
                    .iter()
                    .all(|r| r.state == RecipientState::Pending && r.attempts >= 1)
            }) && relay
                .log()
                .lines()
                .any(|l| l.contains("delivery outcome") && l.contains(wrong.as_str()))
        },
    );
    let maillog = postfix.maillog();
    let log = relay.log();
    let attempt = |domain: &str| -> Vec<String> {
        log.lines()
            .filter(|l| l.contains("delivery attempt") && l.contains(&format!("domain={domain} ")))
            .map(String::from)
            .collect()
    };
    assert!(
        log.contains("DNSSEC validation proven"),
        "trust-ad, validating resolver: probe not proven: {log}"
    );
    let verified = attempt("dane.test");
    println!("verified: {verified:?}");
    assert!(
        verified.len() == 1
            && verified[0].contains(&format!("remote=\"mx.dane.test[127.0.0.1]:{port}\""))
            && verified[0].contains("dane_verdict=Some(Verified")
            && verified[0].contains("action=\"continue-tls\""),
        "no DANE-verified TLS attempt for dane.test: {verified:?}\n{log}"
    );
    assert!(
        maillog.contains("TLS connection established from"),
        "Postfix saw no TLS session: {maillog}"
    );
    // The delivered message left the spool.
    wait_until(
        Duration::from_secs(10),
        || format!("delivered message still spooled: {}", relay.log()),
        || site.spooled_envelope(&good).is_none(),
    );

    let mismatch = attempt("wrongkey.dane.test");
    println!("mismatch: {mismatch:?}");
    assert!(
        !mismatch.is_empty()
            && mismatch.iter().all(|l| {
                l.contains(&format!(
                    "remote=\"mx-wrongkey.dane.test[127.0.0.1]:{port}\""
                )) && l.contains("action=\"defer\"")
                    && l.contains("dane_verdict=Some(Failed { reason: \"no-match")
            }),
        "the key mismatch was not deferred: {mismatch:?}\n{log}"
    );
    assert!(
        site.spooled_envelope(&wrong).is_some(),
        "the deferred message left the spool"
    );
    assert!(
        !maillog.contains("wrongkey"),
        "Postfix received the mismatched destination's mail: {maillog}"
    );

    // Issue 11, DNSSEC on by default: a second relay whose `[delivery.resolver]` has no `mode`
    // validates in-process (here from the lab's anchor file, asking the lab's iterator-only
    // unbound, which does not validate itself). The probe succeeds and the same destination is
    // delivered over a DANE-verified TLS session.
    let delivery = format!(
        "mx_port = {port}\n[delivery.resolver]\naddress = \"{}\"\ntrust_anchor = \"{}\"\n\
         probe_name = \"test.\"\n[delivery.retry]\ninitial_secs = 3600\n",
        lab.non_validating(),
        lab.trust_anchor_file().display()
    );
    let site = Site::new(&delivery, controls, Some(&ca_pem));
    let relay = site.start();
    let mut client = Client::connect(site.listen).unwrap();
    let id = client
        .send(
            "sender@client.test",
            "second@dane.test",
            "Subject: dane\r\n\r\nDEFAULT-MODE-MARKER\r\n",
        )
        .unwrap()
        .unwrap_or_else(|| panic!("relay refused: {}", relay.log()));
    client.quit();
    wait_until(
        Duration::from_secs(30),
        || format!("default mode: not delivered: {}", relay.log()),
        || {
            site.spooled_envelope(&id).is_none()
                && postfix
                    .maillog()
                    .lines()
                    .any(|l| l.contains("to=<second@dane.test>") && l.contains("status=sent"))
        },
    );
    let log = relay.log();
    assert!(
        log.contains("DNSSEC validated in-process") && log.contains("DNSSEC validation proven"),
        "{log}"
    );
    let attempt = log
        .lines()
        .find(|l| l.contains("delivery attempt") && l.contains("domain=dane.test "))
        .unwrap_or_else(|| panic!("no attempt: {log}"));
    assert!(
        attempt.contains("dane_verdict=Some(Verified") && attempt.contains("continue-tls"),
        "default mode, no DANE-verified attempt: {attempt}"
    );
}

/// Issue 11, finding 3: `trust-ad` pointing at a resolver that does not validate (the lab's
/// iterator-only unbound). The relay probes it at start-up and every second here: the probe
/// fails, so every DNSSEC status is indeterminate — never insecure. The DANE-mandatory
/// destination defers without a connection; the opportunistic one is delivered without DANE
/// under its configured TLS mode (`preferred`: plaintext to a peer without STARTTLS — with
/// proven validation its TLSA records would require TLS). One warning per state change, naming
/// the fix.
#[test]
fn unproven_validation_defers_mandatory_dane_and_warns_once() {
    let lab = Lab::start();
    // The relay asks the lab's resolver through a tap that counts its probes.
    let tap = DnsTap::start(lab.non_validating());
    let peer = Peer::start(Behaviour::NoStartTls);
    let delivery = format!(
        "mx_port = {}\n[delivery.resolver]\nmode = \"trust-ad\"\naddress = \"{}\"\n\
         probe_name = \"test.\"\nprobe_interval_secs = 1\n\
         [delivery.retry]\ninitial_secs = 3600\n",
        peer.addr.port(),
        tap.addr
    );
    let controls = "[default]\ntls = \"no\"\ndane = \"none\"\n\
                    [destinations.\"dane.test\"]\ntls = \"preferred\"\ndane = \"mandatory\"\n\
                    [destinations.\"present.dane.test\"]\ntls = \"preferred\"\n\
                    dane = \"opportunistic\"\n";
    let site = Site::new(&delivery, controls, None);
    let relay = site.start();
    let mut client = Client::connect(site.listen).unwrap();
    let mut send = |to: &str| {
        let body = format!("Subject: unproven\r\n\r\nUNPROVEN-MARKER for {to}\r\n");
        client
            .send("sender@client.test", to, &body)
            .unwrap()
            .unwrap_or_else(|| panic!("relay refused {to}: {}", relay.log()))
    };
    let mandatory = send("user@dane.test");
    let opportunistic = send("user@present.dane.test");
    client.quit();

    wait_until(
        Duration::from_secs(30),
        || format!("opportunistic mail not delivered: {}", relay.log()),
        || site.spooled_envelope(&opportunistic).is_none(),
    );
    wait_until(
        Duration::from_secs(30),
        || format!("mandatory mail not deferred: {}", relay.log()),
        || {
            site.spooled_envelope(&mandatory).is_some_and(|e| {
                e.recipients
                    .iter()
                    .all(|r| r.state == RecipientState::Pending && r.attempts >= 1)
            })
        },
    );
    // At least two more probes (one per second), still one warning. The probes run one after
    // the other, so once the third probe from here on has asked, the two before it have
    // finished (and logged, had their state changed).
    let probes = tap.probes();
    wait_until(
        Duration::from_secs(30),
        || {
            format!(
                "{} probes, not {}: {}",
                tap.probes(),
                probes + 3,
                relay.log()
            )
        },
        || tap.probes() >= probes + 3,
    );
    let log = relay.log();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("DNSSEC validation not proven"))
        .collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(
        warnings[0].contains("WARN")
            && warnings[0].contains("validation=\"not-validating\"")
            && warnings[0].contains("delivery.resolver.address"),
        "{}",
        warnings[0]
    );
    assert!(!log.contains("DNSSEC validation proven"), "{log}");
    let attempts: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("delivery attempt"))
        .collect();
    assert!(
        attempts
            .iter()
            .all(|l| !l.to_lowercase().contains("insecure")),
        "a status claimed insecure: {attempts:?}"
    );
    let mandatory_attempts: Vec<&&str> = attempts
        .iter()
        .filter(|l| l.contains("domain=dane.test "))
        .collect();
    assert!(
        !mandatory_attempts.is_empty()
            && mandatory_attempts
                .iter()
                .all(|l| l.contains("action=\"defer\"") && l.contains("starttls_reply=None")),
        "{mandatory_attempts:?}\n{log}"
    );
    // the peer got the opportunistic message only
    let seen: String = peer.conns().iter().map(|c| c.plain_text()).collect();
    assert!(
        seen.contains("UNPROVEN-MARKER for user@present.dane.test"),
        "{seen}"
    );
    assert!(!seen.contains("user@dane.test"), "{seen}");
}

/// A DNS forwarder on loopback (UDP and TCP, one port) in front of `upstream` that records the
/// relay's validation probes (`SOA test.` queries, `probe_name = "test."`), so that a test can
/// wait for probes instead of sleeping. Its threads end (bounded) once it is dropped.
struct DnsTap {
    addr: SocketAddr,
    /// The DNS IDs of the probe queries seen (a retransmission keeps its ID).
    probe_ids: Arc<Mutex<HashSet<u16>>>,
    stop: Arc<AtomicBool>,
}

impl DnsTap {
    fn start(upstream: SocketAddr) -> Self {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = tcp.local_addr().unwrap();
        let udp = UdpSocket::bind(addr).unwrap();
        udp.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        tcp.set_nonblocking(true).unwrap();
        let tap = Self {
            addr,
            probe_ids: Arc::default(),
            stop: Arc::default(),
        };
        let (ids, stop) = (tap.probe_ids.clone(), tap.stop.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !stop.load(Ordering::SeqCst) {
                let Ok((n, client)) = udp.recv_from(&mut buf) else {
                    continue;
                };
                let query = buf[..n].to_vec();
                if is_probe(&query) {
                    ids.lock()
                        .unwrap()
                        .insert(u16::from_be_bytes([query[0], query[1]]));
                }
                let back = udp.try_clone().unwrap();
                std::thread::spawn(move || {
                    let up = UdpSocket::bind("127.0.0.1:0").unwrap();
                    up.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    up.send_to(&query, upstream).unwrap();
                    let mut answer = [0u8; 65535];
                    if let Ok(n) = up.recv(&mut answer) {
                        let _ = back.send_to(&answer[..n], client);
                    }
                });
            }
        });
        let stop = tap.stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let Ok((down, _)) = tcp.accept() else {
                    // poll interval of the accept loop, which ends with the tap
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                std::thread::spawn(move || {
                    down.set_nonblocking(false).unwrap();
                    let Ok(up) = TcpStream::connect(upstream) else {
                        return;
                    };
                    for s in [&down, &up] {
                        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    }
                    let (down2, up2) = (down.try_clone().unwrap(), up.try_clone().unwrap());
                    let t = std::thread::spawn(move || pipe(&down2, &up2));
                    pipe(&up, &down);
                    let _ = t.join();
                });
            }
        });
        tap
    }

    /// Probe queries seen so far.
    fn probes(&self) -> usize {
        self.probe_ids.lock().unwrap().len()
    }
}

impl Drop for DnsTap {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Copies until EOF, an error or the read timeout, then shuts the writer's side down.
fn pipe(mut from: &TcpStream, mut to: &TcpStream) {
    let _ = std::io::copy(&mut from, &mut to);
    let _ = to.shutdown(std::net::Shutdown::Write);
}

/// Whether a DNS query asks for `SOA test.` (the question right after the 12-octet header).
fn is_probe(query: &[u8]) -> bool {
    const QUESTION: &[u8] = b"\x04test\x00\x00\x06";
    query
        .get(12..12 + QUESTION.len())
        .is_some_and(|q| q.eq_ignore_ascii_case(QUESTION))
}
