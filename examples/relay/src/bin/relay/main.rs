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
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match format {
        LogFormat::Json => builder.json().init(),
        _ if ansi => builder.init(),
        // Files and journals: the same text, without the per-field styling calls.
        _ => builder.fmt_fields(text_fields::PlainFields).init(),
    }
}

/// The text format's fields as tracing-subscriber's default formatter writes them without
/// colours (`name=value` separated by spaces, the message first and unnamed, `log.*` metadata
/// skipped, `r#` stripped, ANSI and C1 control characters in messages and errors escaped),
/// but without routing every field name and `=` through its styling code, which costs a few
/// hundred instructions per field even when colours are off (issue 15: the connection line
/// has up to 28 fields). The test `same_text_as_the_default_formatter` pins the equivalence.
mod text_fields {
    use std::fmt::{self, Write as _};

    use tracing::field::{Field, Visit};
    use tracing_subscriber::field::RecordFields;
    use tracing_subscriber::fmt::FormatFields;
    use tracing_subscriber::fmt::format::Writer;

    /// See the module documentation.
    #[derive(Debug, Clone, Copy, Default)]
    pub(crate) struct PlainFields;

    impl<'w> FormatFields<'w> for PlainFields {
        fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
            let mut v = Visitor {
                writer,
                empty: true,
                result: Ok(()),
            };
            fields.record(&mut v);
            v.result
        }
    }

    struct Visitor<'w> {
        writer: Writer<'w>,
        empty: bool,
        result: fmt::Result,
    }

    impl Visit for Visitor<'_> {
        fn record_str(&mut self, field: &Field, value: &str) {
            if field.name() == "message" {
                self.record_debug(field, &format_args!("{value}"));
            } else {
                self.record_debug(field, &value);
            }
        }

        fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
            let text = Escaped(format_args!("{value}"));
            match value.source() {
                Some(source) => self.record_debug(
                    field,
                    &format_args!("{text} {}.sources={}", field.name(), Sources(source)),
                ),
                None => self.record_debug(field, &format_args!("{text}")),
            }
        }

        fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
            if self.result.is_err() {
                return;
            }
            let name = field.name();
            if name.starts_with("log.") {
                return;
            }
            if self.empty {
                self.empty = false;
            } else {
                self.result = self.writer.write_char(' ');
            }
            self.result = match name {
                "message" => write!(self.writer, "{:?}", Escaped(value)),
                name => write!(
                    self.writer,
                    "{}={value:?}",
                    name.strip_prefix("r#").unwrap_or(name)
                ),
            };
        }
    }

    /// An error's sources, as a list (like tracing-subscriber's `name.sources=[..]`).
    struct Sources<'a>(&'a (dyn std::error::Error + 'static));

    impl fmt::Display for Sources<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            let mut list = f.debug_list();
            let mut next = Some(self.0);
            while let Some(e) = next {
                list.entry(&Escaped(format_args!("{e}")));
                next = e.source();
            }
            list.finish()
        }
    }

    /// Formats `T` with ANSI (ESC, BEL, BS, FF, DEL) and C1 control characters escaped, as
    /// tracing-subscriber does for messages (no terminal injection through logged text).
    struct Escaped<T>(T);

    impl<T: fmt::Debug> fmt::Debug for Escaped<T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(EscapingWriter(f), "{:?}", self.0)
        }
    }

    impl<T: fmt::Display> fmt::Display for Escaped<T> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(EscapingWriter(f), "{}", self.0)
        }
    }

    struct EscapingWriter<'a, 'b>(&'a mut fmt::Formatter<'b>);

    impl fmt::Write for EscapingWriter<'_, '_> {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            if !s.chars().any(needs_escape) {
                return self.0.write_str(s);
            }
            for c in s.chars() {
                match c {
                    '\x1b' => self.0.write_str("\\x1b")?,
                    '\x07' => self.0.write_str("\\x07")?,
                    '\x08' => self.0.write_str("\\x08")?,
                    '\x0c' => self.0.write_str("\\x0c")?,
                    '\x7f' => self.0.write_str("\\x7f")?,
                    c if ('\u{80}'..='\u{9f}').contains(&c) => {
                        write!(self.0, "\\u{{{:x}}}", c as u32)?;
                    }
                    c => self.0.write_char(c)?,
                }
            }
            Ok(())
        }
    }

    fn needs_escape(c: char) -> bool {
        matches!(
            c,
            '\x1b' | '\x07' | '\x08' | '\x0c' | '\x7f' | '\u{80}'..='\u{9f}'
        )
    }

    #[cfg(test)]
    mod tests {
        use std::sync::{Arc, Mutex};

        use super::PlainFields;

        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);

        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }

        #[derive(Debug)]
        struct Outer(std::io::Error);

        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("outer \x1b[2Jfailure")
            }
        }

        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }

        fn events() {
            let peer: std::net::SocketAddr = "192.0.2.1:25".parse().unwrap();
            let span = tracing::info_span!("conn", listener = "in\x1b", %peer, n = 3);
            let _g = span.enter();
            tracing::info!(
                a = "quoted \"x\" \x1b[31m\u{85}",
                b = %"shown as is",
                c = ?vec![1, 2],
                d = 7u64,
                e = true,
                r#type = "t",
                none = Option::<u32>::None,
                log.target = "skipped",
                "message with \x1b[31m escape \u{9b} and {}",
                "args"
            );
            let inner = std::io::Error::other("inner \x07 bell");
            let outer = Outer(std::io::Error::other(inner));
            tracing::warn!(
                error = &outer as &(dyn std::error::Error + 'static),
                "failed"
            );
            tracing::error!(
                error = &std::io::Error::other("plain") as &(dyn std::error::Error + 'static)
            );
            tracing::info!("\u{7f}only a message");
        }

        fn capture(plain: bool) -> String {
            let buf = Buf::default();
            let w = buf.clone();
            let builder = tracing_subscriber::fmt()
                .with_writer(move || w.clone())
                .with_ansi(false)
                .without_time();
            if plain {
                tracing::subscriber::with_default(builder.fmt_fields(PlainFields).finish(), events);
            } else {
                tracing::subscriber::with_default(builder.finish(), events);
            }
            String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
        }

        #[test]
        fn same_text_as_the_default_formatter() {
            let default = capture(false);
            assert_eq!(default.lines().count(), 4, "{default}");
            assert!(!default.contains('\x1b'), "{default}");
            assert_eq!(capture(true), default);
        }
    }
}
