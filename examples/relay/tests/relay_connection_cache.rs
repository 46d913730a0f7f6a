//! The outbound connection cache (`delivery.connection_cache_secs`, issue 15): a delivery
//! session that has carried its batch waits for more mail to the same destination and TLS
//! request kind instead of QUITting at once. The real relay binary delivers over SMTP routes
//! to a counting sink on loopback, which records the recipients each connection carried.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use common::{Client, Site, wait_until};

/// One connection at the sink: the recipients of the messages it carried, whether it QUIT.
#[derive(Debug, Default, Clone)]
struct Conn {
    delivered: Vec<String>,
    quit: bool,
}

type Record = Arc<Mutex<Vec<Conn>>>;

/// A plain SMTP sink on 127.0.0.1 that accepts every message (one thread per connection).
struct Sink {
    addr: SocketAddr,
    conns: Record,
}

impl Sink {
    fn start() -> Self {
        Self::start_with(false)
    }

    /// `close_after_message`: the connection is closed (no reply to what follows) after each
    /// message, as by a peer whose idle timeout is shorter than the relay's cache time.
    fn start_with(close_after_message: bool) -> Self {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let conns: Record = Arc::default();
        let record = conns.clone();
        std::thread::spawn(move || {
            for tcp in l.incoming() {
                let Ok(tcp) = tcp else { return };
                let i = {
                    let mut c = record.lock().unwrap_or_else(PoisonError::into_inner);
                    c.push(Conn::default());
                    c.len() - 1
                };
                let record = record.clone();
                std::thread::spawn(move || serve(tcp, i, &record, close_after_message));
            }
        });
        Self { addr, conns }
    }

    fn conns(&self) -> Vec<Conn> {
        self.conns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Every recipient delivered, over all connections.
    fn delivered(&self) -> Vec<String> {
        let mut all: Vec<String> = self.conns().into_iter().flat_map(|c| c.delivered).collect();
        all.sort();
        all
    }
}

fn serve(tcp: TcpStream, i: usize, record: &Record, close_after_message: bool) -> Option<()> {
    tcp.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
    let mut w = tcp.try_clone().ok()?;
    let mut r = BufReader::new(tcp);
    w.write_all(b"220 sink.test ESMTP\r\n").ok()?;
    let mut rcpts: Vec<String> = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let upper = line.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            b"250 sink.test\r\n"
        } else if upper.starts_with("RCPT TO:<") {
            let to = line[9..].split('>').next().unwrap_or("").to_owned();
            rcpts.push(to);
            b"250 2.1.5 Ok\r\n"
        } else if upper.starts_with("DATA") {
            w.write_all(b"354 go ahead\r\n").ok()?;
            loop {
                let mut l = String::new();
                if r.read_line(&mut l).ok()? == 0 {
                    return None;
                }
                if l == ".\r\n" {
                    break;
                }
            }
            record.lock().unwrap_or_else(PoisonError::into_inner)[i]
                .delivered
                .append(&mut rcpts);
            if close_after_message {
                w.write_all(b"250 2.0.0 Ok\r\n").ok()?;
                return Some(()); // both halves dropped: the connection is closed
            }
            b"250 2.0.0 Ok\r\n"
        } else if upper.starts_with("QUIT") {
            record.lock().unwrap_or_else(PoisonError::into_inner)[i].quit = true;
            let _ = w.write_all(b"221 2.0.0 Bye\r\n");
            return Some(());
        } else if upper.starts_with("RSET") {
            rcpts.clear();
            b"250 2.0.0 Ok\r\n"
        } else {
            b"250 2.0.0 Ok\r\n"
        };
        w.write_all(reply).ok()?;
    }
}

/// A site routing each of `domains` to `sink`, plain SMTP, with `extra` `[delivery]` lines.
fn site(sink: &Sink, domains: &[&str], extra: &str) -> Site {
    let mut delivery = format!("{extra}\n[delivery.retry]\ninitial_secs = 3600\n");
    for d in domains {
        delivery.push_str(&format!(
            "[[delivery.route]]\ndomain = \"{d}\"\nhosts = [\"127.0.0.1:{}\"]\n",
            sink.addr.port()
        ));
    }
    Site::new(
        &delivery,
        "[default]\ntls = \"no\"\ndane = \"none\"\n",
        None,
    )
}

const BODY: &str = "Subject: t\r\n\r\nhello\r\n";
const RELAXED: &str = "Subject: t\r\nTLS-Required: No\r\n\r\nhello\r\n";

