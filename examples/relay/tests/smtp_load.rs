//! `smtp-load` against its own sink (plaintext and STARTTLS) and against Postfix's smtp-sink.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use test_support::pki::TestCa;

const BIN: &str = env!("CARGO_BIN_EXE_smtp-load");

/// Kills the child (by its PID, through `Child`) when the test ends, even on panic.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Guard {
    /// SIGTERM, then wait (bounded) and return the remaining stdout.
    fn terminate(mut self) -> String {
        let pid = self.0.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.0.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut out = String::new();
        if let Some(mut s) = self.0.stdout.take() {
            let _ = s.read_to_string(&mut out);
        }
        out
    }
}

/// Starts `smtp-load sink` on a free port; returns the guard and the address it printed.
fn start_sink(extra: &[&str]) -> (Guard, SocketAddr) {
    let mut child = Command::new(BIN)
        .args(["sink", "--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn sink");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let mut r = BufReader::new(stdout);
        let _ = r.read_line(&mut line);
        let _ = tx.send((line, r.into_inner()));
    });
    let guard = Guard(child);
    let (line, stdout) = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("sink announced its address");
    let mut guard = guard;
    guard.0.stdout = Some(stdout);
    let v: serde_json::Value = serde_json::from_str(&line).expect("JSON ready line");
    let addr = v["listening"].as_str().unwrap().parse().unwrap();
    (guard, addr)
}

/// Runs the load generator with `--json`; returns exit code and summary.
fn load(addr: SocketAddr, extra: &[&str]) -> (i32, serde_json::Value) {
    let out = Command::new(BIN)
        .args(["--server", &addr.to_string(), "--json", "--timeout", "20"])
        .args(extra)
        .output()
        .expect("run smtp-load");
    let text = String::from_utf8_lossy(&out.stdout);
    let v = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("summary JSON: {e}: {text} / {:?}", out.stderr));
    (out.status.code().unwrap_or(-1), v)
}

fn count_lines(p: &Path) -> (usize, usize) {
    let text = std::fs::read_to_string(p).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let unique: HashSet<&str> = lines.iter().copied().collect();
    (lines.len(), unique.len())
}

struct Pki {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    other_ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

/// A CA, a `localhost` server certificate signed by it, and an unrelated CA (rcgen).
fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("smtp-load test CA");
    let other = TestCa::new("smtp-load test other CA");
    let cert = ca.issue(&["localhost".to_owned()]);
    let w = |name: &str, text: String| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    Pki {
        ca: w("ca.pem", ca.pem),
        other_ca: w("other.pem", other.pem),
        cert: w("cert.pem", cert.chain_pem),
        key: w("key.pem", cert.key_pem),
        _dir: dir,
    }
}

#[test]
fn plaintext_load_against_own_sink_counts_every_message() {
    let dir = tempfile::tempdir().unwrap();
    let count = dir.path().join("ids.txt");
    let (sink, addr) = start_sink(&["--count-file", count.to_str().unwrap()]);
    let (code, v) = load(addr, &["-n", "12", "-m", "5", "-c", "4", "-s", "6000"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["accepted"], 60);
    assert_eq!(v["rejected"], 0);
    assert_eq!(v["failed_connections"], 0);
    assert!(v["msgs_per_sec"].as_f64().unwrap() > 0.0);
    assert!(v["latency_ms"]["p50"].as_f64().unwrap() <= v["latency_ms"]["max"].as_f64().unwrap());
    let summary = sink.terminate();
    assert!(summary.contains("\"messages\":60"), "{summary}");
    assert_eq!(count_lines(&count), (60, 60));
    let ids = std::fs::read_to_string(&count).unwrap();
    assert!(
        ids.lines()
            .all(|l| l.starts_with("<load.") && l.ends_with("@smtp-load.invalid>"))
    );
}

#[test]
fn starttls_load_with_ca_verification() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    let count = dir.path().join("ids.txt");
    let (sink, addr) = start_sink(&[
        "--tls-cert",
        pki.cert.to_str().unwrap(),
        "--tls-key",
        pki.key.to_str().unwrap(),
        "--count-file",
        count.to_str().unwrap(),
    ]);
    let ca = pki.ca.to_str().unwrap();
    let (code, v) = load(
        addr,
        &[
            "-n",
            "6",
            "-m",
            "3",
            "-c",
            "3",
            "--tls",
            "starttls",
            "--ca-file",
            ca,
        ],
    );
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["accepted"], 18);
    assert_eq!(v["handshakes"], 6);

    // Handshake-only mode: handshakes, no mail.
    let (code, v) = load(
        addr,
        &[
            "-n",
            "5",
            "-c",
            "5",
            "--tls",
            "starttls",
            "--ca-file",
            ca,
            "--handshake-only",
        ],
    );
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["handshakes"], 5);
    assert_eq!(v["accepted"], 0);

    // Verification against the wrong CA fails every connection and sends nothing.
    let other = pki.other_ca.to_str().unwrap();
    let (code, v) = load(addr, &["-n", "3", "--tls", "starttls", "--ca-file", other]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["accepted"], 0);
    assert_eq!(v["failed_connections"], 3);
    assert!(
        v["first_errors"][0].as_str().unwrap().contains("TLS"),
        "{v}"
    );

    // --insecure is an explicit opt-out, and works.
    let (code, v) = load(addr, &["-n", "2", "--tls", "starttls", "--insecure"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["accepted"], 2);

    sink.terminate();
    assert_eq!(count_lines(&count), (20, 20));
}

