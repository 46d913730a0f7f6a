use super::*;
use crate::smtp::CommandKind as C;

const ALL: [C; 14] = [
    C::Ehlo,
    C::Helo,
    C::Lhlo,
    C::StartTls,
    C::Noop,
    C::Quit,
    C::Rset,
    C::Mail,
    C::Rcpt,
    C::Data,
    C::Bdat,
    C::Auth,
    C::Other,
    C::Unknown,
];

fn certificate(configured: bool) -> ListenerCertificate {
    if configured {
        ListenerCertificate::Configured
    } else {
        ListenerCertificate::Missing
    }
}

fn greeted(tls: ListenerTls, cert: bool) -> Gate {
    let mut g = Gate::new(tls, certificate(cert));
    let _ = g.on_command(C::Ehlo);
    g
}

#[test]
fn ehlo_advertises_starttls_per_setting() {
    let cases = [
        (ListenerTls::No, true, false),
        (ListenerTls::No, false, false),
        (ListenerTls::Preferred, true, true),
        (ListenerTls::Preferred, false, false),
        (ListenerTls::Required, true, true),
        (ListenerTls::Required, false, false),
    ];
    for (tls, cert, advertise) in cases {
        let mut g = Gate::new(tls, certificate(cert));
        assert_eq!(
            g.on_command(C::Ehlo),
            GateVerdict::Proceed {
                advertise_starttls: advertise
            },
            "{tls:?} cert={cert}"
        );
    }
}

#[test]
fn starttls_verdicts() {
    let cases = [
        (
            ListenerTls::No,
            true,
            GateVerdict::Refuse(GateReply::NOT_IMPLEMENTED),
        ),
        (
            ListenerTls::Preferred,
            false,
            GateVerdict::Refuse(GateReply::TLS_NOT_AVAILABLE),
        ),
        (
            ListenerTls::Required,
            false,
            GateVerdict::Refuse(GateReply::TLS_NOT_AVAILABLE),
        ),
        (ListenerTls::Preferred, true, GateVerdict::StartTls),
        (ListenerTls::Required, true, GateVerdict::StartTls),
    ];
    for (tls, cert, want) in cases {
        assert_eq!(
            greeted(tls, cert).on_command(C::StartTls),
            want,
            "{tls:?} cert={cert}"
        );
    }
    // Before EHLO, STARTTLS is refused.
    let mut g = Gate::new(ListenerTls::Required, ListenerCertificate::Configured);
    assert_eq!(
        g.on_command(C::StartTls),
        GateVerdict::Refuse(GateReply::SEND_EHLO_FIRST)
    );
}

#[test]
fn required_refuses_everything_but_noop_ehlo_quit_starttls() {
    for cmd in ALL {
        let mut g = greeted(ListenerTls::Required, true);
        let v = g.on_command(cmd);
        match cmd {
            C::Ehlo | C::Lhlo | C::Noop | C::Quit => {
                assert!(matches!(v, GateVerdict::Proceed { .. }), "{cmd:?}: {v:?}")
            }
            C::StartTls => assert_eq!(v, GateVerdict::StartTls),
            _ => {
                assert_eq!(
                    v,
                    GateVerdict::Refuse(GateReply::MUST_ISSUE_STARTTLS),
                    "{cmd:?}"
                );
                assert!(
                    g.take_events()
                        .contains(&ListenerEvent::MustIssueStartTlsSent { command: cmd })
                );
            }
        }
    }
}

#[test]
fn preferred_and_no_let_commands_through_in_plaintext() {
    for tls in [ListenerTls::No, ListenerTls::Preferred] {
        for cmd in ALL.into_iter().filter(|c| *c != C::StartTls) {
            let v = greeted(tls, true).on_command(cmd);
            assert!(
                matches!(v, GateVerdict::Proceed { .. }),
                "{tls:?} {cmd:?}: {v:?}"
            );
        }
    }
}

#[test]
fn state_resets_after_handshake() {
    let mut g = greeted(ListenerTls::Required, true);
    assert_eq!(g.on_command(C::StartTls), GateVerdict::StartTls);
    assert_eq!(g.phase(), GatePhase::Handshaking);
    // Nothing is executed while handshaking.
    assert!(matches!(g.on_command(C::Mail), GateVerdict::Refuse(_)));
    g.discarded_pipelined(24);
    g.handshake_succeeded();
    assert!(g.tls_active());
    for cmd in [C::Mail, C::Rcpt, C::Data, C::Bdat, C::Auth] {
        assert_eq!(
            g.on_command(cmd),
            GateVerdict::Refuse(GateReply::SEND_EHLO_FIRST),
            "{cmd:?}"
        );
    }
    assert_eq!(
        g.on_command(C::Ehlo),
        GateVerdict::Proceed {
            advertise_starttls: false
        }
    );
    assert_eq!(
        g.on_command(C::StartTls),
        GateVerdict::Refuse(GateReply::TLS_ALREADY_ACTIVE)
    );
    assert_eq!(
        g.on_command(C::Mail),
        GateVerdict::Proceed {
            advertise_starttls: false
        }
    );
    let events = g.take_events();
    assert!(events.contains(&ListenerEvent::PipelinedPlaintextDiscarded { bytes: 24 }));
    assert!(events.contains(&ListenerEvent::TlsEstablished));
}

#[test]
fn logging_conditions() {
    let mut g = Gate::new(ListenerTls::Required, ListenerCertificate::Configured);
    assert_eq!(g.take_events(), [ListenerEvent::TlsRequired]);
    let _ = g.on_command(C::Helo);
    let _ = g.on_command(C::Mail);
    g.closed(CloseReason::Quit);
    assert_eq!(
        g.take_events(),
        [
            ListenerEvent::MustIssueStartTlsSent { command: C::Helo },
            ListenerEvent::MustIssueStartTlsSent { command: C::Mail },
            ListenerEvent::ClosedWithoutRecipients {
                reason: CloseReason::Quit,
                tls_established: false,
                must_issue_starttls_count: 2,
            },
        ]
    );
    // A recipient accepted over TLS: no close event.
    let mut g = greeted(ListenerTls::Required, true);
    let _ = g.on_command(C::StartTls);
    g.handshake_succeeded();
    let _ = g.on_command(C::Ehlo);
    g.recipient_accepted();
    g.closed(CloseReason::Quit);
    assert!(
        !g.take_events()
            .iter()
            .any(|e| matches!(e, ListenerEvent::ClosedWithoutRecipients { .. }))
    );
    // Handshake failure closes with its reason.
    let mut g = greeted(ListenerTls::Required, true);
    let _ = g.on_command(C::StartTls);
    g.handshake_failed("bad record");
    assert!(
        g.take_events()
            .contains(&ListenerEvent::ClosedWithoutRecipients {
                reason: CloseReason::HandshakeFailed {
                    detail: "bad record".into()
                },
                tls_established: false,
                must_issue_starttls_count: 0,
            })
    );
    // Preferred: no logging of these conditions.
    let mut g = greeted(ListenerTls::Preferred, true);
    g.closed(CloseReason::PeerClosed);
    assert!(g.take_events().is_empty());
}
