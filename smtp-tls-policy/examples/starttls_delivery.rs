//! One delivery over STARTTLS with the hop plan, public API only: destination controls → plan
//! for the MX host → [`io::negotiate`] (the plan's verifier in the handshake) → MAIL, RCPT, DATA,
//! QUIT on the connection the policy allows. Prints the plan, the peer verdict and the decision.
//!
//! `cargo run -p smtp-tls-policy --all-features --example starttls_delivery -- \
//!     ADDR [TLS] [MX_NAME]` with `TLS` one of `none`, `preferred` (default), `required`,
//! `required-verify`, and `MX_NAME` the MX host name (default `mx.example.test`, the SNI).
//!
//! The DNS facts are made up (no DNSSEC, TLSA not queried): a real mail server gets them from
//! dane-verify's resolver. Exit status: 0 delivered, 1 not delivered (deferred, bounced, refused).

use std::sync::Arc;
use std::time::Duration;

use dane_verify::DnssecStatus::Insecure;
use dane_verify::{HostFacts, TlsaLookup};
use smtp_tls_policy::chain::TrustAnchors;
use smtp_tls_policy::delivery::{DeliveryAction, DeliveryOptions};
use smtp_tls_policy::destination::DestinationControls;
use smtp_tls_policy::io::{ClientConnection, LineReader, SmtpStream, negotiate};
use smtp_tls_policy::smtp::{Reply, ReplyAccumulator};
use smtp_tls_policy::{HopPlan, PlanOptions};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

const TIMEOUT: Duration = Duration::from_secs(30);

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args
        .next()
        .ok_or("usage: starttls_delivery ADDR [TLS] [MX_NAME]")?;
    let tls = args.next().unwrap_or_else(|| "preferred".into());
    let mx = args.next().unwrap_or_else(|| "mx.example.test".into());
    let controls = format!("[default]\ntls = \"{tls}\"\ndane = \"none\"\n");
    let policy =
        DestinationControls::from_toml("controls.toml", &controls)?.lookup("example.test")?;
    let facts = HostFacts {
        next_hop: "example.test".into(),
        mx_host: mx.clone(),
        mx_status: Insecure,
        address_status: Insecure,
        tlsa_base: mx,
        tlsa: TlsaLookup::NotQueried,
    };
    let plan = HopPlan::new(&policy, &facts, PlanOptions::new());
    println!("plan: {}", serde_json::to_string(&plan)?);
    if !plan.may_connect() {
        println!("decision: no connection ({})", plan.pre_connect().as_str());
        std::process::exit(1);
    }
    let (Some(attempt), Some(settings)) = (
        plan.attempt(DeliveryOptions::default()),
        plan.client_settings("client.example.test", Arc::new(TrustAnchors::mozilla())),
    ) else {
        return Err("a connectable plan has an attempt and client settings".into());
    };
    let outcome = negotiate(TcpStream::connect(&addr).await?, attempt, &settings).await?;
    if let Some(verdict) = settings.verifier.last_verdict() {
        println!("verdict: {}", serde_json::to_string(&verdict)?);
    }
    let how = match outcome.decision.action {
        DeliveryAction::ContinueTls => "tls",
        DeliveryAction::ContinuePlaintext(_) => "plaintext",
        _ => "",
    };
    println!(
        "decision: {how} {:?} ({})",
        outcome.decision.action, outcome.decision.reason
    );
    let Some(connection) = outcome.connection.filter(|_| !how.is_empty()) else {
        std::process::exit(1);
    };
    send_message(connection).await?;
    println!("delivered over {how}");
    Ok(())
}

/// MAIL, RCPT, DATA and QUIT on the negotiated connection; any reply but the expected one is an
/// error.
async fn send_message<S: AsyncRead + AsyncWrite + Unpin>(
    connection: ClientConnection<S>,
) -> Result<(), Box<dyn std::error::Error>> {
    let ClientConnection {
        mut stream,
        mut reader,
        ..
    } = connection;
    let body = "Subject: starttls_delivery\r\n\r\nHello over the hop plan.\r\n.\r\n";
    for (line, expected) in [
        ("MAIL FROM:<sender@client.example.test>\r\n", 250),
        ("RCPT TO:<postmaster@example.test>\r\n", 250),
        ("DATA\r\n", 354),
        (body, 250),
        ("QUIT\r\n", 221),
    ] {
        stream.write_all(line.as_bytes()).await?;
        stream.flush().await?;
        let reply = read_reply(&mut stream, &mut reader).await?;
        if reply.code != expected {
            return Err(format!("{}: {}", line.trim_end(), reply.first_line()).into());
        }
    }
    Ok(())
}

async fn read_reply<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut SmtpStream<S>,
    reader: &mut LineReader,
) -> Result<Reply, Box<dyn std::error::Error>> {
    let mut acc = ReplyAccumulator::new();
    loop {
        let line = reader.read_line(stream, TIMEOUT, "transaction").await?;
        if let Some(reply) = acc.push_line(&line)? {
            return Ok(reply);
        }
    }
}
