//! The plaintext exception for TLS-RPT mailboxes on a TLS-required listener.

use proptest::prelude::*;

use super::*;
use crate::smtp::{CommandKind as C, parse_command};

const PROCEED: GateVerdict = GateVerdict::Proceed {
    advertise_starttls: false,
};
const MUST: GateVerdict = GateVerdict::Refuse(GateReply::MUST_ISSUE_STARTTLS);

fn reports() -> PlaintextRecipients {
    PlaintextRecipients::new(["tlsrpt@example.org", "tls-reports@Mail.Example.NET"]).unwrap()
}

fn required(recipients: Option<PlaintextRecipients>) -> Gate {
    let g = Gate::new(ListenerTls::Required, ListenerCertificate::Configured);
    match recipients {
        Some(r) => g.with_plaintext_recipients(r),
        None => g,
    }
}

fn send(g: &mut Gate, line: &str) -> GateVerdict {
    g.on_parsed_command(&parse_command(format!("{line}\r\n").as_bytes()).unwrap())
}

fn greeted_with_reports() -> Gate {
    let mut g = required(Some(reports()));
    assert_eq!(
        send(&mut g, "EHLO reporter.example"),
        GateVerdict::Proceed {
            advertise_starttls: true
        }
    );
    g
}

#[test]
fn exempt_recipient_is_accepted_in_plaintext_and_logged() {
    let mut g = greeted_with_reports();
    assert_eq!(
        send(&mut g, "MAIL FROM:<noreply@reporter.example>"),
        PROCEED
    );
    assert_eq!(send(&mut g, "RCPT TO:<tlsrpt@example.org>"), PROCEED);
    assert_eq!(send(&mut g, "DATA"), PROCEED);
    let events = g.take_events();
    assert!(events.contains(&ListenerEvent::PlaintextRecipientAllowed {
        recipient: "tlsrpt@example.org".into()
    }));
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, ListenerEvent::MustIssueStartTlsSent { .. }))
    );
}

#[test]
fn other_recipients_get_530_and_data_needs_an_exempt_one() {
    let mut g = greeted_with_reports();
    assert_eq!(send(&mut g, "MAIL FROM:<a@b.example>"), PROCEED);
    assert_eq!(send(&mut g, "RCPT TO:<user@example.org>"), MUST);
    assert_eq!(send(&mut g, "RCPT TO:<postmaster>"), MUST);
    assert_eq!(send(&mut g, "DATA"), MUST);
    assert_eq!(send(&mut g, "BDAT 10 LAST"), MUST);
    assert!(
        g.take_events()
            .contains(&ListenerEvent::MustIssueStartTlsSent { command: C::Rcpt })
    );
}

#[test]
fn mixed_recipients_exempt_accepted_other_refused_data_proceeds() {
    let mut g = greeted_with_reports();
    assert_eq!(send(&mut g, "MAIL FROM:<a@b.example>"), PROCEED);
    assert_eq!(send(&mut g, "RCPT TO:<user@example.org>"), MUST);
    assert_eq!(
        send(&mut g, "RCPT TO:<tls-reports@mail.example.net>"),
        PROCEED
    );
    assert_eq!(send(&mut g, "RCPT TO:<other@mail.example.net>"), MUST);
    assert_eq!(send(&mut g, "DATA"), PROCEED);
    // A new transaction starts without exempt recipients.
    assert_eq!(send(&mut g, "MAIL FROM:<a@b.example>"), PROCEED);
    assert_eq!(send(&mut g, "DATA"), MUST);
    assert_eq!(send(&mut g, "RCPT TO:<tlsrpt@example.org>"), PROCEED);
    assert_eq!(send(&mut g, "RSET"), PROCEED);
    assert_eq!(send(&mut g, "DATA"), MUST);
    assert_eq!(send(&mut g, "RCPT TO:<tlsrpt@example.org>"), PROCEED);
    let _ = send(&mut g, "EHLO again.example");
    assert_eq!(send(&mut g, "BDAT 10 LAST"), MUST);
}

