//! The hop plan in the tokio STARTTLS driver: `HopPlan::client_settings` + `HopPlan::attempt`
//! with `io::negotiate` against a scripted STARTTLS server on loopback — PKIX enforced, PKIX
//! reported, DANE authenticating (PKIX reported), DANE mismatch.
#![cfg(feature = "tokio")]

use std::sync::Arc;
use std::time::Duration;

use dane_verify::DnssecStatus::{Insecure, Secure};
use dane_verify::{HostFacts, TlsaLookup};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use smtp_tls_policy::chain::TrustAnchors;
use smtp_tls_policy::delivery::{
    DaneOutcome, DeliveryAction, DeliveryEvent, DeliveryOptions, PeerAuthentication, PkixOutcome,
    Reason,
};
use smtp_tls_policy::destination::{
    ConfiguredDane, DestinationControls, DestinationEntry, TlsMode,
};
use smtp_tls_policy::io::{ClientOutcome, LineReader, Timeouts, negotiate};
use smtp_tls_policy::{HopPlan, PlanOptions};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const MX: &str = "mx.example.net";

struct Cert {
    der: CertificateDer<'static>,
    key: Vec<u8>,
}

/// A CA certificate and a leaf for `MX` it issued; or a self-signed leaf.
fn pki() -> (CertificateDer<'static>, Cert, Cert) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "Driver CA");
    ca.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let leaf = |signed: bool| {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(vec![MX.to_owned()]).unwrap();
        p.use_authority_key_identifier_extension = signed;
        p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let c = if signed {
            p.signed_by(&key, &issuer).unwrap()
        } else {
            p.self_signed(&key).unwrap()
        };
        Cert {
            der: c.der().clone(),
            key: key.serialize_der(),
        }
    };
    (ca_cert.der().clone(), leaf(true), leaf(false))
}

async fn replies<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, r: &mut LineReader) {
    let t = Duration::from_secs(10);
    while let Ok(line) = r.read_line(s, t, "s").await {
        let reply: &[u8] = if line.starts_with(b"EHLO") {
            b"250-scripted.test\r\n250 STARTTLS\r\n"
        } else if line.starts_with(b"STARTTLS") {
            b"220 2.0.0 Ready to start TLS\r\n"
        } else if line.starts_with(b"QUIT") {
            let _ = s.write_all(b"221 bye\r\n").await;
            return;
        } else {
            b"250 ok\r\n"
        };
        let _ = s.write_all(reply).await;
        if line.starts_with(b"STARTTLS") {
            return;
        }
    }
}

/// A STARTTLS server presenting `cert`; then the plan's attempt through `negotiate`.
async fn deliver(plan: &HopPlan, cert: &Cert, anchors: TrustAnchors) -> ClientOutcome<TcpStream> {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.der.clone()],
        PrivateKeyDer::try_from(cert.key.clone()).unwrap(),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let server = tokio::spawn(async move {
        let (mut tcp, _) = l.accept().await.unwrap();
        let _ = tcp.write_all(b"220 scripted.test ESMTP\r\n").await;
        let mut r = LineReader::new();
        replies(&mut tcp, &mut r).await;
        if let Ok(mut tls) = acceptor.accept(tcp).await {
            replies(&mut tls, &mut LineReader::new()).await;
        }
    });
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let settings = plan
        .client_settings("client.test", Arc::new(anchors))
        .unwrap()
        .with_timeouts(Timeouts::uniform(Duration::from_secs(10)));
    let attempt = plan.attempt(DeliveryOptions::default()).unwrap();
    let out = negotiate(tcp, attempt, &settings).await.unwrap();
    drop(server);
    out
}

fn plan(tls: TlsMode, dane: ConfiguredDane, tlsa: Option<&Cert>) -> HopPlan {
    let policy = DestinationControls::builder()
        .default_entry(DestinationEntry::new(tls, dane))
        .unwrap()
        .build()
        .lookup("example.com")
        .unwrap();
    let (status, tlsa) = match tlsa {
        Some(c) => (
            Secure,
            TlsaLookup::Found {
                records: dane_verify::server_tlsa_records(&c.der, None).unwrap(),
                status: Secure,
            },
        ),
        None => (Insecure, TlsaLookup::NotQueried),
    };
    let facts = HostFacts {
        next_hop: "example.com".into(),
        mx_host: MX.into(),
        mx_status: status,
        address_status: status,
        tlsa_base: MX.into(),
        tlsa,
    };
    HopPlan::new(&policy, &facts, PlanOptions::new())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkix_enforced_and_reported() {
    let (ca, good, self_signed) = pki();
    let anchors = || TrustAnchors::from_certificates([ca.clone()]).unwrap();
    let p = plan(TlsMode::RequiredVerify, ConfiguredDane::None, None);

    let out = deliver(&p, &good, anchors()).await;
    assert_eq!(out.decision.action, DeliveryAction::ContinueTls);
    assert_eq!(
        out.transcript.tls.as_ref().unwrap().pkix,
        PkixOutcome::Verified
    );
    assert!(out.connection.is_some());

    let out = deliver(&p, &self_signed, anchors()).await;
    assert_eq!(out.decision.action, DeliveryAction::Defer);
    assert!(matches!(
        out.decision.reason,
        Reason::CertificateNotVerified(PkixOutcome::UntrustedChain { .. })
    ));

    // preferred-verify: delivered over TLS, the failure reported.
    let p = plan(TlsMode::PreferredVerify, ConfiguredDane::None, None);
    let out = deliver(&p, &self_signed, anchors()).await;
    assert_eq!(out.decision.action, DeliveryAction::ContinueTls);
    assert!(matches!(
        out.decision.reason,
        Reason::TlsEstablished(PeerAuthentication::FailedButDelivered(_))
    ));
    assert!(
        out.decision
            .events
            .iter()
            .any(|e| matches!(e, DeliveryEvent::VerificationFailedDelivered { .. }))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dane_authenticates_and_mismatch_defers() {
    let (ca, good, self_signed) = pki();
    let anchors = || TrustAnchors::from_certificates([ca.clone()]).unwrap();
    // The self-signed server published its key: DANE authenticates, PKIX only reported.
    let p = plan(
        TlsMode::RequiredVerify,
        ConfiguredDane::Opportunistic,
        Some(&self_signed),
    );
    let out = deliver(&p, &self_signed, anchors()).await;
    assert_eq!(
        out.decision.reason,
        Reason::TlsEstablished(PeerAuthentication::DaneVerified)
    );
    let tls = out.transcript.tls.as_ref().unwrap();
    assert_eq!(tls.dane, Some(DaneOutcome::Verified));
    assert!(matches!(tls.pkix, PkixOutcome::UntrustedChain { .. }));

    // A PKIX-valid server whose key is not the published one: DANE fails, deferred.
    let out = deliver(&p, &good, anchors()).await;
    assert_eq!(out.decision.action, DeliveryAction::Defer);
    assert!(matches!(
        out.decision.reason,
        Reason::DaneVerificationFailed { .. }
    ));
    assert!(out.connection.is_none());
}
