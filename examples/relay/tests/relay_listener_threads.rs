//! `[runtime] listener_threads`: SMTP connections on per-core current-thread runtimes, each
//! accepting on its own `SO_REUSEPORT` socket (Linux), through the built binary. The listener's
//! semantics stay those of the shared runtime: every connection served and its mail delivered,
//! `max_connections` and the per-IP cap global over the threads, SIGTERM drains every thread
//! before delivery stops, a port in use fails the start, bad values are configuration errors.
#![cfg(target_os = "linux")]

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{Relay, Site, wait_until};

const THREADS: usize = 2;

/// `common::Site` (plaintext loopback relaying, local domain `localhost`) with
/// `listener_threads = THREADS` and `limits` added to its `[limits]`.
fn site(limits: &str) -> Site {
    let site = Site::new("", "[default]\ntls = \"no\"\ndane = \"none\"\n", None);
    edit(
        &site.config(),
        "shutdown_grace_secs = 5",
        &format!("shutdown_grace_secs = 5\n{limits}"),
    );
    append(
        &site.config(),
        &format!("\n[runtime]\nlistener_threads = {THREADS}\n"),
    );
    site
}

/// Replaces `from` (which must be there) by `to` in the file.
fn edit(file: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(file).unwrap();
    assert!(text.contains(from), "{from:?} not in {}", file.display());
    std::fs::write(file, text.replacen(from, to, 1)).unwrap();
}

fn append(file: &Path, text: &str) {
    let mut all = std::fs::read_to_string(file).unwrap();
    all.push_str(text);
    std::fs::write(file, all).unwrap();
}

/// The names of the process's threads called `listener-N`.
fn listener_threads(relay: &Relay) -> Vec<String> {
    let dir = PathBuf::from(format!("/proc/{}/task", relay.child.id()));
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_owned())
        .filter(|n| n.starts_with("listener-"))
        .collect();
    names.sort();
    names
}

/// Files in `rcpt`'s maildir `new/`.
fn delivered(site: &Site, rcpt: &str) -> usize {
    let dir = site.dir.path().join("maildir").join(rcpt).join("new");
    std::fs::read_dir(dir).map_or(0, |d| d.count())
}

/// A plaintext connection; returns it and its greeting.
fn connect(addr: SocketAddr) -> (TcpStream, BufReader<TcpStream>, String) {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let greeting = reply(&mut r);
    (s, r, greeting)
}

/// One whole reply (every line); empty when the connection closed first.
fn reply<R: BufRead>(r: &mut R) -> String {
    let mut all = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return all;
        }
        all.push_str(&line);
        if line.as_bytes().get(3) == Some(&b' ') {
            return all;
        }
    }
}

/// 200 connections, 100 at a time, each delivering one message through the relay's two
/// listener threads (smtp-load, plaintext): all accepted and delivered; both threads exist.
#[test]
fn connections_over_two_threads_are_served_and_delivered() {
    let site = site("max_connections_per_ip = 100");
    let mut relay = site.start();
    assert_eq!(
        listener_threads(&relay),
        ["listener-0", "listener-1"],
        "{}",
        relay.log()
    );
    let out = Command::new(env!("CARGO_BIN_EXE_smtp-load"))
        .args([
            "--server",
            &site.listen.to_string(),
            "--json",
            "--timeout",
            "20",
        ])
        .args(["-n", "200", "-c", "100", "-m", "1", "-s", "512"])
        .args(["--from", "load@client.test", "--to", "many@localhost"])
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert!(out.status.success(), "{summary}\n{}", relay.log());
    assert_eq!(summary["accepted"], 200, "{summary}");
    assert_eq!(summary["failed_connections"], 0, "{summary}");
    wait_until(
        Duration::from_secs(60),
        || {
            format!(
                "{} of 200 delivered: {}",
                delivered(&site, "many@localhost"),
                relay.log()
            )
        },
        || delivered(&site, "many@localhost") == 200,
    );
    let log = relay.log();
    assert_eq!(log.matches("listening").count(), THREADS, "{log}");
    assert_eq!(log.matches("disconnect").count(), 200 + 1, "{log}");
    assert!(relay.terminate().success(), "{}", relay.log());
}

