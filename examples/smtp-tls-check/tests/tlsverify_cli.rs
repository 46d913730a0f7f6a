//! `smtp-tls-check tlsverify` through the built binary, over a CA and leaves made by the
//! `openssl` command line tool (a real, independent certificate issuer) in a temporary directory.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use test_support::openssl;
use test_support::postfix::Postfix;

const BIN: &str = env!("CARGO_BIN_EXE_smtp-tls-check");

/// Makes `ca.pem` and a leaf `NAME.pem` (subject CN `cn`, SAN `san` if not empty).
fn make_pki(dir: &Path, name: &str, cn: &str, san: &str) -> (PathBuf, PathBuf) {
    if !dir.join("ca.pem").exists() {
        openssl::self_signed_ca(dir, "ca.key", "ca.pem", "/CN=Test CA", 3650);
    }
    let mut ext = String::from(
        "basicConstraints=CA:FALSE\nsubjectKeyIdentifier=hash\n\
        authorityKeyIdentifier=keyid\nextendedKeyUsage=serverAuth\n",
    );
    if !san.is_empty() {
        ext.push_str(&format!("subjectAltName={san}\n"));
    }
    std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
    openssl::run(
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
    openssl::run(
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

/// Runs `tlsverify ARGS`: exit status 1 and a JSON `error` of the given kind (`"<kind>: "`).
fn assert_refused(args: &[&str], kind: &str) {
    let (out, json) = run(args);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let json = json.expect("JSON on standard output");
    let error = json["error"].as_str().unwrap_or_default();
    assert!(error.starts_with(kind), "expected {kind:?}, got {error:?}");
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
    assert_refused(
        &[
            "--mode",
            "preferred-verify",
            "--domain",
            "mailhost",
            "--chain",
            leaf.to_str().unwrap(),
            "--json",
        ],
        "trust: ",
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
    assert_refused(&fqdn, "fqdn-check: ");
    // --system-cas trusts Mozilla's list, which does not contain the test CA.
    assert_refused(
        &[
            "--mode",
            "required-verify",
            "--domain",
            "mailhost",
            "--chain",
            leaf.to_str().unwrap(),
            "--system-cas",
            "--json",
        ],
        "chain: ",
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
    assert_refused(&x509, "x509-check: ");
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

/// `openssl req` + `openssl x509 -req`: a key and certificate `NAME.pem` with subject CN `cn`,
/// signed by `ISSUER.pem`/`ISSUER.key`, extensions `ext` (none: an X.509 version 1 certificate)
/// and `extra` signing options (e.g. `-sha1`).
fn sign(dir: &Path, name: &str, cn: &str, issuer: &str, ext: Option<&str>, extra: &[&str]) {
    let (key, csr, pem) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.pem"),
    );
    openssl::run(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &format!("/CN={cn}"),
        ],
    );
    let (issuer_pem, issuer_key, ext_file) = (
        format!("{issuer}.pem"),
        format!("{issuer}.key"),
        format!("{name}.ext"),
    );
    let mut args = vec![
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &issuer_pem,
        "-CAkey",
        &issuer_key,
        "-CAcreateserial",
        "-days",
        "365",
        "-out",
        &pem,
    ];
    if let Some(ext) = ext {
        std::fs::write(dir.join(&ext_file), ext).unwrap();
        args.extend(["-extfile", &ext_file]);
    }
    args.extend(extra);
    openssl::run(dir, &args);
}

const LEAF_EXT: &str = "basicConstraints=CA:FALSE\nsubjectKeyIdentifier=hash\n\
    authorityKeyIdentifier=keyid\nextendedKeyUsage=serverAuth\n";

/// Issue 11, finding 1: a CN used as a DNS identity is held to the dNSName constraints of the
/// validated path — `ca.pem` -> intermediate permitting `allowed.example` -> CN-only leaf —
/// and OpenSSL agrees on the same files.
#[test]
fn cn_outside_the_name_constraints_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ca, _) = make_pki(d, "unused", "unused.example", "");
    sign(
        d,
        "inter",
        "Constrained Intermediate",
        "ca",
        Some(
            "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n\
             subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n\
             nameConstraints=critical,permitted;DNS:allowed.example\n",
        ),
        &[],
    );
    for (name, cn, verified) in [
        ("victim", "mx.victim.example", false),
        ("allowed", "mx.allowed.example", true),
    ] {
        sign(d, name, cn, "inter", Some(LEAF_EXT), &[]);
        let leaf = std::fs::read_to_string(d.join(format!("{name}.pem"))).unwrap();
        let inter = std::fs::read_to_string(d.join("inter.pem")).unwrap();
        let chain = d.join(format!("{name}-chain.pem"));
        std::fs::write(&chain, leaf + &inter).unwrap();
        for mode in ["required-verify", "required-verify-hosted-domains"] {
            let args = [
                "--mode",
                mode,
                "--domain",
                cn,
                "--chain",
                chain.to_str().unwrap(),
                "--ca",
                ca.to_str().unwrap(),
                "--json",
            ];
            if verified {
                let (out, json) = run(&args);
                assert_eq!(out.status.code(), Some(0), "{mode} {cn}: {json:?}");
            } else {
                assert_refused(&args, "chain: ");
                let error = run(&args).1.unwrap()["error"].as_str().unwrap().to_owned();
                assert!(
                    error.contains("mx.victim.example") && error.contains("allowed.example"),
                    "{error}"
                );
            }
        }
        let out = Command::new("openssl")
            .current_dir(d)
            .args(["verify", "-CAfile", "ca.pem", "-untrusted", "inter.pem"])
            .args(["-verify_hostname", cn, &format!("{name}.pem")])
            .output()
            .unwrap();
        assert_eq!(out.status.success(), verified, "openssl on {cn}: {out:?}");
    }
}

/// Issue 11, finding 8: X.509 v1 and SHA-1 chains are always refused, and the error says why
/// (the seed's optional X.509 check cannot enable them).
#[test]
fn v1_and_sha1_leaves_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ca, _) = make_pki(d, "unused", "unused.example", "");
    let ext = format!("{LEAF_EXT}subjectAltName=DNS:mx.example.com\n");
    sign(d, "v1", "mx.example.com", "ca", None, &[]);
    sign(d, "sha1", "mx.example.com", "ca", Some(&ext), &["-sha1"]);
    for (name, expected) in [
        ("v1", "X.509 version 1"),
        ("sha1", "SHA-1 and MD5 signatures are always refused"),
    ] {
        for switch in [None, Some("--x509-check")] {
            let chain = d.join(format!("{name}.pem"));
            let mut args = vec![
                "--mode",
                "required-verify",
                "--domain",
                "mx.example.com",
                "--chain",
                chain.to_str().unwrap(),
                "--ca",
                ca.to_str().unwrap(),
                "--json",
            ];
            args.extend(switch);
            assert_refused(&args, "chain: ");
            let error = run(&args).1.unwrap()["error"].as_str().unwrap().to_owned();
            assert!(
                error.contains(expected) && error.contains("always refused"),
                "{name}: {error}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Live: `tlsverify --connect` against a real Postfix smtpd on loopback (scripts/postfix-lab.sh).

/// A Postfix smtpd: `tls` none | may | encrypt; `cert`/`key` served when tls != none.
fn postfix(tls: &str, cert_key: Option<(&Path, &Path)>) -> Postfix {
    let mut env: Vec<(&str, &OsStr)> = vec![("SMTPD_TLS", tls.as_ref())];
    if let Some((cert, key)) = cert_key {
        env.push(("TLS_CERT", cert.as_os_str()));
        env.push(("TLS_KEY", key.as_os_str()));
    }
    Postfix::start(Postfix::scratch(), &env)
}

/// A test CA and a leaf for `mx.test.example` (openssl), plus the served chain (leaf, CA).
struct LivePki {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    chain: PathBuf,
    key: PathBuf,
}

fn live_pki() -> LivePki {
    let dir = tempfile::tempdir().unwrap();
    let (ca, leaf) = make_pki(dir.path(), "mx", "mx.test.example", "DNS:mx.test.example");
    let chain = dir.path().join("chain.pem");
    let text = std::fs::read_to_string(&leaf).unwrap() + &std::fs::read_to_string(&ca).unwrap();
    std::fs::write(&chain, text).unwrap();
    LivePki {
        key: dir.path().join("mx.key"),
        _dir: dir,
        ca,
        chain,
    }
}

/// Runs a live check; returns (exit status, JSON).
fn live(connect: &str, mode: &str, domain: &str, extra: &[&str]) -> (i32, serde_json::Value) {
    let mut args = vec![
        "--connect",
        connect,
        "--mode",
        mode,
        "--domain",
        domain,
        "--timeout",
        "20",
        "--json",
    ];
    args.extend_from_slice(extra);
    let (out, json) = run(&args);
    let code = out.status.code().unwrap_or(-1);
    let json = json.unwrap_or_else(|| {
        panic!(
            "{args:?}: exit {code}, no JSON; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (code, json)
}

const LIVE_KEYS: [&str; 14] = [
    "action",
    "alert",
    "chain_subjects",
    "cipher",
    "connect",
    "discarded_after_220",
    "ehlo_starttls",
    "error",
    "matched",
    "mode",
    "protocol",
    "reason",
    "reference_ids",
    "verified",
];

fn assert_live_shape(j: &serde_json::Value) {
    let mut keys: Vec<_> = j.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, LIVE_KEYS, "{j}");
}

#[test]
fn live_starttls_offered() {
    let pki = live_pki();
    let lab = postfix("may", Some((&pki.chain, &pki.key)));
    let c = lab.connect();
    let ca = pki.ca.to_str().unwrap();

    // Good certificate, required-verify: verified, continue in TLS, exit 0.
    let (code, j) = live(
        &c,
        "required-verify",
        "test.example",
        &["--mx", "mx.test.example", "--ca", ca],
    );
    assert_eq!(code, 0, "{j}");
    assert_live_shape(&j);
    assert_eq!(j["verified"], true, "{j}");
    assert_eq!(j["action"], "continue-tls");
    assert_eq!(
        j["reference_ids"],
        serde_json::json!(["test.example", "mx.test.example"])
    );
    assert_eq!(j["matched"]["reference"], "mx.test.example");
    assert!(j["error"].is_null() && j["alert"].is_null(), "{j}");
    assert_eq!(j["connect"], c.as_str());
    assert_eq!(j["mode"], "required-verify");
    assert_eq!(j["ehlo_starttls"], true);
    assert_eq!(j["discarded_after_220"], 0);
    assert!(j["protocol"].as_str().unwrap().starts_with("TLSv1_"), "{j}");
    assert!(j["cipher"].as_str().unwrap().contains("_"), "{j}");
    let subjects = j["chain_subjects"].as_array().unwrap();
    assert_eq!(subjects.len(), 2, "{j}");
    assert!(subjects[0].as_str().unwrap().contains("mx.test.example"));
    assert!(subjects[1].as_str().unwrap().contains("Test CA"));
    assert!(
        j["reason"].as_str().unwrap().contains("PkixVerified"),
        "{j}"
    );

    // Hosted domains: an insecure MX is not a reference identity -> defer; secure MX -> verified.
    let args = ["--mx", "mx.test.example", "--ca", ca];
    let (code, j) = live(&c, "required-verify-hosted-domains", "test.example", &args);
    assert_eq!((code, j["action"].as_str()), (1, Some("defer")), "{j}");
    assert_eq!(j["reference_ids"], serde_json::json!(["test.example"]));
    let mut secure = args.to_vec();
    secure.push("--mx-secure");
    let (code, j) = live(
        &c,
        "required-verify-hosted-domains",
        "test.example",
        &secure,
    );
    assert_eq!((code, j["verified"].as_bool()), (0, Some(true)), "{j}");

    // Wrong name: required-verify defers with an alert naming the domain, exit 1 ...
    let (code, j) = live(&c, "required-verify", "other.example", &["--ca", ca]);
    assert_eq!(code, 1, "{j}");
    assert_live_shape(&j);
    assert_eq!(
        (j["verified"].as_bool(), j["action"].as_str()),
        (Some(false), Some("defer"))
    );
    assert!(
        j["error"].as_str().unwrap().starts_with("identity: "),
        "{j}"
    );
    assert!(j["matched"].is_null());
    let alert = j["alert"].as_str().unwrap();
    assert!(alert.contains("domain other.example"), "{alert}");
    assert!(
        j["reason"].as_str().unwrap().contains("NameMismatch"),
        "{j}"
    );
    assert!(j["protocol"].is_string(), "the handshake completed: {j}");
    // ... preferred-verify delivers over TLS and reports the failure (exit 1: not verified) ...
    let (code, j) = live(&c, "preferred-verify", "other.example", &["--ca", ca]);
    assert_eq!(code, 1, "{j}");
    assert_eq!(
        (j["verified"].as_bool(), j["action"].as_str()),
        (Some(false), Some("continue-tls"))
    );
    assert!(j["alert"].is_null());
    assert!(
        j["reason"].as_str().unwrap().contains("FailedButDelivered"),
        "{j}"
    );
    // ... required does not verify: TLS is up, exit 0, the verdict still reported.
    let (code, j) = live(&c, "required", "other.example", &["--ca", ca]);
    assert_eq!(code, 0, "{j}");
    assert_eq!(
        (j["verified"].as_bool(), j["action"].as_str()),
        (Some(false), Some("continue-tls"))
    );
    assert!(
        j["error"].as_str().unwrap().starts_with("identity: "),
        "{j}"
    );

    // Untrusted chain (no CA given): required-verify defers, preferred continues in TLS.
    let (code, j) = live(
        &c,
        "required-verify",
        "test.example",
        &["--mx", "mx.test.example"],
    );
    assert_eq!((code, j["action"].as_str()), (1, Some("defer")), "{j}");
    assert!(j["error"].as_str().unwrap().starts_with("trust: "), "{j}");
    let (code, j) = live(
        &c,
        "preferred",
        "test.example",
        &["--mx", "mx.test.example"],
    );
    assert_eq!(
        (code, j["action"].as_str()),
        (0, Some("continue-tls")),
        "{j}"
    );

    // Mode no: STARTTLS is offered but not used.
    let (code, j) = live(&c, "no", "test.example", &[]);
    assert_eq!(
        (code, j["action"].as_str()),
        (1, Some("continue-plaintext")),
        "{j}"
    );
    assert!(j["protocol"].is_null() && j["chain_subjects"] == serde_json::json!([]));
    assert!(
        j["error"].as_str().unwrap().starts_with("not-checked: "),
        "{j}"
    );
}

#[test]
fn live_starttls_not_offered() {
    let lab = postfix("none", None);
    let c = lab.connect();
    for mode in [
        "required",
        "required-verify",
        "required-verify-hosted-domains",
    ] {
        let (code, j) = live(&c, mode, "test.example", &[]);
        assert_eq!(code, 1, "{j}");
        assert_live_shape(&j);
        assert_eq!(j["action"], "defer", "{mode}: {j}");
        assert_eq!(j["ehlo_starttls"], false);
        assert_eq!(j["reason"], "STARTTLS not advertised in EHLO reply", "{j}");
        assert_eq!(
            j["alert"],
            "required TLS connection to domain test.example failed: \
             STARTTLS not advertised in EHLO reply"
        );
        assert_eq!(j["verified"], false);
        assert!(j["protocol"].is_null());
    }
    for mode in ["preferred", "preferred-verify"] {
        let (code, j) = live(&c, mode, "test.example", &[]);
        assert_eq!(code, 1, "{j}");
        assert_eq!(j["action"], "continue-plaintext", "{mode}: {j}");
        assert!(j["alert"].is_null());
        assert_eq!(j["ehlo_starttls"], false);
    }
}

#[test]
fn live_connection_refused_is_a_defer_verdict() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let c = format!("127.0.0.1:{port}");
    for mode in ["required-verify", "preferred"] {
        let (code, j) = live(&c, mode, "test.example", &[]);
        assert_eq!(code, 1, "{j}");
        assert_live_shape(&j);
        assert_eq!(j["action"], "defer");
        assert!(j["reason"].as_str().unwrap().contains("connect"), "{j}");
        assert!(j["alert"].is_null());
        assert_eq!(j["reference_ids"], serde_json::json!(["test.example"]));
    }
}

#[test]
fn live_usage_errors_exit_2() {
    for args in [
        // both sources
        vec!["--connect", "127.0.0.1:2525", "--chain", "x.pem"],
        // neither
        vec![],
        // bad HOST:PORT
        vec!["--connect", "127.0.0.1"],
        vec!["--connect", "127.0.0.1:0"],
        // a host that does not resolve
        vec!["--connect", "no-such-host.invalid:2525"],
        // bad timeout
        vec!["--connect", "127.0.0.1:2525", "--timeout", "0"],
    ] {
        let mut a = vec!["--mode", "required", "--domain", "example.com", "--json"];
        a.extend(args.iter());
        let (out, json) = run(&a);
        assert_eq!(out.status.code(), Some(2), "{a:?}");
        assert!(json.is_none(), "{a:?}");
    }
    let (out, _) = run(&[
        "--connect",
        "127.0.0.1:2525",
        "--mode",
        "tls",
        "--domain",
        "example.com",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("preferred-verify"));
}
