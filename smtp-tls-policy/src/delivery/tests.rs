use proptest::prelude::*;

use super::*;
use crate::destination::DeliveryTls;
use dane_verify::DaneSetting;

/// A peer behaviour, as the issue lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Peer {
    NoEsmtp,
    NoStartTls,
    StartTls454,
    HandshakeFailsAfter220,
    UntrustedChain,
    NameMismatch,
    Good,
}

const PEERS: [Peer; 7] = [
    Peer::NoEsmtp,
    Peer::NoStartTls,
    Peer::StartTls454,
    Peer::HandshakeFailsAfter220,
    Peer::UntrustedChain,
    Peer::NameMismatch,
    Peer::Good,
];

/// Drives an attempt through the dialogue this peer produces.
fn run(mut a: DeliveryAttempt, peer: Peer, dane: Option<DaneOutcome>) -> Decision {
    if let Some(d) = a.preflight() {
        return d;
    }
    let ehlo = match peer {
        Peer::NoEsmtp => EhloOutcome::NoEsmtp,
        Peer::NoStartTls => EhloOutcome::Esmtp { starttls: false },
        _ => EhloOutcome::Esmtp { starttls: true },
    };
    match a.on_ehlo(ehlo) {
        Step::Done(d) => return d,
        Step::SendStartTls => {}
        other => panic!("unexpected {other:?}"),
    }
    let code = if peer == Peer::StartTls454 { 454 } else { 220 };
    match a.on_starttls_reply(code) {
        Step::Done(d) => return d,
        Step::StartHandshake => {}
        other => panic!("unexpected {other:?}"),
    }
    let pkix = match peer {
        Peer::UntrustedChain => PkixOutcome::UntrustedChain {
            detail: "UnknownIssuer".into(),
        },
        Peer::NameMismatch => PkixOutcome::NameMismatch {
            detail: "NotValidForName".into(),
        },
        _ => PkixOutcome::Verified,
    };
    let outcome = if peer == Peer::HandshakeFailsAfter220 {
        HandshakeOutcome::Failed {
            detail: "alert received".into(),
        }
    } else {
        HandshakeOutcome::Established(PeerVerification::new(pkix, dane))
    };
    match a.on_handshake(outcome) {
        Step::Done(d) => d,
        other => panic!("unexpected {other:?}"),
    }
}

fn attempt(tls: DeliveryTls, dane: DaneSetting, tlsa: TlsaStatus) -> DeliveryAttempt {
    DeliveryAttempt::new(
        "dest.example",
        tls,
        dane,
        tlsa,
        DeliveryOptions::new(RequiredTlsAlerts::Send),
    )
}

/// Expected action names, in PEERS order.
const TABLE: [(DeliveryTls, [&str; 7]); 6] = [
    (DeliveryTls::No, ["plain"; 7]),
    (
        DeliveryTls::Preferred,
        ["plain", "plain", "plain", "retry", "tls", "tls", "tls"],
    ),
    (
        DeliveryTls::Required,
        ["defer", "defer", "defer", "defer", "tls", "tls", "tls"],
    ),
    (
        DeliveryTls::PreferredVerify,
        ["plain", "plain", "plain", "retry", "tls", "tls", "tls"],
    ),
    (
        DeliveryTls::RequiredVerify,
        ["defer", "defer", "defer", "defer", "defer", "defer", "tls"],
    ),
    (
        DeliveryTls::RequiredVerifyHostedDomains,
        ["defer", "defer", "defer", "defer", "defer", "defer", "tls"],
    ),
];

fn short(a: DeliveryAction) -> &'static str {
    match a {
        DeliveryAction::ContinueTls => "tls",
        DeliveryAction::ContinuePlaintext(_) => "plain",
        DeliveryAction::RetryPlaintext(_) => "retry",
        DeliveryAction::Defer => "defer",
        DeliveryAction::Bounce => "bounce",
    }
}

#[test]
fn every_mode_against_every_peer() {
    let mut n = 0;
    for (mode, row) in TABLE {
        for (peer, want) in PEERS.into_iter().zip(row) {
            let d = run(
                attempt(mode, DaneSetting::None, TlsaStatus::NotApplicable),
                peer,
                None,
            );
            assert_eq!(short(d.action), want, "{mode:?} × {peer:?}: {d:?}");
            // Required failures log and alert, naming the domain; nothing else alerts.
            let alerted = d.alert().is_some_and(|a| a.domain == "dest.example");
            assert_eq!(alerted, want == "defer", "{mode:?} × {peer:?}");
            n += 1;
        }
    }
    assert_eq!(n, 42);
}

#[test]
fn the_three_logging_conditions_have_distinct_reasons() {
    let reasons: Vec<Reason> = [Peer::NoEsmtp, Peer::NoStartTls, Peer::StartTls454]
        .into_iter()
        .map(|p| {
            run(
                attempt(
                    DeliveryTls::Required,
                    DaneSetting::None,
                    TlsaStatus::NotApplicable,
                ),
                p,
                None,
            )
        })
        .map(|d| {
            assert!(d.events.iter().any(|e| matches!(
                e,
                DeliveryEvent::TlsRequiredButUnavailable { domain, .. } if domain == "dest.example"
            )));
            d.reason
        })
        .collect();
    assert_eq!(
        reasons,
        [
            Reason::NoEsmtp,
            Reason::StartTlsNotAdvertised,
            Reason::StartTlsRejected { code: 454 }
        ]
    );
}

