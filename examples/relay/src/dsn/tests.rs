use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;
use crate::Envelope;

/// A minimal MIME reader for the tests: (top header, parts as (header, body)).
fn parse(msg: &[u8]) -> (String, Vec<(String, String)>) {
    let text = String::from_utf8(msg.to_vec()).expect("DSN is ASCII");
    assert!(!text.contains('\n') || text.split('\n').all(|l| l.is_empty() || l.ends_with('\r')));
    let (head, body) = text.split_once("\r\n\r\n").expect("header/body separator");
    let ct = head
        .split("\r\n")
        .skip_while(|l| !l.starts_with("Content-Type:"))
        .take_while(|l| l.starts_with("Content-Type:") || l.starts_with('\t'))
        .collect::<String>();
    assert!(ct.contains("multipart/report"), "{ct}");
    assert!(ct.contains("report-type=delivery-status"), "{ct}");
    let boundary = ct
        .split("boundary=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let delim = format!("\r\n--{boundary}");
    let closing = format!("{delim}--\r\n");
    assert!(body.ends_with(&closing), "missing closing boundary");
    let inner = &body[..body.len() - closing.len()];
    let parts = inner
        .split(&delim)
        .skip(1)
        .map(|p| {
            let p = p.strip_prefix("\r\n").unwrap();
            let (h, b) = p.split_once("\r\n\r\n").unwrap();
            (h.to_owned(), b.to_owned())
        })
        .collect();
    (head.to_owned(), parts)
}

fn env_with(states: &[(&str, RecipientState, Option<Diagnostic>)]) -> Envelope {
    let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let mut env = Envelope::new("sender@a.example", states.iter().map(|s| s.0), t);
    for (r, (_, st, d)) in env.recipients.iter_mut().zip(states) {
        r.state = *st;
        r.last = d.clone();
        r.last_attempt = Some(t + Duration::from_secs(60));
    }
    env
}

#[test]
fn dsn_structure_per_rfc3464() {
    let bounced = Diagnostic {
        code: 550,
        status: Some((5, 1, 1)),
        text: "5.1.1 no such user\r\nInjected: header".into(),
        remote_mta: Some("mx.b.example".into()),
    };
    let env = env_with(&[
        ("gone@b.example", RecipientState::Bounced, Some(bounced)),
        ("ok@b.example", RecipientState::Delivered, None),
        ("slow@c.example", RecipientState::Expired, None),
    ]);
    let original =
        b"From: sender@a.example\r\nSubject: hello\r\nMessage-ID: <1@a>\r\n\r\nsecret body\r\n";
    let d = build(&env, "relay.example", original, SystemTime::now()).unwrap();
    assert_eq!(d.sender, "");
    assert_eq!(d.recipient, "sender@a.example");
    let (head, parts) = parse(&d.message);
    assert!(head.contains("To: <sender@a.example>"));
    assert!(head.contains("Auto-Submitted: auto-replied"));
    assert_eq!(parts.len(), 3);
    assert!(parts[0].0.contains("text/plain"));
    assert!(parts[1].0.contains("message/delivery-status"));
    assert!(parts[2].0.contains("text/rfc822-headers"));
    // Per-message group, then one group per failed recipient (delivered one not reported).
    let groups: Vec<&str> = parts[1].1.split("\r\n\r\n").collect();
    assert_eq!(groups.len(), 3, "{:?}", groups);
    assert!(groups[0].starts_with("Reporting-MTA: dns; relay.example\r\n"));
    assert!(groups[0].contains("Arrival-Date: "));
    assert!(groups[1].contains("Final-Recipient: rfc822; gone@b.example\r\n"));
    assert!(groups[1].contains("Action: failed\r\n"));
    assert!(groups[1].contains("Status: 5.1.1\r\n"));
    assert!(groups[1].contains("Remote-MTA: dns; mx.b.example\r\n"));
    assert!(groups[1].contains("Diagnostic-Code: smtp; 550 5.1.1 no such userInjected: header"));
    assert!(groups[2].contains("Final-Recipient: rfc822; slow@c.example\r\n"));
    assert!(groups[2].contains("Status: 4.4.7\r\n"));
    assert!(!parts[1].1.contains("ok@b.example"));
    // Original header attached, body not.
    assert!(parts[2].1.contains("Subject: hello\r\n"));
    assert!(!String::from_utf8_lossy(&d.message).contains("secret body"));
    // No header injection: every header line of the DSN is a known field or continuation.
    assert!(!head.contains("\r\nInjected:"));
}

#[test]
fn no_bounce_for_a_bounce() {
    let mut env = env_with(&[("x@b.example", RecipientState::Bounced, None)]);
    env.sender.clear();
    assert_eq!(
        build(&env, "relay.example", b"", SystemTime::now()),
        Err(RelayError::NullSender)
    );
}

#[test]
fn nothing_to_report_when_all_delivered() {
    let env = env_with(&[("x@b.example", RecipientState::Delivered, None)]);
    assert_eq!(
        build(&env, "relay.example", b"", SystemTime::now()),
        Err(RelayError::NothingToReport)
    );
}

#[test]
fn original_header_is_bounded_to_whole_lines() {
    let mut big = Vec::new();
    for i in 0..10_000 {
        big.extend_from_slice(format!("X-Filler-{i}: aaaaaaaaaa\r\n").as_bytes());
    }
    let h = original_header(&big);
    assert!(h.len() <= MAX_ORIGINAL_HEADER);
    assert!(h.ends_with(b"\r\n"));
    assert_eq!(original_header(b"A: b\n\nbody"), b"A: b\n");
    assert_eq!(original_header(b"A: b"), b"A: b");
}
