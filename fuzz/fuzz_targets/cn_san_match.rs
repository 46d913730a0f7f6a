//! CN and SAN name matching through the identity algorithms, on names no certificate encoder
//! would produce: `CN \0 SAN dNSName \0 reference` (bytes, lossily decoded as UTF-8; an empty
//! CN or SAN part means none). Checks the rules the algorithms promise:
//! * Strict never matches the CN; Hosted Verify uses it only without a SAN dNSName;
//! * a match is always a pair `presented_matches` accepts;
//! * the CA/Browser Forum CN rule and FQDN validation never panic (issue 11, finding 5).
#![no_main]

use smtp_tls_policy::identity::{
    IdentityAlgorithm, NameSource, PresentedIdentities, ReferenceId, check_cn_in_san, check_fqdn,
    check_identity, presented_matches,
};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |b| *b == 0);
    let mut next = || String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let (cn, san, reference) = (next(), next(), next());
    let mut ids = PresentedIdentities::default();
    if !cn.is_empty() {
        ids.common_names.push(cn);
    }
    if !san.is_empty() {
        ids.san_dns_names.push(san);
    }
    let _ = check_cn_in_san(&ids);
    let _ = check_fqdn(&ids);
    let Ok(reference) = ReferenceId::parse(&reference) else {
        return;
    };
    for algorithm in [
        IdentityAlgorithm::Verify,
        IdentityAlgorithm::HostedVerify,
        IdentityAlgorithm::Strict,
    ] {
        let verdict = check_identity(&ids, std::slice::from_ref(&reference), algorithm);
        let Some(m) = verdict.matched else {
            continue;
        };
        assert!(presented_matches(&m.presented, &reference), "{m:?}");
        if m.presented.source == NameSource::CommonName {
            assert_ne!(algorithm, IdentityAlgorithm::Strict);
            assert!(algorithm == IdentityAlgorithm::Verify || ids.san_dns_names.is_empty());
        }
    }
});
