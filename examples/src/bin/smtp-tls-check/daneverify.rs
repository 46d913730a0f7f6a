//! `smtp-tls-check daneverify`: match a certificate chain against TLSA records (offline), or
//! check a domain's DANE for SMTP live, like Cisco's `daneverify`.
//!
//! Offline: `daneverify --tlsa "U S M HEX"... --chain CHAIN.pem --name NAME [--generic]
//! [--ca TA.pem]... [--no-name-checks] [--at RFC3339] --json` prints
//! `{"outcome": "verified"|"no-match"|"name-mismatch"|"chain-error"|"unusable", "depth": N,
//! "matched": "U S M HEX"|null, "error": null|text}`; exit 0 when verified, 1 otherwise.
//! SMTP mode (RFC 7672) is the default; `--generic` uses RFC 6698/7671 rules with the `--ca`
//! trust store for PKIX usages, and `--no-name-checks` skips DANE-EE name checks there.
//!
//! Live: `daneverify DOMAIN --resolver ADDR:PORT [--trust-anchor FILE] [--port 25]
//! [--tlsa-port 25] [--setting opportunistic|mandatory] [--probe-name NAME] --json`. `--port` is
//! the port connected to; TLSA records are sought at `_25._tcp.HOST` unless `--tlsa-port` says
//! otherwise. Without `--trust-anchor`
//! the resolver must be a validating one on loopback (its AD bit is trusted); with it, DNSSEC is
//! validated in-process from that DNSKEY file and the resolver only recurses. A start-up probe
//! (SOA of `--probe-name`, default `.`) must validate, else the command fails (status 2). Then:
//! MX lookup, per MX host the DNSSEC status, TLSA records, the RFC 7672 action and, for hosts
//! where DANE applies, a STARTTLS handshake enforcing the TLSA records. JSON:
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

use dane_verify::policy::{Action, DaneSetting, HostFacts, TlsaLookup};
use dane_verify::resolver::{DaneResolver, Limits, Validation};
use dane_verify::{DaneEeNames, DaneMatcher, DaneVerifier, TlsaRecord, Verdict};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

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
    /// Live: the DNS resolver, ADDR:PORT.
    #[arg(long)]
    resolver: Option<SocketAddr>,
    /// Live: DNSKEY trust-anchor file for in-process validation.
    #[arg(long)]
    trust_anchor: Option<PathBuf>,
    /// Live: port to connect to on the MX hosts (tests use a loopback responder's port).
    #[arg(long, default_value_t = 25)]
    port: u16,
    /// Live: port of the TLSA owner name `_PORT._tcp.HOST` (SMTP to MX hosts: 25).
    #[arg(long, default_value_t = 25)]
    tlsa_port: u16,
    /// Live: the destination's DANE setting.
    #[arg(long, value_parser = ["opportunistic", "mandatory"], default_value = "opportunistic")]
    setting: String,
    /// Live: a signed name whose SOA must validate before DANE is reported available.
    #[arg(long, default_value = ".")]
    probe_name: String,
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

