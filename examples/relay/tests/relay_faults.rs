//! Fault matrix at delivery (issue 7 acceptance), through the built `relay` binary: every TLS mode
//! of the destination controls against every scripted peer behaviour, one table of expected
//! actions (the seed's "Enabling TLS and Certificate Verification on Delivery", Table 2, as
//! smtp-tls-policy's delivery machine implements it), one loop.
//!
//! One relay process routes each `<peer>.<mode>.faults.test` domain to its own scripted peer
//! (an SMTP route to 127.0.0.1:port) and sets the mode for it in the destination-control file.
//! Each peer records every byte it receives before TLS and inside TLS, per connection, so the
//! test checks the action (delivered over TLS / in plaintext on the same connection / retried in
//! plaintext on a new connection / deferred with the message still spooled) and that no byte of
//! a message (a unique marker in its body) — nor even `MAIL FROM` — reaches a peer in plaintext
//! where the mode forbids it.

mod common;

use std::time::Duration;

use common::peer::{Behaviour, Conn, Peer};
use common::{Client, Site, wait_until};
use test_support::pki::{TestCa, self_signed, server_config};

/// The scripted peers, in table column order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// EHLO reply without STARTTLS.
    NoStartTls,
    /// `454` to STARTTLS.
    Refuse454,
    /// `220` to STARTTLS, then the connection closes.
    HandshakeClose,
    /// `220` to STARTTLS, then garbage instead of a ServerHello.
    HandshakeGarbage,
    /// A self-signed certificate for the right name.
    Untrusted,
    /// A certificate from the trusted CA for another name.
    NameMismatch,
    /// A certificate from the trusted CA for the destination domain.
    Good,
    /// As `Good`, with a plaintext `250` reply injected right after the `220` to STARTTLS: the
    /// relay as client must ignore it (RFC 3207 §4.2, CVE-2011-0411).
    Injected,
}

const FAULTS: [Fault; 8] = [
    Fault::NoStartTls,
    Fault::Refuse454,
    Fault::HandshakeClose,
    Fault::HandshakeGarbage,
    Fault::Untrusted,
    Fault::NameMismatch,
    Fault::Good,
    Fault::Injected,
];

impl Fault {
    fn label(self) -> &'static str {
        match self {
            Self::NoStartTls => "nostarttls",
            Self::Refuse454 => "refuse454",
            Self::HandshakeClose => "hsclose",
            Self::HandshakeGarbage => "hsgarbage",
            Self::Untrusted => "untrusted",
            Self::NameMismatch => "mismatch",
            Self::Good => "good",
            Self::Injected => "injected",
        }
    }
}

/// What the relay must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Delivered inside TLS (one connection).
    Tls,
    /// Delivered in plaintext on the first connection.
    Plain,
    /// The STARTTLS connection is abandoned after the failed handshake; delivered in plaintext
    /// on a second connection that does not try STARTTLS.
    Retry,
    /// No transaction at all; the message stays in the spool, pending.
    Defer,
}

use Expect::{Defer, Plain, Retry, Tls};

/// Expected action per mode, columns in `FAULTS` order:
/// no-STARTTLS, 454, handshake close, handshake garbage, untrusted, name mismatch, good,
/// good with bytes injected after `220`.
#[rustfmt::skip]
const TABLE: [(&str, [Expect; 8]); 6] = [
    //                                  no-tls  454    hs-close hs-garb untrust mismatch good inject
    ("no",                             [Plain, Plain, Plain,   Plain,  Plain,  Plain,  Plain, Plain]),
    ("preferred",                      [Plain, Plain, Retry,   Retry,  Tls,    Tls,    Tls,   Tls]),
    ("required",                       [Defer, Defer, Defer,   Defer,  Tls,    Tls,    Tls,   Tls]),
    ("preferred-verify",               [Plain, Plain, Retry,   Retry,  Tls,    Tls,    Tls,   Tls]),
    ("required-verify",                [Defer, Defer, Defer,   Defer,  Defer,  Defer,  Tls,   Tls]),
    ("required-verify-hosted-domains", [Defer, Defer, Defer,   Defer,  Defer,  Defer,  Tls,   Tls]),
];

fn domain(fault: Fault, mode: &str) -> String {
    format!("{}.{mode}.faults.test", fault.label())
}

struct Case {
    mode: &'static str,
    fault: Fault,
    expect: Expect,
    domain: String,
    peer: Peer,
    marker: String,
    id: String,
}

