//! `smtp-tls-check policy`: the hop plan ([`smtp_tls_policy::HopPlan`]) for each MX host of a
//! domain, from live DNS, without connecting.
//!
//! `policy DOMAIN [--mx HOST]... [--destinations FILE] [--resolver ADDR:PORT]
//! [--trust-anchor FILE] [--probe-name NAME] [--port 25] [--ca FILE]... [--system-cas]
//! [--policy-port 443] [--json]`:
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
//!    gives one plan for DOMAIN itself, deferred (`mx-lookup`);
//! 4. DOMAIN's MTA-STS policy (RFC 8461), discovered as `mta-sts DOMAIN` does it
//!    ([`smtp_tls_policy::mta_sts::discover()`] through the same resolver, the policy host
//!    trusted per `--ca` / `--system-cas`, on `--policy-port`; no cache kept), applied as the
//!    relay applies it: each host's `StsHostVerdict` under DOMAIN's own policy goes into its
//!    plan (`HopPlan::with_mta_sts`), which shows it as a source (`mta_sts`: mode, policy id,
//!    the host against the `mx` patterns with each pattern's reason, `decided_by: "mta-sts"`
//!    when it decides). A failed TXT lookup or policy fetch with nothing cached: no verdict,
//!    delivered as without a policy (RFC 8461 §5); a DNSSEC-bogus TXT answer: the destination
//!    defers. A destination control with `mta_sts = "ignore"`: the verdict is given and the
//!    plan says it is ignored ("mta-sts ignored by destination control ENTRY").
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
//!             "decided_by", "rules", "mta_sts": {"policy_id", "mode", "mx_match", "action",
//!             "pkix_required", "reason", "ignored_by", "failure"} (when given a verdict),
//!             ...>}],
//!  "authenticated": true|false,
//!  "error": null|"why the plans are incomplete: the validation probe failed, no MX host,
//!           the MTA-STS TXT answer is DNSSEC-bogus",
//!  "mta_sts": {the `mta-sts DOMAIN --mx HOST...` report: "domain", "status", "txt",
//!              "policy", "mx", "error"; and "applied": whether the plans were given the
//!              verdicts (false: ignored, or nothing to apply), "ignored_by": the
//!              destination-control entry saying `mta_sts = "ignore"` | null,
//!              "note": what the relay does with it}}
//! ```
//!
//! `authenticated` (exit 0): no plan defers the destination (nor does MTA-STS) and at least one
//! host may be connected to with an authenticated requirement (DANE, PKIX under
//! `required-verify*`, or PKIX required by MTA-STS `enforce`: [`HopPlan::is_authenticated`]).
//! Exit 1 when delivery would defer or go unauthenticated; 2 on bad input (arguments, an
//! unreadable or invalid file, an invalid domain, `--mx` not an MX host).

use std::path::PathBuf;
use std::process::ExitCode;

use dane_verify::DnssecStatus;
use dane_verify::{HostFacts, TlsaLookup};
use serde_json::{Value, json};
use smtp_tls_policy::destination::{
    ConfiguredDane, DestinationControls, DestinationEntry, DestinationMatch, DestinationPolicy,
    MtaStsSetting, TlsMode,
};
use smtp_tls_policy::mta_sts::{
    Discovery, DiscoveryOutcome, MemoryPolicyStore, PolicyDomain, TemporaryReason, discover,
};
use smtp_tls_policy::plan::HostSource;
use smtp_tls_policy::{HopPlan, PlanOptions, PreConnect};

