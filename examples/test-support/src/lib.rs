//! Fixtures shared by the workspace's tests, a dev-dependency only: the real peers started by
//! the project's scripts (`scripts/dnssec-lab.sh`, `scripts/hat-dns-lab.sh`,
//! `scripts/postfix-lab.sh`), each stopped by PID in `Drop` even when the test fails, PKI
//! builders (rcgen, and the `openssl` tool) and free loopback ports.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;

pub mod dnssec_lab;
pub mod hat_dns_lab;
pub mod openssl;
pub mod pki;
pub mod policy_server;
pub mod postfix;
pub mod redis;

/// The repository root (where `scripts/` is).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A loopback port free for both TCP and UDP right now, not in `taken`.
pub fn free_port(taken: &[u16]) -> u16 {
    for _ in 0..200 {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = l.local_addr().expect("bound address").port();
        if !taken.contains(&port) && UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port");
}

/// A loopback TCP address free right now.
pub fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .expect("bound address")
}