/// Sends `n` messages to `rcpt(i)`, one per 50 ms (each on a connection of its own, as in
/// relay-bench's phase (a)); returns the sorted recipients.
fn trickle(site: &Site, n: usize, rcpt: impl Fn(usize) -> (String, &'static str)) -> Vec<String> {
    let mut all = Vec::new();
    for i in 0..n {
        let (to, body) = rcpt(i);
        let mut c = Client::connect(site.listen).unwrap();
        assert!(c.send("s@localhost", &to, body).unwrap().is_some(), "{to}");
        c.quit();
        all.push(to);
        std::thread::sleep(Duration::from_millis(50)); // the pace of the load, not a wait
    }
    all.sort();
    all
}

fn wait_delivered(sink: &Sink, site: &Site, want: &[String], relay: &common::Relay) {
    wait_until(
        Duration::from_secs(30),
        || {
            format!(
                "delivered {:?} of {want:?}\n{}",
                sink.delivered(),
                relay.log()
            )
        },
        || sink.delivered().len() >= want.len() && site.spooled() == 0,
    );
    assert_eq!(sink.delivered(), want, "each message exactly once");
}

/// Mail trickling in (30 messages, one every 50 ms) to one destination: before the cache each
/// small batch had a connection of its own (~1 per message); now the session carries them all.
#[test]
fn trickling_mail_reuses_one_connection() {
    let sink = Sink::start();
    let site = site(&sink, &["cache.test"], "connection_cache_secs = 5");
    let relay = site.start();
    let want = trickle(&site, 30, |i| (format!("r{i}@cache.test"), BODY));
    wait_delivered(&sink, &site, &want, &relay);
    let conns = sink.conns();
    assert!(conns.len() <= 3, "{} connections: {conns:?}", conns.len());
    drop(relay);
}

/// `connection_cache_secs = 0`: one connection per batch, as before (each QUITs).
#[test]
fn no_cache_means_a_connection_per_batch() {
    let sink = Sink::start();
    let site = site(&sink, &["cache.test"], "connection_cache_secs = 0");
    let relay = site.start();
    let want = trickle(&site, 10, |i| (format!("r{i}@cache.test"), BODY));
    wait_delivered(&sink, &site, &want, &relay);
    let conns = sink.conns();
    assert!(conns.len() >= 5, "{} connections: {conns:?}", conns.len());
    wait_until(
        Duration::from_secs(10),
        || format!("{:?}", sink.conns()),
        || sink.conns().iter().all(|c| c.quit),
    );
}

/// RFC 8689 §4.2.2: `TLS-Required: No` mail and other mail to the same domain never share a
/// session, lingering or not; each kind still reuses its own.
#[test]
fn tls_required_no_and_other_mail_never_share_a_connection() {
    let sink = Sink::start();
    let site = site(&sink, &["cache.test"], "connection_cache_secs = 5");
    let relay = site.start();
    let want = trickle(&site, 20, |i| {
        if i % 2 == 0 {
            (format!("plain{i}@cache.test"), BODY)
        } else {
            (format!("relaxed{i}@cache.test"), RELAXED)
        }
    });
    wait_delivered(&sink, &site, &want, &relay);
    let conns = sink.conns();
    for c in &conns {
        let relaxed = c
            .delivered
            .iter()
            .filter(|r| r.starts_with("relaxed"))
            .count();
        assert!(relaxed == 0 || relaxed == c.delivered.len(), "mixed: {c:?}");
    }
    assert!(conns.len() <= 6, "{} connections: {conns:?}", conns.len());
    let kinds = |prefix: &str| {
        conns
            .iter()
            .filter(|c| c.delivered.iter().all(|r| r.starts_with(prefix)))
            .count()
    };
    assert!(kinds("plain") >= 1 && kinds("relaxed") >= 1, "{conns:?}");
}

/// With one delivery slot (`max_concurrent_deliveries = 1`) held by a session lingering for
/// `a.test` (cache 30 s), mail for `b.test` must not wait for the cache time: the lingering
/// session QUITs at once and frees the slot.
#[test]
fn a_lingering_session_gives_its_slot_to_a_waiting_destination() {
    let sink = Sink::start();
    let site = site(
        &sink,
        &["a.test", "b.test"],
        "connection_cache_secs = 30\nmax_concurrent_deliveries = 1",
    );
    let relay = site.start();
    let a = trickle(&site, 1, |_| ("x@a.test".into(), BODY));
    wait_delivered(&sink, &site, &a, &relay);
    assert!(!sink.conns()[0].quit, "the a.test session lingers");
    let start = Instant::now();
    let mut want = trickle(&site, 1, |_| ("y@b.test".into(), BODY));
    want.extend(a);
    want.sort();
    wait_delivered(&sink, &site, &want, &relay);
    let took = start.elapsed();
    assert!(took < Duration::from_secs(10), "b.test waited {took:?}");
    wait_until(
        Duration::from_secs(10),
        || format!("{:?}", sink.conns()),
        || sink.conns()[0].quit,
    );
}

/// SIGTERM while a session lingers (cache 60 s): the relay stops promptly, QUITs the session,
/// and no message is lost.
#[test]
fn sigterm_ends_lingering_at_once() {
    let sink = Sink::start();
    let site = site(&sink, &["cache.test"], "connection_cache_secs = 60");
    let mut relay = site.start();
    let want = trickle(&site, 3, |i| (format!("r{i}@cache.test"), BODY));
    wait_delivered(&sink, &site, &want, &relay);
    assert!(sink.conns().iter().any(|c| !c.quit), "a session lingers");
    let start = Instant::now();
    let status = relay.terminate();
    let took = start.elapsed();
    assert!(status.success(), "{status:?}\n{}", relay.log());
    // shutdown_grace_secs is 5: lingering must not hold the exit anywhere near it
    assert!(took < Duration::from_secs(3), "exit took {took:?}");
    wait_until(
        Duration::from_secs(10),
        || format!("{:?}", sink.conns()),
        || sink.conns().iter().all(|c| c.quit),
    );
    assert_eq!(sink.delivered(), want);
    assert_eq!(site.spooled(), 0);
}

/// A peer that closes the connection while the session waits in the cache: the messages
/// handed to the stale session go out over a new connection at once — never deferred for the
/// retry backoff (here an hour), never bounced.
#[test]
fn a_stale_cached_connection_costs_no_retry() {
    let sink = Sink::start_with(true);
    let site = site(&sink, &["cache.test"], "connection_cache_secs = 30");
    let relay = site.start();
    let want = trickle(&site, 5, |i| (format!("r{i}@cache.test"), BODY));
    wait_delivered(&sink, &site, &want, &relay);
    assert!(
        relay.log().contains("cached connection stale"),
        "{}",
        relay.log()
    );
}
