//! Acceptance: the CRES note's scenario ("Solution", steps 2–4; addresses from its
//! "Hostnames and IP Addresses" table).

use std::net::IpAddr;

use hat_match::{Behavior, Fact, Facts, HatOutcome, HostAccessTable, ListenerTls, reference};

const CONFIG: &str = r#"
[[mail_flow_policy]]
name = "TLS_REQUIRED"
behavior = "accept"
tls = "required"

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
name = "ALL"
order = 99
policy = "ACCEPTED"
senders = ["ALL"]
"#;

fn table() -> HostAccessTable {
    HostAccessTable::from_toml("cres.toml", CONFIG).expect("the CRES config parses")
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn with_ptr(client: &str, name: &str, forward: &[&str]) -> Facts {
    let mut facts = Facts::new(ip(client));
    facts.add_ptr(name, forward.iter().map(|a| ip(a))).unwrap();
    facts
}

/// Checks the indexed verdict against the reference and returns (group, entry).
fn decide(table: &HostAccessTable, facts: &Facts) -> (String, String) {
    let verdict = table.matches(facts);
    assert_eq!(
        verdict,
        reference::matches(table, facts),
        "index and reference disagree"
    );
    (
        verdict.sender_group().unwrap().to_owned(),
        verdict.matched_entry().unwrap().as_str().to_owned(),
    )
}

#[test]
fn current_network_matches_by_cidr_without_ptr() {
    let table = table();
    let plan = table.plan(ip("208.90.57.32"));
    assert!(plan.address_decides(), "{plan:?}");
    let verdict = table.matches(&Facts::new(ip("208.90.57.32")));
    assert_eq!(verdict.sender_group(), Some("CRES"));
    assert_eq!(verdict.order(), Some(1));
    assert_eq!(verdict.matched_entry().unwrap().as_str(), "208.90.57.0/26");
    assert_eq!(verdict.policy().unwrap().name(), "TLS_REQUIRED");
    assert_eq!(verdict.behavior(), Behavior::Accept);
    assert_eq!(verdict.tls(), Some(ListenerTls::Required));
    assert!(!verdict.ptr_needed());
    assert_eq!(verdict.facts_not_needed().collect::<Vec<_>>(), [Fact::Ptr]);
}

#[test]
fn old_network_matches_by_cidr() {
    let table = table();
    assert_eq!(
        decide(&table, &Facts::new(ip("204.15.81.5"))),
        ("CRES".into(), "204.15.81.0/26".into())
    );
    // Just outside both networks: ALL.
    assert_eq!(
        decide(&table, &Facts::new(ip("204.15.81.64"))),
        ("ALL".into(), "ALL".into())
    );
}

#[test]
fn confirmed_ptr_matches_suffix() {
    let table = table();
    let plan = table.plan(ip("184.94.241.96"));
    assert!(plan.needs_ptr());
    let facts = with_ptr("184.94.241.96", "mxnat3.res.cisco.com", &["184.94.241.96"]);
    assert_eq!(
        decide(&table, &facts),
        ("CRES".into(), ".res.cisco.com".into())
    );
    let verdict = table.matches(&facts);
    assert!(verdict.ptr_needed());
    assert_eq!(verdict.tls(), Some(ListenerTls::Required));
    // Case and one trailing dot do not matter.
    let facts = with_ptr("184.94.241.96", "MXNAT3.Res.Cisco.COM.", &["184.94.241.96"]);
    assert_eq!(
        decide(&table, &facts),
        ("CRES".into(), ".res.cisco.com".into())
    );
    // The second suffix.
    let facts = with_ptr("68.232.140.79", "esa1.cres.iphmx.com", &["68.232.140.79"]);
    assert_eq!(
        decide(&table, &facts),
        ("CRES".into(), ".cres.iphmx.com".into())
    );
}

#[test]
fn unconfirmed_ptr_falls_to_all() {
    let table = table();
    // The PTR claims mxnat3, but its forward lookup gives another address.
    let facts = with_ptr("184.94.241.96", "mxnat3.res.cisco.com", &["184.94.241.74"]);
    assert_eq!(decide(&table, &facts), ("ALL".into(), "ALL".into()));
    // A forward lookup that returned nothing.
    let facts = with_ptr("184.94.241.96", "mxnat3.res.cisco.com", &[]);
    assert_eq!(decide(&table, &facts), ("ALL".into(), "ALL".into()));
    // No PTR facts at all.
    let verdict = table.matches(&Facts::new(ip("184.94.241.96")));
    assert_eq!(verdict.sender_group(), Some("ALL"));
    assert_eq!(verdict.tls(), Some(ListenerTls::Preferred));
    assert!(verdict.ptr_needed(), "group 1 has host-name entries");
}

#[test]
fn suffix_does_not_match_the_domain_itself() {
    let table = table();
    let facts = with_ptr("184.94.241.74", "res.cisco.com", &["184.94.241.74"]);
    assert_eq!(decide(&table, &facts), ("ALL".into(), "ALL".into()));
    let facts = with_ptr("184.94.241.74", "evilres.cisco.com", &["184.94.241.74"]);
    assert_eq!(decide(&table, &facts), ("ALL".into(), "ALL".into()));
}

#[test]
fn ipv4_mapped_client_is_matched_as_ipv4() {
    let table = table();
    let verdict = table.matches(&Facts::new(ip("::ffff:208.90.57.32")));
    assert_eq!(verdict.sender_group(), Some("CRES"));
}

#[test]
fn no_all_group_is_a_defined_outcome() {
    let config = CONFIG
        .split("[[sender_group]]\nname = \"ALL\"")
        .next()
        .unwrap();
    let table = HostAccessTable::from_toml("no-all.toml", config).unwrap();
    let verdict = table.matches(&Facts::new(ip("192.0.2.1")));
    assert_eq!(verdict.outcome(), HatOutcome::NoSenderGroupMatched);
    assert_eq!(verdict.behavior(), Behavior::Reject);
    assert_eq!(verdict.sender_group(), None);
    assert_eq!(
        verdict,
        reference::matches(&table, &Facts::new(ip("192.0.2.1")))
    );
}
