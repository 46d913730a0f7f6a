//! `smtp-tls-check mta-sts`: a domain's MTA-STS policy (RFC 8461), discovered live exactly as
//! the relay does it ([`smtp_tls_policy::mta_sts::discover()`]): the `_mta-sts` TXT record and
//! the policy host's address through `--resolver` (never the system resolver), the policy
//! fetched over HTTPS from `mta-sts.DOMAIN` (`--policy-port`, default 443), checked against
//! `--ca` / `--system-cas` (default: Mozilla's list), and optionally MX hosts checked against it.
//!
//! JSON (`--json`):
//!
//! ```text
//! {"domain": "d" (normalised: lower case, A-labels, no trailing dot),
//!  "status": "valid" | "none" | "fetch-error",
//!  "txt": {"id": "..."} | null,
//!  "policy": {"mode": "enforce"|"testing"|"none", "max_age": N, "mx": ["*.mx.d", ...]} | null,
//!  "mx": [{"host": "mx1.d", "allowed": true}, {"host": "a.b.mx.d", "allowed": false,
//!          "reason": "pattern matches one label; host has two"}],
//!  "error": null | "why",
//!  "cache": {"age_secs", "id", "source", "expires_in_secs"} | null   (only with --cache-dir)}
//! ```
//!
//! `status`: `valid` — the TXT record and the policy are both valid (`mode: none` included);
//! `none` — no valid `v=STSv1` TXT record (none, several, or an invalid one): the domain has no
//! policy; `fetch-error` — a valid TXT record, but the policy could not be fetched or is
//! invalid, or the DNS lookup failed. Exit 0 for `valid`, 1 otherwise, 2 for bad input.

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::{Value, json};
use smtp_tls_policy::mta_sts::{
    CacheEntry, Discovery, DiscoveryOutcome, FilePolicyStore, MemoryPolicyStore, PolicyDomain,
    PolicyStore, StsHostAction, StsTxtOutcome, TxtOutcome, discover,
};

use crate::resolver_args::ResolverArgs;
use crate::sts_args::{StsArgs, unix_now};

/// Arguments of `smtp-tls-check mta-sts`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// The policy domain (the recipient domain).
    domain: String,
    /// An MX host to check against the policy (repeatable): `allowed`, and a `reason` when not.
    #[arg(long = "mx", value_name = "HOST")]
    mx: Vec<String>,
    // `--ca`, `--system-cas`, `--policy-port`, as `policy DOMAIN`.
    #[command(flatten)]
    sts: StsArgs,
    /// Use and update a policy cache in this directory (one JSON file per domain, as the
    /// relay keeps it); adds the `cache` object.
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// With --cache-dir: remove DOMAIN's cached policy (prints what was removed), nothing else.
    #[arg(long, requires = "cache_dir")]
    purge: bool,
    // `--resolver`, `--trust-anchor`, `--probe-name`, as `daneverify DOMAIN`.
    #[command(flatten)]
    dns: ResolverArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs the subcommand.
