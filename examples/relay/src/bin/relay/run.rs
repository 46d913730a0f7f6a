//! Start-up, the running relay and graceful shutdown.

use std::collections::HashMap;
use std::sync::Arc;

use cert_store::CertStore;
use hat_match::resolver::{HatResolver, ResolverLimits};
use relay::config::RelayConfig;
use relay::inbound::{self, ConnectionCounter, Enqueue, InboundError, ListenerContext};
use relay::mta_sts_host;
use relay::outbound::Outbound;
use relay::{Envelope, Spool};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// `--check-config`: every listener certificate exists (in the store when its directory
/// exists; otherwise only the built-in demonstration certificate can).
pub(crate) fn check_certificates(config: &RelayConfig) -> Result<(), BoxError> {
    let dir = &config.tls.cert_store;
    let store = if dir.exists() {
        Some(CertStore::open(dir).map_err(|e| format!("tls.cert_store: {e}"))?)
    } else {
        None
    };
    for (i, l) in config.listeners.iter().enumerate() {
        let Some(name) = &l.certificate else { continue };
        let known = match &store {
            Some(s) => s.names().iter().any(|n| n == name),
            None => name == cert_store::DEMO_NAME,
        };
        if !known {
            return Err(format!(
                "listener[{i}].certificate: no certificate {name:?} in the store {}",
                dir.display()
            )
            .into());
        }
    }
    for (i, l) in config.https_listeners.iter().enumerate() {
        let name = mta_sts_host::certificate_name(l, store.as_ref())
            .map_err(|e| format!("https_listener[{i}].certificate: {e}"))?;
        let known = match &store {
            Some(s) => s.names().contains(&name),
            None => name == cert_store::DEMO_NAME,
        };
        if !known {
            return Err(format!(
                "https_listener[{i}].certificate: no certificate {name:?} in the store {}",
                dir.display()
            )
            .into());
        }
    }
    Ok(())
}