#[test]
fn starttls_required_but_not_offered_fails() {
    let (_sink, addr) = start_sink(&[]);
    let (code, v) = load(addr, &["-n", "2", "--tls", "starttls", "--insecure"]);
    assert_eq!(code, 1);
    assert_eq!(v["accepted"], 0);
    assert!(
        v["first_errors"][0].as_str().unwrap().contains("STARTTLS"),
        "{v}"
    );
}

fn read_reply(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut b = [0u8; 1];
    // A reply ends with a line whose 4th byte is a space.
    loop {
        s.read_exact(&mut b).unwrap();
        out.push(b[0]);
        if out.ends_with(b"\r\n") {
            let last = out[..out.len() - 2]
                .rsplit(|&c| c == b'\n')
                .next()
                .unwrap()
                .to_vec();
            if last.get(3) == Some(&b' ') {
                return String::from_utf8_lossy(&out).into_owned();
            }
        }
    }
}

#[test]
fn sink_discards_commands_pipelined_after_starttls() {
    let pki = pki();
    let (_sink, addr) = start_sink(&[
        "--tls-cert",
        pki.cert.to_str().unwrap(),
        "--tls-key",
        pki.key.to_str().unwrap(),
    ]);
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert!(read_reply(&mut s).starts_with("220 "));
    s.write_all(b"EHLO t\r\n").unwrap();
    assert!(read_reply(&mut s).contains("STARTTLS"));
    // Injection attempt: a MAIL pipelined in the same packet as STARTTLS.
    s.write_all(b"STARTTLS\r\nMAIL FROM:<evil@x>\r\n").unwrap();
    assert!(read_reply(&mut s).starts_with("220 "));
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates({
        let mut roots = rustls::RootCertStore::empty();
        use rustls_pki_types::pem::PemObject;
        roots
            .add(rustls_pki_types::CertificateDer::from_pem_file(&pki.ca).unwrap())
            .unwrap();
        roots
    })
    .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, s);
    // Inside TLS, a MAIL without EHLO would be refused (503), and the injected MAIL must not
    // have been run: the first reply inside TLS answers our EHLO, and MAIL is still allowed.
    tls.write_all(b"EHLO t\r\n").unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tls.read(&mut buf).unwrap();
    let first = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(first.starts_with("250-"), "{first}");
    assert!(
        !first.contains("STARTTLS"),
        "STARTTLS offered again inside TLS: {first}"
    );
    tls.write_all(b"MAIL FROM:<a@b>\r\n").unwrap();
    let n = tls.read(&mut buf).unwrap();
    assert!(
        buf[..n].starts_with(b"250 "),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
}

