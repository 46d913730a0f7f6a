//! The relay's inbound side against real peers, through the built binary: `--check-config`,
//! STARTTLS injection, a TLS-required policy, `openssl s_client`, `posttls-finger`, and Postfix
//! relaying to us with `smtp_tls_security_level = encrypt`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use test_support::postfix::Postfix;

const NAME: &str = "relay.test";

mod common;
use common::Relay;

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn relay_cmd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_relay"))
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A test site: a CA, a certificate for `relay.test` in a cert store, a HAT and a relay.toml.
struct Site {
    dir: tempfile::TempDir,
    ca: PathBuf,
    listen: SocketAddr,
}

impl Site {
    /// `tls`: the loopback policy's TLS setting (`preferred` / `required`).
    fn new(tls: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "relay test CA");
        let ca = CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![NAME.to_owned()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        let mut store = cert_store::CertStore::open(dir.path().join("certs")).unwrap();
        store
            .import_pem(
                "relay",
                cert.pem().as_bytes(),
                key.serialize_pem().as_bytes(),
                cert_store::FqdnCheck::Off,
            )
            .unwrap();
        let ca_path = dir.path().join("ca.pem");
        std::fs::write(&ca_path, ca.pem()).unwrap();
        let listen = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        std::fs::write(
            dir.path().join("hat.toml"),
            format!(
                r#"
[[mail_flow_policy]]
name = "LOOPBACK"
behavior = "relay"
tls = "{tls}"
max_message_size = 100000
[[mail_flow_policy]]
name = "BLOCKED"
behavior = "reject"
[[sender_group]]
name = "RELAYLIST"
order = 1
policy = "LOOPBACK"
senders = ["127.0.0.0/8", "::1"]
[[sender_group]]
name = "ALL"
order = 2
policy = "BLOCKED"
senders = ["ALL"]
"#
            ),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("relay.toml"),
            format!(
                r#"
[[listener]]
name = "test"
address = "{listen}"
certificate = "relay"
hat = "hat.toml"
hostname = "{NAME}"

[tls]
cert_store = "{}"

[limits]
shutdown_grace_secs = 5

[delivery]
ehlo_name = "{NAME}"
local_domains = ["localhost"]
"#,
                dir.path().join("certs").display()
            ),
        )
        .unwrap();
        Self {
            dir,
            ca: ca_path,
            listen,
        }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("relay.toml")
    }

    fn start(&self) -> Relay {
        Relay::spawn(
            self.dir.path(),
            &["--config".as_ref(), self.config().as_os_str()],
            self.listen,
            "relay.log",
            "info,smtp_tls_policy=debug,relay::inbound=debug",
        )
    }

    fn maildir_new(&self, rcpt: &str) -> PathBuf {
        self.dir
            .path()
            .join("relay-data/maildir")
            .join(rcpt)
            .join("new")
    }
}

/// Runs an external client, bounded by coreutils `timeout`.
fn run(cmd: &str, args: &[&str], stdin: &str, env: &[(&str, &Path)]) -> (bool, String) {
    let mut c = Command::new("timeout");
    c.arg("60").arg(cmd).args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    let out = child.wait_with_output().unwrap();
    let (o, e) = text(&out);
    (out.status.success(), o + &e)
}

/// A plaintext session with the relay at `listen`, greeted and past EHLO (which offers
/// STARTTLS): the writing and the reading half.
fn plaintext_session(listen: SocketAddr) -> (TcpStream, BufReader<TcpStream>) {
    let tcp = TcpStream::connect(listen).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut w = tcp.try_clone().unwrap();
    let mut r = BufReader::new(tcp);
    assert!(reply(&mut r).starts_with("220"));
    w.write_all(b"EHLO client.test\r\n").unwrap();
    assert!(reply(&mut r).contains("250 STARTTLS"));
    (w, r)
}

/// Sends each of `cmds` and checks that it is refused with `530 5.7.0`.
fn refused_530(w: &mut TcpStream, r: &mut BufReader<TcpStream>, cmds: &[&str]) {
    for cmd in cmds {
        w.write_all(format!("{cmd}\r\n").as_bytes()).unwrap();
        let rep = reply(r);
        assert!(rep.starts_with("530 5.7.0"), "{cmd}: {rep}");
    }
}

