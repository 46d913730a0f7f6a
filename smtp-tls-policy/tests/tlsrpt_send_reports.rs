//! The sending side of TLS-RPT (RFC 8460): the composed report and message read back with this
//! crate's own reader — one report per domain with the day's counts, gzip body and MIME message,
//! header injection refused, the RFC 8460 example's shape, the report domain and the checked forms
//! of addresses. Shared setup: `common/tlsrpt.rs`.

use std::collections::BTreeMap;

use mail_parser::{MessageParser, MimeHeaders};
use smtp_tls_policy::mta_sts::Policy as StsPolicy;
use smtp_tls_policy::tlsrpt::{
    Aggregate, ReportBody, ReportedPolicy, Reporter, ResultType, Session, SessionResult,
    compose_message, read_report, report_filename, report_id,
};
use time::macros::{date, datetime};

mod common {
    pub mod tlsrpt;
}
use common::tlsrpt::{STS_ENFORCE, failure};

fn reporter() -> Reporter {
    Reporter::new(
        "Relay Example",
        "tlsrpt@sender.example",
        "Mail.Sender.Example.",
        "tlsrpt-noreply@sender.example",
    )
}

fn sample_aggregate() -> (Aggregate, ReportedPolicy) {
    let sts = StsPolicy::parse(STS_ENFORCE).unwrap();
    let policy = ReportedPolicy::sts("example.com", Some(&sts));
    let mut agg = Aggregate::new();
    let day = date!(2026 - 12 - 04);
    for _ in 0..5 {
        agg.record(day, &Session::new(policy.clone(), SessionResult::Success));
    }
    for _ in 0..2 {
        let r = failure(ResultType::CertificateExpired, "mx1.example.net", None);
        agg.record(day, &Session::new(policy.clone(), r));
    }
    let r = failure(
        ResultType::StarttlsNotSupported,
        "mx2.example.net",
        Some("https://help.sender.example/tls"),
    );
    agg.record(day, &Session::new(policy.clone(), r));
    agg.record(
        day,
        &Session::new(
            ReportedPolicy::no_policy_found("other.example"),
            SessionResult::Success,
        ),
    );
    (agg, policy)
}

#[test]
fn reports_are_one_per_domain_with_the_days_counts() {
    let (agg, _) = sample_aggregate();
    let day = date!(2026 - 12 - 04);
    let reports = agg.reports(&reporter(), day);
    assert_eq!(reports.len(), 2);
    let r = &reports[0];
    assert_eq!(
        r.policies[0].policy.policy_domain.as_deref(),
        Some("example.com")
    );
    assert_eq!(
        r.date_range.start_datetime,
        datetime!(2026-12-04 00:00:00 UTC)
    );
    assert_eq!(
        r.date_range.end_datetime,
        datetime!(2026-12-04 23:59:59 UTC)
    );
    assert_eq!(
        r.report_id,
        report_id("example.com", day, "mail.sender.example")
    );
    assert!(r.report_id.starts_with("20261204."));
    assert!(r.report_id.ends_with("@mail.sender.example"));
    assert_ne!(r.report_id, reports[1].report_id);
    let summary = r.policies[0].summary;
    assert_eq!(summary.total_successful_session_count, 5);
    assert_eq!(summary.total_failure_session_count, 3);
    let details: BTreeMap<String, u64> = r.policies[0]
        .failure_details
        .iter()
        .map(|d| (d.result_type.to_string(), d.failed_session_count))
        .collect();
    assert_eq!(details["certificate-expired"], 2);
    assert_eq!(details["starttls-not-supported"], 1);
    // RFC 8460 §4.4 shape.
    let json: serde_json::Value = serde_json::from_str(&r.to_json().unwrap()).unwrap();
    for key in [
        "organization-name",
        "date-range",
        "contact-info",
        "report-id",
        "policies",
    ] {
        assert!(json.get(key).is_some(), "{key}");
    }
    assert_eq!(json["date-range"]["start-datetime"], "2026-12-04T00:00:00Z");
    let p = &json["policies"][0];
    assert_eq!(p["policy"]["policy-type"], "sts");
    assert_eq!(p["policy"]["mx-host"][0], "*.example.net");
    assert_eq!(p["summary"]["total-failure-session-count"], 3);
    let fd = &p["failure-details"][0];
    assert_eq!(fd["receiving-mx-helo"], "helo-1.example.net");
    assert!(fd["sending-mta-ip"].is_string() && fd["receiving-ip"].is_string());
    // Serde of the aggregate (the file backend) keeps every count.
    let text = serde_json::to_string(&agg).unwrap();
    let back: Aggregate = serde_json::from_str(&text).unwrap();
    assert_eq!(back, agg);
}

