//! TLS-RPT (RFC 8460): the tolerant report reader on the 16 shared corpus reports
//! (`../shared/corpora/tlsrpt/`: real Google, Microsoft and Mail.ru reports, the RFC example; its
//! README lists each file's quirks), with the expected counts of every file written down below
//! (read off the files by hand). The `_smtp._tls` record parser is tested in
//! `tests/tlsrpt_record.rs`.
//!
//! The corpus lives next to the workspace (`<workspace>/../shared/corpora`), not in it; CI has
//! it. When it is missing the corpus test fails and says where it looked.

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;

use smtp_tls_policy::Error;
use smtp_tls_policy::tlsrpt::{
    Container, MAX_REPORT_SIZE, PolicyType, Report, ReportErrorKind, ReportReader, ResultType,
    Summary, UNKNOWN_MX, read_report,
};
use time::macros::{date, datetime};

fn corpus_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/corpora/tlsrpt"
    ))
}

fn corpus_file(name: &str) -> Vec<u8> {
    let path = corpus_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "TLS-RPT corpus file {} unreadable ({e}): the shared corpora belong at \
             <workspace>/../shared/corpora (CI has them)",
            path.display()
        )
    })
}

/// One policy entry: type, domain, successes, failures (summary counts).
type PolicyRow = (&'static str, Option<&'static str>, u64, u64);

/// What one corpus file must read as.
struct Expected {
    file: &'static str,
    container: Container,
    organization: &'static str,
    day: time::Date,
    policies: &'static [PolicyRow],
    /// `failed-session-count` summed per result type, over the whole report.
    failures_by_type: &'static [(&'static str, u64)],
}

const RFC_POLICY: &[PolicyRow] = &[("sts", Some("company-y.example"), 5326, 303)];
const RFC_FAILURES: &[(&str, u64)] = &[
    ("certificate-expired", 100),
    ("starttls-not-supported", 200),
    ("validation-failure", 3),
];