#[test]
fn fault_matrix_at_delivery() {
    let ca = TestCa::new("relay fault-matrix CA");
    let good_names: Vec<String> = TABLE
        .iter()
        .flat_map(|(m, _)| [domain(Fault::Good, m), domain(Fault::Injected, m)])
        .collect();
    let untrusted_names: Vec<String> = TABLE
        .iter()
        .map(|(m, _)| domain(Fault::Untrusted, m))
        .collect();
    let good = server_config(&ca.issue(&good_names));
    let untrusted = server_config(&self_signed(&untrusted_names));
    let mismatch = server_config(&ca.issue(&["wrong-name.invalid".to_owned()]));

    // One peer per cell; routes and destination controls for every cell.
    let mut cells = Vec::new();
    let mut routes = String::new();
    let mut controls = String::from("[default]\ntls = \"no\"\ndane = \"none\"\n");
    for (mode, row) in TABLE {
        for (fault, expect) in FAULTS.into_iter().zip(row) {
            let behaviour = match fault {
                Fault::NoStartTls => Behaviour::NoStartTls,
                Fault::Refuse454 => Behaviour::Refuse454,
                Fault::HandshakeClose => Behaviour::HandshakeClose,
                Fault::HandshakeGarbage => Behaviour::HandshakeGarbage,
                Fault::Untrusted => Behaviour::Tls(untrusted.clone()),
                Fault::NameMismatch => Behaviour::Tls(mismatch.clone()),
                Fault::Good => Behaviour::Tls(good.clone()),
                Fault::Injected => Behaviour::TlsInjected(good.clone()),
            };
            let peer = Peer::start(behaviour);
            let d = domain(fault, mode);
            routes.push_str(&format!(
                "[[delivery.route]]\ndomain = \"{d}\"\nhosts = [\"127.0.0.1:{}\"]\n",
                peer.addr.port()
            ));
            controls.push_str(&format!("[destinations.\"{d}\"]\ntls = \"{mode}\"\n"));
            cells.push((mode, fault, expect, d, peer));
        }
    }
    // Retries far beyond the test: every connection a peer sees comes from the first attempt.
    let delivery = format!("[delivery.retry]\ninitial_secs = 3600\n{routes}");
    let site = Site::new(&delivery, &controls, Some(&ca.pem));
    let relay = site.start();

    let mut client = Client::connect(site.listen).unwrap();
    let mut cases = Vec::new();
    for (mode, fault, expect, d, peer) in cells {
        let marker = format!(
            "FAULT-MARKER-{}-{mode}-{}",
            fault.label(),
            std::process::id()
        );
        let body = format!(
            "From: <sender@client.test>\r\nSubject: fault matrix\r\nMessage-ID: <{marker}@client.test>\r\n\r\n{marker}\r\n"
        );
        let id = client
            .send("sender@client.test", &format!("rcpt@{d}"), &body)
            .unwrap()
            .unwrap_or_else(|| panic!("relay refused the message for {d}: {}", relay.log()));
        cases.push(Case {
            mode,
            fault,
            expect,
            domain: d,
            peer,
            marker,
            id,
        });
    }
    client.quit();

    // Every cell settles: delivered (spool file removed) or deferred (pending state written).
    let settled = |c: &Case| {
        let spooled = site.spooled_envelope(&c.id);
        match c.expect {
            Defer => spooled.is_some_and(|e| e.attempts >= 1),
            _ => spooled.is_none(),
        }
    };
    wait_until(
        Duration::from_secs(30),
        || {
            let open: Vec<&str> = cases
                .iter()
                .filter(|c| !settled(c))
                .map(|c| c.domain.as_str())
                .collect();
            format!("cells not settled: {open:?}\n{}", relay.log())
        },
        || cases.iter().all(settled),
    );

    let log = relay.log();
    let mut failures = Vec::new();
    for c in &cases {
        if let Err(e) = check(c, &site, &log) {
            failures.push(format!(
                "{} × {:?} (expected {:?}): {e}",
                c.mode, c.fault, c.expect
            ));
        }
    }
    println!(
        "fault matrix: {} cells, {} as expected",
        cases.len(),
        cases.len() - failures.len()
    );
    assert!(
        failures.is_empty(),
        "{}\n--- relay log ---\n{log}",
        failures.join("\n")
    );
    // No message content in the relay's log.
    for c in &cases {
        assert!(!log.contains(&c.marker), "message content logged: {log}");
    }
}

