//! The load generator: N connections × M messages, C at a time.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_rustls::TlsConnector;

use crate::client::{self, Conn, SessionError, SessionStats, Transaction};
use crate::tls::{self, Trust};

/// TLS on the client side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum TlsMode {
    /// Plaintext SMTP.
    None,
    /// STARTTLS (RFC 3207) after the first EHLO; the run fails if it is not offered.
    Starttls,
    /// TLS from the first byte (RFC 8314 implicit TLS).
    Implicit,
}

/// Load-generator options.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Server address (host:port).
    #[arg(long, default_value = "127.0.0.1:2525")]
    server: SocketAddr,
    /// Number of connections (N).
    #[arg(short = 'n', long, default_value_t = 10)]
    connections: u32,
    /// Messages per connection (M).
    #[arg(short = 'm', long, default_value_t = 1)]
    messages: u32,
    /// Connections open at the same time (C).
    #[arg(short = 'c', long, default_value_t = 10)]
    concurrency: u32,
    /// Message size in bytes (S).
    #[arg(short = 's', long, default_value_t = 1024)]
    size: usize,
    /// TLS mode.
    #[arg(long, value_enum, default_value_t = TlsMode::None)]
    tls: TlsMode,
    /// Trust these CA certificates (PEM) instead of Mozilla's list.
    #[arg(long, conflicts_with = "insecure")]
    ca_file: Option<PathBuf>,
    /// Do not check the server certificate at all (explicit opt-in).
    #[arg(long)]
    insecure: bool,
    /// Name expected in the server certificate.
    #[arg(long, default_value = "localhost")]
    server_name: String,
    /// Only connect, EHLO, STARTTLS/handshake, QUIT (no mail).
    #[arg(long)]
    handshake_only: bool,
    /// Envelope sender.
    #[arg(long, default_value = "load@smtp-load.invalid")]
    from: String,
    /// Envelope recipient.
    #[arg(long, default_value = "sink@smtp-load.invalid")]
    to: String,
    /// EHLO name.
    #[arg(long, default_value = "smtp-load.invalid")]
    helo: String,
    /// Timeout of every read and write, in seconds.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    /// Send MAIL, RCPT and DATA in one write when the server offers PIPELINING (RFC 2920).
    #[arg(long)]
    pipelining: bool,
    /// No TLS session resumption: every handshake is a full one (certificate and signature).
    /// By default the client resumes sessions from earlier connections of the run, as a
    /// sender with a session cache does.
    #[arg(long)]
    no_resumption: bool,
}

/// The summary of a run.
#[derive(Debug, serde::Serialize)]
struct Summary {
    server: String,
    tls: String,
    connections: u32,
    messages_per_connection: u32,
    concurrency: u32,
    size: usize,
    accepted: u64,
    rejected: u64,
    failed_connections: u64,
    first_errors: Vec<String>,
    handshakes: u64,
    /// Handshakes that resumed an earlier session.
    resumed_handshakes: u64,
    /// Key exchange groups negotiated, with the number of connections.
    kx_groups: std::collections::BTreeMap<String, u64>,
    elapsed_secs: f64,
    msgs_per_sec: f64,
    handshakes_per_sec: f64,
    latency_ms: Percentiles,
    handshake_ms: Percentiles,
}

#[derive(Debug, Default, serde::Serialize)]
struct Percentiles {
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
}

fn percentiles(mut v: Vec<Duration>) -> Percentiles {
    if v.is_empty() {
        return Percentiles::default();
    }
    v.sort_unstable();
    let at = |q: f64| {
        let i = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
        v[i].as_secs_f64() * 1000.0
    };
    Percentiles {
        p50: at(0.5),
        p90: at(0.9),
        p99: at(0.99),
        max: at(1.0),
    }
}

struct Shared {
    args: Args,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    run_id: String,
}

