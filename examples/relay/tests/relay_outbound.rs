//! The relay's outbound half against real peers on loopback: a Postfix smtpd started by
//! `scripts/postfix-lab.sh` (through an SMTP route), and the local maildir.

use std::io::{BufRead, BufReader, Write};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use relay::outbound::{Outbound, OutboundConfig, OutboundHandle};
use relay::{Envelope, MessageId, RecipientState, Spool, SpoolConfig};
use test_support::pki::{TestCa, self_signed};
use test_support::postfix::Postfix;
use tokio::sync::watch;
use tokio::task::JoinHandle;

mod common;
use std::ffi::OsStr;

// ---------------------------------------------------------------- fixtures

/// A test CA and a server certificate for `example.net` issued by it, plus a self-signed
/// certificate for the same name that no one trusts.
struct Pki {
    ca_pem: String,
    good: (String, String),
    untrusted: (String, String),
}

impl Pki {
    fn new(name: &str) -> Self {
        let ca = TestCa::new("relay outbound test CA");
        let good = ca.issue(&[name.to_owned()]);
        let untrusted = self_signed(&[name.to_owned()]);
        Self {
            ca_pem: ca.pem,
            good: (good.chain_pem, good.key_pem),
            untrusted: (untrusted.chain_pem, untrusted.key_pem),
        }
    }
}

/// A Postfix smtpd (`tls`: none | may | encrypt; `cert`: chain and key PEM, served when tls !=
/// none), with the mail-log helpers these tests use.
struct PostfixLab {
    pf: Postfix,
    port: u16,
}

impl PostfixLab {
    fn start(tls: &str, cert: Option<&(String, String)>) -> Self {
        let dir = Postfix::scratch();
        let (cp, kp) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        let mut env: Vec<(&str, &OsStr)> = vec![("SMTPD_TLS", tls.as_ref())];
        if let Some((c, k)) = cert {
            std::fs::write(&cp, c).unwrap();
            std::fs::write(&kp, k).unwrap();
            env.push(("TLS_CERT", cp.as_os_str()));
            env.push(("TLS_KEY", kp.as_os_str()));
        }
        let pf = Postfix::start(dir, &env);
        let port = pf.port();
        Self { pf, port }
    }

    fn maillog(&self) -> String {
        self.pf.maillog()
    }

    /// Polls the mail log (bounded: 20 s) until `pred` holds; returns the log.
    fn wait_log(&self, pred: impl Fn(&str) -> bool) -> String {
        self.pf.wait_log(Duration::from_secs(20), pred)
    }

    /// Makes the smtpd reject `address` with `550 5.1.1` and waits (bounded) until a fresh
    /// connection sees the rejection.
    fn reject_recipient(&self, address: &str) {
        let conf = self.pf.config_dir().display().to_string();
        let setting = format!(
            "smtpd_recipient_restrictions=check_recipient_access inline:{{{{{address}=550 5.1.1 no such user}}}}"
        );
        let st = Command::new("postconf")
            .args(["-c", &conf, "-e", &setting])
            .status()
            .unwrap();
        assert!(st.success());
        let st = Command::new("script")
            .args(["-qec", &format!("postfix -c {conf} reload"), "/dev/null"])
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.rcpt_code(address) == Some(550) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("postfix did not start rejecting {address}");
    }

    /// The smtpd's reply code to `RCPT TO:<address>` on a new connection.
    fn rcpt_code(&self, address: &str) -> Option<u16> {
        let s = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let mut w = s.try_clone().ok()?;
        let mut r = BufReader::new(s);
        let mut reply = || -> Option<u16> {
            loop {
                let mut line = String::new();
                r.read_line(&mut line).ok()?;
                if line.len() < 4 {
                    return None;
                }
                if line.as_bytes()[3] == b' ' {
                    return line[..3].parse().ok();
                }
            }
        };
        reply()?;
        for cmd in ["EHLO probe.test\r\n", "MAIL FROM:<probe@probe.test>\r\n"] {
            w.write_all(cmd.as_bytes()).ok()?;
            reply()?;
        }
        w.write_all(format!("RCPT TO:<{address}>\r\n").as_bytes())
            .ok()?;
        let code = reply();
        let _ = w.write_all(b"QUIT\r\n");
        code
    }
}

