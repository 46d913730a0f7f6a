use proptest::prelude::*;

use super::*;
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
    let cases = [
        (
            "example.com",
            DeliveryTls::RequiredVerify,
            DaneMode::Opportunistic,
            "exact",
        ),
        (
            "EXAMPLE.com.",
            DeliveryTls::RequiredVerify,
            DaneMode::Opportunistic,
            "exact",
        ),
        (
            "mx.example.com",
            DeliveryTls::Required,
            DaneMode::None,
            ".example.com",
        ),
        (
            "a.b.example.com",
            DeliveryTls::Required,
            DaneMode::None,
            ".example.com",
        ),
        (
            "deep.example.com",
            DeliveryTls::Required,
            DaneMode::None,
            ".example.com",
        ),
        (
            "x.deep.example.com",
            DeliveryTls::No,
            DaneMode::None,
            ".deep.example.com",
        ),
        (
            "hosted.example",
            DeliveryTls::RequiredVerifyHostedDomains,
            DaneMode::Mandatory,
            "exact",
        ),
        (
            "inherit.example",
            DeliveryTls::Preferred,
            DaneMode::None,
            "exact",
        ),
        (
            "example.net",
            DeliveryTls::Preferred,
            DaneMode::Opportunistic,
            "default",
        ),
        (
            "not a domain",
            DeliveryTls::Preferred,
            DaneMode::Opportunistic,
            "default",
        ),
        (
            "",
            DeliveryTls::Preferred,
            DaneMode::Opportunistic,
            "default",
        ),
    ];
    for (domain, tls, dane, which) in cases {
        let p = c.lookup(domain);
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
    assert_eq!(c.lookup("xn--bcher-kva.example").tls, DeliveryTls::Required);
    assert_eq!(c.lookup("BÜCHER.example").tls, DeliveryTls::Required);
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
    let p = c.lookup("example.org");
    assert_eq!((p.tls, p.dane), (DeliveryTls::No, DaneMode::None));
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
        keys in proptest::collection::btree_map("\\.?([abc]\\.){0,3}[abc]", 0..6u8, 0..12),
        domain in "([abc]\\.){0,4}[abc]",
    ) {
        let keys: Vec<(String, u8)> = keys.into_iter().collect();
        let mut b = DestinationControls::builder();
        for (k, v) in &keys {
            b = b.entry(k, DestinationEntry::new(MODES[*v as usize], DaneSetting::Default)).unwrap();
        }
        let c = b.build();
        let want = reference(&keys, &domain).map(|v| MODES[v as usize].resolve(DeliveryTls::No));
        let got = c.lookup(&domain);
        prop_assert_eq!(got.tls, want.unwrap_or(DeliveryTls::No));
        prop_assert_eq!(got.matched == DestinationMatch::Default, want.is_none());
    }
}
