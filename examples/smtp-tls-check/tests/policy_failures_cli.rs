//! `smtp-tls-check policy DOMAIN` when DNS fails or the input is bad: bogus and SERVFAIL answers,
//! unproven validation, exit status 2. The hop plan per MX host from live DNS, run as the built
//! binary against the project's DNSSEC lab (scripts/dnssec-lab.sh, its zone data listed in the
//! script's header; own ports, stopped by PID in Drop). No connection is made: nothing listens on
//! the MX hosts' port. Shared setup: `common/mod.rs`.

use serde_json::{Value, json};
use test_support::dnssec_lab::Lab;

mod common;
use common::{Dns, plan, policy, run};

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
