//! `smtp-load`: an SMTP load generator (N connections × M messages, concurrency C, size S,
//! plaintext / STARTTLS / implicit TLS) and, with `smtp-load sink`, a counting SMTP sink.
//!
//! Exit status: `0` every message got `250` (sink: clean shutdown); `1` some message or
//! connection failed (the summary is still printed); `2` bad usage.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod client;
mod load;
mod sink;
mod tls;

#[derive(Parser)]
#[command(
    name = "smtp-load",
    version,
    about = "SMTP load generator and counting sink"
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    load: load::Args,
}

#[derive(Subcommand)]
enum Command {
    /// Run a counting SMTP sink (optionally offering STARTTLS).
    Sink(sink::Args),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Sink(args)) => sink::run(args).await,
        None => load::run(cli.load).await,
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(2)
        }
    }
}
