//! The README's first command: `relay` with no configuration (the embedded default) accepts a
//! message from swaks over STARTTLS and delivers it into a maildir under `./relay-data/`; SIGTERM
//! ends it with status 0.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

mod common;
use common::Relay;
use test_support::free_addr;

/// Files in `dir` (none if it does not exist yet).
fn files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|it| it.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

#[test]
fn default_config_delivers_swaks_message_to_maildir_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let listen = free_addr();
    let mut relay = Relay::spawn(
        dir.path(),
        &["--listen".as_ref(), listen.to_string().as_ref()],
        listen,
        "relay.log",
        "info",
    );
    let marker = format!("relay-default-test-{}", std::process::id());
    let out = Command::new("timeout")
        .args(["60", "swaks", "--server", &listen.to_string(), "--tls"])
        .args(["--to", "user@localhost", "--from", "sender@localhost"])
        .args(["--body", &marker])
        .output()
        .unwrap();
    let transcript =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "swaks failed: {transcript}\n{}",
        relay.log()
    );
    assert!(
        transcript.contains("250 2.0.0 Ok: queued as"),
        "{transcript}"
    );

    // Delivery is asynchronous: poll (bounded) for the maildir file.
    let new = dir.path().join("relay-data/maildir/user@localhost/new");
    let deadline = Instant::now() + Duration::from_secs(30);
    let file = loop {
        if let Some(f) = files(&new).into_iter().next() {
            break f;
        }
        assert!(
            Instant::now() < deadline,
            "no maildir file: {}",
            relay.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains(&marker), "{text}");
    // Our trace header, naming the TLS session the message came over.
    // (local delivery adds Return-Path and Delivered-To above it)
    assert!(
        text.lines()
            .take(4)
            .any(|l| l.starts_with("Received: from ")),
        "{text}"
    );
    assert!(text.contains("with ESMTPS id"), "{text}");
    assert!(text.contains("(version=TLSv1_3 cipher="), "{text}");

    let status = relay.terminate();
    let log = relay.log();
    assert!(status.success(), "exit {status}: {log}");
    // The demonstration certificate's warning, and the structured connection log.
    assert!(log.contains("demonstration certificate"), "{log}");
    assert!(log.contains("sender_group=\"RELAYLIST\""), "{log}");
    assert!(log.contains("tls_protocol=TLSv1_3"), "{log}");
    assert!(!log.contains(&marker), "message content in the log: {log}");
    // The default configuration was written beside the data, and the spool stays.
    assert!(
        dir.path()
            .join("relay-data/default-config/relay.toml")
            .is_file()
    );
    assert!(dir.path().join("relay-data/spool").is_dir());
}

/// Issue 11, DNSSEC on by default: `relay --check-config` on the embedded default shows the
/// effective resolver — validating in-process, the built-in IANA root anchors, the system's
/// nameservers as upstream and the probe — and the relay started on it (above, and here again)
/// runs offline: the catch-all makes no DNS lookup and starts no probe.
#[test]
fn check_config_shows_the_default_validating_resolver() {
    let dir = tempfile::tempdir().unwrap();
    let listen = free_addr();
    let mut relay = Relay::spawn(
        dir.path(),
        &["--listen".as_ref(), listen.to_string().as_ref()],
        listen,
        "relay.log",
        "info",
    );
    let status = relay.terminate();
    let log = relay.log();
    assert!(status.success(), "exit {status}: {log}");
    assert!(log.contains("no validation probe"), "{log}");
    assert!(!log.contains("DNSSEC validation not proven"), "{log}");
    let config = dir.path().join("relay-data/default-config/relay.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_relay"))
        .args(["--json", "--check-config"])
        .arg(&config)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = &j["delivery"]["resolver"];
    assert_eq!(r["mode"], "validating", "{r}");
    assert_eq!(r["dnssec"], "validated in-process", "{r}");
    let anchor = r["trust_anchor_source"].as_str().unwrap_or_default();
    assert!(
        anchor.contains("IANA root") && anchor.contains("20326") && anchor.contains("38696"),
        "{r}"
    );
    assert!(!r["upstream"].as_array().unwrap().is_empty(), "{r}");
    assert!(
        r["upstream_source"]
            .as_str()
            .is_some_and(|s| s.contains("/etc/resolv.conf")),
        "{r}"
    );
    assert_eq!(r["probe_name"], ".", "{r}");
    assert_eq!(r["probe_interval_secs"], 300, "{r}");

    // `mode = "system"` stays available, and says at start-up that DANE is off.
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("mode = \"validating\"", "mode = \"system\"");
    let system = dir.path().join("relay-data/default-config/system.toml");
    std::fs::write(&system, text).unwrap();
    let listen = free_addr();
    let mut relay = Relay::spawn(
        dir.path(),
        &[
            "--config".as_ref(),
            system.as_os_str(),
            "--listen".as_ref(),
            listen.to_string().as_ref(),
        ],
        listen,
        "relay-system.log",
        "info",
    );
    let status = relay.terminate();
    let log = relay.log();
    assert!(status.success(), "exit {status}: {log}");
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.contains("DANE is off")),
        "{log}"
    );
}

