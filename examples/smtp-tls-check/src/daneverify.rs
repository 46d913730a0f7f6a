//! `smtp-tls-check daneverify`: match a certificate chain against TLSA records (offline), or
//! check a domain's DANE for SMTP live, like Cisco's `daneverify`.
//!
//! Offline: `daneverify --tlsa "U S M HEX"... --chain CHAIN.pem --name NAME [--generic]
//! [--ca TA.pem]... [--no-name-checks] [--at RFC3339] --json` prints
//! `{"outcome": "verified"|"no-match"|"name-mismatch"|"chain-error"|"unusable", "depth": N,
//! "matched": "U S M HEX"|null, "error": null|text}`; exit 0 when verified, 1 otherwise.
//! SMTP mode (RFC 7672) is the default; `--generic` uses RFC 6698/7671 rules with the `--ca`
//! trust store for PKIX usages, and `--no-name-checks` skips DANE-EE name checks there.
//! Trust anchors published whole in a record (`2 0 0`, `2 1 0`) need not be in the chain, and in
//! `--generic` a `0 0 0` record may supply a missing intermediate (RFC 7671 §5.2); `depth` is
//! OpenSSL's (`SSL_get0_dane_authority`). OpenSSL's `test/danetest.in` runs through this path
//! (`tests/daneverify_cli.rs`).
//!
//! Live: `daneverify DOMAIN [--resolver ADDR:PORT] [--trust-anchor FILE] [--port 25]
//! [--tlsa-port 25] [--setting opportunistic|mandatory] [--probe-name NAME] --json`. `--port` is
//! the port connected to; TLSA records are sought at `_25._tcp.HOST` unless `--tlsa-port` says
//! otherwise. The resolver follows the relay's `[delivery.resolver]` rules: by default DNSSEC is
//! validated in-process (the relay's default mode, `validating`) from the IANA root anchors
//! built in, or from the DNSKEY file `--trust-anchor`, asking the system's nameservers
//! (`/etc/resolv.conf`) or `--resolver` (which then only recurses); `--resolver` without
//! `--trust-anchor` must be a validating resolver on loopback (its AD bit is trusted,
//! `trust-ad`). A start-up probe (SOA of `--probe-name`, default `.`) must validate, else the
//! command fails (status 2). The JSON names the resolver used (`"resolver": {"mode",
//! "upstream", "trust_anchor"}`). Then:
//! MX lookup, per MX host the DNSSEC status, TLSA records, the RFC 7672 action and, for hosts
//! where DANE applies, a STARTTLS session under the host's hop plan
//! (`smtp_tls_policy::plan::HopPlan` with the host's action, TLS mode `preferred`) through the
//! project's STARTTLS client (`smtp_tls_policy::io::negotiate`, driven by the plan's delivery
//! machine) whose chain is matched against the TLSA records by the plan's verifier (anything the server sends
//! after its STARTTLS reply is discarded; the session ends with QUIT). JSON:
//!
//! ```text
//! {"domain": "d", "setting": "opportunistic", "mx_status": "secure", "mx_failure": null,
//!  "hosts": [{"host": "mx.d", "address_status": "secure", "tlsa_base": "mx.d",
//!             "tlsa_status": "secure"|"insecure"|"bogus"|"indeterminate"|"absent"|
//!                            "failed"|"not-queried",
//!             "tlsa": ["3 1 1 ..."], "action": "dane"|"tls-unauthenticated"|
//!                                              "configured-tls"|"defer",
//!             "reason": "Debug text of the reason"|null,
//!             "tls": null | {"address": "ip:port", "outcome": "verified"|..., "depth": N,
//!                            "matched": "U S M HEX"|null, "error": null|text}}],
//!  "verified": true|false}
//! ```
//! `verified` (and exit 0) means: at least one host uses DANE and every DANE host verified.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use dane_verify::resolver::DaneResolver;
use dane_verify::{DaneAction, DaneSetting, HostFacts, TlsaLookup};
use dane_verify::{DaneEeNames, DaneMatcher, DaneVerdict, TlsaRecord};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, UnixTime};
use serde_json::{Value, json};
use smtp_tls_policy::chain::TrustAnchors;
use smtp_tls_policy::delivery::{DeliveryOptions, RequiredTlsAlerts};
use smtp_tls_policy::destination::DestinationControls;
use smtp_tls_policy::io::{Timeouts, negotiate};
use smtp_tls_policy::plan::{HopPlan, PlanOptions};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::resolver_args::ResolverArgs;

