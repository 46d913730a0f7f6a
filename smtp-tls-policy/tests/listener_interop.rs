//! Real SMTP clients (openssl s_client, swaks, posttls-finger) against a listener built on the
//! gate, and a raw client pipelining `STARTTLS\r\nMAIL FROM:...` (CVE-2011-0411 class).

mod common;

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{MX, Pki, PostfixLab};
use rustls::pki_types::ServerName;
use smtp_proto::Request;
use smtp_tls_policy::io::{ServerSession, ServerSessionConfig, SessionCommand, Timeouts};
use smtp_tls_policy::listener::{ListenerEvent, ListenerTls};
use smtp_tls_policy::smtp::CommandKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the test listener executed: (command, inside TLS).
#[derive(Default)]
struct Record {
    executed: Vec<(String, bool)>,
    events: Vec<ListenerEvent>,
}

/// A minimal mail server on the session API: MAIL/RCPT/DATA/RSET, messages discarded.
async fn handle(
    tcp: TcpStream,
    tls: ListenerTls,
    acceptor: tokio_rustls::TlsAcceptor,
    rec: Arc<Mutex<Record>>,
) {
    let cfg = ServerSessionConfig::new(MX, vec!["PIPELINING".into(), "8BITMIME".into()])
        .with_timeouts(Timeouts::uniform(Duration::from_secs(20)));
    let Ok(mut s) = ServerSession::start(tcp, tls, Some(acceptor), cfg).await else {
        return;
    };
    let (mut mail, mut rcpts) = (false, 0);
    loop {
        let cmd = match s.next_command().await {
            Ok(SessionCommand::Command(cmd)) => cmd,
            // RFC 5321 §4.1.4: a greeting clears the transaction.
            Ok(SessionCommand::Greeted { .. }) => {
                (mail, rcpts) = (false, 0);
                continue;
            }
            _ => break,
        };
        let tls_on = s.gate().tls_active();
        rec.lock()
            .unwrap()
            .executed
            .push((CommandKind::of(&cmd).name().into(), tls_on));
        let r = match cmd {
            Request::Mail { .. } if !mail => {
                mail = true;
                s.reply(250, "2.1.0 Ok").await
            }
            Request::Rcpt { .. } if mail => {
                rcpts += 1;
                s.recipient_accepted();
                s.reply(250, "2.1.5 Ok").await
            }
            Request::Data if rcpts > 0 => {
                let _ = s.reply(354, "End data with <CR><LF>.<CR><LF>").await;
                loop {
                    match s.read_line().await {
                        Ok(l) if l == b".\r\n" || l == b".\n" => break,
                        Ok(_) => {}
                        Err(_) => return,
                    }
                }
                (mail, rcpts) = (false, 0);
                s.reply(250, "2.0.0 Ok: queued").await
            }
            Request::Rset => {
                (mail, rcpts) = (false, 0);
                s.reply(250, "2.0.0 Ok").await
            }
            Request::Mail { .. } | Request::Rcpt { .. } | Request::Data => {
                s.reply(503, "5.5.1 Bad sequence of commands").await
            }
            _ => s.reply(502, "5.5.1 Command not implemented").await,
        };
        if r.is_err() {
            break;
        }
    }
    rec.lock()
        .unwrap()
        .events
        .extend(s.events().iter().cloned());
}

/// Serves connections until the test ends (the runtime drops the task).
async fn listener(tls: ListenerTls, pki: &Pki) -> (u16, Arc<Mutex<Record>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let rec = Arc::new(Mutex::new(Record::default()));
    let acceptor = pki.good.acceptor();
    let r = rec.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            tokio::spawn(handle(tcp, tls, acceptor.clone(), r.clone()));
        }
    });
    (port, rec)
}

/// Runs an external client with a bounded time (`timeout` from coreutils).
async fn run(cmd: &str, args: &[&str], stdin: &str) -> (bool, String) {
    run_env(cmd, args, stdin, None).await
}

async fn run_env(
    cmd: &str,
    args: &[&str],
    stdin: &str,
    mail_config: Option<&std::path::Path>,
) -> (bool, String) {
    let mail_config = mail_config.map(|p| p.to_path_buf());
    let mut full = vec!["30", cmd];
    full.extend_from_slice(args);
    let stdin = stdin.to_string();
    let full: Vec<String> = full.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let mut command = Command::new("timeout");
        if let Some(dir) = &mail_config {
            command.env("MAIL_CONFIG", dir);
        }
        let mut child = command
            .args(&full)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    })
    .await
    .unwrap()
}

