//! Table tests of the algorithms and switches over certificates generated with rcgen.

use super::*;
use crate::Error;

/// A leaf with the given CN (if any), SAN dNSNames and SAN IPs, self-signed by rcgen.
fn cert(cn: Option<&str>, dns: &[&str], ips: &[&str]) -> PresentedIdentities {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    if let Some(cn) = cn {
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
    }
    for d in dns {
        params
            .subject_alt_names
            .push(rcgen::SanType::DnsName((*d).try_into().unwrap()));
    }
    for ip in ips {
        params
            .subject_alt_names
            .push(rcgen::SanType::IpAddress(ip.parse().unwrap()));
    }
    let der = params.self_signed(&key).unwrap().der().to_vec();
    PresentedIdentities::from_der(&der).unwrap()
}

fn refs(names: &[&str]) -> Vec<ReferenceId> {
    names
        .iter()
        .map(|n| ReferenceId::parse(n).unwrap())
        .collect()
}

#[cfg(feature = "limbo")]
use IdentityAlgorithm::Strict;
use IdentityAlgorithm::{HostedVerify, Verify};

/// `(CN, SAN dNSNames, SAN IPs, references, algorithm, expected presented match or None)`.
type Case<'a> = (
    Option<&'a str>,
    &'a [&'a str],
    &'a [&'a str],
    &'a [&'a str],
    IdentityAlgorithm,
    Option<&'a str>,
);

const CASES: &[Case<'_>] = &[
    // CN-only certificate: the legacy algorithms use the CN, strict never does.
    (
        Some("mx.example.com"),
        &[],
        &[],
        &["mx.example.com"],
        Verify,
        Some("CN:mx.example.com"),
    ),
    (
        Some("mx.example.com"),
        &[],
        &[],
        &["mx.example.com"],
        HostedVerify,
        Some("CN:mx.example.com"),
    ),
    (
        Some("*.example.com"),
        &[],
        &[],
        &["mx.example.com"],
        Verify,
        Some("CN:*.example.com"),
    ),
    (
        Some("MX.Example.COM."),
        &[],
        &[],
        &["mx.example.com"],
        Verify,
        Some("CN:MX.Example.COM."),
    ),
    (
        Some("bücher.example"),
        &[],
        &[],
        &["xn--bcher-kva.example"],
        Verify,
        Some("CN:bücher.example"),
    ),
    // SAN with CN: Verify uses both; HostedVerify ignores the CN once a dNSName exists.
    (
        Some("legacy.example.com"),
        &["mx.example.com"],
        &[],
        &["legacy.example.com"],
        Verify,
        Some("CN:legacy.example.com"),
    ),
    (
        Some("legacy.example.com"),
        &["mx.example.com"],
        &[],
        &["legacy.example.com"],
        HostedVerify,
        None,
    ),
    (
        Some("legacy.example.com"),
        &["mx.example.com"],
        &[],
        &["mx.example.com"],
        HostedVerify,
        Some("DNS:mx.example.com"),
    ),
    // IP SAN only: CN is still consulted by HostedVerify (no dNSName), never for IP references.
    (
        Some("mx.example.com"),
        &[],
        &["192.0.2.25"],
        &["mx.example.com"],
        HostedVerify,
        Some("CN:mx.example.com"),
    ),
    (
        None,
        &[],
        &["2001:db8::25"],
        &["[IPv6:2001:DB8::25]"],
        Verify,
        Some("IP:2001:db8::25"),
    ),
    (
        Some("192.0.2.25"),
        &["192.0.2.25"],
        &[],
        &["192.0.2.25"],
        Verify,
        None,
    ),
    // Wildcards.
    (
        None,
        &["*.example.com"],
        &[],
        &["example.com"],
        Verify,
        None,
    ),
    (
        None,
        &["*.example.com"],
        &[],
        &["a.mx.example.com"],
        Verify,
        None,
    ),
    (None, &["*.co.uk"], &[], &["example.co.uk"], Verify, None),
    (
        None,
        &["m*.example.com"],
        &[],
        &["mx.example.com"],
        Verify,
        None,
    ),
    // Reference order decides the reported pair.
    (
        None,
        &["mx.example.net", "example.com"],
        &[],
        &["example.com", "mx.example.net"],
        Verify,
        Some("DNS:example.com"),
    ),
];