/// Arguments of `smtp-tls-check daneverify`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Live mode: the recipient domain to check.
    domain: Option<String>,
    /// Offline: a TLSA record "U S M HEX" (repeatable).
    #[arg(long)]
    tlsa: Vec<String>,
    /// Offline: the presented chain, PEM, leaf first.
    #[arg(long)]
    chain: Option<PathBuf>,
    /// Offline: the reference identity (MX host / TLSA base domain).
    #[arg(long)]
    name: Vec<String>,
    /// Offline: RFC 6698/7671 generic rules instead of SMTP (RFC 7672).
    #[arg(long)]
    generic: bool,
    /// Offline, generic: PKIX trust anchors, PEM (repeatable).
    #[arg(long)]
    ca: Vec<PathBuf>,
    /// Offline, generic: skip the DANE-EE name check (RFC 7671 §5.1).
    #[arg(long)]
    no_name_checks: bool,
    /// Offline: validation time, RFC 3339 (default now).
    #[arg(long)]
    at: Option<String>,
    // Live: `--resolver`, `--trust-anchor`, `--probe-name` (shared with `policy`).
    #[command(flatten)]
    dns: ResolverArgs,
    /// Live: port to connect to on the MX hosts (tests use a loopback responder's port).
    #[arg(long, default_value_t = 25)]
    port: u16,
    /// Live: port of the TLSA owner name `_PORT._tcp.HOST` (SMTP to MX hosts: 25).
    #[arg(long, default_value_t = 25)]
    tlsa_port: u16,
    /// Live: the destination's DANE setting.
    #[arg(long, value_parser = ["opportunistic", "mandatory"], default_value = "opportunistic")]
    setting: String,
    /// Print JSON (the only output format).
    #[arg(long)]
    json: bool,
}

/// Runs the subcommand.
pub(crate) fn run(args: Args) -> crate::CmdResult {
    if args.domain.is_some() {
        live(args)
    } else {
        offline(&args)
    }
}

fn exit(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn verdict_json(v: &DaneVerdict) -> Value {
    json!({
        "outcome": v.outcome.as_str(),
        "depth": v.depth,
        "matched": v.matched.as_ref().map(ToString::to_string),
        "error": v.reason,
    })
}

fn read_certs(path: &PathBuf) -> Result<Vec<CertificateDer<'static>>, Box<dyn std::error::Error>> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate", path.display()).into());
    }
    Ok(certs)
}

