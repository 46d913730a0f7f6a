//! `smtp-tls-check tlsverify --connect HOST:PORT --domain DOMAIN --mode MODE [--mx HOST]...
//! [--mx-secure] [--route HOST] [--ca CA.pem]... [--system-cas] [--at RFC3339] [--fqdn-check]
//! [--x509-check] [--ehlo NAME] [--timeout SECS] --json`: the live check, like Cisco's
//! `tlsverify` and Postfix's `posttls-finger`.
//!
//! It connects, reads the greeting, sends EHLO, STARTTLS, runs the handshake, verifies the
//! presented chain for the destination and sends QUIT — all through the hop plan
//! ([`smtp_tls_policy::plan::HopPlan`] of a destination control with `--mode` and DANE `none`,
//! for the host of `--mx` / `--route`, or the domain itself without them) and the project's one
//! STARTTLS client, [`smtp_tls_policy::io::negotiate`], driven by the plan's delivery state
//! machine, so the reported `action` is exactly what a delivery with this destination control
//! would do. No message is sent. The plan is per host: at most one `--mx` or `--route`.
//!
//! `--mode`: the delivery TLS modes of the seed's Table 2: `no`, `preferred`, `required`,
//! `preferred-verify`, `required-verify`, `required-verify-hosted-domains`, and `default`, which
//! without a destination-control table is the default entry's factory setting, `no` (`mode` in
//! the JSON is the effective mode). The chain is verified by the plan's verifier
//! ([`smtp_tls_policy::plan::PlanVerifier`]): the Hosted Verify algorithm for
//! `required-verify-hosted-domains`, the Verify algorithm otherwise. For `preferred` and
//! `required` the verdict is still reported, but the action follows the mode (they do not verify);
//! `preferred-verify` continues in TLS with `verified: false` when verification fails.
//!
//! # JSON
//! ```text
//! {"verified": bool, "reference_ids": [...], "matched": {"reference", "presented"} | null,
//!  "error": null | "<kind>: <text>",           // as offline; "not-checked: ..." without a chain
//!  "connect": "HOST:PORT", "mode": "required-verify",
//!  "protocol": "TLSv1_3" | null, "cipher": "TLS13_AES_256_GCM_SHA384" | null,
//!  "chain_subjects": ["CN=mx.example", ...],   // leaf first; [] without TLS
//!  "ehlo_starttls": bool,                     // STARTTLS in the first EHLO reply
//!  "action": "continue-tls" | "continue-plaintext" | "retry-plaintext" | "defer" | "bounce",
//!  "reason": "text", "alert": null | "required TLS connection to domain D failed: ...",
//!  "discarded_after_220": bytes}               // sent by the server after its STARTTLS 220
//! ```
//!
//! # Exit status: what is a verdict
//! - `0`: action `continue-tls` and the chain verified, or the mode does not verify (`preferred`,
//!   `required`) and TLS is up.
//! - `1`: any other verdict; the JSON is printed. This includes the peer failing us before any TLS
//!   decision: connection refused or timed out, a greeting other than `220`, EHLO/HELO refused, a
//!   malformed reply, the connection dropped. A delivery agent facing that keeps the message
//!   queued and retries (RFC 5321 §4.5.4.1), whatever the TLS mode, so the verdict is
//!   `action: "defer"` with the failure as `reason` (and no alert: TLS was never reached).
//! - `2`: bad input only, no JSON: an unknown mode, a malformed `HOST:PORT`, a HOST that does not
//!   resolve (the operator's input, not the peer's behaviour), an invalid domain or MX name,
//!   an unreadable CA file, a bad `--timeout`/`--at`, more than one of `--mx`/`--route`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use dane_verify::DnssecStatus;
use dane_verify::{DaneAction, NoDaneReason};
use serde_json::{Value, json};
use smtp_tls_policy::delivery::{DeliveryAction, DeliveryOptions, RequiredTlsAlerts};
use smtp_tls_policy::destination::{DeliveryTls, DestinationControls, TlsMode};
use smtp_tls_policy::identity::IdentityAlgorithm;
use smtp_tls_policy::io::{ClientConnection, Timeouts, Transcript, negotiate};
use smtp_tls_policy::plan::{
    HopPlan, HostSource, PlanOptions, PlanVerifier, PreConnect, facts_without_dnssec,
};
use smtp_tls_policy::smtp::ReplyAccumulator;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::{Args, parse_time, trust_anchors, verdict_json, verification_policy};

/// Longest `--timeout`, seconds.
const MAX_TIMEOUT: u64 = 3600;

