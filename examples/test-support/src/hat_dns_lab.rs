//! The HAT DNS lab (`scripts/hat-dns-lab.sh`): Debian's unbound on a loopback port of its own,
//! answering the CRES note's PTR/A records and a DNS list from local data, logging every query;
//! stopped by PID in `Drop` (`scripts/hat-dns-lab-stop.sh`), even when the test fails.

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::repo_root;

/// One running unbound of the HAT DNS lab.
pub struct Lab {
    state: PathBuf,
    addr: SocketAddr,
    query_log: PathBuf,
}

fn unbound_installed() -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .any(|d| d.join("unbound").is_file())
}

/// A free UDP port on loopback (released just before unbound binds it).
fn free_udp_port() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind an ephemeral loopback port");
    s.local_addr().expect("local address").port()
}

impl Lab {
    /// Starts an unbound; panics with the way to install it when it is missing.
    pub fn start() -> Self {
        assert!(
            unbound_installed(),
            "Debian's `unbound` is not installed: these tests need a real DNS server on loopback \
             (run scripts/install-deps.sh, or apt-get install unbound bind9-dnsutils)"
        );
        // The port is free when picked but may be taken (UDP or TCP) by the time unbound binds
        // it, with tests starting labs in parallel: unbound then dies at once (exit status 4),
        // and a new port is tried (bounded).
        let mut attempt = 0;
        let mut lab = loop {
            attempt += 1;
            let port = free_udp_port();
            let state =
                std::env::temp_dir().join(format!("hat-dns-lab-{}-{port}.env", std::process::id()));
            let out = Command::new("bash")
                .arg(repo_root().join("scripts/hat-dns-lab.sh"))
                .env("HAT_DNS_PORT", port.to_string())
                .env("STATE", &state)
                .env("LAB_TIMEOUT", "10")
                .output()
                .expect("run scripts/hat-dns-lab.sh");
            // From here on the guard exists, so even a failed start is cleaned up.
            let lab = Self {
                state,
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                query_log: PathBuf::new(),
            };
            if out.status.code() == Some(4) && attempt < 5 {
                continue;
            }
            assert!(
                out.status.success(),
                "hat-dns-lab.sh failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
            break lab;
        };
        let state_text = std::fs::read_to_string(&lab.state).expect("lab state file");
        lab.query_log = state_text
            .lines()
            .find_map(|l| l.strip_prefix("QUERY_LOG="))
            .map(PathBuf::from)
            .expect("QUERY_LOG in the lab state file");
        lab
    }

    /// The unbound's loopback address (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Waits (bounded) until the query log names `qname`; returns the log.
    pub fn wait_logged(&self, qname: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let log = std::fs::read_to_string(&self.query_log).unwrap_or_default();
            if log.contains(qname) {
                return log;
            }
            assert!(Instant::now() < deadline, "{qname} never logged:\n{log}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(repo_root().join("scripts/hat-dns-lab-stop.sh"))
            .env("STATE", &self.state)
            .output();
    }
}