pub(crate) fn run(args: Args) -> crate::CmdResult {
    let domain = PolicyDomain::parse(&args.domain)
        .map_err(|e| format!("{:?} is not a domain name: {e}", args.domain))?;
    let mut hosts = Vec::new();
    for h in &args.mx {
        let name = PolicyDomain::parse(h).map_err(|e| format!("--mx {h:?}: {e}"))?;
        hosts.push(name.as_str().to_owned());
    }
    let file_store = match &args.cache_dir {
        Some(dir) => Some(FilePolicyStore::open(dir)?),
        None => None,
    };
    if args.purge {
        let store = file_store.as_ref().ok_or("--purge needs --cache-dir")?;
        return purge(store, &domain, args.json);
    }
    let settings = args.sts.fetch_settings()?;
    let live = args.dns.prepare()?;
    let memory = MemoryPolicyStore::new();
    let store: &dyn PolicyStore = match &file_store {
        Some(s) => s,
        None => &memory,
    };
    let now = unix_now();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let discovery = rt.block_on(async {
        let resolver = live.resolver()?;
        Ok::<_, Box<dyn std::error::Error>>(
            discover(&domain, &resolver, store, &settings, now).await,
        )
    })?;
    let cached = file_store.as_ref().map(|s| s.load(&domain));
    let report = report(&discovery, &hosts, cached.as_ref(), now);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_text(&report, &discovery, now);
    }
    Ok(if report["status"] == "valid" {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn purge(store: &FilePolicyStore, domain: &PolicyDomain, json: bool) -> crate::CmdResult {
    // A corrupt entry is removed too; it is reported as removed without content.
    let existed = store.path_of(domain).exists();
    let removed = store.remove(domain)?;
    let id = removed
        .as_ref()
        .and_then(|e| e.policy.as_ref())
        .map(|p| p.id.as_str().to_owned());
    if json {
        let out = json!({
            "domain": domain.as_str(),
            "purged": existed,
            "id": id,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else if existed {
        println!(
            "removed the cached MTA-STS policy of {domain} (id {})",
            id.as_deref().unwrap_or("unknown")
        );
    } else {
        println!("no cached MTA-STS policy for {domain}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The JSON report (the module documentation's format; `policy DOMAIN` shows it too).
pub(crate) fn report<S: AsRef<str>>(
    d: &Discovery,
    hosts: &[S],
    cached: Option<&Option<CacheEntry>>,
    now: u64,
) -> Value {
    let (status, error) = status(d);
    let policy = d.policy.as_ref().map(|c| {
        json!({
            "mode": c.policy.mode.as_str(),
            "max_age": c.policy.max_age,
            "mx": c.policy.mx.iter().map(ToString::to_string).collect::<Vec<_>>(),
        })
    });
    let mx: Vec<Value> = d
        .host_verdicts(hosts)
        .into_iter()
        .map(|v| match &v.action {
            StsHostAction::SkipHost { failure } => {
                json!({"host": v.mx_host, "allowed": false, "reason": failure.detail})
            }
            _ => json!({"host": v.mx_host, "allowed": true}),
        })
        .collect();
    let mut out = json!({
        "domain": d.domain.as_str(),
        "status": status,
        "txt": d.txt.id().map(|id| json!({"id": id.as_str()})),
        "policy": policy,
        "mx": mx,
        "error": error,
    });
    if let Some(cached) = cached {
        out["cache"] = cached
            .as_ref()
            .and_then(|e| e.policy.as_ref())
            .map_or(Value::Null, |p| {
                json!({
                    "age_secs": now.saturating_sub(p.fetched_at),
                    "id": p.id.as_str(),
                    "source": p.source.url,
                    "expires_in_secs": p.expires_at.saturating_sub(now),
                })
            });
    }
    out
}

/// `status` and `error` of the report.
fn status(d: &Discovery) -> (&'static str, Option<String>) {
    match &d.txt {
        StsTxtOutcome::Failed => {
            return (
                "fetch-error",
                Some(format!("the lookup of {} failed", d.domain.txt_name())),
            );
        }
        StsTxtOutcome::Bogus => {
            return (
                "fetch-error",
                Some(format!("{} is DNSSEC-bogus", d.domain.txt_name())),
            );
        }
        StsTxtOutcome::Answer(TxtOutcome::Record(_)) => {}
        StsTxtOutcome::Answer(other) => return ("none", Some(no_record(other))),
        _ => return ("fetch-error", Some("unknown TXT lookup outcome".into())),
    }
    match &d.outcome {
        DiscoveryOutcome::UsedCache { .. }
        | DiscoveryOutcome::Fetched { .. }
        | DiscoveryOutcome::Refreshed
            if d.policy.is_some() =>
        {
            ("valid", None)
        }
        DiscoveryOutcome::FetchFailed { failure }
        | DiscoveryOutcome::FetchFailedKeptCache { failure } => (
            "fetch-error",
            Some(format!(
                "{}: {}",
                failure.kind.result_type(),
                failure.detail
            )),
        ),
        DiscoveryOutcome::NoPolicy { .. } => (
            "fetch-error",
            Some("a recent policy fetch failed; backing off (see the cache)".into()),
        ),
        _ => ("fetch-error", Some("no policy could be established".into())),
    }
}

fn no_record(outcome: &TxtOutcome) -> String {
    match outcome {
        TxtOutcome::SeveralRecords { count } => {
            format!("{count} v=STSv1 TXT records: no policy (RFC 8461 §3.1)")
        }
        TxtOutcome::Invalid { reason } => format!("invalid v=STSv1 TXT record: {reason}"),
        TxtOutcome::TooManyRecords { count } => format!("{count} TXT records: not examined"),
        _ => "no v=STSv1 TXT record".into(),
    }
}

fn print_text(report: &Value, d: &Discovery, now: u64) {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    println!("{}: {}", s(&report["domain"]), s(&report["status"]));
    if let Some(id) = report["txt"]["id"].as_str() {
        println!("  txt id: {id}");
    }
    if let Some(p) = d.policy.as_ref() {
        let mx: Vec<String> = p.policy.mx.iter().map(ToString::to_string).collect();
        println!(
            "  policy: mode {}, max_age {}, mx {}",
            p.policy.mode,
            p.policy.max_age,
            mx.join(", ")
        );
    }
    for h in report["mx"].as_array().into_iter().flatten() {
        let allowed = h["allowed"].as_bool().unwrap_or(false);
        match h["reason"].as_str() {
            Some(r) if !allowed => println!("  mx {}: not allowed ({r})", s(&h["host"])),
            _ => println!("  mx {}: allowed", s(&h["host"])),
        }
    }
    if let Some(e) = report["error"].as_str() {
        println!("  error: {e}");
    }
    if let Some(c) = report.get("cache").filter(|c| !c.is_null()) {
        println!(
            "  cache: id {}, age {} s, expires in {} s, from {}",
            s(&c["id"]),
            c["age_secs"],
            c["expires_in_secs"],
            s(&c["source"])
        );
    }
    if matches!(
        d.outcome,
        DiscoveryOutcome::Fetched { .. } | DiscoveryOutcome::Refreshed
    ) && let Some(id) = d.txt.id()
    {
        println!(
            "  TXT record (published): {}. IN TXT \"v=STSv1; id={id}\"",
            d.domain.txt_name()
        );
        println!(
            "  after changing the policy, publish a new id, e.g.: {}. IN TXT \"v=STSv1; id={}\"",
            d.domain.txt_name(),
            new_id(now)
        );
    }
}

/// A fresh `id` (1-32 alphanumerics) from the time: `YYYYMMDDTHHMMSS`.
fn new_id(now: u64) -> String {
    let t = i64::try_from(now)
        .ok()
        .and_then(|n| time::OffsetDateTime::from_unix_timestamp(n).ok())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}
