//! The sending side of TLS-RPT (RFC 8460): the counter encoding — failure fields and policy store
//! strings round-trip, counting through encoded fields matches a naive count (proptest), a hostile
//! MX cannot grow a bucket without bound, only well-formed HELO names and printable additional
//! information are kept. Shared setup: `common/tlsrpt.rs`.

use std::collections::BTreeMap;
use std::net::IpAddr;

use proptest::prelude::*;
use smtp_tls_policy::mta_sts::{Policy as StsPolicy, StsFailureKind};
use smtp_tls_policy::tlsrpt::{
    Aggregate, CounterKey, CounterUpdate, DayCounters, Endpoints, ReportedPolicy, ResultType,
    SUCCESS_FIELD, Session, SessionResult, TlsOutcome, decode_failure_field, encode_field,
};
use time::macros::date;

mod common {
    pub mod tlsrpt;
}
use common::tlsrpt::{STS_ENFORCE, USABLE, failure};

#[test]
fn failure_fields_escape_separators_and_decode_back() {
    let r = failure(
        ResultType::CertificateExpired,
        "MX1.Example.NET.",
        Some("https://x.example/a|b%7C"),
    );
    let field = encode_field(&r);
    assert!(field.starts_with("f|certificate-expired|192.0.2.1|2001:db8::25|mx1.example.net|"));
    assert_eq!(field.matches('|').count(), 7, "{field}");
    assert!(!field.contains('\r') && !field.contains('\n'));
    assert_eq!(decode_failure_field(&field), Some(r));
    assert_eq!(encode_field(&SessionResult::Success), SUCCESS_FIELD);
    assert_eq!(decode_failure_field(SUCCESS_FIELD), None);
    for bad in [
        "f|",
        "f|a|b",
        "f||||||",
        "f|x|not-an-ip||||||",
        "f|x||||||%G0",
        "g|x||||||",
    ] {
        assert_eq!(decode_failure_field(bad), None, "{bad}");
    }
}

