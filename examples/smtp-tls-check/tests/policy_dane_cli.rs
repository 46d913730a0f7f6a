//! `smtp-tls-check policy DOMAIN` where DNSSEC decides: secure hosts with TLSA records (DANE) and
//! an insecure delegation (PKIX or nothing). The hop plan per MX host from live DNS, run as the
//! built binary against the project's DNSSEC lab (scripts/dnssec-lab.sh, its zone data listed in
//! the script's header; own ports, stopped by PID in Drop). No connection is made: nothing listens
//! on the MX hosts' port. Shared setup: `common/mod.rs`.

use serde_json::{Value, json};
use test_support::dnssec_lab::Lab;

mod common;
use common::{Dns, LAB_SMTP_PORT, plan, policy, run, sorted_records};

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
