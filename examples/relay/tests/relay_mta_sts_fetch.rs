//! MTA-STS (RFC 8461) policy fetch faults at delivery (issue 13), through the built `relay`
//! binary: every fault with and without a cached `enforce` policy, the TXT id change and a
//! restart with DNS down, against Postfix behind the DNSSEC lab's MTA-STS domains and a
//! loopback policy server (shared setup in `common::sts`).

mod common;

use common::sts::{MX, OPPORTUNISTIC, Row, attempts, check_row, run_rows};
use common::{Relay, Site};
use smtp_tls_policy::mta_sts::{CacheEntry, FilePolicyStore, PolicyDomain, PolicyStore, StsId};
use test_support::dnssec_lab::{Lab, sts};
use test_support::pki::TestCa;
use test_support::policy_server::{
    PolicyResponse, PolicyServer, WELL_KNOWN_PATH, policy_host, policy_text,
};
use test_support::postfix::Postfix;

/// The lab's `_mta-sts` TXT ids (`scripts/dnssec-lab.sh`) of the domains used below.
const TXT_IDS: [(&str, &str); 5] = [
    (sts::INSECURE, sts::INSECURE_ID),
    (sts::TESTING, "20261204T2"),
    (sts::NOMATCH, "20261204T3"),
    (sts::FETCHFAIL, "20261204T4"),
    (sts::SPLIT, "split1"),
];

/// The relay's policy fetch limits in these rows (the defaults are 10 s and 30 s).
const FETCH_TIMEOUT_SECS: u64 = 3;

/// A relay site delivering MX mail to `postfix`, DNS from `resolver`, policies from `server`,
/// fetch limits of 2 s (connect) and [`FETCH_TIMEOUT_SECS`] (whole request).
fn fault_site(
    resolver: std::net::SocketAddr,
    postfix: &Postfix,
    server: &PolicyServer,
    ca: &TestCa,
) -> Site {
    let delivery = format!(
        "mx_port = {}\n[delivery.resolver]\nmode = \"trust-ad\"\naddress = \"{resolver}\"\n\
         probe_name = \"test.\"\n[delivery.retry]\ninitial_secs = 3600\n\
         [delivery.mta_sts]\npolicy_port = {}\nconnect_timeout_secs = 2\n\
         fetch_timeout_secs = {FETCH_TIMEOUT_SECS}\n",
        postfix.port(),
        server.port()
    );
    Site::new(&delivery, OPPORTUNISTIC, Some(&ca.pem))
}

/// The site's policy cache (the relay's file store; the relay reads it at every attempt).
fn policy_cache(site: &Site) -> FilePolicyStore {
    FilePolicyStore::open(site.dir.path().join("relay-data/mta-sts")).unwrap()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn cached(store: &FilePolicyStore, domain: &str) -> Option<CacheEntry> {
    store.get(&PolicyDomain::parse(domain).unwrap()).unwrap()
}

/// Caches `template`'s policy (an `enforce` policy the relay fetched) for `domain` under the
/// TXT id `id`, no back-off, a lifetime of a day; `refresh_due`: fetched 20 hours ago (4 hours
/// left; a proactive refresh is due after a quarter of the lifetime), else just now.
fn seed_cache(
    store: &FilePolicyStore,
    template: &CacheEntry,
    domain: &str,
    id: &str,
    refresh_due: bool,
) {
    let now = unix_now();
    let mut e = template.clone();
    e.domain = PolicyDomain::parse(domain).unwrap();
    e.backoff = None;
    let p = e.policy.as_mut().expect("the template has a policy");
    p.id = StsId::parse(id).unwrap();
    p.fetched_at = if refresh_due { now - 20 * 3600 } else { now };
    p.last_checked = p.fetched_at;
    p.expires_at = p.fetched_at + 86400;
    store.put(&e).unwrap();
}

/// The cached policy's id and mode for `domain`.
fn cached_policy(store: &FilePolicyStore, domain: &str) -> Option<(String, String)> {
    let e = cached(store, domain)?;
    let p = e.policy?;
    Some((p.id.as_str().to_owned(), p.policy.mode.as_str().to_owned()))
}

/// The TLS of the delivery attempts to `domain` in `log`: (PKIX- or DANE-verified TLS,
/// unverified TLS) attempts.
fn tls_kinds(log: &str, domain: &str) -> (usize, usize) {
    let lines = attempts(log, domain);
    let tls: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("action=\"continue-tls\""))
        .collect();
    let verified = tls
        .iter()
        .filter(|l| l.contains("pkix=Some(Verified)") || l.contains("dane_verdict=Some(Verified"))
        .count();
    (verified, tls.len() - verified)
}

