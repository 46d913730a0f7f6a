//! The x509-limbo core suite (208 cases, `tests/data/x509-limbo/`) in strict mode.
//!
//! Prints pass/fail/skip counts. Fails when a case not listed in
//! `tests/data/limbo-divergences.txt` fails, or when a listed case now passes (stale list).

use std::collections::BTreeMap;

use smtp_tls_policy::limbo::{LimboMode, LimboOutcome, LimboSuite, run_case};

const SUITE: &str = include_str!("data/x509-limbo/limbo-core.json");
const DIVERGENCES: &str = include_str!("data/limbo-divergences.txt");

/// `id -> reason` from the divergences file (`id  # reason`, `#` comment lines).
fn divergences() -> BTreeMap<&'static str, &'static str> {
    DIVERGENCES
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| match l.split_once('#') {
            Some((id, reason)) => (id.trim(), reason.trim()),
            None => (l, ""),
        })
        .collect()
}

fn failures(suite: &LimboSuite, mode: LimboMode) -> usize {
    suite
        .testcases
        .iter()
        .filter(|c| {
            let r = run_case(c, mode);
            r.actual_result != LimboOutcome::Skipped
                && (r.actual_result == LimboOutcome::Success) != (c.expected_result == "SUCCESS")
        })
        .count()
}

#[test]
fn fewer_failures_than_rustls_webpki_alone() {
    let suite: LimboSuite = serde_json::from_str(SUITE).expect("suite parses");
    let ours = failures(&suite, LimboMode::Strict);
    let baseline = failures(&suite, LimboMode::WebpkiBaseline);
    println!("failures: smtp-tls-policy strict {ours}, rustls-webpki alone (SAN-only) {baseline}");
    assert!(ours < baseline);
}

#[test]
fn limbo_core_strict() {
    let suite: LimboSuite = serde_json::from_str(SUITE).expect("suite parses");
    assert_eq!(suite.testcases.len(), 208, "the core suite has 208 cases");
    let known = divergences();
    for (id, reason) in &known {
        assert!(!reason.is_empty(), "divergence {id} needs a reason");
    }
    let (mut pass, mut fail, mut skip) = (0, 0, 0);
    let mut unexpected = Vec::new();
    let mut stale = Vec::new();
    for case in &suite.testcases {
        let r = run_case(case, LimboMode::Strict);
        let expected = match case.expected_result.as_str() {
            "SUCCESS" => LimboOutcome::Success,
            _ => LimboOutcome::Failure,
        };
        let listed = known.contains_key(case.id.as_str());
        match r.actual_result {
            LimboOutcome::Skipped => {
                skip += 1;
                assert!(
                    !listed,
                    "{} is skipped, it must not be listed as divergence",
                    case.id
                );
            }
            actual if actual == expected => {
                pass += 1;
                if listed {
                    stale.push(case.id.clone());
                }
            }
            actual => {
                fail += 1;
                println!(
                    "FAIL {} expected {expected:?} got {actual:?}: {}",
                    case.id, r.context
                );
                if !listed {
                    unexpected.push(format!("{} ({})", case.id, r.context));
                }
            }
        }
    }
    for id in known.keys() {
        assert!(
            suite.testcases.iter().any(|c| c.id == *id),
            "divergence {id} is not in the suite"
        );
    }
    println!("x509-limbo core, strict: pass {pass}, fail {fail}, skip {skip} (of 208)");
    assert!(unexpected.is_empty(), "unlisted failures: {unexpected:#?}");
    assert!(
        stale.is_empty(),
        "listed divergences that now pass (stale list): {stale:#?}"
    );
}