fn offline(args: &Args) -> crate::CmdResult {
    let chain_path = args
        .chain
        .as_ref()
        .ok_or("--chain is required (or give a DOMAIN)")?;
    if args.tlsa.is_empty() {
        return Err("at least one --tlsa is required".into());
    }
    if args.name.is_empty() {
        return Err("--name is required".into());
    }
    if !args.generic && (args.no_name_checks || !args.ca.is_empty()) {
        return Err("--no-name-checks and --ca apply to --generic only".into());
    }
    let records = args
        .tlsa
        .iter()
        .map(|t| {
            t.parse::<TlsaRecord>()
                .map_err(|e| format!("--tlsa {t:?}: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let chain = read_certs(chain_path)?;
    let now = match &args.at {
        None => UnixTime::now(),
        Some(at) => {
            let t = time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
                .map_err(|e| format!("--at {at:?}: {e}"))?;
            let secs = u64::try_from(t.unix_timestamp()).map_err(|_| "--at before 1970")?;
            UnixTime::since_unix_epoch(Duration::from_secs(secs))
        }
    };
    let names = args.name.iter().map(String::as_str);
    let matcher = if args.generic {
        let mut store = Vec::new();
        for ca in &args.ca {
            store.extend(read_certs(ca)?);
        }
        let ee = if args.no_name_checks {
            DaneEeNames::Skip
        } else {
            DaneEeNames::Check
        };
        DaneMatcher::generic(names, store, ee)?
    } else {
        DaneMatcher::smtp(names)?
    };
    let verdict = matcher.verify(&records, &chain, now);
    println!("{}", verdict_json(&verdict));
    Ok(exit(verdict.is_verified()))
}

fn live(args: Args) -> crate::CmdResult {
    let domain = args.domain.clone().unwrap_or_default();
    if !args.tlsa.is_empty() || args.chain.is_some() {
        return Err("DOMAIN (live) and --tlsa/--chain (offline) are exclusive".into());
    }
    let live_resolver = args.dns.prepare()?;
    let setting = if args.setting == "mandatory" {
        DaneSetting::Mandatory
    } else {
        DaneSetting::Opportunistic
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let resolver = live_resolver.resolver()?;
        resolver.probe(live_resolver.probe_name()).await?;
        let facts = resolver.destination(&domain, args.tlsa_port).await?;
        let actions = facts.actions(setting);
        let mut hosts = Vec::new();
        let mut dane_hosts = 0;
        let mut all_ok = true;
        for (host, action) in &actions {
            let f = facts.hosts.iter().find(|h| &h.mx_host == host);
            let tls = if let DaneAction::UseDane { .. } = action {
                dane_hosts += 1;
                let v = check_host(&resolver, &domain, f, args.port, &args.setting, action).await;
                all_ok &= v.get("outcome").and_then(Value::as_str) == Some("verified");
                v
            } else {
                Value::Null
            };
            hosts.push(host_json(host, f, action, tls));
        }
        let verified = dane_hosts > 0 && all_ok;
        let out = json!({
            "resolver": live_resolver.json(),
            "domain": facts.domain,
            "setting": args.setting,
            "mx_status": facts.mx_status.as_str(),
            "mx_failure": facts.mx_failure.map(|f| format!("{f:?}")),
            "hosts": hosts,
            "verified": verified,
        });
        println!("{out}");
        Ok(exit(verified))
    })
}

fn host_json(host: &str, f: Option<&HostFacts>, action: &DaneAction, tls: Value) -> Value {
    let (status, records) = match f.map(|f| &f.tlsa) {
        Some(TlsaLookup::Found { records, status }) => (
            status.as_str().to_string(),
            records.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ),
        Some(TlsaLookup::NotFound { status }) if status.is_secure() => ("absent".into(), vec![]),
        Some(TlsaLookup::NotFound { status }) => (status.as_str().into(), vec![]),
        Some(TlsaLookup::Failed(_)) => ("failed".into(), vec![]),
        _ => ("not-queried".into(), vec![]),
    };
    let reason = match action {
        DaneAction::ConfiguredTls(r) => Some(format!("{r:?}")),
        DaneAction::Defer(r) => Some(format!("{r:?}")),
        _ => None,
    };
    json!({
        "host": host,
        "address_status": f.map(|f| f.address_status.as_str()),
        "tlsa_base": f.map(|f| f.tlsa_base.clone()),
        "tlsa_status": status,
        "tlsa": records,
        "action": action.as_str(),
        "reason": reason,
        "tls": tls,
    })
}

/// Connects to the first address of the host and runs the project's STARTTLS client
/// ([`negotiate`]) under the host's hop plan (TLS mode `preferred`, DANE `setting`, the RFC 7672
/// action): DANE makes TLS mandatory, the plan's verifier matches the chain against the TLSA
/// records (PKIX against the Mozilla roots is only reported) and only a verified chain continues
/// in TLS; the session ends with QUIT. The TLS mode does not matter: usable TLSA records
/// override it (RFC 7672 §2.2).
async fn check_host(
    resolver: &DaneResolver,
    domain: &str,
    facts: Option<&HostFacts>,
    port: u16,
    setting: &str,
    action: &DaneAction,
) -> Value {
    let fail = |addr: Option<SocketAddr>, e: String| {
        json!({"address": addr.map(|a| a.to_string()), "outcome": "chain-error", "depth": -1,
               "matched": null, "error": e})
    };
    let Some(facts) = facts else {
        return fail(None, "no facts for the host".into());
    };
    let ips: Vec<IpAddr> = match resolver.addresses(&facts.mx_host).await {
        Ok(ips) if !ips.is_empty() => ips,
        Ok(_) => return fail(None, "no address".into()),
        Err(e) => return fail(None, e.to_string()),
    };
    let addr = SocketAddr::new(ips[0], port);
    let plan = match host_plan(domain, facts, setting, action) {
        Ok(p) => p,
        Err(e) => return fail(Some(addr), e),
    };
    let verifier = plan.verifier(Arc::new(TrustAnchors::mozilla()));
    let (Some(attempt), Some(settings)) = (
        plan.attempt(DeliveryOptions::new(RequiredTlsAlerts::DoNotSend)),
        plan.client_settings_with(EHLO_NAME, verifier),
    ) else {
        let why = plan
            .pre_connect()
            .hold_reason()
            .map_or_else(|| "no connection planned".into(), ToString::to_string);
        return fail(Some(addr), why);
    };
    let settings = settings.with_timeouts(Timeouts::uniform(STEP));
    let result = match tokio::time::timeout(STEP, TcpStream::connect(addr)).await {
        Err(_) => Err(format!("connect {addr}: timeout")),
        Ok(Err(e)) => Err(format!("connect {addr}: {e}")),
        Ok(Ok(tcp)) => match negotiate(tcp, attempt, &settings).await {
            Ok(outcome) => {
                if let Some(mut conn) = outcome.connection {
                    let _ = tokio::time::timeout(STEP, conn.stream.write_all(b"QUIT\r\n")).await;
                    let _ = tokio::time::timeout(STEP, conn.stream.shutdown()).await;
                }
                Ok(outcome.decision.reason.to_string())
            }
            Err(e) => Err(e.to_string()),
        },
    };
    match (
        settings.verifier.last_verdict().and_then(|v| v.dane_detail),
        result,
    ) {
        (Some(verdict), _) => {
            let mut v = verdict_json(&verdict);
            v["address"] = json!(addr.to_string());
            v
        }
        // No chain was matched: STARTTLS missing or refused, handshake or I/O failure.
        (None, Ok(reason) | Err(reason)) => fail(Some(addr), reason),
    }
}

/// The hop plan of one MX host: TLS mode `preferred`, DANE `setting`, the host's RFC 7672
/// action (SNI: the TLSA base domain, RFC 7672 §8.1).
fn host_plan(
    domain: &str,
    facts: &HostFacts,
    setting: &str,
    action: &DaneAction,
) -> Result<HopPlan, String> {
    let toml = format!("[default]\ntls = \"preferred\"\ndane = \"{setting}\"\n");
    let controls = DestinationControls::from_toml("--setting", &toml).map_err(|e| e.to_string())?;
    let policy = controls.lookup(domain).map_err(|e| e.to_string())?;
    Ok(HopPlan::with_dane_action(
        &policy,
        facts,
        action.clone(),
        PlanOptions::new(),
    ))
}

/// Timeout of each step (connect, each reply, the handshake).
const STEP: Duration = Duration::from_secs(30);
/// Our EHLO name.
const EHLO_NAME: &str = "smtp-tls-check.invalid";
