//! MTA-STS (RFC 8461) table tests: the cache state machine keyed by policy domain and the
//! per-MX-host verdict (issue 13: TXT id change, lookup failure, DNSSEC bogus, back-off,
//! proactive refresh, `mode: none`, trailing dots, the reason of a skipped host).

use smtp_tls_policy::mta_sts::*;

const RFC_POLICY: &str = "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmx: backupmx.example.com\r\nmax_age: 604800\r\n";

fn policy(text: &str) -> Result<Policy, PolicyError> {
    Policy::parse(text.as_bytes())
}

fn id(s: &str) -> StsId {
    StsId::parse(s).unwrap()
}

fn record(s: &str) -> TxtOutcome {
    TxtOutcome::Record(parse_txt_record(&format!("v=STSv1; id={s}")).unwrap())
}

// --- cache state machine (RFC 8461 §5.1) ---

const NOW: u64 = 1_700_000_000;

fn domain() -> PolicyDomain {
    PolicyDomain::parse("example.com").unwrap()
}

fn cached_entry(id_text: &str, fetched_at: u64, text: &str) -> CacheEntry {
    let entry = CacheEntry::new(domain());
    let result = FetchResult::Valid {
        policy: policy(text).unwrap(),
        source: PolicySource::new(domain().policy_url(), None),
    };
    let (entry, after) = on_fetch(
        entry,
        &id(id_text),
        result,
        fetched_at,
        &CacheConfig::default(),
    );
    assert_eq!(after, AfterFetch::Fetched);
    entry
}

fn fetch_failure() -> StsFailure {
    StsFailure::new(
        StsFailureKind::StsPolicyFetchError,
        "HTTP status 404, not 200",
    )
}

fn answer(id_text: &str) -> StsTxtOutcome {
    StsTxtOutcome::Answer(record(id_text))
}

#[test]
fn trailing_dot_changes_nothing() {
    let a = PolicyDomain::parse("Example.COM.").unwrap();
    let b = PolicyDomain::parse("example.com").unwrap();
    assert_eq!(a, b);
    assert_eq!(
        a.policy_url(),
        "https://mta-sts.example.com/.well-known/mta-sts.txt"
    );
    assert_eq!(a.txt_name(), "_mta-sts.example.com");
    assert_eq!(a.policy_host(), b.policy_host());
    let p = policy(RFC_POLICY).unwrap();
    assert_eq!(
        host_verdict(Some(&p), "mail.example.com.").action,
        StsHostAction::RequirePkix
    );
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        serde_json::to_string(&b).unwrap(),
        "one cache key"
    );
}

