//! TLS-RPT (RFC 8460) `_smtp._tls` TXT record: the §3 grammar parsed strictly, each `rua` URI
//! judged on its own, and "not exactly one record means none". The report reader and the shared
//! corpus are in `tests/tlsrpt.rs`.

use smtp_tls_policy::Error;
use smtp_tls_policy::tlsrpt::{
    RecordDiscovery, RecordErrorKind, ReportUri, RuaProblem, TlsRptRecord,
};

fn record_kind(result: Result<TlsRptRecord, Error>) -> RecordErrorKind {
    match result {
        Err(Error::TlsRptRecord { kind }) => kind,
        other => panic!("expected a record error, got {other:?}"),
    }
}

#[test]
fn record_valid_mailto() {
    let r = TlsRptRecord::parse("v=TLSRPTv1; rua=mailto:tlsrpt@example.com").unwrap();
    assert_eq!(
        r.rua,
        [ReportUri::Mailto {
            uri: "mailto:tlsrpt@example.com".into(),
            address: "tlsrpt@example.com".into()
        }]
    );
    assert!(r.skipped.is_empty());
    // Trailing delimiter, no spaces, percent-encoded address, an unknown extension field.
    let r = TlsRptRecord::parse("v=TLSRPTv1;rua=mailto:tls%2Brpt@example.com;ext=1;").unwrap();
    assert!(
        matches!(&r.rua[..], [ReportUri::Mailto { address, .. }] if address == "tls+rpt@example.com")
    );
}

#[test]
fn record_multiple_and_https_rua() {
    let r = TlsRptRecord::parse(
        "v=TLSRPTv1; rua=mailto:a@example.com , https://reports.example.net:8443/tlsrpt?x=1,mailto:b@example.org",
    )
    .unwrap();
    let uris: Vec<&str> = r.rua.iter().map(ReportUri::as_str).collect();
    assert_eq!(
        uris,
        [
            "mailto:a@example.com",
            "https://reports.example.net:8443/tlsrpt?x=1",
            "mailto:b@example.org"
        ]
    );
    assert!(matches!(r.rua[1], ReportUri::Https { .. }));
    let r = TlsRptRecord::parse("v=TLSRPTv1; rua=https://[2001:db8::1]/r").unwrap();
    assert_eq!(r.rua.len(), 1);
}

#[test]
fn record_bad_rua_is_skipped_with_a_note() {
    let r = TlsRptRecord::parse(
        "v=TLSRPTv1; rua=postmaster@example.com,http://r.example/x,mailto:nobody,https://,\
         https://r.example:0/,mailto:ok@example.com,https://r.example]x/",
    )
    .unwrap();
    assert_eq!(r.rua.len(), 1);
    assert_eq!(r.rua[0].as_str(), "mailto:ok@example.com");
    let problems: Vec<(&str, &RuaProblem)> = r
        .skipped
        .iter()
        .map(|s| (s.uri.as_str(), &s.problem))
        .collect();
    assert_eq!(
        problems,
        [
            ("postmaster@example.com", &RuaProblem::MissingScheme),
            (
                "http://r.example/x",
                &RuaProblem::UnsupportedScheme {
                    scheme: "http".into()
                }
            ),
            ("mailto:nobody", &RuaProblem::InvalidMailto),
            ("https://", &RuaProblem::InvalidHttps),
            ("https://r.example:0/", &RuaProblem::InvalidHttps),
            ("https://r.example]x/", &RuaProblem::InvalidHttps),
        ]
    );
}

