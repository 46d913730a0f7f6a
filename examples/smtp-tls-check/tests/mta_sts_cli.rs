//! `smtp-tls-check mta-sts DOMAIN`, run as the built binary against the project's DNSSEC lab
//! (its `_mta-sts` TXT records and `mta-sts.D A 127.0.0.1`, `test_support::dnssec_lab::sts`)
//! and the loopback HTTPS policy server (`test_support::policy_server`) on `--policy-port`,
//! with a certificate from a test CA passed as `--ca`. Every lookup goes through `--resolver`
//! (the lab's validating unbound).

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use test_support::dnssec_lab::{Lab, sts};
use test_support::pki;
use test_support::policy_server::{PolicyResponse, PolicyServer, policy_text};

mod common;

/// A domain of the lab's insecure zone without `_mta-sts` TXT record.
const NO_TXT: &str = "unsigned.test";

fn run(args: &[&str]) -> (i32, Value, String, String) {
    common::run_command("mta-sts", args)
}

/// The lab, the policy server (trusted by `ca_file`) and the common options.
struct Setup {
    _lab: Lab,
    server: PolicyServer,
    _dir: tempfile::TempDir,
    ca_file: String,
    resolver: String,
}

impl Setup {
    fn start() -> Self {
        let lab = Lab::start();
        let (server, dir, ca_file) =
            common::sts_server(&[sts::MULTI, sts::SPLIT, sts::BOGUS, NO_TXT]);
        Self {
            resolver: lab.validating().to_string(),
            _lab: lab,
            server,
            _dir: dir,
            ca_file,
        }
    }

    /// `mta-sts DOMAIN --resolver R --ca CA --policy-port P --json EXTRA...`
    fn check(&self, domain: &str, extra: &[&str]) -> (i32, Value, String) {
        self.check_port(domain, self.server.port(), extra)
    }

    fn check_port(&self, domain: &str, port: u16, extra: &[&str]) -> (i32, Value, String) {
        let port = port.to_string();
        let mut v = vec![
            domain,
            "--resolver",
            &self.resolver,
            "--ca",
            &self.ca_file,
            "--policy-port",
            &port,
            "--json",
        ];
        v.extend_from_slice(extra);
        let (code, j, out, err) = run(&v);
        assert!(j.is_object(), "no JSON: {out} {err}");
        (code, j, err)
    }
}

