//! Round trips with the real `openssl` command line: CSR, PKCS#12 both ways, and TLS
//! handshakes on 127.0.0.1 between rustls configurations built from the store and
//! `openssl s_client` / `openssl s_server`.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cert_store::{
    BadEntryPolicy, CaList, CertStore, Error, FqdnCheck, KeySpec, SelfSignedRequest, Subject,
    parse_bundle,
};
use test_support::openssl::run as openssl_ok;

fn openssl(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("openssl is installed (scripts/install-deps.sh)")
}

fn request(cn: &str, key: KeySpec) -> SelfSignedRequest {
    let mut r = SelfSignedRequest::new(Subject::new(cn).with_country("SE"));
    r.key = key;
    r
}

#[test]
fn our_csr_verifies_with_openssl() {
    let tmp = tempfile::tempdir().unwrap();
    let mut store = CertStore::open(tmp.path().join("store")).unwrap();
    for key in [KeySpec::EcP256, KeySpec::EcP384, KeySpec::Rsa2048] {
        let name = key.name();
        store
            .create_self_signed(name, &request("mx.example.com", key))
            .unwrap();
        let csr = tmp.path().join(format!("{name}.csr"));
        std::fs::write(&csr, store.csr_pem(name).unwrap()).unwrap();
        let out = openssl(
            tmp.path(),
            &[
                "req",
                "-verify",
                "-noout",
                "-text",
                "-in",
                csr.to_str().unwrap(),
            ],
        );
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{name}: {all}");
        assert!(all.contains("verify OK"), "{name}: {all}");
        assert!(
            all.contains("CN = mx.example.com") || all.contains("CN=mx.example.com"),
            "{all}"
        );
    }
}

#[test]
fn our_pkcs12_opens_with_openssl() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut store = CertStore::open(dir.join("store")).unwrap();
    store
        .create_self_signed("mx", &request("mx.example.com", KeySpec::Rsa2048))
        .unwrap();
    std::fs::write(dir.join("pass"), "s3cret pass\n").unwrap();
    let p12 = store.export_pkcs12("mx", "s3cret pass").unwrap();
    std::fs::write(dir.join("out.p12"), &p12).unwrap();
    let certs = openssl_ok(
        dir,
        &[
            "pkcs12",
            "-in",
            "out.p12",
            "-passin",
            "file:pass",
            "-nokeys",
        ],
    );
    let got = parse_bundle(certs.as_bytes(), BadEntryPolicy::Reject)
        .unwrap()
        .certs;
    assert_eq!(got, store.get("mx").unwrap().chain);
    let keys = openssl_ok(
        dir,
        &[
            "pkcs12",
            "-in",
            "out.p12",
            "-passin",
            "file:pass",
            "-nocerts",
            "-nodes",
        ],
    );
    let key = cert_store::PrivateKey::from_pem_or_der(keys.as_bytes()).unwrap();
    cert_store::check_key_matches(&key, &got[0], "mx").unwrap();
    // A wrong passphrase is refused by openssl too.
    std::fs::write(dir.join("wrong"), "nope\n").unwrap();
    assert!(
        !openssl(
            dir,
            &[
                "pkcs12",
                "-in",
                "out.p12",
                "-passin",
                "file:wrong",
                "-nokeys"
            ]
        )
        .status
        .success()
    );
}

fn make_openssl_identity(dir: &Path) {
    openssl_ok(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "o.key",
            "-out",
            "o.pem",
            "-days",
            "30",
            "-subj",
            "/CN=imported.example.com",
            "-addext",
            "subjectAltName=DNS:imported.example.com",
        ],
    );
    std::fs::write(dir.join("pass"), "pw-123\n").unwrap();
}