/// Runs the relay until SIGTERM/SIGINT, then shuts down gracefully.
pub(crate) async fn run(config: RelayConfig) -> Result<(), BoxError> {
    let store = CertStore::open(&config.tls.cert_store)
        .map_err(|e| format!("tls.cert_store {}: {e}", config.tls.cert_store.display()))?;
    let mut acceptors = Vec::new();
    for l in &config.listeners {
        let acceptor = match &l.certificate {
            Some(name) => {
                let sc = store
                    .server_config(name)
                    .map_err(|source| InboundError::Certificate {
                        listener: l.name.clone(),
                        certificate: name.clone(),
                        source,
                    })?;
                Some(TlsAcceptor::from(sc))
            }
            None => None,
        };
        acceptors.push(acceptor);
    }
    let https_hosts =
        mta_sts_host::prepare(&config.https_listeners, &config.mta_sts_policies, &store)?;
    let store = Arc::new(store);

    let (spool, recovery) = Spool::open(&config.spool.dir, config.spool_config()).await?;
    for q in &recovery.quarantined {
        tracing::warn!(file = %q.original.display(), moved_to = %q.moved_to.display(),
            reason = %q.reason, "spool: damaged file quarantined");
    }
    tracing::info!(
        dir = %spool.dir().display(),
        recovered = recovery.messages.len(),
        quarantined = recovery.quarantined.len(),
        "spool open"
    );

    // Bind every listener before anything runs, so a port in use fails the start (the HTTPS
    // ones first: once an SMTP port accepts, every port does).
    let mut https_sockets = Vec::new();
    for l in &config.https_listeners {
        https_sockets.push(mta_sts_host::bind(&l.name, l.address).await?);
    }
    // With listener threads: `threads` SO_REUSEPORT sockets per listener, all bound here.
    let threads = config.listener_threads();
    let mut sockets = Vec::new();
    let mut groups = Vec::new();
    for l in &config.listeners {
        if threads == 0 {
            sockets.push(inbound::bind(&l.name, l.address).await?);
        } else {
            groups.push(inbound::bind_reuseport(&l.name, l.address, threads)?);
        }
    }

    let (out_tx, out_rx) = watch::channel(false);
    let (handle, outbound) = Outbound::start(
        config.delivery.clone(),
        spool.clone(),
        recovery.messages,
        Some(Arc::clone(&store)),
        out_rx,
    )
    .await?;
    let enqueue: Enqueue = Arc::new(move |env: Envelope| handle.enqueue(env));

    let accepted_domains = config.accepted_domains()?;
    let (in_tx, in_rx) = watch::channel(false);
    let mut listeners = tokio::task::JoinSet::new();
    let mut contexts = Vec::new();
    for (i, acceptor) in acceptors.into_iter().enumerate() {
        let l = &config.listeners[i];
        contexts.push(ListenerContext {
            name: l.name.clone(),
            hostname: config.hostname(i),
            hat: Arc::new(config.hat(i).map_err(|source| InboundError::Hat {
                listener: l.name.clone(),
                source,
            })?),
            acceptor,
            accepted_domains: accepted_domains.clone(),
            limits: config.limits,
            spool: spool.clone(),
            enqueue: Arc::clone(&enqueue),
            counter: ConnectionCounter::default(),
            dns: Some(HatResolver::for_nameserver(
                l.dns_resolver.unwrap_or_else(inbound::system_nameserver),
                ResolverLimits::default(),
            )?),
            plaintext_recipients: config.tlsrpt.plaintext_recipients(),
        });
    }
    // The listener of each task (for the log line if one ends abnormally).
    let mut names: HashMap<tokio::task::Id, String> = HashMap::new();
    if threads == 0 {
        for (ctx, socket) in contexts.into_iter().zip(sockets) {
            let name = ctx.name.clone();
            let task = listeners.spawn(inbound::serve(ctx, socket, in_rx.clone()));
            names.insert(task.id(), name);
        }
    } else {
        // Off the async threads: dropping a runtime (when something fails) blocks.
        let spec = ListenerThreads {
            nameservers: config
                .listeners
                .iter()
                .map(|l| l.dns_resolver.unwrap_or_else(inbound::system_nameserver))
                .collect(),
            contexts,
            groups,
            shutdown: in_rx.clone(),
        };
        let started = tokio::task::spawn_blocking(move || spec.start()).await?;
        for done in started? {
            listeners.spawn(async move {
                if done.await.is_err() {
                    tracing::error!("a listener thread ended abnormally");
                }
            });
        }
    }
    for (host, socket) in https_hosts.into_iter().zip(https_sockets) {
        listeners.spawn(mta_sts_host::serve(host, socket, in_rx.clone()));
    }
    // A listener task that panics (a bug: sessions are reaped by `serve` itself) has stopped
    // accepting: said at once, not only at shutdown.
    let log_ended = |ended: Result<(), tokio::task::JoinError>| {
        if let Err(e) = ended {
            tracing::error!(
                listener = names.get(&e.id()).map_or("-", String::as_str),
                error = %e,
                "listener task ended abnormally: that listener no longer accepts connections"
            );
        }
    };
    tracing::info!(
        listeners = config.listeners.len(),
        listener_threads = threads,
        "relay ready"
    );

    let mut signal = std::pin::pin!(wait_for_signal());
    let signal = loop {
        tokio::select! {
            s = &mut signal => break s?,
            Some(ended) = listeners.join_next(), if !listeners.is_empty() => log_ended(ended),
        }
    };
    tracing::info!(
        signal,
        "shutting down: no new connections, finishing transactions"
    );
    let _ = in_tx.send(true);
    while let Some(ended) = listeners.join_next().await {
        log_ended(ended);
    }
    tracing::info!("inbound stopped; stopping delivery");
    let _ = out_tx.send(true);
    if let Err(e) = outbound.await {
        tracing::error!(error = %e, "delivery task failed");
    }
    tracing::info!(spool = %spool.dir().display(), "relay stopped; the spool stays");
    Ok(())
}

