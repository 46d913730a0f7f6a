//! The inbound half of the example relay: listeners, the Host Access Table verdict per
//! connection, the SMTP session (smtp-tls-policy's STARTTLS gate) and the durable hand-off of
//! accepted messages to the spool and to delivery.
//!
//! Sans-IO parts: [`Transaction`] (mail transaction state, relay control, limits),
//! [`ConnectionPolicy`] (verdict → connect action and limits), [`received_header`]. Tokio parts:
//! [`serve`] (accept loop) and the per-connection session.

mod conn_limit;
mod conn_log;
mod data;
mod domains;
mod error;
mod facts;
mod limits;
mod policy;
mod received;
mod session;
#[cfg(test)]
mod tests;
mod tls_required;
mod transaction;

use std::net::SocketAddr;
use std::sync::Arc;

use hat_match::HostAccessTable;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

pub use conn_limit::{ConnectionCounter, ConnectionSlot};
pub use domains::DomainSet;
pub use error::InboundError;
pub use facts::system_nameserver;
pub use limits::{InboundLimits, MAX_READABLE_LINE};
pub use policy::{ConnectAction, ConnectionPolicy};
pub use received::{TraceInfo, received_header};
pub use tls_required::{MAX_HEADER_SCAN, has_tls_required_no};
pub use transaction::{
    Collected, MAX_LOCAL_PART_LEN, MAX_PATH_LEN, RelayControl, Reply, Transaction,
    TransactionLimits,
};

use super::{Envelope, Spool};

/// Called with every message once it is in the spool (fsynced) and `250` is being sent: the
/// relay passes it to the outbound queue (`OutboundHandle::enqueue`).
pub type Enqueue = Arc<dyn Fn(Envelope) + Send + Sync>;

/// Everything a listener's connections share.
#[derive(Clone)]
pub struct ListenerContext {
    /// The listener's name (for logs).
    pub name: String,
    /// Our host name in the greeting, EHLO reply and `Received:` header.
    pub hostname: String,
    /// The listener's Host Access Table.
    pub hat: Arc<HostAccessTable>,
    /// The listener's TLS configuration (its certificate); `None`: STARTTLS never offered.
    pub acceptor: Option<TlsAcceptor>,
    /// Recipient domains accepted from `accept` senders (relay control).
    pub accepted_domains: DomainSet,
    /// Global limits and timeouts.
    pub limits: InboundLimits,
    /// The durable spool.
    pub spool: Spool,
    /// The hand-off to delivery.
    pub enqueue: Enqueue,
    /// Open connections per client address.
    pub counter: ConnectionCounter,
    /// PTR / DNS-list lookups for the HAT (made only when the plan needs them); `None`: no
    /// lookups, host-name and DNS-list entries never match.
    pub dns: Option<hat_match::resolver::HatResolver>,
    /// The TLS-RPT mailboxes (`[tlsrpt] mailboxes`): accepted over plaintext when TLS is
    /// required.
    pub plaintext_recipients: smtp_tls_policy::listener::PlaintextRecipients,
}

