//! The MTA-STS policy host through the built binary: `relay` with an `[[https_listener]]` on a
//! loopback port, its certificate (`mta-sts.example.test` and `mta-sts.other.test`, from a test
//! CA) assigned in the store with `assign_https_listener`, fetched with a rustls + hyper client
//! that trusts only the test CA.
//!
//! SNI decision: the TLS handshake completes whatever the SNI (one certificate); a host with no
//! policy gets 404, an SNI and a `Host` naming different hosts get 421.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use relay::mta_sts_host::{Mode, PublishedPolicy};
use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject;

mod common;
use common::Relay;

const BODY: &str = "version: STSv1\r\nmode: enforce\r\nmx: mx1.example.test\r\n\
                    mx: *.mx.example.test\r\nmax_age: 86400\r\n";

struct Site {
    dir: tempfile::TempDir,
    smtp: SocketAddr,
    https: SocketAddr,
    ca_pem: String,
}

/// A site whose HTTPS listener holds at most `max_connections`.
fn site_with(max_connections: usize) -> Site {
    let dir = tempfile::tempdir().unwrap();
    let ca = test_support::pki::TestCa::new("mta-sts test CA");
    let ck = ca.issue(&[
        "mta-sts.example.test".to_owned(),
        "mta-sts.other.test".to_owned(),
    ]);
    let mut store = cert_store::CertStore::open(dir.path().join("certs")).unwrap();
    store
        .import_pem(
            "sts",
            ck.chain_pem.as_bytes(),
            ck.key_pem.as_bytes(),
            cert_store::FqdnCheck::Off,
        )
        .unwrap();
    store.assign_https_listener("policy", "sts").unwrap();
    let smtp = test_support::free_addr();
    let https: SocketAddr = format!("127.0.0.1:{}", test_support::free_port(&[smtp.port()]))
        .parse()
        .unwrap();
    std::fs::write(
        dir.path().join("hat.toml"),
        r#"
[[mail_flow_policy]]
name = "LOOPBACK"
behavior = "relay"
tls = "no"
[[sender_group]]
name = "RELAYLIST"
order = 1
policy = "LOOPBACK"
senders = ["127.0.0.0/8"]
"#,
    )
    .unwrap();
    let d = dir.path().display();
    std::fs::write(
        dir.path().join("relay.toml"),
        format!(
            r#"
[[listener]]
name = "test"
address = "{smtp}"
hat = "hat.toml"

[spool]
dir = "{d}/spool"

[tls]
cert_store = "{d}/certs"

[limits]
shutdown_grace_secs = 5

[delivery]
ehlo_name = "relay.test"
local_domains = ["localhost"]
maildir = "{d}/maildir"

[[https_listener]]
name = "policy"
address = "{https}"
header_read_timeout_secs = 1
max_connections = {max_connections}

[[mta_sts_policy]]
domain = "Example.Test."
mode = "enforce"
max_age = 86400
mx = ["mx1.example.test", "*.mx.example.test"]
"#
        ),
    )
    .unwrap();
    Site {
        dir,
        smtp,
        https,
        ca_pem: ca.pem,
    }
}

fn site() -> Site {
    site_with(256)
}

struct Reply {
    status: StatusCode,
    content_type: Option<String>,
    allow: Option<String>,
    body: String,
}

/// One request over a fresh TLS connection with SNI `sni`, verified against the test CA.
async fn fetch(
    site: &Site,
    sni: &str,
    method: Method,
    path: &str,
    host: Option<&str>,
) -> Result<Reply, String> {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(site.ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(site.https)
        .await
        .map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from(sni.to_owned()).unwrap(), tcp)
        .await
        .map_err(|e| format!("TLS: {e}"))?;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    let conn = tokio::spawn(conn);
    let mut req = Request::builder().method(method).uri(path);
    if let Some(h) = host {
        req = req.header(http::header::HOST, h);
    }
    let resp = sender
        .send_request(req.body(Empty::<Bytes>::new()).unwrap())
        .await
        .map_err(|e| e.to_string())?;
    let header = |n| {
        resp.headers()
            .get(n)
            .map(|v: &http::HeaderValue| v.to_str().unwrap().to_owned())
    };
    let (status, content_type, allow) = (
        resp.status(),
        header(http::header::CONTENT_TYPE),
        header(http::header::ALLOW),
    );
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    drop(sender);
    let _ = conn.await;
    Ok(Reply {
        status,
        content_type,
        allow,
        body: String::from_utf8(body.to_bytes().to_vec()).unwrap(),
    })
}

fn check_config(file: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_relay"))
        .arg("--check-config")
        .arg(file)
        .output()
        .unwrap()
}