#[test]
fn policy_store_strings_round_trip_and_bucket_ids_are_stable() {
    let sts = StsPolicy::parse(STS_ENFORCE).unwrap();
    let policy = ReportedPolicy::sts("Example.COM.", Some(&sts));
    let text = policy.to_store_string();
    assert_eq!(ReportedPolicy::from_store_string(&text).unwrap(), policy);
    assert!(ReportedPolicy::from_store_string("{").is_err());
    assert!(ReportedPolicy::from_store_string(r#"{"d":"example.com"}"#).is_err());
    // Found by the fuzz target: a domain ending in " ...." normalised once to "eaf|: ", twice
    // to "eaf|:" (the store string was not a fixed point); a stored policy now reads back as
    // stored, and construction normalises idempotently.
    let text = r#"{"d":"eaf|: ....","m":[],"p":[],"t":"sts"}"#;
    let odd = ReportedPolicy::from_store_string(text).unwrap();
    assert_eq!(odd.policy_domain, "eaf|: ....");
    assert_eq!(
        ReportedPolicy::from_store_string(&odd.to_store_string()).unwrap(),
        odd
    );
    let made = ReportedPolicy::no_policy_found("eaf|: ....");
    assert_eq!(made.policy_domain, "eaf|:");
    assert_eq!(ReportedPolicy::no_policy_found(&made.policy_domain), made);
    let key = CounterKey::new(date!(2026 - 12 - 04), &policy);
    assert_eq!(key, CounterKey::new(date!(2026 - 12 - 04), &policy.clone()));
    assert_eq!(key.bucket.len(), 32);
    assert_eq!(CounterKey::parse(&key.to_string()), Some(key.clone()));
    assert!(key.to_string().starts_with("2026-12-04:"));
    let other = CounterKey::new(
        date!(2026 - 12 - 04),
        &ReportedPolicy::no_policy_found("example.com"),
    );
    assert_ne!(key.bucket, other.bucket);
    assert_eq!(CounterKey::parse("2026-12-04:xyz"), None);
}

/// Successes, and each distinct failure with its count.
type NaiveCounts = (u64, Vec<(SessionResult, u64)>);

/// A session from a small alphabet, so that sequences repeat fields.
fn arb_session() -> impl Strategy<Value = Session> {
    let policy = prop_oneof![
        Just(ReportedPolicy::no_policy_found("a.example")),
        Just(ReportedPolicy::no_policy_found("b.example")),
        Just(ReportedPolicy::tlsa(
            "a.example",
            &[USABLE.parse().unwrap()]
        )),
    ];
    let outcome = prop_oneof![
        Just(TlsOutcome::Success),
        Just(TlsOutcome::StarttlsNotSupported),
        Just(TlsOutcome::TlsaNoMatch),
        Just(TlsOutcome::Sts(StsFailureKind::StsPolicyFetchError)),
    ];
    let ip = prop_oneof![
        Just(None),
        Just(Some("192.0.2.7".parse::<IpAddr>().unwrap())),
        Just(Some("2001:db8::1".parse::<IpAddr>().unwrap())),
    ];
    let text = prop_oneof![
        Just(None),
        Just(Some("mx|1%.example".to_owned())),
        "[a-z|%\\r\\n]{0,6}".prop_map(Some),
    ];
    (policy, outcome, ip.clone(), ip, text.clone(), text).prop_map(
        |(policy, outcome, s, r, mx, info)| {
            let mut endpoints = Endpoints::new(s, r, mx.as_deref());
            if let Some(h) = &info {
                endpoints = endpoints.with_helo(h);
            }
            let mut result = SessionResult::new(outcome, endpoints);
            if let Some(i) = &info {
                result = result.with_additional_information(i);
            }
            Session::new(policy, result)
        },
    )
}

proptest! {
    #[test]
    fn counting_through_encoded_fields_matches_a_naive_count(
        sessions in proptest::collection::vec((arb_session(), 0u8..2), 0..40)
    ) {
        let days = [date!(2026 - 12 - 04), date!(2026 - 12 - 05)];
        // Through the store path: updates as a shared store would apply them, read back per
        // bucket with the policy's store string.
        let mut store: BTreeMap<String, (String, BTreeMap<String, u64>)> = BTreeMap::new();
        let mut aggregate = Aggregate::new();
        for (session, d) in &sessions {
            let update = CounterUpdate::of(days[usize::from(*d)], session);
            let slot = store
                .entry(update.key.to_string())
                .or_insert_with(|| (session.policy.to_store_string(), BTreeMap::new()));
            *slot.1.entry(update.field.clone()).or_default() += update.increment;
            aggregate.record(days[usize::from(*d)], session);
        }
        // Naive reference: (day, policy) -> (successes, failure result -> count).
        let mut naive: BTreeMap<(String, String), NaiveCounts> = BTreeMap::new();
        for (session, d) in &sessions {
            let key = (days[usize::from(*d)].to_string(), session.policy.to_store_string());
            let slot = naive.entry(key).or_default();
            if session.result.is_success() {
                slot.0 += 1;
            } else if let Some(entry) = slot.1.iter_mut().find(|(r, _)| *r == session.result) {
                entry.1 += 1;
            } else {
                slot.1.push((session.result.clone(), 1));
            }
        }
        prop_assert_eq!(store.len(), naive.len());
        for (key, (policy_text, fields)) in &store {
            let policy = ReportedPolicy::from_store_string(policy_text).unwrap();
            let decoded = DayCounters::from_fields(&policy, fields.iter().map(|(f, n)| (f, *n)));
            prop_assert!(decoded.skipped_fields.is_empty());
            let day = CounterKey::parse(key).unwrap().day;
            let (successes, failures) = &naive[&(day.to_string(), policy_text.clone())];
            let entry = &decoded.policy_report;
            prop_assert_eq!(entry.summary.total_successful_session_count, *successes);
            prop_assert_eq!(
                entry.summary.total_failure_session_count,
                failures.iter().map(|(_, n)| n).sum::<u64>()
            );
            prop_assert_eq!(entry.failure_details.len(), failures.len());
            for (result, n) in failures {
                let SessionResult::Failure { result_type, receiving_mx_hostname, receiving_mx_helo,
                    additional_information, sending_mta_ip, receiving_ip, .. } = result else {
                    unreachable!()
                };
                let found = entry.failure_details.iter().find(|d| {
                    d.result_type == *result_type
                        && d.receiving_mx_hostname == *receiving_mx_hostname
                        && d.receiving_mx_helo == *receiving_mx_helo
                        && d.additional_information == *additional_information
                        && d.sending_mta_ip == *sending_mta_ip
                        && d.receiving_ip == *receiving_ip
                });
                prop_assert_eq!(found.map(|d| d.failed_session_count), Some(*n));
            }
            // The in-memory aggregate reads back the same entry.
            prop_assert!(aggregate.day(day).contains(&decoded));
        }
    }
}

/// A small deterministic generator (xorshift64) for the many-sessions tests.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// A HELO name a hostile MX might send: a valid name, a long label, control or non-ASCII
/// characters, separators.
fn random_helo(state: &mut u64) -> String {
    let n = next_random(state);
    match n % 5 {
        0 => format!("mx{n:x}.example.net"),
        1 => format!("h{n}|%\r\n"),
        2 => format!("m\u{e9}x{n}.example"),
        3 => format!("[192.0.2.{}]", n % 256),
        _ => format!("a b {n}"),
    }
}

#[test]
fn a_hostile_mx_varying_its_helo_cannot_grow_a_bucket_without_bound() {
    let day = date!(2026 - 12 - 04);
    let policy = ReportedPolicy::no_policy_found("a.example");
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    let mut aggregate = Aggregate::new();
    // A shared store as the relay drives it: it knows its fields and applies `within_bound`.
    let mut store: BTreeMap<String, u64> = BTreeMap::new();
    const SESSIONS: u64 = 10_000;
    for i in 0..SESSIONS {
        let outcome = if i % 2 == 0 {
            TlsOutcome::StarttlsNotSupported
        } else {
            TlsOutcome::CertificateExpired
        };
        let endpoints = Endpoints::new(
            Some("192.0.2.1".parse().unwrap()),
            Some("192.0.2.25".parse().unwrap()),
            Some("mx.a.example"),
        )
        .with_helo(&random_helo(&mut rng));
        let result = SessionResult::new(outcome, endpoints)
            .with_additional_information(&format!("https://help.example/{}", i % 3));
        let session = Session::new(policy.clone(), result);
        aggregate.record(day, &session);
        let update = CounterUpdate::of(day, &session);
        let known = store.contains_key(&update.field);
        let failure_fields = store.len();
        let update = update.within_bound(failure_fields, known);
        *store.entry(update.field).or_default() += update.increment;
    }
    let bound = CounterUpdate::MAX_FAILURE_FIELDS_PER_BUCKET;
    assert_eq!(bound, 256);
    let through_store = DayCounters::from_fields(&policy, store.iter().map(|(f, n)| (f, *n)));
    let in_memory = aggregate.day(day);
    assert_eq!(in_memory.len(), 1);
    for decoded in [&through_store, &in_memory[0]] {
        assert!(decoded.skipped_fields.is_empty());
        let entry = &decoded.policy_report;
        assert_eq!(entry.summary.total_failure_session_count, SESSIONS);
        assert_eq!(
            entry
                .failure_details
                .iter()
                .map(|d| d.failed_session_count)
                .sum::<u64>(),
            SESSIONS
        );
        let mut per_type: BTreeMap<String, usize> = BTreeMap::new();
        for d in &entry.failure_details {
            *per_type.entry(d.result_type.to_string()).or_default() += 1;
            if let Some(helo) = &d.receiving_mx_helo {
                assert!(
                    helo.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b".-[]:".contains(&b)),
                    "{helo:?}"
                );
            }
        }
        assert_eq!(per_type.len(), 2);
        assert!(per_type.values().all(|n| *n <= bound + 1), "{per_type:?}");
        assert!(entry.failure_details.len() <= bound + 2);
    }
}

#[test]
fn only_valid_helo_names_and_printable_additional_information_are_kept() {
    let helo = |h: &str| {
        Endpoints::new(None, None, Some("mx.example"))
            .with_helo(h)
            .receiving_mx_helo
    };
    assert_eq!(helo("MX1.Example.NET."), Some("mx1.example.net".to_owned()));
    assert_eq!(helo("[192.0.2.1]"), Some("[192.0.2.1]".to_owned()));
    assert_eq!(
        helo("[IPv6:2001:db8::1]"),
        Some("[IPv6:2001:db8::1]".to_owned())
    );
    for bad in [
        "",
        "helo|%name\r\n",
        "a b",
        "m\u{e9}x.example",
        "-mx.example",
        "mx..example",
        "[300.1.1.1]",
        "[IPv6:nope]",
        "x\u{7f}y",
    ] {
        assert_eq!(helo(bad), None, "{bad:?}");
    }
    assert_eq!(helo(&"a".repeat(64)), None);
    let info = |i: &str| match SessionResult::new(TlsOutcome::HandshakeFailed, Endpoints::default())
        .with_additional_information(i)
    {
        SessionResult::Failure {
            additional_information,
            ..
        } => additional_information,
        _ => unreachable!("a failure"),
    };
    assert_eq!(
        info("https://help.example/tls"),
        Some("https://help.example/tls".to_owned())
    );
    assert_eq!(info("554 5.7.1 go away\r\n"), None);
    assert_eq!(info("caf\u{e9}"), None);
}