#[test]
fn cache_decision_table() {
    let cfg = CacheConfig::default();
    let fresh = cached_entry("one", NOW - 100, RFC_POLICY); // max_age 604800
    let expired = cached_entry("one", NOW - 700_000, RFC_POLICY);
    let empty = CacheEntry::new(domain());
    let none = StsTxtOutcome::Answer(TxtOutcome::NoRecord);
    let several = StsTxtOutcome::Answer(TxtOutcome::SeveralRecords { count: 2 });
    use CacheDecision as D;
    let cases: Vec<(&str, Option<&CacheEntry>, StsTxtOutcome, CacheDecision)> = vec![
        (
            "same id: no fetch",
            Some(&fresh),
            answer("one"),
            D::UseCached {
                reason: UseCachedReason::SameId,
                refresh_due: false,
            },
        ),
        (
            "id changed: fetch",
            Some(&fresh),
            answer("two"),
            D::Fetch {
                reason: FetchReason::IdChanged,
            },
        ),
        (
            "nothing cached: fetch",
            None,
            answer("one"),
            D::Fetch {
                reason: FetchReason::NotCached,
            },
        ),
        (
            "empty entry: fetch",
            Some(&empty),
            answer("one"),
            D::Fetch {
                reason: FetchReason::NotCached,
            },
        ),
        (
            "expired, same id: fetch",
            Some(&expired),
            answer("one"),
            D::Fetch {
                reason: FetchReason::NotCached,
            },
        ),
        (
            "record gone, cache fresh: keep (5.1)",
            Some(&fresh),
            none.clone(),
            D::UseCached {
                reason: UseCachedReason::NoRecord,
                refresh_due: false,
            },
        ),
        (
            "several records, cache fresh: keep",
            Some(&fresh),
            several.clone(),
            D::UseCached {
                reason: UseCachedReason::NoRecord,
                refresh_due: false,
            },
        ),
        (
            "lookup failed, cache fresh: keep",
            Some(&fresh),
            StsTxtOutcome::Failed,
            D::UseCached {
                reason: UseCachedReason::LookupFailed,
                refresh_due: false,
            },
        ),
        (
            "bogus, cache fresh: keep",
            Some(&fresh),
            StsTxtOutcome::Bogus,
            D::UseCached {
                reason: UseCachedReason::Bogus,
                refresh_due: false,
            },
        ),
        (
            "no record, nothing cached",
            None,
            none.clone(),
            D::NoPolicy {
                reason: NoPolicyReason::NoRecord,
            },
        ),
        (
            "no record, expired",
            Some(&expired),
            none,
            D::NoPolicy {
                reason: NoPolicyReason::NoRecord,
            },
        ),
        (
            "several records, nothing cached",
            None,
            several,
            D::NoPolicy {
                reason: NoPolicyReason::NoRecord,
            },
        ),
        (
            "lookup failed, nothing cached",
            None,
            StsTxtOutcome::Failed,
            D::TemporaryFailure {
                reason: TemporaryReason::LookupFailed,
            },
        ),
        (
            "bogus is never 'no record'",
            None,
            StsTxtOutcome::Bogus,
            D::TemporaryFailure {
                reason: TemporaryReason::Bogus,
            },
        ),
        (
            "bogus, expired",
            Some(&expired),
            StsTxtOutcome::Bogus,
            D::TemporaryFailure {
                reason: TemporaryReason::Bogus,
            },
        ),
    ];
    for (name, entry, lookup, expected) in cases {
        assert_eq!(decide(entry, &lookup, NOW, &cfg), expected, "{name}");
    }
}

#[test]
fn proactive_refresh_before_expiry() {
    let cfg = CacheConfig::default();
    // max_age 604800: refresh due a day after the fetch (a quarter would be 151200 s).
    let entry = cached_entry("one", NOW - 604_800 + 1000, RFC_POLICY);
    assert_eq!(
        decide(Some(&entry), &answer("one"), NOW, &cfg),
        CacheDecision::UseCached {
            reason: UseCachedReason::SameId,
            refresh_due: true
        }
    );
    let young = cached_entry("one", NOW - 1000, RFC_POLICY);
    assert!(matches!(
        decide(Some(&young), &answer("one"), NOW, &cfg),
        CacheDecision::UseCached {
            refresh_due: false,
            ..
        }
    ));
}