/// `check_row`, and for a delivered row that its TLS was `authenticated` (or not).
/// Runs `rows` through `relay` and checks each with [`check_fault_row`], adding its line to
/// `table`; the relay's log after the run and the run's duration in seconds (the checks not
/// included).
fn run_fault_rows(
    site: &Site,
    relay: &Relay,
    postfix: &Postfix,
    rows: &[Row],
    authenticated: bool,
    table: &mut Vec<String>,
) -> (String, f64) {
    let started = std::time::Instant::now();
    let ids = run_rows(site, relay, postfix, rows);
    let secs = started.elapsed().as_secs_f64();
    let log = relay.log();
    for (r, id) in rows.iter().zip(&ids) {
        table.push(check_fault_row(r, authenticated, site, id, postfix, &log));
    }
    (log, secs)
}

fn check_fault_row(
    row: &Row,
    authenticated: bool,
    site: &Site,
    id: &str,
    postfix: &Postfix,
    log: &str,
) -> String {
    let line = check_row(row, site, id, postfix, log);
    let domain = row.rcpt.split_once('@').map_or("", |(_, d)| d);
    let (verified, unverified) = tls_kinds(log, domain);
    if row.delivered {
        if authenticated {
            assert!(
                verified >= 1 && unverified == 0,
                "{}: not authenticated: {:?}",
                row.case,
                attempts(log, domain)
            );
        } else {
            assert!(
                unverified >= 1 && verified == 0,
                "{}: expected unauthenticated TLS: {:?}",
                row.case,
                attempts(log, domain)
            );
        }
    }
    format!(
        "{line} {} |",
        if row.delivered {
            if authenticated { "yes" } else { "no" }
        } else {
            "-"
        }
    )
}

