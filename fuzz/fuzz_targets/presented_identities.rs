//! Presented identities from a DER certificate (`PresentedIdentities::from_der`, x509-parser:
//! subject CNs, SAN dNSNames and iPAddresses) and every check that reads them — the CA/Browser
//! Forum CN rule, FQDN and X.509 validation, the three identity algorithms — never panic on
//! peer bytes (issue 11, finding 5: a multibyte CN made the CN rule slice inside a character).
//! Input: one DER certificate.
#![no_main]

use smtp_tls_policy::identity::{
    IdentityAlgorithm, NameSource, PresentedIdentities, ReferenceId, check_cn_in_san, check_fqdn,
    check_identity, check_x509,
};

const ALGORITHMS: [IdentityAlgorithm; 3] = [
    IdentityAlgorithm::Verify,
    IdentityAlgorithm::HostedVerify,
    IdentityAlgorithm::Strict,
];

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(ids) = PresentedIdentities::from_der(data) else {
        return;
    };
    let _ = check_cn_in_san(&ids);
    let _ = check_fqdn(&ids);
    // Every presented name, read as a reference identity, is a reference to try.
    let mut references: Vec<ReferenceId> = ids
        .all_names()
        .filter_map(|p| ReferenceId::parse(&p.value).ok())
        .collect();
    references.push(ReferenceId::parse("mx.example.com").expect("valid"));
    references.truncate(16);
    for reference in &references {
        let _ = check_x509(&ids, reference);
    }
    for algorithm in ALGORITHMS {
        let considered = algorithm.presented_names(&ids);
        let verdict = check_identity(&ids, &references, algorithm);
        if let Some(m) = &verdict.matched {
            // The match is one of the names the algorithm considers...
            assert!(considered.contains(&m.presented), "{algorithm:?}: {m:?}");
            // ...and the CN only where the algorithm uses it.
            if m.presented.source == NameSource::CommonName {
                assert!(algorithm.uses_common_name(&ids), "{algorithm:?}: {m:?}");
            }
        }
        let _ = verdict.into_result(&ids, algorithm);
    }
});
