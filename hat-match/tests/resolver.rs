//! The `resolver` adapter end to end through real DNS: Debian's unbound on loopback, started by
//! `scripts/hat-dns-lab.sh` through `test_support::hat_dns_lab` (one server per test, each on
//! its own port, stopped by PID in a Drop guard), answering the CRES note's PTR/A records and a DNS list from local data.
#![cfg(feature = "resolver")]

use std::net::IpAddr;
use std::time::{Duration, Instant};

use hat_match::resolver::{
    HatResolver, LookupFailure, LookupStatus, ResolvedVerdict, ResolverLimits, SkipReason,
};
use hat_match::{Behavior, Fact, HostAccessTable, ListenerTls};
use test_support::hat_dns_lab::Lab;

const CRES_TABLE: &str = r#"
[[mail_flow_policy]]
name = "TLS_REQUIRED"
behavior = "accept"
tls = "required"

[[mail_flow_policy]]
name = "BLOCKED"
behavior = "reject"

[[mail_flow_policy]]
name = "ACCEPTED"
behavior = "accept"
tls = "preferred"

[[sender_group]]
name = "CRES"
order = 1
policy = "TLS_REQUIRED"
senders = [".res.cisco.com", ".cres.iphmx.com", "208.90.57.0/26", "204.15.81.0/26"]

[[sender_group]]
name = "PARTNER"
order = 2
policy = "ACCEPTED"
senders = ["mx.partner.test"]

[[sender_group]]
name = "BLOCKLIST"
order = 3
policy = "BLOCKED"
senders = ["dnslist[dnsbl.test]"]

[[sender_group]]
name = "ALL"
order = 99
policy = "ACCEPTED"
senders = ["ALL"]
"#;

/// A resolver asking only the lab's unbound.
fn resolver(lab: &Lab, limits: ResolverLimits) -> HatResolver {
    HatResolver::for_nameserver(lab.addr(), limits).expect("resolver for the lab")
}