#[test]
fn only_the_transaction_commands_are_let_through() {
    let mut g = required(Some(reports()));
    // Before any greeting, as without the exception.
    assert_eq!(
        send(&mut g, "MAIL FROM:<a@b.example>"),
        GateVerdict::Refuse(GateReply::SEND_EHLO_FIRST)
    );
    assert_eq!(send(&mut g, "HELO reporter.example"), PROCEED);
    assert_eq!(send(&mut g, "MAIL FROM:<a@b.example>"), PROCEED);
    // Credentials never go over plaintext, nor anything else.
    assert_eq!(send(&mut g, "AUTH PLAIN"), MUST);
    assert_eq!(send(&mut g, "VRFY tlsrpt"), MUST);
    assert_eq!(send(&mut g, "HELP"), MUST);
    // A bare on_command has no address: refused.
    assert_eq!(g.on_command(C::Rcpt), MUST);
}

#[test]
fn without_a_list_or_with_an_empty_one_everything_is_refused_as_today() {
    for recipients in [None, Some(PlaintextRecipients::default())] {
        let mut g = required(recipients.clone());
        let _ = send(&mut g, "EHLO reporter.example");
        for line in [
            "HELO reporter.example",
            "MAIL FROM:<a@b.example>",
            "RCPT TO:<tlsrpt@example.org>",
            "RSET",
            "DATA",
        ] {
            assert_eq!(send(&mut g, line), MUST, "{line} with {recipients:?}");
        }
    }
}

#[test]
fn after_starttls_everything_is_normal() {
    let mut g = greeted_with_reports();
    assert_eq!(send(&mut g, "MAIL FROM:<a@b.example>"), PROCEED);
    assert_eq!(send(&mut g, "RCPT TO:<tlsrpt@example.org>"), PROCEED);
    assert_eq!(send(&mut g, "STARTTLS"), GateVerdict::StartTls);
    g.handshake_succeeded();
    // The state is reset: greet again, then any recipient.
    assert_eq!(
        send(&mut g, "DATA"),
        GateVerdict::Refuse(GateReply::SEND_EHLO_FIRST)
    );
    let _ = send(&mut g, "EHLO reporter.example");
    assert_eq!(send(&mut g, "MAIL FROM:<a@b.example>"), PROCEED);
    assert_eq!(send(&mut g, "RCPT TO:<user@example.org>"), PROCEED);
    assert_eq!(send(&mut g, "AUTH PLAIN"), PROCEED);
    assert_eq!(send(&mut g, "DATA"), PROCEED);
    let _ = g.take_events();
    assert_eq!(send(&mut g, "RCPT TO:<tlsrpt@example.org>"), PROCEED);
    // Inside TLS an exempt recipient is nothing special.
    assert!(g.take_events().is_empty());
}

#[test]
fn preferred_and_no_are_unchanged() {
    for tls in [ListenerTls::Preferred, ListenerTls::No] {
        let mut g =
            Gate::new(tls, ListenerCertificate::Configured).with_plaintext_recipients(reports());
        let _ = send(&mut g, "EHLO reporter.example");
        for line in [
            "MAIL FROM:<a@b.example>",
            "RCPT TO:<user@example.org>",
            "DATA",
        ] {
            assert_eq!(send(&mut g, line), PROCEED, "{tls:?} {line}");
        }
        assert!(
            !g.take_events()
                .iter()
                .any(|e| matches!(e, ListenerEvent::PlaintextRecipientAllowed { .. }))
        );
    }
}

