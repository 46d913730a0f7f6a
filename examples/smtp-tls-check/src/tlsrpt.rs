//! `smtp-tls-check tlsrpt`: read received SMTP TLS reports (RFC 8460).
//!
//! ```text
//! smtp-tls-check tlsrpt summarize FILE... [--json]
//! ```
//! Each FILE is one report: JSON, gzip, or a whole report e-mail (as saved from a mailbox). The
//! summary is per policy domain and UTC day (the day the report period starts): successes,
//! failures, failures by result type and by receiving MX host. Exit status 0 when no report
//! counts a failure, 1 when one does, 2 when a file is unreadable or not a report.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::Serialize;
use smtp_tls_policy::tlsrpt::{DomainDay, MAX_REPORT_SIZE, ReportReader, Summary};

/// The shape of `--json`, shown in `--help`.
const JSON_HELP: &str = "\
JSON (--json), one object on one line:
  {\"reports\": N,
   \"domains\": [{\"policy_domain\": \"example.com\" | null, \"day\": \"YYYY-MM-DD\",
                \"successes\": N, \"failures\": N,
                \"failures_by_type\": {\"<result-type>\": N, ...},
                \"failures_by_mx\": {\"<mx host>\" | \"(unknown)\": N, ...}}, ...]}
domains are ordered by policy domain (null first), then day. failures sums the reports'
total-failure-session-count; failures_by_type and failures_by_mx sum failed-session-count of the
failure-details entries, which may overlap (RFC 8460 4.4) and need not add up to failures.

Exit status: 0 no failure reported; 1 a failure reported (failures or a failure-details entry);
2 a file unreadable or not a report (message on standard error, no JSON).";

/// Arguments of `smtp-tls-check tlsrpt`.
#[derive(clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(clap::Subcommand)]
enum Cmd {
    /// Summarize reports per policy domain and day: successes, failures by result type and by
    /// receiving MX.
    #[command(after_help = JSON_HELP)]
    Summarize {
        /// Report files: JSON, gzip, or a whole report message (MIME).
        #[arg(value_name = "FILE", required = true)]
        files: Vec<PathBuf>,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Serialize)]
struct Output<'a> {
    reports: usize,
    domains: Vec<DomainOut<'a>>,
}

#[derive(Serialize)]
struct DomainOut<'a> {
    policy_domain: Option<&'a str>,
    day: String,
    successes: u64,
    failures: u64,
    failures_by_type: &'a std::collections::BTreeMap<String, u64>,
    failures_by_mx: &'a std::collections::BTreeMap<String, u64>,
}

impl<'a> From<&'a DomainDay> for DomainOut<'a> {
    fn from(d: &'a DomainDay) -> Self {
        Self {
            policy_domain: d.policy_domain.as_deref(),
            day: d.day.to_string(),
            successes: d.successes,
            failures: d.failures,
            failures_by_type: &d.failures_by_type,
            failures_by_mx: &d.failures_by_mx,
        }
    }
}

/// Runs the subcommand.
pub(crate) fn run(args: Args) -> crate::CmdResult {
    match args.command {
        Cmd::Summarize { files, json } => summarize(&files, json),
    }
}

fn summarize(files: &[PathBuf], json: bool) -> crate::CmdResult {
    let reader = ReportReader::new();
    let mut summary = Summary::new();
    for file in files {
        let bytes = read_bounded(file)?;
        let report = reader
            .read(&bytes)
            .map_err(|e| format!("{}: {e}", file.display()))?;
        summary.add(&report);
    }
    if json {
        let out = Output {
            reports: summary.reports(),
            domains: summary.domains().map(DomainOut::from).collect(),
        };
        println!("{}", serde_json::to_string(&out)?);
    } else {
        print_table(&summary);
    }
    Ok(if summary.has_failures() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The file's bytes, at most one byte past the reader's limit (which then refuses them).
fn read_bounded(path: &Path) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    let cap = u64::try_from(MAX_REPORT_SIZE).unwrap_or(u64::MAX) + 1;
    std::fs::File::open(path)
        .and_then(|f| f.take(cap).read_to_end(&mut bytes))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(bytes)
}

fn print_table(summary: &Summary) {
    println!("{} report(s)", summary.reports());
    for d in summary.domains() {
        println!(
            "{}  {}  successes {}  failures {}",
            d.day,
            d.policy_domain.as_deref().unwrap_or("(no policy domain)"),
            d.successes,
            d.failures
        );
        if !d.failures_by_type.is_empty() {
            println!("    by type: {}", join(&d.failures_by_type));
            println!("    by MX:   {}", join(&d.failures_by_mx));
        }
    }
}

fn join(counts: &std::collections::BTreeMap<String, u64>) -> String {
    counts
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}
