use std::net::IpAddr;

use super::*;
use crate::NameProblem;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn kind(s: &str) -> EntryKind {
    SenderEntry::parse(s)
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .kind
}

#[test]
fn every_documented_form_parses() {
    assert_eq!(kind("10.1.1.1"), EntryKind::Address(ip("10.1.1.1")));
    assert_eq!(kind("2001:db8::1"), EntryKind::Address(ip("2001:db8::1")));
    assert_eq!(
        kind("208.90.57.0/26"),
        EntryKind::Cidr("208.90.57.0/26".parse().unwrap())
    );
    assert_eq!(
        kind("2001:db8::/32"),
        EntryKind::Cidr("2001:db8::/32".parse().unwrap())
    );
    assert_eq!(
        kind("10.1.1.10-20"),
        EntryKind::Range {
            first: ip("10.1.1.10"),
            last: ip("10.1.1.20")
        }
    );
    assert_eq!(
        kind("10.1.1.10-10.1.2.20"),
        EntryKind::Range {
            first: ip("10.1.1.10"),
            last: ip("10.1.2.20")
        }
    );
    assert_eq!(
        kind("2001:db8::1-2001:db8::ff"),
        EntryKind::Range {
            first: ip("2001:db8::1"),
            last: ip("2001:db8::ff")
        }
    );
    assert_eq!(
        kind("10.2.3."),
        EntryKind::Ipv4Prefix("10.2.3.0/24".parse().unwrap())
    );
    assert_eq!(
        kind("10.2."),
        EntryKind::Ipv4Prefix("10.2.0.0/16".parse().unwrap())
    );
    assert_eq!(
        kind("10."),
        EntryKind::Ipv4Prefix("10.0.0.0/8".parse().unwrap())
    );
    assert_eq!(
        kind("Mail.Example.com."),
        EntryKind::Host("mail.example.com".into())
    );
    assert_eq!(
        kind(".example.com"),
        EntryKind::Suffix("example.com".into())
    );
    assert_eq!(
        kind("dnslist[Zen.Spamhaus.org]"),
        EntryKind::DnsList("zen.spamhaus.org".into())
    );
    assert_eq!(kind("ALL"), EntryKind::All);
    assert_eq!(kind("  all "), EntryKind::All);
    assert_eq!(
        kind("0.0.0.0/0"),
        EntryKind::Cidr("0.0.0.0/0".parse().unwrap())
    );
    assert_eq!(kind("::/0"), EntryKind::Cidr("::/0".parse().unwrap()));
    assert_eq!(
        kind("1and1.example"),
        EntryKind::Host("1and1.example".into())
    );
    assert_eq!(
        kind(".bücher.example"),
        EntryKind::Suffix("xn--bcher-kva.example".into())
    );
}

