use dane_verify::DaneSetting;
use proptest::prelude::*;

use super::*;
use crate::delivery::RequiredTlsAlerts;
use crate::error::{DestinationConfigErrorKind as K, Error};

const SAMPLE: &str = r#"
[global]
client-certificate = "outbound"
alert-on-required-tls-failure = true

[default]
tls = "preferred"
dane = "opportunistic"

[destinations."example.com"]
tls = "required-verify"

[destinations.".example.com"]
tls = "required"
dane = "none"

[destinations.".deep.example.com"]
tls = "no"

[destinations."hosted.example"]
tls = "required-verify-hosted-domains"
dane = "mandatory"

[destinations."inherit.example"]
dane = "none"
"#;

#[test]
fn lookup_table() {
    let c = DestinationControls::from_toml("sample.toml", SAMPLE).unwrap();
    assert_eq!(c.global().client_certificate.as_deref(), Some("outbound"));
    assert!(c.global().alert_on_required_tls_failure);
    assert_eq!(c.global().required_tls_alerts(), RequiredTlsAlerts::Send);
    let cases = [
        (
            "example.com",
            DeliveryTls::RequiredVerify,
            DaneSetting::Opportunistic,
            "exact",
        ),
        (
            "EXAMPLE.com.",
            DeliveryTls::RequiredVerify,
            DaneSetting::Opportunistic,
            "exact",
        ),
        (
            "mx.example.com",
            DeliveryTls::Required,
            DaneSetting::None,
            ".example.com",
        ),
        (
            "a.b.example.com",
            DeliveryTls::Required,
            DaneSetting::None,
            ".example.com",
        ),
        (
            "deep.example.com",
            DeliveryTls::Required,
            DaneSetting::None,
            ".example.com",
        ),
        (
            "x.deep.example.com",
            DeliveryTls::No,
            DaneSetting::None,
            ".deep.example.com",
        ),
        (
            "hosted.example",
            DeliveryTls::RequiredVerifyHostedDomains,
            DaneSetting::Mandatory,
            "exact",
        ),
        (
            "inherit.example",
            DeliveryTls::Preferred,
            DaneSetting::None,
            "exact",
        ),
        (
            "example.net",
            DeliveryTls::Preferred,
            DaneSetting::Opportunistic,
            "default",
        ),
    ];
    for (domain, tls, dane, which) in cases {
        let p = c.lookup(domain).unwrap();
        assert_eq!((p.tls, p.dane), (tls, dane), "{domain}");
        let got = match &p.matched {
            DestinationMatch::Exact(_) => "exact",
            DestinationMatch::Parent(k) => k.as_str(),
            DestinationMatch::Default => "default",
        };
        assert_eq!(got, which, "{domain}");
    }
}

#[test]
fn idn_keys_are_normalised() {
    let c = DestinationControls::from_toml(
        "t",
        "[destinations.\"bücher.example\"]\ntls = \"required\"\n",
    )
    .unwrap();
    assert_eq!(
        c.lookup("xn--bcher-kva.example").unwrap().tls,
        DeliveryTls::Required
    );
    assert_eq!(
        c.lookup("BÜCHER.example").unwrap().tls,
        DeliveryTls::Required
    );
}