/// SIGTERM while a client is inside a transaction: the relay stops accepting, lets the
/// transaction finish (`250` after DATA), answers the next command `421 4.3.2`, and exits 0;
/// the message is in the maildir or still in the spool, never lost.
#[test]
fn sigterm_lets_the_transaction_in_flight_finish() {
    use std::io::{BufRead, BufReader, Write};
    let dir = tempfile::tempdir().unwrap();
    let listen = free_addr();
    let mut relay = Relay::spawn(
        dir.path(),
        &["--listen".as_ref(), listen.to_string().as_ref()],
        listen,
        "relay.log",
        "info",
    );
    let tcp = TcpStream::connect(listen).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut w = tcp.try_clone().unwrap();
    let mut r = BufReader::new(tcp);
    let mut reply = || {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            assert!(r.read_line(&mut line).unwrap() > 0, "closed after {all:?}");
            all.push_str(&line);
            if line.as_bytes().get(3) == Some(&b' ') {
                return all;
            }
        }
    };
    assert!(reply().starts_with("220"));
    for cmd in [
        "EHLO client.test",
        "MAIL FROM:<a@localhost>",
        "RCPT TO:<inflight@localhost>",
    ] {
        w.write_all(format!("{cmd}\r\n").as_bytes()).unwrap();
        assert!(reply().starts_with("250"), "{cmd}");
    }
    relay.send_sigterm();
    // Wait (bounded) until the listener has stopped accepting: the shutdown is under way.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !relay.log().contains("stopped accepting") {
        assert!(Instant::now() < deadline, "{}", relay.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(TcpStream::connect_timeout(&listen, Duration::from_secs(2)).is_err());
    w.write_all(b"DATA\r\n").unwrap();
    assert!(reply().starts_with("354"));
    w.write_all(b"Subject: in flight\r\n\r\nin-flight-body\r\n.\r\n")
        .unwrap();
    let done = reply();
    assert!(done.starts_with("250 2.0.0 Ok: queued as "), "{done}");
    let id = done.trim().rsplit(' ').next().unwrap().to_owned();
    w.write_all(b"NOOP\r\n").unwrap();
    let bye = reply();
    assert!(bye.starts_with("421 4.3.2"), "{bye}");
    let status = relay.wait_exit();
    assert!(status.success(), "exit {status}: {}", relay.log());
    let delivered = files(&dir.path().join("relay-data/maildir/inflight@localhost/new"))
        .iter()
        .any(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .contains("in-flight-body")
        });
    // Or still in the spool, read as the relay reads it at its next start.
    let spooled = relay::list_spool(&dir.path().join("relay-data/spool"))
        .unwrap_or_else(|e| panic!("spool unreadable: {e}\n{}", relay.log()))
        .iter()
        .any(|e| e.id.to_string() == id);
    assert!(delivered || spooled, "message lost: {}", relay.log());
}
