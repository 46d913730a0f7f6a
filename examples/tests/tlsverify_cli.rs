//! `smtp-tls-check tlsverify` through the built binary, over a CA and leaves made by the
//! `openssl` command line tool (a real, independent certificate issuer) in a temporary directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_smtp-tls-check");

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes `ca.pem` and a leaf `NAME.pem` (subject CN `cn`, SAN `san` if not empty).
fn make_pki(dir: &Path, name: &str, cn: &str, san: &str) -> (PathBuf, PathBuf) {
    if !dir.join("ca.pem").exists() {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "3650",
                "-subj",
                "/CN=Test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
    }
    let mut ext = String::from(
        "basicConstraints=CA:FALSE\nsubjectKeyIdentifier=hash\n\
        authorityKeyIdentifier=keyid\nextendedKeyUsage=serverAuth\n",
    );
    if !san.is_empty() {
        ext.push_str(&format!("subjectAltName={san}\n"));
    }
    std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={cn}"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "365",
            "-out",
            &format!("{name}.pem"),
            "-extfile",
            &format!("{name}.ext"),
        ],
    );
    (dir.join("ca.pem"), dir.join(format!("{name}.pem")))
}

fn run(args: &[&str]) -> (Output, Option<serde_json::Value>) {
    let out = Command::new(BIN)
        .arg("tlsverify")
        .args(args)
        .output()
        .unwrap();
    let json = serde_json::from_slice(&out.stdout).ok();
    (out, json)
}

#[test]
fn verified_chain_prints_the_match() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, leaf) = make_pki(dir.path(), "mx", "mx1.example.net", "DNS:mx1.example.net");
    let (out, json) = run(&[
        "--mode",
        "required-verify",
        "--domain",
        "example.com",
        "--mx",
        "mx1.example.net",
        "--chain",
        leaf.to_str().unwrap(),
        "--ca",
        ca.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = json.unwrap();
    assert_eq!(json["verified"], true);
    assert_eq!(
        json["reference_ids"],
        serde_json::json!(["example.com", "mx1.example.net"])
    );
    assert_eq!(json["matched"]["reference"], "mx1.example.net");
    assert_eq!(json["matched"]["presented"], "CN:mx1.example.net");
    assert!(json["error"].is_null());
    let keys: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
    assert_eq!(
        keys.len(),
        4,
        "exactly verified, reference_ids, matched, error: {keys:?}"
    );
}

#[test]
fn hosted_domains_needs_a_secure_mx() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, leaf) = make_pki(dir.path(), "mx", "mx1.example.net", "DNS:mx1.example.net");
    let base = [
        "--mode",
        "required-verify-hosted-domains",
        "--domain",
        "example.com",
        "--mx",
        "mx1.example.net",
        "--chain",
        leaf.to_str().unwrap(),
        "--ca",
        ca.to_str().unwrap(),
        "--json",
    ];
    let (out, json) = run(&base);
    assert_eq!(out.status.code(), Some(1));
    let json = json.unwrap();
    assert_eq!(json["verified"], false);
    assert_eq!(json["reference_ids"], serde_json::json!(["example.com"]));
    assert!(json["matched"].is_null());
    assert!(
        json["error"].as_str().unwrap().starts_with("identity: "),
        "{json}"
    );
    let mut secure = base.to_vec();
    secure.push("--mx-secure");
    let (out, json) = run(&secure);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(json.unwrap()["matched"]["presented"], "DNS:mx1.example.net");
}

#[test]
fn no_ca_means_no_trust_and_switches_apply() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, leaf) = make_pki(dir.path(), "short", "mailhost", "DNS:mailhost");
    let (out, json) = run(&[
        "--mode",
        "preferred-verify",
        "--domain",
        "mailhost",
        "--chain",
        leaf.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        json.unwrap()["error"]
            .as_str()
            .unwrap()
            .starts_with("trust: ")
    );
    let args = [
        "--mode",
        "preferred-verify",
        "--domain",
        "mailhost",
        "--chain",
        leaf.to_str().unwrap(),
        "--ca",
        ca.to_str().unwrap(),
        "--json",
    ];
    assert_eq!(run(&args).0.status.code(), Some(0));
    let mut fqdn = args.to_vec();
    fqdn.push("--fqdn-check");
    let (out, json) = run(&fqdn);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        json.unwrap()["error"]
            .as_str()
            .unwrap()
            .starts_with("fqdn-check: ")
    );
    // --system-cas trusts Mozilla's list, which does not contain the test CA.
    let (out, json) = run(&[
        "--mode",
        "required-verify",
        "--domain",
        "mailhost",
        "--chain",
        leaf.to_str().unwrap(),
        "--system-cas",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        json.unwrap()["error"]
            .as_str()
            .unwrap()
            .starts_with("chain: ")
    );
}

#[test]
fn x509_check_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, leaf) = make_pki(dir.path(), "mx", "other.example.net", "DNS:example.com");
    let args = [
        "--mode",
        "required-verify",
        "--domain",
        "example.com",
        "--mx",
        "mx1.example.net",
        "--chain",
        leaf.to_str().unwrap(),
        "--ca",
        ca.to_str().unwrap(),
        "--json",
    ];
    assert_eq!(run(&args).0.status.code(), Some(0));
    let mut x509 = args.to_vec();
    x509.push("--x509-check");
    let (out, json) = run(&x509);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        json.unwrap()["error"]
            .as_str()
            .unwrap()
            .starts_with("x509-check: ")
    );
    let mut old = args.to_vec();
    old.extend(["--at", "2001-01-01T00:00:00Z"]);
    let (out, json) = run(&old);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        json.unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("NotValidYet")
    );
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let (_, leaf) = make_pki(dir.path(), "mx", "mx.example.com", "DNS:mx.example.com");
    let leaf = leaf.to_str().unwrap();
    for args in [
        vec![
            "--mode",
            "tls-required",
            "--domain",
            "example.com",
            "--chain",
            leaf,
            "--json",
        ],
        vec![
            "--mode",
            "required-verify",
            "--domain",
            "example.com",
            "--json",
        ],
        vec![
            "--mode",
            "required-verify",
            "--domain",
            "bad name",
            "--chain",
            leaf,
            "--json",
        ],
        vec![
            "--mode",
            "required-verify",
            "--domain",
            "example.com",
            "--chain",
            "/nonexistent.pem",
            "--json",
        ],
        vec![
            "--mode",
            "required-verify",
            "--domain",
            "example.com",
            "--chain",
            leaf,
            "--at",
            "yesterday",
            "--json",
        ],
    ] {
        let (out, json) = run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(json.is_none());
        assert!(
            String::from_utf8_lossy(&out.stderr).starts_with("error: "),
            "{args:?}"
        );
    }
    let (out, _) = run(&[
        "--mode",
        "tls-required",
        "--domain",
        "example.com",
        "--chain",
        leaf,
        "--json",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("required-verify-hosted-domains"));
    let (out, _) = run(&[
        "--mode",
        "required-verify",
        "--domain",
        "example.com",
        "--json",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--chain"));
}
