//! Bad configuration is a typed error naming the file, the line and the offending text.

use hat_match::{Error, HostAccessTable, NameProblem};

const POLICIES: &str = r#"[[mail_flow_policy]]
name = "TLS_REQUIRED"
behavior = "accept"
tls = "required"

[[mail_flow_policy]]
name = "ACCEPTED"
behavior = "accept"
"#;

/// Parses POLICIES + `groups`, expects an error, returns (line, text, kind).
fn fail(groups: &str) -> (usize, String, Error) {
    let text = format!("{POLICIES}{groups}");
    let err = HostAccessTable::from_toml("bad.toml", &text).expect_err("must be refused");
    let message = err.to_string();
    let location = err
        .location()
        .unwrap_or_else(|| panic!("no location in {err:?}"))
        .clone();
    assert_eq!(location.file.to_str(), Some("bad.toml"));
    assert!(
        message.starts_with(&format!("bad.toml:{}:", location.line)),
        "{message}"
    );
    (location.line, location.text, err.kind().clone())
}

fn group(senders: &str) -> String {
    format!(
        "\n[[sender_group]]\nname = \"G\"\norder = 1\npolicy = \"ACCEPTED\"\nsenders = [{senders}]\n"
    )
}

#[test]
fn malformed_ipv4_names_its_line() {
    // POLICIES has 8 lines, then a blank line, so `senders` is line 14.
    let (line, text, kind) = fail(&group("\"10.1.1.1\",\n  \"10.1.1.300\""));
    assert_eq!((line, text.as_str()), (15, "\"10.1.1.300\""));
    assert_eq!(
        kind,
        Error::InvalidIpv4 {
            text: "10.1.1.300".into()
        }
    );
}

#[test]
fn reversed_range() {
    let (line, _, kind) = fail(&group("\"10.1.1.20-10\""));
    assert_eq!(line, 14);
    assert_eq!(
        kind,
        Error::ReversedRange {
            text: "10.1.1.20-10".into()
        }
    );
}

#[test]
fn ipv6_prefix_too_long() {
    let (line, _, kind) = fail(&group("\"2001:db8::/129\""));
    assert_eq!(line, 14);
    assert_eq!(
        kind,
        Error::PrefixLength {
            text: "2001:db8::/129".into(),
            len: 129,
            max: 128
        }
    );
}

#[test]
fn bad_host_name() {
    let (_, _, kind) = fail(&group("\"mail..example\""));
    assert_eq!(
        kind,
        Error::InvalidName {
            text: "mail..example".into(),
            problem: NameProblem::EmptyLabel
        }
    );
}

#[test]
fn empty_group() {
    let (line, text, kind) = fail(&group(""));
    assert_eq!((line, text.as_str()), (14, "[]"));
    assert_eq!(kind, Error::EmptyGroup { group: "G".into() });
}

#[test]
fn unknown_policy() {
    let groups =
        "\n[[sender_group]]\nname = \"G\"\norder = 1\npolicy = \"NOPE\"\nsenders = [\"ALL\"]\n";
    let (line, text, kind) = fail(groups);
    assert_eq!((line, text.as_str()), (13, "\"NOPE\""));
    assert_eq!(
        kind,
        Error::UnknownPolicy {
            group: "G".into(),
            policy: "NOPE".into()
        }
    );
}

#[test]
fn duplicate_order() {
    let groups = format!(
        "{}\n[[sender_group]]\nname = \"H\"\norder = 1\npolicy = \"ACCEPTED\"\nsenders = [\"ALL\"]\n",
        group("\"10.0.0.1\"")
    );
    let (line, text, kind) = fail(&groups);
    assert_eq!((line, text.as_str()), (18, "1"));
    assert_eq!(
        kind,
        Error::DuplicateOrder {
            order: 1,
            first: "G".into(),
            second: "H".into()
        }
    );
}

#[test]
fn unknown_keys() {
    let (line, _, kind) = fail(&group("\"ALL\"").replace("order = 1", "order = 1\nprio = 3"));
    assert_eq!(line, 13);
    assert!(
        matches!(&kind, Error::Toml { message } if message.contains("prio")),
        "{kind:?}"
    );
    let text = format!("{POLICIES}\n[listener]\nname = \"x\"\n");
    let err = HostAccessTable::from_toml("bad.toml", &text).unwrap_err();
    assert_eq!(err.location().unwrap().line, 10);
    assert!(matches!(err.kind(), Error::Toml { message } if message.contains("listener")));
}

#[test]
fn unknown_behavior_and_tls() {
    let text = POLICIES.replace("behavior = \"accept\"\ntls", "behavior = \"acept\"\ntls");
    let err = HostAccessTable::from_toml("bad.toml", &text).unwrap_err();
    assert_eq!(err.location().unwrap().line, 3);
    assert_eq!(err.location().unwrap().text, "\"acept\"");
    let text = POLICIES.replace("\"required\"", "\"mandatory\"");
    let err = HostAccessTable::from_toml("bad.toml", &text).unwrap_err();
    assert_eq!(err.location().unwrap().line, 4);
    assert!(matches!(err.kind(), Error::Toml { .. }));
}

#[test]
fn zero_limit_and_bad_banner() {
    let text = POLICIES.replace(
        "tls = \"required\"",
        "tls = \"required\"\nmax_message_size = 0",
    );
    let err = HostAccessTable::from_toml("bad.toml", &text).unwrap_err();
    assert_eq!(err.location().unwrap().line, 5);
    let text = POLICIES.replace("tls = \"required\"", "banner = \"hi\\r\\n250 injected\"");
    let err = HostAccessTable::from_toml("bad.toml", &text).unwrap_err();
    assert_eq!(err.location().unwrap().line, 4);
    assert!(matches!(err.kind(), Error::InvalidBanner { .. }), "{err:?}");
}

#[test]
fn duplicate_policy_and_toml_syntax() {
    let text = format!("{POLICIES}\n{POLICIES}");
    let err = HostAccessTable::from_toml("bad.toml", &text).unwrap_err();
    assert_eq!(
        err.kind(),
        &Error::DuplicatePolicy {
            name: "TLS_REQUIRED".into()
        }
    );
    assert_eq!(err.location().unwrap().line, 11);
    let err = HostAccessTable::from_toml("bad.toml", "[[sender_group]\n").unwrap_err();
    assert_eq!(err.location().unwrap().line, 1);
    assert!(matches!(err.kind(), Error::Toml { .. }));
}

#[test]
fn missing_file() {
    let err = HostAccessTable::from_file("/nonexistent/hat.toml").unwrap_err();
    assert_eq!(
        err,
        Error::Io {
            file: "/nonexistent/hat.toml".into(),
            kind: std::io::ErrorKind::NotFound
        }
    );
}
