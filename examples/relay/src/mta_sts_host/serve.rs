//! The HTTPS adapter: tokio + tokio-rustls + hyper's HTTP/1.1 server. It accepts connections up
//! to the listener's limit and its per-client-address limit (`max_connections_per_ip`), bounds
//! the handshake and each request header by `header_read_timeout_secs` and a whole connection by
//! `connection_lifetime_secs`, and answers every request with
//! [`route::decide`](super::route::decide).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use super::MtaStsHostError;
use super::config::HttpsListenerConfig;
use super::route::{Answer, PolicyTable, decide};
use crate::inbound::ConnectionCounter;

/// Largest request header section read (hyper's read buffer; its minimum).
pub const MAX_HEADER_BYTES: usize = 8192;
/// Most request header fields.
pub const MAX_HEADERS: usize = 32;

/// One running HTTPS listener.
#[derive(Clone)]
pub struct HttpsHost {
    name: String,
    acceptor: TlsAcceptor,
    table: Arc<PolicyTable>,
    max_connections: usize,
    max_connections_per_ip: usize,
    header_read_timeout: Duration,
    connection_lifetime: Duration,
}

impl std::fmt::Debug for HttpsHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpsHost")
            .field("name", &self.name)
            .field("max_connections", &self.max_connections)
            .field("max_connections_per_ip", &self.max_connections_per_ip)
            .finish_non_exhaustive()
    }
}

impl HttpsHost {
    /// A listener for `config` presenting `tls` (its ALPN is set to `http/1.1`) and serving
    /// `table`.
    #[must_use]
    pub fn new(
        config: &HttpsListenerConfig,
        tls: &rustls::ServerConfig,
        table: Arc<PolicyTable>,
    ) -> Self {
        let mut tls = tls.clone();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Self {
            name: config.name.clone(),
            acceptor: TlsAcceptor::from(Arc::new(tls)),
            table,
            max_connections: config.max_connections,
            max_connections_per_ip: config.max_connections_per_ip,
            header_read_timeout: Duration::from_secs(config.header_read_timeout_secs),
            connection_lifetime: Duration::from_secs(config.connection_lifetime_secs),
        }
    }
}

/// Binds the listening socket of HTTPS listener `name`.
pub async fn bind(name: &str, address: SocketAddr) -> Result<TcpListener, MtaStsHostError> {
    TcpListener::bind(address)
        .await
        .map_err(|e| MtaStsHostError::Bind {
            listener: name.to_owned(),
            address,
            kind: e.kind(),
        })
}

/// Serves `host` on `listener` until `shutdown` turns true; then open connections are closed.
pub async fn serve(host: HttpsHost, listener: TcpListener, mut shutdown: watch::Receiver<bool>) {
    let host = Arc::new(host);
    let slots = Arc::new(Semaphore::new(host.max_connections));
    let per_ip = ConnectionCounter::default();
    let mut connections = JoinSet::new();
    tracing::info!(listener = %host.name, address = ?listener.local_addr().ok(),
        "MTA-STS policy host listening (HTTPS)");
    loop {
        tokio::select! {
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break;
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(listener = %host.name, error = %e, "https: accept failed");
                        continue;
                    }
                };
                // counted from the accept on: released when the connection task ends
                let from_ip = per_ip.open(peer.ip());
                let open_from_ip = usize::try_from(from_ip.count()).unwrap_or(usize::MAX);
                if open_from_ip > host.max_connections_per_ip {
                    tracing::warn!(listener = %host.name, %peer,
                        "https: per-IP connection limit reached, connection closed");
                    continue;
                }
                let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
                    tracing::warn!(listener = %host.name, %peer,
                        "https: connection limit reached, connection closed");
                    continue;
                };
                let host = Arc::clone(&host);
                connections.spawn(async move {
                    let lifetime = host.connection_lifetime;
                    if tokio::time::timeout(lifetime, connection(&host, tcp, peer)).await.is_err() {
                        tracing::debug!(listener = %host.name, %peer,
                            "https: connection lifetime reached");
                    }
                    drop((permit, from_ip));
                });
            }
        }
    }
    connections.abort_all();
    while connections.join_next().await.is_some() {}
    tracing::info!(listener = %host.name, "MTA-STS policy host stopped");
}

async fn connection(host: &Arc<HttpsHost>, tcp: TcpStream, peer: SocketAddr) {
    let handshake = host.acceptor.accept(tcp);
    let tls = match tokio::time::timeout(host.header_read_timeout, handshake).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(listener = %host.name, %peer, error = %e, "https: TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(listener = %host.name, %peer, "https: TLS handshake timed out");
            return;
        }
    };
    let sni = tls.get_ref().1.server_name().map(str::to_owned);
    let service_host = Arc::clone(host);
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let answer = decide(
            &service_host.table,
            req.method(),
            req.uri(),
            req.headers(),
            sni.as_deref(),
        );
        tracing::debug!(listener = %service_host.name, %peer, method = %req.method(),
            path = req.uri().path(), ?answer, "https: request");
        std::future::ready(Ok::<_, Infallible>(respond(answer)))
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(host.header_read_timeout)
        .max_buf_size(MAX_HEADER_BYTES)
        .max_headers(MAX_HEADERS);
    if let Err(e) = http.serve_connection(TokioIo::new(tls), service).await {
        tracing::debug!(listener = %host.name, %peer, error = %e, "https: connection ended");
    }
}

fn respond(answer: Answer) -> Response<Full<Bytes>> {
    let (status, body) = match answer {
        Answer::Policy(p) => (StatusCode::OK, Bytes::from(p.text().to_owned())),
        Answer::BadRequest => (
            StatusCode::BAD_REQUEST,
            Bytes::from_static(b"bad request\n"),
        ),
        Answer::MethodNotAllowed => (
            StatusCode::METHOD_NOT_ALLOWED,
            Bytes::from_static(b"method not allowed\n"),
        ),
        Answer::Misdirected => (
            StatusCode::MISDIRECTED_REQUEST,
            Bytes::from_static(b"misdirected request\n"),
        ),
        Answer::NotFound => (StatusCode::NOT_FOUND, Bytes::from_static(b"not found\n")),
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    if status == StatusCode::METHOD_NOT_ALLOWED {
        headers.insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
    }
    response
}