#[test]
fn case_variants() {
    let mut g = greeted_with_reports();
    let _ = send(&mut g, "MAIL FROM:<a@b.example>");
    // The domain in any case.
    assert_eq!(send(&mut g, "RCPT TO:<tlsrpt@EXAMPLE.Org>"), PROCEED);
    assert_eq!(
        send(&mut g, "RCPT TO:<tls-reports@MAIL.example.net>"),
        PROCEED
    );
    // The local part exactly (RFC 5321 §2.4): another case is another mailbox.
    assert_eq!(send(&mut g, "RCPT TO:<TLSRPT@example.org>"), MUST);
    assert_eq!(send(&mut g, "RCPT TO:<Tlsrpt@example.org>"), MUST);
    assert!(
        g.take_events()
            .contains(&ListenerEvent::PlaintextRecipientAllowed {
                recipient: "tls-reports@mail.example.net".into()
            })
    );
}

#[test]
fn oversized_and_garbage_addresses_are_refused() {
    let long_local = format!("RCPT TO:<{}@example.org>", "a".repeat(300));
    let long_domain = format!("RCPT TO:<tlsrpt@{}example.org>", "a.".repeat(130));
    let cases = [
        long_local.as_str(),
        long_domain.as_str(),
        "RCPT TO:<tlsrpt@example.org.>",
        "RCPT TO:<tlsrpt@example.org@example.org>",
        "RCPT TO:<@relay.example:tlsrpt@example.org>",
        "RCPT TO:<>",
        "RCPT TO:tlsrpt",
        "RCPT TO:<tlsrpt@exämple.org>",
        "RCPT",
    ];
    let mut refused = 0;
    for line in cases {
        let mut g = greeted_with_reports();
        let _ = send(&mut g, "MAIL FROM:<a@b.example>");
        // Some of these do not parse: the gate still answers, never panics.
        let v = match parse_command(format!("{line}\r\n").as_bytes()) {
            Ok(cmd) => g.on_parsed_command(&cmd),
            Err(_) => continue,
        };
        // A source route to an exempt mailbox may be reduced to the mailbox by the parser
        // (RFC 5321 §4.1.1.3: routes are ignored); anything else is refused.
        if line.contains(":tlsrpt@example.org>") && v == PROCEED {
            continue;
        }
        assert_eq!(v, MUST, "{line}");
        assert_eq!(send(&mut g, "DATA"), MUST, "{line}");
        refused += 1;
    }
    assert!(refused >= 5, "only {refused} cases reached the gate");
}

#[test]
fn configured_mailboxes_are_validated() {
    for bad in [
        "",
        "tlsrpt",
        "tlsrpt@",
        "@example.org",
        "Reports <tlsrpt@example.org>",
        "\"tls rpt\"@example.org",
        "a..b@example.org",
        "tlsrpt@example.org, x@example.org",
        "tlsrpt@-example.org",
        "tlsrpt@exämple.org",
        "tlsrpt@example.org.",
    ] {
        let e = PlaintextRecipients::new(["ok@example.org", bad]).unwrap_err();
        assert_eq!(e.index, 1, "{bad}");
    }
    let long = format!("{}@example.org", "a".repeat(65));
    assert!(PlaintextRecipients::new([long]).is_err());
    assert!(
        PlaintextRecipients::new(Vec::<String>::new())
            .unwrap()
            .is_empty()
    );
}

/// The gate's rules before the plaintext exception (the reference for "no list changes
/// nothing").
#[derive(Default)]
struct Reference {
    tls_active: bool,
    handshaking: bool,
    closed: bool,
    greeted: bool,
    ehlo_seen: bool,
}

impl Reference {
    fn on_command(&mut self, c: C) -> GateVerdict {
        if self.handshaking || self.closed {
            return GateVerdict::Refuse(GateReply::SEND_EHLO_FIRST);
        }
        match c {
            C::Ehlo | C::Lhlo => {
                self.greeted = true;
                self.ehlo_seen = true;
                GateVerdict::Proceed {
                    advertise_starttls: !self.tls_active,
                }
            }
            C::Noop | C::Quit => PROCEED,
            C::StartTls if self.tls_active => GateVerdict::Refuse(GateReply::TLS_ALREADY_ACTIVE),
            C::StartTls if !self.ehlo_seen => GateVerdict::Refuse(GateReply::SEND_EHLO_FIRST),
            C::StartTls => {
                self.handshaking = true;
                GateVerdict::StartTls
            }
            _ if !self.tls_active => MUST,
            C::Helo => {
                self.greeted = true;
                PROCEED
            }
            C::Mail | C::Rcpt | C::Data | C::Bdat | C::Auth if !self.greeted => {
                GateVerdict::Refuse(GateReply::SEND_EHLO_FIRST)
            }
            _ => PROCEED,
        }
    }
}

