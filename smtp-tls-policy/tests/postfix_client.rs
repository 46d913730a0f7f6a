//! The delivery-side driver against a real Postfix smtpd on loopback (scripts/postfix-lab.sh).

mod common;

use std::time::Duration;

use common::{MX, Pki, PostfixLab};
use dane_verify::DaneSetting;
use smtp_tls_policy::delivery::{
    DeliveryAction, DeliveryAttempt, DeliveryOptions, PeerAuthentication, PkixOutcome, Reason,
    RequiredTlsAlerts, TlsaStatus,
};
use smtp_tls_policy::destination::DeliveryTls;
use smtp_tls_policy::io::{ClientOutcome, LineReader, SmtpStream, Timeouts, negotiate};
use smtp_tls_policy::smtp::ReplyAccumulator;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

async fn attempt(
    lab: &PostfixLab,
    pki: &Pki,
    mode: DeliveryTls,
    name: &str,
) -> ClientOutcome<TcpStream> {
    let tcp = TcpStream::connect(("127.0.0.1", lab.port)).await.unwrap();
    let a = DeliveryAttempt::new(
        "test.example",
        mode,
        DaneSetting::None,
        TlsaStatus::NotApplicable,
        DeliveryOptions::new(RequiredTlsAlerts::Send),
    );
    let settings = pki
        .client_settings(mode, "test.example", name)
        .with_timeouts(Timeouts::uniform(Duration::from_secs(20)));
    negotiate(tcp, a, &settings).await.unwrap()
}