#[test]
fn junk_is_a_typed_error() {
    let t = |s: &str| s.to_owned();
    let cases: Vec<(&str, Error)> = vec![
        ("", Error::EmptyEntry),
        ("   ", Error::EmptyEntry),
        (
            "10.1.1.300",
            Error::InvalidIpv4 {
                text: t("10.1.1.300"),
            },
        ),
        ("10.1.1", Error::InvalidIpv4 { text: t("10.1.1") }),
        (
            "010.1.1.1",
            Error::InvalidIpv4 {
                text: t("010.1.1.1"),
            },
        ),
        (
            "10.1.1.20-10",
            Error::ReversedRange {
                text: t("10.1.1.20-10"),
            },
        ),
        (
            "10.1.2.1-10.1.1.1",
            Error::ReversedRange {
                text: t("10.1.2.1-10.1.1.1"),
            },
        ),
        (
            "10.1.1.10-256",
            Error::InvalidIpv4 {
                text: t("10.1.1.10-256"),
            },
        ),
        (
            "10.1.1.10-",
            Error::InvalidIpv4 {
                text: t("10.1.1.10-"),
            },
        ),
        (
            "10.1.1.1.",
            Error::InvalidIpv4 {
                text: t("10.1.1.1."),
            },
        ),
        ("10..", Error::InvalidIpv4 { text: t("10..") }),
        (
            "10.0.0.0/33",
            Error::PrefixLength {
                text: t("10.0.0.0/33"),
                len: 33,
                max: 32,
            },
        ),
        (
            "2001:db8::/129",
            Error::PrefixLength {
                text: t("2001:db8::/129"),
                len: 129,
                max: 128,
            },
        ),
        (
            "10.0.0.0/",
            Error::InvalidIpv4 {
                text: t("10.0.0.0/"),
            },
        ),
        (
            "10.1.1.5/24",
            Error::CidrHostBits {
                text: t("10.1.1.5/24"),
                network: t("10.1.1.0/24"),
            },
        ),
        (
            "2001:db8::g",
            Error::InvalidIpv6 {
                text: t("2001:db8::g"),
            },
        ),
        (
            "2001:db8::ff-2001:db8::1",
            Error::ReversedRange {
                text: t("2001:db8::ff-2001:db8::1"),
            },
        ),
        (
            "2001:db8::1-10.0.0.1",
            Error::InvalidIpv6 {
                text: t("2001:db8::1-10.0.0.1"),
            },
        ),
        (
            "::ffff:10.0.0.1",
            Error::Ipv4Mapped {
                text: t("::ffff:10.0.0.1"),
            },
        ),
        (
            "dnslist[zen.example",
            Error::InvalidDnsList {
                text: t("dnslist[zen.example"),
            },
        ),
        (
            "dnslist[a]b]",
            Error::InvalidDnsList {
                text: t("dnslist[a]b]"),
            },
        ),
        (
            "dnslist[]",
            Error::InvalidName {
                text: t(""),
                problem: NameProblem::Empty,
            },
        ),
        (
            "..example",
            Error::InvalidName {
                text: t("..example"),
                problem: NameProblem::EmptyLabel,
            },
        ),
        (
            ".",
            Error::InvalidName {
                text: t("."),
                problem: NameProblem::EmptyLabel,
            },
        ),
        (
            "mail example",
            Error::InvalidName {
                text: t("mail example"),
                problem: NameProblem::BadCharacter,
            },
        ),
    ];
    for (input, want) in cases {
        assert_eq!(SenderEntry::parse(input), Err(want), "{input:?}");
    }
    let long = "a".repeat(MAX_ENTRY_LEN + 1);
    assert_eq!(
        SenderEntry::parse(&long),
        Err(Error::EntryTooLong {
            len: MAX_ENTRY_LEN + 1,
            max: MAX_ENTRY_LEN
        })
    );
}

#[test]
fn ip_matching() {
    let e = |s: &str| SenderEntry::parse(s).unwrap();
    assert!(e("208.90.57.0/26").matches_ip(ip("208.90.57.32")));
    assert!(!e("208.90.57.0/26").matches_ip(ip("208.90.57.64")));
    assert!(e("10.1.1.10-20").matches_ip(ip("10.1.1.20")));
    assert!(!e("10.1.1.10-20").matches_ip(ip("10.1.1.21")));
    assert!(e("10.2.").matches_ip(ip("10.2.255.1")));
    assert!(!e("10.2.").matches_ip(ip("10.3.0.0")));
    assert!(e("2001:db8::1-2001:db8::ff").matches_ip(ip("2001:db8::80")));
    assert!(!e("2001:db8::/32").matches_ip(ip("10.0.0.1")));
    assert!(e("ALL").matches_ip(ip("::1")));
    assert!(!e("mail.example").matches_ip(ip("10.0.0.1")));
}

#[test]
fn name_matching() {
    let e = |s: &str| SenderEntry::parse(s).unwrap();
    assert!(e(".res.cisco.com").matches_name("mxnat3.res.cisco.com"));
    assert!(e(".res.cisco.com").matches_name("a.b.res.cisco.com"));
    assert!(!e(".res.cisco.com").matches_name("res.cisco.com"));
    assert!(!e(".res.cisco.com").matches_name("evilres.cisco.com"));
    assert!(e("res.cisco.com").matches_name("res.cisco.com"));
    assert!(!e("res.cisco.com").matches_name("a.res.cisco.com"));
}

#[test]
fn multibyte_text_at_the_dnslist_prefix_boundary() {
    // Found by the hat_entry fuzz target: byte 8 falls inside a two-byte character.
    assert!(SenderEntry::parse(".r.isco\u{4a4}ol").is_ok());
    assert!(
        matches!(kind("dnslist\u{4a4}"), EntryKind::Host(_)),
        "an IDN host name"
    );
}