fn sent_mail(c: &Conn) -> bool {
    c.plain_text().contains("MAIL FROM") || c.tls_text().contains("MAIL FROM")
}

/// Checks one cell; `Err` names what went wrong.
fn check(c: &Case, site: &Site, log: &str) -> Result<(), String> {
    let conns = c.peer.conns();
    let marker = c.marker.as_str();
    let required = c.mode.starts_with("required");
    // The invariant above all: under `required*` no plaintext byte of the message, ever.
    for (i, conn) in conns.iter().enumerate() {
        if required && (conn.plain_text().contains(marker) || conn.plain_text().contains("MAIL")) {
            return Err(format!(
                "connection {i}: plaintext transaction under {}: {:?}",
                c.mode,
                conn.plain_text()
            ));
        }
    }
    let starttls = |conn: &Conn| conn.plain_text().contains("STARTTLS");
    match c.expect {
        Tls => {
            let [conn] = conns.as_slice() else {
                return Err(format!("{} connections, want 1", conns.len()));
            };
            if !(conn.tls_up && conn.delivered == Some(true)) {
                return Err(format!("not delivered inside TLS: {}", describe(conn)));
            }
            if !conn.tls_text().contains(marker) || conn.plain_text().contains(marker) {
                return Err("marker not (only) inside TLS".into());
            }
            if conn.plain_text().contains("MAIL") {
                return Err(format!(
                    "plaintext MAIL before TLS: {:?}",
                    conn.plain_text()
                ));
            }
        }
        Plain => {
            let [conn] = conns.as_slice() else {
                return Err(format!("{} connections, want 1", conns.len()));
            };
            if conn.delivered != Some(false) || !conn.plain_text().contains(marker) {
                return Err(format!("not delivered in plaintext: {}", describe(conn)));
            }
            if c.mode == "no" && starttls(conn) {
                return Err("STARTTLS sent although the mode is `no`".into());
            }
        }
        Retry => {
            let [first, second] = conns.as_slice() else {
                return Err(format!("{} connections, want 2", conns.len()));
            };
            if !starttls(first) || sent_mail(first) || first.delivered.is_some() {
                return Err(format!("first connection: {:?}", first.plain_text()));
            }
            if starttls(second) {
                return Err("the plaintext retry tried STARTTLS again".into());
            }
            if second.delivered != Some(false) || !second.plain_text().contains(marker) {
                return Err(format!("retry did not deliver: {:?}", second.plain_text()));
            }
        }
        Defer => {
            let [conn] = conns.as_slice() else {
                return Err(format!("{} connections, want 1", conns.len()));
            };
            if sent_mail(conn) || conn.delivered.is_some() {
                return Err(format!("a transaction was started: {}", describe(conn)));
            }
            if conn.tls_text().contains(marker) || conn.plain_text().contains(marker) {
                return Err("message bytes reached the peer".into());
            }
            let Some(env) = site.spooled_envelope(&c.id) else {
                return Err("message no longer in the spool".into());
            };
            if !env
                .recipients
                .iter()
                .all(|r| r.state == relay::RecipientState::Pending && r.attempts >= 1)
            {
                return Err(format!("recipient not pending: {env:?}"));
            }
            let defer_logged = log.lines().any(|l| {
                l.contains(&format!("domain={} ", c.domain)) && l.contains("action=\"defer\"")
            });
            if !defer_logged {
                return Err("no `action=\"defer\"` delivery-attempt log line".into());
            }
        }
    }
    Ok(())
}

/// A connection's record as text, for failure messages.
fn describe(c: &Conn) -> String {
    format!(
        "tls_up={} delivered={:?} plain={:?} tls={:?}",
        c.tls_up,
        c.delivered,
        c.plain_text(),
        c.tls_text()
    )
}