const CORPUS: &[Expected] = &[
    Expected {
        file: "rfc8460-appendix-b.json",
        container: Container::Json,
        organization: "Company-X",
        day: date!(2016 - 04 - 01),
        policies: RFC_POLICY,
        failures_by_type: RFC_FAILURES,
    },
    Expected {
        file: "mox-google-2022-09-15.eml",
        container: Container::Message,
        organization: "Google Inc.",
        day: date!(2022 - 09 - 15),
        policies: &[("sts", Some("test.xmox.nl"), 3, 0)],
        failures_by_type: &[],
    },
    Expected {
        file: "mox-microsoft-2023-01-10.eml",
        container: Container::Message,
        organization: "Microsoft Corporation",
        day: date!(2023 - 01 - 10),
        policies: &[("sts", Some("test.xmox.nl"), 2, 0)],
        failures_by_type: &[],
    },
    Expected {
        file: "mox-microsoft-2023-01-10.json.gz",
        container: Container::Gzip,
        organization: "Microsoft Corporation",
        day: date!(2023 - 01 - 10),
        policies: &[("sts", Some("test.xmox.nl"), 2, 0)],
        failures_by_type: &[],
    },
    Expected {
        file: "mox-single-part-message.eml",
        container: Container::Message,
        organization: "Company-X",
        day: date!(2016 - 04 - 01),
        policies: RFC_POLICY,
        failures_by_type: RFC_FAILURES,
    },
    Expected {
        file: "mox-tlsa-and-sts.json",
        container: Container::Json,
        organization: "remote.example",
        day: date!(2024 - 02 - 25),
        policies: &[
            ("tlsa", Some("mail.mox.example"), 1, 0),
            ("sts", Some("unknown.xmox.nl"), 1, 0),
            ("sts", Some("test.xmox.nl"), 1, 0),
        ],
        failures_by_type: &[],
    },
    Expected {
        file: "stalwart-rfc-example-message.eml",
        container: Container::Message,
        organization: "Company-X",
        day: date!(2016 - 04 - 01),
        policies: RFC_POLICY,
        failures_by_type: RFC_FAILURES,
    },
    Expected {
        file: "stalwart-uncompressed-attachment.eml",
        container: Container::Message,
        organization: "Google Inc.",
        day: date!(2020 - 01 - 01),
        policies: &[("sts", Some("example.com"), 23, 1)],
        failures_by_type: &[("certificate-host-mismatch", 1)],
    },
    Expected {
        file: "stalwart-unknown-policy-type.json",
        container: Container::Json,
        organization: "Google Inc.",
        day: date!(2019 - 04 - 14),
        policies: &[
            ("no-policy-found", None, 1, 0),
            ("invalid-policy-type", None, 1, 0),
        ],
        failures_by_type: &[],
    },
    Expected {
        file: "parsedmarc-google-2024-09-03.eml",
        container: Container::Message,
        organization: "Google Inc.",
        day: date!(2024 - 09 - 03),
        policies: &[("no-policy-found", Some("cardinalhealth.ca"), 48, 0)],
        failures_by_type: &[],
    },
    Expected {
        file: "parsedmarc-mailru-2024-02-22.json",
        container: Container::Json,
        organization: "Mail.ru",
        day: date!(2024 - 02 - 22),
        policies: &[("sts", Some("example.com"), 0, 1)],
        failures_by_type: &[("sts-policy-fetch-error", 2)],
    },
    Expected {
        file: "parsedmarc-anonymised-validation-failure.json",
        container: Container::Json,
        organization: "Example Inc.",
        day: date!(2024 - 01 - 09),
        policies: &[("sts", Some("example.com"), 0, 3)],
        failures_by_type: &[("validation-failure", 3)],
    },
    Expected {
        file: "cryinc-microsoft-sts-tlsa-2025-05-23.json",
        container: Container::Json,
        organization: "Microsoft Corporation",
        day: date!(2025 - 05 - 23),
        policies: &[
            ("sts", Some("random.net"), 2, 0),
            ("tlsa", Some("random.net"), 2, 0),
        ],
        failures_by_type: &[],
    },
    Expected {
        file: "cryinc-microsoft-no-ip-no-mx-2025-06-14.json",
        container: Container::Json,
        organization: "Microsoft Corporation",
        day: date!(2025 - 06 - 14),
        policies: &[("sts", Some("xxxxxxxx.xx"), 0, 3)],
        failures_by_type: &[("sts-policy-fetch-error", 3)],
    },
    Expected {
        file: "cryinc-null-contact-info.json",
        container: Container::Json,
        organization: "server.com",
        day: date!(2026 - 01 - 11),
        policies: &[("sts", Some("server.com"), 1, 0)],
        failures_by_type: &[],
    },
    Expected {
        file: "cryinc-google-minified-2025-04-12.json",
        container: Container::Json,
        organization: "Google Inc.",
        day: date!(2025 - 04 - 12),
        policies: &[("no-policy-found", Some("domain.de"), 2, 0)],
        failures_by_type: &[],
    },
];

