//! Deciding one delivery with the public API only: recipient domain → destination policy, the
//! MX hosts' DNS facts → one hop plan per host (printed as JSON), then the delivery state
//! machine for the first host that may be connected to, fed with the verification of the chain
//! that host presents.
//!
//! `cargo run -p smtp-tls-policy --example decide_delivery [DOMAIN]`
//!
//! The DNS facts and the server's certificate are made up here (a real mail server gets them
//! from dane-verify's resolver and from the TLS handshake, where [`HopPlan::verifier`] records
//! the same verdict).

use dane_verify::DnssecStatus::{Insecure, Secure};
use dane_verify::{HostFacts, LookupFailure, TlsaLookup};
use rustls::pki_types::{CertificateDer, UnixTime};
use smtp_tls_policy::chain::TrustAnchors;
use smtp_tls_policy::delivery::{DeliveryAction, DeliveryOptions, EhloOutcome, Step};
use smtp_tls_policy::destination::DestinationControls;
use smtp_tls_policy::{HopPlan, PlanOptions, PreConnect};

const CONTROLS: &str = r#"
[default]
tls = "preferred"
dane = "opportunistic"

[destinations."example.com"]
tls = "required-verify"
"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let domain = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "example.com".into());
    let controls = DestinationControls::from_toml("controls.toml", CONTROLS)?;
    let policy = controls.lookup(&domain)?;

    // The server's certificate (self-signed: only DANE can authenticate it) and its TLSA record.
    let key = rcgen::KeyPair::generate()?;
    let cert = rcgen::CertificateParams::new(vec![format!("mx1.{domain}")])?.self_signed(&key)?;
    let chain: Vec<CertificateDer<'static>> = vec![cert.der().clone()];
    let records = dane_verify::server_tlsa_records(cert.der(), None)?;

    // What DNS said about the MX hosts, in preference order.
    let host = |name: &str, secure: bool, tlsa: TlsaLookup| HostFacts {
        next_hop: domain.clone(),
        mx_host: format!("{name}.{domain}"),
        mx_status: if secure { Secure } else { Insecure },
        address_status: if secure { Secure } else { Insecure },
        tlsa_base: format!("{name}.{domain}"),
        tlsa,
    };
    let hosts = [
        host("mx0", true, TlsaLookup::Failed(LookupFailure::ServFail)),
        host(
            "mx1",
            true,
            TlsaLookup::Found {
                records,
                status: Secure,
            },
        ),
        host("mx2", false, TlsaLookup::NotQueried),
    ];

    for facts in &hosts {
        let plan = HopPlan::new(&policy, facts, PlanOptions::new());
        println!("{}", serde_json::to_string_pretty(&plan)?);
        match plan.pre_connect() {
            PreConnect::Connect => {}
            PreConnect::SkipHost { reason } => {
                eprintln!("{}: skipped ({reason}); next host", plan.host());
                continue;
            }
            PreConnect::Defer { reason } => {
                eprintln!("{domain}: deferred ({reason})");
                return Ok(());
            }
            other => {
                eprintln!("{domain}: {} — not handled here, deferred", other.as_str());
                return Ok(());
            }
        }
        deliver(&plan, &chain)?;
        return Ok(());
    }
    eprintln!("{domain}: no host may be used now: deferred");
    Ok(())
}

/// One connection attempt, as a driver runs it: the machine from the plan, a peer that offers
/// STARTTLS, and the plan's verification of the presented chain.
fn deliver(
    plan: &HopPlan,
    chain: &[CertificateDer<'static>],
) -> Result<(), Box<dyn std::error::Error>> {
    let Some(mut attempt) = plan.attempt(DeliveryOptions::default()) else {
        return Err("a connectable plan always has an attempt".into());
    };
    if let Some(decision) = attempt.preflight() {
        eprintln!("no connection: {}", decision.reason);
        return Ok(());
    }
    let sni = plan.server_name().map(|n| n.to_str().into_owned());
    eprintln!("{}: connect, SNI {sni:?}", plan.host());
    let mut step = attempt.on_ehlo(EhloOutcome::Esmtp { starttls: true });
    if step == Step::SendStartTls {
        step = attempt.on_starttls_reply(220);
    }
    if step == Step::StartHandshake {
        let verdict = plan.verify_peer(chain, &TrustAnchors::mozilla(), UnixTime::now());
        eprintln!("verdict: {}", serde_json::to_string(&verdict)?);
        step = attempt.on_handshake(verdict.handshake_outcome());
    }
    if let Step::Done(decision) = step {
        let what = match decision.action {
            DeliveryAction::ContinueTls => "deliver over TLS",
            DeliveryAction::ContinuePlaintext(_) => "deliver in plaintext",
            DeliveryAction::RetryPlaintext(_) => "reconnect without STARTTLS",
            DeliveryAction::Defer => "defer",
            DeliveryAction::Bounce => "bounce",
            _ => "defer (unknown action)",
        };
        eprintln!("{}: {what} ({})", plan.host(), decision.reason);
    }
    Ok(())
}
