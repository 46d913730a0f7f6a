//! Fuzzes the RFC 6125 name matcher: presented identifier × reference identity.
//! Input: `presented \0 reference` (bytes, lossily decoded as UTF-8).
#![no_main]

use smtp_tls_policy::identity::{
    DnsName, NameSource, PresentedName, ReferenceId, dns_name_matches, is_fqdn, presented_matches,
};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(2, |b| *b == 0);
    let presented = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let reference = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let _ = is_fqdn(&presented);
    let Ok(reference_id) = ReferenceId::parse(&reference) else {
        return;
    };
    for source in [
        NameSource::CommonName,
        NameSource::SanDns,
        NameSource::SanIp,
    ] {
        let p = PresentedName {
            source,
            value: presented.to_string(),
        };
        let _ = presented_matches(&p, &reference_id);
    }
    if let ReferenceId::Dns(name) = &reference_id {
        // A parsed reference never contains a wildcard and round-trips through the parser.
        assert!(!name.as_str().contains('*'));
        assert_eq!(DnsName::parse(name.as_str()).as_ref(), Ok(name));
        if dns_name_matches(&presented, name) {
            // A match never spans a different number of labels (wildcards stand for one label).
            let p = presented.strip_suffix('.').unwrap_or(&presented);
            assert_eq!(p.split('.').count(), name.as_str().split('.').count());
            assert!(p.is_ascii());
        }
    }
});
