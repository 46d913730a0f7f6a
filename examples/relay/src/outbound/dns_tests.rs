//! The `system` resolver against a real DNS server on loopback: an unbound started from this file
//! with its own small configuration (`scripts/hat-dns-lab.sh` has no MX data and takes no extra
//! records), answering only from local data; plus a server that answers SERVFAIL to everything
//! and one that never answers.

use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dane_verify::DnssecStatus;
use dane_verify::{DaneAction, DaneSetting, DeferReason, NoDaneReason};
use smtp_tls_policy::plan::HostSource;

use super::*;

/// The zone data of the test server.
const LOCAL_DATA: &[&str] = &[
    // Two MX hosts, listed out of preference order; mx1 has A and AAAA.
    "mx.test. 300 IN MX 20 mx2.mx.test.",
    "mx.test. 300 IN MX 10 mx1.mx.test.",
    "mx1.mx.test. 300 IN A 192.0.2.1",
    "mx1.mx.test. 300 IN AAAA 2001:db8::1",
    "mx2.mx.test. 300 IN A 192.0.2.2",
    // RFC 7505 null MX.
    "nullmx.test. 300 IN MX 0 .",
    // No MX: the domain itself (RFC 5321 §5.1).
    "nomx.test. 300 IN A 192.0.2.3",
];

/// One unbound on a free loopback port; killed (by PID) and reaped on drop.
struct Unbound {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Unbound {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = s.local_addr().unwrap().port();
    // The TCP side must be free too (unbound listens on both).
    match std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
        Ok(_) => port,
        Err(_) => free_port(),
    }
}

fn unbound_binary() -> PathBuf {
    ["/usr/sbin/unbound", "/usr/local/sbin/unbound"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("unbound not installed (scripts/install-deps.sh installs it)")
}

fn start_unbound() -> Unbound {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut conf = format!(
        "server:\n  directory: \"{d}\"\n  chroot: \"\"\n  username: \"\"\n  \
         pidfile: \"{d}/unbound.pid\"\n  interface: 127.0.0.1\n  port: {port}\n  do-ip6: no\n  \
         do-daemonize: no\n  use-syslog: no\n  logfile: \"{d}/unbound.log\"\n  verbosity: 1\n  \
         num-threads: 1\n  access-control: 127.0.0.0/8 allow\n  module-config: \"iterator\"\n  \
         local-zone: \".\" refuse\n  local-zone: \"test.\" static\n  \
         local-zone: \"refused.test.\" refuse\n",
        d = dir.path().display()
    );
    for rr in LOCAL_DATA {
        conf.push_str(&format!("  local-data: \"{rr}\"\n"));
    }
    conf.push_str("remote-control:\n  control-enable: no\n");
    let path = dir.path().join("unbound.conf");
    std::fs::write(&path, conf).unwrap();
    let child = Command::new(unbound_binary())
        .arg("-c")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start unbound");
    let mut server = Unbound {
        child,
        port,
        _dir: dir,
    };
    // Ready when its TCP port accepts (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!("unbound exited: {status}");
        }
        assert!(Instant::now() < deadline, "unbound not ready after 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    server
}

fn dns_for(ns: SocketAddr, timeout: Duration) -> Dns {
    Dns::system(system_for_nameserver(ns, timeout).unwrap())
}

#[tokio::test]
async fn system_resolver_against_unbound() {
    let server = start_unbound();
    let ns = SocketAddr::from((Ipv4Addr::LOCALHOST, server.port));
    let dns = dns_for(ns, Duration::from_secs(2));

    let hosts = dns
        .mx_hosts("mx.test", DaneSetting::Opportunistic)
        .await
        .unwrap();
    let names: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["mx1.mx.test", "mx2.mx.test"]);
    assert_eq!(
        hosts[0].addresses,
        [
            "192.0.2.1".parse::<IpAddr>().unwrap(),
            "2001:db8::1".parse().unwrap()
        ]
    );
    assert_eq!(hosts[1].addresses, ["192.0.2.2".parse::<IpAddr>().unwrap()]);
    for h in &hosts {
        assert_eq!(h.facts.mx_status, DnssecStatus::Insecure);
        assert_eq!(h.source, HostSource::Mx);
        assert_eq!(
            h.action,
            DaneAction::ConfiguredTls(NoDaneReason::MxInsecure)
        );
    }
    // Mandatory DANE cannot be met without DNSSEC: defer.
    let hosts = dns
        .mx_hosts("MX.test.", DaneSetting::Mandatory)
        .await
        .unwrap();
    assert_eq!(
        hosts[0].action,
        DaneAction::Defer(DeferReason::DaneRequired(NoDaneReason::MxInsecure))
    );

    // No MX: the domain is its own mail host.
    let hosts = dns.mx_hosts("nomx.test", DaneSetting::None).await.unwrap();
    assert_eq!(hosts.len(), 1);
    assert_eq!(hosts[0].name, "nomx.test");
    assert_eq!(hosts[0].source, HostSource::ImplicitMx);
    assert_eq!(hosts[0].addresses, ["192.0.2.3".parse::<IpAddr>().unwrap()]);
    assert_eq!(
        hosts[0].action,
        DaneAction::ConfiguredTls(NoDaneReason::SettingNone)
    );

    // Null MX and NXDOMAIN bounce; REFUSED defers.
    let e = dns
        .mx_hosts("nullmx.test", DaneSetting::None)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, NoRoute::Permanent(t) if t.contains("null MX")),
        "{e:?}"
    );
    let e = dns
        .mx_hosts("gone.test", DaneSetting::None)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, NoRoute::Permanent(t) if t.contains("no such domain")),
        "{e:?}"
    );
    let e = dns
        .mx_hosts("refused.test", DaneSetting::None)
        .await
        .unwrap_err();
    assert!(matches!(e, NoRoute::Temporary(_)), "{e:?}");
    let e = dns
        .mx_hosts("bad name.test", DaneSetting::None)
        .await
        .unwrap_err();
    assert!(matches!(e, NoRoute::Permanent(_)), "{e:?}");

    // Address lookups: literals pass through, unknown names give nothing.
    assert_eq!(
        dns.addresses("mx2.mx.test").await,
        ["192.0.2.2".parse::<IpAddr>().unwrap()]
    );
    assert_eq!(
        dns.addresses("::1").await,
        ["::1".parse::<IpAddr>().unwrap()]
    );
    assert!(dns.addresses("gone.test").await.is_empty());

    // The configuration path builds the same backend from `delivery.resolver.address`.
    let config: ResolverConfig =
        toml::from_str(&format!("mode = \"system\"\naddress = \"{ns}\"")).unwrap();
    let dns = Dns::new(&config).unwrap();
    let hosts = dns.mx_hosts("mx.test", DaneSetting::None).await.unwrap();
    assert_eq!(hosts.len(), 2);
}

