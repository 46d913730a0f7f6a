//! A private `redis-server` (Debian package `redis-server`, installed by
//! `scripts/install-deps.sh`) on a free loopback port with its own temporary directory:
//! started and waited for (`PING` answered), killed by PID (mid-test too, to simulate an
//! outage), restarted on the same port, and stopped on drop — also when the test fails.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long a start may take before the test fails.
const READY_WITHIN: Duration = Duration::from_secs(15);

/// A running (or killed, until restarted) `redis-server`.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: TempDir,
    persistent: bool,
}

impl RedisServer {
    /// Starts a server without persistence (`--save "" --appendonly no`): a restart comes
    /// back empty.
    pub fn start() -> Self {
        Self::start_with(false)
    }

    /// Starts a server that persists every write before answering (`--appendonly yes
    /// --appendfsync always`): a restart after a kill comes back with every acknowledged
    /// write.
    pub fn start_persistent() -> Self {
        Self::start_with(true)
    }

    fn start_with(persistent: bool) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("redis")
            .tempdir()
            .expect("temporary directory");
        let port = crate::free_port(&[]);
        let mut server = Self {
            child: None,
            port,
            dir,
            persistent,
        };
        server.spawn();
        server
    }

    /// `redis-server` on PATH or in /usr/bin, else a failure that says how to install it.
    fn binary() -> PathBuf {
        for dir in std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        {
            let candidate = dir.join("redis-server");
            if candidate.is_file() {
                return candidate;
            }
        }
        panic!("redis-server not found: run scripts/install-deps.sh (Debian package redis-server)");
    }

    fn spawn(&mut self) {
        let log = self.dir.path().join("redis.log");
        let mut cmd = Command::new(Self::binary());
        cmd.arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", ""])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(&log)
            .args(["--daemonize", "no", "--protected-mode", "yes"]);
        if self.persistent {
            cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            cmd.args(["--appendonly", "no"]);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        self.wait_ready();
    }

    /// Polls `PING` (bounded): panics with the server's log if it never answers.
    fn wait_ready(&mut self) {
        let start = Instant::now();
        loop {
            if ping(self.addr()) {
                return;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "redis-server exited ({status}) before answering: {}",
                    self.log()
                );
            }
            assert!(
                start.elapsed() < READY_WITHIN,
                "redis-server on port {} not ready within {READY_WITHIN:?}: {}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
    }

    /// The loopback port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// The server's working directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's PID while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server by its PID (SIGKILL: no shutdown, no save) and reaps it; the port is
    /// closed when this returns.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        assert!(!ping(self.addr()), "redis-server still answers after kill");
    }

    /// Starts the server again on the same port and directory, waiting until it answers.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// `true` when the server answers `PING` now.
    pub fn is_up(&self) -> bool {
        ping(self.addr())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One `PING` (inline command) with short limits: `+PONG` back.
fn ping(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let _ = s.set_write_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    let ok = s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n";
    let _ = s.shutdown(Shutdown::Both);
    ok
}
