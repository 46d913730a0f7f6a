//! Property test: the indexed matcher agrees with the linear-scan reference on generated tables
//! (IPv4 and IPv6, every entry kind, `continue` groups, overlapping entries) and generated facts.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hat_match::{
    Behavior, Facts, HostAccessTable, MailFlowPolicy, SenderEntry, SenderGroup, reference,
};
use ipnet::{Ipv4Net, Ipv6Net};
use proptest::prelude::*;

/// Small address spaces so that entries overlap and clients hit them.
fn v4(x: u16) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, (x >> 8) as u8 & 3, x as u8)
}

fn v6(x: u16) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, x & 0x3ff)
}

const NAMES: &[&str] = &[
    "example",
    "a.example",
    "b.a.example",
    "mx.b.a.example",
    "c.test",
    "a.c.test",
];
const ZONES: &[&str] = &["bl1.example", "bl2.example", "bl3.example"];

fn entry() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u16>().prop_map(|x| v4(x).to_string()),
        any::<u16>().prop_map(|x| v6(x).to_string()),
        (any::<u16>(), 22u8..=32)
            .prop_map(|(x, p)| Ipv4Net::new(v4(x), p).unwrap().trunc().to_string()),
        (any::<u16>(), 118u8..=128)
            .prop_map(|(x, p)| Ipv6Net::new(v6(x), p).unwrap().trunc().to_string()),
        (any::<u16>(), any::<u8>()).prop_map(|(x, n)| {
            let a = v4(x);
            let last = a.octets()[3].max(n);
            format!("{a}-{last}")
        }),
        (any::<u16>(), any::<u16>()).prop_map(|(x, y)| {
            let (lo, hi) = (v4(x).min(v4(y)), v4(x).max(v4(y)));
            format!("{lo}-{hi}")
        }),
        (any::<u16>(), any::<u16>()).prop_map(|(x, y)| {
            let (lo, hi) = (v6(x).min(v6(y)), v6(x).max(v6(y)));
            format!("{lo}-{hi}")
        }),
        (0u8..4).prop_map(|c| [
            "10.".to_owned(),
            "10.0.".to_owned(),
            format!("10.0.{c}."),
            "11.".into()
        ][c as usize % 4]
            .clone()),
        prop::sample::select(NAMES).prop_map(str::to_owned),
        prop::sample::select(NAMES).prop_map(|n| format!(".{n}")),
        prop::sample::select(NAMES).prop_map(|n| n.to_uppercase() + "."),
        prop::sample::select(ZONES).prop_map(|z| format!("dnslist[{z}]")),
        Just("ALL".to_owned()),
    ]
}

const BEHAVIORS: &[Behavior] = &[
    Behavior::Accept,
    Behavior::Relay,
    Behavior::Reject,
    Behavior::TcpRefuse,
    Behavior::Continue,
];

fn table() -> impl Strategy<Value = HostAccessTable> {
    let group = (
        prop::sample::select(BEHAVIORS),
        prop::collection::vec(entry(), 1..6),
    );
    (
        prop::collection::vec(group, 1..9),
        prop::collection::vec(any::<u32>(), 9),
    )
        .prop_map(|(groups, orders)| {
            let policies = BEHAVIORS
                .iter()
                .map(|b| MailFlowPolicy::new(b.as_str(), *b).unwrap())
                .collect();
            // Distinct orders in a shuffled sequence, so group rank differs from config order.
            let mut seen = std::collections::HashSet::new();
            let groups = groups
                .into_iter()
                .enumerate()
                .map(|(i, (b, entries))| {
                    let mut order = orders[i] % 1000;
                    while !seen.insert(order) {
                        order += 1;
                    }
                    let senders = entries
                        .iter()
                        .map(|e| SenderEntry::parse(e).unwrap())
                        .collect();
                    SenderGroup::new(&format!("G{i}"), order, b.as_str(), senders).unwrap()
                })
                .collect();
            HostAccessTable::new(policies, groups).unwrap()
        })
}

fn client() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u16>().prop_map(|x| IpAddr::V4(v4(x))),
        any::<u16>().prop_map(|x| IpAddr::V6(v6(x))),
        any::<u16>().prop_map(|x| IpAddr::V6(v4(x).to_ipv6_mapped())),
        Just(IpAddr::V4(Ipv4Addr::new(11, 1, 2, 3))),
        Just(IpAddr::V4(Ipv4Addr::BROADCAST)),
        Just(IpAddr::V6(Ipv6Addr::from_bits(u128::MAX))),
    ]
}

fn facts() -> impl Strategy<Value = Facts> {
    let ptr = (prop::sample::select(NAMES), any::<bool>(), any::<bool>());
    (
        client(),
        prop::collection::vec(ptr, 0..3),
        prop::sample::subsequence(ZONES, 0..=3),
    )
        .prop_map(|(ip, ptrs, zones)| {
            let mut facts = Facts::new(ip);
            for (name, confirmed, other) in ptrs {
                let mut forward = Vec::new();
                if confirmed {
                    forward.push(ip);
                }
                if other {
                    forward.push("192.0.2.1".parse().unwrap());
                }
                facts.add_ptr(name, forward).unwrap();
            }
            for z in zones {
                facts.add_dnslist(z).unwrap();
            }
            facts
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn index_agrees_with_reference(table in table(), cases in prop::collection::vec(facts(), 1..16)) {
        for facts in &cases {
            prop_assert_eq!(table.matches(facts), reference::matches(&table, facts), "{:?}", facts);
            prop_assert_eq!(table.plan(facts.ip()), reference::plan(&table, facts.ip()));
        }
    }

    #[test]
    fn plan_is_sound(table in table(), facts in facts()) {
        // When the plan says the address decides, no PTR or DNS-list fact changes which groups
        // match (the entry reported within the winning group may differ).
        if table.plan(facts.ip()).address_decides() {
            let bare = Facts::new(facts.ip());
            let (full, ip_only) = (table.matches(&facts), table.matches(&bare));
            prop_assert_eq!(full.sender_group(), ip_only.sender_group());
            let names = |v: &hat_match::HatVerdict<'_>| {
                v.continued().iter().map(|m| m.group().name().to_owned()).collect::<Vec<_>>()
            };
            prop_assert_eq!(names(&full), names(&ip_only));
        }
    }
}
