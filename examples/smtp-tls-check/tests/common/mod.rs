//! Shared setup of the CLI tests (`smtp-tls-check policy DOMAIN`, `mta-sts`, `daneverify`
//! against the project's DNSSEC lab): running the built binary, the lab's resolvers as options,
//! the loopback MTA-STS policy server with its CA file, plan access.
#![allow(dead_code, unreachable_pub)]

use std::process::Command;

use serde_json::Value;
use test_support::dnssec_lab::{Lab, sts};
use test_support::pki::TestCa;
use test_support::policy_server::PolicyServer;

/// The lab's `SMTP_PORT`: TLSA `3 1 1` (leaf key only) also published at
/// `_2525._tcp.mx.dane.test`. Nothing listens there; it only changes the zone data.
pub const LAB_SMTP_PORT: &str = "2525";

/// `smtp-tls-check policy ARGS`: exit code, stdout as JSON (`Null` if it is not), stdout,
/// stderr.
pub fn run(args: &[&str]) -> (i32, Value, String, String) {
    run_command("policy", args)
}

/// `smtp-tls-check COMMAND ARGS`, as [`run`].
pub fn run_command(command: &str, args: &[&str]) -> (i32, Value, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_smtp-tls-check"))
        .arg(command)
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
pub struct Dns {
    /// `--resolver` the validating unbound (trust its AD bit).
    pub trust_ad: Vec<String>,
    /// In-process validation (hickory) from the lab's anchor, through the non-validating
    /// unbound.
    pub in_process: Vec<String>,
    /// `--resolver` the non-validating unbound, trusted for an AD bit it never sets.
    pub not_validating: Vec<String>,
}

impl Dns {
    pub fn of(lab: &Lab) -> Self {
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

pub fn policy(domain: &str, dns: &[String], extra: &[&str]) -> (i32, Value, String) {
    let mut v = vec![domain];
    v.extend(dns.iter().map(String::as_str));
    v.extend_from_slice(extra);
    let (code, j, _, err) = run(&v);
    (code, j, err)
}

pub fn plan(j: &Value, i: usize) -> &Value {
    &j["hosts"][i]["plan"]
}

/// A plan with its TLSA records sorted (the RRset's order is the resolver's).
pub fn sorted_records(p: &Value) -> Value {
    let mut p = p.clone();
    if let Some(records) = p["dane"]["records"].as_array_mut() {
        records.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
    }
    p
}

/// The loopback MTA-STS policy server for the lab's four MTA-STS statuses (insecure,
/// testing, nomatch, fetchfail) and `extra`, with a certificate from a new test CA; the
/// temporary directory holding that CA's file, and the file's path (`--ca`).
pub fn sts_server(extra: &[&str]) -> (PolicyServer, tempfile::TempDir, String) {
    let base = [sts::INSECURE, sts::TESTING, sts::NOMATCH, sts::FETCHFAIL];
    let domains = [&base[..], extra].concat();
    let ca = TestCa::new("MTA-STS test CA");
    let dir = tempfile::tempdir().unwrap();
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, &ca.pem).unwrap();
    let server = PolicyServer::start(&ca, &domains);
    (server, dir, ca_path.display().to_string())
}