#[test]
fn preferred_verify_reports_verification_failure() {
    let d = run(
        attempt(
            DeliveryTls::PreferredVerify,
            DaneSetting::None,
            TlsaStatus::NotApplicable,
        ),
        Peer::NameMismatch,
        None,
    );
    assert_eq!(d.action, DeliveryAction::ContinueTls);
    assert!(matches!(
        d.reason,
        Reason::TlsEstablished(PeerAuthentication::FailedButDelivered(
            PkixOutcome::NameMismatch { .. }
        ))
    ));
    assert!(matches!(
        d.events[..],
        [DeliveryEvent::VerificationFailedDelivered { .. }]
    ));
}

#[test]
fn plaintext_retry_after_handshake_failure() {
    let d = run(
        attempt(
            DeliveryTls::Preferred,
            DaneSetting::None,
            TlsaStatus::NotApplicable,
        ),
        Peer::HandshakeFailsAfter220,
        None,
    );
    let DeliveryAction::RetryPlaintext(token) = d.action else {
        panic!("{d:?}")
    };
    let mut retry =
        DeliveryAttempt::plaintext_retry("dest.example", token, DeliveryOptions::default());
    assert!(retry.preflight().is_none());
    let Step::Done(d) = retry.on_ehlo(EhloOutcome::Esmtp { starttls: true }) else {
        panic!()
    };
    assert!(matches!(d.action, DeliveryAction::ContinuePlaintext(_)));
    assert_eq!(d.reason, Reason::RetryAfterHandshakeFailure);
}

#[test]
fn dane() {
    let ok = Some(DaneOutcome::Verified);
    let bad = Some(DaneOutcome::Failed {
        reason: "no TLSA match".into(),
    });
    // Usable TLSA records make TLS mandatory even for "preferred".
    let a = || {
        attempt(
            DeliveryTls::Preferred,
            DaneSetting::Opportunistic,
            TlsaStatus::Usable,
        )
    };
    assert_eq!(
        run(a(), Peer::NoStartTls, None).action,
        DeliveryAction::Defer
    );
    assert_eq!(
        run(a(), Peer::UntrustedChain, ok.clone()).action,
        DeliveryAction::ContinueTls
    );
    assert_eq!(
        run(a(), Peer::Good, bad.clone()).action,
        DeliveryAction::Defer
    );
    assert_eq!(run(a(), Peer::Good, None).action, DeliveryAction::Defer);
    // Opportunistic without TLSA: the TLS mode rules.
    let a = attempt(
        DeliveryTls::Preferred,
        DaneSetting::Opportunistic,
        TlsaStatus::NotApplicable,
    );
    assert!(run(a, Peer::NoStartTls, None).action.is_plaintext());
    // Unusable TLSA: mandatory unauthenticated TLS.
    let a = || {
        attempt(
            DeliveryTls::Preferred,
            DaneSetting::Opportunistic,
            TlsaStatus::Unusable,
        )
    };
    assert_eq!(
        run(a(), Peer::NoStartTls, None).action,
        DeliveryAction::Defer
    );
    assert_eq!(
        run(a(), Peer::UntrustedChain, None).action,
        DeliveryAction::ContinueTls
    );
    // Mandatory without usable TLSA: no connection.
    let mut a = attempt(
        DeliveryTls::Required,
        DaneSetting::Mandatory,
        TlsaStatus::NotApplicable,
    );
    let d = a.preflight().unwrap();
    assert_eq!(
        (d.action, d.reason),
        (DeliveryAction::Defer, Reason::DaneNotSupported)
    );
    let mut a = attempt(
        DeliveryTls::Preferred,
        DaneSetting::Opportunistic,
        TlsaStatus::Defer {
            reason: "SERVFAIL".into(),
        },
    );
    assert_eq!(
        a.preflight().unwrap().reason,
        Reason::TlsaLookupFailed {
            reason: "SERVFAIL".into()
        }
    );
    // DANE none: TLSA ignored.
    let a = attempt(
        DeliveryTls::Preferred,
        DaneSetting::None,
        TlsaStatus::Usable,
    );
    assert!(run(a, Peer::NoStartTls, None).action.is_plaintext());
}

