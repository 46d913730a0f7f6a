//! Unit tests of the policy host: policy validation and text, the `id`, and the routing table.

use http::{HeaderMap, HeaderValue, Method, Uri};

use super::*;

fn policy(
    domain: &str,
    mode: Mode,
    max_age: u64,
    mx: &[&str],
) -> Result<PublishedPolicy, MtaStsHostError> {
    let mx: Vec<String> = mx.iter().map(|s| (*s).to_owned()).collect();
    PublishedPolicy::new(domain, mode, max_age, &mx)
}

#[test]
fn text_is_crlf_terminated_stsv1() {
    let p = policy(
        "Example.TEST.",
        Mode::Enforce,
        86400,
        &["MX1.example.test.", "*.mx.example.test"],
    )
    .unwrap();
    assert_eq!(
        p.text(),
        "version: STSv1\r\nmode: enforce\r\nmx: mx1.example.test\r\nmx: *.mx.example.test\r\n\
         max_age: 86400\r\n"
    );
    assert_eq!(p.domain(), "example.test");
    assert_eq!(p.policy_host(), "mta-sts.example.test");
}

#[test]
fn id_is_stable_and_follows_the_text() {
    let a = policy("example.test", Mode::Enforce, 86400, &["mx.example.test"]).unwrap();
    let b = policy("EXAMPLE.test", Mode::Enforce, 86400, &["MX.example.test."]).unwrap();
    // The SHA-256 of the text, pinned: a change of the generator must be a deliberate one.
    assert_eq!(
        policy::policy_id(
            "version: STSv1\r\nmode: enforce\r\nmx: mx.example.test\r\nmax_age: 86400\r\n"
        ),
        a.id()
    );
    // `printf 'version: STSv1\r\nmode: enforce\r\nmx: mx.example.test\r\nmax_age: 86400\r\n' | sha256sum`
    assert_eq!(a.id(), "58f4d24c10657bfe");
    assert_eq!(a.id(), b.id());
    assert_eq!(a.id().len(), policy::ID_LEN);
    assert!(a.id().bytes().all(|c| c.is_ascii_alphanumeric()));
    let c = policy("example.test", Mode::Testing, 86400, &["mx.example.test"]).unwrap();
    assert_ne!(a.id(), c.id());
    assert_eq!(
        a.txt_record(),
        format!("_mta-sts.example.test TXT \"v=STSv1; id={}\"", a.id())
    );
}

#[test]
fn invalid_policies_are_refused() {
    use MtaStsHostError as E;
    let cases: &[(&str, Mode, u64, &[&str], E)] = &[
        (
            "example.test",
            Mode::Enforce,
            31_557_601,
            &["mx.example.test"],
            E::MaxAgeTooLarge {
                max_age: 31_557_601,
            },
        ),
        (
            "example.test",
            Mode::Enforce,
            1,
            &[],
            E::NoMx {
                mode: Mode::Enforce,
            },
        ),
        (
            "example.test",
            Mode::Testing,
            1,
            &[],
            E::NoMx {
                mode: Mode::Testing,
            },
        ),
        (
            "example.test",
            Mode::Enforce,
            1,
            &["192.0.2.1"],
            E::MxIsIpAddress {
                pattern: "192.0.2.1".into(),
            },
        ),
        (
            "example.test",
            Mode::Enforce,
            1,
            &["[2001:db8::1]"],
            E::MxIsIpAddress {
                pattern: "[2001:db8::1]".into(),
            },
        ),
        (
            "example.test",
            Mode::Enforce,
            1,
            &["mx*.example.test"],
            E::BadMxPattern {
                pattern: "mx*.example.test".into(),
                reason: "a wildcard must be the whole left-most label (`*.example.com`)",
            },
        ),
        (
            "example.test",
            Mode::Enforce,
            1,
            &["a.*.example.test"],
            E::BadMxPattern {
                pattern: "a.*.example.test".into(),
                reason: "a wildcard must be the whole left-most label (`*.example.com`)",
            },
        ),
        (
            "example.test",
            Mode::Enforce,
            1,
            &["*.test"],
            E::BadMxPattern {
                pattern: "*.test".into(),
                reason: "a wildcard needs at least two labels after it",
            },
        ),
        (
            "example.test",
            Mode::Enforce,
            1,
            &[""],
            E::BadMxPattern {
                pattern: String::new(),
                reason: "empty",
            },
        ),
        (
            "example.test",
            Mode::Enforce,
            1,
            &["mx.example.test", "MX.example.test"],
            E::DuplicateMx {
                pattern: "mx.example.test".into(),
            },
        ),
        (
            "test",
            Mode::None,
            1,
            &[],
            E::BadDomain {
                domain: "test".into(),
            },
        ),
        (
            "*.example.test",
            Mode::None,
            1,
            &[],
            E::BadDomain {
                domain: "*.example.test".into(),
            },
        ),
        (
            "192.0.2.1",
            Mode::None,
            1,
            &[],
            E::BadDomain {
                domain: "192.0.2.1".into(),
            },
        ),
    ];
    for (domain, mode, max_age, mx, want) in cases {
        assert_eq!(
            policy(domain, *mode, *max_age, mx).as_ref(),
            Err(want),
            "{domain} {mx:?}"
        );
    }
    // `none` needs no mx; the RFC's largest max_age is accepted.
    let p = policy("example.test", Mode::None, policy::MAX_MAX_AGE, &[]).unwrap();
    assert_eq!(
        p.text(),
        "version: STSv1\r\nmode: none\r\nmax_age: 31557600\r\n"
    );
}