/// Answers every query with SERVFAIL (header flags QR|RD|RA, RCODE 2), for `n` queries at most.
fn servfail_server(n: usize) -> (SocketAddr, std::thread::JoinHandle<()>) {
    let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let addr = sock.local_addr().unwrap();
    let t = std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        for _ in 0..n {
            let Ok((len, from)) = sock.recv_from(&mut buf) else {
                return;
            };
            if len < 12 {
                continue;
            }
            let mut reply = buf[..len].to_vec();
            reply[2] = 0x80 | (reply[2] & 0x01); // QR, keep RD
            reply[3] = 0x80 | 0x02; // RA, SERVFAIL
            // Question only: no answer, authority or additional records (drop EDNS).
            reply[6..12].fill(0);
            let q_end = question_end(&reply).unwrap_or(len);
            reply.truncate(q_end);
            let _ = sock.send_to(&reply, from);
        }
    });
    (addr, t)
}

/// The offset just past the first question of a DNS message.
fn question_end(msg: &[u8]) -> Option<usize> {
    let mut i = 12;
    loop {
        let l = *msg.get(i)? as usize;
        i += 1;
        if l == 0 {
            break;
        }
        i += l;
    }
    Some(i + 4).filter(|e| *e <= msg.len())
}

#[tokio::test]
async fn servfail_and_timeout_defer() {
    let (ns, t) = servfail_server(8);
    let dns = dns_for(ns, Duration::from_secs(2));
    let e = dns
        .mx_hosts("example.test", DaneSetting::None)
        .await
        .unwrap_err();
    assert!(matches!(e, NoRoute::Temporary(_)), "{e:?}");
    drop(dns);
    t.join().unwrap();

    // A server that never answers: timeout → defer.
    let silent = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let dns = dns_for(silent.local_addr().unwrap(), Duration::from_millis(200));
    let e = dns
        .mx_hosts("example.test", DaneSetting::None)
        .await
        .unwrap_err();
    assert!(matches!(e, NoRoute::Temporary(_)), "{e:?}");
}

#[test]
fn fqdn_is_absolute() {
    assert_eq!(fqdn("example.org"), "example.org.");
    assert_eq!(fqdn("example.org."), "example.org.");
}