#[test]
fn the_gzip_body_and_the_message_read_back_equal() {
    let (agg, _) = sample_aggregate();
    let day = date!(2026 - 12 - 04);
    let report = agg.reports(&reporter(), day).remove(0);
    let body = ReportBody::of(&report).unwrap();
    assert_eq!(body.content_type(), "application/tlsrpt+gzip");
    assert_eq!(&body.gzip[..2], &[0x1f, 0x8b]);
    assert_eq!(read_report(&body.gzip).unwrap(), report);

    let sent = datetime!(2026-12-05 01:02:03 UTC);
    let bytes = compose_message(&reporter(), &report, "tlsrpt@example.com", sent).unwrap();
    assert_eq!(read_report(&bytes).unwrap(), report);
    let text = std::str::from_utf8(&bytes).unwrap();
    assert!(text.is_ascii());
    assert!(
        !text.replace("\r\n", "").contains('\n') && !text.replace("\r\n", "").contains('\r'),
        "CRLF only"
    );
    for line in text.lines() {
        assert!(line.len() <= 78, "line longer than 78: {line}");
    }

    let message = MessageParser::new().parse(&bytes).unwrap();
    let header = |name: &str| {
        message
            .header_raw(name)
            .map(|v| v.trim().replace("\r\n", ""))
            .unwrap_or_else(|| panic!("{name} missing"))
    };
    assert_eq!(header("TLS-Report-Domain"), "example.com");
    assert_eq!(header("TLS-Report-Submitter"), "mail.sender.example");
    assert_eq!(header("TLS-Required"), "No");
    assert_eq!(header("MIME-Version"), "1.0");
    assert_eq!(header("From"), "tlsrpt-noreply@sender.example");
    assert_eq!(header("To"), "tlsrpt@example.com");
    assert_eq!(header("Date"), "Sat, 05 Dec 2026 01:02:03 +0000");
    assert_eq!(header("Message-ID"), format!("<{}>", report.report_id));
    assert_eq!(
        message.subject().unwrap(),
        format!(
            "Report Domain: example.com Submitter: mail.sender.example Report-ID: <{}>",
            report.report_id
        )
    );
    let ct = message.content_type().unwrap();
    assert_eq!((ct.ctype(), ct.subtype()), ("multipart", Some("report")));
    assert_eq!(ct.attribute("report-type"), Some("tlsrpt"));
    let part = message
        .parts
        .iter()
        .find(|p| {
            p.content_type()
                .is_some_and(|c| c.subtype() == Some("tlsrpt+gzip"))
        })
        .unwrap();
    let filename = report_filename(&report, "mail.sender.example");
    assert_eq!(part.attachment_name(), Some(filename.as_str()));
    assert_eq!(
        filename,
        "mail.sender.example!example.com!1796342400!1796428799.json.gz"
    );
    let text_part = message.body_text(0).unwrap();
    assert!(text_part.contains("Successful sessions: 5"), "{text_part}");
    assert!(text_part.contains("Failed sessions: 3"));
}

#[test]
fn header_injection_is_refused() {
    let (agg, _) = sample_aggregate();
    let report = agg.reports(&reporter(), date!(2026 - 12 - 04)).remove(0);
    let now = datetime!(2026-12-05 00:00:00 UTC);
    let err = compose_message(&reporter(), &report, "a@b.example\r\nBcc: x@y", now).unwrap_err();
    assert_eq!(err.kind(), "tlsrpt-compose");
    let mut bad = reporter();
    bad.from = String::new();
    assert!(compose_message(&bad, &report, "a@b.example", now).is_err());
}

/// The key paths of a JSON value (`a.b.c`, arrays looked through).
fn key_paths(
    value: &serde_json::Value,
    prefix: &str,
    out: &mut std::collections::BTreeSet<String>,
) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                key_paths(v, &path, out);
                out.insert(path);
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                key_paths(item, prefix, out);
            }
        }
        _ => {}
    }
}

