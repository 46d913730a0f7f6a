use proptest::prelude::*;

use super::*;
use crate::Error;

const H32: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[test]
fn registry_enums_are_lossless() {
    for v in 0..=255u8 {
        assert_eq!(u8::from(CertUsage::from(v)), v);
        assert_eq!(u8::from(Selector::from(v)), v);
        assert_eq!(u8::from(Matching::from(v)), v);
    }
    assert_eq!(CertUsage::from(2), CertUsage::DaneTa);
    assert_eq!(CertUsage::from(7), CertUsage::Unassigned(7));
    assert_eq!(CertUsage::from(255), CertUsage::Private);
    assert_eq!(Selector::from(1), Selector::Spki);
    assert_eq!(Matching::from(2), Matching::Sha512);
}

#[test]
fn text_parse_table() {
    // (input, expected result)
    let ok = |s: &str| s.parse::<TlsaRecord>();
    let r = ok(&format!("3 1 1 {H32}")).unwrap();
    assert_eq!(
        (r.usage(), r.selector(), r.matching()),
        (CertUsage::DaneEe, Selector::Spki, Matching::Sha256)
    );
    // whitespace inside the hex, as in zone files, and a parenthesised form
    let spaced = format!("  2 0 1 {} \n {}  ", &H32[..20], &H32[20..]);
    assert_eq!(ok(&spaced).unwrap().data(), r.data());
    assert_eq!(
        ok(&format!("3 1 1 ( {} {} )", &H32[..32], &H32[32..])).unwrap(),
        r
    );
    // upper-case hex accepted, printed lower-case
    assert_eq!(
        ok(&format!("3 1 1 {}", H32.to_uppercase()))
            .unwrap()
            .to_string(),
        format!("3 1 1 {H32}")
    );
    // Full(0) takes any length; unassigned values kept
    assert_eq!(ok("3 0 0 00").unwrap().data(), &[0]);
    assert_eq!(ok("9 7 5 abcd").unwrap().usage(), CertUsage::Unassigned(9));

    assert_eq!(ok(""), Err(Error::MissingField { field: "usage" }));
    assert_eq!(
        ok("3 1"),
        Err(Error::MissingField {
            field: "matching type"
        })
    );
    assert_eq!(
        ok("3 1 1"),
        Err(Error::MissingField {
            field: "certificate association data"
        })
    );
    assert_eq!(
        ok("256 1 1 00"),
        Err(Error::BadNumber {
            field: "usage",
            value: "256".into()
        })
    );
    assert_eq!(
        ok("3 x 1 00"),
        Err(Error::BadNumber {
            field: "selector",
            value: "x".into()
        })
    );
    assert_eq!(ok("3 1 0 0g"), Err(Error::BadHex { position: 1 }));
    assert_eq!(ok("3 1 0 abc"), Err(Error::BadHex { position: 2 }));
    assert_eq!(ok("3 1 0 ( ab"), Err(Error::BadHex { position: 0 }));
    assert_eq!(
        ok("3 1 1 abcd"),
        Err(Error::WrongDigestLength {
            matching: "SHA2-256",
            expected: 32,
            found: 2
        })
    );
    assert_eq!(
        ok(&format!("3 1 2 {H32}")),
        Err(Error::WrongDigestLength {
            matching: "SHA2-512",
            expected: 64,
            found: 32
        })
    );
    // extra fields after the data are not hex: rejected, never ignored
    assert_eq!(
        ok(&format!("3 1 1 {H32} ; comment")),
        Err(Error::BadHex { position: 64 })
    );
}

#[test]
fn wire_parse_table() {
    let r: TlsaRecord = format!("3 1 1 {H32}").parse().unwrap();
    let wire = r.to_wire();
    assert_eq!(wire.len(), 35);
    assert_eq!(TlsaRecord::from_wire(&wire).unwrap(), r);
    assert_eq!(
        TlsaRecord::from_wire(&wire[..2]),
        Err(Error::Truncated {
            found: 2,
            needed: 3
        })
    );
    assert_eq!(TlsaRecord::from_wire(&wire[..3]), Err(Error::EmptyData));
    assert_eq!(
        TlsaRecord::from_wire(&wire[..20]),
        Err(Error::WrongDigestLength {
            matching: "SHA2-256",
            expected: 32,
            found: 17
        })
    );
    let mut long = wire.clone();
    long.push(0);
    assert_eq!(
        TlsaRecord::from_wire_with_len(&long, 35),
        Err(Error::TrailingData { extra: 1 })
    );
    assert_eq!(
        TlsaRecord::from_wire_with_len(&wire, 40),
        Err(Error::Truncated {
            found: 35,
            needed: 40
        })
    );
}

#[test]
fn rr_line_matches_postfix_format() {
    let r: TlsaRecord = format!("2 1 1 {H32}").parse().unwrap();
    assert_eq!(
        r.to_rr_line("mx.example.", 25),
        format!("_25._tcp.mx.example. IN TLSA 2 1 1 {H32}")
    );
}

fn arb_record() -> impl Strategy<Value = TlsaRecord> {
    (
        any::<u8>(),
        any::<u8>(),
        any::<u8>(),
        proptest::collection::vec(any::<u8>(), 1..200),
    )
        .prop_map(|(u, s, m, mut data)| {
            if let Some(n) = Matching::from(m).digest_len() {
                data.resize(n, 0xa5);
            }
            TlsaRecord::new(u.into(), s.into(), m.into(), data).unwrap()
        })
}

proptest! {
    #[test]
    fn text_round_trip(r in arb_record(), splits in proptest::collection::vec(0usize..400, 0..4)) {
        let text = r.to_string();
        prop_assert_eq!(text.parse::<TlsaRecord>().unwrap(), r.clone());
        // inserting whitespace inside the hex (zone-file style) changes nothing
        let (head, hex) = text.rsplit_once(' ').unwrap();
        let mut hex = hex.to_string();
        for at in splits {
            let at = at % (hex.len() + 1);
            hex.insert_str(at, " \t");
        }
        prop_assert_eq!(format!("{head} {hex}").parse::<TlsaRecord>().unwrap(), r);
    }

    #[test]
    fn wire_round_trip(r in arb_record()) {
        prop_assert_eq!(TlsaRecord::from_wire(&r.to_wire()).unwrap(), r);
    }

    #[test]
    fn text_parser_never_panics(s in "\\PC{0,80}") {
        let _ = s.parse::<TlsaRecord>();
    }
}