async fn command(stream: &mut SmtpStream<TcpStream>, reader: &mut LineReader, line: &str) -> u16 {
    stream.write_all(line.as_bytes()).await.unwrap();
    let mut acc = ReplyAccumulator::new();
    loop {
        let l = reader
            .read_line(stream, Duration::from_secs(20), "test")
            .await
            .unwrap();
        if let Some(r) = acc.push_line(&l).unwrap() {
            return r.code;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_offered() {
    let pki = Pki::new();
    let lab = PostfixLab::start("may", Some(&pki.good));

    let out = attempt(&lab, &pki, DeliveryTls::RequiredVerify, MX).await;
    assert_eq!(
        out.decision.action,
        DeliveryAction::ContinueTls,
        "{:?}",
        out.decision
    );
    assert_eq!(
        out.decision.reason,
        Reason::TlsEstablished(PeerAuthentication::PkixVerified)
    );
    let tls = out.transcript.tls.as_ref().unwrap();
    assert!(tls.protocol.starts_with("TLSv1_"), "{}", tls.protocol);
    assert!(!tls.cipher_suite.is_empty());
    assert!(
        tls.peer_chain_subjects[0].contains(MX),
        "{:?}",
        tls.peer_chain_subjects
    );
    assert!(out.transcript.ehlo_before_tls.as_ref().unwrap().starttls);
    let after = out.transcript.ehlo_after_tls.as_ref().unwrap();
    assert!(
        !after.starttls,
        "Postfix does not offer STARTTLS inside TLS"
    );
    assert_eq!(out.transcript.discarded_after_starttls, 0);

    // Deliver a message over the TLS connection: Postfix accepts and discards it.
    let mut conn = out.connection.unwrap();
    assert!(conn.stream.is_tls());
    let (s, r) = (&mut conn.stream, &mut conn.reader);
    assert_eq!(command(s, r, "MAIL FROM:<a@client.test>\r\n").await, 250);
    assert_eq!(command(s, r, "RCPT TO:<b@test.example>\r\n").await, 250);
    assert_eq!(command(s, r, "DATA\r\n").await, 354);
    assert_eq!(command(s, r, "Subject: t\r\n\r\nhello\r\n.\r\n").await, 250);
    assert_eq!(command(s, r, "QUIT\r\n").await, 221);

    // Name mismatch under required-verify: deferred, with an alert naming the domain.
    let out = attempt(&lab, &pki, DeliveryTls::RequiredVerify, "other.example").await;
    assert_eq!(out.decision.action, DeliveryAction::Defer);
    assert!(matches!(
        out.decision.reason,
        Reason::CertificateNotVerified(PkixOutcome::NameMismatch { .. })
    ));
    assert_eq!(out.decision.alert().unwrap().domain, "test.example");
    assert!(out.connection.is_none());

    // Preferred: TLS without verification.
    let out = attempt(&lab, &pki, DeliveryTls::Preferred, "other.example").await;
    assert_eq!(
        out.decision.reason,
        Reason::TlsEstablished(PeerAuthentication::NotRequested)
    );
    assert!(out.connection.unwrap().stream.is_tls());

    // No: STARTTLS not attempted even though offered.
    let out = attempt(&lab, &pki, DeliveryTls::No, MX).await;
    assert_eq!(out.decision.reason, Reason::TlsDisabled);
    assert!(out.transcript.starttls_reply.is_none());
    assert!(!out.connection.unwrap().stream.is_tls());

    // Postfix logged the TLS session and the message.
    // Delivery to discard: is asynchronous (qmgr); wait for it, bounded.
    let log = lab.wait_for_log("status=sent");
    assert!(
        log.contains("Anonymous TLS connection established from localhost"),
        "{log}"
    );
    assert!(log.contains("status=sent"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_not_offered() {
    let pki = Pki::new();
    let lab = PostfixLab::start("none", None);
    for mode in [
        DeliveryTls::Required,
        DeliveryTls::RequiredVerify,
        DeliveryTls::RequiredVerifyHostedDomains,
    ] {
        let out = attempt(&lab, &pki, mode, MX).await;
        assert_eq!(out.decision.action, DeliveryAction::Defer, "{mode:?}");
        assert_eq!(out.decision.reason, Reason::StartTlsNotAdvertised);
        assert_eq!(out.decision.alert().unwrap().domain, "test.example");
        assert!(out.connection.is_none());
        assert!(
            out.transcript.starttls_reply.is_none(),
            "STARTTLS must not be sent"
        );
    }
    for mode in [DeliveryTls::Preferred, DeliveryTls::PreferredVerify] {
        let out = attempt(&lab, &pki, mode, MX).await;
        assert!(
            matches!(out.decision.action, DeliveryAction::ContinuePlaintext(_)),
            "{mode:?}"
        );
        assert!(out.decision.alert().is_none());
        assert!(!out.connection.unwrap().stream.is_tls());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_fails_verification() {
    let pki = Pki::new();
    let lab = PostfixLab::start("may", Some(&pki.untrusted));
    for mode in [
        DeliveryTls::RequiredVerify,
        DeliveryTls::RequiredVerifyHostedDomains,
    ] {
        let out = attempt(&lab, &pki, mode, MX).await;
        assert_eq!(out.decision.action, DeliveryAction::Defer, "{mode:?}");
        assert!(
            matches!(
                out.decision.reason,
                Reason::CertificateNotVerified(PkixOutcome::UntrustedChain { .. })
            ),
            "{:?}",
            out.decision.reason
        );
        // TLS was established (the message would have been protected), then closed unused.
        assert!(out.transcript.tls.is_some());
        assert!(out.connection.is_none());
    }
    let out = attempt(&lab, &pki, DeliveryTls::PreferredVerify, MX).await;
    assert_eq!(out.decision.action, DeliveryAction::ContinueTls);
    assert!(matches!(
        out.decision.reason,
        Reason::TlsEstablished(PeerAuthentication::FailedButDelivered(
            PkixOutcome::UntrustedChain { .. }
        ))
    ));
    assert!(out.connection.unwrap().stream.is_tls());
    let out = attempt(&lab, &pki, DeliveryTls::Required, MX).await;
    assert_eq!(out.decision.action, DeliveryAction::ContinueTls);
}
