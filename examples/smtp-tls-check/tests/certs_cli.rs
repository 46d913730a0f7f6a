//! `smtp-tls-check certs` through the built binary.

use std::path::Path;
use std::process::{Command, Output};

fn certs(store: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_smtp-tls-check"))
        .arg("certs")
        .arg("--store")
        .arg(store)
        .args(args)
        .output()
        .unwrap()
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn create_list_csr_tlsa_and_p12_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let made = json(&certs(
        &store,
        &[
            "create-self-signed",
            "--name",
            "mx",
            "--cn",
            "mx.example.com",
            "--san",
            "mx.example.com",
            "--country",
            "SE",
            "--org",
            "Example AB",
            "--days",
            "10",
            "--fqdn-check",
            "--json",
        ],
    ));
    assert_eq!(made["days_left"], 9);
    let list = json(&certs(&store, &["list", "--json"]));
    let names: Vec<&str> = list["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["demo", "mx"]);
    let expiring = certs(&store, &["list", "--expiring-within", "30", "--json"]);
    assert_eq!(expiring.status.code(), Some(1));
    let csr = certs(&store, &["csr", "--name", "mx"]);
    assert!(
        String::from_utf8_lossy(&csr.stdout).starts_with("-----BEGIN CERTIFICATE REQUEST-----")
    );
    let tlsa = json(&certs(
        &store,
        &["tlsa", "--name", "mx", "--host", "mx.example.com", "--json"],
    ));
    let line = tlsa["records"][0].as_str().unwrap();
    assert!(
        line.starts_with("_25._tcp.mx.example.com. IN TLSA 3 1 1 "),
        "{line}"
    );

    std::fs::write(tmp.path().join("pw"), "secret words\n").unwrap();
    let p12 = tmp.path().join("mx.p12");
    let pw = tmp.path().join("pw");
    let out = certs(
        &store,
        &[
            "export-p12",
            "--name",
            "mx",
            "--file",
            p12.to_str().unwrap(),
            "--passphrase-file",
            pw.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("secret words"));
    let back = json(&certs(
        &store,
        &[
            "import-p12",
            "--name",
            "copy",
            "--file",
            p12.to_str().unwrap(),
            "--passphrase-file",
            pw.to_str().unwrap(),
            "--json",
        ],
    ));
    assert_eq!(back["sha256"], made["sha256"]);
    std::fs::write(tmp.path().join("bad"), "wrong\n").unwrap();
    let bad = tmp.path().join("bad");
    let out = certs(
        &store,
        &[
            "import-p12",
            "--name",
            "x",
            "--file",
            p12.to_str().unwrap(),
            "--passphrase-file",
            bad.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong passphrase"));
}

#[test]
fn errors_exit_2_with_a_message() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    for (args, needle) in [
        (
            vec![
                "create-self-signed",
                "--name",
                "x",
                "--cn",
                "x.example.com",
                "--key",
                "rsa-1024",
            ],
            "at least 2048",
        ),
        (
            vec![
                "create-self-signed",
                "--name",
                "x",
                "--cn",
                "localhost",
                "--fqdn-check",
            ],
            "fully qualified",
        ),
        (
            vec![
                "create-self-signed",
                "--name",
                "x",
                "--cn",
                "a.example",
                "--country",
                "Sweden",
            ],
            "country",
        ),
        (vec!["csr", "--name", "nope"], "no certificate named"),
        (
            vec!["ca", "disable", "system"],
            "no certificate authority list",
        ),
    ] {
        let out = certs(&store, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn ca_lists_import_export_and_truncated_store() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let sys = tmp.path().join("system.pem");
    json(&certs(
        &store,
        &[
            "ca",
            "export",
            "system",
            "--file",
            sys.to_str().unwrap(),
            "--json",
        ],
    ));
    let text = std::fs::read_to_string(&sys).unwrap();
    let count = text.matches("-----BEGIN CERTIFICATE-----").count();
    assert!(count > 100);
    // A custom list with one bad entry is refused, naming its position; --skip-bad loads the rest.
    let custom = tmp.path().join("custom.pem");
    let first_two: String = text
        .split_inclusive("-----END CERTIFICATE-----\n")
        .take(2)
        .collect();
    std::fs::write(
        &custom,
        format!("{first_two}-----BEGIN CERTIFICATE-----\nAAAA\n"),
    )
    .unwrap();
    let out = certs(&store, &["ca", "import", custom.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("entry 3"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = json(&certs(
        &store,
        &[
            "ca",
            "import",
            custom.to_str().unwrap(),
            "--skip-bad",
            "--json",
        ],
    ));
    assert_eq!(status["custom"]["certificates"], 2);
    json(&certs(&store, &["ca", "enable", "custom", "--json"]));
    let status = json(&certs(&store, &["ca", "disable", "system", "--json"]));
    assert_eq!(status["system"]["enabled"], false);
    // Crash safety: a truncated file is reported with its name.
    let path = store.join("ca/custom.pem");
    let data = std::fs::read(&path).unwrap();
    std::fs::write(&path, &data[..data.len() / 3]).unwrap();
    let out = certs(&store, &["ca", "status"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("custom.pem"));
}

/// `assign --https-listener` (the relay's MTA-STS policy host) records the certificate in the
/// HTTPS listeners' own namespace, shown by `list`.
#[test]
fn assign_to_an_https_listener() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    json(&certs(
        &store,
        &[
            "create-self-signed",
            "--name",
            "sts",
            "--cn",
            "mta-sts.example.com",
            "--json",
        ],
    ));
    let assigned = json(&certs(
        &store,
        &[
            "assign",
            "--name",
            "sts",
            "--https-listener",
            "policy",
            "--json",
        ],
    ));
    assert_eq!(assigned["assigned_to"], "https listener policy");
    json(&certs(
        &store,
        &["assign", "--name", "demo", "--listener", "policy", "--json"],
    ));
    let list = json(&certs(&store, &["list", "--json"]));
    let entry = |name: &str| {
        list["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(
        entry("sts")["https_listeners"],
        serde_json::json!(["policy"])
    );
    assert_eq!(entry("sts")["listeners"], serde_json::json!([]));
    assert_eq!(entry("demo")["listeners"], serde_json::json!(["policy"]));
    assert_eq!(entry("demo")["https_listeners"], serde_json::json!([]));
    let s = cert_store::CertStore::open(&store).unwrap();
    assert_eq!(s.https_listener_certificate("policy"), Some("sts"));
    assert_eq!(s.listener_certificate("policy"), Some("demo"));

    for (args, needle) in [
        (
            vec!["assign", "--name", "nope", "--https-listener", "policy"],
            "nope",
        ),
        (
            vec![
                "assign",
                "--name",
                "sts",
                "--https-listener",
                "policy",
                "--listener",
                "x",
            ],
            "cannot be used with",
        ),
        (vec!["assign", "--name", "sts"], "required"),
    ] {
        let out = certs(&store, &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}