fn error_of(j: &Value) -> String {
    j["error"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn mta_sts_statuses_against_the_lab() {
    let s = Setup::start();
    s.server.set(
        sts::INSECURE,
        PolicyResponse::enforce(&["*.unsigned.test", "mx.backup.example"], 86400),
    );

    // valid enforce; --mx listed, and not listed with the matcher's reason
    let (code, j, err) = s.check(
        sts::INSECURE,
        &["--mx", "mx.unsigned.test", "--mx", "a.b.unsigned.test"],
    );
    assert_eq!(code, 0, "{j:#} {err}");
    assert_eq!(
        j,
        json!({
            "domain": sts::INSECURE,
            "status": "valid",
            "txt": {"id": sts::INSECURE_ID},
            "policy": {"mode": "enforce", "max_age": 86400,
                       "mx": ["*.unsigned.test", "mx.backup.example"]},
            "mx": [
                {"host": "mx.unsigned.test", "allowed": true},
                {"host": "a.b.unsigned.test", "allowed": false,
                 "reason": j["mx"][1]["reason"].clone()},
            ],
            "error": null,
        })
    );
    let reason = j["mx"][1]["reason"].as_str().unwrap();
    assert!(
        reason.contains("pattern matches one label; host has two"),
        "{reason}"
    );
    // the request named the policy host by SNI and Host, at the well-known path
    let seen = s.server.requests();
    let last = seen.last().unwrap();
    assert_eq!(last.sni.as_deref(), Some("mta-sts.sts.unsigned.test"));
    assert_eq!(last.host.as_deref(), Some("mta-sts.sts.unsigned.test"));
    assert_eq!(last.path, "/.well-known/mta-sts.txt");

    // a trailing dot and upper case change nothing (URL, key, verdict)
    let (code2, j2, _) = s.check(
        "STS.Unsigned.Test.",
        &["--mx", "mx.unsigned.test", "--mx", "a.b.unsigned.test"],
    );
    assert_eq!((code2, &j2), (0, &j));
    assert_eq!(
        s.server.requests().last().unwrap().host.as_deref(),
        Some("mta-sts.sts.unsigned.test")
    );

    // no _mta-sts TXT record: none, nothing fetched
    let before = s.server.hits(NO_TXT);
    let (code, j, _) = s.check(NO_TXT, &["--mx", "mx.unsigned.test"]);
    assert_eq!(code, 1, "{j:#}");
    assert_eq!(j["status"], "none");
    assert_eq!(j["txt"], Value::Null);
    assert_eq!(j["policy"], Value::Null);
    assert_eq!(
        j["mx"],
        json!([{"host": "mx.unsigned.test", "allowed": true}])
    );
    assert_eq!(s.server.hits(NO_TXT), before);

    // two v=STSv1 records: none
    s.server.set(
        sts::MULTI,
        PolicyResponse::enforce(&["mx.unsigned.test"], 600),
    );
    let (code, j, _) = s.check(sts::MULTI, &[]);
    assert_eq!((code, j["status"].as_str()), (1, Some("none")), "{j:#}");
    assert!(error_of(&j).contains("2 v=STSv1"), "{j:#}");
    assert_eq!(s.server.hits(sts::MULTI), 0);

    // one record of two character-strings: joined, valid
    s.server.set(
        sts::SPLIT,
        PolicyResponse::enforce(&["mx.unsigned.test"], 600),
    );
    let (code, j, _) = s.check(sts::SPLIT, &[]);
    assert_eq!(code, 0, "{j:#}");
    assert_eq!(j["status"], "valid");
    assert_eq!(j["txt"], json!({"id": "split1"}));

    // DNSSEC-bogus TXT: fetch-error (a temporary failure, never "no record")
    s.server.set(
        sts::BOGUS,
        PolicyResponse::enforce(&["mx.unsigned.test"], 600),
    );
    let (code, j, _) = s.check(sts::BOGUS, &[]);
    assert_eq!(code, 1, "{j:#}");
    assert_eq!(j["status"], "fetch-error");
    assert_eq!(j["policy"], Value::Null);
    assert!(error_of(&j).contains("_mta-sts.sts.broken.test"), "{j:#}");

    // 404: fetch-error
    s.server.set(sts::FETCHFAIL, PolicyResponse::status(404));
    let (code, j, _) = s.check(sts::FETCHFAIL, &[]);
    assert_eq!(code, 1, "{j:#}");
    assert_eq!(j["status"], "fetch-error");
    assert_eq!(j["txt"], json!({"id": "20261204T4"}));
    assert!(error_of(&j).starts_with("sts-policy-fetch-error"), "{j:#}");
    assert!(error_of(&j).contains("404"), "{j:#}");

    // a redirect is not followed: fetch-error
    s.server.set(
        sts::FETCHFAIL,
        PolicyResponse::redirect("https://mta-sts.sts.unsigned.test/.well-known/mta-sts.txt"),
    );
    let (_, j, _) = s.check(sts::FETCHFAIL, &[]);
    assert_eq!(j["status"], "fetch-error", "{j:#}");

    // a body over 64 KiB: fetch-error
    s.server
        .set(sts::FETCHFAIL, PolicyResponse::oversize(70 * 1024));
    let (_, j, _) = s.check(sts::FETCHFAIL, &[]);
    assert_eq!(j["status"], "fetch-error", "{j:#}");
    assert!(error_of(&j).contains("larger than 65536"), "{j:#}");

    // wrong content type: fetch-error
    s.server.set(
        sts::TESTING,
        PolicyResponse::enforce(&["mx.unsigned.test"], 600).with_content_type(Some("text/html")),
    );
    let (code, j, _) = s.check(sts::TESTING, &[]);
    assert_eq!(
        (code, j["status"].as_str()),
        (1, Some("fetch-error")),
        "{j:#}"
    );
    assert!(error_of(&j).contains("text/html"), "{j:#}");

    // mode none is a valid policy
    s.server.set(
        sts::TESTING,
        PolicyResponse::policy(&policy_text("none", &[], 600)),
    );
    let (code, j, _) = s.check(sts::TESTING, &["--mx", "anything.example"]);
    assert_eq!(code, 0, "{j:#}");
    assert_eq!(j["policy"]["mode"], "none");
    assert_eq!(
        j["mx"],
        json!([{"host": "anything.example", "allowed": true}])
    );

    // enforce with a `nmx:` typo and no mx line: invalid, never an empty constraint
    s.server.set(
        sts::NOMATCH,
        PolicyResponse::policy(
            "version: STSv1\nmode: enforce\nnmx: mx.unsigned.test\nmax_age: 600\n",
        ),
    );
    let (code, j, _) = s.check(sts::NOMATCH, &["--mx", "mx.unsigned.test"]);
    assert_eq!(code, 1, "{j:#}");
    assert_eq!(j["status"], "fetch-error");
    assert_eq!(j["policy"], Value::Null);
    assert!(error_of(&j).starts_with("sts-policy-invalid"), "{j:#}");
    assert_eq!(
        j["mx"],
        json!([{"host": "mx.unsigned.test", "allowed": true}])
    );

    // an untrusted certificate (self-signed for the right name): fetch-error
    let untrusted =
        PolicyServer::start_with_cert(&pki::self_signed(&["mta-sts.sts.unsigned.test".to_owned()]));
    untrusted.set(
        sts::INSECURE,
        PolicyResponse::enforce(&["*.unsigned.test"], 600),
    );
    let (code, j, _) = s.check_port(sts::INSECURE, untrusted.port(), &[]);
    assert_eq!(code, 1, "{j:#}");
    assert_eq!(j["status"], "fetch-error");
    assert!(error_of(&j).starts_with("sts-webpki-invalid"), "{j:#}");
    assert_eq!(
        untrusted.requests(),
        vec![],
        "no request after a refused handshake"
    );

    // the trusted CA not given: Mozilla's list alone does not trust the test CA
    let port = s.server.port().to_string();
    let (code, j, _, _) = run(&[
        sts::INSECURE,
        "--resolver",
        &s.resolver,
        "--policy-port",
        &port,
        "--json",
    ]);
    assert_eq!(
        (code, j["status"].as_str()),
        (1, Some("fetch-error")),
        "{j:#}"
    );
}

#[test]
fn cache_dir_then_purge() {
    let s = Setup::start();
    s.server.set(
        sts::INSECURE,
        PolicyResponse::enforce(&["*.unsigned.test"], 3600),
    );
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path().display().to_string();
    let (code, j, _) = s.check(sts::INSECURE, &["--cache-dir", &dir]);
    assert_eq!(code, 0, "{j:#}");
    assert_eq!(j["cache"]["id"], sts::INSECURE_ID);
    assert_eq!(
        j["cache"]["source"],
        "https://mta-sts.sts.unsigned.test/.well-known/mta-sts.txt"
    );
    assert!(j["cache"]["age_secs"].as_u64().unwrap() <= 2, "{j:#}");
    let expires = j["cache"]["expires_in_secs"].as_u64().unwrap();
    assert!((3598..=3600).contains(&expires), "{j:#}");
    assert_eq!(s.server.hits(sts::INSECURE), 1);
    assert!(Path::new(&dir).join("sts.unsigned.test.json").is_file());

    // same id: the cached policy is used, nothing fetched — even if the server now fails
    s.server.set(sts::INSECURE, PolicyResponse::status(500));
    let (code, j, _) = s.check("sts.unsigned.test.", &["--cache-dir", &dir]);
    assert_eq!(code, 0, "{j:#}");
    assert_eq!(j["policy"]["mx"], json!(["*.unsigned.test"]));
    assert_eq!(s.server.hits(sts::INSECURE), 1);

    // purge (text and JSON), then the next run fetches again (and now sees the failure)
    let (code, _, out, err) = run(&[sts::INSECURE, "--cache-dir", &dir, "--purge"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("removed the cached MTA-STS policy of sts.unsigned.test (id 20261204T1)"),
        "{out}"
    );
    assert!(!Path::new(&dir).join("sts.unsigned.test.json").exists());
    let (code, j, _, _) = run(&[sts::INSECURE, "--cache-dir", &dir, "--purge", "--json"]);
    assert_eq!(code, 0);
    assert_eq!(
        j,
        json!({"domain": sts::INSECURE, "purged": false, "id": null})
    );
    let (code, j, _) = s.check(sts::INSECURE, &["--cache-dir", &dir]);
    assert_eq!(
        (code, j["status"].as_str()),
        (1, Some("fetch-error")),
        "{j:#}"
    );
    assert_eq!(j["cache"], Value::Null);
    assert_eq!(s.server.hits(sts::INSECURE), 2);
}

#[test]
fn text_output_prints_the_txt_record_to_publish() {
    let s = Setup::start();
    s.server.set(
        sts::SPLIT,
        PolicyResponse::enforce(&["mx.unsigned.test"], 600),
    );
    let port = s.server.port().to_string();
    let (code, _, out, err) = run(&[
        sts::SPLIT,
        "--resolver",
        &s.resolver,
        "--ca",
        &s.ca_file,
        "--policy-port",
        &port,
    ]);
    assert_eq!(code, 0, "{out} {err}");
    assert!(out.starts_with("sts-split.unsigned.test: valid"), "{out}");
    assert!(
        out.contains("_mta-sts.sts-split.unsigned.test. IN TXT \"v=STSv1; id=split1\""),
        "{out}"
    );
    assert!(out.contains("publish a new id"), "{out}");
}

#[test]
fn bad_input_exits_2() {
    for args in [
        &["bad..domain", "--json"][..],
        &["example.com", "--mx", "", "--json"],
        &["example.com", "--mx", "a..b", "--json"],
        &["example.com", "--purge", "--json"],
        &["example.com", "--policy-port", "70000"],
        &[
            "example.com",
            "--ca",
            "/nonexistent/ca.pem",
            "--resolver",
            "127.0.0.1:1",
        ],
    ] {
        let (code, j, out, err) = run(args);
        assert_eq!(code, 2, "{args:?}: {out} {err}");
        assert_eq!(j, Value::Null, "{args:?}: no JSON on bad input");
        assert!(!err.is_empty(), "{args:?}");
    }
    let help = Command::new(env!("CARGO_BIN_EXE_smtp-tls-check"))
        .args(["mta-sts", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for word in [
        "fetch-error",
        "--policy-port",
        "--cache-dir",
        "--purge",
        "expires_in_secs",
    ] {
        assert!(help.contains(word), "--help lacks {word}: {help}");
    }
}
