//! `smtp-tls-check hat`, run as a built binary against the example configuration.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

fn config() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../relay/config/hat.toml")
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_smtp-tls-check"))
        .arg("hat")
        .args(args)
        .output()
        .expect("the binary runs")
}

/// Runs with `--json` against the example config; asserts exit 0 and one JSON object.
fn verdict(args: &[&str]) -> Value {
    let config = config();
    let mut all = vec!["--config", config.to_str().unwrap(), "--json"];
    all.extend_from_slice(args);
    let out = run(&all);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout {stdout} stderr {stderr}"
    );
    assert_eq!(
        stdout.lines().count(),
        1,
        "one JSON object on one line: {stdout}"
    );
    serde_json::from_str(&stdout).expect("valid JSON")
}

/// The six contract keys.
fn contract(v: &Value) -> [Value; 6] {
    let keys = [
        "sender_group",
        "order",
        "matched_entry",
        "policy",
        "behavior",
        "tls",
    ];
    let obj = v.as_object().unwrap();
    keys.map(|k| {
        obj.get(k)
            .unwrap_or_else(|| panic!("key {k} missing in {v}"))
            .clone()
    })
}

#[test]
fn readme_command_prints_the_cres_verdict() {
    let v = verdict(&["--ip", "208.90.57.32"]);
    let want = serde_json::json!([
        "CRES",
        1,
        "208.90.57.0/26",
        "TLS_REQUIRED",
        "accept",
        "required"
    ]);
    assert_eq!(Value::Array(contract(&v).to_vec()), want);
    assert_eq!(
        v["facts_not_needed"],
        serde_json::json!(["ptr", "dnslist:zen.spamhaus.org"])
    );
}

#[test]
fn contract_keys_come_first() {
    let config = config();
    let out = run(&[
        "--config",
        config.to_str().unwrap(),
        "--ip",
        "204.15.81.5",
        "--json",
    ]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let keys = [
        "sender_group",
        "order",
        "matched_entry",
        "policy",
        "behavior",
        "tls",
    ];
    let positions: Vec<usize> = keys
        .iter()
        .map(|k| stdout.find(&format!("\"{k}\":")).unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{stdout}");
    assert!(stdout.starts_with("{\"sender_group\":\"CRES\""), "{stdout}");
}

#[test]
fn forward_confirmed_ptr_matches_cres() {
    let v = verdict(&[
        "--ip",
        "184.94.241.96",
        "--ptr",
        "mxnat3.res.cisco.com=184.94.241.96",
    ]);
    assert_eq!(v["sender_group"], "CRES");
    assert_eq!(v["matched_entry"], ".res.cisco.com");
    assert_eq!(v["tls"], "required");
}

#[test]
fn unconfirmed_ptr_falls_to_all() {
    let ptr = "mxnat3.res.cisco.com=184.94.241.74,184.94.241.97";
    let v = verdict(&["--ip", "184.94.241.96", "--ptr", ptr]);
    assert_eq!(v["sender_group"], "ALL");
    assert_eq!(v["order"], 99);
    assert_eq!(v["tls"], "preferred");
    assert_eq!(v["limits"]["max_recipients_per_message"], 100);
    assert_eq!(v["banner"], "mx.example.com ESMTP");
}

#[test]
fn loopback_relays_dnslist_blocks_continue_is_recorded() {
    let v = verdict(&["--ip", "127.0.0.1"]);
    assert_eq!(v["sender_group"], "RELAYLIST");
    assert_eq!(v["behavior"], "relay");
    let v = verdict(&["--ip", "::1"]);
    assert_eq!(v["sender_group"], "RELAYLIST");
    let v = verdict(&["--ip", "198.18.0.1", "--dnslist", "zen.spamhaus.org"]);
    assert_eq!(v["sender_group"], "BLOCKED");
    assert_eq!(v["matched_entry"], "dnslist[zen.spamhaus.org]");
    assert_eq!(v["behavior"], "reject");
    let v = verdict(&["--ip", "203.0.113.9"]);
    assert_eq!(v["sender_group"], "ALL");
    assert_eq!(v["continued"][0]["sender_group"], "PARTNER_AUDIT");
}

#[test]
fn human_summary() {
    let config = config();
    let out = run(&["--config", config.to_str().unwrap(), "--ip", "208.90.57.32"]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("sender group CRES (order 1)"), "{stdout}");
    assert!(stdout.contains("tls required"), "{stdout}");
}

#[test]
fn bad_config_names_file_line_and_text() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let text = std::fs::read_to_string(config())
        .unwrap()
        .replace("\"208.90.57.0/26\"", "\"10.1.1.300\"");
    std::fs::write(&path, &text).unwrap();
    let line = text.lines().position(|l| l.contains("10.1.1.300")).unwrap() + 1;
    let out = run(&[
        "--config",
        path.to_str().unwrap(),
        "--ip",
        "208.90.57.32",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains(&format!("bad.toml:{line}:")), "{stderr}");
    assert!(stderr.contains("10.1.1.300"), "{stderr}");
}

#[test]
fn bad_arguments_exit_2() {
    let config = config();
    let c = config.to_str().unwrap();
    for args in [
        vec!["--config", c, "--ip", "208.90.57.300"],
        vec!["--config", c, "--ip", "1.2.3.4", "--ptr", "no-equals-sign"],
        vec![
            "--config",
            c,
            "--ip",
            "1.2.3.4",
            "--ptr",
            "a.example=not-an-ip",
        ],
        vec![
            "--config",
            c,
            "--ip",
            "1.2.3.4",
            "--ptr",
            "bad..name=1.2.3.4",
        ],
        vec!["--config", c, "--ip", "1.2.3.4", "--dnslist", "bad zone"],
        vec!["--config", "/nonexistent/hat.toml", "--ip", "1.2.3.4"],
    ] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?}");
    }
}
