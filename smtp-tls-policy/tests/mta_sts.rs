//! MTA-STS (RFC 8461) table tests: the TXT record, the policy file and `mx` matching (the cache
//! and the per-host verdict: `mta_sts_cache.rs`). Cases are the RFC's examples plus the edge cases
//! peers' users tripped over (issue 13).

use smtp_tls_policy::mta_sts::*;

// --- TXT record (RFC 8461 §3.1) ---

fn txt(records: &[&[&str]]) -> TxtOutcome {
    let records: Vec<Vec<&str>> = records.iter().map(|r| r.to_vec()).collect();
    select_txt_record(&records)
}

fn record(s: &str) -> TxtOutcome {
    TxtOutcome::Record(parse_txt_record(&format!("v=STSv1; id={s}")).unwrap())
}

#[test]
fn txt_record_table() {
    let long33 = "a".repeat(33);
    let long32 = "a".repeat(32);
    let cases: Vec<(&str, Vec<&[&str]>, TxtOutcome)> = vec![
        // RFC 8461 §3.1 example
        (
            "rfc example",
            vec![&["v=STSv1; id=20160831085700Z;"]],
            record("20160831085700Z"),
        ),
        ("no trailing ;", vec![&["v=STSv1; id=abc"]], record("abc")),
        ("no whitespace", vec![&["v=STSv1;id=abc;"]], record("abc")),
        (
            "tabs and spaces",
            vec![&["v=STSv1 \t; \tid=abc \t;  "]],
            record("abc"),
        ),
        (
            "multi-string joined",
            vec![&["v=STSv1; id=ab", "c;"]],
            record("abc"),
        ),
        (
            "extension ignored",
            vec![&["v=STSv1; ext=1; id=abc"]],
            record("abc"),
        ),
        (
            "first id wins",
            vec![&["v=STSv1; id=abc; id=def"]],
            record("abc"),
        ),
        (
            "other TXT records ignored",
            vec![&["v=spf1 -all"], &["v=STSv1; id=x1"]],
            record("x1"),
        ),
        ("no record", vec![&["v=spf1 -all"]], TxtOutcome::NoRecord),
        ("empty answer", vec![], TxtOutcome::NoRecord),
        (
            "case matters",
            vec![&["V=stsv1; id=abc"]],
            TxtOutcome::NoRecord,
        ),
        (
            "prefix of another word",
            vec![&["v=STSv10; id=abc"]],
            TxtOutcome::NoRecord,
        ),
        (
            "several records",
            vec![&["v=STSv1; id=a"], &["v=STSv1; id=b"]],
            TxtOutcome::SeveralRecords { count: 2 },
        ),
        (
            "several, one invalid",
            vec![&["v=STSv1; id=a"], &["v=STSv1;"]],
            TxtOutcome::SeveralRecords { count: 2 },
        ),
        (
            "no id",
            vec![&["v=STSv1;"]],
            TxtOutcome::Invalid {
                reason: TxtInvalid::MissingId,
            },
        ),
        (
            "empty id",
            vec![&["v=STSv1; id="]],
            TxtOutcome::Invalid {
                reason: TxtInvalid::EmptyId,
            },
        ),
        (
            "id with a dash",
            vec![&["v=STSv1; id=2016-08-31"]],
            TxtOutcome::Invalid {
                reason: TxtInvalid::IdSyntax,
            },
        ),
        (
            "field without =",
            vec![&["v=STSv1; id=a; junk"]],
            TxtOutcome::Invalid {
                reason: TxtInvalid::MalformedField { index: 1 },
            },
        ),
        (
            "empty inner field",
            vec![&["v=STSv1;; id=a"]],
            TxtOutcome::Invalid {
                reason: TxtInvalid::MalformedField { index: 0 },
            },
        ),
    ];
    for (name, records, expected) in cases {
        assert_eq!(txt(&records), expected, "{name}");
    }
    let r = format!("v=STSv1; id={long32}");
    assert_eq!(
        txt(&[&[&r]]),
        record(&long32),
        "32 characters is the longest id"
    );
    let r = format!("v=STSv1; id={long33}");
    assert_eq!(
        txt(&[&[&r]]),
        TxtOutcome::Invalid {
            reason: TxtInvalid::IdTooLong { len: 33 }
        },
        "id too long"
    );
}