#[test]
fn openssl_made_pkcs12_imports() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    make_openssl_identity(dir);
    let cert = parse_bundle(
        &std::fs::read(dir.join("o.pem")).unwrap(),
        BadEntryPolicy::Reject,
    )
    .unwrap()
    .certs;
    let mut store = CertStore::open(dir.join("store")).unwrap();
    let mut imported = 0;
    for (name, extra) in [("default", None), ("legacy", Some("-legacy"))] {
        let file = format!("{name}.p12");
        let mut args = vec![
            "pkcs12",
            "-export",
            "-in",
            "o.pem",
            "-inkey",
            "o.key",
            "-passout",
            "file:pass",
            "-out",
            &file,
        ];
        args.extend(extra);
        let out = openssl(dir, &args);
        if !out.status.success() {
            // `-legacy` needs OpenSSL's legacy provider, which some builds leave out.
            println!(
                "openssl {name} export unavailable: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(name, "legacy");
            continue;
        }
        let data = std::fs::read(dir.join(&file)).unwrap();
        store
            .import_pkcs12(name, &data, "pw-123", FqdnCheck::Required)
            .unwrap();
        assert_eq!(store.get(name).unwrap().chain, cert);
        assert_eq!(
            store
                .import_pkcs12("x", &data, "wrong", FqdnCheck::Off)
                .unwrap_err(),
            Error::Pkcs12WrongPassphrase
        );
        assert!(matches!(
            store.import_pkcs12("x", &data[..data.len() / 2], "pw-123", FqdnCheck::Off),
            Err(Error::Pkcs12Corrupt { .. })
        ));
        imported += 1;
    }
    println!("imported {imported} openssl-made PKCS#12 files");
    openssl_ok(
        dir,
        &[
            "pkcs12",
            "-export",
            "-nokeys",
            "-in",
            "o.pem",
            "-passout",
            "file:pass",
            "-out",
            "nokey.p12",
        ],
    );
    let data = std::fs::read(dir.join("nokey.p12")).unwrap();
    assert_eq!(
        store
            .import_pkcs12("n", &data, "pw-123", FqdnCheck::Off)
            .unwrap_err(),
        Error::Pkcs12NoKey
    );
    assert!(
        CertStore::open(dir.join("store"))
            .unwrap()
            .get("default")
            .is_ok()
    );
}

/// A root CA and an intermediate made by openssl, and store entry `mx` re-signed through them.
struct Pki {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    store: CertStore,
}

fn pki() -> Pki {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    std::fs::write(
        dir.join("ca.ext"),
        "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n",
    )
    .unwrap();
    test_support::openssl::self_signed_ca(&dir, "root.key", "root.pem", "/CN=Test Root", 30);
    openssl_ok(
        &dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "inter.key",
            "-out",
            "inter.csr",
            "-subj",
            "/CN=Test Intermediate",
        ],
    );
    openssl_ok(
        &dir,
        &[
            "x509",
            "-req",
            "-in",
            "inter.csr",
            "-CA",
            "root.pem",
            "-CAkey",
            "root.key",
            "-CAcreateserial",
            "-days",
            "30",
            "-extfile",
            "ca.ext",
            "-out",
            "inter.pem",
        ],
    );
    let mut store = CertStore::open(dir.join("store")).unwrap();
    let mut req = request("mx.example.com", KeySpec::EcP256);
    req.subject.sans.push("mx.example.com".into());
    store.create_self_signed("mx", &req).unwrap();
    std::fs::write(dir.join("mx.csr"), store.csr_pem("mx").unwrap()).unwrap();
    openssl_ok(
        &dir,
        &[
            "x509",
            "-req",
            "-in",
            "mx.csr",
            "-CA",
            "inter.pem",
            "-CAkey",
            "inter.key",
            "-CAcreateserial",
            "-days",
            "30",
            "-copy_extensions",
            "copyall",
            "-out",
            "mx.pem",
        ],
    );
    let signed = std::fs::read(dir.join("mx.pem")).unwrap();
    let inter = std::fs::read(dir.join("inter.pem")).unwrap();
    store.upload_signed("mx", &signed, &[&inter]).unwrap();
    store
        .import_custom_ca(
            &std::fs::read(dir.join("root.pem")).unwrap(),
            BadEntryPolicy::Reject,
        )
        .unwrap();
    store.set_ca_enabled(CaList::Custom, true).unwrap();
    Pki {
        _tmp: tmp,
        dir,
        store,
    }
}

