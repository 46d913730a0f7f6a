//! TLS-RPT counter encoding read back from a shared store (fields, policy strings, bucket
//! keys are data another process wrote): never panics; what decodes re-encodes to a fixed
//! point, so a field counted twice lands in one bucket field.
#![no_main]

use smtp_tls_policy::tlsrpt::{
    CounterKey, DayCounters, ReportedPolicy, decode_failure_field, encode_field,
};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(result) = decode_failure_field(text) {
        let field = encode_field(&result);
        let again = decode_failure_field(&field).expect("an encoded field decodes");
        assert_eq!(encode_field(&again), field);
    }
    if let Ok(policy) = ReportedPolicy::from_store_string(text) {
        let stored = policy.to_store_string();
        let back = ReportedPolicy::from_store_string(&stored).expect("a stored policy reads");
        assert_eq!(back.to_store_string(), stored);
        let counters = DayCounters::from_fields(&policy, [(text, 1u64), ("s", 2)]);
        assert_eq!(
            counters
                .policy_report
                .summary
                .total_successful_session_count,
            if text == "s" { 3 } else { 2 }
        );
    }
    if let Some(key) = CounterKey::parse(text) {
        assert_eq!(CounterKey::parse(&key.to_string()), Some(key));
    }
});