#[test]
fn duplicate_domains_are_refused() {
    let entry = |d: &str| MtaStsPolicyConfig {
        domain: d.into(),
        mode: Mode::Testing,
        max_age: 3600,
        mx: vec!["mx.example.test".into()],
    };
    assert_eq!(
        publish_all(&[entry("example.test"), entry("EXAMPLE.test.")]),
        Err((
            1,
            MtaStsHostError::DuplicateDomain {
                domain: "example.test".into()
            }
        ))
    );
}

fn table() -> PolicyTable {
    PolicyTable::new(&[policy("example.test", Mode::Enforce, 86400, &["mx.example.test"]).unwrap()])
}

fn ask(method: Method, uri: &str, host: Option<&str>, sni: Option<&str>) -> Answer {
    let mut headers = HeaderMap::new();
    if let Some(h) = host {
        headers.insert(http::header::HOST, HeaderValue::from_str(h).unwrap());
    }
    decide(
        &table(),
        &method,
        &uri.parse::<Uri>().unwrap(),
        &headers,
        sni,
    )
}

#[test]
fn routing_table() {
    let ok = |a: Answer| matches!(a, Answer::Policy(p) if p.domain() == "example.test");
    let host = Some("mta-sts.example.test");
    assert!(ok(ask(Method::GET, POLICY_PATH, host, host)));
    assert!(ok(ask(Method::HEAD, POLICY_PATH, host, None)));
    assert!(ok(ask(
        Method::GET,
        POLICY_PATH,
        Some("MTA-STS.Example.Test.:443"),
        host
    )));
    assert!(ok(ask(Method::GET, POLICY_PATH, None, host)));
    assert!(ok(ask(
        Method::GET,
        "/.well-known/mta-sts.txt?x=1",
        host,
        host
    )));
    // Absolute form: its authority wins over Host (RFC 9112 §3.2.2).
    assert!(ok(ask(
        Method::GET,
        "https://mta-sts.example.test/.well-known/mta-sts.txt",
        Some("other.test"),
        None
    )));
    let cases = [
        (
            Method::GET,
            POLICY_PATH,
            Some("mta-sts.other.test"),
            None,
            Answer::NotFound,
        ),
        (
            Method::GET,
            POLICY_PATH,
            None,
            Some("mta-sts.other.test"),
            Answer::NotFound,
        ),
        (
            Method::GET,
            POLICY_PATH,
            Some("example.test"),
            None,
            Answer::NotFound,
        ),
        (Method::GET, POLICY_PATH, None, None, Answer::NotFound),
        (Method::GET, "/", host, host, Answer::NotFound),
        (Method::GET, "/.well-known/", host, host, Answer::NotFound),
        (
            Method::GET,
            "/.well-known/mta-sts.txt/",
            host,
            host,
            Answer::NotFound,
        ),
        (
            Method::POST,
            POLICY_PATH,
            host,
            host,
            Answer::MethodNotAllowed,
        ),
        (
            Method::PUT,
            POLICY_PATH,
            host,
            None,
            Answer::MethodNotAllowed,
        ),
        (Method::POST, "/other", host, host, Answer::NotFound),
        (
            Method::GET,
            POLICY_PATH,
            Some("mta-sts.other.test"),
            host,
            Answer::Misdirected,
        ),
        (
            Method::GET,
            POLICY_PATH,
            host,
            Some("mta-sts.other.test"),
            Answer::Misdirected,
        ),
        (
            Method::GET,
            POLICY_PATH,
            Some("bad host"),
            host,
            Answer::BadRequest,
        ),
    ];
    for (method, uri, host, sni, want) in cases {
        assert_eq!(
            ask(method.clone(), uri, host, sni),
            want,
            "{method} {uri} {host:?} {sni:?}"
        );
    }
}

#[test]
fn two_host_headers_are_a_bad_request() {
    let mut headers = HeaderMap::new();
    headers.append(
        http::header::HOST,
        HeaderValue::from_static("mta-sts.example.test"),
    );
    headers.append(
        http::header::HOST,
        HeaderValue::from_static("mta-sts.example.test"),
    );
    let uri: Uri = POLICY_PATH.parse().unwrap();
    assert_eq!(
        decide(&table(), &Method::GET, &uri, &headers, None),
        Answer::BadRequest
    );
}