#[test]
fn failed_fetch_keeps_policy_and_backs_off() {
    let cfg = CacheConfig::default();
    let entry = cached_entry("one", NOW - 100, RFC_POLICY);
    // The id changes, the fetch fails: the old policy stays, and a back-off starts.
    assert_eq!(
        decide(Some(&entry), &answer("two"), NOW, &cfg),
        CacheDecision::Fetch {
            reason: FetchReason::IdChanged
        }
    );
    let (entry, after) = on_fetch(
        entry,
        &id("two"),
        FetchResult::Failed {
            failure: fetch_failure(),
        },
        NOW,
        &cfg,
    );
    assert_eq!(after, AfterFetch::KeptCached);
    let kept = entry.policy.as_ref().unwrap();
    assert_eq!((kept.id.as_str(), kept.policy.mode), ("one", Mode::Enforce));
    assert_eq!(
        entry.backoff.as_ref().map(|b| (b.failures, b.retry_at)),
        Some((1, NOW + 300))
    );
    assert_eq!(
        entry.backoff.as_ref().unwrap().last_failure,
        fetch_failure()
    );
    // During the back-off: the cached policy, no fetch.
    assert_eq!(
        decide(Some(&entry), &answer("two"), NOW + 30, &cfg),
        CacheDecision::UseCached {
            reason: UseCachedReason::BackingOff,
            refresh_due: false
        }
    );
    // After it: fetch again; failures double the back-off, bounded.
    assert_eq!(
        decide(Some(&entry), &answer("two"), NOW + 300, &cfg),
        CacheDecision::Fetch {
            reason: FetchReason::IdChanged
        }
    );
    let (entry, _) = on_fetch(
        entry,
        &id("two"),
        FetchResult::Failed {
            failure: fetch_failure(),
        },
        NOW + 300,
        &cfg,
    );
    assert_eq!(
        entry.backoff.as_ref().map(|b| (b.failures, b.retry_at)),
        Some((2, NOW + 300 + 600))
    );
    assert_eq!(cfg.backoff_after(40), cfg.backoff_max);
    // A valid policy replaces it and clears the back-off.
    let none = policy("version: STSv1\nmode: none\nmax_age: 86400\n").unwrap();
    let source = PolicySource::new(domain().policy_url(), Some("192.0.2.1:443".into()));
    let (entry, after) = on_fetch(
        entry,
        &id("two"),
        FetchResult::Valid {
            policy: none,
            source,
        },
        NOW + 1000,
        &cfg,
    );
    assert_eq!(after, AfterFetch::Fetched);
    assert_eq!(entry.backoff, None);
    // `mode: none` ends the old constraint.
    assert_eq!(effective_mode(&entry, NOW + 1000), Some(Mode::None));
    let p = entry.fresh_policy(NOW + 1000).map(|c| &c.policy);
    assert_eq!(
        host_verdict(p, "anything.example").action,
        StsHostAction::NoConstraint
    );
}

#[test]
fn failed_fetch_without_cache_is_no_policy_then_backs_off() {
    let cfg = CacheConfig::default();
    let entry = CacheEntry::new(domain());
    let (entry, after) = on_fetch(
        entry,
        &id("one"),
        FetchResult::Failed {
            failure: fetch_failure(),
        },
        NOW,
        &cfg,
    );
    assert_eq!(after, AfterFetch::NoPolicy);
    assert_eq!(entry.policy_after(after, NOW), None);
    assert_eq!(
        decide(Some(&entry), &answer("one"), NOW + 1, &cfg),
        CacheDecision::NoPolicy {
            reason: NoPolicyReason::FetchBackingOff
        }
    );
}

#[test]
fn cache_entry_serde_round_trip() {
    let mut entry = cached_entry("one", NOW, RFC_POLICY);
    on_same_id(&mut entry, NOW + 5);
    assert_eq!(entry.policy.as_ref().unwrap().last_checked, NOW + 5);
    let json = serde_json::to_string(&entry).unwrap();
    let back: CacheEntry = serde_json::from_str(&json).unwrap();
    assert_eq!(back, entry);
    let bad = json.replace("\"one\"", "\"not valid!\"");
    assert!(
        serde_json::from_str::<CacheEntry>(&bad).is_err(),
        "ids are checked on load"
    );
}

// --- per-host verdict (RFC 8461 §4, §5) ---

#[test]
fn host_verdict_per_mode() {
    let enforce = policy(RFC_POLICY).unwrap();
    let testing = policy(&RFC_POLICY.replace("enforce", "testing")).unwrap();
    let listed = host_verdict(Some(&enforce), "x.example.net");
    assert_eq!(listed.action, StsHostAction::RequirePkix);
    assert!(listed.mx_match.as_ref().unwrap().is_match());
    let skipped = host_verdict(Some(&enforce), "a.b.example.net");
    assert!(!skipped.may_connect());
    let StsHostAction::SkipHost { failure } = &skipped.action else {
        panic!()
    };
    assert!(
        failure
            .detail
            .contains("*.example.net: pattern matches one label; host has two"),
        "{}",
        failure.detail
    );
    assert_eq!(failure.kind.result_type(), "validation-failure");
    // testing: deliver anyway, failure recorded
    let t = host_verdict(Some(&testing), "other.example.org");
    assert!(t.may_connect());
    assert!(matches!(
        &t.action,
        StsHostAction::ReportOnly { failure: Some(_) }
    ));
    let ok_cert = StsCertificateCheck::Valid {
        matched: "x".into(),
    };
    assert!(matches!(
        t.on_certificate(&ok_cert),
        StsPeerVerdict::AcceptReported { .. }
    ));
    // no policy
    assert_eq!(
        host_verdict(None, "mx.example").action,
        StsHostAction::NoConstraint
    );
    // after the handshake
    let bad_cert = StsCertificateCheck::Invalid {
        failure: StsFailure::new(StsFailureKind::CertificateExpired, "expired"),
    };
    assert_eq!(listed.on_certificate(&ok_cert), StsPeerVerdict::Accept);
    assert!(
        matches!(listed.on_certificate(&bad_cert), StsPeerVerdict::Reject { failure } if failure.kind == StsFailureKind::CertificateExpired)
    );
    let t_listed = host_verdict(Some(&testing), "mail.example.com");
    assert!(matches!(
        t_listed.on_certificate(&bad_cert),
        StsPeerVerdict::AcceptReported { .. }
    ));
    assert_eq!(t_listed.on_certificate(&ok_cert), StsPeerVerdict::Accept);
    let json = serde_json::to_value(&skipped).unwrap();
    assert_eq!(json["action"], "skip-host");
    assert_eq!(json["mode"], "enforce");
}

