//! `smtp-tls-check limbo`: an x509-limbo harness. Reads a suite on standard input and prints the
//! upstream harness JSON (`{"version":1,"harness":"smtp-tls-policy","results":[...]}`).
//!
//! SKIPPED is reported only for features the crate does not implement (see
//! `smtp_tls_policy::limbo`).

use std::io::Read;
use std::process::ExitCode;

use smtp_tls_policy::limbo::{LimboMode, LimboSuite, run_case};

/// Arguments of `smtp-tls-check limbo`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Strict mode: SAN-only names and the CA/Browser Forum chain profile.
    #[arg(long)]
    strict: bool,
}

/// Runs the subcommand.
pub(crate) fn run(args: Args) -> crate::CmdResult {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input)?;
    let suite: LimboSuite = serde_json::from_str(&input)
        .map_err(|e| format!("standard input is not a limbo suite: {e}"))?;
    if suite.version != 1 {
        return Err(format!("unsupported limbo suite version {}", suite.version).into());
    }
    let mode = if args.strict {
        LimboMode::Strict
    } else {
        LimboMode::Default
    };
    let results: Vec<_> = suite
        .testcases
        .iter()
        .map(|case| run_case(case, mode))
        .collect();
    let out = serde_json::json!({"version": 1, "harness": "smtp-tls-policy", "results": results});
    println!("{out}");
    Ok(ExitCode::SUCCESS)
}