#[test]
fn relay_serves_the_mta_sts_policy_over_https() {
    let site = site();
    let mut relay = Relay::start(
        site.dir.path(),
        &site.dir.path().join("relay.toml"),
        site.smtp,
        "relay.log",
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let host = "mta-sts.example.test";
    let path = "/.well-known/mta-sts.txt";
    let get = |sni: &str, method: Method, path: &str, host: Option<&str>| {
        rt.block_on(fetch(&site, sni, method, path, host)).unwrap()
    };

    let ok = get(host, Method::GET, path, Some(host));
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.content_type.as_deref(), Some("text/plain"));
    assert_eq!(ok.body, BODY);
    // Host with a port and in upper case; SNI alone (no Host header: HTTP/1.0 style).
    let ok = get(host, Method::GET, path, Some("MTA-STS.example.test:443"));
    assert_eq!((ok.status, ok.body.as_str()), (StatusCode::OK, BODY));
    let ok = get(host, Method::GET, path, None);
    assert_eq!((ok.status, ok.body.as_str()), (StatusCode::OK, BODY));
    let head = get(host, Method::HEAD, path, Some(host));
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.content_type.as_deref(), Some("text/plain"));
    assert_eq!(head.body, "");

    // Another host served by the certificate but without a policy; the wrong Host.
    let other = "mta-sts.other.test";
    assert_eq!(
        get(other, Method::GET, path, Some(other)).status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(other, Method::GET, path, None).status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(host, Method::GET, path, Some(other)).status,
        StatusCode::MISDIRECTED_REQUEST
    );
    assert_eq!(
        get(other, Method::GET, path, Some(host)).status,
        StatusCode::MISDIRECTED_REQUEST
    );
    // Nothing else is served.
    for p in [
        "/",
        "/.well-known/",
        "/.well-known/mta-sts.txt/",
        "/../relay.toml",
    ] {
        let r = get(host, Method::GET, p, Some(host));
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{p}");
        assert_eq!(r.content_type.as_deref(), Some("text/plain"));
        assert!(!r.body.contains("STSv1"), "{p}: {}", r.body);
    }
    let post = get(host, Method::POST, path, Some(host));
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(post.allow.as_deref(), Some("GET, HEAD"));
    assert_eq!(
        get(host, Method::DELETE, path, Some(host)).status,
        StatusCode::METHOD_NOT_ALLOWED
    );

    // A client that connects and says nothing is dropped after header_read_timeout_secs (1).
    let started = Instant::now();
    let mut idle = TcpStream::connect(site.https).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 16];
    let n = std::io::Read::read(&mut idle, &mut buf).unwrap_or(0);
    assert_eq!(n, 0, "the server closes an idle connection");
    assert!(started.elapsed() < Duration::from_secs(8));

    // The TXT record to publish and the host to point at the listener are logged.
    let policy = PublishedPolicy::new(
        "example.test",
        Mode::Enforce,
        86400,
        &["mx1.example.test".into(), "*.mx.example.test".into()],
    )
    .unwrap();
    assert_eq!(policy.text(), BODY);
    let log = relay.log();
    let txt = format!("_mta-sts.example.test TXT \"v=STSv1; id={}\"", policy.id());
    assert!(log.contains(&txt), "{txt} not in the log:\n{log}");
    assert!(
        log.contains("mta-sts.example.test must point at an HTTPS listener"),
        "{log}"
    );
    assert!(relay.terminate().success(), "{}", relay.log());
}

#[test]
fn check_config_shows_the_policy_host_and_refuses_bad_policies() {
    let site = site();
    let file = site.dir.path().join("relay.toml");
    let out = check_config(&file);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("[[https_listener]]"), "{stdout}");
    assert!(stdout.contains("[[mta_sts_policy]]"), "{stdout}");
    assert!(
        stdout.contains("policy_host = \"mta-sts.example.test\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("txt_record = '_mta-sts.example.test TXT \"v=STSv1; id="),
        "{stdout}"
    );

    let text = std::fs::read_to_string(&file).unwrap();
    // Syntax errors name the line and column, and the key without its index.
    let mode_line = 1 + text.lines().position(|l| l.starts_with("mode = ")).unwrap();
    let mode_error = format!(":{mode_line}:8: key `mta_sts_policy.mode`: unknown variant `strict`");
    let cases: [(&str, &str, &str); 7] = [
        (
            "mx = [\"mx1.example.test\", \"*.mx.example.test\"]",
            "mx = [\"192.0.2.25\"]",
            "key `mta_sts_policy[0].mx`: mx \"192.0.2.25\" is an IP address",
        ),
        (
            "mx = [\"mx1.example.test\", \"*.mx.example.test\"]",
            "mx = [\"mx.*.example.test\"]",
            "key `mta_sts_policy[0].mx`: mx \"mx.*.example.test\": a wildcard must be",
        ),
        (
            "max_age = 86400",
            "max_age = 31557601",
            "key `mta_sts_policy[0].max_age`: max_age 31557601 is over 31557600",
        ),
        ("mode = \"enforce\"", "mode = \"strict\"", &mode_error),
        (
            "mx = [\"mx1.example.test\", \"*.mx.example.test\"]",
            "mx = []",
            "key `mta_sts_policy[0].mx`: mode enforce needs at least one mx pattern",
        ),
        (
            "header_read_timeout_secs = 1",
            "header_read_timeout_secs = 0",
            "key `https_listener[0].header_read_timeout_secs`",
        ),
        (
            "max_connections = 256",
            "max_connections = 256\nmax_connections_per_ip = 0",
            "key `https_listener[0].max_connections_per_ip`: 1 to 65536",
        ),
    ];
    for (from, to, want) in cases {
        let bad = site.dir.path().join("bad.toml");
        std::fs::write(&bad, text.replace(from, to)).unwrap();
        let out = check_config(&bad);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{to}: {stderr}");
        assert!(stderr.contains("bad.toml:"), "{stderr}");
        assert!(stderr.contains(want), "{to}: want {want:?} in {stderr}");
    }

    // No certificate in the configuration and none assigned in the store.
    let bad = site.dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        text.replace("name = \"policy\"", "name = \"unassigned\""),
    )
    .unwrap();
    let out = check_config(&bad);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "https_listener[0].certificate: https listener \"unassigned\" has no certificate"
        ),
        "{stderr}"
    );
}

