//! Unit tables for the private helpers of the MTA-STS module.

use super::cache::{CacheConfig, on_fetch};
use super::txt::select_txt_record;
use super::*;

#[test]
fn version_prefix_is_a_whole_field() {
    // (record, is a candidate)
    let cases: [(&[u8], bool); 7] = [
        (b"v=STSv1", true),
        (b"v=STSv1;", true),
        (b"v=STSv1 ;id=a", true),
        (b"v=STSv1\t; id=a", true),
        (b"v=STSv10; id=a", false),
        (b"v=STSv1x", false),
        (b" v=STSv1; id=a", false),
    ];
    for (record, candidate) in cases {
        let outcome = select_txt_record(&[[record]]);
        assert_eq!(outcome != TxtOutcome::NoRecord, candidate, "{record:?}");
    }
}

#[test]
fn peer_text_is_clipped_on_character_boundaries() {
    let long = "é".repeat(100);
    let text = format!("version: STSv1\nmode: {long}\nmax_age: 1\n");
    match Policy::parse(text.as_bytes()) {
        Err(PolicyError::InvalidMode { value }) => assert_eq!(value.chars().count(), 80),
        other => panic!("{other:?}"),
    }
}

#[test]
fn refresh_boundary_and_backoff_bounds() {
    let cfg = CacheConfig::default();
    let policy = Policy::parse(b"version: STSv1\nmode: none\nmax_age: 400\n").unwrap();
    let domain = PolicyDomain::parse("example.com").unwrap();
    let id = StsId::parse("a").unwrap();
    let source = PolicySource::new(domain.policy_url(), None);
    let (entry, _) = on_fetch(
        CacheEntry::new(domain),
        &id,
        FetchResult::Valid { policy, source },
        1000,
        &cfg,
    );
    let txt = StsTxtOutcome::Answer(select_txt_record(&[["v=STSv1; id=a"]]));
    // lifetime 400, divisor 4: due once 100 s have passed (fetched at 1000, expires at 1400).
    for (now, due) in [(1000, false), (1099, false), (1100, true), (1399, true)] {
        let d = decide(Some(&entry), &txt, now, &cfg);
        assert_eq!(
            d,
            CacheDecision::UseCached {
                reason: UseCachedReason::SameId,
                refresh_due: due
            },
            "{now}"
        );
    }
    assert!(matches!(
        decide(Some(&entry), &txt, 1400, &cfg),
        CacheDecision::Fetch { .. }
    ));
    assert_eq!(cfg.backoff_after(0), 300);
    assert_eq!(cfg.backoff_after(1), 300);
    assert_eq!(cfg.backoff_after(3), 1200);
    assert_eq!(cfg.backoff_after(u32::MAX), 3600);
}
