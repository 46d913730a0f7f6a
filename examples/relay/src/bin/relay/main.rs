//! `relay`: the example SMTP relay composing hat-match, smtp-tls-policy, dane-verify and
//! cert-store (see `examples/relay/README.md`).
//!
//! ```text
//! relay [--config FILE] [--listen ADDR] [--log-format text|json]
//! relay --check-config FILE [--json]
//! relay --config FILE --mta-sts-show DOMAIN | --mta-sts-purge DOMAIN
//! ```
//!
//! Exit status: 0 normal end (SIGTERM/SIGINT) or valid configuration; 2 bad configuration or
//! start-up failure.
#![forbid(unsafe_code)]

mod mta_sts_admin;
mod run;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use relay::config::{self, LogFormat, RelayConfig};

/// The example relay: listeners with a Host Access Table and STARTTLS, a durable spool, and
/// delivery with per-destination TLS policy and DANE.
#[derive(Debug, Parser)]
#[command(name = "relay", version)]
struct Cli {
    /// Configuration file (TOML). Without it, the embedded default configuration is used
    /// (written to ./relay-data/default-config/).
    #[arg(long, value_name = "FILE", conflicts_with = "check_config")]
    config: Option<PathBuf>,
    /// Validate FILE, print the effective configuration and exit.
    #[arg(long, value_name = "FILE")]
    check_config: Option<PathBuf>,
    /// With --check-config: print JSON instead of TOML.
    #[arg(long, requires = "check_config")]
    json: bool,
    /// Log format (overrides `[log] format`).
    #[arg(long, value_enum)]
    log_format: Option<LogFormatArg>,
    /// Listen on ADDR instead of the first listener's address (tests, ports in use).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Print the cached MTA-STS policy entry of DOMAIN (delivery.mta_sts.cache_dir of
    /// --config) as JSON and exit (1: nothing cached).
    #[arg(
        long,
        value_name = "DOMAIN",
        requires = "config",
        conflicts_with = "mta_sts_purge"
    )]
    mta_sts_show: Option<String>,
    /// Remove the cached MTA-STS policy entry of DOMAIN (the next delivery fetches it again),
    /// print what was removed and exit (1: nothing cached).
    #[arg(long, value_name = "DOMAIN", requires = "config")]
    mta_sts_purge: Option<String>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(file) = &cli.check_config {
        return check(file, cli.json);
    }
    let file = match &cli.config {
        Some(f) => f.clone(),
        None => match config::write_default(Path::new(config::DEFAULT_CONFIG_DIR)) {
            Ok(f) => f,
            Err(e) => {
                eprintln!(
                    "error: cannot write the default configuration to {}: {e}",
                    config::DEFAULT_CONFIG_DIR
                );
                return ExitCode::from(2);
            }
        },
    };
    let mut config = match RelayConfig::load(&file) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(domain) = &cli.mta_sts_show {
        return mta_sts_admin::run(&config, mta_sts_admin::Action::Show, domain);
    }
    if let Some(domain) = &cli.mta_sts_purge {
        return mta_sts_admin::run(&config, mta_sts_admin::Action::Purge, domain);
    }
    if let Some(addr) = cli.listen {
        config.listeners[0].address = addr;
    }
    let format = match cli.log_format {
        Some(LogFormatArg::Json) => LogFormat::Json,
        Some(LogFormatArg::Text) => LogFormat::Text,
        None => config.log.format,
    };
    init_logs(format, &config.log.filter);
    if cli.config.is_none() {
        tracing::info!(
            dir = config::DEFAULT_CONFIG_DIR,
            "no --config: running the embedded default configuration"
        );
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "relay stopped");
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn check(file: &Path, json: bool) -> ExitCode {
    let config = match RelayConfig::load(file) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = run::check_certificates(&config) {
        eprintln!("error: {}: {e}", file.display());
        return ExitCode::from(2);
    }
    let eff = config.effective();
    let out = if json {
        eff.to_json().map_err(|e| e.to_string())
    } else {
        eff.to_toml().map_err(|e| e.to_string())
    };
    match out {
        Ok(text) => {
            println!("{text}");
            eprintln!("{}: configuration OK", file.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: cannot print the configuration: {e}");
            ExitCode::from(2)
        }
    }
}

fn init_logs(format: LogFormat, filter: &str) {
    use tracing_subscriber::EnvFilter;
    let spec = std::env::var(EnvFilter::DEFAULT_ENV)
        .ok()
        .filter(|s| EnvFilter::try_new(s).is_ok())
        .unwrap_or_else(|| filter.to_owned());
    let mut filter = EnvFilter::try_new(&spec).unwrap_or_else(|_| EnvFilter::new("info"));
    // Like Postfix's maillog: one INFO line per connection (`relay::connection`, "disconnect")
    // and one per message. That line carries the STARTTLS gate's events (530 replies, closed
    // without recipients, discarded pipelining), so the session's own per-event lines are kept
    // for DEBUG: unless the filter names smtp_tls_policy or asks for DEBUG, only its errors.
    let at_most_info = filter
        .max_level_hint()
        .is_some_and(|l| l <= tracing::level_filters::LevelFilter::INFO);
    if at_most_info
        && !spec.contains("smtp_tls_policy")
        && let Ok(d) = "smtp_tls_policy::io::server=error".parse()
    {
        filter = filter.add_directive(d);
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Json => builder.json().init(),
        _ => builder.init(),
    }
}