/// Issue 11, finding 7, through the relay: a recipient domain that IDNA refuses
/// (`xn--zz` is not valid Punycode) gets the `.secure.faults.test` entry (`required-verify`),
/// not the default (`no`): the peer offers no STARTTLS, so the message stays pending and no
/// byte of it, nor `MAIL FROM`, reaches the peer. A domain the destination controls cannot
/// compare at all (an address literal, here from the spool) bounces with a DSN and a clear
/// reason; it is neither lost nor sent under the default entry.
#[test]
fn idna_refused_domain_is_not_given_the_default_entry() {
    let peer = Peer::start(Behaviour::NoStartTls);
    let port = peer.addr.port();
    let delivery = format!(
        "[delivery.retry]\ninitial_secs = 3600\n\
         [[delivery.route]]\ndomain = \".secure.faults.test\"\nhosts = [\"127.0.0.1:{port}\"]\n"
    );
    let controls = "[default]\ntls = \"no\"\ndane = \"none\"\n\
                    [destinations.\".secure.faults.test\"]\ntls = \"required-verify\"\n";
    let site = Site::new(&delivery, controls, None);
    let marker = format!("IDNA-MARKER-{}", std::process::id());
    let body = format!("Subject: idna\r\n\r\n{marker}\r\n");
    // The SMTP listener refuses address literals in RCPT, so this one comes from the spool (an
    // older relay, a hand-made envelope): recovered at start, then delivered.
    let bounced = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let (spool, _) = relay::Spool::open(
                &site.dir.path().join("spool"),
                relay::SpoolConfig::default(),
            )
            .await
            .unwrap();
            let env = relay::Envelope::new(
                "sender@client.test",
                ["rcpt@[127.0.0.1]"],
                std::time::SystemTime::now(),
            );
            let env = spool.accept(env, body.clone().into_bytes()).await.unwrap();
            env.id.to_string()
        });
    let relay = site.start();
    let mut client = Client::connect(site.listen).unwrap();
    let deferred = client
        .send(
            "sender@client.test",
            "rcpt@xn--zz.secure.faults.test",
            &body,
        )
        .unwrap()
        .expect("accepted");
    client.quit();

    wait_until(
        Duration::from_secs(30),
        || format!("not settled\n{}", relay.log()),
        || {
            site.spooled_envelope(&deferred)
                .is_some_and(|e| e.attempts >= 1)
                && site.spooled_envelope(&bounced).is_none()
        },
    );
    for (i, conn) in peer.conns().iter().enumerate() {
        let text = conn.plain_text();
        assert!(
            !text.contains("MAIL") && !text.contains(&marker),
            "connection {i}: plaintext transaction under required-verify: {text:?}\n{}",
            relay.log()
        );
    }
    let env = site.spooled_envelope(&deferred).unwrap();
    assert!(
        env.recipients
            .iter()
            .all(|r| r.state == relay::RecipientState::Pending),
        "{env:?}"
    );
    let log = relay.log();
    // The literal: bounced at once with the reason, and its DSN queued (not lost, not retried
    // under the default entry).
    assert!(
        log.lines().any(|l| l.contains("recipient=rcpt@[127.0.0.1]")
            && l.contains("disposition=Bounced")
            && l.contains("diagnostic=\"destination controls: destination domain")),
        "{log}"
    );
    assert!(log.contains(&format!("DSN queued id={bounced} ")), "{log}");
    assert!(!log.contains(&marker), "message content logged: {log}");
}

/// Tarpit next hops that accept connections and never greet; they count the connections they
/// hold at once, over all of them.
#[derive(Default)]
struct TarpitState {
    held: Vec<std::net::TcpStream>,
    accepted: usize,
    max_open: usize,
}

type Tarpits = std::sync::Arc<std::sync::Mutex<TarpitState>>;