#[test]
fn failure_kinds_name_rfc8460_result_types() {
    let all = [
        (
            StsFailureKind::StsPolicyFetchError,
            "sts-policy-fetch-error",
        ),
        (StsFailureKind::StsPolicyInvalid, "sts-policy-invalid"),
        (StsFailureKind::StsWebpkiInvalid, "sts-webpki-invalid"),
        (
            StsFailureKind::CertificateHostMismatch,
            "certificate-host-mismatch",
        ),
        (StsFailureKind::CertificateExpired, "certificate-expired"),
        (
            StsFailureKind::CertificateNotTrusted,
            "certificate-not-trusted",
        ),
        (StsFailureKind::ValidationFailure, "validation-failure"),
    ];
    for (kind, text) in all {
        assert_eq!(kind.result_type(), text);
        assert_eq!(serde_json::to_value(kind).unwrap(), text);
    }
}

#[test]
fn max_age_zero_applies_once_and_is_not_cached() {
    let cfg = CacheConfig::default();
    let zero = policy("version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 0\n").unwrap();
    let source = PolicySource::new(domain().policy_url(), None);
    let (entry, after) = on_fetch(
        CacheEntry::new(domain()),
        &id("one"),
        FetchResult::Valid {
            policy: zero,
            source,
        },
        NOW,
        &cfg,
    );
    let applied = entry.policy_after(after, NOW).map(|c| c.policy.mode);
    assert_eq!(
        applied,
        Some(Mode::Enforce),
        "the fetched policy governs this delivery"
    );
    assert_eq!(entry.fresh_policy(NOW), None, "but it is not kept");
    assert_eq!(
        decide(Some(&entry), &answer("one"), NOW, &cfg),
        CacheDecision::Fetch {
            reason: FetchReason::NotCached
        }
    );
}

#[test]
fn dns_lookup_outcomes_map_without_confusing_bogus_and_no_record() {
    use dane_verify::{DnssecStatus, TxtLookup as Dns, TxtRecord};
    let rec = |s: &str| TxtRecord::new(vec![s.as_bytes().to_vec()]);
    let cases = [
        (
            Dns::Found {
                records: vec![rec("v=STSv1; id=a"), rec("v=spf1 -all")],
                status: DnssecStatus::Secure,
            },
            answer("a"),
        ),
        (
            Dns::Found {
                records: vec![rec("v=STSv1; id=a"), rec("v=STSv1; id=b")],
                status: DnssecStatus::Insecure,
            },
            StsTxtOutcome::Answer(TxtOutcome::SeveralRecords { count: 2 }),
        ),
        (
            Dns::NotFound {
                status: DnssecStatus::Secure,
            },
            StsTxtOutcome::Answer(TxtOutcome::NoRecord),
        ),
        (Dns::Bogus, StsTxtOutcome::Bogus),
        // over the resolver's limits: not exactly one record, no policy (RFC 8461 §3.1) —
        // never a lookup failure, which would defer the mail
        (
            Dns::TooLarge {
                records: 40,
                bytes: 900,
                status: DnssecStatus::Insecure,
            },
            StsTxtOutcome::Answer(TxtOutcome::TooManyRecords { count: 40 }),
        ),
    ];
    for (dns, expected) in cases {
        assert_eq!(StsTxtOutcome::from_dns(&dns), expected, "{dns:?}");
    }
    let too_large = StsTxtOutcome::from_dns(&Dns::TooLarge {
        records: 2,
        bytes: 70_000,
        status: DnssecStatus::Secure,
    });
    assert_eq!(
        decide(None, &too_large, NOW, &CacheConfig::default()),
        CacheDecision::NoPolicy {
            reason: NoPolicyReason::NoRecord
        }
    );
}