/// Every `tracing` line of this test binary (tests run in parallel: search for unique names).
fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let b = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || Capture(b.clone()))
            .try_init();
        buf
    })
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn log_text() -> String {
    String::from_utf8_lossy(&logs().lock().unwrap()).into_owned()
}

/// A running outbound engine with its spool and maildir, shut down on drop.
struct Engine {
    dir: tempfile::TempDir,
    spool: Spool,
    handle: OutboundHandle,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl Engine {
    /// `delivery` is the `[delivery]` table's body; `{maildir}` is replaced by the maildir path.
    async fn start(delivery: &str, destinations: Option<&str>, ca_pem: Option<&str>) -> Self {
        Self::start_with(delivery, destinations, ca_pem, &[])
            .await
            .0
    }

    /// As [`Self::start`], with messages spooled before the engine starts (handed over as the
    /// recovered queue, so they are all due at once).
    async fn start_with(
        delivery: &str,
        destinations: Option<&str>,
        ca_pem: Option<&str>,
        preload: &[(&str, &[&str])],
    ) -> (Self, Vec<Envelope>) {
        logs();
        let dir = tempfile::tempdir().unwrap();
        let maildir = dir.path().join("maildir");
        let mut text = delivery.replace("{maildir}", &maildir.display().to_string());
        if let Some(d) = destinations {
            let p = dir.path().join("destinations.toml");
            std::fs::write(&p, d).unwrap();
            text = format!("destination_controls = \"{}\"\n{text}", p.display());
        }
        let config: OutboundConfig = toml::from_str(&text).unwrap();
        let certs = ca_pem.map(|pem| {
            let mut store = cert_store::CertStore::open(dir.path().join("certs")).unwrap();
            store
                .import_custom_ca(pem.as_bytes(), cert_store::BadEntryPolicy::Reject)
                .unwrap();
            store
                .set_ca_enabled(cert_store::CaList::Custom, true)
                .unwrap();
            store
                .set_ca_enabled(cert_store::CaList::System, false)
                .unwrap();
            Arc::new(store)
        });
        let (spool, recovery) = Spool::open(&dir.path().join("spool"), SpoolConfig::default())
            .await
            .unwrap();
        assert!(recovery.messages.is_empty());
        let mut recovered = Vec::new();
        for (sender, rcpts) in preload {
            let env = Envelope::new(sender, rcpts.iter().copied(), SystemTime::now());
            recovered.push(spool.accept(env, BODY.as_bytes().to_vec()).await.unwrap());
        }
        let (tx, rx) = watch::channel(false);
        let (handle, task) = Outbound::start(config, spool.clone(), recovered.clone(), certs, rx)
            .await
            .unwrap();
        let engine = Self {
            dir,
            spool,
            handle,
            shutdown: tx,
            task: Some(task),
        };
        (engine, recovered)
    }

    async fn submit(&self, sender: &str, rcpts: &[&str], body: &str) -> Envelope {
        let env = Envelope::new(sender, rcpts.iter().copied(), SystemTime::now());
        let env = self
            .spool
            .accept(env, body.as_bytes().to_vec())
            .await
            .unwrap();
        self.handle.enqueue(env.clone());
        env
    }

    /// The spooled envelope of a message (read-only listing of the spool), if still there.
    fn spooled(&self, id: &MessageId) -> Option<Envelope> {
        relay::list_spool(&self.dir.path().join("spool"))
            .unwrap()
            .into_iter()
            .find(|e| &e.id == id)
    }

    fn maildir_files(&self, rcpt: &str) -> Vec<String> {
        let d = self.dir.path().join("maildir").join(rcpt).join("new");
        let mut out = Vec::new();
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            out.push(std::fs::read_to_string(e.path()).unwrap());
        }
        out
    }

