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
        "/../../smtp-tls-policy/tests/data/x509-limbo/limbo-core.json"
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

/// Issue 11, finding 5: a peer certificate with a multibyte CN (`CN=a中`) crashed
/// `limbo --strict` (a byte slice inside a character in the CA/B Forum CN rule).
#[test]
fn strict_run_survives_a_multibyte_common_name() {
    let root_key = rcgen::KeyPair::generate().unwrap();
    let mut root_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    root_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    root_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Test Root");
    root_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let root = root_params.self_signed(&root_key).unwrap();
    let issuer = rcgen::Issuer::new(root_params, root_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["a.example.com".to_owned()]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "a中");
    params.use_authority_key_identifier_extension = true;
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let leaf = params.signed_by(&leaf_key, &issuer).unwrap();
    let suite = serde_json::json!({
        "version": 1,
        "testcases": [{
            "id": "local::multibyte-cn",
            "features": [],
            "description": "CN=a中 beside a SAN dNSName",
            "validation_kind": "SERVER",
            "trusted_certs": [root.pem()],
            "untrusted_intermediates": [],
            "peer_certificate": leaf.pem(),
            "validation_time": null,
            "signature_algorithms": [],
            "key_usage": [],
            "extended_key_usage": ["serverAuth"],
            "expected_result": "SUCCESS",
            "expected_peer_name": {"kind": "DNS", "value": "a.example.com"},
            "expected_peer_names": [],
            "max_chain_depth": null
        }]
    });
    let out = run(&["--strict"], suite.to_string().as_bytes());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let result = &json["results"][0];
    assert_eq!(result["id"], "local::multibyte-cn");
    // The CN is unrelated to the SAN entry: tolerated (see the divergences file), so the
    // verdict is the SAN match.
    assert_eq!(result["actual_result"], "SUCCESS", "{result}");
}