#[test]
fn written_reports_have_the_shape_of_the_rfc_8460_example() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/corpora/tlsrpt/rfc8460-appendix-b.json"
    );
    let example = std::fs::read(path).unwrap_or_else(|e| {
        panic!("{path} unreadable ({e}): the shared corpora belong at <workspace>/../shared")
    });
    let example: serde_json::Value = serde_json::from_slice(&example).unwrap();
    let (mut agg, policy) = sample_aggregate();
    let day = date!(2026 - 12 - 04);
    let mut with_code = failure(ResultType::CertificateExpired, "mx3.example.net", None);
    if let SessionResult::Failure {
        failure_reason_code,
        ..
    } = &mut with_code
    {
        *failure_reason_code = Some("X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED".into());
    }
    agg.record(day, &Session::new(policy, with_code));
    let ours: serde_json::Value =
        serde_json::from_str(&agg.reports(&reporter(), day)[0].to_json().unwrap()).unwrap();
    let (mut theirs, mut mine) = (Default::default(), Default::default());
    key_paths(&example, "", &mut theirs);
    key_paths(&ours, "", &mut mine);
    let missing: Vec<_> = theirs.difference(&mine).collect();
    assert!(
        missing.is_empty(),
        "fields of the RFC example we do not write: {missing:?}"
    );
    let extra: Vec<_> = mine.difference(&theirs).collect();
    assert_eq!(extra, ["policies.failure-details.receiving-mx-helo"]);
    // `mx-host` is written as the list RFC 8460 §4.4 specifies (the example's string is
    // erratum 6241).
    assert!(ours["policies"][0]["policy"]["mx-host"].is_array());
}

#[test]
fn the_report_domain_is_never_empty_when_a_later_policy_names_it() {
    let (agg, _) = sample_aggregate();
    let mut report = agg.reports(&reporter(), date!(2026 - 12 - 04)).remove(0);
    let domain = report.policies[0].policy.policy_domain.clone().unwrap();
    let mut first = report.policies[0].clone();
    first.policy.policy_domain = None;
    report.policies.insert(0, first);
    let now = datetime!(2026-12-05 00:00:00 UTC);
    let filename = report_filename(&report, "relay.example");
    assert!(
        filename.starts_with(&format!("relay.example!{domain}!")),
        "{filename}"
    );
    let message = compose_message(&reporter(), &report, "tlsrpt@a.example", now).unwrap();
    let text = String::from_utf8(message).unwrap();
    assert!(
        text.contains(&format!("\r\nTLS-Report-Domain: {domain}\r\n")),
        "{text}"
    );
}

#[test]
fn addresses_domains_and_the_text_part_are_checked_for_their_form() {
    let (agg, _) = sample_aggregate();
    let report = agg.reports(&reporter(), date!(2026 - 12 - 04)).remove(0);
    let now = datetime!(2026-12-05 00:00:00 UTC);
    for to in [
        "a@x.org, b@y.org",
        "a@x.org;b@y.org",
        "Name <a@x.org>",
        "\"a b\"@x.org",
        "a@x.org b@y.org",
        "a@x .org",
        "a@-x.org",
        "@x.org",
        "a@",
    ] {
        let err = compose_message(&reporter(), &report, to, now).unwrap_err();
        assert_eq!(err.kind(), "tlsrpt-compose", "{to}");
    }
    let mut bad_from = reporter();
    bad_from.from = "Reports <r@sender.example>".into();
    assert!(compose_message(&bad_from, &report, "a@b.example", now).is_err());
    let mut bad_submitter = reporter();
    bad_submitter.submitter = "x Submitter: y".into();
    assert!(compose_message(&bad_submitter, &report, "a@b.example", now).is_err());
    let mut bad_domain = report.clone();
    for p in &mut bad_domain.policies {
        p.policy.policy_domain = Some("x Submitter: y".into());
    }
    assert!(compose_message(&reporter(), &bad_domain, "a@b.example", now).is_err());
    // An IDN submitter goes in as A-labels.
    let idn = Reporter::new(
        "Org",
        "c@sender.example",
        "B\u{fc}cher.Example",
        "r@sender.example",
    );
    assert_eq!(idn.submitter, "xn--bcher-kva.example");
    let message = compose_message(&idn, &report, "a@b.example", now).unwrap();
    assert!(
        String::from_utf8(message)
            .unwrap()
            .contains("\r\nTLS-Report-Submitter: xn--bcher-kva.example\r\n")
    );

    // Organization name and contact with CRLF and a boundary line stay on their line.
    let mut evil = reporter();
    evil.organization_name = "Evil\r\n--=_tlsrpt_x\r\nContent-Type: text/html\r\n\r\n<b>".into();
    evil.contact_info = "c@sender.example\r\n--=_tlsrpt_y--".into();
    let message = compose_message(&evil, &report, "a@b.example", now).unwrap();
    let text = String::from_utf8(message).unwrap();
    let parsed = MessageParser::default().parse(text.as_bytes()).unwrap();
    assert_eq!(parsed.parts.len(), 3, "{text}");
    for line in text.split("\r\n") {
        assert!(
            !line.starts_with("--=_tlsrpt_x") && !line.starts_with("--=_tlsrpt_y"),
            "{line}"
        );
        assert!(!line.starts_with("Content-Type: text/html"), "{line}");
    }
    assert!(text.contains("Reporting organization: Evil  --=_tlsrpt_x  Content-Type"));
    assert!(text.contains("Contact: c@sender.example  --=_tlsrpt_y--\r\n"));
}
