//! `smtp-tls-check certs` (scaffold: replaced by the issue that builds it).

use std::process::ExitCode;

/// Arguments of `smtp-tls-check certs`.
#[derive(clap::Args)]
pub(crate) struct Args {}

/// Runs the subcommand.
pub(crate) fn run(_args: Args) -> crate::CmdResult {
    Err("this subcommand is not built yet".into())
}