fn table(text: &str) -> HostAccessTable {
    HostAccessTable::from_toml("resolver-test.toml", text).expect("test table")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn group<'a>(r: &'a ResolvedVerdict<'_>) -> Option<&'a str> {
    r.verdict().sender_group()
}

#[tokio::test]
async fn forward_confirmed_ptr_puts_cres_relay_in_cres() {
    let lab = Lab::start();
    let table = table(CRES_TABLE);
    let r = resolver(&lab, ResolverLimits::default())
        .matches(&table, ip("184.94.241.96"))
        .await;
    assert_eq!(group(&r), Some("CRES"), "{r:#?}");
    assert_eq!(
        r.verdict().matched_entry().unwrap().as_str(),
        ".res.cisco.com"
    );
    assert_eq!(r.verdict().tls(), Some(ListenerTls::Required));
    let l = r.lookups();
    assert_eq!(l.ptr.query, "96.241.94.184.in-addr.arpa.");
    assert_eq!(l.ptr.status, LookupStatus::Answered);
    assert_eq!(l.ptr.names, ["mxnat3.res.cisco.com."]);
    assert_eq!(l.forward.len(), 1);
    assert_eq!(l.forward[0].addresses, [ip("184.94.241.96")]);
    assert!(l.forward[0].confirmed);
    // The plan could not rule out the DNS list (it is before ALL): it was asked, not listed.
    assert_eq!(l.dnslists[0].query, "96.241.94.184.dnsbl.test.");
    assert_eq!(l.dnslists[0].status, LookupStatus::NxDomain);
    assert_eq!(l.queries_sent(), 3);
    assert!(!r.is_tentative());
    assert_eq!(
        r.facts().confirmed_names().collect::<Vec<_>>(),
        ["mxnat3.res.cisco.com"]
    );
}

#[tokio::test]
async fn ptr_whose_forward_lookup_gives_another_address_falls_to_all() {
    let lab = Lab::start();
    let table = table(CRES_TABLE);
    let r = resolver(&lab, ResolverLimits::default())
        .matches(&table, ip("198.51.100.7"))
        .await;
    assert_eq!(group(&r), Some("ALL"), "{r:#?}");
    let f = &r.lookups().forward[0];
    assert_eq!(f.name, "spoof.res.cisco.com.");
    assert_eq!(f.status, LookupStatus::Answered);
    assert_eq!(f.addresses, [ip("203.0.113.9")]);
    assert!(!f.confirmed);
    assert_eq!(r.facts().confirmed_names().count(), 0);
    assert!(!r.is_tentative());
}

#[tokio::test]
async fn dns_listed_client_lands_in_the_dnslist_group() {
    let lab = Lab::start();
    let table = table(CRES_TABLE);
    let dns = resolver(&lab, ResolverLimits::default());
    for client in ["192.0.2.99", "127.0.0.2"] {
        let r = dns.matches(&table, ip(client)).await;
        assert_eq!(group(&r), Some("BLOCKLIST"), "{client}: {r:#?}");
        assert_eq!(r.verdict().behavior(), Behavior::Reject);
        assert_eq!(
            r.verdict().matched_entry().unwrap().as_str(),
            "dnslist[dnsbl.test]"
        );
        let d = &r.lookups().dnslists[0];
        assert_eq!(d.zone, "dnsbl.test");
        assert_eq!(d.status, LookupStatus::Answered);
        assert_eq!(
            d.codes,
            ["127.0.0.2".parse::<std::net::Ipv4Addr>().unwrap()]
        );
        assert!(d.listed);
        // No PTR record for it: NXDOMAIN, not a failure (hickory answers loopback PTRs
        // itself with `localhost.`, RFC 6761 §6.3, so only the other client shows it).
        if client == "192.0.2.99" {
            assert_eq!(r.lookups().ptr.status, LookupStatus::NxDomain);
        }
        assert_eq!(r.facts().confirmed_names().count(), 0);
        assert!(!r.is_tentative());
    }
    // IPv6 listing, nibble-reversed (RFC 5782 §2.4): the PTR confirms CRES first.
    let r = dns.matches(&table, ip("2001:db8::25")).await;
    assert_eq!(group(&r), Some("CRES"), "{r:#?}");
    assert_eq!(r.lookups().forward[0].addresses, [ip("2001:db8::25")]);
    assert!(r.lookups().dnslists[0].listed);
}

#[tokio::test]
async fn cidr_match_in_group_one_makes_no_dns_query() {
    let lab = Lab::start();
    let table = table(CRES_TABLE);
    let dns = resolver(&lab, ResolverLimits::default());
    let r = dns.matches(&table, ip("208.90.57.32")).await;
    assert_eq!(group(&r), Some("CRES"));
    assert_eq!(
        r.verdict().matched_entry().unwrap().as_str(),
        "208.90.57.0/26"
    );
    assert!(r.plan().address_decides());
    let l = r.lookups();
    assert_eq!(l.ptr.status, LookupStatus::Skipped(SkipReason::NotNeeded));
    assert_eq!(
        l.dnslists[0].status,
        LookupStatus::Skipped(SkipReason::NotNeeded)
    );
    assert!(l.forward.is_empty());
    assert_eq!(l.queries_sent(), 0);
    // The server agrees: after a later lookup shows up in its query log, the CIDR client's PTR
    // name (which the lab does serve) never does.
    let later = dns.matches(&table, ip("184.94.241.96")).await;
    assert_eq!(group(&later), Some("CRES"));
    let log = lab.wait_logged("96.241.94.184.in-addr.arpa.");
    assert!(
        !log.contains("32.57.90.208"),
        "the CIDR client was looked up:\n{log}"
    );
}

#[tokio::test]
async fn several_ptr_names_are_bounded_and_each_forward_checked() {
    let lab = Lab::start();
    let table = table(CRES_TABLE);
    let r = resolver(&lab, ResolverLimits::default())
        .matches(&table, ip("192.0.2.60"))
        .await;
    assert_eq!(group(&r), Some("PARTNER"), "{r:#?}");
    let l = r.lookups();
    assert_eq!(l.ptr.names.len(), 3);
    let by_name = |n: &str| l.forward.iter().find(|f| f.name == n).unwrap();
    assert_eq!(by_name("a.multi.test.").addresses, [ip("198.51.100.1")]);
    assert_eq!(by_name("b.multi.test.").status, LookupStatus::NxDomain);
    assert!(by_name("mx.partner.test.").confirmed);

    // With room for one PTR name only, the rest is ignored (and counted), not queried.
    let one = ResolverLimits {
        max_ptr_names: 1,
        ..ResolverLimits::default()
    };
    let r = resolver(&lab, one).matches(&table, ip("192.0.2.60")).await;
    assert_eq!(r.lookups().ptr.names.len(), 1);
    assert_eq!(r.lookups().ptr.ignored, 2);
    assert_eq!(r.lookups().forward.len(), 1);
}

#[tokio::test]
async fn failed_dns_list_query_is_reported_and_makes_the_verdict_tentative() {
    let lab = Lab::start();
    let table = table(&CRES_TABLE.replace("dnslist[dnsbl.test]", "dnslist[refused.test]"));
    let dns = resolver(&lab, ResolverLimits::default());
    let r = dns.matches(&table, ip("192.0.2.99")).await;
    // The failed list counts as "not listed": ALL, but the server is told.
    assert_eq!(group(&r), Some("ALL"), "{r:#?}");
    assert_eq!(
        r.lookups().failures().collect::<Vec<_>>(),
        [(Fact::DnsList("refused.test"), LookupFailure::Refused)]
    );
    assert!(r.is_tentative());
    // A client decided before the list (CRES by CIDR) is not affected by its failure.
    let r = dns.matches(&table, ip("204.15.81.5")).await;
    assert_eq!(group(&r), Some("CRES"));
    assert!(!r.is_tentative());
}

#[tokio::test]
async fn silent_server_times_out_within_the_deadline() {
    // A loopback socket that never answers (no unbound needed for this one).
    let silent = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let limits = ResolverLimits {
        query_timeout: Duration::from_millis(300),
        overall_timeout: Duration::from_millis(800),
        ..ResolverLimits::default()
    };
    let dns = HatResolver::for_nameserver(silent.local_addr().unwrap(), limits).unwrap();
    let table = table(CRES_TABLE);
    let start = Instant::now();
    let r = dns.matches(&table, ip("184.94.241.96")).await;
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(group(&r), Some("ALL"));
    assert!(matches!(
        r.lookups().ptr.status,
        LookupStatus::Failed(LookupFailure::Timeout | LookupFailure::Deadline)
    ));
    assert!(r.is_tentative(), "a PTR name could have put it in CRES");
    // The address decides for a CRES CIDR client: no query, no wait, nothing tentative.
    let start = Instant::now();
    let r = dns.matches(&table, ip("208.90.57.1")).await;
    assert!(start.elapsed() < Duration::from_millis(300));
    assert_eq!(group(&r), Some("CRES"));
    assert!(!r.is_tentative());
}