/// Why `report` does not match `expected`, or `None`.
fn mismatch(report: &Report, expected: &Expected) -> Option<String> {
    let policies: Vec<PolicyRow> = report
        .policies
        .iter()
        .map(|p| {
            (
                leak(p.policy.policy_type.as_str()),
                p.policy.policy_domain.as_deref().map(leak),
                p.summary.total_successful_session_count,
                p.summary.total_failure_session_count,
            )
        })
        .collect();
    if policies != expected.policies {
        return Some(format!("policies {policies:?}"));
    }
    let mut by_type = std::collections::BTreeMap::<String, u64>::new();
    for detail in report.policies.iter().flat_map(|p| &p.failure_details) {
        *by_type
            .entry(detail.result_type.as_str().to_owned())
            .or_default() += detail.failed_session_count;
    }
    let want: std::collections::BTreeMap<String, u64> = expected
        .failures_by_type
        .iter()
        .map(|&(t, n)| (t.to_owned(), n))
        .collect();
    if by_type != want {
        return Some(format!("failures by type {by_type:?}"));
    }
    if report.organization_name != expected.organization {
        return Some(format!("organization {:?}", report.organization_name));
    }
    if report.date_range.start_datetime.date() != expected.day {
        return Some(format!("start {}", report.date_range.start_datetime));
    }
    None
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

#[test]
fn corpus_reports_read_with_their_expected_counts() {
    let mut passed = 0;
    let mut failures = Vec::new();
    for expected in CORPUS {
        let bytes = corpus_file(expected.file);
        assert_eq!(
            Container::detect(&bytes),
            expected.container,
            "{}",
            expected.file
        );
        match read_report(&bytes) {
            Ok(report) => match mismatch(&report, expected) {
                None => passed += 1,
                Some(why) => failures.push(format!("{}: {why}", expected.file)),
            },
            Err(err) => failures.push(format!("{}: {err}", expected.file)),
        }
    }
    println!("tlsrpt corpus: {passed}/{} parsed", CORPUS.len());
    assert_eq!(CORPUS.len(), 16, "the corpus has 16 reports");
    assert!(failures.is_empty(), "{failures:#?}");
    let on_disk = std::fs::read_dir(corpus_dir())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.ends_with(".json") || name.ends_with(".eml") || name.ends_with(".gz")
        })
        .count();
    assert_eq!(on_disk, CORPUS.len(), "every corpus report is listed here");
}

#[test]
fn corpus_quirks_are_read_as_meant() {
    // Microsoft: date-times without a zone, read as UTC; the bare gzip and the message agree.
    let gz = read_report(&corpus_file("mox-microsoft-2023-01-10.json.gz")).unwrap();
    assert_eq!(
        gz.date_range.start_datetime,
        datetime!(2023-01-10 00:00 UTC)
    );
    assert_eq!(
        gz.date_range.end_datetime,
        datetime!(2023-01-10 23:59:59 UTC)
    );
    let eml = read_report(&corpus_file("mox-microsoft-2023-01-10.eml")).unwrap();
    assert_eq!(gz, eml);
    assert!(gz.policies[0].policy.mx_host.is_empty());

    // The RFC example: mx-host as a string, a mangled additional-information kept verbatim; the
    // same report as the gzip (FNAME flag) of the RFC's message and the single-part message.
    let rfc = read_report(&corpus_file("rfc8460-appendix-b.json")).unwrap();
    assert_eq!(rfc.policies[0].policy.mx_host, ["*.mail.company-y.example"]);
    assert_eq!(rfc.policies[0].policy.policy_string.len(), 4);
    let details = &rfc.policies[0].failure_details;
    assert_eq!(
        details[1].additional_information.as_deref(),
        Some(
            "https://reports.company-x.example/report_info ? id = 5065427 c - 23 d3# \
             StarttlsNotSupported "
        )
    );
    assert_eq!(
        details[0].sending_mta_ip,
        Some("2001:db8:abcd:12::1".parse::<IpAddr>().unwrap())
    );
    assert_eq!(details[0].receiving_ip, None);
    assert_eq!(
        details[2].failure_reason_code.as_deref(),
        Some("X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED")
    );
    for file in [
        "stalwart-rfc-example-message.eml",
        "mox-single-part-message.eml",
    ] {
        assert_eq!(read_report(&corpus_file(file)).unwrap(), rfc, "{file}");
    }

    // Unknown policy type kept; missing policy-domain and failure count.
    let unknown = read_report(&corpus_file("stalwart-unknown-policy-type.json")).unwrap();
    assert_eq!(
        unknown.policies[1].policy.policy_type,
        PolicyType::Other("invalid-policy-type".into())
    );

    // Mail.ru: failure entries without endpoints, prose reason codes.
    let mailru = read_report(&corpus_file("parsedmarc-mailru-2024-02-22.json")).unwrap();
    let d = &mailru.policies[0].failure_details[0];
    assert_eq!(d.result_type, ResultType::StsPolicyFetchError);
    assert_eq!((d.sending_mta_ip, d.receiving_ip), (None, None));
    assert_eq!(d.receiving_mx_hostname, None);
    assert_eq!(
        d.failure_reason_code.as_deref(),
        Some("bad https response code: 404")
    );

    // Microsoft TLSA: a policy-string element that is itself a JSON array, flattened.
    let tlsa = read_report(&corpus_file("cryinc-microsoft-sts-tlsa-2025-05-23.json")).unwrap();
    let lines = &tlsa.policies[1].policy.policy_string;
    assert_eq!(lines.len(), 2);
    assert!(lines[0].starts_with("3 1 1 6007EEE5"), "{lines:?}");
    assert!(lines[1].starts_with("3 1 1 837C773D"), "{lines:?}");

    // contact-info null; a report id with an empty domain part.
    let null = read_report(&corpus_file("cryinc-null-contact-info.json")).unwrap();
    assert_eq!(null.contact_info, None);
    let no_ip = read_report(&corpus_file("cryinc-microsoft-no-ip-no-mx-2025-06-14.json")).unwrap();
    assert_eq!(no_ip.report_id, "1234567890+");

    // A 7-day report counts on its first day.
    let week = read_report(&corpus_file("stalwart-uncompressed-attachment.eml")).unwrap();
    assert_eq!(
        week.date_range.end_datetime,
        datetime!(2020-01-07 23:59:59 UTC)
    );
}

