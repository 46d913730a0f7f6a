//! MTA-STS policy file parser (`mta_sts::Policy::parse`) and `mx` matching: never panics; a
//! valid policy keeps its invariants (mx present unless `none`, max_age clamped, patterns that
//! print and re-parse to themselves, the raw text kept).
//! Input: the policy body; the text after the last `\0`, if any, is an MX host to match.
#![no_main]

use smtp_tls_policy::mta_sts::{MAX_AGE_LIMIT, Mode, MxPattern, Policy};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (body, host) = match data.iter().rposition(|b| *b == 0) {
        Some(i) => (&data[..i], std::str::from_utf8(&data[i + 1..]).ok()),
        None => (data, None),
    };
    let Ok(policy) = Policy::parse(body) else {
        return;
    };
    assert!(policy.max_age <= MAX_AGE_LIMIT);
    assert!(policy.mode == Mode::None || !policy.mx.is_empty());
    assert_eq!(policy.text.as_bytes(), body);
    for pattern in &policy.mx {
        assert_eq!(MxPattern::parse(&pattern.to_string()).as_ref(), Ok(pattern));
    }
    if let Some(host) = host {
        let _ = policy.match_mx(host);
    }
    let _ = policy.policy_strings();
});
