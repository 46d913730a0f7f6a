//! `FilePolicyStore`: round trip, corrupt files (typed error, treated as absent), concurrent
//! writers of distinct domains, the trailing-dot domain as the same key, purge.

use std::fs;

use smtp_tls_policy::mta_sts::{
    CacheConfig, CacheEntry, FetchResult, FilePolicyStore, MAX_ENTRY_FILE, MemoryPolicyStore,
    Policy, PolicyDomain, PolicySource, PolicyStore, StoreError, StsId, on_fetch,
};

const NOW: u64 = 1_700_000_000;

fn entry(domain: &str, id: &str, mx: &str) -> CacheEntry {
    let domain = PolicyDomain::parse(domain).unwrap();
    let body = format!("version: STSv1\nmode: enforce\nmx: {mx}\nmax_age: 86400\n");
    let policy = Policy::parse(body.as_bytes()).unwrap();
    let source = PolicySource::new(domain.policy_url(), Some("127.0.0.1:443".into()));
    let id = StsId::parse(id).unwrap();
    let (entry, _) = on_fetch(
        CacheEntry::new(domain),
        &id,
        FetchResult::Valid { policy, source },
        NOW,
        &CacheConfig::default(),
    );
    entry
}

fn d(s: &str) -> PolicyDomain {
    PolicyDomain::parse(s).unwrap()
}

#[test]
fn round_trip_get_put_remove_list() {
    let dir = tempfile::tempdir().unwrap();
    let store = FilePolicyStore::open(dir.path().join("sts")).unwrap();
    assert_eq!(store.get(&d("example.com")).unwrap(), None);
    let e = entry("example.com", "id1", "*.mx.example.com");
    store.put(&e).unwrap();
    assert_eq!(store.get(&d("example.com")).unwrap(), Some(e.clone()));
    // a reopened store (a restart) sees it
    let reopened = FilePolicyStore::open(dir.path().join("sts")).unwrap();
    assert_eq!(reopened.get(&d("example.com")).unwrap(), Some(e.clone()));
    // replace
    let e2 = entry("example.com", "id2", "mx.example.com");
    store.put(&e2).unwrap();
    assert_eq!(store.load(&d("example.com")), Some(e2.clone()));
    let other = entry("other.example", "x", "mx.other.example");
    store.put(&other).unwrap();
    assert_eq!(store.list().unwrap(), vec![e2.clone(), other.clone()]);
    assert_eq!(store.remove(&d("example.com")).unwrap(), Some(e2));
    assert_eq!(store.remove(&d("example.com")).unwrap(), None);
    assert_eq!(store.get(&d("example.com")).unwrap(), None);
    assert_eq!(store.list().unwrap(), vec![other]);
    // no temporary files left behind
    let leftovers: Vec<_> = fs::read_dir(store.dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn corrupt_file_is_a_typed_error_and_absent() {
    let dir = tempfile::tempdir().unwrap();
    let store = FilePolicyStore::open(dir.path()).unwrap();
    let good = entry("good.example", "g", "mx.good.example");
    store.put(&good).unwrap();
    for (name, bytes) in [
        ("truncated", b"{\"domain\": \"bad.example\", \"pol".to_vec()),
        ("not json", b"\x00\xffgarbage".to_vec()),
        ("empty", Vec::new()),
    ] {
        let bad = d("bad.example");
        fs::write(store.path_of(&bad), &bytes).unwrap();
        assert!(
            matches!(store.get(&bad), Err(StoreError::Corrupt { .. })),
            "{name}"
        );
        assert_eq!(store.load(&bad), None, "{name}");
        // list skips it, keeps the good one
        assert_eq!(store.list().unwrap(), vec![good.clone()], "{name}");
    }
    // another domain's entry under this name
    let misplaced = d("misplaced.example");
    fs::copy(store.path_of(&d("good.example")), store.path_of(&misplaced)).unwrap();
    let err = store.get(&misplaced).unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt { detail, .. } if detail.contains("good.example")),
        "{err}"
    );
    // too large
    let big = d("big.example");
    fs::write(
        store.path_of(&big),
        vec![b' '; MAX_ENTRY_FILE as usize + 10],
    )
    .unwrap();
    let err = store.get(&big).unwrap_err();
    assert!(err.to_string().contains("larger than"), "{err}");
    // a corrupt entry can be purged and rewritten
    store.remove(&d("bad.example")).unwrap();
    assert_eq!(store.get(&d("bad.example")).unwrap(), None);
    let fresh = entry("bad.example", "new", "mx.bad.example");
    store.put(&fresh).unwrap();
    assert_eq!(store.get(&d("bad.example")).unwrap(), Some(fresh));
}