#[test]
fn corpus_summary_per_domain_and_day() {
    let reports: Vec<Report> = CORPUS
        .iter()
        .map(|e| read_report(&corpus_file(e.file)).unwrap())
        .collect();
    let summary = Summary::of(&reports);
    assert_eq!(summary.reports(), 16);
    assert!(summary.has_failures());
    let find = |domain: Option<&str>, day| {
        summary
            .domains()
            .find(|d| d.policy_domain.as_deref() == domain && d.day == day)
            .unwrap_or_else(|| panic!("{domain:?} {day}"))
    };
    // The RFC example, read three times (JSON, multipart message, single-part message).
    let rfc = find(Some("company-y.example"), date!(2016 - 04 - 01));
    assert_eq!((rfc.successes, rfc.failures), (3 * 5326, 3 * 303));
    assert_eq!(rfc.failures_by_type["starttls-not-supported"], 600);
    assert_eq!(rfc.failures_by_mx["mx-backup.mail.company-y.example"], 9);
    // Microsoft's message and its bare gzip: the same report, counted twice.
    let ms = find(Some("test.xmox.nl"), date!(2023 - 01 - 10));
    assert_eq!((ms.successes, ms.failures), (4, 0));
    assert!(!ms.has_failures());
    // Two policies without a domain on one day.
    let none = find(None, date!(2019 - 04 - 14));
    assert_eq!((none.successes, none.failures), (2, 0));
    // sts and tlsa of one domain add up.
    let random = find(Some("random.net"), date!(2025 - 05 - 23));
    assert_eq!(random.successes, 4);
    // Failure entries without an MX host.
    let mailru = find(Some("example.com"), date!(2024 - 02 - 22));
    assert_eq!(mailru.failures, 1);
    assert_eq!(mailru.failures_by_mx[UNKNOWN_MX], 2);
    let validation = find(Some("example.com"), date!(2024 - 01 - 09));
    assert_eq!(validation.failures_by_mx["example.com"], 3);
    // 16 reports, 20 policies, 15 (domain, day) rows: the RFC example (3 times), Microsoft's
    // report (twice) and the two domain-less policies each fold into one row.
    assert_eq!(summary.domains().count(), 15);
}

