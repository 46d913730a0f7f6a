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