fn err_of(text: &str) -> (usize, usize, String, K) {
    match DestinationControls::from_toml("f.toml", text).unwrap_err() {
        Error::DestinationConfig {
            file,
            line,
            column,
            text,
            kind,
        } => {
            assert_eq!(file, "f.toml");
            (line, column, text, kind)
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn config_errors_name_line_and_text() {
    let (line, _, text, kind) = err_of("[default]\ntls = \"sometimes\"\n");
    assert_eq!((line, text.as_str()), (2, "\"sometimes\""));
    assert!(matches!(kind, K::Toml { .. }));

    let (line, col, text, kind) = err_of("\n[destinations.\"bad domain\"]\ntls = \"no\"\n");
    assert_eq!(
        (line, col, text.as_str(), kind),
        (2, 15, "\"bad domain\"", K::InvalidDomain)
    );

    let (line, _, _, kind) =
        err_of("[destinations.\"a.example\"]\n[destinations.\"A.example\"]\ntls=\"no\"\n");
    assert_eq!(
        kind,
        K::DuplicateDomain {
            domain: "a.example".into()
        }
    );
    assert!(line == 1 || line == 2);

    let (_, _, _, kind) = err_of("[default]\ntls = \"default\"\ndane = \"none\"\n");
    assert_eq!(kind, K::DefaultInDefaultEntry);

    let (line, _, _, kind) =
        err_of("[destinations.\"a.example\"]\ntls = \"no\"\ndane = \"mandatory\"\n");
    assert_eq!(kind, K::DaneWithoutTls { dane: "mandatory" });
    assert!(line >= 1);

    let (line, _, text, kind) = err_of("[default]\ntls = \"no\"\nverify = true\n");
    assert_eq!((line, text.as_str()), (3, "verify"));
    assert!(matches!(kind, K::Toml { .. }));

    let (line, _, _, kind) = err_of("[default\n");
    assert_eq!(line, 1);
    assert!(matches!(kind, K::Toml { .. }));
}

#[test]
fn empty_config_is_the_factory_default() {
    let c = DestinationControls::from_toml("e", "").unwrap();
    let p = c.lookup("example.org").unwrap();
    assert_eq!((p.tls, p.dane), (DeliveryTls::No, DaneSetting::None));
}

/// Reference: linear scan over all keys, picking exact, else longest matching parent.
fn reference(keys: &[(String, u8)], domain: &str) -> Option<u8> {
    if let Some((_, v)) = keys.iter().find(|(k, _)| k == domain) {
        return Some(*v);
    }
    keys.iter()
        .filter(|(k, _)| k.starts_with('.') && domain.ends_with(k.as_str()))
        .max_by_key(|(k, _)| k.len())
        .map(|(_, v)| *v)
}

const MODES: [TlsMode; 6] = [
    TlsMode::No,
    TlsMode::Preferred,
    TlsMode::Required,
    TlsMode::PreferredVerify,
    TlsMode::RequiredVerify,
    TlsMode::RequiredVerifyHostedDomains,
];

proptest! {
    #[test]
    fn lookup_matches_linear_scan(
        // `xn--zz` is refused by IDNA (invalid Punycode): compared byte-wise in lower case.
        keys in proptest::collection::btree_map(
            "\\.?((xn--zz|[abc])\\.){0,3}(xn--zz|[abc])", 0..6u8, 0..12),
        domain in "((xn--zz|XN--zz|[abcA])\\.){0,4}[abcB]",
    ) {
        let keys: Vec<(String, u8)> = keys.into_iter().collect();
        let mut b = DestinationControls::builder();
        for (k, v) in &keys {
            b = b.entry(k, DestinationEntry::new(MODES[*v as usize], ConfiguredDane::Default)).unwrap();
        }
        let c = b.build();
        let want = reference(&keys, &domain.to_ascii_lowercase()).map(|v| MODES[v as usize].resolve(DeliveryTls::No));
        let got = c.lookup(&domain).unwrap();
        prop_assert_eq!(got.tls, want.unwrap_or(DeliveryTls::No));
        prop_assert_eq!(got.matched == DestinationMatch::Default, want.is_none());
    }
}

/// Issue 11, finding 7: a name IDNA refuses must not fall back to the default entry.
#[test]
fn idna_refused_ascii_name_gets_the_parent_entry() {
    let c = DestinationControls::from_toml(
        "t",
        "[default]\ntls = \"preferred\"\ndane = \"none\"\n[destinations.\".secure.example\"]\ntls = \"required-verify\"\n",
    )
    .unwrap();
    for name in [
        "xn--zz.secure.example",
        "XN--ZZ.Secure.Example.",
        "a.xn--zz.secure.example",
    ] {
        let p = c.lookup(name).unwrap();
        assert_eq!(p.tls, DeliveryTls::RequiredVerify, "{name}");
        assert_eq!(
            p.matched,
            DestinationMatch::Parent(".secure.example".into()),
            "{name}"
        );
        assert_eq!(
            p.domain,
            name.trim_end_matches('.').to_ascii_lowercase(),
            "{name}"
        );
    }
}

/// Names that cannot be compared are refused with a typed error, never given the default entry
/// (issue 11, finding 7): `(name, reason)`.
#[test]
fn uncomparable_names_are_refused() {
    let c = DestinationControls::from_toml(
        "t",
        "[default]\ntls = \"preferred\"\ndane = \"none\"\n\
         [destinations.\".secure.example\"]\ntls = \"required-verify\"\n",
    )
    .unwrap();
    let long = format!("{}.secure.example", "a.".repeat(130));
    let cases: [(&str, &str); 7] = [
        ("", "empty name"),
        (".", "empty name"),
        (&long, "longer than 253 octets"),
        ("not a domain.secure.example", "not a domain name"),
        ("a..secure.example", "not a domain name"),
        // Non-ASCII that IDNA refuses (a disallowed code point, an invalid bidi label).
        ("a\u{FFFD}.secure.example", "not ASCII"),
        ("\u{5d0}1a.secure.example", "not ASCII"),
    ];
    for (name, reason) in cases {
        match c.lookup(name) {
            Err(Error::InvalidDestinationDomain { domain, reason: r }) => {
                assert!(r.starts_with(reason), "{name:?}: {r}");
                assert_eq!(domain, name.chars().take(80).collect::<String>());
            }
            other => panic!("{name:?}: {other:?}"),
        }
    }
    let e = c.lookup("a\u{FFFD}.secure.example").unwrap_err();
    assert_eq!(e.kind(), "destination");
    // A key that IDNA refuses but that is an ASCII domain name is stored byte-wise too.
    let c = DestinationControls::from_toml(
        "t",
        "[destinations.\"XN--ZZ.example\"]\ntls = \"required\"\n",
    )
    .unwrap();
    assert_eq!(
        c.lookup("xn--zz.EXAMPLE").unwrap().tls,
        DeliveryTls::Required
    );
}

#[test]
fn mta_sts_setting_inherits_and_is_located_in_errors() {
    let toml = "[default]\ntls = \"preferred\"\ndane = \"none\"\n\
                [destinations.\".example.com\"]\nmta-sts = \"ignore\"\n\
                [destinations.\"a.example.com\"]\ntls = \"required\"\n\
                [destinations.\"b.example.com\"]\nmta_sts = \"honor\"\n";
    let c = DestinationControls::from_toml("t.toml", toml).unwrap();
    let get = |d: &str| c.lookup(d).unwrap().mta_sts;
    // Not said anywhere: honor. The `.parent` entry ignores; an exact entry that says nothing
    // inherits the default entry (honor), not the parent.
    assert_eq!(get("example.org"), MtaStsSetting::Honor);
    assert_eq!(get("x.example.com"), MtaStsSetting::Ignore);
    assert_eq!(get("a.example.com"), MtaStsSetting::Honor);
    assert_eq!(get("b.example.com"), MtaStsSetting::Honor);
    let ignore_all = "[default]\ntls = \"no\"\ndane = \"none\"\nmta_sts = \"ignore\"\n";
    let c = DestinationControls::from_toml("t.toml", ignore_all).unwrap();
    assert_eq!(
        c.lookup("x.example").unwrap().mta_sts,
        MtaStsSetting::Ignore
    );
    let bad = "[default]\ntls = \"no\"\ndane = \"none\"\n\n[destinations.\"a.example\"]\nmta_sts = \"sometimes\"\n";
    match DestinationControls::from_toml("t.toml", bad).unwrap_err() {
        Error::DestinationConfig {
            file, line, kind, ..
        } => {
            assert_eq!((file.as_str(), line), ("t.toml", 6));
            assert!(matches!(kind, K::Toml { .. }), "{kind:?}");
        }
        other => panic!("{other:?}"),
    }
}