/// The effective delivery TLS mode of `--mode` (Table 2; `default` is the default entry's `no`).
fn parse_mode(mode: &str) -> Result<DeliveryTls, String> {
    if mode == "default" {
        return Ok(TlsMode::Default.resolve(DeliveryTls::default()));
    }
    DeliveryTls::from_name(mode).ok_or_else(|| {
        format!(
            "unknown --mode {mode:?}: expected default, no, preferred, required, \
             preferred-verify, required-verify or required-verify-hosted-domains"
        )
    })
}

/// Splits `HOST:PORT` (`[v6]:PORT` for IPv6 literals).
fn parse_connect(text: &str) -> Result<(String, u16), String> {
    let bad = || format!("--connect {text:?}: expected HOST:PORT");
    let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() || host.contains(':') && !text.starts_with('[') {
        return Err(bad());
    }
    let port = port.parse::<u16>().map_err(|_| bad())?;
    if port == 0 {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

/// The host of the plan and where it came from: `--route`, the one `--mx`, else the domain
/// itself (implicit MX: the domain is the only reference identity).
fn plan_host(args: &Args) -> Result<(String, HostSource), String> {
    match (args.mx.as_slice(), &args.route) {
        ([], None) => Ok((args.domain.clone(), HostSource::ImplicitMx)),
        ([], Some(route)) => Ok((route.clone(), HostSource::Route)),
        ([mx], None) => Ok((mx.clone(), HostSource::Mx)),
        _ => Err("--connect checks one host: give at most one --mx or --route".into()),
    }
}

/// The hop plan of `--mode` (DANE `none`) for the host of [`plan_host`]; `--mx-secure` is the
/// MX answer's DNSSEC status. Bad input (domain, names) is an error.
fn plan(args: &Args, mode: DeliveryTls) -> Result<HopPlan, String> {
    let toml = format!("[default]\ntls = \"{}\"\ndane = \"none\"\n", mode.as_str());
    let controls = DestinationControls::from_toml("--mode", &toml).map_err(|e| e.to_string())?;
    let policy = controls
        .lookup(&args.domain)
        .map_err(|e| format!("--domain {:?}: {e}", args.domain))?;
    let (host, source) = plan_host(args)?;
    let mut facts = facts_without_dnssec(&args.domain, &host);
    if args.mx_secure {
        facts.mx_status = DnssecStatus::Secure;
    }
    let options = PlanOptions::new()
        .with_host_source(source)
        .with_verification(verification_policy(args, IdentityAlgorithm::Verify));
    let action = DaneAction::ConfiguredTls(NoDaneReason::SettingNone);
    let plan = HopPlan::with_dane_action(&policy, &facts, action, options);
    match plan.pre_connect() {
        PreConnect::Connect => Ok(plan),
        other => Err(other
            .hold_reason()
            .map_or_else(|| "no connection planned".into(), ToString::to_string)),
    }
}

/// What the report is about.
struct Report<'a> {
    args: &'a Args,
    mode: DeliveryTls,
    verifier: &'a PlanVerifier,
}

impl Report<'_> {
    /// The JSON report.
    fn json(
        &self,
        transcript: Option<&Transcript>,
        action: &str,
        reason: &str,
        alert: Option<String>,
    ) -> Value {
        let (args, mode) = (self.args, self.mode);
        let pkix = self.verifier.last_verdict().and_then(|v| v.pkix_detail);
        let mut out = match pkix {
            Some(v) => verdict_json(&v),
            None => json!({
                "verified": false,
                "reference_ids": self
                    .verifier
                    .plan()
                    .reference_ids()
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>(),
                "matched": null,
                "error": format!("not-checked: no certificate was presented ({reason})"),
            }),
        };
        let tls = transcript.and_then(|t| t.tls.as_ref());
        let extra = json!({
            "connect": args.connect,
            "mode": mode.as_str(),
            "protocol": tls.map(|t| t.protocol.clone()),
            "cipher": tls.map(|t| t.cipher_suite.clone()),
            "chain_subjects": tls.map(|t| t.peer_chain_subjects.clone()).unwrap_or_default(),
            "ehlo_starttls": transcript
                .and_then(|t| t.ehlo_before_tls.as_ref())
                .is_some_and(|c| c.starttls),
            "action": action,
            "reason": reason,
            "alert": alert,
            "discarded_after_220": transcript.map_or(0, |t| t.discarded_after_starttls),
        });
        if let (Some(o), Value::Object(e)) = (out.as_object_mut(), extra) {
            o.extend(e);
        }
        out
    }
}