impl std::fmt::Debug for ListenerContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerContext")
            .field("name", &self.name)
            .field("hostname", &self.hostname)
            .field("tls", &self.acceptor.is_some())
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Binds `address` (fails with [`InboundError::Bind`]): `SO_REUSEADDR`, backlog 1024 (as
/// tokio's `TcpListener::bind`) and, on Linux, `TCP_NODELAY` on the listening socket, which
/// accepted sockets inherit (one `setsockopt` per listener instead of one per connection).
pub async fn bind(listener: &str, address: SocketAddr) -> Result<TcpListener, InboundError> {
    let err = |e: std::io::Error| InboundError::Bind {
        listener: listener.to_owned(),
        address,
        kind: e.kind(),
    };
    let socket = if address.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(err)?;
    socket.set_reuseaddr(true).map_err(err)?;
    if NODELAY_INHERITED {
        socket.set_nodelay(true).map_err(err)?;
    }
    socket.bind(address).map_err(err)?;
    socket.listen(1024).map_err(err)
}

/// Binds `n` (at least 1) listening sockets on `address` for the per-core listener threads:
/// each with `SO_REUSEPORT` on Linux (the kernel spreads new connections over them by a hash of
/// the addresses and ports), `SO_REUSEADDR`, backlog 1024 and `TCP_NODELAY` as [`bind`]. Port
/// 0: the others take the port the first one got. A port already listened on fails with
/// [`InboundError::Bind`] (`AddrInUse`), as with [`bind`], even when the holder set
/// `SO_REUSEPORT` too: Linux lets any socket of the same user with the option join a group, so
/// a second relay started by mistake on the same address would bind without error and take a
/// share of the connections. Before the group, a probe socket without `SO_REUSEPORT` (with
/// `SO_REUSEADDR`, so connections of an earlier relay left in `TIME_WAIT` do not block a
/// restart) is bound on the address and dropped right before the group binds; it collides with
/// any listening socket there. Port 0 gets a fresh port: nothing to probe. Two relays starting
/// within the same few microseconds could still both pass the probe.
///
/// The sockets are plain non-blocking `std` listeners, registered with no runtime yet: each is
/// turned into a tokio listener (`TcpListener::from_std`) inside the runtime that serves it, so
/// that runtime's own I/O driver polls it.
pub fn bind_reuseport(
    listener: &str,
    address: SocketAddr,
    n: usize,
) -> Result<Vec<std::net::TcpListener>, InboundError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let bind_err = |address: SocketAddr| {
        move |e: std::io::Error| InboundError::Bind {
            listener: listener.to_owned(),
            address,
            kind: e.kind(),
        }
    };
    let new_socket = |address: SocketAddr| {
        let socket = Socket::new(
            Domain::for_address(address),
            Type::STREAM,
            Some(Protocol::TCP),
        )
        .map_err(bind_err(address))?;
        socket.set_reuse_address(true).map_err(bind_err(address))?;
        Ok::<_, InboundError>(socket)
    };
    if address.port() != 0 {
        let probe = new_socket(address)?;
        probe.bind(&address.into()).map_err(bind_err(address))?;
        drop(probe);
    }
    let mut address = address;
    let mut sockets = Vec::with_capacity(n);
    for _ in 0..n.max(1) {
        let err = bind_err(address);
        let socket = new_socket(address)?;
        #[cfg(target_os = "linux")]
        socket.set_reuse_port(true).map_err(err)?;
        if NODELAY_INHERITED {
            socket.set_tcp_nodelay(true).map_err(err)?;
        }
        socket.set_nonblocking(true).map_err(err)?;
        socket.bind(&address.into()).map_err(err)?;
        socket.listen(1024).map_err(err)?;
        let l = std::net::TcpListener::from(socket);
        if address.port() == 0 {
            address = l.local_addr().map_err(err)?;
        }
        sockets.push(l);
    }
    Ok(sockets)
}

/// Linux copies `TCP_NODELAY` from the listening socket to the sockets `accept` returns
/// (checked by the test `accepted_sockets_inherit_nodelay`); elsewhere it is set per
/// connection.
const NODELAY_INHERITED: bool = cfg!(target_os = "linux");

/// Accepts connections until `shutdown` turns true, one task per connection; then stops
/// accepting, lets in-flight transactions finish for at most `limits.shutdown_grace_secs`
/// (idle connections get `421 4.3.2` at once) and returns.
pub async fn serve(
    ctx: ListenerContext,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) {
    let ctx = Arc::new(ctx);
    let mut tasks = JoinSet::new();
    let local = listener.local_addr().ok();
    tracing::info!(listener = %ctx.name, address = ?local, "listening");
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    // Replies are written whole (one write per command group): no Nagle delay.
                    if !NODELAY_INHERITED {
                        let _ = stream.set_nodelay(true);
                    }
                    let ctx = Arc::clone(&ctx);
                    let rx = shutdown.clone();
                    // The connection's INFO line carries listener and peer itself; the span is
                    // for DEBUG detail only (no per-poll cost at INFO).
                    let span = tracing::debug_span!("conn", listener = %ctx.name, %peer);
                    // boxed: tokio moves a future it is given by value into the task (a
                    // copy of the whole session state machine per move); a box moves as a
                    // pointer
                    tasks.spawn(tracing::Instrument::instrument(
                        Box::pin(async move { session::handle(&ctx, stream, peer, rx).await }),
                        span,
                    ));
                }
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            () = shutting_down(&mut shutdown) => break,
        }
    }
    drop(listener);
    let grace = limits::secs(ctx.limits.shutdown_grace_secs);
    tracing::info!(listener = %ctx.name, in_flight = tasks.len(), "stopped accepting");
    let drained =
        tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(listener = %ctx.name, left = tasks.len(),
            "shutdown grace expired; closing the remaining connections");
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
}

/// Resolves once the shutdown flag is true (or its sender is gone).
pub(crate) async fn shutting_down(rx: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`: drop it here, before any other await.
    let _ = rx.wait_for(|v| *v).await.map(|_| ());
}