/// A listener on 127.0.0.1 holding every connection in `state`; stops on drop.
struct Tarpit {
    addr: std::net::SocketAddr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Tarpit {
    fn start(state: &Tarpits) -> Self {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (st, s) = (state.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let mut t = st.lock().unwrap();
                t.held.push(stream);
                t.accepted += 1;
                t.max_open = t.max_open.max(t.held.len());
            }
        });
        Self {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Tarpit {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = std::net::TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Issue 11, finding 6: `max_concurrent_deliveries` caps delivery tasks over all
/// destinations. Four destinations, each routed to a tarpit that holds the connection without
/// a greeting, and a cap of 2 (per destination: 10): at most 2 connections are ever held at
/// once; each one the test closes frees a slot for the next destination, until all four were
/// tried.
#[test]
fn global_delivery_cap_holds_against_tarpits() {
    const CAP: usize = 2;
    const DESTINATIONS: usize = 4;
    let state = Tarpits::default();
    let tarpits: Vec<Tarpit> = (0..DESTINATIONS).map(|_| Tarpit::start(&state)).collect();
    let mut delivery = format!(
        "max_concurrent_deliveries = {CAP}\nmax_connections_per_destination = 10\n\
         [delivery.retry]\ninitial_secs = 3600\n"
    );
    for (i, t) in tarpits.iter().enumerate() {
        delivery.push_str(&format!(
            "[[delivery.route]]\ndomain = \"cap{i}.faults.test\"\nhosts = [\"127.0.0.1:{}\"]\n",
            t.addr.port()
        ));
    }
    let site = Site::new(
        &delivery,
        "[default]\ntls = \"no\"\ndane = \"none\"\n",
        None,
    );
    let relay = site.start();
    let mut client = Client::connect(site.listen).unwrap();
    for i in 0..DESTINATIONS {
        client
            .send(
                "sender@client.test",
                &format!("rcpt@cap{i}.faults.test"),
                "Subject: cap\r\n\r\nbody\r\n",
            )
            .unwrap()
            .expect("accepted");
    }
    client.quit();

    let counts = || {
        let t = state.lock().unwrap();
        (t.accepted, t.held.len(), t.max_open)
    };
    let what = || {
        format!(
            "(accepted, open, max open) = {:?}\n{}",
            counts(),
            relay.log()
        )
    };
    // The cap is reached, and the runner says destinations wait (or the cap is broken).
    wait_until(Duration::from_secs(30), what, || {
        let (accepted, _, _) = counts();
        accepted > CAP
            || (accepted == CAP && relay.log().contains("max_concurrent_deliveries reached"))
    });
    assert!(counts().2 <= CAP, "cap broken: {}", what());
    // Free one slot at a time: each lets exactly one more destination in.
    for next in CAP + 1..=DESTINATIONS {
        {
            let mut t = state.lock().unwrap();
            let s = t.held.remove(0);
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        wait_until(Duration::from_secs(30), what, || counts().0 >= next);
        assert!(counts().2 <= CAP, "cap broken: {}", what());
    }
    let (accepted, _, max_open) = counts();
    assert_eq!((accepted, max_open), (DESTINATIONS, CAP), "{}", what());
    state.lock().unwrap().held.clear();
    drop(relay);
    drop(tarpits);
}

/// The number of messages in the maildir of `rcpt` at `site`.
fn delivered_to(site: &Site, rcpt: &str) -> usize {
    std::fs::read_dir(site.dir.path().join("maildir").join(rcpt).join("new"))
        .map_or(0, |d| d.count())
}

/// Delivery starvation by tarpits, (a): `max_session_secs` bounds a whole delivery attempt.
/// One slot (`max_concurrent_deliveries = 1`), taken by a tarpit that never greets (the
/// greeting timeout alone is 300 s); with `max_session_secs = 2` the attempt ends after about
/// 2 s: the message is deferred (4.4.2, still spooled, pending, one attempt counted, never
/// delivered) and the freed slot delivers the message that waited for it.
#[test]
fn session_limit_frees_a_slot_held_by_a_tarpit() {
    let state = Tarpits::default();
    let tarpit = Tarpit::start(&state);
    let delivery = format!(
        "max_concurrent_deliveries = 1\nmax_session_secs = 2\n\
         [delivery.retry]\ninitial_secs = 3600\n\
         [[delivery.route]]\ndomain = \"slow.faults.test\"\nhosts = [\"127.0.0.1:{}\"]\n\
         [[delivery.route]]\ndomain = \"good.faults.test\"\nhosts = [\"maildir\"]\n",
        tarpit.addr.port()
    );
    let site = Site::new(
        &delivery,
        "[default]\ntls = \"no\"\ndane = \"none\"\n",
        None,
    );
    let relay = site.start();
    let mut client = Client::connect(site.listen).unwrap();
    let slow = client
        .send(
            "sender@client.test",
            "rcpt@slow.faults.test",
            "Subject: slow\r\n\r\nbody\r\n",
        )
        .unwrap()
        .expect("accepted");
    let what = || {
        format!(
            "tarpit accepted {}, good delivered {}\n{}",
            state.lock().unwrap().accepted,
            delivered_to(&site, "rcpt@good.faults.test"),
            relay.log()
        )
    };
    wait_until(Duration::from_secs(30), what, || {
        state.lock().unwrap().accepted == 1
    });
    let started = std::time::Instant::now();
    client
        .send(
            "sender@client.test",
            "rcpt@good.faults.test",
            "Subject: good\r\n\r\nbody\r\n",
        )
        .unwrap()
        .expect("accepted");
    client.quit();
    wait_until(Duration::from_secs(30), what, || {
        delivered_to(&site, "rcpt@good.faults.test") == 1
    });
    let took = started.elapsed();
    assert!(took < Duration::from_secs(20), "{took:?}: {}", what());
    let log = relay.log();
    assert!(
        log.lines()
            .any(|l| l.contains("recipient=rcpt@slow.faults.test")
                && l.contains("disposition=Deferred")
                && l.contains("max_session_secs")),
        "{log}"
    );
    let env = site.spooled_envelope(&slow).expect("still spooled");
    let r = &env.recipients[0];
    assert_eq!(
        (r.state, r.attempts),
        (relay::RecipientState::Pending, 1),
        "{env:?}"
    );
    assert_eq!(
        r.last.as_ref().and_then(|d| d.status),
        Some((4, 4, 2)),
        "{env:?}"
    );
    assert_eq!(state.lock().unwrap().accepted, 1, "{}", what());
    state.lock().unwrap().held.clear();
    drop(relay);
    drop(tarpit);
}

/// Delivery starvation by tarpits, (b): fair share under the global cap. A tarpit destination
/// with three messages (one per connection) takes both slots while nobody else waits; then a
/// message for another destination waits. When one tarpit connection ends, the freed slot goes
/// to the waiting destination (below its share, 2 / 2 = 1), not back to the tarpit (at it).
/// `max_connections_per_destination` is the cap, so the tarpit's third message does not count
/// as waiting for a global slot: the cap's log line comes when the runner holds the new
/// message back, the event the test waits for before freeing a slot.
#[test]
fn freed_slot_goes_to_the_destination_below_its_share() {
    const CAP: usize = 2;
    let state = Tarpits::default();
    let tarpit = Tarpit::start(&state);
    let delivery = format!(
        "max_concurrent_deliveries = {CAP}\nmax_connections_per_destination = {CAP}\n\
         max_messages_per_connection = 1\n\
         [delivery.retry]\ninitial_secs = 3600\n\
         [[delivery.route]]\ndomain = \"hog.faults.test\"\nhosts = [\"127.0.0.1:{}\"]\n\
         [[delivery.route]]\ndomain = \"fair.faults.test\"\nhosts = [\"maildir\"]\n",
        tarpit.addr.port()
    );
    let site = Site::new(
        &delivery,
        "[default]\ntls = \"no\"\ndane = \"none\"\n",
        None,
    );
    let relay = site.start();
    let mut client = Client::connect(site.listen).unwrap();
    let counts = || {
        let t = state.lock().unwrap();
        (t.accepted, t.held.len(), t.max_open)
    };
    let what = || {
        format!(
            "(accepted, open, max open) = {:?}, fair delivered {}\n{}",
            counts(),
            delivered_to(&site, "rcpt@fair.faults.test"),
            relay.log()
        )
    };
    for i in 0..3 {
        client
            .send(
                "sender@client.test",
                "rcpt@hog.faults.test",
                &format!("Subject: hog {i}\r\n\r\nbody\r\n"),
            )
            .unwrap()
            .expect("accepted");
    }
    const CAPPED: &str = "max_concurrent_deliveries reached";
    wait_until(Duration::from_secs(30), what, || counts().0 == CAP);
    // The third tarpit message waits for a tarpit connection, not for a global slot.
    assert!(!relay.log().contains(CAPPED), "{}", what());
    client
        .send(
            "sender@client.test",
            "rcpt@fair.faults.test",
            "Subject: fair\r\n\r\nbody\r\n",
        )
        .unwrap()
        .expect("accepted");
    client.quit();
    // The runner has the new message and holds it back by the cap; then free one slot.
    wait_until(Duration::from_secs(30), what, || {
        relay.log().contains(CAPPED)
    });
    assert_eq!(
        delivered_to(&site, "rcpt@fair.faults.test"),
        0,
        "{}",
        what()
    );
    {
        let mut t = state.lock().unwrap();
        let s = t.held.remove(0);
        let _ = s.shutdown(std::net::Shutdown::Both);
    }
    wait_until(Duration::from_secs(30), what, || {
        delivered_to(&site, "rcpt@fair.faults.test") == 1 || counts().0 > CAP
    });
    assert_eq!(
        delivered_to(&site, "rcpt@fair.faults.test"),
        1,
        "the freed slot went back to the tarpit: {}",
        what()
    );
    assert!(counts().2 <= CAP, "cap broken: {}", what());
    state.lock().unwrap().held.clear();
    drop(relay);
    drop(tarpit);
}
