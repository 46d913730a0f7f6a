//! The TLS-RPT sessions of a hop: the MTA-STS policy its verdict came from goes into the
//! report (`policy-type` `sts`, `policy-string`, `mx-host`) under `enforce` and `testing`,
//! `no-policy-found` under `none` or without a policy; a failed policy fetch is a failed
//! session of its own result type.

use dane_verify::DnssecStatus::Insecure;
use dane_verify::{TlsaLookup, decide};
use smtp_tls_policy::delivery::TlsRequest;
use smtp_tls_policy::destination::DestinationControls;
use smtp_tls_policy::mta_sts::{StsFailureKind, host_verdict};
use smtp_tls_policy::tlsrpt::{PolicyType, ResultType};

use super::super::sts::Applied;
use super::*;

const ENFORCE: &[u8] =
    b"version: STSv1\nmode: enforce\nmx: mx.example.net\nmx: *.backup.example.net\nmax_age: 86400\n";
const TESTING: &[u8] = b"version: STSv1\nmode: testing\nmx: mx.example.net\nmax_age: 86400\n";
const NONE: &[u8] = b"version: STSv1\nmode: none\nmax_age: 86400\n";

fn policy() -> DestinationPolicy {
    DestinationControls::from_toml(
        "destinations.toml",
        "[default]\ntls = \"preferred\"\ndane = \"opportunistic\"\n",
    )
    .unwrap()
    .lookup("example.com")
    .unwrap()
}

/// MX host `mx.example.net` of `example.com` (insecure zone) with the verdict of `sts`.
fn hop(sts: Option<&[u8]>) -> Hop {
    let sts = sts.map(|text| Arc::new(StsPolicy::parse(text).unwrap()));
    let facts = HostFacts {
        next_hop: "example.com".into(),
        mx_host: "mx.example.net".into(),
        mx_status: Insecure,
        address_status: Insecure,
        tlsa_base: "mx.example.net".into(),
        tlsa: TlsaLookup::NotQueried,
    };
    let action = decide(policy().dane, &facts);
    Hop {
        name: "mx.example.net".into(),
        port: 25,
        source: HostSource::Mx,
        facts,
        action,
        addresses: vec!["192.0.2.25".parse().unwrap()],
        sts: sts
            .as_deref()
            .map(|p| host_verdict(Some(p), "mx.example.net")),
        sts_policy: sts,
    }
}

fn session_of(hop: &Hop) -> TlsRptSession {
    let plan = hop.plan(&policy());
    session(
        &plan,
        hop,
        TlsOutcome::Success,
        Some("192.0.2.1".parse().unwrap()),
        Some("192.0.2.25".parse().unwrap()),
    )
    .expect("a session")
}

#[test]
fn enforce_and_testing_sessions_carry_the_policy_text_and_mx_patterns() {
    let s = session_of(&hop(Some(ENFORCE)));
    assert_eq!(s.policy.policy_type, PolicyType::Sts);
    assert_eq!(s.policy.policy_domain, "example.com");
    assert_eq!(
        s.policy.policy_strings,
        [
            "version: STSv1",
            "mode: enforce",
            "mx: mx.example.net",
            "mx: *.backup.example.net",
            "max_age: 86400"
        ]
    );
    assert_eq!(
        s.policy.mx_hosts,
        ["mx.example.net", "*.backup.example.net"]
    );
    assert!(s.result.is_success());

    let s = session_of(&hop(Some(TESTING)));
    assert_eq!(s.policy.policy_type, PolicyType::Sts);
    assert_eq!(s.policy.policy_strings[1], "mode: testing");
    assert_eq!(s.policy.mx_hosts, ["mx.example.net"]);
}

#[test]
fn none_mode_and_no_policy_count_under_no_policy_found() {
    for sts in [Some(NONE), None] {
        let s = session_of(&hop(sts));
        assert_eq!(s.policy.policy_type, PolicyType::NoPolicyFound, "{sts:?}");
        assert_eq!(s.policy.policy_domain, "example.com");
        assert!(s.policy.policy_strings.is_empty());
        assert!(s.policy.mx_hosts.is_empty());
    }
}

#[test]
fn tls_required_no_attempts_are_not_sessions() {
    let hop = hop(Some(ENFORCE));
    let plan = hop
        .plan(&policy())
        .with_tls_request(TlsRequest::TlsOptional);
    assert!(session(&plan, &hop, TlsOutcome::Success, None, None).is_none());
}

#[test]
fn failed_fetches_are_failed_sts_sessions_of_their_result_type() {
    let cases = [
        (
            StsFailureKind::StsPolicyFetchError,
            ResultType::StsPolicyFetchError,
        ),
        (
            StsFailureKind::StsPolicyInvalid,
            ResultType::StsPolicyInvalid,
        ),
        (
            StsFailureKind::StsWebpkiInvalid,
            ResultType::StsWebpkiInvalid,
        ),
    ];
    for (kind, expected) in cases {
        let failure = StsFailure::new(kind, "test");
        // Nothing cached: `sts` without policy strings.
        let s = sts_failure_session("Example.COM.", None, &failure);
        assert_eq!(s.policy.policy_type, PolicyType::Sts);
        assert_eq!(s.policy.policy_domain, "example.com");
        assert!(s.policy.policy_strings.is_empty());
        match &s.result {
            SessionResult::Failure {
                result_type,
                receiving_mx_hostname,
                receiving_ip,
                ..
            } => {
                assert_eq!(*result_type, expected);
                assert_eq!(*receiving_mx_hostname, None);
                assert_eq!(*receiving_ip, None);
            }
            other => panic!("{kind:?}: {other:?}"),
        }
    }
    // A failed refresh while a cached enforce policy holds: counted under that policy.
    let cached = StsPolicy::parse(ENFORCE).unwrap();
    let failure = StsFailure::new(StsFailureKind::StsPolicyFetchError, "test");
    let s = sts_failure_session("example.com", Some(&cached), &failure);
    assert_eq!(s.policy, session_of(&hop(Some(ENFORCE))).policy);
    // A cached `none` policy is not in force: no policy text.
    let none = StsPolicy::parse(NONE).unwrap();
    let s = sts_failure_session("example.com", Some(&none), &failure);
    assert_eq!(s.policy.policy_type, PolicyType::Sts);
    assert!(s.policy.policy_strings.is_empty());
}

#[test]
fn a_fetch_failure_without_cache_gives_no_verdict_and_a_failure_to_report() {
    let failure = StsFailure::new(StsFailureKind::StsWebpkiInvalid, "self-signed");
    let applied = Applied::FetchFailed(failure.clone());
    assert!(applied.host_verdict("mx.example.net").is_none());
    assert!(applied.policy().is_none());
    assert_eq!(applied.failure(), Some(&failure));
    assert!(Applied::Nothing.failure().is_none());
}