#[test]
fn connections_over_the_limit_are_closed() {
    let site = site_with(1);
    let relay = Relay::start(
        site.dir.path(),
        &site.dir.path().join("relay.toml"),
        site.smtp,
        "relay.log",
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let host = "mta-sts.example.test";
    let path = "/.well-known/mta-sts.txt";
    // The first connection (accepted first: the backlog is in order) holds the only slot until
    // the header timeout (1 s) ends it; the second one is closed at once.
    let mut idle = TcpStream::connect(site.https).unwrap();
    let refused = rt.block_on(fetch(&site, host, Method::GET, path, Some(host)));
    assert!(refused.is_err(), "a second connection was served");
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(std::io::Read::read(&mut idle, &mut buf).unwrap_or(0), 0);
    // The slot is freed as the idle connection ends (bounded wait for the server task).
    let deadline = Instant::now() + Duration::from_secs(10);
    let ok = loop {
        match rt.block_on(fetch(&site, host, Method::GET, path, Some(host))) {
            Ok(r) => break r,
            Err(e) => assert!(Instant::now() < deadline, "slot never freed: {e}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!((ok.status, ok.body.as_str()), (StatusCode::OK, BODY));
    let log = relay.log();
    assert!(log.contains("https: connection limit reached"), "{log}");
}

/// A TLS session to the site's HTTPS listener from `source` (a loopback address), verified
/// against the test CA; its completed handshake proves the server accepted the connection.
async fn tls_from(
    site: &Site,
    source: std::net::IpAddr,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(site.ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let socket = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
    socket
        .bind(SocketAddr::new(source, 0))
        .map_err(|e| e.to_string())?;
    let tcp = socket
        .connect(site.https)
        .await
        .map_err(|e| e.to_string())?;
    let sni = ServerName::try_from("mta-sts.example.test").unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(sni, tcp)
        .await
        .map_err(|e| format!("TLS: {e}"))
}

/// GET of the policy over an established TLS session: its status.
async fn get_policy(
    tls: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
) -> Result<StatusCode, String> {
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    let conn = tokio::spawn(conn);
    let req = Request::get("/.well-known/mta-sts.txt")
        .header(http::header::HOST, "mta-sts.example.test")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    drop(sender);
    conn.abort();
    Ok(status)
}

#[test]
fn connections_over_the_per_ip_limit_are_closed() {
    let site = site(); // max_connections 256, max_connections_per_ip by default (8)
    // The held connections must outlive the test: a longer header timeout than site()'s 1 s.
    let file = site.dir.path().join("relay.toml");
    let text = std::fs::read_to_string(&file).unwrap().replace(
        "header_read_timeout_secs = 1",
        "header_read_timeout_secs = 120",
    );
    std::fs::write(&file, text).unwrap();
    let relay = Relay::start(site.dir.path(), &file, site.smtp, "relay.log");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let one: std::net::IpAddr = [127, 0, 0, 1].into();
    let two: std::net::IpAddr = [127, 0, 0, 2].into();
    rt.block_on(async {
        // Eight sessions from 127.0.0.1, each accepted (its handshake completed) and open.
        let mut held = Vec::new();
        for i in 0..8 {
            held.push(
                tls_from(&site, one)
                    .await
                    .unwrap_or_else(|e| panic!("{i}: {e}")),
            );
        }
        // The ninth from that address is closed at once.
        let ninth = tls_from(&site, one).await;
        assert!(
            ninth.is_err(),
            "a ninth connection from 127.0.0.1 was served"
        );
        // Another address is not held to 127.0.0.1's count.
        let other = tls_from(&site, two).await.unwrap();
        assert_eq!(get_policy(other).await.unwrap(), StatusCode::OK);
        // The eight held sessions are still served.
        for tls in held {
            assert_eq!(get_policy(tls).await.unwrap(), StatusCode::OK);
        }
    });
    let log = relay.log();
    assert!(
        log.contains("https: per-IP connection limit reached"),
        "{log}"
    );
}
