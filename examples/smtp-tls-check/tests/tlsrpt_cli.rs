//! `smtp-tls-check tlsrpt summarize`, run as a built binary on the shared TLS-RPT corpus
//! (`<workspace>/../shared/corpora/tlsrpt/`, which CI has).

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::{Value, json};

fn corpus(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/corpora/tlsrpt")
        .join(name);
    assert!(
        path.is_file(),
        "TLS-RPT corpus file {} missing: the shared corpora belong at \
         <workspace>/../shared/corpora (CI has them)",
        path.display()
    );
    path.to_str().unwrap().to_owned()
}

fn summarize(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_smtp-tls-check"))
        .args(["tlsrpt", "summarize"])
        .args(args)
        .output()
        .expect("the binary runs")
}

/// Runs with `--json`; asserts the exit status and one JSON object on one line.
fn summary_json(files: &[&str], status: i32) -> Value {
    let paths: Vec<String> = files.iter().map(|f| corpus(f)).collect();
    let mut args: Vec<&str> = vec!["--json"];
    args.extend(paths.iter().map(String::as_str));
    let out = summarize(&args);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        out.status.code(),
        Some(status),
        "stdout {stdout} stderr {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    serde_json::from_str(&stdout).unwrap()
}

#[test]
fn successes_only_exit_0() {
    let v = summary_json(
        &[
            "mox-google-2022-09-15.eml",
            "mox-microsoft-2023-01-10.json.gz",
            "cryinc-google-minified-2025-04-12.json",
        ],
        0,
    );
    assert_eq!(v["reports"], 3);
    let domains = v["domains"].as_array().unwrap();
    assert_eq!(domains.len(), 3);
    assert_eq!(
        domains[0],
        json!({"policy_domain": "domain.de", "day": "2025-04-12", "successes": 2,
               "failures": 0, "failures_by_type": {}, "failures_by_mx": {}})
    );
    assert_eq!(domains[1]["policy_domain"], "test.xmox.nl");
    assert_eq!(domains[1]["day"], "2022-09-15");
    assert_eq!(domains[1]["successes"], 3);
    assert_eq!(domains[2]["day"], "2023-01-10");
    assert_eq!(domains[2]["successes"], 2);
}

#[test]
fn a_reported_failure_exits_1_with_types_and_mx_hosts() {
    let v = summary_json(
        &[
            "rfc8460-appendix-b.json",
            "stalwart-rfc-example-message.eml",
            "parsedmarc-mailru-2024-02-22.json",
            "cryinc-google-minified-2025-04-12.json",
        ],
        1,
    );
    assert_eq!(v["reports"], 4);
    let domains = v["domains"].as_array().unwrap();
    let company_y = domains
        .iter()
        .find(|d| d["policy_domain"] == "company-y.example")
        .unwrap();
    assert_eq!(
        *company_y,
        json!({
            "policy_domain": "company-y.example", "day": "2016-04-01",
            "successes": 10652, "failures": 606,
            "failures_by_type": {"certificate-expired": 200, "starttls-not-supported": 400,
                                 "validation-failure": 6},
            "failures_by_mx": {"mx-backup.mail.company-y.example": 6,
                               "mx1.mail.company-y.example": 200,
                               "mx2.mail.company-y.example": 400}
        })
    );
    let mailru = domains
        .iter()
        .find(|d| d["policy_domain"] == "example.com")
        .unwrap();
    assert_eq!(mailru["day"], "2024-02-22");
    assert_eq!(mailru["failures"], 1);
    assert_eq!(mailru["failures_by_type"]["sts-policy-fetch-error"], 2);
    assert_eq!(mailru["failures_by_mx"]["(unknown)"], 2);
}

#[test]
fn domain_less_policies_are_null() {
    let v = summary_json(&["stalwart-unknown-policy-type.json"], 0);
    assert_eq!(v["domains"][0]["policy_domain"], Value::Null);
    assert_eq!(v["domains"][0]["successes"], 2);
}

#[test]
fn unreadable_or_unparseable_file_exits_2_without_json() {
    let readme = corpus("README.md");
    let good = corpus("rfc8460-appendix-b.json");
    for args in [
        vec!["--json", good.as_str(), readme.as_str()],
        vec!["--json", good.as_str(), "/nonexistent/report.json"],
    ] {
        let out = summarize(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "no JSON on bad input");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.starts_with("error: "), "{stderr}");
        assert!(stderr.contains(args[2]), "names the file: {stderr}");
    }
    // No file at all is a usage error.
    assert_eq!(summarize(&["--json"]).status.code(), Some(2));
}

#[test]
fn text_output_without_json() {
    let out = summarize(&[&corpus("stalwart-uncompressed-attachment.eml")]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("2020-01-01  example.com  successes 23  failures 1"),
        "{stdout}"
    );
    assert!(stdout.contains("certificate-host-mismatch 1"), "{stdout}");
}
