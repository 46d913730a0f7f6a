//! Property: `MxPattern` matching agrees with a plain reference (split into labels, compare
//! lowercase, `*` stands for exactly one left-most label) on generated ASCII names of mixed
//! case, with and without trailing dots, wildcard or not, at several depths.

use proptest::prelude::*;
use smtp_tls_policy::mta_sts::{MxMatch, MxPattern};

/// The reference: RFC 8461 §4.1 read literally.
fn reference_matches(pattern: &str, host: &str) -> bool {
    let norm = |s: &str| s.strip_suffix('.').unwrap_or(s).to_ascii_lowercase();
    let (pattern, host) = (norm(pattern), norm(host));
    let p: Vec<&str> = pattern.split('.').collect();
    let h: Vec<&str> = host.split('.').collect();
    if p.len() != h.len() {
        return false;
    }
    p.iter()
        .zip(&h)
        .enumerate()
        .all(|(i, (pl, hl))| (i == 0 && *pl == "*") || pl == hl)
}

fn label() -> impl Strategy<Value = String> {
    // Letters first and last (never an all-digit last label), a hyphen maybe inside; a small
    // alphabet so that generated names collide often.
    "[a-cA-C][a-c0-1-]{0,3}[a-cA-C]|[a-cA-C]"
        .prop_filter("no inner hyphen at the end", |l| !l.ends_with('-'))
}

fn labels(min: usize, max: usize) -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(label(), min..=max)
}

fn dot() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just(""), Just(".")]
}

/// A pattern and a host, the host often built on the pattern's parent so that matches and the
/// interesting misses (parent itself, two labels for the wildcard) are common.
fn case() -> impl Strategy<Value = (String, String)> {
    (
        any::<bool>(),
        labels(1, 3),
        labels(0, 3),
        any::<bool>(),
        labels(1, 4),
        dot(),
        dot(),
    )
        .prop_map(|(wildcard, parent, prefix, related, unrelated, d1, d2)| {
            let parent = parent.join(".");
            let pattern = if wildcard {
                format!("*.{parent}{d1}")
            } else {
                format!("{parent}{d1}")
            };
            let host = if related {
                let mut all = prefix;
                // Case differences must not matter.
                all.push(parent.to_ascii_uppercase());
                all.join(".")
            } else {
                unrelated.join(".")
            };
            (pattern, format!("{host}{d2}"))
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn matcher_agrees_with_reference((pattern, host) in case()) {
        let parsed = MxPattern::parse(&pattern).expect("generated patterns are valid");
        let got = parsed.matches(&host) == MxMatch::Match;
        prop_assert_eq!(got, reference_matches(&pattern, &host), "{} vs {}", pattern, host);
    }

    #[test]
    fn display_round_trips((pattern, _host) in case()) {
        let parsed = MxPattern::parse(&pattern).unwrap();
        let again = MxPattern::parse(&parsed.to_string()).unwrap();
        prop_assert_eq!(again, parsed);
    }
}
