//! `smtp-tls-check policy DOMAIN`: the hop plan per MX host from live DNS, run as the built
//! binary against the project's DNSSEC lab (scripts/dnssec-lab.sh, its zone data listed in the
//! script's header; own ports, stopped by PID in Drop). No connection is made: nothing listens
//! on the MX hosts' port.

use std::process::Command;

use serde_json::{Value, json};
use test_support::dnssec_lab::{Lab, sts};
use test_support::pki::TestCa;
use test_support::policy_server::{PolicyResponse, PolicyServer, policy_text};

/// The lab's `SMTP_PORT`: TLSA `3 1 1` (leaf key only) also published at
/// `_2525._tcp.mx.dane.test`. Nothing listens there; it only changes the zone data.
const LAB_SMTP_PORT: &str = "2525";

fn run(args: &[&str]) -> (i32, Value, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_smtp-tls-check"))
        .arg("policy")
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let json = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
    (
        out.status.code().unwrap_or(-1),
        json,
        stdout,
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// The lab's resolvers as `policy` options.
struct Dns {
    /// `--resolver` the validating unbound (trust its AD bit).
    trust_ad: Vec<String>,
    /// In-process validation (hickory) from the lab's anchor, through the non-validating
    /// unbound.
    in_process: Vec<String>,
    /// `--resolver` the non-validating unbound, trusted for an AD bit it never sets.
    not_validating: Vec<String>,
}

impl Dns {
    fn of(lab: &Lab) -> Self {
        let probe = ["--probe-name".to_string(), "test.".into()];
        let with = |v: &[String]| [v, &probe[..], &["--json".to_string()]].concat();
        let noval = lab.non_validating().to_string();
        Self {
            trust_ad: with(&["--resolver".into(), lab.validating().to_string()]),
            in_process: with(&[
                "--resolver".into(),
                noval.clone(),
                "--trust-anchor".into(),
                lab.trust_anchor_file().display().to_string(),
            ]),
            not_validating: with(&["--resolver".into(), noval]),
        }
    }
}

fn policy(domain: &str, dns: &[String], extra: &[&str]) -> (i32, Value, String) {
    let mut v = vec![domain];
    v.extend(dns.iter().map(String::as_str));
    v.extend_from_slice(extra);
    let (code, j, _, err) = run(&v);
    (code, j, err)
}

fn plan(j: &Value, i: usize) -> &Value {
    &j["hosts"][i]["plan"]
}

/// A plan with its TLSA records sorted (the RRset's order is the resolver's).
fn sorted_records(p: &Value) -> Value {
    let mut p = p.clone();
    if let Some(records) = p["dane"]["records"].as_array_mut() {
        records.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
    }
    p
}

/// Secure MX, secure addresses, usable TLSA records: DANE decides, whatever the TLS mode.
#[test]
fn dane_decides_for_secure_hosts_with_tlsa() {
    let lab = Lab::start_with_smtp_port(LAB_SMTP_PORT.parse().unwrap());
    let dns = Dns::of(&lab);
    let ee = format!("3 1 1 {}", lab.var("SPKI_SHA256"));
    let ta = format!("2 1 1 {}", lab.var("CA_SPKI_SHA256"));

    let (code, j, err) = policy("Present.DANE.test.", &dns.trust_ad, &[]);
    assert_eq!(code, 0, "{j} {err}");
    assert_eq!(j["domain"], "present.dane.test");
    assert_eq!(
        j["policy"],
        json!({"domain": "present.dane.test", "matched": "default", "entry": null,
               "tls_mode": "preferred", "dane": "opportunistic"})
    );
    assert_eq!(j["resolver"]["mode"], "trust-ad");
    assert_eq!(
        (&j["validation"], &j["mx_status"], &j["error"]),
        (&json!("validating"), &json!("secure"), &Value::Null)
    );
    assert_eq!(j["authenticated"], true);
    assert_eq!(j["hosts"].as_array().unwrap().len(), 1, "{j}");
    assert_eq!(j["hosts"][0]["host"], "mx.dane.test");
    let p = plan(&j, 0);
    assert_eq!(p["pre_connect"]["action"], "connect");
    assert_eq!(p["requirement"], "dane");
    assert_eq!(p["authentication"], "dane");
    assert_eq!(p["decided_by"], "dane", "{p}");
    assert_eq!(p["sni"], "mx.dane.test");
    assert_eq!(p["dane"]["action"], "dane");
    assert_eq!(sorted_records(p)["dane"]["records"], json!([ta, ee]));
    assert_eq!(
        p["dnssec"],
        json!({"mx": "secure", "address": "secure", "tlsa": "secure", "tlsa_lookup": "found",
               "tlsa_base": "mx.dane.test"})
    );
    assert_eq!(
        p["reference_ids"]["dane"],
        json!(["mx.dane.test", "present.dane.test"])
    );
    assert_eq!(
        p["reference_ids"]["pkix"],
        json!(["present.dane.test", "mx.dane.test"])
    );
    assert_eq!(
        (&p["plaintext"]["permitted"], &p["plaintext"]["reason"]),
        (&json!(false), &json!("dane"))
    );
    let rule = p["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["source"] == "dane")
        .expect("a DANE rule");
    assert_eq!(rule["effect"], "authenticates");

    // The same through in-process validation (the default mode): same plan.
    let (code, k, err) = policy("present.dane.test", &dns.in_process, &[]);
    assert_eq!(code, 0, "{k} {err}");
    assert_eq!(k["resolver"]["mode"], "validating");
    assert_eq!(sorted_records(plan(&k, 0)), sorted_records(plan(&j, 0)));

    // DANE-only host: TLSA 2 1 1 of the lab's private CA (no public PKIX path).
    let (code, j, err) = policy("ta.dane.test", &dns.trust_ad, &[]);
    assert_eq!(code, 0, "{j} {err}");
    let p = plan(&j, 0);
    assert_eq!(p["dane"]["records"], json!([ta]));
    assert_eq!(
        p["reference_ids"]["dane"],
        json!(["mx-ta.dane.test", "ta.dane.test"])
    );
    // TLS no: DANE is never used, plaintext permitted, exit 1.
    let dir = tempfile::tempdir().unwrap();
    let no_tls = dir.path().join("no.toml");
    std::fs::write(&no_tls, "[destinations.\"ta.dane.test\"]\ntls = \"no\"\n").unwrap();
    let (code, j, err) = policy(
        "ta.dane.test",
        &dns.trust_ad,
        &["--destinations", no_tls.to_str().unwrap()],
    );
    assert_eq!(code, 1, "{j} {err}");
    assert_eq!(
        j["policy"],
        json!({"domain": "ta.dane.test", "matched": "exact", "entry": "ta.dane.test",
               "tls_mode": "no", "dane": "none"})
    );
    let p = plan(&j, 0);
    assert_eq!(
        (&p["requirement"], &p["authentication"]),
        (&json!("plaintext"), &json!("none"))
    );
    assert_eq!(p["plaintext"]["permitted"], true);
    assert_eq!(p["decided_by"], "destination-control");
    assert_eq!(j["authenticated"], false);

    // CNAME'd MX host, TLSA at the expanded name (RFC 7672 2.2.2): SNI and the first DANE
    // reference name are the expanded name.
    let (code, j, err) = policy("cname6.dane.test", &dns.trust_ad, &[]);
    assert_eq!(code, 0, "{j} {err}");
    assert_eq!(j["hosts"][0]["host"], "alias6.dane.test");
    let p = plan(&j, 0);
    assert_eq!(p["sni"], "mx6-target.dane.test");
    assert_eq!(p["dnssec"]["tlsa_base"], "mx6-target.dane.test");
    assert_eq!(
        p["reference_ids"]["dane"],
        json!([
            "mx6-target.dane.test",
            "alias6.dane.test",
            "cname6.dane.test"
        ])
    );

    // Two MX hosts: one plan each, in preference order; `--mx` plans only the one named.
    let (code, j, err) = policy("two.dane.test", &dns.trust_ad, &[]);
    assert_eq!(code, 0, "{j} {err}");
    let hosts: Vec<&str> = j["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["host"].as_str().unwrap())
        .collect();
    assert_eq!(hosts, ["mx.dane.test", "mx-ta.dane.test"]);
    let (code, j, err) = policy(
        "two.dane.test",
        &dns.trust_ad,
        &["--mx", "MX-TA.dane.test."],
    );
    assert_eq!(code, 0, "{j} {err}");
    assert_eq!(j["hosts"].as_array().unwrap().len(), 1, "{j}");
    assert_eq!(j["hosts"][0]["host"], "mx-ta.dane.test");
    // `--mx` naming no MX host of the domain: bad input.
    let (code, j, err) = policy(
        "two.dane.test",
        &dns.trust_ad,
        &["--mx", "mx-absent.dane.test"],
    );
    assert_eq!((code, j), (2, Value::Null));
    assert!(err.contains("not an MX host of two.dane.test"), "{err}");

    // `--port`: TLSA records are sought at _PORT._tcp.HOST.
    let (code, j, err) = policy(
        "present.dane.test",
        &dns.trust_ad,
        &["--port", LAB_SMTP_PORT],
    );
    assert_eq!(code, 0, "{j} {err}");
    assert_eq!(plan(&j, 0)["dane"]["records"], json!([ee]));
    let (code, j, err) = policy("present.dane.test", &dns.trust_ad, &["--port", "2526"]);
    assert_eq!(code, 1, "{j} {err}");
    let p = plan(&j, 0);
    assert_eq!(
        (&p["dane"]["action"], &p["dane"]["reason"]),
        (&json!("configured-tls"), &json!("no-tlsa"))
    );
    assert_eq!(p["dnssec"]["tlsa_lookup"], "not-found");
    assert_eq!(p["requirement"], "opportunistic");

    // Text output: one line per host.
    let mut v = vec!["two.dane.test"];
    v.extend(
        dns.trust_ad
            .iter()
            .map(String::as_str)
            .filter(|a| *a != "--json"),
    );
    let (code, j, out, err) = run(&v);
    assert_eq!((code, j), (0, Value::Null), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with("mx.dane.test: connect, requirement dane, authentication dane"),
        "{out}"
    );
    assert!(lines[1].starts_with("mx-ta.dane.test: connect"), "{out}");
}

/// Insecure MX (unsigned.test): no DANE; opportunistic TLS is unauthenticated, required-verify
/// authenticates by PKIX, mandatory DANE defers.
#[test]
fn insecure_delegation_gives_pkix_or_nothing() {
    let lab = Lab::start();
    let dns = Dns::of(&lab);
    let dir = tempfile::tempdir().unwrap();
    let controls = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    };

    // The default entry: TLS preferred, no DANE possible -> unauthenticated, exit 1.
    let (code, j, err) = policy("present.unsigned.test", &dns.trust_ad, &[]);
    assert_eq!(code, 1, "{j} {err}");
    assert_eq!(j["mx_status"], "insecure");
    assert_eq!(j["authenticated"], false);
    let p = plan(&j, 0);
    assert_eq!(j["hosts"][0]["host"], "mx.dane.test");
    assert_eq!(p["pre_connect"]["action"], "connect");
    assert_eq!(
        (&p["requirement"], &p["authentication"]),
        (&json!("opportunistic"), &json!("none"))
    );
    assert_eq!(
        (&p["dane"]["action"], &p["dane"]["reason"]),
        (&json!("configured-tls"), &json!("mx-insecure"))
    );
    assert_eq!(p["dnssec"]["tlsa_lookup"], "not-queried");
    assert_eq!(p["dane"]["records"], json!([]));
    assert_eq!(p["decided_by"], "default");
    assert_eq!(
        (&p["plaintext"]["permitted"], &p["plaintext"]["reason"]),
        (&json!(true), &json!("tls-preferred"))
    );

    // PKIX-only host: required-verify for .unsigned.test -> authenticated by PKIX, exit 0.
    let verify = controls(
        "verify.toml",
        "[default]\ntls = \"preferred\"\ndane = \"opportunistic\"\n\
         [destinations.\".unsigned.test\"]\ntls = \"required-verify\"\n",
    );
    let (code, j, err) = policy(
        "present.unsigned.test",
        &dns.trust_ad,
        &["--destinations", &verify],
    );
    assert_eq!(code, 0, "{j} {err}");
    assert_eq!(
        j["policy"],
        json!({"domain": "present.unsigned.test", "matched": "parent",
               "entry": ".unsigned.test", "tls_mode": "required-verify",
               "dane": "opportunistic"})
    );
    let p = plan(&j, 0);
    assert_eq!(
        (&p["requirement"], &p["authentication"]),
        (&json!("verified"), &json!("pkix"))
    );
    assert_eq!(p["decided_by"], "destination-control");
    assert_eq!(p["reference_ids"]["pkix_algorithm"], "verify");
    // Verify trusts the unsigned MX answer: the MX host is a reference identity.
    assert_eq!(
        p["reference_ids"]["pkix"],
        json!(["present.unsigned.test", "mx.dane.test"])
    );
    assert_eq!(p["reference_ids"]["dane"], json!([]));
    assert_eq!(p["plaintext"]["permitted"], false);

    // Verify Hosted Domains: an insecure MX host is not a reference identity.
    let hosted = controls(
        "hosted.toml",
        "[destinations.\"present.unsigned.test\"]\ntls = \"required-verify-hosted-domains\"\n",
    );
    let (code, j, err) = policy(
        "present.unsigned.test",
        &dns.trust_ad,
        &["--destinations", &hosted],
    );
    assert_eq!(code, 0, "{j} {err}");
    let p = plan(&j, 0);
    assert_eq!(p["requirement"], "verified-hosted-domains");
    assert_eq!(p["reference_ids"]["pkix_algorithm"], "hosted-verify");
    assert_eq!(p["reference_ids"]["pkix"], json!(["present.unsigned.test"]));

    // Mandatory DANE with an insecure MX: the destination defers.
    let mandatory = controls(
        "mandatory.toml",
        "[default]\ntls = \"required\"\ndane = \"mandatory\"\n",
    );
    let (code, j, err) = policy(
        "present.unsigned.test",
        &dns.trust_ad,
        &["--destinations", &mandatory],
    );
    assert_eq!(code, 1, "{j} {err}");
    let p = plan(&j, 0);
    assert_eq!(
        (&p["pre_connect"]["action"], &p["pre_connect"]["reason"]),
        (&json!("defer"), &json!("dane-required"))
    );
    assert_eq!(p["requirement"], Value::Null);
    assert_eq!(p["decided_by"], "dane");

    // An insecure host whose TLSA name SERVFAILs: TLSA never asked, delivery goes on.
    let (code, j, err) = policy("outlook.dane.test", &dns.trust_ad, &[]);
    assert_eq!(code, 1, "{j} {err}");
    let p = plan(&j, 0);
    assert_eq!(p["pre_connect"]["action"], "connect");
    assert_eq!(
        (&p["dane"]["reason"], &p["dnssec"]["address"]),
        (&json!("address-insecure"), &json!("insecure"))
    );
}

/// DNS failures: bogus and SERVFAIL TLSA skip the host, bogus / SERVFAIL MX defer, a resolver
/// that does not validate leaves validation unproven; none is authenticated (exit 1).
#[test]
fn dns_failures_and_unproven_validation_never_authenticate() {
    let lab = Lab::start();
    let dns = Dns::of(&lab);

    // Bogus TLSA (tampered after signing), seen by the in-process validator.
    let (code, j, err) = policy("bogus.dane.test", &dns.in_process, &[]);
    assert_eq!(code, 1, "{j} {err}");
    assert_eq!(j["mx_status"], "secure");
    assert_eq!(j["hosts"][0]["host"], "mx.broken.test");
    let p = plan(&j, 0);
    assert_eq!(
        (&p["pre_connect"]["action"], &p["pre_connect"]["reason"]),
        (&json!("skip-host"), &json!("tlsa-bogus"))
    );
    assert_eq!(p["pre_connect"]["detail"], "TLSA answer bogus");
    assert_eq!(p["dnssec"]["tlsa"], "bogus");
    assert_eq!(p["decided_by"], "dane");
    assert_eq!(p["requirement"], Value::Null);
    assert_eq!(p["sni"], Value::Null);
    assert_eq!(j["authenticated"], false);
    // Through the validating unbound the bogus TLSA answer is a SERVFAIL: skipped as well.
    let (code, j, err) = policy("bogus.dane.test", &dns.trust_ad, &[]);
    assert_eq!(code, 1, "{j} {err}");
    assert_eq!(plan(&j, 0)["pre_connect"]["reason"], "tlsa-lookup");

    // TLSA name delegated to a lame server: SERVFAIL, the host is skipped.
    let (code, j, err) = policy("servfail.dane.test", &dns.trust_ad, &[]);
    assert_eq!(code, 1, "{j} {err}");
    let p = plan(&j, 0);
    assert_eq!(
        (&p["pre_connect"]["action"], &p["pre_connect"]["reason"]),
        (&json!("skip-host"), &json!("tlsa-lookup"))
    );
    assert_eq!(
        (&p["dnssec"]["tlsa"], &p["dnssec"]["tlsa_lookup"]),
        (&json!("failed"), &json!("failed"))
    );
    assert_eq!(p["pre_connect"]["detail"], "TLSA lookup SERVFAIL");

    // Bogus MX RRset (broken.test), in-process: the destination defers.
    let (code, j, err) = policy("present.broken.test", &dns.in_process, &[]);
    assert_eq!(code, 1, "{j} {err}");
    assert_eq!(
        (&j["mx_status"], &j["mx_failure"]),
        (&json!("bogus"), &json!("ServFail"))
    );
    let p = plan(&j, 0);
    assert_eq!(j["hosts"][0]["host"], "present.broken.test");
    assert_eq!(
        (&p["pre_connect"]["action"], &p["pre_connect"]["reason"]),
        (&json!("defer"), &json!("mx-lookup"))
    );
    assert_eq!(p["pre_connect"]["detail"], "MX lookup bogus");
    assert_eq!(p["decided_by"], "dane");
    // The same MX RRset through the validating unbound: SERVFAIL, indeterminate, defers.
    let (code, j, err) = policy("present.broken.test", &dns.trust_ad, &[]);
    assert_eq!(code, 1, "{j} {err}");
    assert_eq!(
        (&j["mx_status"], &j["mx_failure"]),
        (&json!("indeterminate"), &json!("ServFail"))
    );
    assert_eq!(plan(&j, 0)["pre_connect"]["action"], "defer");
    // `--mx` cannot select a host from a failed MX lookup: the deferral is shown.
    let (code, j, _) = policy(
        "present.broken.test",
        &dns.trust_ad,
        &["--mx", "mx.broken.test"],
    );
    assert_eq!(
        (code, &plan(&j, 0)["pre_connect"]["action"]),
        (1, &json!("defer"))
    );

    // No such domain (secure NXDOMAIN): nothing to plan.
    let (code, j, err) = policy("nxdomain.dane.test", &dns.trust_ad, &[]);
    assert_eq!(code, 1, "{j} {err}");
    assert_eq!(j["hosts"], json!([]));
    assert!(
        j["error"]
            .as_str()
            .is_some_and(|e| e.contains("no MX host")),
        "{j}"
    );

    // A "trust-ad" resolver that does not validate: the probe fails, statuses are
    // indeterminate, DANE is off (validation unproven) though the zone has TLSA records.
    let (code, j, err) = policy("present.dane.test", &dns.not_validating, &[]);
    assert_eq!(code, 1, "{j} {err}");
    assert_eq!(j["validation"], "not-validating");
    assert_eq!(j["mx_status"], "indeterminate");
    assert!(
        j["error"]
            .as_str()
            .is_some_and(|e| e.contains("cannot validate")),
        "{j}"
    );
    let p = plan(&j, 0);
    assert_eq!(
        (&p["dane"]["action"], &p["dane"]["reason"]),
        (&json!("configured-tls"), &json!("validation-unproven"))
    );
    assert_eq!(p["authentication"], "none");
    assert_eq!(p["dnssec"]["mx"], "indeterminate");
    assert_eq!(j["authenticated"], false);
    // ... and mandatory DANE defers there.
    let dir = tempfile::tempdir().unwrap();
    let mandatory = dir.path().join("m.toml");
    std::fs::write(
        &mandatory,
        "[default]\ntls = \"required\"\ndane = \"mandatory\"\n",
    )
    .unwrap();
    let (code, j, err) = policy(
        "present.dane.test",
        &dns.not_validating,
        &["--destinations", mandatory.to_str().unwrap()],
    );
    assert_eq!(code, 1, "{j} {err}");
    assert_eq!(plan(&j, 0)["pre_connect"]["action"], "defer");
}

/// Bad input: exit 2, a message on standard error, no JSON. None of these needs DNS.
#[test]
fn bad_input_is_status_2() {
    let dir = tempfile::tempdir().unwrap();
    let bad_toml = dir.path().join("bad.toml");
    std::fs::write(&bad_toml, "[default]\ntls = \"sometimes\"\n").unwrap();
    let bad_toml = bad_toml.to_str().unwrap();
    let missing = dir.path().join("missing.toml");
    let missing = missing.to_str().unwrap();
    let no_anchor = dir.path().join("none.dnskeys");
    let no_anchor = no_anchor.to_str().unwrap();
    let cases: [(&[&str], &str); 6] = [
        (&["bad domain.example", "--json"], "bad domain.example"),
        (&["", "--json"], "empty"),
        (
            &["example.com", "--destinations", bad_toml, "--json"],
            "bad.toml:2:",
        ),
        (
            &["example.com", "--destinations", missing, "--json"],
            "missing.toml",
        ),
        (
            &[
                "example.com",
                "--resolver",
                "127.0.0.1:1",
                "--trust-anchor",
                no_anchor,
                "--json",
            ],
            "none.dnskeys",
        ),
        (&["example.com", "--port", "x", "--json"], "--port"),
    ];
    for (args, want) in cases {
        let (code, j, out, err) = run(args);
        assert_eq!(
            (code, j, out.as_str()),
            (2, Value::Null, ""),
            "{args:?}: {err}"
        );
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

/// The lab, the loopback MTA-STS policy server (its test CA passed as `--ca`, its port as
/// `--policy-port`) and `--resolver` the validating unbound, as `mta_sts_cli.rs` starts them.
struct StsSetup {
    lab: Lab,
    server: PolicyServer,
    dir: tempfile::TempDir,
    /// `--resolver R --probe-name test. --ca CA --policy-port P --json`.
    args: Vec<String>,
}

impl StsSetup {
    fn start() -> Self {
        let lab = Lab::start();
        let ca = TestCa::new("MTA-STS test CA");
        let dir = tempfile::tempdir().unwrap();
        let ca_path = dir.path().join("ca.pem");
        std::fs::write(&ca_path, &ca.pem).unwrap();
        let server = PolicyServer::start(
            &ca,
            &[
                sts::INSECURE,
                sts::TESTING,
                sts::NOMATCH,
                sts::FETCHFAIL,
                sts::SECURE,
            ],
        );
        let args = vec![
            "--resolver".to_string(),
            lab.validating().to_string(),
            "--probe-name".into(),
            "test.".into(),
            "--ca".into(),
            ca_path.display().to_string(),
            "--policy-port".into(),
            server.port().to_string(),
            "--json".into(),
        ];
        Self {
            lab,
            server,
            dir,
            args,
        }
    }

    fn policy(&self, domain: &str, extra: &[&str]) -> (i32, Value, String) {
        policy(domain, &self.args, extra)
    }

    fn file(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }
}

/// The first rule of `source` in plan `p`.
fn rule_of<'a>(p: &'a Value, source: &str) -> &'a Value {
    p["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["source"] == source)
        .unwrap_or_else(|| panic!("no {source} rule: {p:#}"))
}

/// MTA-STS as a source of the plan: `enforce` listing the host decides (PKIX required, exit 0);
/// an unlisted host is not used, with each pattern's reason; `testing` leaves the local
/// setting in charge; `mta_sts = "ignore"` drops it and says so; a failed fetch applies
/// nothing; a failed TXT lookup that is bogus defers.
#[test]
fn mta_sts_is_a_source_of_the_plan() {
    let s = StsSetup::start();

    // enforce, the MX host listed: MTA-STS decides, TLS with PKIX required, exit 0.
    s.server.set(
        sts::INSECURE,
        PolicyResponse::enforce(&["*.unsigned.test", "mx.backup.example"], 86400),
    );
    let (code, j, err) = s.policy(sts::INSECURE, &[]);
    assert_eq!(code, 0, "{j:#} {err}");
    assert_eq!(j["hosts"][0]["host"], "mx.unsigned.test", "{j:#}");
    let p = plan(&j, 0);
    assert_eq!(p["pre_connect"]["action"], "connect");
    assert_eq!(p["decided_by"], "mta-sts", "{p:#}");
    assert_eq!(
        (&p["requirement"], &p["authentication"]),
        (&json!("verified"), &json!("pkix"))
    );
    assert_eq!(p["plaintext"]["permitted"], false);
    assert_eq!(
        p["mta_sts"],
        json!({"policy_id": sts::INSECURE_ID, "mode": "enforce",
               "mx_match": {"result": "matched", "pattern": "*.unsigned.test"},
               "action": "require-pkix", "pkix_required": true})
    );
    assert_eq!(rule_of(p, "mta-sts")["effect"], "authenticates");
    // the existing fields are unchanged; the domain's discovery is added
    assert_eq!(j["policy"]["tls_mode"], "preferred");
    assert_eq!(j["authenticated"], true);
    assert_eq!(j["error"], Value::Null);
    let m = &j["mta_sts"];
    assert_eq!(
        (&m["status"], &m["txt"], &m["applied"], &m["ignored_by"]),
        (
            &json!("valid"),
            &json!({"id": sts::INSECURE_ID}),
            &json!(true),
            &Value::Null
        ),
        "{m:#}"
    );
    assert_eq!(
        m["policy"],
        json!({"mode": "enforce", "max_age": 86400,
               "mx": ["*.unsigned.test", "mx.backup.example"]})
    );
    assert_eq!(
        m["mx"],
        json!([{"host": "mx.unsigned.test", "allowed": true}])
    );
    // the policy was fetched from mta-sts.DOMAIN on --policy-port (by SNI and Host)
    let last = s.server.requests().last().cloned().unwrap();
    assert_eq!(last.sni.as_deref(), Some("mta-sts.sts.unsigned.test"));
    assert_eq!(last.host.as_deref(), Some("mta-sts.sts.unsigned.test"));

    // Text output: the host line says who decided, one MTA-STS line follows.
    let text: Vec<String> = s.args.iter().filter(|a| *a != "--json").cloned().collect();
    let mut v: Vec<&str> = vec![sts::INSECURE];
    v.extend(text.iter().map(String::as_str));
    let (code, _, out, err) = run(&v);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0]
            .starts_with("mx.unsigned.test: connect, requirement verified, authentication pkix")
            && lines[0].ends_with("decided by mta-sts"),
        "{out}"
    );
    assert!(
        lines[1].starts_with(&format!(
            "{}: MTA-STS valid, mode enforce, id {}",
            sts::INSECURE,
            sts::INSECURE_ID
        )),
        "{out}"
    );

    // enforce, the MX host not listed: not used, each pattern's reason; exit 1.
    s.server.set(
        sts::NOMATCH,
        PolicyResponse::enforce(&["*.test", "mx.backup.example"], 86400),
    );
    let (code, j, err) = s.policy(sts::NOMATCH, &[]);
    assert_eq!(code, 1, "{j:#} {err}");
    let p = plan(&j, 0);
    assert_eq!(
        (&p["pre_connect"]["action"], &p["pre_connect"]["reason"]),
        (&json!("skip-host"), &json!("mta-sts-not-listed")),
        "{p:#}"
    );
    assert_eq!(p["decided_by"], "mta-sts");
    assert_eq!(p["requirement"], Value::Null);
    let detail = p["pre_connect"]["detail"].as_str().unwrap();
    assert!(
        detail.contains("*.test: pattern matches one label; host has two"),
        "{detail}"
    );
    assert_eq!(
        (
            &p["mta_sts"]["action"],
            &p["mta_sts"]["mx_match"]["result"],
            &p["mta_sts"]["failure"]["kind"]
        ),
        (
            &json!("skip-host"),
            &json!("not-listed"),
            &json!("validation-failure")
        ),
        "{p:#}"
    );
    assert_eq!(rule_of(p, "mta-sts")["effect"], "skips-host");
    assert_eq!(j["mta_sts"]["mx"][0]["allowed"], false);
    assert_eq!(j["authenticated"], false);

    // testing: the local setting decides (opportunistic, unauthenticated), MTA-STS reports.
    s.server.set(
        sts::TESTING,
        PolicyResponse::policy(&policy_text("testing", &["*.unsigned.test"], 86400)),
    );
    let (code, j, err) = s.policy(sts::TESTING, &[]);
    assert_eq!(code, 1, "{j:#} {err}");
    let p = plan(&j, 0);
    assert_eq!(p["pre_connect"]["action"], "connect");
    assert_eq!(
        (&p["requirement"], &p["authentication"], &p["decided_by"]),
        (&json!("opportunistic"), &json!("none"), &json!("default")),
        "{p:#}"
    );
    assert_eq!(
        (
            &p["mta_sts"]["mode"],
            &p["mta_sts"]["action"],
            &p["mta_sts"]["pkix_required"]
        ),
        (&json!("testing"), &json!("report-only"), &json!(false))
    );
    assert_eq!(rule_of(p, "mta-sts")["effect"], "no-effect");
    assert_eq!(j["mta_sts"]["applied"], true);

    // DANE host under enforce listing it: DANE decides, no PKIX added; MTA-STS noted.
    s.server.set(
        sts::SECURE,
        PolicyResponse::enforce(&["mx.dane.test"], 86400),
    );
    let (code, j, err) = s.policy(sts::SECURE, &[]);
    assert_eq!(code, 0, "{j:#} {err}");
    let p = plan(&j, 0);
    assert_eq!(j["hosts"][0]["host"], "mx.dane.test");
    assert_eq!(
        (&p["requirement"], &p["authentication"], &p["decided_by"]),
        (&json!("dane"), &json!("dane"), &json!("dane")),
        "{p:#}"
    );
    assert_eq!(
        p["mta_sts"],
        json!({"policy_id": sts::SECURE_ID, "mode": "enforce",
               "mx_match": {"result": "matched", "pattern": "mx.dane.test"},
               "action": "require-pkix", "pkix_required": false,
               "reason": "dane-precedence"})
    );
    assert!(
        rule_of(p, "mta-sts")["reason"]
            .as_str()
            .unwrap()
            .contains("DANE decides"),
        "{p:#}"
    );
    // ... and the STS mx filter still applies to a DANE host under enforce.
    s.server.set(
        sts::SECURE,
        PolicyResponse::enforce(&["mx2.dane.test"], 86400),
    );
    let (code, j, err) = s.policy(sts::SECURE, &[]);
    assert_eq!(code, 1, "{j:#} {err}");
    assert_eq!(
        (
            &plan(&j, 0)["pre_connect"]["reason"],
            &plan(&j, 0)["decided_by"]
        ),
        (&json!("mta-sts-not-listed"), &json!("mta-sts"))
    );

    // mta_sts = "ignore" in the destination control: ignored, and the plan says so.
    let ignore = s.file(
        "ignore.toml",
        &format!(
            "[destinations.\"{}\"]\ntls = \"preferred\"\nmta_sts = \"ignore\"\n",
            sts::INSECURE
        ),
    );
    let (code, j, err) = s.policy(sts::INSECURE, &["--destinations", &ignore]);
    assert_eq!(code, 1, "{j:#} {err}");
    let p = plan(&j, 0);
    assert_eq!(
        (&p["requirement"], &p["decided_by"]),
        (&json!("opportunistic"), &json!("destination-control")),
        "{p:#}"
    );
    assert_eq!(
        (
            &p["mta_sts"]["reason"],
            &p["mta_sts"]["ignored_by"],
            &p["mta_sts"]["pkix_required"]
        ),
        (
            &json!("ignored-by-destination-control"),
            &json!(sts::INSECURE),
            &json!(false)
        )
    );
    assert_eq!(
        rule_of(p, "mta-sts")["reason"],
        format!("mta-sts ignored by destination control {}", sts::INSECURE)
    );
    assert_eq!(
        (&j["mta_sts"]["applied"], &j["mta_sts"]["ignored_by"]),
        (&json!(false), &json!(sts::INSECURE))
    );

    // The policy fetch fails (404), nothing cached: delivered as without a policy.
    s.server.set(sts::FETCHFAIL, PolicyResponse::status(404));
    let (code, j, err) = s.policy(sts::FETCHFAIL, &[]);
    assert_eq!(code, 1, "{j:#} {err}");
    let p = plan(&j, 0);
    assert_eq!(p["mta_sts"], Value::Null, "{p:#}");
    assert_eq!(p["decided_by"], "default");
    assert_eq!(
        (&j["mta_sts"]["status"], &j["mta_sts"]["applied"]),
        (&json!("fetch-error"), &json!(false))
    );

    // No _mta-sts record: every plan states it, nothing constrained.
    let (code, j, err) = s.policy("present.dane.test", &[]);
    assert_eq!(code, 0, "{j:#} {err}");
    assert_eq!(plan(&j, 0)["decided_by"], "dane");
    assert_eq!(plan(&j, 0)["mta_sts"]["action"], "no-constraint");
    assert_eq!(j["mta_sts"]["status"], "none");
    assert_eq!(j["error"], Value::Null);

    // A DNSSEC-bogus _mta-sts TXT answer (in-process validation), nothing cached: defers.
    let in_process = [
        "--resolver".to_string(),
        s.lab.non_validating().to_string(),
        "--trust-anchor".into(),
        s.lab.trust_anchor_file().display().to_string(),
        "--probe-name".into(),
        "test.".into(),
        "--json".into(),
    ];
    let (code, j, err) = policy(sts::BOGUS, &in_process, &[]);
    assert_eq!(code, 1, "{j:#} {err}");
    assert_eq!(j["mta_sts"]["applied"], false);
    assert!(
        j["error"]
            .as_str()
            .is_some_and(|e| e.contains("DNSSEC-bogus")),
        "{j:#}"
    );

    // Bad input: an unreadable --ca, a bad --policy-port: status 2, no JSON.
    let missing = s.dir.path().join("missing.pem").display().to_string();
    for (extra, want) in [
        (["--ca", missing.as_str()], "missing.pem"),
        (["--policy-port", "x"], "--policy-port"),
    ] {
        let mut v = vec![sts::INSECURE];
        v.extend_from_slice(&extra);
        v.push("--json");
        let (code, j, out, err) = run(&v);
        assert_eq!((code, j, out.as_str()), (2, Value::Null, ""), "{err}");
        assert!(err.contains(want), "{err}");
    }
}