/// Issue 13's fetch-failure rows of the fault matrix, each with and without a cached `enforce`
/// policy, the TXT id change, and a restart with a cached `enforce` policy while DNS is down.
/// Postfix's certificate names another host, so an applied `enforce` policy defers while no
/// policy (opportunistic TLS) delivers unauthenticated: the outcome shows which applied.
///
/// - Without a cache, a failed fetch is "no policy" (RFC 8461 §5): delivered, unauthenticated.
/// - With an unexpired cached `enforce` policy whose proactive refresh is due, the refresh
///   fails the same way and the cached policy still applies: deferred, 0 plaintext, 0 sent.
/// - Faults: a 301 redirect to another policy host that serves a valid policy (never
///   followed: that host sees no request), a 128 KiB body that starts like a valid policy (over
///   the 64 KiB limit), a self-signed certificate, a test-CA certificate for another name, and
///   a server that accepts the request and never answers (the attempt ends within the relay's
///   fetch timeout, 3 s here, not the 30 s default).
/// - TXT id change: the cache holds the policy under another id than the TXT record's (as after
///   the record changed): the new policy is fetched and used (`testing`: delivered); a new
///   policy that is invalid leaves the old one in force (deferred).
/// - Restart, DNS down (the resolver's port closed): the cached `enforce` policy on disk is
///   used (TXT lookup failed, RFC 8461 §5.1); nothing is delivered.
#[test]
fn mta_sts_fetch_faults_id_change_and_dns_down() {
    let lab = Lab::start();
    let ca = TestCa::new("mta-sts test CA");
    let server = PolicyServer::start(
        &ca,
        &[
            sts::INSECURE,
            sts::TESTING,
            sts::NOMATCH,
            sts::FETCHFAIL,
            sts::SPLIT,
            sts::MULTI,
        ],
    );
    let postfix = Postfix::with_tls(&ca, &["other-name.test"]);
    let site = fault_site(lab.validating(), &postfix, &server, &ca);
    let store = policy_cache(&site);
    // A policy served only at the redirect target: following the redirect would apply it.
    server.set(
        sts::MULTI,
        PolicyResponse::enforce(&["mx.elsewhere.test"], 86400),
    );
    let redirect = PolicyResponse::redirect(&format!(
        "https://{}:{}{WELL_KNOWN_PATH}",
        policy_host(sts::MULTI),
        server.port()
    ));
    let untrusted = test_support::pki::self_signed(&[policy_host(sts::FETCHFAIL)]);
    let mismatched = ca.issue(&["mta-sts.wrong-name.test".to_owned()]);
    let mut table = vec![
        "| case | outcome | sent | plaintext (enforce) | unverified (enforce) | authenticated |"
            .to_owned(),
        "|---|---|---|---|---|---|".to_owned(),
    ];
    let row = |case, local: &str, domain: &str, delivered, enforce| Row {
        case,
        rcpt: format!("{local}@{domain}"),
        delivered,
        enforce,
    };
    // Sets the fault of each domain (the bad-TLS ones by certificate, with a valid policy).
    let set_faults = |faults: &[(&str, &str)]| {
        for (domain, fault) in faults {
            server.set_certificate(domain, None);
            let response = match *fault {
                "redirect" => redirect.clone(),
                "oversize" => PolicyResponse::oversize(128 * 1024),
                "timeout" => PolicyResponse::never_answer(),
                "untrusted" | "mismatched" => {
                    server.set_certificate(
                        domain,
                        Some(if *fault == "untrusted" {
                            &untrusted
                        } else {
                            &mismatched
                        }),
                    );
                    PolicyResponse::enforce(&["mx.elsewhere.test"], 86400)
                }
                other => panic!("no fault {other}"),
            };
            server.set(domain, response);
        }
    };

    // Run 1: no cache. Four fetch faults; sts.unsigned.test's enforce policy is fetched and
    // cached (the template of the cached policies below).
    server.set(sts::INSECURE, PolicyResponse::enforce(&[MX], 86400));
    set_faults(&[
        (sts::TESTING, "redirect"),
        (sts::NOMATCH, "oversize"),
        (sts::FETCHFAIL, "untrusted"),
        (sts::SPLIT, "mismatched"),
    ]);
    let relay = site.start();
    let rows1 = [
        row(
            "enforce fetched and cached, certificate for another name",
            "f1",
            sts::INSECURE,
            false,
            true,
        ),
        row(
            "fetch: 301 redirect, nothing cached",
            "f2",
            sts::TESTING,
            true,
            false,
        ),
        row(
            "fetch: 128 KiB body, nothing cached",
            "f3",
            sts::NOMATCH,
            true,
            false,
        ),
        row(
            "fetch: self-signed certificate, nothing cached",
            "f4",
            sts::FETCHFAIL,
            true,
            false,
        ),
        row(
            "fetch: certificate for another name, nothing cached",
            "f5",
            sts::SPLIT,
            true,
            false,
        ),
    ];
    run_fault_rows(&site, &relay, &postfix, &rows1, false, &mut table);
    drop(relay);
    let template = cached(&store, sts::INSECURE).expect("enforce policy cached");
    assert_eq!(
        cached_policy(&store, sts::INSECURE),
        Some((sts::INSECURE_ID.to_owned(), "enforce".to_owned()))
    );
    for (domain, _) in &TXT_IDS[1..] {
        assert!(
            cached_policy(&store, domain).is_none(),
            "{domain}: a faulty fetch was cached"
        );
    }

    // Run 2: the same four faults with a cached enforce policy due for refresh; the timeout
    // without a cache.
    for (domain, txt_id) in &TXT_IDS[1..] {
        seed_cache(&store, &template, domain, txt_id, true);
    }
    store
        .remove(&PolicyDomain::parse(sts::INSECURE).unwrap())
        .unwrap();
    set_faults(&[(sts::INSECURE, "timeout")]);
    let hits_before: Vec<usize> = TXT_IDS.iter().map(|(d, _)| server.hits(d)).collect();
    let relay = site.restart(2);
    let rows2 = [
        row(
            "fetch: no answer (timeout), nothing cached",
            "f6",
            sts::INSECURE,
            true,
            false,
        ),
        row(
            "fetch: 301 redirect, cached enforce",
            "f7",
            sts::TESTING,
            false,
            true,
        ),
        row(
            "fetch: 128 KiB body, cached enforce",
            "f8",
            sts::NOMATCH,
            false,
            true,
        ),
        row(
            "fetch: self-signed certificate, cached enforce",
            "f9",
            sts::FETCHFAIL,
            false,
            true,
        ),
        row(
            "fetch: certificate for another name, cached enforce",
            "f10",
            sts::SPLIT,
            false,
            true,
        ),
    ];
    let (_, timeout_row_secs) = run_fault_rows(&site, &relay, &postfix, &rows2, false, &mut table);
    drop(relay);
    assert!(
        timeout_row_secs < 20.0,
        "the never-answering fetch held the delivery {timeout_row_secs:.1} s"
    );
    // The redirect, oversize and timeout fetches were made (the refresh was attempted).
    for (i, (domain, _)) in TXT_IDS.iter().enumerate().take(3) {
        assert!(
            server.hits(domain) > hits_before[i],
            "{domain}: no fetch attempted"
        );
    }
    for (domain, txt_id) in &TXT_IDS[1..] {
        assert_eq!(
            cached_policy(&store, domain),
            Some(((*txt_id).to_owned(), "enforce".to_owned())),
            "{domain}: the cached policy did not survive the failed refresh"
        );
    }
    assert_eq!(server.hits(sts::MULTI), 0, "a redirect was followed");

    // Run 3: the timeout with a cached policy; the TXT id change (cache under another id).
    seed_cache(&store, &template, sts::INSECURE, sts::INSECURE_ID, true);
    seed_cache(&store, &template, sts::TESTING, "seed0", false);
    seed_cache(&store, &template, sts::NOMATCH, "seed0", false);
    server.set(
        sts::TESTING,
        PolicyResponse::policy(&policy_text("testing", &[MX], 86400)),
    );
    // `enforce` without any `mx` line: an invalid policy.
    server.set(
        sts::NOMATCH,
        PolicyResponse::policy(&policy_text("enforce", &[], 86400)),
    );
    let hits_before = server.hits(sts::INSECURE);
    let relay = site.restart(3);
    let rows3 = [
        row(
            "fetch: no answer (timeout), cached enforce",
            "f11",
            sts::INSECURE,
            false,
            true,
        ),
        row(
            "TXT id changed: new testing policy fetched and used",
            "f12",
            sts::TESTING,
            true,
            false,
        ),
        row(
            "TXT id changed: new policy invalid, old enforce kept",
            "f13",
            sts::NOMATCH,
            false,
            true,
        ),
    ];
    let (_, cached_timeout_secs) =
        run_fault_rows(&site, &relay, &postfix, &rows3, false, &mut table);
    drop(relay);
    assert!(
        server.hits(sts::INSECURE) > hits_before,
        "no refresh attempted"
    );
    assert!(
        cached_timeout_secs < 20.0,
        "the never-answering fetch held the delivery {cached_timeout_secs:.1} s"
    );
    assert_eq!(
        cached_policy(&store, sts::TESTING),
        Some(("20261204T2".to_owned(), "testing".to_owned())),
        "the new policy was not cached"
    );
    assert_eq!(
        cached_policy(&store, sts::NOMATCH),
        Some(("seed0".to_owned(), "enforce".to_owned())),
        "the old policy was not kept"
    );

    // Run 4: restart with DNS down (the resolver's address is a closed port) and a fresh
    // cached enforce policy on disk.
    seed_cache(&store, &template, sts::INSECURE, sts::INSECURE_ID, false);
    let config = std::fs::read_to_string(site.config()).unwrap();
    let down = format!("127.0.0.1:{}", test_support::free_port(&[]));
    let changed = config.replace(&lab.validating().to_string(), &down);
    assert_ne!(config, changed);
    std::fs::write(site.config(), changed).unwrap();
    let relay = site.restart(4);
    let rows4 = [row(
        "restart, DNS down, cached enforce on disk",
        "f14",
        sts::INSECURE,
        false,
        true,
    )];
    let (log, _) = run_fault_rows(&site, &relay, &postfix, &rows4, false, &mut table);
    assert!(
        log.lines()
            .any(|l| l.contains(&format!("domain={}", sts::INSECURE))
                && l.contains("source=\"cache\"")
                && l.contains("mode=\"enforce\"")),
        "the cached policy was not used with DNS down: {log}"
    );
    // Run 5: another site whose Postfix has the MX host's certificate, the cached enforce
    // policy due for refresh and every fetch fault at once: the cached policy applies and the
    // delivery is authenticated.
    let good = Postfix::with_tls(&ca, &[MX]);
    let site5 = fault_site(lab.validating(), &good, &server, &ca);
    let store5 = policy_cache(&site5);
    for (domain, txt_id) in &TXT_IDS {
        seed_cache(&store5, &template, domain, txt_id, true);
    }
    set_faults(&[
        (sts::INSECURE, "timeout"),
        (sts::TESTING, "redirect"),
        (sts::NOMATCH, "oversize"),
        (sts::FETCHFAIL, "untrusted"),
        (sts::SPLIT, "mismatched"),
    ]);
    let relay = site5.start();
    let rows5 = [
        row(
            "good certificate: no answer (timeout), cached enforce",
            "g1",
            sts::INSECURE,
            true,
            true,
        ),
        row(
            "good certificate: 301 redirect, cached enforce",
            "g2",
            sts::TESTING,
            true,
            true,
        ),
        row(
            "good certificate: 128 KiB body, cached enforce",
            "g3",
            sts::NOMATCH,
            true,
            true,
        ),
        row(
            "good certificate: self-signed policy host, cached enforce",
            "g4",
            sts::FETCHFAIL,
            true,
            true,
        ),
        row(
            "good certificate: wrong-name policy host, cached enforce",
            "g5",
            sts::SPLIT,
            true,
            true,
        ),
    ];
    let (log, _) = run_fault_rows(&site5, &relay, &good, &rows5, true, &mut table);
    for (domain, _) in &TXT_IDS {
        assert!(
            log.lines().any(|l| l.contains(&format!("domain={domain} "))
                && l.contains("source=\"cache\"")
                && l.contains("mode=\"enforce\"")),
            "{domain}: the cached enforce policy was not applied: {log}"
        );
    }
    assert_eq!(server.hits(sts::MULTI), 0, "a redirect was followed");
    println!(
        "\nMTA-STS fetch faults, id change, DNS down (relay -> Postfix with a certificate for \
         another name)\ntimeout rows settled in {timeout_row_secs:.1} s (no cache) and \
         {cached_timeout_secs:.1} s (cached); fetch timeout {FETCH_TIMEOUT_SECS} s"
    );
    for l in &table {
        println!("{l}");
    }
}