#[test]
fn backoff_is_per_policy_id_and_starts_at_five_minutes() {
    // RFC 8461 §3.3: senders should not refetch the same policy version more often than
    // every five minutes or so; a new id announces a new version, fetched at once.
    let cfg = CacheConfig::default();
    assert_eq!(cfg.backoff_initial, 300);
    let failed = |entry, txt_id: &str, at| {
        on_fetch(
            entry,
            &id(txt_id),
            FetchResult::Failed {
                failure: fetch_failure(),
            },
            at,
            &cfg,
        )
        .0
    };
    // Nothing cached: the fetch for "one" fails, the record then announces "two".
    let entry = failed(CacheEntry::new(domain()), "one", NOW);
    let backoff = entry.backoff.as_ref().unwrap();
    assert_eq!((backoff.id.as_str(), backoff.retry_at), ("one", NOW + 300));
    assert_eq!(
        decide(Some(&entry), &answer("one"), NOW + 1, &cfg),
        CacheDecision::NoPolicy {
            reason: NoPolicyReason::FetchBackingOff
        },
        "same id: backing off"
    );
    assert_eq!(
        decide(Some(&entry), &answer("two"), NOW + 1, &cfg),
        CacheDecision::Fetch {
            reason: FetchReason::NotCached
        },
        "a new id is fetched at once"
    );
    // A cached "one", the fetch of "two" fails, the record then announces "three".
    let entry = failed(cached_entry("one", NOW - 100, RFC_POLICY), "two", NOW);
    assert_eq!(
        decide(Some(&entry), &answer("two"), NOW + 1, &cfg),
        CacheDecision::UseCached {
            reason: UseCachedReason::BackingOff,
            refresh_due: false
        }
    );
    assert_eq!(
        decide(Some(&entry), &answer("three"), NOW + 1, &cfg),
        CacheDecision::Fetch {
            reason: FetchReason::IdChanged
        }
    );
    // A failure of the new id starts its own back-off, not the doubled one of the old id.
    let entry = failed(entry, "three", NOW + 1);
    let backoff = entry.backoff.as_ref().unwrap();
    assert_eq!(
        (backoff.id.as_str(), backoff.failures, backoff.retry_at),
        ("three", 1, NOW + 1 + 300)
    );
}

#[test]
fn refresh_due_after_a_quarter_of_the_lifetime_at_most_daily() {
    let cfg = CacheConfig::default();
    let due = |max_age: u64, age: u64| {
        let text =
            format!("version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: {max_age}\n");
        let entry = cached_entry("one", NOW - age, &text);
        match decide(Some(&entry), &answer("one"), NOW, &cfg) {
            CacheDecision::UseCached {
                reason: UseCachedReason::SameId,
                refresh_due,
            } => refresh_due,
            other => panic!("{other:?}"),
        }
    };
    // (max_age, seconds since the fetch, refresh due)
    let cases = [
        // a week: a quarter is 151200 s, longer than a day: refreshed daily
        (604_800, 0, false),
        (604_800, 86_399, false),
        (604_800, 86_400, true),
        (604_800, 500_000, true),
        // a year: daily too
        (31_557_600, 86_400, true),
        // 40000 s: a quarter (10000 s) is less than a day
        (40_000, 9_999, false),
        (40_000, 10_000, true),
        (40_000, 39_999, true),
    ];
    for (max_age, age, expected) in cases {
        assert_eq!(due(max_age, age), expected, "max_age {max_age}, age {age}");
    }
}