/// The rows of [`IdentityAlgorithm::Strict`] (x509-limbo harness, feature `limbo`).
#[cfg(feature = "limbo")]
const STRICT_CASES: &[Case<'_>] = &[
    (
        Some("mx.example.com"),
        &[],
        &[],
        &["mx.example.com"],
        Strict,
        None,
    ),
    (
        Some("legacy.example.com"),
        &["mx.example.com"],
        &[],
        &["mx.example.com"],
        Strict,
        Some("DNS:mx.example.com"),
    ),
    (
        None,
        &[],
        &["192.0.2.25"],
        &["192.0.2.25"],
        Strict,
        Some("IP:192.0.2.25"),
    ),
    (
        None,
        &["*.example.com"],
        &[],
        &["mx.example.com"],
        Strict,
        Some("DNS:*.example.com"),
    ),
];
#[cfg(not(feature = "limbo"))]
const STRICT_CASES: &[Case<'_>] = &[];

#[test]
fn algorithm_table() {
    for (i, &(cn, dns, ips, references, algorithm, expected)) in
        CASES.iter().chain(STRICT_CASES).enumerate()
    {
        let ids = cert(cn, dns, ips);
        let verdict = check_identity(&ids, &refs(references), algorithm);
        let got = verdict.matched.as_ref().map(|m| m.presented.to_string());
        assert_eq!(
            got.as_deref(),
            expected,
            "case {i}: {cn:?} {dns:?} {ips:?} vs {references:?}"
        );
        assert_eq!(verdict.reference_ids, refs(references));
    }
}

#[test]
fn reference_sets_per_algorithm() {
    let target = DeliveryTarget::builder("Example.COM.")
        .with_mx_host("mx1.example.net")
        .with_mx_host("mx2.example.net")
        .with_route_host("relay.example.org")
        .build()
        .unwrap();
    let names = |alg| {
        target
            .reference_ids(alg)
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(Verify),
        [
            "example.com",
            "mx1.example.net",
            "mx2.example.net",
            "relay.example.org"
        ]
    );
    assert_eq!(names(HostedVerify), ["example.com", "relay.example.org"]);
    let secure = DeliveryTarget::builder("example.com")
        .with_mx_host("mx1.example.net")
        .with_mx_host("example.com")
        .with_mx_security(MxSecurity::Secure)
        .build()
        .unwrap();
    let names = secure
        .reference_ids(HostedVerify)
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>();
    assert_eq!(names, ["example.com", "mx1.example.net"]);
}

#[test]
fn hosted_verify_refuses_forged_mx() {
    // The certificate belongs to the attacker's MX; only an unsigned MX answer points there.
    let ids = cert(None, &["mx.attacker.example"], &[]);
    let target = DeliveryTarget::builder("victim.example")
        .with_mx_host("mx.attacker.example")
        .build()
        .unwrap();
    let legacy = check_identity(&ids, &target.reference_ids(Verify), Verify);
    assert!(
        legacy.matched.is_some(),
        "the legacy algorithm trusts unsigned DNS"
    );
    let hosted = check_identity(&ids, &target.reference_ids(HostedVerify), HostedVerify);
    assert_eq!(
        hosted.into_result(&ids, HostedVerify),
        Err(Error::NameMismatch {
            reference_ids: vec!["victim.example".into()],
            presented: vec!["DNS:mx.attacker.example".into()],
        })
    );
}

#[test]
fn invalid_reference_ids_are_typed_errors() {
    for (name, reason) in [
        ("", NameError::Empty),
        ("*.example.com", NameError::Wildcard),
        ("foo_bar.example.com", NameError::Syntax),
        ("a..example", NameError::BadLabelLength),
        ("1.2.3.256", NameError::NumericTld),
        ("-a.example", NameError::Syntax),
    ] {
        assert_eq!(ReferenceId::parse(name), Err(reason), "{name:?}");
    }
    let too_many = (0..=MAX_MX_HOSTS).fold(DeliveryTarget::builder("example.com"), |b, i| {
        b.with_mx_host(format!("mx{i}.example.com"))
    });
    assert!(matches!(
        too_many.build(),
        Err(Error::TooManyMxHosts { .. })
    ));
    assert!(matches!(
        DeliveryTarget::builder("bad name").build(),
        Err(Error::InvalidReferenceId {
            reason: NameError::Syntax,
            ..
        })
    ));
}

#[test]
fn fqdn_switch() {
    assert!(check_fqdn(&cert(Some("mx.example.com"), &["*.example.com"], &[])).is_ok());
    assert_eq!(
        check_fqdn(&cert(Some("mailhost"), &["mx.example.com"], &[])),
        Err(Error::NotFqdn {
            name: "mailhost".into()
        })
    );
    assert_eq!(
        check_fqdn(&cert(
            None,
            &["mx.example.com", "bad_name.example.com"],
            &[]
        )),
        Err(Error::NotFqdn {
            name: "bad_name.example.com".into()
        })
    );
    for (name, fqdn) in [
        ("a.b", true),
        ("a", false),
        ("*.a.b", true),
        ("a.b.", true),
        ("1.2.3.4", false),
        // dane_verify::is_fqdn of the A-label form: U-labels are converted, ...
        ("bücher.example", true),
        ("*.bücher.example.", true),
        // ... a wildcard over one label is not an FQDN (cert-store's predicate accepted it).
        ("*.com", false),
        ("*.bücher", false),
    ] {
        assert_eq!(is_fqdn(name), fqdn, "{name}");
    }
}

#[test]
fn x509_switch() {
    let server = ReferenceId::parse("mx.example.com").unwrap();
    let good = cert(Some("mx.example.com"), &[], &[]);
    assert_eq!(good.version, 3);
    assert_eq!(good.signature_hash, SignatureHash::Sha2OrBetter);
    assert!(check_x509(&good, &server).is_ok());
    // The server name may be in the CN or a SAN dNSName (wildcards allowed).
    assert!(check_x509(&cert(None, &["*.example.com"], &[]), &server).is_ok());
    assert_eq!(
        check_x509(
            &cert(Some("other.example.com"), &["example.com"], &[]),
            &server
        ),
        Err(Error::ServerNameAbsent {
            server_name: "mx.example.com".into()
        })
    );
    // rcgen signs with SHA-2 only and always writes v3: the weak variants are set on the view.
    let mut sha1 = good.clone();
    sha1.signature_hash = SignatureHash::Sha1;
    sha1.signature_algorithm = "1.2.840.113549.1.1.5".into();
    assert!(matches!(
        check_x509(&sha1, &server),
        Err(Error::WeakSignature { .. })
    ));
    let mut md5 = good.clone();
    md5.signature_hash = SignatureHash::Md5;
    assert!(matches!(
        check_x509(&md5, &server),
        Err(Error::WeakSignature { .. })
    ));
    // The version is path validation's business (always version 3 there, see
    // `tests/verify.rs`): the switch no longer has a branch that can never be reached.
    let mut v1 = good;
    v1.version = 1;
    assert_eq!(check_x509(&v1, &server), Ok(()));
}

#[test]
fn cabf_common_name_rule() {
    assert!(check_cn_in_san(&cert(Some("mx.example.com"), &["mx.example.com"], &[])).is_ok());
    assert!(check_cn_in_san(&cert(Some("192.0.2.1"), &[], &["192.0.2.1"])).is_ok());
    for (cn, dns, ips) in [
        ("MX.example.com", &["mx.example.com"][..], &[][..]),
        ("192.000.002.001", &[], &["192.0.2.1"]),
        ("0xC0000201", &[], &["192.0.2.1"]),
        ("2001:DB8::1", &[], &["2001:db8::1"]),
    ] {
        assert!(
            matches!(
                check_cn_in_san(&cert(Some(cn), dns, ips)),
                Err(Error::Structure { .. })
            ),
            "{cn}"
        );
    }
}

/// Issue 11, finding 5: a CN whose second byte falls inside a multibyte character made the
/// CA/B Forum rule slice `cn[..2]` and panic. Peer data never panics: each CN gets a verdict.
#[test]
fn cabf_common_name_rule_survives_multibyte_cns() {
    for cn in [
        "a中",
        "中",
        "0中",
        "0x中",
        "0x",
        "é",
        "aé",
        "\u{10FFFF}x",
        "0\u{301}x1",
    ] {
        let mut ids = PresentedIdentities::default();
        ids.common_names.push(cn.into());
        assert!(
            check_cn_in_san(&ids).is_ok(),
            "{cn}: no SAN entry denotes it"
        );
        ids.san_dns_names.push(cn.into());
        assert!(
            check_cn_in_san(&ids).is_ok(),
            "{cn}: a copy of the SAN entry"
        );
    }
    // The same through a real certificate and the whole strict verification.
    let ids = cert(Some("a中"), &["a.example.com"], &[]);
    assert_eq!(ids.common_names, ["a中"]);
    assert!(check_cn_in_san(&ids).is_ok());
}