use crate::resolver_args::ResolverArgs;
use crate::sts_args::{StsArgs, unix_now};

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
    // MTA-STS: `--ca`, `--system-cas`, `--policy-port`, as `mta-sts DOMAIN`.
    #[command(flatten)]
    sts: StsArgs,
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
    let settings = args.sts.fetch_settings()?;
    let sts_domain = PolicyDomain::parse(&policy.domain);
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
        // This domain's MTA-STS policy, before any host is planned: each MX host gets its
        // verdict from this domain's policy only (never another domain's, KumoMTA #484).
        let now = unix_now();
        let discovery = match &sts_domain {
            Ok(d) => Some(discover(d, &resolver, &MemoryPolicyStore::new(), &settings, now).await),
            Err(_) => None,
        };
        let sts = StsUse::of(&policy, discovery.as_ref());
        if let Some(why) = &sts.defers {
            errors.push(why.clone());
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
            let plan = HopPlan::with_dane_action(&policy, &host_facts, action, options);
            plans.push(match discovery.as_ref().filter(|_| sts.verdicts) {
                Some(d) => match d.host_verdicts(&[host.as_str()]).pop() {
                    Some(v) => plan.with_mta_sts(v),
                    None => plan,
                },
                None => plan,
            });
        }
        let defers = sts.defers.is_some()
            || plans
                .iter()
                .any(|p| matches!(p.pre_connect(), PreConnect::Defer { .. }));
        let authenticated = !defers && plans.iter().any(HopPlan::is_authenticated);
        let hosts: Vec<&str> = plans.iter().map(HopPlan::host).collect();
        let sts_report = sts.json(&policy, discovery.as_ref(), &sts_domain, &hosts, now);
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
                "mta_sts": sts_report,
            });
            println!("{out}");
        } else {
            for p in &plans {
                println!("{}", text_line(p));
            }
            // Only when there is something to say (a record, a failure, or ignored).
            if sts_report["status"] != "none" || !sts_report["ignored_by"].is_null() {
                println!("{}", sts_text_line(&sts_report));
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

/// What the plans get from the MTA-STS discovery, as the relay decides it
/// (`examples/relay/src/outbound/sts.rs`).
struct StsUse {
    /// The plans are given each host's verdict.
    verdicts: bool,
    /// The destination defers (a DNSSEC-bogus TXT answer, nothing cached): why.
    defers: Option<String>,
    /// The destination-control entry saying `mta_sts = "ignore"`.
    ignored_by: Option<String>,
    /// What is done with the discovery, for humans.
    note: String,
}

impl StsUse {
    fn of(policy: &DestinationPolicy, d: Option<&Discovery>) -> Self {
        let mut u = Self {
            verdicts: false,
            defers: None,
            ignored_by: None,
            note: String::new(),
        };
        let Some(d) = d else {
            u.note = "not a policy domain: MTA-STS does not apply".into();
            return u;
        };
        if policy.mta_sts == MtaStsSetting::Ignore {
            let entry = entry_name(policy);
            u.note = format!(
                "ignored: destination control {entry} says mta_sts = \"ignore\"; the plans \
                 say so and apply only the local setting and DANE"
            );
            // The plans say "mta-sts ignored by destination control ENTRY" themselves.
            u.verdicts = true;
            u.ignored_by = Some(entry);
            return u;
        }
        let txt = d.domain.txt_name();
        u.note = match &d.outcome {
            DiscoveryOutcome::TemporaryFailure {
                reason: TemporaryReason::Bogus,
            } => {
                let why = format!(
                    "MTA-STS: the {txt} TXT answer is DNSSEC-bogus and no policy is cached: \
                     the destination defers"
                );
                u.defers = Some(why.clone());
                why
            }
            DiscoveryOutcome::TemporaryFailure { .. } => format!(
                "the {txt} TXT lookup failed and no policy is cached: delivered as without a \
                 policy (RFC 8461 5)"
            ),
            DiscoveryOutcome::FetchFailed { .. } => {
                "the policy fetch failed and no policy is cached: delivered as without a policy \
                 (RFC 8461 5)"
                    .into()
            }
            DiscoveryOutcome::NoPolicy { .. } => {
                u.verdicts = true;
                "no policy: MTA-STS constrains nothing".into()
            }
            _ => {
                u.verdicts = true;
                match (d.policy.as_ref(), d.failure()) {
                    (Some(c), Some(_)) => format!(
                        "the policy fetch failed; the cached policy (mode {}, id {}) applies",
                        c.policy.mode,
                        c.id.as_str()
                    ),
                    (Some(c), None) => format!(
                        "the policy (mode {}, id {}) applies to each MX host",
                        c.policy.mode,
                        c.id.as_str()
                    ),
                    (None, _) => "no policy: MTA-STS constrains nothing".into(),
                }
            }
        };
        u
    }

    /// The `mta-sts DOMAIN --mx HOST...` report with `applied`, `ignored_by` and `note`.
    fn json(
        &self,
        policy: &DestinationPolicy,
        d: Option<&Discovery>,
        parsed: &Result<PolicyDomain, impl std::fmt::Display>,
        hosts: &[&str],
        now: u64,
    ) -> Value {
        let mut out = match (d, parsed) {
            (Some(d), _) => crate::mta_sts::report(d, hosts, None, now),
            (None, Err(e)) => json!({"domain": policy.domain, "status": "none", "txt": null,
                "policy": null, "mx": [], "error": format!("not a policy domain: {e}")}),
            (None, Ok(_)) => json!({"domain": policy.domain, "status": "none", "txt": null,
                "policy": null, "mx": [], "error": null}),
        };
        out["applied"] = json!(self.verdicts && self.ignored_by.is_none());
        out["ignored_by"] = json!(self.ignored_by);
        out["note"] = json!(self.note);
        out
    }
}

/// The destination-control entry that matched (`default` for the default entry).
fn entry_name(p: &DestinationPolicy) -> String {
    match &p.matched {
        DestinationMatch::Exact(k) | DestinationMatch::Parent(k) => k.clone(),
        _ => "default".into(),
    }
}

/// `domain: MTA-STS status[, mode M, id I]: note`.
fn sts_text_line(r: &Value) -> String {
    let s = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    let mut line = format!("{}: MTA-STS {}", s(&r["domain"]), s(&r["status"]));
    if let Some(mode) = r["policy"]["mode"].as_str() {
        line.push_str(&format!(", mode {mode}"));
    }
    if let Some(id) = r["txt"]["id"].as_str() {
        line.push_str(&format!(", id {id}"));
    }
    if let Some(e) = r["error"].as_str() {
        line.push_str(&format!(" ({e})"));
    }
    format!("{line}: {}", s(&r["note"]))
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