#[test]
fn txt_bounds_and_bytes() {
    let many: Vec<Vec<&str>> = (0..65).map(|_| vec!["v=spf1"]).collect();
    assert_eq!(
        select_txt_record(&many),
        TxtOutcome::TooManyRecords { count: 65 }
    );
    let huge = "x".repeat(5000);
    assert_eq!(
        select_txt_record(&[vec!["v=STSv1; id=a; e=", huge.as_str()]]),
        TxtOutcome::Invalid {
            reason: TxtInvalid::TooLong
        }
    );
    let bytes: [Vec<&[u8]>; 1] = [vec![b"v=STSv1; id=a; e=\xff"]];
    assert_eq!(
        select_txt_record(&bytes),
        TxtOutcome::Invalid {
            reason: TxtInvalid::NotText
        }
    );
}

// --- policy file (RFC 8461 §3.2) ---

const RFC_POLICY: &str = "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmx: backupmx.example.com\r\nmax_age: 604800\r\n";

fn policy(text: &str) -> Result<Policy, PolicyError> {
    Policy::parse(text.as_bytes())
}

#[test]
fn rfc_policy_example() {
    let p = policy(RFC_POLICY).unwrap();
    assert_eq!(p.mode, Mode::Enforce);
    assert_eq!(p.max_age, 604_800);
    let mx: Vec<String> = p.mx.iter().map(ToString::to_string).collect();
    assert_eq!(
        mx,
        ["mail.example.com", "*.example.net", "backupmx.example.com"]
    );
    assert!(p.notes.is_empty());
    assert_eq!(p.text, RFC_POLICY, "the raw text is kept");
    assert_eq!(p.policy_strings().len(), 6);
    assert_eq!(p.policy_strings()[0], "version: STSv1");
}