#[test]
fn record_rua_without_mailto_only_is_refused() {
    let kind = record_kind(TlsRptRecord::parse(
        "v=TLSRPTv1; rua=postmaster@example.com",
    ));
    match kind {
        RecordErrorKind::NoUsableRua { skipped } => {
            assert_eq!(skipped.len(), 1);
            assert_eq!(skipped[0].problem, RuaProblem::MissingScheme);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn record_grammar_is_strict() {
    let cases: &[(&str, RecordErrorKind)] = &[
        ("v=TLSRPTv1;", RecordErrorKind::MissingRua),
        ("v=TLSRPTv1; ext=1", RecordErrorKind::MissingRua),
        (
            "v=TLSRPTv1; RUA=mailto:a@example.com",
            RecordErrorKind::MissingRua,
        ),
        (
            "v=TLSRPTv2; rua=mailto:a@example.com",
            RecordErrorKind::NotTlsRptV1,
        ),
        (
            " v=TLSRPTv1; rua=mailto:a@example.com",
            RecordErrorKind::NotTlsRptV1,
        ),
        (
            "rua=mailto:a@example.com; v=TLSRPTv1",
            RecordErrorKind::NotTlsRptV1,
        ),
        (
            "v=TLSRPTv1; rua=mailto:a@example.com; rua=mailto:b@example.com",
            RecordErrorKind::DuplicateRua,
        ),
        (
            "v=TLSRPTv1;; rua=mailto:a@example.com",
            RecordErrorKind::MalformedField { field: "".into() },
        ),
        (
            "v=TLSRPTv1; rua=mailto:a@example.com; junk",
            RecordErrorKind::MalformedField {
                field: "junk".into(),
            },
        ),
        (
            "v=TLSRPTv1; rua=mailto:a@example.com; -x=1",
            RecordErrorKind::MalformedField {
                field: "-x=1".into(),
            },
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(&record_kind(TlsRptRecord::parse(text)), expected, "{text}");
    }
    let long = format!(
        "v=TLSRPTv1; rua=mailto:a@example.com; x={}",
        "a".repeat(5000)
    );
    assert_eq!(
        record_kind(TlsRptRecord::parse(&long)),
        RecordErrorKind::TooLong { limit: 4096 }
    );
}

#[test]
fn record_discovery_two_records_mean_none() {
    let one = TlsRptRecord::discover(["v=spf1 -all", "v=TLSRPTv1; rua=mailto:tlsrpt@example.com"])
        .unwrap();
    assert_eq!(one.record().unwrap().rua.len(), 1);
    let two = TlsRptRecord::discover([
        "v=TLSRPTv1; rua=mailto:a@example.com",
        "v=TLSRPTv1; rua=mailto:b@example.com",
    ])
    .unwrap();
    assert_eq!(two, RecordDiscovery::Multiple { count: 2 });
    assert!(two.record().is_none());
    let none = TlsRptRecord::discover(["v=TLSRPTv10; rua=mailto:a@example.com", "hello"]).unwrap();
    assert_eq!(none, RecordDiscovery::NotPublished);
    let empty: [&str; 0] = [];
    assert_eq!(
        TlsRptRecord::discover(empty).unwrap(),
        RecordDiscovery::NotPublished
    );
    let bad = TlsRptRecord::discover(["v=TLSRPTv1; rua=postmaster@example.com"]);
    assert!(matches!(
        record_kind(bad.map(|_| unreachable!())),
        RecordErrorKind::NoUsableRua { .. }
    ));
}

#[test]
fn record_percent_escapes_are_two_hex_digits() {
    // `u8::from_str_radix` would take "+f" for 0x0f: a `%` is followed by two hex digits.
    let r = TlsRptRecord::parse(
        "v=TLSRPTv1; rua=https://r.example/%+f,mailto:a%+fb@example.com,mailto:ok%2b1@example.com,\
         https://r.example/%2",
    )
    .unwrap();
    assert_eq!(r.rua.len(), 1);
    assert_eq!(r.rua[0].as_str(), "mailto:ok%2b1@example.com");
    let problems: Vec<(&str, &RuaProblem)> = r
        .skipped
        .iter()
        .map(|s| (s.uri.as_str(), &s.problem))
        .collect();
    assert_eq!(
        problems,
        [
            ("https://r.example/%+f", &RuaProblem::InvalidCharacter),
            ("mailto:a%+fb@example.com", &RuaProblem::InvalidCharacter),
            ("https://r.example/%2", &RuaProblem::InvalidCharacter),
        ]
    );
}