#[test]
fn concurrent_writers_of_distinct_domains() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(FilePolicyStore::open(dir.path()).unwrap());
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let store = std::sync::Arc::clone(&store);
            std::thread::spawn(move || {
                for round in 0..20 {
                    let dom = format!("d{t}.example");
                    let e = entry(&dom, &format!("r{round}"), &format!("mx.d{t}.example"));
                    store.put(&e).unwrap();
                    assert_eq!(store.get(&d(&dom)).unwrap(), Some(e));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let all = store.list().unwrap();
    assert_eq!(all.len(), 8);
    for e in all {
        assert_eq!(e.policy.unwrap().id.as_str(), "r19");
    }
}

#[test]
fn concurrent_writers_of_one_domain_leave_a_whole_entry() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(FilePolicyStore::open(dir.path()).unwrap());
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let store = std::sync::Arc::clone(&store);
            std::thread::spawn(move || {
                for round in 0..20 {
                    let e = entry("same.example", &format!("t{t}r{round}"), "mx.same.example");
                    store.put(&e).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let got = store.get(&d("same.example")).unwrap().unwrap();
    assert!(got.policy.unwrap().id.as_str().ends_with("r19"));
}

#[test]
fn trailing_dot_and_case_are_the_same_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = FilePolicyStore::open(dir.path()).unwrap();
    let e = entry("Example.COM.", "id1", "mx.example.com");
    store.put(&e).unwrap();
    assert_eq!(
        store.path_of(&d("example.com.")),
        store.path_of(&d("EXAMPLE.com"))
    );
    assert_eq!(store.get(&d("example.com")).unwrap(), Some(e.clone()));
    assert_eq!(store.remove(&d("example.com.")).unwrap(), Some(e));
    assert_eq!(store.list().unwrap(), vec![]);
}

#[test]
fn memory_store_behaves_alike() {
    let store = MemoryPolicyStore::new();
    let e = entry("example.com.", "id1", "mx.example.com");
    store.put(&e).unwrap();
    assert_eq!(store.get(&d("EXAMPLE.com")).unwrap(), Some(e.clone()));
    assert_eq!(store.list().unwrap(), vec![e.clone()]);
    assert_eq!(store.remove(&d("example.com")).unwrap(), Some(e));
    assert_eq!(store.load(&d("example.com")), None);
}

/// `discover` over a `FilePolicyStore`, against the DNSSEC lab and the loopback policy server:
/// fetch, same id (no fetch), id change, failed fetch keeping the cache, proactive refresh, DNS
/// down with and without a cached policy, a corrupt entry, a bogus TXT record.
#[cfg(feature = "mta-sts-fetch")]
mod discover_with_store {
    use std::net::SocketAddr;
    use std::time::Duration;

    use dane_verify::resolver::{DaneResolver, Limits, ResolverConfig, ResolverMode};
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    use smtp_tls_policy::chain::TrustAnchors;
    use smtp_tls_policy::mta_sts::{
        DiscoveryOutcome, FetchLimits, FetchReason, FetchSettings, FilePolicyStore, PolicyStore,
        StsFailureKind, StsId, TemporaryReason, UseCachedReason, client_config, discover,
    };
    use test_support::dnssec_lab::{Lab, sts};
    use test_support::pki::TestCa;
    use test_support::policy_server::{PolicyResponse, PolicyServer};

    use super::{NOW, d};

    fn resolver(addr: SocketAddr) -> DaneResolver {
        let mut config = ResolverConfig::default();
        config.mode = ResolverMode::TrustAd;
        config.address = Some(addr);
        let validation = config.validation().unwrap().unwrap();
        let limits = Limits {
            timeout: Duration::from_secs(2),
            ..Limits::default()
        };
        DaneResolver::new(validation, limits).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn discover_fetches_caches_and_survives_failures() {
        let lab = Lab::start();
        let ca = TestCa::new("discover test CA");
        let server = PolicyServer::start(&ca, &[sts::INSECURE, sts::SPLIT, sts::BOGUS]);
        server.set(
            sts::INSECURE,
            PolicyResponse::enforce(&["*.unsigned.test"], 4000),
        );
        let anchors = TrustAnchors::from_certificates(
            CertificateDer::pem_slice_iter(ca.pem.as_bytes()).map(Result::unwrap),
        )
        .unwrap();
        let settings =
            FetchSettings::new(client_config(&anchors).unwrap()).with_port(server.port());
        let dir = tempfile::tempdir().unwrap();
        let store = FilePolicyStore::open(dir.path()).unwrap();
        let dns = resolver(lab.validating());
        let dom = d(sts::INSECURE);

        // nothing cached: fetched, stored
        let first = discover(&dom, &dns, &store, &settings, NOW).await;
        assert_eq!(
            first.outcome,
            DiscoveryOutcome::Fetched {
                reason: FetchReason::NotCached
            },
            "{first:?}"
        );
        assert_eq!(first.policy().unwrap().max_age, 4000);
        assert_eq!(server.hits(sts::INSECURE), 1);
        let stored = store.get(&dom).unwrap().unwrap();
        assert_eq!(
            stored.policy.as_ref().unwrap().id.as_str(),
            sts::INSECURE_ID
        );
        assert_eq!(
            stored.policy.as_ref().unwrap().source.address.as_deref(),
            Some(server.addr().to_string().as_str())
        );

        // same id: the cache, no fetch (the trailing dot names the same entry)
        let again = discover(&d("sts.unsigned.test."), &dns, &store, &settings, NOW + 10).await;
        assert_eq!(
            again.outcome,
            DiscoveryOutcome::UsedCache {
                reason: UseCachedReason::SameId
            }
        );
        assert_eq!(
            again.policy,
            first.policy.clone().map(|mut p| {
                p.last_checked = NOW + 10;
                p
            })
        );
        assert_eq!(server.hits(sts::INSECURE), 1);

        // the cached id differs from the TXT record's: fetched again
        let mut entry = store.get(&dom).unwrap().unwrap();
        entry.policy.as_mut().unwrap().id = StsId::parse("older").unwrap();
        store.put(&entry).unwrap();
        let changed = discover(&dom, &dns, &store, &settings, NOW + 20).await;
        assert_eq!(
            changed.outcome,
            DiscoveryOutcome::Fetched {
                reason: FetchReason::IdChanged
            }
        );
        assert_eq!(server.hits(sts::INSECURE), 2);

        // id changed again but the server fails: the unexpired cached policy is kept
        let mut entry = store.get(&dom).unwrap().unwrap();
        entry.policy.as_mut().unwrap().id = StsId::parse("older").unwrap();
        store.put(&entry).unwrap();
        server.set(sts::INSECURE, PolicyResponse::status(503));
        let failed = discover(&dom, &dns, &store, &settings, NOW + 30).await;
        match &failed.outcome {
            DiscoveryOutcome::FetchFailedKeptCache { failure } => {
                assert_eq!(failure.kind, StsFailureKind::StsPolicyFetchError);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(failed.policy().unwrap().mx.len(), 1);
        assert!(store.get(&dom).unwrap().unwrap().backoff.is_some());

        // near expiry with the current id: refreshed proactively
        server.set(
            sts::INSECURE,
            PolicyResponse::enforce(&["mx.unsigned.test"], 5000),
        );
        let mut entry = store.get(&dom).unwrap().unwrap();
        entry.policy.as_mut().unwrap().id = StsId::parse(sts::INSECURE_ID).unwrap();
        entry.backoff = None;
        store.put(&entry).unwrap();
        let late = entry.policy.as_ref().unwrap().expires_at - 10;
        let refreshed = discover(&dom, &dns, &store, &settings, late).await;
        assert_eq!(
            refreshed.outcome,
            DiscoveryOutcome::Refreshed,
            "{refreshed:?}"
        );
        assert_eq!(refreshed.policy().unwrap().max_age, 5000);

        // DNS down (a restart with a cached policy): the cached policy still applies ...
        let down = resolver(SocketAddr::from((
            [127, 0, 0, 1],
            test_support::free_port(&[]),
        )));
        let cached = discover(&dom, &down, &store, &settings, late + 10).await;
        assert_eq!(
            cached.outcome,
            DiscoveryOutcome::UsedCache {
                reason: UseCachedReason::LookupFailed
            }
        );
        assert_eq!(cached.policy().unwrap().max_age, 5000);
        // ... and without one the state is unknown: a temporary failure, never "no policy"
        let split = discover(&d(sts::SPLIT), &down, &store, &settings, NOW).await;
        assert_eq!(
            split.outcome,
            DiscoveryOutcome::TemporaryFailure {
                reason: TemporaryReason::LookupFailed
            }
        );
        assert!(split.is_temporary_failure() && split.policy.is_none());

        // a corrupt entry is treated as absent: fetched anew, and rewritten whole
        std::fs::write(store.path_of(&dom), b"{not json").unwrap();
        let after_corrupt = discover(&dom, &dns, &store, &settings, NOW).await;
        assert_eq!(
            after_corrupt.outcome,
            DiscoveryOutcome::Fetched {
                reason: FetchReason::NotCached
            }
        );
        assert!(store.get(&dom).unwrap().is_some());

        // a DNSSEC-bogus TXT record with nothing cached: temporary failure, nothing fetched
        server.set(
            sts::BOGUS,
            PolicyResponse::enforce(&["mx.unsigned.test"], 600),
        );
        let bogus = discover(&d(sts::BOGUS), &dns, &store, &settings, NOW).await;
        assert!(bogus.is_temporary_failure(), "{bogus:?}");
        assert_eq!(server.hits(sts::BOGUS), 0);

        // a policy host that never answers: the total timeout ends the fetch (nothing cached)
        server.set(sts::SPLIT, PolicyResponse::never_answer());
        let quick = FetchSettings {
            limits: FetchLimits::default().with_total_timeout(Duration::from_millis(500)),
            ..settings.clone()
        };
        let started = std::time::Instant::now();
        let hung = discover(&d(sts::SPLIT), &dns, &store, &quick, NOW).await;
        assert!(started.elapsed() < Duration::from_secs(5));
        match &hung.outcome {
            DiscoveryOutcome::FetchFailed { failure } => {
                assert_eq!(failure.kind, StsFailureKind::StsPolicyFetchError);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            hung.failure().map(|f| f.kind),
            Some(StsFailureKind::StsPolicyFetchError)
        );
        assert_eq!(server.hits(sts::SPLIT), 1);

        // the host verdicts carry the policy id
        let v = after_corrupt.host_verdicts(&["mx.unsigned.test", "a.b.unsigned.test"]);
        assert!(v[0].may_connect() && !v[1].may_connect());
        assert_eq!(v[0].policy_id.as_deref(), Some(sts::INSECURE_ID));
    }
}