#[test]
fn policy_table() {
    use PolicyError as E;
    let ok = |t: &str| policy(t).unwrap_or_else(|e| panic!("{t:?}: {e}"));
    // LF and CRLF, no final line end, blank lines, whitespace after the colon.
    let lf = ok("version: STSv1\nmode: testing\nmx: a.example\nmax_age: 86400");
    assert_eq!((lf.mode, lf.max_age), (Mode::Testing, 86400));
    let ws = ok("version:STSv1\n\nmode:\t none  \nmax_age: 0\n");
    assert_eq!((ws.mode, ws.max_age, ws.mx.len()), (Mode::None, 0, 0));
    // Duplicate keys: the first wins, a note says so.
    let dup =
        ok("version: STSv1\nmode: testing\nmode: enforce\nmx: a.example\nmax_age: 5\nmax_age: 9\n");
    assert_eq!((dup.mode, dup.max_age), (Mode::Testing, 5));
    assert_eq!(
        dup.notes,
        [
            PolicyNote::DuplicateKey {
                key: "mode".into(),
                line: 3
            },
            PolicyNote::DuplicateKey {
                key: "max_age".into(),
                line: 6
            },
        ]
    );
    // max_age above one year is clamped.
    let clamp = ok("version: STSv1\nmode: none\nmax_age: 9999999999\n");
    assert_eq!(clamp.max_age, MAX_AGE_LIMIT);
    assert_eq!(
        clamp.notes,
        [PolicyNote::MaxAgeClamped {
            given: 9_999_999_999
        }]
    );
    let at_limit = ok("version: STSv1\nmode: none\nmax_age: 31557600\n");
    assert!(at_limit.notes.is_empty());
    // Unknown keys ignored, noted; IPs and empty mx dropped but one valid remains.
    let unknown = ok(
        "version: STSv1\nmode: enforce\nfoo: bar\nmx: 192.0.2.1\nmx:\nmx: [IPv6:2001:db8::1]\nmx: mx.example\nmax_age: 60\n",
    );
    assert_eq!(unknown.mx.len(), 1);
    assert_eq!(unknown.notes.len(), 4, "{:?}", unknown.notes);
    assert!(matches!(
        &unknown.notes[1],
        PolicyNote::InvalidMx {
            reason: MxPatternError::IpAddress,
            line: 4,
            ..
        }
    ));
    assert!(matches!(
        &unknown.notes[2],
        PolicyNote::InvalidMx {
            reason: MxPatternError::Empty,
            ..
        }
    ));
    assert!(matches!(
        &unknown.notes[3],
        PolicyNote::InvalidMx {
            reason: MxPatternError::IpAddress,
            ..
        }
    ));
    // version not first: accepted, noted.
    let late = ok("mode: none\nversion: STSv1\nmax_age: 1\n");
    assert_eq!(late.notes, [PolicyNote::VersionNotFirst]);

    let bad: Vec<(&str, PolicyError)> = vec![
        (
            "mode: enforce\nmx: a.example\nmax_age: 1\n",
            E::MissingVersion,
        ),
        (
            "version: STSv2\nmode: none\nmax_age: 1\n",
            E::UnsupportedVersion {
                value: "STSv2".into(),
            },
        ),
        (
            "version: STSv1\nmx: a.example\nmax_age: 1\n",
            E::MissingMode,
        ),
        (
            "version: STSv1\nmode: Enforce\nmx: a.example\nmax_age: 1\n",
            E::InvalidMode {
                value: "Enforce".into(),
            },
        ),
        (
            "version: STSv1\nmode: enforce\nmx: a.example\n",
            E::MissingMaxAge,
        ),
        (
            "version: STSv1\nmode: none\nmax_age: -1\n",
            E::InvalidMaxAge { value: "-1".into() },
        ),
        (
            "version: STSv1\nmode: none\nmax_age: 12345678901\n",
            E::InvalidMaxAge {
                value: "12345678901".into(),
            },
        ),
        (
            "version: STSv1\nmode: none\nmax_age:\n",
            E::InvalidMaxAge {
                value: String::new(),
            },
        ),
        // the `nmx:` typo: zero valid mx lines under enforce/testing → invalid, never empty
        (
            "version: STSv1\nmode: enforce\nnmx: mail.example.com\nmax_age: 86400\n",
            E::NoMxPatterns {
                mode: Mode::Enforce,
            },
        ),
        (
            "version: STSv1\nmode: testing\nmx: 10.0.0.1\nmax_age: 86400\n",
            E::NoMxPatterns {
                mode: Mode::Testing,
            },
        ),
        (
            "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1\ngarbage line\n",
            E::MalformedLine { line: 5 },
        ),
        (
            "version: STSv1\nmode : none\nmax_age: 1\n",
            E::MalformedLine { line: 2 },
        ),
    ];
    for (text, expected) in bad {
        assert_eq!(policy(text), Err(expected), "{text:?}");
    }
    assert_eq!(Policy::parse(b"version: STSv1\xff"), Err(E::NotText));
    let failure = StsFailure::from(&E::MissingMode);
    assert_eq!(failure.kind.result_type(), "sts-policy-invalid");
    let big = format!(
        "version: STSv1\nmode: none\nmax_age: 1\n#{}",
        "x".repeat(MAX_POLICY_LEN)
    );
    assert!(matches!(policy(&big), Err(E::TooLarge { .. })));
}

