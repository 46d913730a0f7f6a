//! `smtp-tls-check`: an administrator's tool for the smtp-tls-policy crates, in the spirit of
//! Cisco's `tlsverify` / `daneverify` and Postfix's `posttls-finger`.
//!
//! Exit status (every subcommand): `0` the check ran and its verdict is positive (or, for `hat`,
//! a verdict was reached); `1` the check ran and its verdict is negative (the JSON is still
//! printed); `2` bad input or usage (a message on standard error, no JSON).
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod certs;
mod daneverify;
mod hat;
mod limbo;
mod mta_sts;
mod policy;
mod resolver_args;
mod sts_args;
mod tlsrpt;
mod tlsverify;

/// What a subcommand returns: the exit status, or an error printed as `error: ...` (status 2).
type CmdResult = Result<ExitCode, Box<dyn std::error::Error>>;

#[derive(Parser)]
#[command(
    name = "smtp-tls-check",
    version,
    about = "Check SMTP TLS policy decisions offline and live"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Match a client against a Host Access Table (sender groups -> mail flow policy).
    Hat(hat::Args),
    /// Verify a receiving MTA's certificate chain for a destination (offline or live).
    Tlsverify(tlsverify::Args),
    /// Run an x509-limbo test suite (read on standard input) through the verifier.
    Limbo(limbo::Args),
    /// Match a certificate chain against TLSA records, or check a domain's DANE live.
    Daneverify(daneverify::Args),
    /// Print the hop plan (TLS requirement, reference identities, why) for each MX host of a
    /// domain, from live DNS and the domain's MTA-STS policy, without connecting to the hosts.
    Policy(policy::Args),
    /// Manage the certificate store: certificates, keys, CSRs, PKCS#12, CA lists.
    Certs(certs::Args),
    /// Read received SMTP TLS reports (RFC 8460): summarize them per policy domain and day.
    Tlsrpt(tlsrpt::Args),
    /// Discover a domain's MTA-STS policy (RFC 8461) live and check MX hosts against it.
    ///
    /// The `_mta-sts` TXT record and the address of `mta-sts.DOMAIN` are looked up through
    /// --resolver (never the system resolver); the policy is fetched over HTTPS on
    /// --policy-port (default 443) and its certificate checked against --ca / --system-cas
    /// (neither: Mozilla's list). With --json:
    /// {"domain", "status", "txt": {"id"}, "policy": {"mode", "max_age", "mx": [..]},
    /// "mx": [{"host", "allowed", "reason" (when not allowed)}], "error"}, plus
    /// "cache": {"age_secs", "id", "source", "expires_in_secs"} with --cache-dir; absent parts
    /// are null. status: "valid" (TXT record and policy both valid, mode none included),
    /// "none" (no valid v=STSv1 TXT record: no policy), "fetch-error" (valid TXT record but the
    /// policy could not be fetched or is invalid, or the DNS lookup failed). --cache-dir DIR
    /// uses and updates the relay's cache format; --purge removes DOMAIN's cached policy (for
    /// a policy changed without a new id). Without --json, the TXT record to publish is
    /// printed when a policy was fetched. Exit 0 valid, 1 otherwise, 2 bad input.
    #[command(name = "mta-sts", verbatim_doc_comment)]
    MtaSts(mta_sts::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Hat(args) => hat::run(args),
        Command::Tlsverify(args) => tlsverify::run(args),
        Command::Limbo(args) => limbo::run(args),
        Command::Daneverify(args) => daneverify::run(args),
        Command::Policy(args) => policy::run(args),
        Command::Certs(args) => certs::run(args),
        Command::Tlsrpt(args) => tlsrpt::run(args),
        Command::MtaSts(args) => mta_sts::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(2)
        }
    }
}