/// Kills and reaps a child process when dropped (also when a test fails).
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn rustls_server_from_store_verifies_with_s_client_trusting_the_custom_list() {
    let pki = pki();
    let reopened = CertStore::open(pki.dir.join("store")).unwrap();
    assert_eq!(
        reopened.get("mx").unwrap().chain.len(),
        2,
        "intermediate stored"
    );
    let config = reopened.server_config("mx").unwrap();
    std::fs::write(
        pki.dir.join("custom.pem"),
        reopened.export_ca(CaList::Custom),
    )
    .unwrap();

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // The listener is bound before s_client starts: no readiness race.
    let server = std::thread::spawn(move || -> Result<(), String> {
        listener.set_nonblocking(false).unwrap();
        let (mut tcp, _) = listener.accept().map_err(|e| e.to_string())?;
        tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut conn = rustls::ServerConnection::new(config).map_err(|e| e.to_string())?;
        let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
        tls.write_all(b"220 hello\r\n").map_err(|e| e.to_string())?;
        tls.conn.send_close_notify();
        tls.flush().map_err(|e| e.to_string())?;
        Ok(())
    });
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-CAfile",
            "custom.pem",
            "-verify_return_error",
            "-verify_hostname",
            "mx.example.com",
            "-servername",
            "mx.example.com",
            "-ign_eof",
        ])
        .current_dir(&pki.dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Verify return code: 0 (ok)"), "{text}");
    assert!(text.contains("220 hello"), "{text}");
    server.join().unwrap().unwrap();
}

fn wait_ready(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            Instant::now() < deadline,
            "s_server did not start listening on {addr}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn rustls_handshake(
    config: Arc<rustls::ClientConfig>,
    addr: SocketAddr,
) -> Result<(), rustls::Error> {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let name = rustls_pki_types::ServerName::try_from("mx.example.com").unwrap();
    let mut conn = rustls::ClientConnection::new(config, name)?;
    while conn.is_handshaking() {
        match conn.complete_io(&mut tcp) {
            Ok(_) => {}
            Err(e) => {
                return Err(
                    match e
                        .into_inner()
                        .and_then(|i| i.downcast::<rustls::Error>().ok())
                    {
                        Some(inner) => *inner,
                        None => rustls::Error::General("io".into()),
                    },
                );
            }
        }
    }
    conn.send_close_notify();
    let _ = conn.complete_io(&mut tcp);
    Ok(())
}

#[test]
fn rustls_client_from_store_needs_the_custom_list_against_s_server() {
    let mut pki = pki();
    let port = test_support::free_port(&[]);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    std::fs::write(
        pki.dir.join("mx.key"),
        pki.store.get("mx").unwrap().key().to_pem(),
    )
    .unwrap();
    let _server = ChildGuard(
        Command::new("openssl")
            .args([
                "s_server",
                "-accept",
                &port.to_string(),
                "-cert",
                "mx.pem",
                "-key",
                "mx.key",
                "-cert_chain",
                "inter.pem",
                "-quiet",
            ])
            .current_dir(&pki.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_ready(addr);
    rustls_handshake(pki.store.client_config().unwrap(), addr)
        .expect("custom list trusts the root");
    pki.store.set_ca_enabled(CaList::Custom, false).unwrap();
    let err = rustls_handshake(pki.store.client_config().unwrap(), addr).unwrap_err();
    assert!(
        matches!(
            err,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
        ),
        "{err:?}"
    );
    assert_eq!(
        pki.store.set_ca_enabled(CaList::System, false).unwrap_err(),
        Error::NoCaListEnabled
    );
}

#[test]
fn tlsa_digests_equal_openssl_pipeline() {
    let pki = pki();
    let stored = pki.store.get("mx").unwrap();
    let records = dane_verify::server_tlsa_records(&stored.chain[0], stored.chain.get(1)).unwrap();
    assert_eq!(records.len(), 2);
    for (rec, file, usage) in [
        (&records[0], "mx.pem", "3 1 1 "),
        (&records[1], "inter.pem", "2 1 1 "),
    ] {
        // openssl x509 -pubkey | openssl pkey -pubin -outform DER | sha256sum
        let script = format!(
            "openssl x509 -in {file} -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum"
        );
        let out = Command::new("sh")
            .arg("-c")
            .arg(&script)
            .current_dir(&pki.dir)
            .output()
            .unwrap();
        assert!(out.status.success());
        let digest = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_string();
        assert_eq!(rec.to_string(), format!("{usage}{digest}"));
        assert_eq!(
            rec.to_rr_line("mx.example.com", 25),
            format!("_25._tcp.mx.example.com. IN TLSA {usage}{digest}")
        );
    }
}