#[test]
fn policy_serde_round_trip() {
    let p = policy(RFC_POLICY).unwrap();
    let json = serde_json::to_value(&p).unwrap();
    assert_eq!(json["mode"], "enforce");
    assert_eq!(json["mx"][1], "*.example.net");
    let back: Policy = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(back, p);
    // Read back, a policy is its text parsed again: stored fields cannot contradict it.
    let mut tampered = json.clone();
    tampered["mode"] = "none".into();
    tampered["mx"] = serde_json::json!([]);
    let back: Policy = serde_json::from_value(tampered).unwrap();
    assert_eq!((back.mode, back.mx.len()), (Mode::Enforce, 3));
    let mut invalid = json;
    invalid["text"] = "version: STSv1\nmode: enforce\nnmx: a.example\nmax_age: 1\n".into();
    assert!(serde_json::from_value::<Policy>(invalid).is_err());
}

// --- mx patterns (RFC 8461 §4.1) ---

#[test]
fn mx_pattern_table() {
    // (pattern, host, matches)
    let cases = [
        ("mail.example.com", "mail.example.com", true),
        ("mail.example.com", "MAIL.Example.COM.", true),
        ("mail.example.com.", "mail.example.com", true),
        ("mail.example.com", "mail2.example.com", false),
        ("*.example.net", "mx1.example.net", true),
        ("*.example.net", "MX1.EXAMPLE.NET.", true),
        ("*.example.net", "example.net", false),
        ("*.example.net", "a.b.example.net", false),
        ("*.example.net", "mx1.example.org", false),
        ("*.example.net", "mx1.xexample.net", false),
        ("*.mx.example", "a.mx.example", true),
        ("*.mx.example", "a.b.mx.example", false),
        // IDNA: U-labels and A-labels are one name
        ("mx.bücher.example", "mx.xn--bcher-kva.example", true),
        ("mx.xn--bcher-kva.example", "mx.Bücher.example", true),
        ("*.bücher.example", "mx1.xn--bcher-kva.example.", true),
        ("*.xn--bcher-kva.example", "mx1.bücher.example", true),
    ];
    for (pattern, host, expected) in cases {
        let p = MxPattern::parse(pattern).unwrap();
        assert_eq!(
            p.matches(host) == MxMatch::Match,
            expected,
            "{pattern} vs {host}"
        );
    }
}

#[test]
fn mx_miss_reasons() {
    let p = MxPattern::parse("*.mx.example").unwrap();
    let miss = |host| match p.matches(host) {
        MxMatch::Miss(m) => m,
        MxMatch::Match => panic!("{host} matched"),
    };
    assert_eq!(
        miss("a.b.mx.example"),
        MxMiss::WildcardDepth { host_labels: 2 }
    );
    assert_eq!(
        miss("a.b.mx.example").to_string(),
        "pattern matches one label; host has two"
    );
    assert_eq!(miss("mx.example"), MxMiss::WildcardParentItself);
    assert_eq!(miss("a.other.example"), MxMiss::OutsideWildcard);
    assert!(matches!(
        miss("bad_host..example"),
        MxMiss::InvalidHost { .. }
    ));
    let exact = MxPattern::parse("mx.example").unwrap();
    assert_eq!(
        exact.matches("mx2.example"),
        MxMatch::Miss(MxMiss::DifferentHost)
    );
}

#[test]
fn mx_pattern_refusals() {
    let cases = [
        ("", MxPatternError::Empty),
        (".", MxPatternError::Empty),
        ("*", MxPatternError::Empty),
        ("192.0.2.1", MxPatternError::IpAddress),
        ("[192.0.2.1]", MxPatternError::IpAddress),
        ("2001:db8::1", MxPatternError::IpAddress),
        ("[IPv6:2001:db8::1]", MxPatternError::IpAddress),
        ("*.*.example", MxPatternError::MisplacedWildcard),
        ("mx*.example", MxPatternError::MisplacedWildcard),
        ("a.*.example", MxPatternError::MisplacedWildcard),
    ];
    for (value, expected) in cases {
        assert_eq!(MxPattern::parse(value), Err(expected), "{value:?}");
    }
    assert!(matches!(
        MxPattern::parse("mx..example"),
        Err(MxPatternError::NotHostName { .. })
    ));
    assert!(matches!(MxPattern::parse("*."), Err(MxPatternError::Empty)));
}