/// swaks to the relay's listener with `args`, bounded as [`run`].
fn swaks(site: &Site, args: &[&str]) -> (bool, String) {
    let server = site.listen.to_string();
    run(
        "swaks",
        &[&["--server", server.as_str()], args].concat(),
        "",
        &[],
    )
}

/// Reads one SMTP reply (all its lines) from a plain stream.
fn reply<R: BufRead>(r: &mut R) -> String {
    let mut all = String::new();
    loop {
        let mut line = String::new();
        assert!(
            r.read_line(&mut line).unwrap() > 0,
            "connection closed after {all:?}"
        );
        all.push_str(&line);
        if line.as_bytes().get(3) == Some(&b' ') {
            return all;
        }
    }
}

/// Waits (bounded) until the relay's log contains `what`.
fn wait_for_log(relay: &Relay, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !relay.log().contains(what) {
        assert!(Instant::now() < deadline, "no {what:?} in: {}", relay.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn polled_file(dir: &Path, relay: &Relay) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(f) = std::fs::read_dir(dir)
            .ok()
            .and_then(|mut it| it.next())
            .and_then(Result::ok)
        {
            return std::fs::read_to_string(f.path()).unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "nothing in {}: {}",
            dir.display(),
            relay.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ------------------------------------------------------------------ --check-config

#[test]
fn check_config_prints_the_effective_configuration() {
    let cwd = tempfile::tempdir().unwrap();
    let example = manifest().join("config/relay.toml");
    let out = relay_cmd()
        .arg("--check-config")
        .arg(&example)
        .current_dir(cwd.path())
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let t: toml::Table = toml::from_str(&stdout).unwrap();
    assert_eq!(t["listener"][0]["name"].as_str(), Some("public"));
    // Paths relative to the configuration file come out resolved.
    let hat = t["listener"][0]["hat"].as_str().unwrap();
    assert_eq!(Path::new(hat), manifest().join("config/hat.toml"));
    // Defaults are filled in: DNSSEC validation in-process (the example sets no resolver.address).
    assert_eq!(
        t["delivery"]["resolver"]["mode"].as_str(),
        Some("validating")
    );
    assert_eq!(t["limits"]["max_line_length"].as_integer(), Some(1000));
    // The delivery limits against tarpits, with their defaults.
    let d = &t["delivery"];
    assert_eq!(
        d["max_concurrent_deliveries"].as_integer(),
        Some(100),
        "{stdout}"
    );
    assert_eq!(d["max_session_secs"].as_integer(), Some(1800), "{stdout}");

    let out = relay_cmd()
        .args(["--json", "--check-config"])
        .arg(&example)
        .current_dir(cwd.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["delivery"]["route"][0]["domain"], "example.net");
    // Checking never creates the cert store or the spool.
    assert!(!cwd.path().join("relay-data").exists());
}

#[test]
fn check_config_errors_name_file_line_and_key() {
    let site = Site::new("preferred");
    let good = std::fs::read_to_string(site.config()).unwrap();
    let line_of =
        |text: &str, needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let cases: Vec<(String, &str, String)> = vec![
        // an unknown key
        (
            good.replace("[limits]\n", "[limits]\nmax_conections = 5\n"),
            "limits.max_conections",
            "unknown field".into(),
        ),
        // a wrong type
        (
            good.replace("shutdown_grace_secs = 5", "shutdown_grace_secs = \"5\""),
            "limits.shutdown_grace_secs",
            "invalid type".into(),
        ),
        // a value out of range
        (
            good.replace("shutdown_grace_secs = 5", "max_line_length = 4096"),
            "limits.max_line_length",
            "between 512".into(),
        ),
        // a HAT file that does not exist
        (
            good.replace("hat = \"hat.toml\"", "hat = \"nope.toml\""),
            "listener[0].hat",
            "nope.toml".into(),
        ),
        // a certificate the store does not have
        (
            good.replace("certificate = \"relay\"", "certificate = \"other\""),
            "listener[0].certificate",
            "no certificate \"other\"".into(),
        ),
        // a delivery key refused by the outbound half
        (
            good.replace(
                "local_domains = [\"localhost\"]",
                "connect_timeout_secs = 0",
            ),
            "delivery.connect_timeout_secs",
            "at least 1".into(),
        ),
    ];
    for (text, key, reason) in cases {
        let file = site.dir.path().join("bad.toml");
        std::fs::write(&file, &text).unwrap();
        let out = relay_cmd()
            .arg("--check-config")
            .arg(&file)
            .output()
            .unwrap();
        let (_, stderr) = text_of(&out);
        assert_eq!(out.status.code(), Some(2), "{key}: {stderr}");
        assert!(stderr.contains("bad.toml:"), "{key}: no file: {stderr}");
        assert!(stderr.contains(key), "{key}: no key: {stderr}");
        assert!(
            stderr.contains(&reason),
            "{key}: no reason {reason:?}: {stderr}"
        );
        if key != "listener[0].certificate" {
            let leaf = key.rsplit('.').next().unwrap();
            let line = if text.contains(leaf) {
                line_of(&text, leaf)
            } else {
                0
            };
            if line > 0 {
                assert!(
                    stderr.contains(&format!("bad.toml:{line}")),
                    "{key}: line {line}: {stderr}"
                );
            }
        }
    }
    // A broken HAT: the error names the HAT file and its line.
    std::fs::write(
        site.dir.path().join("hat.toml"),
        "[[sender_group]]\nname = \"A\"\norder = 1\npolicy = \"X\"\nsenders = [\"10.1.1.300\"]\n",
    )
    .unwrap();
    let out = relay_cmd()
        .arg("--check-config")
        .arg(site.config())
        .output()
        .unwrap();
    let (_, stderr) = text_of(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("listener[0].hat"), "{stderr}");
    assert!(stderr.contains("hat.toml"), "{stderr}");
}

fn text_of(out: &Output) -> (String, String) {
    text(out)
}

// ------------------------------------------------------------------ SMTP behaviour

fn tls_client_config(ca: &Path) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(ca).unwrap();
    let bundle = cert_store::parse_bundle(&pem, cert_store::BadEntryPolicy::Reject).unwrap();
    for c in bundle.certs {
        roots.add(c).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// RFC 3207 §4.2 / CVE-2011-0411: `STARTTLS\r\nRSET\r\n` in one packet; the RSET must not be
/// answered inside TLS.
#[test]
fn pipelined_rset_after_starttls_is_not_executed_inside_tls() {
    let site = Site::new("preferred");
    let relay = site.start();
    let mut tcp = TcpStream::connect(site.listen).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut r = BufReader::new(tcp.try_clone().unwrap());
    assert!(reply(&mut r).starts_with("220"));
    tcp.write_all(b"EHLO client.test\r\n").unwrap();
    let ehlo = reply(&mut r);
    assert!(ehlo.contains("STARTTLS"), "{ehlo}");
    tcp.write_all(b"STARTTLS\r\nRSET\r\n").unwrap();
    let ready = reply(&mut r);
    assert!(ready.starts_with("220"), "{ready}");
    assert_eq!(
        r.buffer().len(),
        0,
        "bytes after 220 in plaintext: {:?}",
        r.buffer()
    );
    drop(r);

    let config = tls_client_config(&site.ca);
    let name = rustls_pki_types::ServerName::try_from(NAME).unwrap();
    let conn = rustls::ClientConnection::new(config, name).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(b"EHLO client.test\r\n").unwrap();
    let mut r = BufReader::new(tls);
    // Had the RSET been executed inside TLS, its "250 2.0.0 Reset OK" would come first.
    let first = reply(&mut r);
    assert!(
        first.starts_with(&format!("250-{NAME}")),
        "first reply inside TLS: {first:?}"
    );
    assert!(!first.contains("STARTTLS"), "{first}");
    r.get_mut().write_all(b"QUIT\r\n").unwrap();
    assert!(reply(&mut r).starts_with("221"));
    drop(r);
    // Bounded wait for the session's close event, then look for the discard in the log.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !relay.log().contains("result=quit") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = relay.log();
    assert!(log.contains("PipelinedPlaintextDiscarded"), "{log}");
    assert!(!log.contains("Reset OK"), "{log}");
}

#[test]
fn required_tls_policy_answers_530_before_starttls() {
    let site = Site::new("required");
    let mut relay = site.start();
    let (mut w, mut r) = plaintext_session(site.listen);
    refused_530(
        &mut w,
        &mut r,
        &[
            "MAIL FROM:<a@client.test>",
            "RCPT TO:<user@localhost>",
            "DATA",
        ],
    );
    w.write_all(b"NOOP\r\nQUIT\r\n").unwrap();
    assert!(reply(&mut r).starts_with("250"));
    assert!(reply(&mut r).starts_with("221"));
    let mut rest = Vec::new();
    let _ = r.read_to_end(&mut rest);
    assert!(rest.is_empty());
    // Nothing was accepted: the session's line (written when it ends) comes without a
    // `message accepted` line before it, the spool (read as the relay reads it) is empty and
    // nothing reached the recipient's maildir.
    wait_for_log(&relay, "result=quit");
    let log = relay.log();
    assert!(!log.contains("message accepted"), "{log}");
    let spooled = relay::list_spool(&site.dir.path().join("relay-data/spool"))
        .unwrap_or_else(|e| panic!("spool unreadable: {e}\n{log}"));
    assert!(spooled.is_empty(), "spooled: {spooled:?}");
    assert!(!site.maildir_new("user@localhost").exists(), "{log}");
    assert!(relay.terminate().success(), "{}", relay.log());
}

/// Issue 14: a TLS-required listener still takes mail for the `[tlsrpt] mailboxes` over
/// plaintext (reports may arrive that way, RFC 8460 §3); every other recipient gets `530`.
#[test]
fn required_tls_accepts_plaintext_mail_for_tlsrpt_mailboxes_only() {
    let site = Site::new("required");
    let mut toml = std::fs::read_to_string(site.config()).unwrap();
    toml.push_str("\n[tlsrpt]\nmailboxes = [\"tlsrpt@localhost\"]\n");
    std::fs::write(site.config(), toml).unwrap();
    let mut relay = site.start();

    // Another recipient only (a case variant of the local part is another mailbox): 530 to
    // RCPT and DATA. Only the two messages below are spooled (two `message accepted` lines).
    let (mut w, mut r) = plaintext_session(site.listen);
    w.write_all(b"MAIL FROM:<a@client.test>\r\n").unwrap();
    assert!(reply(&mut r).starts_with("250"));
    refused_530(
        &mut w,
        &mut r,
        &[
            "RCPT TO:<user@localhost>",
            "RCPT TO:<TLSRPT@localhost>",
            "DATA",
            "AUTH PLAIN",
        ],
    );
    // Mixed: the exempt recipient is accepted, the other refused, the message goes to the
    // exempt one only.
    w.write_all(b"RCPT TO:<user@localhost>\r\nRCPT TO:<tlsrpt@LOCALHOST>\r\nDATA\r\n")
        .unwrap();
    assert!(reply(&mut r).starts_with("530 5.7.0"));
    let rep = reply(&mut r);
    assert!(rep.starts_with("250"), "{rep}");
    assert!(reply(&mut r).starts_with("354"));
    w.write_all(b"Subject: report 1\r\n\r\nmixed-plaintext-report\r\n.\r\nQUIT\r\n")
        .unwrap();
    let rep = reply(&mut r);
    assert!(rep.starts_with("250 2.0.0 Ok: queued"), "{rep}");
    assert!(reply(&mut r).starts_with("221"));
    let mail = polled_file(&site.maildir_new("tlsrpt@localhost"), &relay);
    assert!(mail.contains("mixed-plaintext-report"), "{mail}");
    assert!(!site.maildir_new("user@localhost").exists());

    // swaks, plaintext, to the mailbox: accepted (a real client's view).
    let (ok, out) = swaks(
        &site,
        &[
            "--to",
            "tlsrpt@localhost",
            "--body",
            "swaks-plaintext-report",
        ],
    );
    assert!(ok, "{out}");
    assert!(out.contains("250 2.0.0 Ok: queued"), "{out}");
    // swaks to another recipient over plaintext: refused at RCPT.
    let (ok, out) = swaks(&site, &["--to", "user@localhost"]);
    assert!(!ok, "{out}");
    assert!(out.contains("530 5.7.0"), "{out}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mails = loop {
        let n = std::fs::read_dir(site.maildir_new("tlsrpt@localhost"))
            .map(|d| d.count())
            .unwrap_or(0);
        if n == 2 || Instant::now() > deadline {
            break n;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(mails, 2, "{}", relay.log());
    assert!(!site.maildir_new("user@localhost").exists());
    assert!(relay.terminate().success(), "{}", relay.log());
    let log = relay.log();
    // One line per spooled message, each saying it came without TLS to a TLS-RPT mailbox.
    let accepted: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("message accepted"))
        .collect();
    assert_eq!(accepted.len(), 2, "{log}");
    for l in accepted {
        assert!(l.contains("none (TLS-RPT mailbox)"), "{l}");
    }
    assert!(log.contains("plaintext_tlsrpt_rcpt=1"), "{log}");
}

#[test]
fn swaks_over_required_tls_then_sigterm_keeps_the_spool() {
    let site = Site::new("required");
    let mut relay = site.start();
    // Plaintext: refused at MAIL (swaks exits non-zero).
    let (ok, out) = swaks(&site, &["--to", "user@localhost"]);
    assert!(!ok, "{out}");
    assert!(out.contains("530 5.7.0"), "{out}");
    // With STARTTLS: accepted and delivered to the maildir.
    let (ok, out) = swaks(
        &site,
        &[
            "--tls",
            "--to",
            "user@localhost",
            "--body",
            "required-tls-body",
        ],
    );
    assert!(ok, "{out}");
    let mail = polled_file(&site.maildir_new("user@localhost"), &relay);
    assert!(mail.contains("required-tls-body"), "{mail}");
    assert!(mail.contains("with ESMTPS"), "{mail}");
    assert!(relay.terminate().success(), "{}", relay.log());
    assert!(site.dir.path().join("relay-data/spool").is_dir());
}

#[test]
fn openssl_s_client_verifies_the_relay() {
    let site = Site::new("preferred");
    let _relay = site.start();
    let (ok, out) = run(
        "openssl",
        &[
            "s_client",
            "-starttls",
            "smtp",
            "-connect",
            &site.listen.to_string(),
            "-CAfile",
            site.ca.to_str().unwrap(),
            "-verify_hostname",
            NAME,
            "-verify_return_error",
            "-brief",
            "-crlf",
            "-ign_eof",
        ],
        "EHLO client.test\nQUIT\n",
        &[],
    );
    assert!(ok, "{out}");
    assert!(out.contains("Verification: OK"), "{out}");
    assert!(out.contains("TLSv1.3"), "{out}");
    // The EHLO inside TLS: no STARTTLS any more, REQUIRETLS (offered only inside TLS, RFC 8689
    // §2) is the last line.
    assert!(out.contains("250-ENHANCEDSTATUSCODES"), "{out}");
    assert!(out.contains("250 REQUIRETLS"), "{out}");
    assert!(out.contains("250-SIZE 100000"), "{out}");
    assert!(out.contains("221"), "{out}");
}

#[test]
fn posttls_finger_verifies_the_relay() {
    let site = Site::new("required");
    let _relay = site.start();
    let cfg = tempfile::tempdir().unwrap();
    // posttls-finger reads main.cf from MAIL_CONFIG: give it an empty one.
    std::fs::write(cfg.path().join("main.cf"), "").unwrap();
    let dest = format!("[127.0.0.1]:{}", site.listen.port());
    let ca = site.ca.to_str().unwrap();
    let env = [("MAIL_CONFIG", cfg.path())];
    let (ok, out) = run(
        "posttls-finger",
        &["-c", "-l", "secure", "-F", ca, &dest, NAME],
        "",
        &env,
    );
    assert!(ok, "{out}");
    assert!(out.contains("Verified TLS connection established"), "{out}");
    let (_, out) = run(
        "posttls-finger",
        &["-c", "-l", "secure", "-F", ca, &dest, "other.example"],
        "",
        &env,
    );
    assert!(
        !out.contains("Verified TLS connection established"),
        "{out}"
    );
}

/// Postfix as a client: every message it receives is relayed to `relay` at `client_tls`.
fn postfix_client(relay: SocketAddr, client_tls: &str, ca: &Path) -> Postfix {
    let (host, port) = (relay.ip().to_string(), relay.port().to_string());
    Postfix::start(
        Postfix::scratch(),
        &[
            ("SMTPD_TLS", "none".as_ref()),
            ("MODE", "client".as_ref()),
            ("RELAY_HOST", host.as_ref()),
            ("RELAY_PORT", port.as_ref()),
            ("CLIENT_TLS", client_tls.as_ref()),
            ("CLIENT_CA", ca.as_os_str()),
            ("CLIENT_TLS_NAME", NAME.as_ref()),
        ],
    )
}

#[test]
fn postfix_relays_to_us_with_tls_encrypt_and_verify() {
    let site = Site::new("required");
    let relay = site.start();
    for (level, rcpt) in [("encrypt", "enc@localhost"), ("verify", "ver@localhost")] {
        let lab = postfix_client(site.listen, level, &site.ca);
        let marker = format!("postfix-{level}-body");
        let (ok, out) = run(
            "swaks",
            &[
                "--server",
                &lab.connect(),
                "--to",
                rcpt,
                "--from",
                "a@client.test",
                "--body",
                &marker,
            ],
            "",
            &[],
        );
        assert!(ok, "{out}");
        let log = lab.wait_log(Duration::from_secs(30), |l| l.contains("status=sent"));
        assert!(
            log.contains("status=sent"),
            "{level}: {log}\n{}",
            relay.log()
        );
        let want = if level == "verify" {
            "Verified TLS connection established"
        } else {
            "TLS connection established"
        };
        assert!(log.contains(want), "{level}: {log}");
        let mail = polled_file(&site.maildir_new(rcpt), &relay);
        assert!(mail.contains(&marker), "{mail}");
        assert!(mail.contains("with ESMTPS"), "{mail}");
    }
}

/// A HAT whose first group is a host-name entry: the relay makes the PTR and forward lookups
/// (hickory answers the loopback PTR `localhost` itself) and the name counts only when
/// forward-confirmed: `localhost` resolves to 127.0.0.1, not to 127.0.0.2.
#[test]
fn ptr_lookup_is_made_when_the_hat_needs_it_and_forward_confirmed() {
    let site = Site::new("preferred");
    // DNS server for anything hickory does not answer itself: a port with nothing behind it.
    let dead = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let hat = std::fs::read_to_string(site.dir.path().join("hat.toml")).unwrap();
    let hat = hat.replace(
        "senders = [\"127.0.0.0/8\", \"::1\"]",
        "senders = [\"localhost\"]",
    );
    std::fs::write(site.dir.path().join("hat.toml"), hat).unwrap();
    let config = std::fs::read_to_string(site.config()).unwrap().replace(
        "hostname = \"relay.test\"",
        &format!("hostname = \"relay.test\"\ndns_resolver = \"{dead}\""),
    );
    std::fs::write(site.config(), config).unwrap();
    let relay = site.start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let greeting_from = |ip: &str| {
        let tcp = rt.block_on(async {
            let s = tokio::net::TcpSocket::new_v4().unwrap();
            s.bind(format!("{ip}:0").parse().unwrap()).unwrap();
            s.connect(site.listen).await.unwrap().into_std().unwrap()
        });
        tcp.set_nonblocking(false).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        reply(&mut BufReader::new(tcp))
    };
    let g = greeting_from("127.0.0.1");
    assert!(g.starts_with("220 "), "{g}\n{}", relay.log());
    let g = greeting_from("127.0.0.2");
    assert!(g.starts_with("554 5.7.1"), "{g}\n{}", relay.log());
    // The connection's line is written when it ends: bounded wait for the first one's.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !relay.log().contains("matched_entry=\"localhost\"") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = relay.log();
    assert!(log.contains("needs_ptr=true"), "{log}");
    assert!(log.contains("matched_entry=\"localhost\""), "{log}");
}
