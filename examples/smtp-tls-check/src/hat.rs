//! `smtp-tls-check hat`: match a client against a Host Access Table and print the verdict.
//!
//! ```text
//! smtp-tls-check hat --config FILE --ip ADDR [--ptr NAME=ADDR[,ADDR...]]... [--dnslist ZONE]... [--json]
//! ```
//! `--ptr` gives a PTR name of the client and the addresses its forward lookup returned (write
//! `NAME=` when the forward lookup returned nothing); `--dnslist` names a DNS-list zone whose
//! query for the client answered. Exit status 0 when a verdict was reached (also "no sender
//! group matched"), 2 on bad input.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use hat_match::{Fact, Facts, HatVerdict, HostAccessTable};
use serde::Serialize;

/// Arguments of `smtp-tls-check hat`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Host Access Table configuration (TOML: `[[mail_flow_policy]]`, `[[sender_group]]`).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// The connecting client's IP address.
    #[arg(long, value_name = "ADDR")]
    ip: IpAddr,
    /// A PTR name of the client and the addresses its forward (A/AAAA) lookup returned.
    #[arg(long = "ptr", value_name = "NAME=ADDR[,ADDR...]")]
    ptr: Vec<String>,
    /// A DNS-list zone whose query for the client answered.
    #[arg(long = "dnslist", value_name = "ZONE")]
    dnslist: Vec<String>,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    json: bool,
}

/// A bad `--ptr` argument.
#[derive(Debug, thiserror::Error)]
enum ArgError {
    #[error("--ptr `{0}`: expected NAME=ADDR[,ADDR...]")]
    PtrSyntax(String),
    #[error("--ptr `{arg}`: `{addr}` is not an IP address")]
    PtrAddress { arg: String, addr: String },
}

/// The JSON printed: the six contract keys first, then details.
#[derive(Serialize)]
struct Output<'a> {
    sender_group: Option<&'a str>,
    order: Option<u32>,
    matched_entry: Option<&'a str>,
    policy: Option<&'a str>,
    behavior: &'static str,
    tls: Option<&'static str>,
    outcome: &'static str,
    continued: Vec<Continued<'a>>,
    limits: Option<LimitsOut>,
    banner: Option<&'a str>,
    facts_not_needed: Vec<String>,
    client: Client<'a>,
}

#[derive(Serialize)]
struct Continued<'a> {
    sender_group: &'a str,
    order: u32,
    matched_entry: &'a str,
    policy: &'a str,
}

#[derive(Serialize)]
struct LimitsOut {
    max_message_size: Option<u64>,
    max_recipients_per_message: Option<u32>,
    max_messages_per_connection: Option<u32>,
    max_concurrent_connections_per_ip: Option<u32>,
}

#[derive(Serialize)]
struct Client<'a> {
    ip: IpAddr,
    confirmed_ptr_names: Vec<&'a str>,
    dnslists: Vec<&'a str>,
}

fn parse_ptr(arg: &str) -> Result<(&str, Vec<IpAddr>), ArgError> {
    let (name, addrs) = arg
        .split_once('=')
        .ok_or_else(|| ArgError::PtrSyntax(arg.to_owned()))?;
    let addrs = addrs
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|a| {
            a.parse().map_err(|_| ArgError::PtrAddress {
                arg: arg.to_owned(),
                addr: a.to_owned(),
            })
        })
        .collect::<Result<_, _>>()?;
    Ok((name, addrs))
}

fn fact_name(fact: Fact<'_>) -> String {
    match fact {
        Fact::Ptr => "ptr".to_owned(),
        Fact::DnsList(zone) => format!("dnslist:{zone}"),
        _ => "other".to_owned(),
    }
}

fn output<'a>(verdict: &HatVerdict<'a>, facts: &'a Facts) -> Output<'a> {
    let policy = verdict.policy();
    Output {
        sender_group: verdict.sender_group(),
        order: verdict.order(),
        matched_entry: verdict.matched_entry().map(|e| e.as_str()),
        policy: policy.map(|p| p.name()),
        behavior: verdict.behavior().as_str(),
        tls: verdict.tls().map(|t| t.as_str()),
        outcome: if verdict.matched().is_some() {
            "matched"
        } else {
            "no-sender-group-matched"
        },
        continued: verdict
            .continued()
            .iter()
            .map(|m| Continued {
                sender_group: m.group().name(),
                order: m.group().order(),
                matched_entry: m.entry().as_str(),
                policy: m.policy().name(),
            })
            .collect(),
        limits: policy.map(|p| {
            let l = p.limits();
            LimitsOut {
                max_message_size: l.max_message_size.map(|v| v.get()),
                max_recipients_per_message: l.max_recipients_per_message.map(|v| v.get()),
                max_messages_per_connection: l.max_messages_per_connection.map(|v| v.get()),
                max_concurrent_connections_per_ip: l
                    .max_concurrent_connections_per_ip
                    .map(|v| v.get()),
            }
        }),
        banner: policy.and_then(|p| p.banner()),
        facts_not_needed: verdict.facts_not_needed().map(fact_name).collect(),
        client: Client {
            ip: facts.ip(),
            confirmed_ptr_names: facts.confirmed_names().collect(),
            dnslists: facts.dnslists().collect(),
        },
    }
}

fn summary(out: &Output<'_>) -> String {
    let mut s = match (out.sender_group, out.order, out.matched_entry, out.policy) {
        (Some(group), Some(order), Some(entry), Some(policy)) => format!(
            "{}: sender group {group} (order {order}) matched by `{entry}`\n\
             policy {policy}: behavior {}, tls {}\n",
            out.client.ip,
            out.behavior,
            out.tls.unwrap_or("no"),
        ),
        _ => format!(
            "{}: no sender group matched; behavior {} (fail closed)\n",
            out.client.ip, out.behavior
        ),
    };
    for c in &out.continued {
        s += &format!(
            "also matched continue group {} (order {}) by `{}`\n",
            c.sender_group, c.order, c.matched_entry
        );
    }
    if !out.facts_not_needed.is_empty() {
        s += &format!("facts not needed: {}\n", out.facts_not_needed.join(", "));
    }
    s
}

/// Runs the subcommand.
pub(crate) fn run(args: Args) -> crate::CmdResult {
    let table = HostAccessTable::from_file(&args.config)?;
    let mut facts = Facts::new(args.ip);
    for arg in &args.ptr {
        let (name, addrs) = parse_ptr(arg)?;
        facts.add_ptr(name, addrs)?;
    }
    for zone in &args.dnslist {
        facts.add_dnslist(zone)?;
    }
    let verdict = table.matches(&facts);
    let out = output(&verdict, &facts);
    if args.json {
        println!("{}", serde_json::to_string(&out)?);
    } else {
        print!("{}", summary(&out));
    }
    Ok(ExitCode::SUCCESS)
}