#[test]
fn sink_rejects_overlong_lines_and_bad_sequences() {
    let (_sink, addr) = start_sink(&[]);
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    read_reply(&mut s);
    s.write_all(b"MAIL FROM:<a@b>\r\n").unwrap();
    assert!(read_reply(&mut s).starts_with("503 "));
    let long = format!("EHLO {}\r\n", "a".repeat(10_000));
    s.write_all(long.as_bytes()).unwrap();
    assert!(read_reply(&mut s).starts_with("500 "));
    s.write_all(b"EHLO ok\r\nDATA\r\n").unwrap();
    assert!(read_reply(&mut s).starts_with("250"));
    assert!(read_reply(&mut s).starts_with("503 "));
}

/// A free loopback port (bound then released; Postfix's smtp-sink binds it next).
fn wait_for_banner(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut s) = TcpStream::connect(addr) {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            if read_reply(&mut s).starts_with("220") {
                let _ = s.write_all(b"QUIT\r\n");
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "smtp-sink did not come up on {addr}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts Postfix's `smtp-sink` on a free loopback port, dumping each transaction into a file
/// under `dump` (created); ready once it greets.
fn start_smtp_sink(dump: &Path) -> (Guard, SocketAddr) {
    let smtp_sink = Path::new("/usr/sbin/smtp-sink");
    assert!(
        smtp_sink.exists(),
        "Postfix smtp-sink missing: run scripts/install-deps.sh (Debian package postfix)"
    );
    std::fs::create_dir(dump).unwrap();
    // smtp-sink refuses to run as root without -u; dump files are written as that user.
    let is_root = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
    if is_root {
        Command::new("chown")
            .args(["nobody", dump.to_str().unwrap()])
            .status()
            .unwrap();
    }
    let addr = test_support::free_addr();
    let template = format!("{}/m.", dump.display());
    let mut cmd = Command::new(smtp_sink);
    if is_root {
        cmd.args(["-u", "nobody"]);
    }
    let child = cmd
        .args(["-d", &template, &addr.to_string(), "64"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn smtp-sink");
    let guard = Guard(child);
    wait_for_banner(addr);
    (guard, addr)
}

#[test]
fn interop_with_postfix_smtp_sink() {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("dump");
    let (_guard, addr) = start_smtp_sink(&dump);
    let (code, v) = load(addr, &["-n", "8", "-m", "5", "-c", "4", "-s", "4000"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["accepted"], 40);
    assert_eq!(v["failed_connections"], 0);
    // smtp-sink dumped each transaction: count them and check dot-stuffing was undone.
    let files: Vec<_> = std::fs::read_dir(&dump).unwrap().flatten().collect();
    assert_eq!(files.len(), 40);
    let body = std::fs::read_to_string(files[0].path()).unwrap();
    assert!(body.contains("\n.line 000003"), "leading dot restored");
    assert!(!body.contains("\n..line"), "stuffed dot left in the body");
}

#[test]
fn pipelined_load_against_own_sink_and_postfix_smtp_sink() {
    // Our sink (offers PIPELINING): every pipelined transaction counted once.
    let dir = tempfile::tempdir().unwrap();
    let count = dir.path().join("ids.txt");
    let (sink, addr) = start_sink(&["--count-file", count.to_str().unwrap()]);
    let (code, v) = load(
        addr,
        &[
            "-n",
            "6",
            "-m",
            "5",
            "-c",
            "3",
            "-s",
            "3000",
            "--pipelining",
        ],
    );
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["accepted"], 30);
    let summary = sink.terminate();
    assert!(summary.contains("\"messages\":30"), "{summary}");
    assert_eq!(count_lines(&count), (30, 30));

    // Postfix's smtp-sink (a real peer that offers PIPELINING): every transaction dumped.
    let dump = dir.path().join("dump");
    let (_guard, addr) = start_smtp_sink(&dump);
    let (code, v) = load(
        addr,
        &[
            "-n",
            "4",
            "-m",
            "5",
            "-c",
            "2",
            "-s",
            "3000",
            "--pipelining",
        ],
    );
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["accepted"], 20);
    let files = std::fs::read_dir(&dump).unwrap().flatten().count();
    assert_eq!(files, 20);
}
