//! `smtp-tls-check policy DOMAIN` with MTA-STS as a source of the plan, against the loopback
//! MTA-STS policy server. The hop plan per MX host from live DNS, run as the built binary against
//! the project's DNSSEC lab (scripts/dnssec-lab.sh, its zone data listed in the script's header;
//! own ports, stopped by PID in Drop). No connection is made: nothing listens on the MX hosts'
//! port. Shared setup: `common/mod.rs`.

use serde_json::{Value, json};
use test_support::dnssec_lab::{Lab, sts};
use test_support::policy_server::{PolicyResponse, PolicyServer, policy_text};

mod common;
use common::{plan, policy, run};

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
        let (server, dir, ca_file) = common::sts_server(&[sts::SECURE]);
        let args = vec![
            "--resolver".to_string(),
            lab.validating().to_string(),
            "--probe-name".into(),
            "test.".into(),
            "--ca".into(),
            ca_file,
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
