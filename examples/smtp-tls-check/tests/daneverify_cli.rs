//! `smtp-tls-check daneverify`, offline and live, run as the built binary against the project's
//! DNSSEC lab (scripts/dnssec-lab.sh, own ports, stopped by PID in Drop) and a small TLS SMTP
//! responder on loopback serving the lab's MX certificate.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::Value;
use test_support::dnssec_lab::Lab;

mod common;

/// `smtp-tls-check daneverify ARGS`: exit code, stdout as JSON, stderr.
fn run(args: &[&str]) -> (i32, Value, String) {
    let (code, json, _, err) = common::run_command("daneverify", args);
    (code, json, err)
}

#[test]
fn offline_matching() {
    let lab = Lab::start();
    let chain = lab.var("MX_CHAIN");
    let leaf = lab.var("MX_CERT");
    let ee = format!("3 1 1 {}", lab.var("SPKI_SHA256"));
    let ta = format!("2 1 1 {}", lab.var("CA_SPKI_SHA256"));
    let base = |t: &str, name: &str| {
        vec![
            "--tlsa".to_string(),
            t.to_string(),
            "--chain".into(),
            chain.to_owned(),
            "--name".into(),
            name.into(),
            "--json".into(),
        ]
    };
    let call = |v: Vec<String>| run(&v.iter().map(String::as_str).collect::<Vec<_>>());

    let (code, j, _) = call(base(&ee, "mx.dane.test"));
    assert_eq!(code, 0, "{j}");
    assert_eq!(
        j,
        serde_json::json!({"outcome": "verified", "depth": 0, "matched": ee, "error": null})
    );
    let (code, j, _) = call(base(&ta, "mx.dane.test"));
    assert_eq!(
        (code, j["outcome"].as_str(), j["depth"].as_i64()),
        (0, Some("verified"), Some(1))
    );
    let (code, j, _) = call(base(&ta, "other.example"));
    assert_eq!(
        (code, j["outcome"].as_str(), j["depth"].as_i64()),
        (1, Some("name-mismatch"), Some(1))
    );
    assert!(j["error"].is_string());
    // DANE-TA digest with the CA missing from the chain: no match
    let mut v = base(&ta, "mx.dane.test");
    v[3] = leaf.to_owned();
    let (code, j, _) = call(v);
    assert_eq!(
        (code, j["outcome"].as_str(), j["depth"].as_i64()),
        (1, Some("no-match"), Some(-1))
    );
    assert!(j["matched"].is_null());
    // usages 0/1 are unusable for SMTP; generic mode with the CA as trust anchor verifies
    let pkix = format!("0 1 1 {}", lab.var("CA_SPKI_SHA256"));
    let (code, j, _) = call(base(&pkix, "mx.dane.test"));
    assert_eq!((code, j["outcome"].as_str()), (1, Some("unusable")));
    let mut v = base(&pkix, "mx.dane.test");
    v.extend([
        "--generic".into(),
        "--ca".into(),
        lab.var("CA_CERT").to_owned(),
    ]);
    let (code, j, _) = call(v);
    assert_eq!(
        (code, j["outcome"].as_str(), j["depth"].as_i64()),
        (0, Some("verified"), Some(1)),
        "{j}"
    );
    // far future: DANE-TA fails on expiry, DANE-EE ignores it
    let mut v = base(&ta, "mx.dane.test");
    v.extend(["--at".into(), "2100-01-01T00:00:00Z".into()]);
    assert_eq!(call(v).1["outcome"], "chain-error");
    let mut v = base(&ee, "mx.dane.test");
    v.extend(["--at".into(), "2100-01-01T00:00:00Z".into()]);
    assert_eq!(call(v).1["outcome"], "verified");
    // generic DANE-EE checks names unless --no-name-checks
    let mut v = base(&ee, "other.example");
    v.push("--generic".into());
    assert_eq!(call(v.clone()).1["outcome"], "name-mismatch");
    v.push("--no-name-checks".into());
    assert_eq!(call(v).1["outcome"], "verified");
    // bad input: exit 2, no JSON
    let (code, j, err) = call(base("3 1 1 zz", "mx.dane.test"));
    assert_eq!((code, j), (2, Value::Null));
    assert!(err.contains("not hex"), "{err}");
}

#[path = "../../../dane-verify/tests/data/openssl-danetest/cases.rs"]
mod danetest;

