//! The DNSSEC lab (scripts/dnssec-lab.sh) for integration tests: own ports per test binary,
//! stopped by PID in `Drop` (scripts/dnssec-lab-stop.sh), even when the test fails.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::Command;

pub struct Lab {
    state: PathBuf,
    pub vars: HashMap<String, String>,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A loopback port free for both TCP and UDP right now.
fn free_port(taken: &[u16]) -> u16 {
    for _ in 0..200 {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = l.local_addr().unwrap().port();
        if !taken.contains(&port) && UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port");
}

/// A loopback port nothing listens on right now (queries to it fail at once).
pub fn free_udp_port() -> u16 {
    free_port(&[])
}

impl Lab {
    /// Starts the lab; a start that fails for another reason than missing tools (a port taken
    /// between choosing it and binding it) is retried with fresh ports, at most three times.
    pub fn start() -> Self {
        let mut failures = Vec::new();
        for _ in 0..3 {
            match Self::try_start() {
                Ok(lab) => return lab,
                Err(e) => failures.push(e),
            }
        }
        panic!(
            "DNSSEC lab failed to start three times:\n{}",
            failures.join("\n---\n")
        );
    }

    fn try_start() -> Result<Self, String> {
        let mut ports = Vec::new();
        for _ in 0..4 {
            let p = free_port(&ports);
            ports.push(p);
        }
        let dir = tempdir_path();
        let state = dir.join("lab.env");
        let out = Command::new("bash")
            .arg(repo().join("scripts/dnssec-lab.sh"))
            .env("PARENT_PORT", ports[0].to_string())
            .env("CHILD_PORT", ports[1].to_string())
            .env("UNBOUND_PORT", ports[2].to_string())
            .env("NOVAL_PORT", ports[3].to_string())
            .env("STATE", &state)
            .env("LAB_TIMEOUT", "20")
            .output()
            .expect("run bash scripts/dnssec-lab.sh");
        if !out.status.success() {
            // still try to stop whatever started
            let _ = Command::new("bash")
                .arg(repo().join("scripts/dnssec-lab-stop.sh"))
                .env("STATE", &state)
                .output();
            let stderr = String::from_utf8_lossy(&out.stderr);
            if out.status.code() == Some(3) {
                panic!(
                    "DNSSEC lab tools missing (knotd/unbound/ldnsutils): run scripts/install-deps.sh\n{stderr}"
                );
            }
            return Err(format!(
                "DNSSEC lab failed to start ({}): {stderr}",
                out.status
            ));
        }
        let text = std::fs::read_to_string(&state).expect("lab state file");
        let vars = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
            .collect();
        Ok(Self { state, vars })
    }

    pub fn var(&self, k: &str) -> &str {
        self.vars
            .get(k)
            .unwrap_or_else(|| panic!("lab state has no {k}"))
    }

    pub fn addr(&self, port_var: &str) -> SocketAddr {
        format!("127.0.0.1:{}", self.var(port_var)).parse().unwrap()
    }

    /// The validating unbound.
    pub fn validating(&self) -> SocketAddr {
        self.addr("UNBOUND_PORT")
    }

    /// The non-validating unbound (upstream for in-process validation).
    pub fn non_validating(&self) -> SocketAddr {
        self.addr("NOVAL_PORT")
    }

    pub fn trust_anchor_file(&self) -> PathBuf {
        PathBuf::from(self.var("TRUST_ANCHOR_FILE"))
    }
}

fn tempdir_path() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "dane-verify-lab-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(repo().join("scripts/dnssec-lab-stop.sh"))
            .env("STATE", &self.state)
            .output();
        if let Some(d) = self.state.parent() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}
