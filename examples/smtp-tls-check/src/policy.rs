//! `smtp-tls-check policy`: the hop plan ([`smtp_tls_policy::HopPlan`]) for each MX host of a
//! domain, from live DNS, without connecting.
//!
//! `policy DOMAIN [--mx HOST]... [--destinations FILE] [--resolver ADDR:PORT]
//! [--trust-anchor FILE] [--probe-name NAME] [--port 25] [--json]`:
//!
//! 1. the destination policy of DOMAIN: `--destinations` is a destination-controls TOML file (the
//!    relay's `delivery.destination_controls` format); without it, the default entry TLS
//!    `preferred`, DANE `opportunistic` (opportunistic TLS and opportunistic DANE, what
//!    `daneverify` assumes; the library's factory entry, TLS `no`, would make every answer
//!    "plaintext");
//! 2. DNS facts through dane-verify's resolver, set up exactly as `daneverify DOMAIN` does
//!    ([`crate::resolver_args`]): MX RRset, per MX host its addresses and TLSA records at
//!    `_PORT._tcp.HOST` (`--port`, default 25), with their DNSSEC statuses. The validation
//!    probe (SOA of `--probe-name`, default `.`) failing is not an error here: the statuses are
//!    then *indeterminate* and the plans say so (`validation`, `error`);
//! 3. the resolver's RFC 7672 action per host (it knows whether validation is proven) and a
//!    [`HopPlan`] per host (`HopPlan::with_dane_action`). `--mx HOST` (repeatable) plans only
//!    those MX hosts; a HOST that is not an MX host of DOMAIN is bad input. A failed MX lookup
//!    gives one plan for DOMAIN itself, deferred (`mx-lookup`).
//!
//! JSON (`--json`; without it one line per host):
//!
//! ```text
//! {"domain": "d" (normalised, A-label),
//!  "policy": {"domain", "matched": "exact"|"parent"|"default", "entry": ".d"|null,
//!             "tls_mode": "preferred"|..., "dane": "none"|"opportunistic"|"mandatory"},
//!  "resolver": {"mode": "validating"|"trust-ad", "upstream": [...], "trust_anchor": ...|null},
//!  "validation": "validating"|"unproven"|"not-validating",
//!  "mx_status": "secure"|"insecure"|"bogus"|"indeterminate",
//!  "mx_failure": null|"ServFail"|"Timeout"|"Other",
//!  "hosts": [{"host": "mx.d", "plan": <the HopPlan's serde form: "pre_connect": {"action",
//!             "reason", "detail"}, "requirement", "authentication": "none"|"pkix"|"dane",
//!             "sni", "destination", "dnssec", "dane": {"action", "reason", "records"},
//!             "reference_ids": {"pkix_algorithm", "pkix", "dane"}, "plaintext",
//!             "decided_by", "rules", ...>}],
//!  "authenticated": true|false,
//!  "error": null|"why the plans are incomplete: the validation probe failed, no MX host"}
//! ```
//!
//! `authenticated` (exit 0): no plan defers the destination and at least one host may be
//! connected to with an authenticated requirement (DANE, or PKIX under `required-verify*`:
//! [`HopPlan::is_authenticated`]). Exit 1 when delivery would defer or go unauthenticated;
//! 2 on bad input (arguments, an unreadable or invalid file, an invalid domain, `--mx` not an
//! MX host).

use std::path::PathBuf;
use std::process::ExitCode;

use dane_verify::DnssecStatus;
use dane_verify::{HostFacts, TlsaLookup};
use serde_json::{Value, json};
use smtp_tls_policy::destination::{
    ConfiguredDane, DestinationControls, DestinationEntry, DestinationMatch, DestinationPolicy,
    TlsMode,
};
use smtp_tls_policy::plan::HostSource;
use smtp_tls_policy::{HopPlan, PlanOptions, PreConnect};

use crate::resolver_args::ResolverArgs;

/// Arguments of `smtp-tls-check policy`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// The recipient domain.
    domain: String,
    /// Plan only this MX host of DOMAIN (repeatable).
    #[arg(long = "mx", value_name = "HOST")]
    mx: Vec<String>,
    /// Destination controls, TOML (the relay's `delivery.destination_controls` format; default:
    /// TLS preferred, DANE opportunistic).
    #[arg(long, value_name = "FILE")]
    destinations: Option<PathBuf>,
    // `--resolver`, `--trust-anchor`, `--probe-name`, as `daneverify DOMAIN`.
    #[command(flatten)]
    dns: ResolverArgs,
    /// SMTP port of the MX hosts: TLSA records are sought at `_PORT._tcp.HOST`.
    #[arg(long, default_value_t = 25)]
    port: u16,
    /// Print JSON instead of one line per host.
    #[arg(long)]
    json: bool,
}