/// Waits (bounded) until the listener has recorded the end of `n` sessions' events.
async fn settle(rec: &Arc<Mutex<Record>>, pred: impl Fn(&Record) -> bool) {
    for _ in 0..200 {
        if pred(&rec.lock().unwrap()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swaks_delivers_over_tls_to_a_required_listener() {
    let pki = Pki::new();
    let (port, rec) = listener(ListenerTls::Required, &pki).await;
    let server = format!("127.0.0.1:{port}");
    let (ok, out) = run(
        "swaks",
        &[
            "--server",
            &server,
            "--tls",
            "--to",
            "b@test.example",
            "--from",
            "a@client.test",
            "--helo",
            "client.test",
        ],
        "",
    )
    .await;
    assert!(ok, "{out}");
    assert!(out.contains("TLS started"), "{out}");
    assert!(out.contains("250 2.0.0 Ok: queued"), "{out}");
    settle(&rec, |r| r.executed.len() >= 3).await;
    let executed = rec.lock().unwrap().executed.clone();
    assert_eq!(
        executed,
        [
            ("MAIL".to_string(), true),
            ("RCPT".to_string(), true),
            ("DATA".to_string(), true)
        ]
    );

    // Without TLS: 530 to MAIL, logged, and the close-without-recipient event.
    let (ok, out) = run(
        "swaks",
        &[
            "--server",
            &server,
            "--to",
            "b@test.example",
            "--from",
            "a@client.test",
        ],
        "",
    )
    .await;
    assert!(!ok);
    assert!(
        out.contains("530 5.7.0 Must issue a STARTTLS command first"),
        "{out}"
    );
    settle(&rec, |r| {
        r.events
            .iter()
            .any(|e| matches!(e, ListenerEvent::ClosedWithoutRecipients { .. }))
    })
    .await;
    let r = rec.lock().unwrap();
    assert!(r.events.contains(&ListenerEvent::MustIssueStartTlsSent {
        command: CommandKind::Mail
    }));
    assert!(r.events.iter().any(|e| matches!(
        e,
        ListenerEvent::ClosedWithoutRecipients {
            tls_established: false,
            must_issue_starttls_count: 1,
            ..
        }
    )));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_s_client_verifies_the_listener() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let (port, _rec) = listener(ListenerTls::Preferred, &pki).await;
    let (ok, out) = run(
        "openssl",
        &[
            "s_client",
            "-starttls",
            "smtp",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-CAfile",
            ca.to_str().unwrap(),
            "-verify_hostname",
            MX,
            "-verify_return_error",
            "-brief",
            "-crlf",
            // Keep reading after stdin ends, until the server closes after QUIT.
            "-ign_eof",
        ],
        "EHLO client.test\nQUIT\n",
    )
    .await;
    assert!(ok, "{out}");
    assert!(out.contains("Verification: OK"), "{out}");
    // The EHLO inside TLS: no STARTTLS any more, so 8BITMIME is the last line.
    assert!(
        out.contains("250 8BITMIME"),
        "EHLO answered inside TLS: {out}"
    );
    assert!(out.contains("221"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posttls_finger_verifies_the_listener() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let (port, _rec) = listener(ListenerTls::Required, &pki).await;
    let dest = format!("[127.0.0.1]:{port}");
    // posttls-finger reads main.cf from MAIL_CONFIG: give it an empty one.
    std::fs::write(dir.path().join("main.cf"), "").unwrap();
    let cfg = Some(dir.path());
    let (ok, out) = run_env(
        "posttls-finger",
        &["-c", "-l", "secure", "-F", ca.to_str().unwrap(), &dest, MX],
        "",
        cfg,
    )
    .await;
    assert!(ok, "{out}");
    assert!(out.contains("Verified TLS connection established"), "{out}");
    // Against a name the certificate does not carry, posttls-finger reports it as untrusted.
    let (_, out) = run_env(
        "posttls-finger",
        &[
            "-c",
            "-l",
            "secure",
            "-F",
            ca.to_str().unwrap(),
            &dest,
            "other.example",
        ],
        "",
        cfg,
    )
    .await;
    assert!(
        !out.contains("Verified TLS connection established"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_mail_after_starttls_is_not_executed() {
    let pki = Pki::new();
    let (port, rec) = listener(ListenerTls::Preferred, &pki).await;
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut buf = vec![0u8; 4096];
    async fn read_reply(tcp: &mut TcpStream, buf: &mut [u8], needle: &str) -> String {
        let mut acc = String::new();
        for _ in 0..50 {
            let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(buf))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0, "closed; got {acc}");
            acc.push_str(&String::from_utf8_lossy(&buf[..n]));
            if acc.contains(needle) {
                return acc;
            }
        }
        panic!("no {needle} in {acc}")
    }
    read_reply(&mut tcp, &mut buf, "220 ").await;
    tcp.write_all(b"EHLO attacker.test\r\n").await.unwrap();
    read_reply(&mut tcp, &mut buf, "250 ").await;
    // One write: STARTTLS plus a command that must not run inside TLS.
    tcp.write_all(b"STARTTLS\r\nMAIL FROM:<a@b>\r\n")
        .await
        .unwrap();
    let r = read_reply(&mut tcp, &mut buf, "\r\n").await;
    assert!(r.starts_with("220 2.0.0 Ready to start TLS"), "{r}");

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates({
            let mut roots = rustls::RootCertStore::empty();
            roots.add(pki.ca_der.clone()).unwrap();
            roots
        })
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let mut tls = connector
        .connect(ServerName::try_from(MX).unwrap(), tcp)
        .await
        .unwrap();
    // Had the pipelined MAIL run, RCPT would be accepted; it must get 503 (no transaction),
    // after the EHLO the reset state demands.
    tls.write_all(b"RCPT TO:<c@d>\r\n").await.unwrap();
    let mut out = String::new();
    let n = tokio::time::timeout(Duration::from_secs(10), tls.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    out.push_str(&String::from_utf8_lossy(&buf[..n]));
    assert!(out.starts_with("503 5.5.1 Send EHLO first"), "{out}");
    tls.write_all(b"EHLO attacker.test\r\n").await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(10), tls.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("250"));
    tls.write_all(b"RCPT TO:<c@d>\r\n").await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(10), tls.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let r = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(r.starts_with("503 5.5.1 Bad sequence"), "{r}");
    tls.write_all(b"QUIT\r\n").await.unwrap();
    let _ = tls.read(&mut buf).await;
    settle(&rec, |r| {
        r.events
            .iter()
            .any(|e| matches!(e, ListenerEvent::PipelinedPlaintextDiscarded { .. }))
    })
    .await;
    let r = rec.lock().unwrap();
    assert!(
        !r.executed.iter().any(|(c, _)| c == "MAIL"),
        "{:?}",
        r.executed
    );
    assert!(
        r.events
            .contains(&ListenerEvent::PipelinedPlaintextDiscarded { bytes: 17 }),
        "{:?}",
        r.events
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postfix_smtp_client_delivers_to_a_required_listener_with_verify() {
    let pki = Pki::new();
    let (port, rec) = listener(ListenerTls::Required, &pki).await;
    let ca_dir = tempfile::tempdir().unwrap();
    let ca = ca_dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    // Postfix as the *client*: it relays what it receives to our listener with
    // smtp_tls_security_level = verify against the test CA.
    let lab = PostfixLab::start_with(
        "none",
        None,
        &[
            ("MODE", "client".into()),
            ("RELAY_HOST", "127.0.0.1".into()),
            ("RELAY_PORT", port.to_string()),
            ("CLIENT_TLS", "verify".into()),
            ("CLIENT_CA", ca.to_str().unwrap().into()),
            ("CLIENT_TLS_NAME", MX.into()),
        ],
    );
    let server = format!("127.0.0.1:{}", lab.port);
    let (ok, out) = run(
        "swaks",
        &[
            "--server",
            &server,
            "--to",
            "b@test.example",
            "--from",
            "a@client.test",
        ],
        "",
    )
    .await;
    assert!(ok, "{out}");
    settle(&rec, |r| r.executed.iter().any(|(c, _)| c == "DATA")).await;
    let executed = rec.lock().unwrap().executed.clone();
    assert_eq!(
        executed,
        [
            ("MAIL".to_string(), true),
            ("RCPT".to_string(), true),
            ("DATA".to_string(), true)
        ]
    );
    let log = lab.wait_for_log("status=sent");
    assert!(
        log.contains("Verified TLS connection established to 127.0.0.1"),
        "{log}"
    );
    assert!(log.contains("status=sent"), "{log}");
}