/// `max_connections = 8` holds over both threads: with 8 connections open, 8 more are all
/// refused with `421 4.3.2` (per-thread counters would let about half of them in); once one
/// closes, a new connection is served.
#[test]
fn max_connections_is_enforced_over_all_threads() {
    let site = site("max_connections = 8");
    let mut relay = site.start();
    // The start-up probe's connection must be gone before the count starts.
    wait_until(
        Duration::from_secs(10),
        || relay.log(),
        || relay.log().contains("disconnect"),
    );
    let mut held = Vec::new();
    for _ in 0..8 {
        let (s, r, greeting) = connect(site.listen);
        assert!(greeting.starts_with("220"), "{greeting}: {}", relay.log());
        held.push((s, r));
    }
    for i in 0..8 {
        let (_s, _r, greeting) = connect(site.listen);
        assert!(
            greeting.starts_with("421 4.3.2"),
            "connection {} over the cap: {greeting:?}\n{}",
            i + 9,
            relay.log()
        );
    }
    let (mut s, mut r) = held.pop().unwrap();
    s.write_all(b"QUIT\r\n").unwrap();
    assert!(reply(&mut r).starts_with("221"));
    drop((s, r));
    // The slot is released when the session task ends, as its log line is written: the
    // start-up probe, the 8 refused and the one that quit.
    let ended = 1 + 8 + 1;
    wait_until(
        Duration::from_secs(10),
        || relay.log(),
        || relay.log().matches("disconnect").count() == ended,
    );
    let (_s, _r, greeting) = connect(site.listen);
    assert!(greeting.starts_with("220"), "{greeting}: {}", relay.log());
    drop(held);
    assert!(relay.terminate().success(), "{}", relay.log());
}

/// `max_connections_per_ip = 3` holds over both threads: with 3 connections open from
/// 127.0.0.1, 6 more are all refused with `421 4.7.0`.
#[test]
fn per_ip_cap_is_enforced_over_all_threads() {
    let site = site("max_connections_per_ip = 3");
    let mut relay = site.start();
    wait_until(
        Duration::from_secs(10),
        || relay.log(),
        || relay.log().contains("disconnect"),
    );
    let held: Vec<_> = (0..3)
        .map(|_| {
            let (s, r, greeting) = connect(site.listen);
            assert!(greeting.starts_with("220"), "{greeting}: {}", relay.log());
            (s, r)
        })
        .collect();
    for _ in 0..6 {
        let (_s, _r, greeting) = connect(site.listen);
        assert!(
            greeting.starts_with("421 4.7.0"),
            "{greeting:?}\n{}",
            relay.log()
        );
    }
    drop(held);
    assert!(relay.terminate().success(), "{}", relay.log());
}