fn verdict_json(v: &Verdict) -> Value {
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
    let resolver_addr = args
        .resolver
        .ok_or("--resolver ADDR:PORT is required with DOMAIN")?;
    let validation = match &args.trust_anchor {
        Some(file) => Validation::in_process_from_file(resolver_addr, file)?,
        None => Validation::TrustAd {
            resolver: resolver_addr,
        },
    };
    let setting = if args.setting == "mandatory" {
        DaneSetting::Mandatory
    } else {
        DaneSetting::Opportunistic
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let limits = Limits {
            timeout: Duration::from_secs(10),
            ..Limits::default()
        };
        let resolver = DaneResolver::new(validation, limits)?;
        resolver.probe(&args.probe_name).await?;
        let facts = resolver.destination(&domain, args.tlsa_port).await?;
        let actions = facts.actions(setting);
        let mut hosts = Vec::new();
        let mut dane_hosts = 0;
        let mut all_ok = true;
        for (host, action) in &actions {
            let f = facts.hosts.iter().find(|h| &h.mx_host == host);
            let tls = if let Action::UseDane { .. } = action {
                dane_hosts += 1;
                let v = check_host(&resolver, host, args.port, action).await;
                all_ok &= v.get("outcome").and_then(Value::as_str) == Some("verified");
                v
            } else {
                Value::Null
            };
            hosts.push(host_json(host, f, action, tls));
        }
        let verified = dane_hosts > 0 && all_ok;
        let out = json!({
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

fn host_json(host: &str, f: Option<&HostFacts>, action: &Action, tls: Value) -> Value {
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
        Action::ConfiguredTls(r) => Some(format!("{r:?}")),
        Action::Defer(r) => Some(format!("{r:?}")),
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

/// Connects to the first address of `host`, STARTTLS, handshake enforcing DANE.
async fn check_host(resolver: &DaneResolver, host: &str, port: u16, action: &Action) -> Value {
    let Action::UseDane { records, sni, .. } = action else {
        return Value::Null;
    };
    let fail = |addr: Option<SocketAddr>, e: String| {
        json!({"address": addr.map(|a| a.to_string()), "outcome": "chain-error", "depth": -1,
               "matched": null, "error": e})
    };
    let ips: Vec<IpAddr> = match resolver.addresses(host).await {
        Ok(ips) if !ips.is_empty() => ips,
        Ok(_) => return fail(None, "no address".into()),
        Err(e) => return fail(None, e.to_string()),
    };
    let addr = SocketAddr::new(ips[0], port);
    let matcher = match action.matcher() {
        Some(Ok(m)) => m,
        Some(Err(e)) => return fail(Some(addr), e.to_string()),
        None => return Value::Null,
    };
    let verifier = Arc::new(DaneVerifier::new(matcher, records.clone()));
    match starttls(addr, sni, verifier.clone()).await {
        Ok(()) | Err(_) if verifier.last_verdict().is_some() => {
            let mut v = verdict_json(&verifier.last_verdict().unwrap_or_default());
            v["address"] = json!(addr.to_string());
            v
        }
        Err(e) => fail(Some(addr), e),
        Ok(()) => fail(Some(addr), "handshake without a certificate check".into()),
    }
}

const STEP: Duration = Duration::from_secs(30);
const MAX_LINE: usize = 4096;
const MAX_LINES: usize = 100;

/// Reads one SMTP reply (RFC 5321 §4.2), bounded; returns (code, lines).
async fn read_reply(r: &mut BufReader<TcpStream>) -> Result<(u16, Vec<String>), String> {
    let mut lines = Vec::new();
    loop {
        if lines.len() >= MAX_LINES {
            return Err("reply too long".into());
        }
        let mut line = Vec::new();
        let n = tokio::time::timeout(STEP, async {
            let mut total = 0;
            loop {
                let buf = r.fill_buf().await.map_err(|e| e.to_string())?;
                if buf.is_empty() {
                    return Ok::<usize, String>(total);
                }
                let (take, done) = match buf.iter().position(|&b| b == b'\n') {
                    Some(i) => (i + 1, true),
                    None => (buf.len(), false),
                };
                line.extend_from_slice(&buf[..take]);
                r.consume(take);
                total += take;
                if line.len() > MAX_LINE {
                    return Err("reply line too long".into());
                }
                if done {
                    return Ok(total);
                }
            }
        })
        .await
        .map_err(|_| "timeout waiting for the server".to_string())??;
        if n == 0 {
            return Err("connection closed".into());
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_string();
        let code = text
            .get(..3)
            .and_then(|c| c.parse::<u16>().ok())
            .ok_or("malformed reply")?;
        let last = text.as_bytes().get(3) != Some(&b'-');
        lines.push(text);
        if last {
            return Ok((code, lines));
        }
    }
}

async fn send(r: &mut BufReader<TcpStream>, cmd: &str) -> Result<(), String> {
    tokio::time::timeout(STEP, r.get_mut().write_all(cmd.as_bytes()))
        .await
        .map_err(|_| "timeout writing".to_string())?
        .map_err(|e| e.to_string())
}

async fn starttls(addr: SocketAddr, sni: &str, verifier: Arc<DaneVerifier>) -> Result<(), String> {
    let tcp = tokio::time::timeout(STEP, TcpStream::connect(addr))
        .await
        .map_err(|_| "connect timeout".to_string())?
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let mut r = BufReader::new(tcp);
    let (code, _) = read_reply(&mut r).await?;
    if code != 220 {
        return Err(format!("greeting {code}"));
    }
    send(&mut r, "EHLO smtp-tls-check.invalid\r\n").await?;
    let (code, lines) = read_reply(&mut r).await?;
    if code != 250 {
        return Err(format!("EHLO {code}"));
    }
    if !lines.iter().any(|l| {
        l.get(4..)
            .is_some_and(|k| k.eq_ignore_ascii_case("STARTTLS"))
    }) {
        return Err("no STARTTLS offered".into());
    }
    send(&mut r, "STARTTLS\r\n").await?;
    let (code, _) = read_reply(&mut r).await?;
    if code != 220 {
        return Err(format!("STARTTLS {code}"));
    }
    // Discard anything the server sent after its 220 (plaintext injection, CVE-2011-0411).
    let tcp = r.into_inner();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .dangerous()
    .with_custom_certificate_verifier(verifier)
    .with_no_client_auth();
    let name = ServerName::try_from(sni.to_owned()).map_err(|e| e.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let mut tls = tokio::time::timeout(STEP, connector.connect(name, tcp))
        .await
        .map_err(|_| "TLS handshake timeout".to_string())?
        .map_err(|e| format!("TLS handshake: {e}"))?;
    let _ = tokio::time::timeout(STEP, tls.write_all(b"QUIT\r\n")).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), tls.shutdown()).await;
    Ok(())
}