/// The listener threads (`[runtime] listener_threads`): thread `t` gets socket `t` of every
/// listener (`groups[listener][t]`) and serves them all on its own current-thread runtime,
/// with a copy of the listener's context whose HAT resolver is its own (hickory spawns its
/// connections' background tasks on the runtime where a resolver is first used; one per thread
/// keeps them there). Everything else is shared: the connection counter (so `max_connections`
/// and the per-IP limits stay listener-wide), the HAT, the TLS acceptor (and its session
/// cache), the spool handle (its committer runs on the main runtime: a channel and a oneshot,
/// which wake across runtimes) and the delivery hand-off (an unbounded channel's sender).
struct ListenerThreads {
    /// Per listener: the HAT resolver's nameserver.
    nameservers: Vec<std::net::SocketAddr>,
    contexts: Vec<ListenerContext>,
    /// Per listener: one socket per thread.
    groups: Vec<Vec<std::net::TcpListener>>,
    shutdown: watch::Receiver<bool>,
}

/// One thread's runtime and its listeners.
type ThreadWork = (
    tokio::runtime::Runtime,
    Vec<(ListenerContext, tokio::net::TcpListener)>,
);

impl ListenerThreads {
    /// Sets up every runtime, socket and resolver before any thread starts (a failure fails
    /// the start), then starts the threads. Returns one receiver per thread, resolved once its
    /// listeners have drained and its runtime is gone (an error: the thread panicked). Blocks
    /// (dropping a runtime does): not on an async thread.
    fn start(self) -> Result<Vec<tokio::sync::oneshot::Receiver<()>>, BoxError> {
        let threads = self.groups.first().map_or(0, Vec::len);
        let mut work: Vec<ThreadWork> = Vec::with_capacity(threads);
        for _ in 0..threads {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("runtime.listener_threads: cannot start a runtime: {e}"))?;
            work.push((rt, Vec::new()));
        }
        let listeners = self.contexts.into_iter().zip(self.groups);
        for ((ctx, group), nameserver) in listeners.zip(self.nameservers) {
            for (socket, (rt, jobs)) in group.into_iter().zip(&mut work) {
                let _in_runtime = rt.enter();
                let address = socket.local_addr().ok();
                let socket = tokio::net::TcpListener::from_std(socket)
                    .map_err(|e| format!("listener {} ({address:?}): {e}", ctx.name))?;
                let mut ctx = ctx.clone();
                ctx.dns = Some(HatResolver::for_nameserver(
                    nameserver,
                    ResolverLimits::default(),
                )?);
                jobs.push((ctx, socket));
            }
        }
        let mut done = Vec::with_capacity(threads);
        for (t, (rt, jobs)) in work.into_iter().enumerate() {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let shutdown = self.shutdown.clone();
            std::thread::Builder::new()
                .name(format!("listener-{t}"))
                .spawn(move || {
                    rt.block_on(async move {
                        let mut set = tokio::task::JoinSet::new();
                        let mut names = HashMap::new();
                        for (ctx, socket) in jobs {
                            let name = ctx.name.clone();
                            let task = set.spawn(inbound::serve(ctx, socket, shutdown.clone()));
                            names.insert(task.id(), name);
                        }
                        while let Some(ended) = set.join_next().await {
                            // A panic in `serve` (not in a session: it reaps those itself) drops
                            // its future: this thread's socket of that listener closes (the
                            // kernel hands its share of new connections to the group's other
                            // sockets) and its connections here end; the other threads and
                            // listeners go on.
                            if let Err(e) = ended {
                                tracing::error!(
                                    listener = names.get(&e.id()).map_or("?", String::as_str),
                                    thread = t,
                                    error = %e,
                                    "listener task ended abnormally: its socket and connections \
                                     on this thread are closed, the other threads keep serving"
                                );
                            }
                        }
                    });
                    // The runtime (its blocking pool, the resolvers' tasks) goes first.
                    drop(rt);
                    let _ = tx.send(());
                })
                .map_err(|e| format!("runtime.listener_threads: cannot start a thread: {e}"))?;
            done.push(rx);
        }
        Ok(done)
    }
}

async fn wait_for_signal() -> Result<&'static str, BoxError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}
