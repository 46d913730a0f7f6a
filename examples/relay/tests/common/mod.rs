//! Shared fixtures of the relay tests (`relay_default`, `relay_inbound`, `relay_faults`,
//! `relay_dane`, `relay_crash`):
//! a relay site (configuration, HAT, certificate store and spool in a temp dir), the
//! relay process (killed by PID on drop), a plain SMTP submission client and bounded waits;
//! `peer`: a scripted SMTP peer; `sts`: the MTA-STS delivery tests' setup (`relay_mta_sts*`);
//! `tlsrpt`: report messages received by a peer, the start of a reporting period; `state`: the
//! shared-state tests' fixtures (`state_redis*`).
#![allow(dead_code, unreachable_pub)]

pub mod peer;
pub mod state;
pub mod sts;
pub mod tlsrpt;

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A relay site in a temp dir: `relay.toml`, `hat.toml` (loopback may relay, plaintext
/// inbound), `destinations.toml`, a certificate store trusting only `ca_pem` (when given), the
/// spool in `spool/`.
pub struct Site {
    pub dir: tempfile::TempDir,
    pub listen: SocketAddr,
}

impl Site {
    /// `delivery` = extra lines of the `[delivery]` table (routes, resolver, retry...);
    /// `destinations` = the destination-control file.
    pub fn new(delivery: &str, destinations: &str, ca_pem: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let listen = test_support::free_addr();
        let mut store = cert_store::CertStore::open(dir.path().join("certs")).unwrap();
        if let Some(pem) = ca_pem {
            store
                .import_custom_ca(pem.as_bytes(), cert_store::BadEntryPolicy::Reject)
                .unwrap();
            store
                .set_ca_enabled(cert_store::CaList::Custom, true)
                .unwrap();
            store
                .set_ca_enabled(cert_store::CaList::System, false)
                .unwrap();
        }
        std::fs::write(
            dir.path().join("hat.toml"),
            r#"
[[mail_flow_policy]]
name = "LOOPBACK"
behavior = "relay"
tls = "no"
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
        let d = dir.path().display();
        std::fs::write(
            dir.path().join("relay.toml"),
            format!(
                r#"
[[listener]]
name = "test"
address = "{listen}"
hat = "hat.toml"
hostname = "relay.test"

[spool]
dir = "{d}/spool"

[tls]
cert_store = "{d}/certs"

[limits]
shutdown_grace_secs = 5

[delivery]
ehlo_name = "relay.test"
destination_controls = "destinations.toml"
local_domains = ["localhost"]
maildir = "{d}/maildir"
connect_timeout_secs = 5
{delivery}
"#
            ),
        )
        .unwrap();
        Self { dir, listen }
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("relay.toml")
    }

    /// Messages in the spool (read-only listing, safe while the relay runs).
    pub fn spooled(&self) -> usize {
        relay::list_spool(&self.dir.path().join("spool")).map_or(0, |v| v.len())
    }

    /// The spooled envelope of message `id`, if it is in the spool.
    pub fn spooled_envelope(&self, id: &str) -> Option<relay::Envelope> {
        relay::list_spool(&self.dir.path().join("spool"))
            .ok()?
            .into_iter()
            .find(|e| e.id.to_string() == id)
    }

    pub fn start(&self) -> Relay {
        Relay::start(self.dir.path(), &self.config(), self.listen, "relay.log")
    }

    /// Starts again with a new log file (`relay-N.log`), the same spool.
    pub fn restart(&self, n: usize) -> Relay {
        Relay::start(
            self.dir.path(),
            &self.config(),
            self.listen,
            &format!("relay-{n}.log"),
        )
    }
}

/// The relay process; killed (SIGKILL, by PID) if still running when dropped.
pub struct Relay {
    pub child: Child,
    log: PathBuf,
}

impl Relay {
    /// `relay --config CONFIG` in `dir`, logging at `info` to `dir/LOG_NAME`.
    pub fn start(dir: &Path, config: &Path, listen: SocketAddr, log_name: &str) -> Self {
        Self::spawn(
            dir,
            &["--config".as_ref(), config.as_os_str()],
            listen,
            log_name,
            "info",
        )
    }

    /// `relay ARGS` in `dir` with `RUST_LOG=rust_log`, standard error to `dir/LOG_NAME`; returns
    /// once `listen` accepts connections (bounded wait; panics with the log if the relay exits).
    pub fn spawn(
        dir: &Path,
        args: &[&OsStr],
        listen: SocketAddr,
        log_name: &str,
        rust_log: &str,
    ) -> Self {
        let log = dir.join(log_name);
        let child = Command::new(env!("CARGO_BIN_EXE_relay"))
            .args(args)
            .current_dir(dir)
            .env("RUST_LOG", rust_log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut relay = Self { child, log };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect_timeout(&listen, Duration::from_millis(200)).is_err() {
            if let Some(s) = relay.child.try_wait().unwrap() {
                panic!("relay exited ({s}): {}", relay.log());
            }
            assert!(
                Instant::now() < deadline,
                "relay not listening: {}",
                relay.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        relay
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `kill -9` (SIGKILL) by PID, then reap.
    pub fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM by PID, then wait (bounded) for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        self.send_sigterm();
        self.wait_exit()
    }

    /// SIGTERM by PID; the relay starts its graceful shutdown (not waited for).
    pub fn send_sigterm(&self) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
    }

    /// Waits (bounded) for the process to exit, e.g. after a SIGTERM sent by the test itself.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "relay ignores SIGTERM: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A plain SMTP client for submitting to the relay.
pub struct Client {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> std::io::Result<Self> {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        s.set_write_timeout(Some(Duration::from_secs(30)))?;
        let mut c = Self {
            w: s.try_clone()?,
            r: BufReader::new(s),
        };
        let greeting = c.reply()?;
        if !greeting.starts_with("220") {
            return Err(std::io::Error::other(greeting));
        }
        let ehlo = c.command("EHLO client.test")?;
        if !ehlo.starts_with("250") {
            return Err(std::io::Error::other(ehlo));
        }
        Ok(c)
    }

    /// One whole reply (every line).
    pub fn reply(&mut self) -> std::io::Result<String> {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            if self.r.read_line(&mut line)? == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("closed after {all:?}"),
                ));
            }
            all.push_str(&line);
            if line.as_bytes().get(3) == Some(&b' ') {
                return Ok(all);
            }
        }
    }

    pub fn command(&mut self, line: &str) -> std::io::Result<String> {
        self.w.write_all(format!("{line}\r\n").as_bytes())?;
        self.reply()
    }

    /// One message; `Ok(Some(queue id))` after `250`, `Ok(None)` on any other final reply.
    pub fn send(&mut self, from: &str, to: &str, body: &str) -> std::io::Result<Option<String>> {
        for cmd in [format!("MAIL FROM:<{from}>"), format!("RCPT TO:<{to}>")] {
            let r = self.command(&cmd)?;
            if !r.starts_with("250") {
                let _ = self.command("RSET");
                return Ok(None);
            }
        }
        if !self.command("DATA")?.starts_with("354") {
            return Ok(None);
        }
        let mut data = String::with_capacity(body.len() + 8);
        for line in body.split("\r\n") {
            if line.starts_with('.') {
                data.push('.');
            }
            data.push_str(line);
            data.push_str("\r\n");
        }
        data.push_str(".\r\n");
        self.w.write_all(data.as_bytes())?;
        let r = self.reply()?;
        Ok(r.strip_prefix("250 2.0.0 Ok: queued as ")
            .map(|id| id.trim().to_owned()))
    }

    pub fn quit(mut self) {
        let _ = self.command("QUIT");
    }
}

/// Polls `pred` every 50 ms until it holds; panics with `what()` after `limit`.
pub fn wait_until(limit: Duration, what: impl Fn() -> String, mut pred: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !pred() {
        assert!(Instant::now() < deadline, "timed out: {}", what());
        std::thread::sleep(Duration::from_millis(50));
    }
}
