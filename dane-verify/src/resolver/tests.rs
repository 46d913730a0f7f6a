//! Unit tests of the resolver adapter (no network).

use hickory_resolver::proto::dnssec::TrustAnchors;
use hickory_resolver::proto::dnssec::rdata::DNSKEY;

use super::*;

#[test]
fn built_in_root_anchors_are_the_iana_ksks() {
    // BUILT_IN_ROOT_ANCHORS names these key tags: keep them true when hickory changes
    let anchors = TrustAnchors::default();
    let tags: Vec<u16> = (0..anchors.len())
        .map(|i| {
            let key = anchors.get(i).unwrap().clone();
            DNSKEY::new(true, true, false, key)
                .calculate_key_tag()
                .unwrap()
        })
        .collect();
    assert_eq!(tags, [20326, 38696]);
    for tag in tags {
        assert!(BUILT_IN_ROOT_ANCHORS.contains(&tag.to_string()));
    }
}

#[test]
fn validation_state_round_trips_and_defaults_to_unproven() {
    assert_eq!(ValidationState::default(), ValidationState::Unproven);
    for s in [
        ValidationState::Unproven,
        ValidationState::Validating,
        ValidationState::NotValidating,
    ] {
        assert_eq!(ValidationState::from_u8(s.to_u8()), s);
        assert_eq!(
            s.is_proven(),
            s == ValidationState::Validating,
            "{}",
            s.as_str()
        );
    }
}

#[test]
fn unproven_answers_are_indeterminate_but_bogus_stays() {
    use DnssecStatus::{Bogus, Indeterminate, Insecure, Secure};
    for (before, after) in [
        (Secure, Indeterminate),
        (Insecure, Indeterminate),
        (Bogus, Bogus),
        (Indeterminate, Indeterminate),
    ] {
        let a = Answer::NoRecords {
            nxdomain: false,
            status: before,
            ttl: 5,
            cnames: Vec::new(),
        };
        assert!(
            matches!(a.unproven(), Answer::NoRecords { status, .. } if status == after),
            "{before:?}"
        );
    }
}

#[test]
fn unproven_actions_defer_mandatory_only() {
    let host = HostFacts {
        next_hop: "example.test".into(),
        mx_host: "mx.example.test".into(),
        mx_status: DnssecStatus::Indeterminate,
        address_status: DnssecStatus::Indeterminate,
        tlsa_base: "mx.example.test".into(),
        tlsa: TlsaLookup::NotQueried,
    };
    let mut f = DestinationFacts {
        domain: "example.test".into(),
        mx_status: DnssecStatus::Indeterminate,
        mx_failure: None,
        hosts: vec![host],
        ignored_mx_hosts: 0,
        validation: ValidationState::NotValidating,
    };
    let action = |f: &DestinationFacts, s| f.actions(s)[0].1.clone();
    let indeterminate = DaneAction::Defer(DeferReason::MxLookup(DnssecStatus::Indeterminate));
    assert_eq!(action(&f, DaneSetting::Mandatory), indeterminate);
    assert_eq!(
        action(&f, DaneSetting::Opportunistic),
        DaneAction::ConfiguredTls(NoDaneReason::ValidationUnproven)
    );
    assert_eq!(
        action(&f, DaneSetting::None),
        DaneAction::ConfiguredTls(NoDaneReason::SettingNone)
    );
    // proven, the same indeterminate facts defer (RFC 7672 §2.1.1)
    f.validation = ValidationState::Validating;
    assert_eq!(action(&f, DaneSetting::Opportunistic), indeterminate);
    // unproven and the MX lookup failed: the destination defers whatever the setting
    f.validation = ValidationState::Unproven;
    f.hosts.clear();
    f.mx_failure = Some(LookupFailure::Timeout);
    assert_eq!(action(&f, DaneSetting::None), indeterminate);
    // unproven NXDOMAIN / null MX: no host, nothing to defer on
    f.mx_failure = None;
    assert!(f.actions(DaneSetting::Mandatory).is_empty());
}