#[test]
fn appendix_b_round_trips_through_the_writer() {
    let parsed = read_report(&corpus_file("rfc8460-appendix-b.json")).unwrap();
    let json = parsed.to_json().unwrap();
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    // RFC 8460 §4.4 names and shapes.
    assert_eq!(
        value["date-range"]["start-datetime"],
        "2016-04-01T00:00:00Z"
    );
    assert_eq!(value["date-range"]["end-datetime"], "2016-04-01T23:59:59Z");
    let policy = &value["policies"][0];
    assert_eq!(policy["policy"]["policy-type"], "sts");
    assert_eq!(policy["policy"]["mx-host"][0], "*.mail.company-y.example");
    assert_eq!(policy["summary"]["total-failure-session-count"], 303);
    assert_eq!(
        policy["failure-details"][1]["result-type"],
        "starttls-not-supported"
    );
    assert_eq!(policy["failure-details"][1]["receiving-ip"], "203.0.113.56");
    assert!(policy["failure-details"][0].get("receiving-ip").is_none());
    let again = read_report(json.as_bytes()).unwrap();
    assert_eq!(again, parsed);
}

#[test]
fn line_endings_do_not_matter() {
    for file in [
        "mox-google-2022-09-15.eml",
        "stalwart-rfc-example-message.eml",
    ] {
        let bytes = corpus_file(file);
        let original = read_report(&bytes).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        let lf = text.replace("\r\n", "\n");
        let crlf = lf.replace('\n', "\r\n");
        assert_eq!(read_report(lf.as_bytes()).unwrap(), original, "{file} LF");
        assert_eq!(
            read_report(crlf.as_bytes()).unwrap(),
            original,
            "{file} CRLF"
        );
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn report_kind(result: Result<Report, Error>) -> ReportErrorKind {
    match result {
        Err(Error::TlsRptReport { kind }) => kind,
        other => panic!("expected a report error, got {other:?}"),
    }
}

#[test]
fn gzip_bomb_stops_at_the_limit() {
    // 17 MiB of JSON whitespace: a few KiB compressed, past the 16 MiB default once inflated.
    let mut inflated = vec![b' '; MAX_REPORT_SIZE + 1024 * 1024];
    inflated[0] = b'{';
    let bomb = gzip(&inflated);
    assert!(bomb.len() < 64 * 1024, "{}", bomb.len());
    assert_eq!(
        report_kind(read_report(&bomb)),
        ReportErrorKind::TooLarge {
            limit: MAX_REPORT_SIZE
        }
    );
    // The same bound applies inside a message, and a smaller one can be chosen.
    let reader = ReportReader::new().with_size_limit(4096);
    let small_bomb = gzip(&[b' '; 8192]);
    assert_eq!(
        report_kind(reader.read(&small_bomb)),
        ReportErrorKind::TooLarge { limit: 4096 }
    );
    assert_eq!(
        report_kind(reader.read(&[b' '; 5000])),
        ReportErrorKind::TooLarge { limit: 4096 }
    );
}

#[test]
fn truncated_gzip_is_a_typed_error() {
    let whole = corpus_file("mox-microsoft-2023-01-10.json.gz");
    for cut in [3, 10, whole.len() / 2, whole.len() - 4] {
        let kind = report_kind(read_report(&whole[..cut]));
        assert!(
            matches!(kind, ReportErrorKind::Gzip { .. }),
            "{cut}: {kind:?}"
        );
    }
}

#[test]
fn malformed_input_is_a_typed_error_never_a_panic() {
    assert_eq!(report_kind(read_report(b"")), ReportErrorKind::Empty);
    assert_eq!(report_kind(read_report(b" \r\n\t")), ReportErrorKind::Empty);
    let kind = report_kind(read_report(
        b"{\"organization-name\": \"x\",\n \"policies\": [",
    ));
    assert!(
        matches!(kind, ReportErrorKind::Json { line: 2, .. }),
        "{kind:?}"
    );
    // Valid JSON, not a report: no date-range; a negative count; a bad date.
    for json in [
        r#"{"policies": []}"#,
        r#"{"date-range":{"start-datetime":"2024-01-01T00:00:00Z","end-datetime":"2024-01-01T23:59:59Z"},"policies":[{"policy":{"policy-type":"sts"},"summary":{"total-successful-session-count":-1}}]}"#,
        r#"{"date-range":{"start-datetime":"yesterday","end-datetime":"today"}}"#,
    ] {
        let kind = report_kind(read_report(json.as_bytes()));
        assert!(
            matches!(kind, ReportErrorKind::Json { .. }),
            "{json}: {kind:?}"
        );
    }
    let no_part =
        b"From: a@example.com\r\nSubject: hi\r\nContent-Type: text/plain\r\n\r\nhello\r\n";
    assert_eq!(
        report_kind(read_report(no_part)),
        ReportErrorKind::NoReportPart
    );
    let bad_part = b"Content-Type: application/tlsrpt+gzip\r\n\r\nnot a report\r\n";
    assert_eq!(
        report_kind(read_report(bad_part)),
        ReportErrorKind::PartNotJson
    );
    // Every prefix of every corpus file: an answer, never a panic.
    for expected in CORPUS {
        let bytes = corpus_file(expected.file);
        for cut in (0..bytes.len()).step_by(13) {
            let _ = read_report(&bytes[..cut]);
        }
    }
    // Errors read as sentences with a stable kind.
    let err = read_report(b"").unwrap_err();
    assert_eq!(err.kind(), "tlsrpt-report");
    assert_eq!(err.to_string(), "TLS report unreadable: empty input");
}

#[test]
fn tolerated_shapes_outside_the_corpus() {
    let json = br#"{"organization-name":null,"report-id":null,
      "date-range":{"start-datetime":"2024-03-01t00:00:00z","end-datetime":"2024-03-02T01:00:00+01:00"},
      "policies":[{"policy":{"policy-type":"STS","policy-string":"version: STSv1\r\nmode: enforce\r\n",
        "policy-domain":"Example.COM.","mx-host":null},
        "summary":{"total-successful-session-count":"7","total-failure-session-count":null},
        "failure-details":[{"result-type":"some-new-type","sending-mta-ip":"","receiving-ip":"bogus",
          "receiving-mx-helo":"mx.example.com","failed-session-count":2,"extra":true}]},
        {"policy":{"policy-type":"tlsa"},"summary":{},"failure-details":null}],
      "an-unknown-key":{"nested":[1,2,3]}}"#;
    let report = read_report(json).unwrap();
    assert_eq!(report.organization_name, "");
    assert_eq!(
        report.date_range.end_datetime,
        datetime!(2024-03-02 00:00 UTC)
    );
    let policy = &report.policies[0];
    assert_eq!(policy.policy.policy_type, PolicyType::Sts);
    assert_eq!(
        policy.policy.policy_string,
        ["version: STSv1", "mode: enforce"]
    );
    assert_eq!(policy.summary.total_successful_session_count, 7);
    let detail = &policy.failure_details[0];
    assert_eq!(
        detail.result_type,
        ResultType::Other("some-new-type".into())
    );
    assert_eq!((detail.sending_mta_ip, detail.receiving_ip), (None, None));
    assert_eq!(detail.receiving_mx_helo.as_deref(), Some("mx.example.com"));
    let summary = Summary::of([&report]);
    let mut days = summary.domains();
    let (no_domain, day) = (days.next().unwrap(), days.next().unwrap());
    assert_eq!(
        no_domain.policy_domain, None,
        "the tlsa policy names no domain"
    );
    assert_eq!(day.policy_domain.as_deref(), Some("example.com"));
    assert_eq!(day.failures, 0);
    assert_eq!(day.failures_by_type["some-new-type"], 2);
    assert!(
        day.has_failures(),
        "failure entries count even when the summary says 0"
    );
}