/// Runs the subcommand.
pub(crate) fn run(args: Args) -> crate::CmdResult {
    let controls = match &args.destinations {
        // The library's I/O error does not name the file; its syntax errors do.
        Some(path) => DestinationControls::from_file(path).map_err(|e| match e {
            smtp_tls_policy::Error::Io { .. } => format!("{}: {e}", path.display()),
            e => e.to_string(),
        })?,
        None => DestinationControls::builder()
            .default_entry(DestinationEntry::new(
                TlsMode::Preferred,
                ConfiguredDane::Opportunistic,
            ))?
            .build(),
    };
    let policy = controls.lookup(&args.domain)?;
    let mut only = Vec::new();
    for h in &args.mx {
        let name = h.trim_end_matches('.').to_ascii_lowercase();
        if name.is_empty() {
            return Err(format!("--mx {h:?}: not a host name").into());
        }
        only.push(name);
    }
    let live = args.dns.prepare()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let resolver = live.resolver()?;
        let mut errors = Vec::new();
        if let Err(e) = resolver.probe(live.probe_name()).await {
            errors.push(e.to_string());
        }
        let facts = resolver.destination(&policy.domain, args.port).await?;
        let mut actions = facts.actions(policy.dane);
        let lookup_failed = facts.hosts.is_empty() && actions.len() == 1;
        if !only.is_empty() && !lookup_failed {
            let mx: Vec<&str> = facts.hosts.iter().map(|h| h.mx_host.as_str()).collect();
            if let Some(h) = only.iter().find(|h| !mx.contains(&h.as_str())) {
                let listed = if mx.is_empty() {
                    "none".to_owned()
                } else {
                    mx.join(", ")
                };
                return Err(format!(
                    "--mx {h}: not an MX host of {} (MX hosts: {listed})",
                    policy.domain
                )
                .into());
            }
            actions.retain(|(host, _)| only.contains(host));
        }
        if actions.is_empty() {
            errors.push(format!(
                "no MX host to plan: {} has a null MX (RFC 7505) or does not exist",
                policy.domain
            ));
        }
        let mut plans = Vec::new();
        for (host, action) in actions {
            let (host_facts, source) = match facts.hosts.iter().find(|h| h.mx_host == host) {
                // Gap: `DestinationFacts` does not say whether the MX was implicit (RFC 5321
                // §5.1); the domain as its own host is planned as such.
                Some(f) if f.mx_host == facts.domain => (f.clone(), HostSource::ImplicitMx),
                Some(f) => (f.clone(), HostSource::Mx),
                // The MX lookup failed: the destination as a whole (the action defers).
                None => (
                    mx_failure_facts(&facts.domain, facts.mx_status),
                    HostSource::Mx,
                ),
            };
            let options = PlanOptions::new().with_host_source(source);
            plans.push(HopPlan::with_dane_action(
                &policy,
                &host_facts,
                action,
                options,
            ));
        }
        let defers = plans
            .iter()
            .any(|p| matches!(p.pre_connect(), PreConnect::Defer { .. }));
        let authenticated = !defers && plans.iter().any(HopPlan::is_authenticated);
        let error = (!errors.is_empty()).then(|| errors.join("; "));
        if args.json {
            let hosts: Vec<Value> = plans
                .iter()
                .map(|p| json!({"host": p.host(), "plan": p}))
                .collect();
            let out = json!({
                "domain": policy.domain,
                "policy": policy_json(&policy),
                "resolver": live.json(),
                "validation": facts.validation.as_str(),
                "mx_status": facts.mx_status.as_str(),
                "mx_failure": facts.mx_failure.map(|f| format!("{f:?}")),
                "hosts": hosts,
                "authenticated": authenticated,
                "error": error,
            });
            println!("{out}");
        } else {
            for p in &plans {
                println!("{}", text_line(p));
            }
            if let Some(e) = &error {
                println!("{}: {e}", policy.domain);
            }
        }
        Ok(if authenticated {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    })
}

/// The facts standing for the destination when its MX lookup failed: the domain as host,
/// nothing else known (the resolver's action defers it).
fn mx_failure_facts(domain: &str, mx_status: DnssecStatus) -> HostFacts {
    HostFacts {
        next_hop: domain.to_owned(),
        mx_host: domain.to_owned(),
        mx_status,
        address_status: DnssecStatus::Indeterminate,
        tlsa_base: domain.to_owned(),
        tlsa: TlsaLookup::NotQueried,
    }
}

fn policy_json(p: &DestinationPolicy) -> Value {
    let (matched, entry) = match &p.matched {
        DestinationMatch::Exact(k) => ("exact", Some(k.as_str())),
        DestinationMatch::Parent(k) => ("parent", Some(k.as_str())),
        _ => ("default", None),
    };
    let dane = p.dane.as_str();
    json!({"domain": p.domain, "matched": matched, "entry": entry, "tls_mode": p.tls.as_str(),
           "dane": dane})
}

/// `host: connect, requirement R, authentication A, decided by S` or `host: skip-host|defer
/// (code): detail`.
fn text_line(p: &HopPlan) -> String {
    let e = p.explanation();
    let decided_by = serde_json::to_value(e.decided_by).unwrap_or(Value::Null);
    let decided_by = decided_by.as_str().unwrap_or("?");
    match p.pre_connect().hold_reason() {
        None => {
            let auth = serde_json::to_value(e.authentication).unwrap_or(Value::Null);
            format!(
                "{}: connect, requirement {}, authentication {}, SNI {}, decided by {decided_by}",
                p.host(),
                e.requirement.unwrap_or("?"),
                auth.as_str().unwrap_or("?"),
                e.sni.as_deref().unwrap_or("-"),
            )
        }
        Some(reason) => format!(
            "{}: {} ({}): {reason}, decided by {decided_by}",
            p.host(),
            p.pre_connect().as_str(),
            reason.code(),
        ),
    }
}