/// SIGTERM while a client is inside a transaction on one of the threads: every thread stops
/// accepting, the transaction finishes (`250`), the next command gets `421 4.3.2`, delivery
/// stops only after all threads are done, exit 0, and the message is delivered or spooled.
#[test]
fn sigterm_drains_every_thread_before_delivery_stops() {
    let site = site("");
    let mut relay = site.start();
    let (mut w, mut r, greeting) = connect(site.listen);
    assert!(greeting.starts_with("220"), "{greeting}");
    for cmd in [
        "EHLO client.test",
        "MAIL FROM:<a@client.test>",
        "RCPT TO:<inflight@localhost>",
    ] {
        w.write_all(format!("{cmd}\r\n").as_bytes()).unwrap();
        let got = reply(&mut r);
        assert!(got.starts_with("250"), "{cmd}: {got}");
    }
    relay.send_sigterm();
    let deadline = Instant::now() + Duration::from_secs(30);
    while relay.log().matches("stopped accepting").count() < THREADS {
        assert!(Instant::now() < deadline, "{}", relay.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(TcpStream::connect_timeout(&site.listen, Duration::from_secs(2)).is_err());
    assert!(
        !relay.log().contains("inbound stopped"),
        "delivery stopped with a transaction in flight: {}",
        relay.log()
    );
    w.write_all(b"DATA\r\n").unwrap();
    assert!(reply(&mut r).starts_with("354"));
    w.write_all(b"Subject: in flight\r\n\r\nin-flight-body\r\n.\r\n")
        .unwrap();
    let done = reply(&mut r);
    assert!(done.starts_with("250 2.0.0 Ok: queued as "), "{done}");
    let id = done.trim().rsplit(' ').next().unwrap().to_owned();
    w.write_all(b"NOOP\r\n").unwrap();
    let bye = reply(&mut r);
    assert!(bye.starts_with("421 4.3.2"), "{bye}");
    let status = relay.wait_exit();
    let log = relay.log();
    assert!(status.success(), "exit {status}: {log}");
    let last_stop = log.rfind("stopped accepting").unwrap();
    let inbound_done = log.find("inbound stopped").expect("inbound stopped line");
    assert!(last_stop < inbound_done, "{log}");
    assert!(
        delivered(&site, "inflight@localhost") == 1 || site.spooled_envelope(&id).is_some(),
        "message lost: {log}"
    );
}

/// A port held by another socket (without `SO_REUSEPORT`) fails the start with exit 2 and
/// the listener named, as with the shared runtime.
#[test]
fn port_in_use_fails_the_start() {
    let site = site("");
    let holder = TcpListener::bind(site.listen).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_relay"))
        .args(["--config".as_ref(), site.config().as_os_str()])
        .current_dir(site.dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("test") && err.contains(&site.listen.to_string()),
        "{err}"
    );
    drop(holder);
}

/// A second relay with `listener_threads` ≥ 1 on the port of a running one fails its start
/// (exit 2, the listener and address named) instead of joining the first one's `SO_REUSEPORT`
/// group and taking a share of its connections; the first one keeps serving.
#[test]
fn second_relay_on_the_same_port_fails_the_start() {
    let first = site("");
    let mut running = first.start();
    let second = site("");
    edit(
        &second.config(),
        &format!("address = \"{}\"", second.listen),
        &format!("address = \"{}\"", first.listen),
    );
    let log = second.dir.path().join("relay.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_relay"))
        .args(["--config".as_ref(), second.config().as_os_str()])
        .current_dir(second.dir.path())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // It either exits or gets as far as "relay ready" (it bound the port): bounded wait.
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if std::fs::read_to_string(&log).is_ok_and(|l| l.contains("relay ready")) {
            break None;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("second relay neither ready nor gone after 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let err = std::fs::read_to_string(&log).unwrap_or_default();
    if status.is_none() {
        // Stop it by PID before failing.
        let _ = child.kill();
        let _ = child.wait();
    }
    let status = status.unwrap_or_else(|| panic!("second relay started on the port: {err}"));
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(
        err.contains("test") && err.contains(&first.listen.to_string()),
        "{err}"
    );
    let (_s, _r, greeting) = connect(first.listen);
    assert!(greeting.starts_with("220"), "{greeting}: {}", running.log());
    assert!(running.terminate().success(), "{}", running.log());
}

/// `--check-config` prints the threads in effect; bad values name the key.
#[test]
fn check_config_shows_and_checks_listener_threads() {
    let site = site("");
    let check = || {
        let out = Command::new(env!("CARGO_BIN_EXE_relay"))
            .args(["--check-config".as_ref(), site.config().as_os_str()])
            .current_dir(site.dir.path())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = check();
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("[runtime]\nlistener_threads = 2\n"), "{out}");
    for (bad, why) in [("257", "0 to 256"), ("-1", ""), ("\"all\"", "")] {
        edit(
            &site.config(),
            "listener_threads = 2",
            &format!("listener_threads = {bad}"),
        );
        let (code, _, err) = check();
        assert_eq!(code, Some(2), "{bad}: {err}");
        assert!(
            err.contains("key `runtime.listener_threads`"),
            "{bad}: {err}"
        );
        assert!(err.contains(why), "{bad}: {err}");
        edit(
            &site.config(),
            &format!("listener_threads = {bad}"),
            "listener_threads = 2",
        );
    }
}