#[test]
fn bounce_only_on_permanent_refusals_when_configured() {
    let opts = DeliveryOptions::new(RequiredTlsAlerts::DoNotSend)
        .with_required_failure(RequiredTlsFailure::BouncePermanent);
    let mk = || {
        DeliveryAttempt::new(
            "d",
            DeliveryTls::Required,
            DaneSetting::None,
            TlsaStatus::NotApplicable,
            opts,
        )
    };
    assert_eq!(
        run(mk(), Peer::NoStartTls, None).action,
        DeliveryAction::Bounce
    );
    assert_eq!(
        run(mk(), Peer::NoEsmtp, None).action,
        DeliveryAction::Bounce
    );
    assert_eq!(
        run(mk(), Peer::StartTls454, None).action,
        DeliveryAction::Defer
    );
    assert_eq!(
        run(mk(), Peer::HandshakeFailsAfter220, None).action,
        DeliveryAction::Defer
    );
    let mut a = mk();
    assert!(a.preflight().is_none());
    let _ = a.on_ehlo(EhloOutcome::Esmtp { starttls: true });
    let Step::Done(d) = a.on_starttls_reply(554) else {
        panic!()
    };
    assert_eq!(d.action, DeliveryAction::Bounce);
    assert!(d.alert().is_none(), "alerts disabled");
}

#[test]
fn out_of_order_inputs_fail_closed() {
    let mut a = attempt(
        DeliveryTls::Preferred,
        DaneSetting::None,
        TlsaStatus::NotApplicable,
    );
    let Step::Done(d) = a.on_handshake(HandshakeOutcome::Failed {
        detail: String::new(),
    }) else {
        panic!()
    };
    assert_eq!(d.action, DeliveryAction::Defer);
}

#[derive(Debug, Clone)]
enum Input {
    Preflight,
    Ehlo(EhloOutcome),
    StartTlsReply(u16),
    Handshake(HandshakeOutcome),
}

fn input() -> impl Strategy<Value = Input> {
    let pkix = prop_oneof![
        Just(PkixOutcome::NotChecked),
        Just(PkixOutcome::Verified),
        Just(PkixOutcome::UntrustedChain {
            detail: String::new()
        }),
        Just(PkixOutcome::NameMismatch {
            detail: String::new()
        }),
    ];
    let dane = prop_oneof![
        Just(None),
        Just(Some(DaneOutcome::Verified)),
        Just(Some(DaneOutcome::Failed {
            reason: String::new()
        })),
    ];
    prop_oneof![
        Just(Input::Preflight),
        Just(Input::Ehlo(EhloOutcome::NoEsmtp)),
        any::<bool>().prop_map(|s| Input::Ehlo(EhloOutcome::Esmtp { starttls: s })),
        (0u16..1000).prop_map(Input::StartTlsReply),
        Just(Input::StartTlsReply(220)),
        Just(Input::Handshake(HandshakeOutcome::Failed {
            detail: String::new()
        })),
        (pkix, dane).prop_map(|(p, d)| Input::Handshake(HandshakeOutcome::Established(
            PeerVerification::new(p, d)
        ))),
    ]
}

fn tlsa() -> impl Strategy<Value = TlsaStatus> {
    prop_oneof![
        Just(TlsaStatus::NotApplicable),
        Just(TlsaStatus::Usable),
        Just(TlsaStatus::Unusable),
        Just(TlsaStatus::Defer {
            reason: String::new()
        }),
    ]
}

proptest! {
    /// `required*` (and DANE with usable records) never yields plaintext, whatever the peer does
    /// and in whatever order the driver feeds inputs.
    #[test]
    fn required_never_yields_plaintext(
        mode in prop::sample::select(vec![
            DeliveryTls::Required, DeliveryTls::RequiredVerify,
            DeliveryTls::RequiredVerifyHostedDomains, DeliveryTls::Preferred,
            DeliveryTls::PreferredVerify,
        ]),
        dane in prop::sample::select(vec![DaneSetting::None, DaneSetting::Opportunistic, DaneSetting::Mandatory]),
        tlsa in tlsa(),
        inputs in prop::collection::vec(input(), 0..8),
        bounce in any::<bool>(),
    ) {
        let dane_forces_tls = dane != DaneSetting::None && matches!(tlsa, TlsaStatus::Usable | TlsaStatus::Unusable);
        let must_encrypt = mode.is_required() || dane_forces_tls || dane == DaneSetting::Mandatory;
        let opts = DeliveryOptions::new(RequiredTlsAlerts::Send).with_required_failure(
            if bounce { RequiredTlsFailure::BouncePermanent } else { RequiredTlsFailure::Defer });
        let mut a = DeliveryAttempt::new("p.example", mode, dane, tlsa.clone(), opts);
        let mut established = false;
        for i in inputs {
            let step = match i {
                Input::Preflight => match a.preflight() { Some(d) => Step::Done(d), None => continue },
                Input::Ehlo(e) => a.on_ehlo(e),
                Input::StartTlsReply(c) => a.on_starttls_reply(c),
                Input::Handshake(h) => {
                    established |= matches!(h, HandshakeOutcome::Established(_));
                    a.on_handshake(h)
                }
            };
            if let Step::Done(d) = step {
                if must_encrypt {
                    prop_assert!(!d.action.is_plaintext(), "{mode:?} {dane:?} {tlsa:?}: {d:?}");
                }
                if d.action == DeliveryAction::ContinueTls {
                    prop_assert!(established, "TLS continued without a handshake: {d:?}");
                }
            }
        }
    }
}