    /// Polls (bounded: 30 s) until `pred` holds.
    async fn wait(&self, what: &str, pred: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !pred(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; log:\n{}",
                log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(30), t)
                .await
                .expect("engine stops")
                .unwrap();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

const BODY: &str =
    "From: <a@sender.test>\r\nSubject: outbound test\r\n\r\nhello\r\n.leading dot\r\n";

fn route(domain: &str, port: u16) -> String {
    format!(
        "local_domains = [\"localhost\"]\nmaildir = \"{{maildir}}\"\n[[route]]\ndomain = \"{domain}\"\nhosts = [\"127.0.0.1:{port}\"]\n"
    )
}

// ---------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_verify_with_trusted_ca_delivers_over_tls() {
    let pki = Pki::new("verified.example");
    let lab = PostfixLab::start("may", Some(&pki.good));
    let engine = Engine::start(
        &route("verified.example", lab.port),
        Some("[destinations.\"verified.example\"]\ntls = \"required-verify\"\n"),
        Some(&pki.ca_pem),
    )
    .await;
    let env = engine
        .submit(
            "a@sender.test",
            &["one@verified.example", "two@verified.example"],
            BODY,
        )
        .await;
    engine
        .wait("message delivered and removed", |e| {
            e.spooled(&env.id).is_none()
        })
        .await;
    let log = lab.wait_log(|l| l.matches("status=sent").count() >= 2);
    assert!(
        log.contains("TLS connection established from localhost"),
        "{log}"
    );
    assert!(log.contains("to=<one@verified.example>"), "{log}");
    assert!(log.contains("to=<two@verified.example>"), "{log}");
    let ours = log_text();
    assert!(ours.contains("domain=verified.example"), "{ours}");
    assert!(ours.contains("mode=\"required-verify\""), "{ours}");
    assert!(ours.contains("action=\"continue-tls\""), "{ours}");
    assert!(ours.contains("tls_protocol=\"TLSv1_"), "{ours}");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_verify_with_untrusted_cert_defers_and_alerts() {
    let pki = Pki::new("untrusted.example");
    let lab = PostfixLab::start("may", Some(&pki.untrusted));
    let delivery = format!(
        "{}[alerts]\nrecipients = [\"postmaster@localhost\"]\n",
        route("untrusted.example", lab.port)
    );
    let engine = Engine::start(
        &delivery,
        Some("[destinations.\"untrusted.example\"]\ntls = \"required-verify\"\n"),
        Some(&pki.ca_pem),
    )
    .await;
    let env = engine
        .submit("a@sender.test", &["x@untrusted.example"], BODY)
        .await;
    engine
        .wait("deferral recorded", |e| {
            e.spooled(&env.id).is_some_and(|s| s.attempts >= 1)
        })
        .await;
    let state = engine.spooled(&env.id).expect("still spooled");
    let r = &state.recipients[0];
    assert_eq!(r.state, RecipientState::Pending, "{state:?}");
    let why = r.last.as_ref().map_or("", |d| d.text.as_str());
    assert!(why.contains("certificate not verified"), "{state:?}");
    // The alert: logged at warn with the domain, and a message in postmaster's maildir.
    engine
        .wait("alert message", |e| {
            !e.maildir_files("postmaster@localhost").is_empty()
        })
        .await;
    let alert = &engine.maildir_files("postmaster@localhost")[0];
    assert!(
        alert.contains("required TLS connection to untrusted.example failed"),
        "{alert}"
    );
    let ours = log_text();
    assert!(
        ours.contains("WARN")
            && ours.contains("required TLS connection to domain untrusted.example failed"),
        "{ours}"
    );
    // No mail transaction reached Postfix (the TLS session was closed unused).
    let log = lab.maillog();
    assert!(!log.contains("x@untrusted.example"), "{log}");
    assert!(!log.contains("status=sent"), "{log}");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preferred_without_starttls_delivers_in_plaintext() {
    let lab = PostfixLab::start("none", None);
    let engine = Engine::start(&route("plain.example", lab.port), None, None).await;
    let env = engine
        .submit("a@sender.test", &["p@plain.example"], BODY)
        .await;
    engine
        .wait("message delivered", |e| e.spooled(&env.id).is_none())
        .await;
    let log = lab.wait_log(|l| l.contains("status=sent"));
    assert!(log.contains("to=<p@plain.example>"), "{log}");
    assert!(!log.contains("TLS connection established"), "{log}");
    let ours = log_text();
    assert!(ours.contains("action=\"continue-plaintext\""), "{ours}");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_reused_for_several_messages() {
    let lab = PostfixLab::start("none", None);
    let preload: [(&str, &[&str]); 3] = [
        ("a@sender.test", &["r0@reuse.example"]),
        ("b@sender.test", &["r1@reuse.example", "r2@reuse.example"]),
        ("c@sender.test", &["r3@reuse.example"]),
    ];
    let (engine, envs) =
        Engine::start_with(&route("reuse.example", lab.port), None, None, &preload).await;
    engine
        .wait("all delivered", |e| {
            envs.iter().all(|m| e.spooled(&m.id).is_none())
        })
        .await;
    let log = lab.wait_log(|l| l.matches("status=sent").count() >= 4 && l.contains("rset=2"));
    assert_eq!(log.matches("status=sent").count(), 4, "{log}");
    // One session carried the three transactions, RSET between them.
    assert!(log.contains("mail=3 rcpt=4 data=3 rset=2 quit=1"), "{log}");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_domain_goes_to_the_maildir() {
    let engine = Engine::start(
        "local_domains = [\"localhost\", \"mail.local.test\"]\nmaildir = \"{maildir}\"\n",
        None,
        None,
    )
    .await;
    let env = engine
        .submit("a@sender.test", &["user@mail.local.test"], BODY)
        .await;
    engine
        .wait("maildir file", |e| {
            !e.maildir_files("user@mail.local.test").is_empty()
        })
        .await;
    let text = &engine.maildir_files("user@mail.local.test")[0];
    assert!(
        text.starts_with("Return-Path: <a@sender.test>\nDelivered-To: user@mail.local.test\n"),
        "{text}"
    );
    assert!(
        text.contains("Subject: outbound test\n\nhello\n.leading dot\n"),
        "{text}"
    );
    engine
        .wait("message removed", |e| e.spooled(&env.id).is_none())
        .await;
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_recipient_gets_a_dsn() {
    let lab = PostfixLab::start("none", None);
    lab.reject_recipient("bad@dsn.example");
    let engine = Engine::start(&route("dsn.example", lab.port), None, None).await;
    let env = engine
        .submit(
            "sender@localhost",
            &["good@dsn.example", "bad@dsn.example"],
            BODY,
        )
        .await;
    // The DSN goes to the sender (a local mailbox here) with the null reverse-path.
    engine
        .wait("DSN in the sender's maildir", |e| {
            !e.maildir_files("sender@localhost").is_empty()
        })
        .await;
    let dsn = &engine.maildir_files("sender@localhost")[0];
    assert!(dsn.starts_with("Return-Path: <>\n"), "{dsn}");
    assert!(
        dsn.contains("Final-Recipient: rfc822; bad@dsn.example"),
        "{dsn}"
    );
    assert!(dsn.contains("Action: failed"), "{dsn}");
    assert!(dsn.contains("550"), "{dsn}");
    assert!(
        !dsn.contains("Final-Recipient: rfc822; good@dsn.example"),
        "{dsn}"
    );
    engine
        .wait("original removed", |e| e.spooled(&env.id).is_none())
        .await;
    let log = lab.wait_log(|l| l.contains("status=sent"));
    assert!(log.contains("to=<good@dsn.example>"), "{log}");
    engine.stop().await;
}