/// Runs the load; exit 0 if every message got `250` and every connection completed, else 1.
pub(crate) async fn run(args: Args) -> Result<ExitCode, Box<dyn std::error::Error>> {
    if args.concurrency == 0 {
        return Err("--concurrency must be at least 1".into());
    }
    let tls = match args.tls {
        TlsMode::None => None,
        _ => {
            let trust = match (&args.ca_file, args.insecure) {
                (_, true) => Trust::Insecure,
                (Some(p), false) => Trust::CaFile(p),
                (None, false) => Trust::System,
            };
            let name = ServerName::try_from(args.server_name.clone())?;
            let config = tls::client_config(trust, !args.no_resumption)?;
            Some((TlsConnector::from(config), name))
        }
    };
    let run_id = format!("{:x}", fastrand::u64(..));
    let shared = Arc::new(Shared { args, tls, run_id });
    let sem = Arc::new(Semaphore::new(shared.args.concurrency as usize));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(shared.args.connections as usize);
    for conn_no in 0..shared.args.connections {
        let shared = Arc::clone(&shared);
        let sem = Arc::clone(&sem);
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await;
            let mut stats = SessionStats::default();
            let r = session(&shared, conn_no, &mut stats).await;
            (stats, r)
        }));
    }
    let mut all = SessionStats::default();
    let mut failed_connections = 0;
    let mut first_errors = Vec::new();
    let mut kx_groups = std::collections::BTreeMap::new();
    for t in tasks {
        let (s, r) = t.await?;
        all.accepted += s.accepted;
        all.rejected += s.rejected;
        all.handshakes += s.handshakes;
        all.resumed += s.resumed;
        if let Some(g) = s.kx_group {
            *kx_groups.entry(g).or_insert(0) += 1;
        }
        all.latencies.extend(s.latencies);
        all.handshake_times.extend(s.handshake_times);
        if let Err(e) = r {
            failed_connections += 1;
            if first_errors.len() < 5 {
                first_errors.push(e.to_string());
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64().max(1e-9);
    let a = &shared.args;
    let summary = Summary {
        server: a.server.to_string(),
        tls: format!("{:?}", a.tls).to_lowercase(),
        connections: a.connections,
        messages_per_connection: if a.handshake_only { 0 } else { a.messages },
        concurrency: a.concurrency,
        size: a.size,
        accepted: all.accepted,
        rejected: all.rejected,
        failed_connections,
        first_errors,
        handshakes: all.handshakes,
        resumed_handshakes: all.resumed,
        kx_groups,
        elapsed_secs: elapsed,
        msgs_per_sec: all.accepted as f64 / elapsed,
        handshakes_per_sec: all.handshakes as f64 / elapsed,
        latency_ms: percentiles(all.latencies),
        handshake_ms: percentiles(all.handshake_times),
    };
    if a.json {
        // A closed stdout (e.g. piped into `head`) is not an error of the run.
        let _ = writeln!(
            std::io::stdout(),
            "{}",
            serde_json::to_string_pretty(&summary)?
        );
    } else {
        print_text(&summary);
    }
    let ok = summary.rejected == 0 && summary.failed_connections == 0;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_text(s: &Summary) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(
        o,
        "{} connections x {} messages ({} bytes, concurrency {}, tls {}) to {}",
        s.connections, s.messages_per_connection, s.size, s.concurrency, s.tls, s.server
    );
    let _ = writeln!(
        o,
        "accepted {}  rejected {}  failed connections {}  handshakes {} ({} resumed)",
        s.accepted, s.rejected, s.failed_connections, s.handshakes, s.resumed_handshakes
    );
    if !s.kx_groups.is_empty() {
        let groups: Vec<String> = s
            .kx_groups
            .iter()
            .map(|(g, n)| format!("{g} {n}"))
            .collect();
        let _ = writeln!(o, "key exchange groups: {}", groups.join(", "));
    }
    let _ = writeln!(
        o,
        "elapsed {:.3} s  {:.1} msgs/s  {:.1} handshakes/s",
        s.elapsed_secs, s.msgs_per_sec, s.handshakes_per_sec
    );
    let l = &s.latency_ms;
    let _ = writeln!(
        o,
        "message latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
        l.p50, l.p90, l.p99, l.max
    );
    for e in &s.first_errors {
        let _ = writeln!(o, "error: {e}");
    }
}

async fn session(
    shared: &Shared,
    conn_no: u32,
    stats: &mut SessionStats,
) -> Result<(), SessionError> {
    let a = &shared.args;
    let timeout = Duration::from_secs(a.timeout);
    let tcp = tokio::time::timeout(timeout, TcpStream::connect(a.server))
        .await
        .map_err(|_| SessionError::Timeout(timeout))??;
    tcp.set_nodelay(true)?;
    let ehlo = format!("EHLO {}\r\n", a.helo);
    match (a.tls, &shared.tls) {
        (TlsMode::Implicit, Some((connector, name))) => {
            let t = Instant::now();
            let stream = connector
                .connect(name.clone(), tcp)
                .await
                .map_err(SessionError::Tls)?;
            stats.handshake(t.elapsed(), stream.get_ref().1);
            let mut conn = Conn::new(stream, timeout);
            client::expect("banner", conn.response().await?, 2)?;
            let r = conn.command("EHLO", ehlo.as_bytes(), 2).await?;
            mail(shared, &mut conn, conn_no, stats, &r).await
        }
        (TlsMode::Starttls, Some((connector, name))) => {
            let mut conn = Conn::new(tcp, timeout);
            client::expect("banner", conn.response().await?, 2)?;
            let r = conn.command("EHLO", ehlo.as_bytes(), 2).await?;
            if !client::offers_starttls(&r) {
                return Err(SessionError::NoStartTls);
            }
            conn.command("STARTTLS", b"STARTTLS\r\n", 2).await?;
            let t = Instant::now();
            let stream = connector
                .connect(name.clone(), conn.into_stream())
                .await
                .map_err(SessionError::Tls)?;
            stats.handshake(t.elapsed(), stream.get_ref().1);
            let mut conn = Conn::new(stream, timeout);
            let r = conn.command("EHLO", ehlo.as_bytes(), 2).await?;
            mail(shared, &mut conn, conn_no, stats, &r).await
        }
        _ => {
            let mut conn = Conn::new(tcp, timeout);
            client::expect("banner", conn.response().await?, 2)?;
            let r = conn.command("EHLO", ehlo.as_bytes(), 2).await?;
            mail(shared, &mut conn, conn_no, stats, &r).await
        }
    }
}

async fn mail<S>(
    shared: &Shared,
    conn: &mut Conn<S>,
    conn_no: u32,
    stats: &mut SessionStats,
    ehlo: &smtp_proto::Response<String>,
) -> Result<(), SessionError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let a = &shared.args;
    let pipelining = a.pipelining && client::offers(ehlo, "PIPELINING");
    if !a.handshake_only {
        let mut messages = client::MessageCache::default();
        for msg_no in 0..a.messages {
            let id = format!(
                "<load.{}.{conn_no}.{msg_no}@smtp-load.invalid>",
                shared.run_id
            );
            let data = messages.message(&id, &a.from, &a.to, a.size);
            let tx = Transaction {
                from: &a.from,
                to: &a.to,
                data: &data,
            };
            let (ok, took) = client::timed(client::transaction(conn, &tx, pipelining)).await;
            if ok? {
                stats.accepted += 1;
                stats.latencies.push(took);
            } else {
                stats.rejected += 1;
            }
        }
    }
    conn.command("QUIT", b"QUIT\r\n", 2).await?;
    Ok(())
}