/// Runs the live check.
pub(super) fn run(args: &Args) -> crate::CmdResult {
    let mode = parse_mode(&args.mode)?;
    let (host, port) = parse_connect(args.connect.as_deref().unwrap_or_default())?;
    if args.timeout == 0 || args.timeout > MAX_TIMEOUT {
        return Err(format!("--timeout {}: expected 1..={MAX_TIMEOUT}", args.timeout).into());
    }
    let timeout = Duration::from_secs(args.timeout);
    let anchors = Arc::new(trust_anchors(args)?);
    let plan = plan(args, mode)?;
    let mut verifier = plan.verifier(anchors);
    if let Some(at) = &args.at {
        verifier = verifier.at_time(parse_time(at)?);
    }
    let options = DeliveryOptions::new(RequiredTlsAlerts::Send);
    let (Some(attempt), Some(settings)) = (
        plan.attempt(options),
        plan.client_settings_with(args.ehlo.clone(), verifier),
    ) else {
        return Err("no connection planned".into());
    };
    let settings = settings.with_timeouts(Timeouts::uniform(timeout));
    let report = Report {
        args,
        mode,
        verifier: &settings.verifier,
    };

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let addrs: Vec<_> = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| format!("--connect {host:?}: {e}"))?
            .collect();
        if addrs.is_empty() {
            return Err(format!("--connect {host:?}: no address").into());
        }
        let defer = |reason: String| report.json(None, "defer", &reason, None);
        let tcp = match connect(&addrs, timeout).await {
            Ok(tcp) => tcp,
            Err(e) => {
                println!("{}", defer(e));
                return Ok(ExitCode::from(1));
            }
        };
        let outcome = match negotiate(tcp, attempt, &settings).await {
            Ok(o) => o,
            Err(e) => {
                println!("{}", defer(format!("{}: {e}", e.kind())));
                return Ok(ExitCode::from(1));
            }
        };
        if let Some(conn) = outcome.connection {
            quit(conn, timeout).await;
        }
        let d = &outcome.decision;
        let out = report.json(
            Some(&outcome.transcript),
            d.action.as_str(),
            &d.reason.to_string(),
            d.alert().map(ToString::to_string),
        );
        println!("{out}");
        let tls_up = d.action == DeliveryAction::ContinueTls;
        let ok = tls_up && (out["verified"] == true || !mode.verifies());
        Ok(if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    })
}

/// Connects to the first address that answers, each within `timeout`.
async fn connect(addrs: &[std::net::SocketAddr], timeout: Duration) -> Result<TcpStream, String> {
    let mut last = String::from("no address");
    for addr in addrs {
        match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => return Ok(tcp),
            Ok(Err(e)) => last = format!("connect {addr}: {e}"),
            Err(_) => last = format!("connect {addr}: timeout after {}s", timeout.as_secs()),
        }
    }
    Err(last)
}

/// Ends the session the check kept open: QUIT, its reply (bounded), close.
async fn quit(mut conn: ClientConnection<TcpStream>, timeout: Duration) {
    let send = async {
        conn.stream.write_all(b"QUIT\r\n").await?;
        conn.stream.flush().await
    };
    if matches!(tokio::time::timeout(timeout, send).await, Ok(Ok(()))) {
        let mut acc = ReplyAccumulator::new();
        for _ in 0..smtp_tls_policy::smtp::MAX_REPLY_LINES {
            match conn
                .reader
                .read_line(&mut conn.stream, timeout, "QUIT")
                .await
            {
                Ok(line) => match acc.push_line(&line) {
                    Ok(None) => continue,
                    Ok(Some(_)) | Err(_) => break,
                },
                Err(_) => break,
            }
        }
    }
    let _ = tokio::time::timeout(timeout, conn.stream.shutdown()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_syntax() {
        assert_eq!(
            parse_connect("127.0.0.1:2525").unwrap(),
            ("127.0.0.1".into(), 2525)
        );
        assert_eq!(
            parse_connect("mx.example:25").unwrap(),
            ("mx.example".into(), 25)
        );
        assert_eq!(parse_connect("[::1]:2525").unwrap(), ("::1".into(), 2525));
        for bad in ["mx.example", ":25", "mx:0", "mx:99999", "::1:25", "mx:x"] {
            assert!(parse_connect(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_mode_name() {
        for name in [
            "no",
            "preferred",
            "required",
            "preferred-verify",
            "required-verify",
            "required-verify-hosted-domains",
        ] {
            assert_eq!(parse_mode(name).unwrap().as_str(), name);
        }
        assert_eq!(parse_mode("default").unwrap(), DeliveryTls::No);
        assert!(parse_mode("tls-required").is_err());
    }
}
