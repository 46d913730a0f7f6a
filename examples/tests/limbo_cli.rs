//! `smtp-tls-check limbo` through the built binary, on the committed x509-limbo core suite.

use std::io::Write;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_smtp-tls-check");

fn run(args: &[&str], input: &[u8]) -> std::process::Output {
    let mut child = Command::new(BIN)
        .arg("limbo")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn strict_run_prints_the_harness_contract() {
    let suite = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../smtp-tls-policy/tests/data/x509-limbo/limbo-core.json"
    ))
    .unwrap();
    let out = run(&["--strict"], &suite);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["version"], 1);
    assert_eq!(json["harness"], "smtp-tls-policy");
    let results = json["results"].as_array().unwrap();
    assert_eq!(results.len(), 208);
    let input: serde_json::Value = serde_json::from_slice(&suite).unwrap();
    let mut pass = 0;
    for (r, case) in results.iter().zip(input["testcases"].as_array().unwrap()) {
        assert_eq!(r["id"], case["id"]);
        assert!(r["context"].is_string());
        let actual = r["actual_result"].as_str().unwrap();
        assert!(["SUCCESS", "FAILURE", "SKIPPED"].contains(&actual));
        if actual == case["expected_result"].as_str().unwrap() {
            pass += 1;
        }
        if actual == "SKIPPED" {
            assert!(
                r["context"].as_str().unwrap().contains("not implemented")
                    || r["context"]
                        .as_str()
                        .unwrap()
                        .contains("no DNS/IP peer name")
            );
        }
    }
    println!("limbo --strict via CLI: {pass} of 208 pass");
    assert!(pass >= 179, "pass count regressed: {pass}");
}

#[test]
fn bad_input_is_a_usage_error() {
    let out = run(&[], b"{\"not\": \"a suite\"}");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: "));
}