/// OpenSSL's DANE test vectors (`test/danetest.in`, 50 cases; provenance and semantics in
/// dane-verify/tests/data/openssl-danetest/README.md) through `daneverify --generic`: outcome,
/// exit status and depth of every case as OpenSSL's, except the cases listed with a reason in
/// `divergences.txt` there. `-- --nocapture` prints the counts.
#[test]
fn openssl_danetest_through_the_cli() {
    let data = test_support::repo_root().join("dane-verify/tests/data/openssl-danetest");
    let all = danetest::parse(&std::fs::read_to_string(data.join("danetest.in")).unwrap());
    assert_eq!(all.len(), 50);
    let known =
        danetest::divergences(&std::fs::read_to_string(data.join("divergences.txt")).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root.pem");
    std::fs::write(&root, danetest::root_ca(&all)).unwrap();
    let root = root.to_str().unwrap().to_string();
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    let mut problems = Vec::new();
    for case in &all {
        if case.digest_order_matters() {
            skipped += 1;
            continue;
        }
        let chain = dir.path().join(format!("chain-{}.pem", case.number));
        std::fs::write(&chain, case.chain.concat()).unwrap();
        let mut args = vec![
            "--generic".to_string(),
            "--ca".into(),
            root.clone(),
            "--name".into(),
            danetest::BASE_DOMAIN.into(),
            "--chain".into(),
            chain.to_str().unwrap().into(),
            "--at".into(),
            danetest::AT.into(),
            "--json".into(),
        ];
        if case.no_name_checks {
            args.push("--no-name-checks".into());
        }
        for t in &case.tlsa {
            args.extend(["--tlsa".to_string(), t.clone()]);
        }
        let (code, j, err) = run(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let want_code = if case.result == 0 { 0 } else { 1 };
        let agrees = code == want_code
            && j["outcome"] == case.outcome()
            && j["depth"].as_i64() == Some(i64::from(case.depth));
        let listed = known.contains(&case.number);
        if agrees {
            passed += 1;
        } else {
            failed += 1;
        }
        if agrees == listed {
            problems.push(format!(
                "case {} ({}): expected exit {want_code} {} depth {}, got exit {code} {j} {err}",
                case.number,
                if listed {
                    "listed divergence now agrees"
                } else {
                    "unexpected"
                },
                case.outcome(),
                case.depth,
            ));
        }
    }
    println!("OpenSSL danetest: {passed} passed, {failed} failed, {skipped} skipped");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A TLS SMTP responder on loopback: greets, offers STARTTLS, injects a plaintext line after
/// its 220 (which the client must discard), then TLS with the lab's MX chain, where it answers
/// EHLO and QUIT. Bounded.
fn responder(lab: &Lab) -> u16 {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(lab.var("MX_CHAIN"))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(lab.var("MX_KEY")).unwrap();
    responder_with(certs, key)
}

/// The same responder serving a fresh self-signed certificate for `mx.dane.test`, which no TLSA
/// record of the lab matches.
fn impostor() -> u16 {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["mx.dane.test".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let key = PrivateKeyDer::try_from(key.serialize_der()).unwrap();
    responder_with(vec![cert.der().clone()], key)
}

fn responder_with(certs: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> u16 {
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(20) {
            let Ok(stream) = stream else { continue };
            let config = config.clone();
            std::thread::spawn(move || {
                let _ = serve(stream, config);
            });
        }
    });
    port
}

fn serve(mut s: TcpStream, config: Arc<rustls::ServerConfig>) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(b"220 mx.dane.test ESMTP test\r\n")?;
    let mut r = BufReader::new(s.try_clone()?);
    let mut line = String::new();
    for _ in 0..5 {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let cmd = line.trim().to_ascii_uppercase();
        if cmd.starts_with("EHLO") {
            s.write_all(b"250-mx.dane.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n")?;
        } else if cmd == "STARTTLS" {
            s.write_all(b"220 go ahead\r\n250 injected-before-tls\r\n")?;
            // The client discards the injected line; inside TLS it says EHLO again, then QUIT.
            let mut conn = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
            let mut tls = BufReader::new(rustls::Stream::new(&mut conn, &mut s));
            for _ in 0..5 {
                line.clear();
                if tls.read_line(&mut line)? == 0 {
                    return Ok(());
                }
                let cmd = line.trim().to_ascii_uppercase();
                let reply: &[u8] = if cmd.starts_with("EHLO") {
                    b"250-mx.dane.test\r\n250 PIPELINING\r\n"
                } else if cmd == "QUIT" {
                    b"221 bye\r\n"
                } else {
                    b"502 no\r\n"
                };
                tls.get_mut().write_all(reply)?;
                tls.get_mut().flush()?;
                if cmd == "QUIT" {
                    return Ok(());
                }
            }
            return Ok(());
        } else {
            s.write_all(b"502 no\r\n")?;
        }
    }
    Ok(())
}

#[test]
fn live_against_the_lab() {
    let lab = Lab::start();
    let port = responder(&lab).to_string();
    let validating = format!("127.0.0.1:{}", lab.var("UNBOUND_PORT"));
    let noval = format!("127.0.0.1:{}", lab.var("NOVAL_PORT"));
    let anchors = lab.var("TRUST_ANCHOR_FILE");
    let live = |domain: &str, extra: &[&str]| {
        let mut v = vec![domain, "--port", &port, "--probe-name", "test.", "--json"];
        v.extend_from_slice(extra);
        run(&v)
    };
    // DANE-EE + DANE-TA host, AD bit from the validating unbound
    let (code, j, err) = live("present.dane.test", &["--resolver", &validating]);
    assert_eq!(code, 0, "{j} {err}");
    assert_eq!(j["resolver"]["mode"], "trust-ad", "{j}");
    assert_eq!(j["mx_status"], "secure");
    let h = &j["hosts"][0];
    assert_eq!(
        (h["host"].as_str(), h["action"].as_str()),
        (Some("mx.dane.test"), Some("dane"))
    );
    assert_eq!(h["tlsa"].as_array().unwrap().len(), 2);
    assert_eq!(h["tls"]["outcome"], "verified", "{j}");
    assert_eq!(h["tls"]["depth"], 0);
    // The same host serving a certificate no TLSA record matches: not verified, exit 1.
    let wrong = impostor().to_string();
    let (code, j, err) = run(&[
        "present.dane.test",
        "--port",
        &wrong,
        "--probe-name",
        "test.",
        "--resolver",
        &validating,
        "--json",
    ]);
    assert_eq!(code, 1, "{j} {err}");
    let h = &j["hosts"][0];
    assert_eq!(h["action"], "dane", "{j}");
    assert_eq!(h["tls"]["outcome"], "no-match", "{j}");
    assert_eq!(h["tls"]["depth"], -1);
    assert_eq!(j["verified"], false);
    // DANE-TA only, validated in-process by hickory through the non-validating unbound
    let (code, j, err) = live(
        "ta.dane.test",
        &["--resolver", &noval, "--trust-anchor", anchors],
    );
    assert_eq!(code, 0, "{j} {err}");
    // the relay's default mode: validating in-process, here from the lab's anchor file
    assert_eq!(j["resolver"]["mode"], "validating", "{j}");
    assert_eq!(j["resolver"]["upstream"][0], noval.as_str(), "{j}");
    assert!(
        j["resolver"]["trust_anchor"]
            .as_str()
            .is_some_and(|t| t.contains(anchors)),
        "{j}"
    );
    assert_eq!(j["hosts"][0]["tls"]["depth"], 1);
    // only unusable records: TLS mandatory, unauthenticated -> not verified
    let (code, j, _) = live("unusable.dane.test", &["--resolver", &validating]);
    assert_eq!(
        (code, j["hosts"][0]["action"].as_str()),
        (1, Some("tls-unauthenticated"))
    );
    // TLSA SERVFAIL under mandatory DANE: defer
    let (code, j, _) = live(
        "servfail.dane.test",
        &["--resolver", &validating, "--setting", "mandatory"],
    );
    assert_eq!((code, j["hosts"][0]["action"].as_str()), (1, Some("defer")));
    assert_eq!(j["hosts"][0]["tlsa_status"], "failed");
    // insecure MX
    let (code, j, _) = live("present.unsigned.test", &["--resolver", &validating]);
    assert_eq!((code, j["mx_status"].as_str()), (1, Some("insecure")));
    // a resolver that does not validate is refused by the start-up probe (status 2)
    let (code, _, err) = live("present.dane.test", &["--resolver", &noval]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot validate"), "{err}");
}