const LINES: [&str; 17] = [
    "EHLO a.example",
    "HELO a.example",
    "LHLO a.example",
    "STARTTLS",
    "NOOP",
    "QUIT",
    "RSET",
    "MAIL FROM:<a@b.example>",
    "RCPT TO:<tlsrpt@example.org>",
    "RCPT TO:<user@example.org>",
    "DATA",
    "BDAT 10 LAST",
    "AUTH PLAIN",
    "VRFY x",
    "FOO bar",
    "HANDSHAKE OK",
    "HANDSHAKE FAILED",
];

proptest! {
    /// Without a list (or with an empty one), the verdicts are those of the gate before the
    /// exception, for any command sequence, whether driven by kind or by parsed command.
    #[test]
    fn without_a_list_verdicts_are_unchanged(steps in prop::collection::vec(0..LINES.len(), 0..40)) {
        let mut reference = Reference::default();
        let mut by_kind = required(None);
        let mut parsed = required(None);
        let mut empty = required(Some(PlaintextRecipients::default()));
        for i in steps {
            match LINES[i] {
                "HANDSHAKE OK" => {
                    if reference.handshaking {
                        reference.handshaking = false;
                        reference.tls_active = true;
                        reference.greeted = false;
                        reference.ehlo_seen = false;
                    }
                    for g in [&mut by_kind, &mut parsed, &mut empty] {
                        g.handshake_succeeded();
                    }
                }
                "HANDSHAKE FAILED" => {
                    reference.closed = true;
                    for g in [&mut by_kind, &mut parsed, &mut empty] {
                        g.handshake_failed("x");
                    }
                }
                line => {
                    let cmd = parse_command(format!("{line}\r\n").as_bytes()).unwrap();
                    let want = reference.on_command(cmd.kind);
                    prop_assert_eq!(by_kind.on_command(cmd.kind), want, "{}", line);
                    prop_assert_eq!(parsed.on_parsed_command(&cmd), want, "{}", line);
                    prop_assert_eq!(empty.on_parsed_command(&cmd), want, "{}", line);
                }
            }
        }
        prop_assert_eq!(by_kind.take_events(), parsed.take_events());
    }

    /// With a list, a non-exempt recipient is never let through before TLS, and DATA never
    /// proceeds in plaintext without an exempt recipient since the last MAIL/RSET/greeting.
    #[test]
    fn with_a_list_nothing_else_gets_through(steps in prop::collection::vec(0..LINES.len() - 2, 0..40)) {
        let mut g = required(Some(reports()));
        let mut exempt_since_reset = false;
        for i in steps {
            let line = LINES[i];
            let cmd = parse_command(format!("{line}\r\n").as_bytes()).unwrap();
            let v = g.on_parsed_command(&cmd);
            if g.phase() != GatePhase::Plaintext {
                break;
            }
            let proceeds = matches!(v, GateVerdict::Proceed { .. });
            match cmd.kind {
                C::Rcpt if line.contains("user@") => prop_assert!(!proceeds),
                C::Rcpt if proceeds => exempt_since_reset = true,
                C::Data | C::Bdat => prop_assert_eq!(proceeds, exempt_since_reset, "{}", line),
                C::Auth | C::Other | C::Unknown => prop_assert!(!proceeds, "{}", line),
                C::Mail | C::Rset | C::Ehlo | C::Helo | C::Lhlo => exempt_since_reset = false,
                _ => {}
            }
        }
    }
}
