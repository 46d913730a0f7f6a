//! A loopback HTTPS server standing in for `https://mta-sts.DOMAIN/.well-known/mta-sts.txt`
//! (RFC 8461 §3.3): hyper 1 over tokio-rustls, a certificate from the test CA (or any
//! [`CertKey`]), and per host name a configurable [`PolicyResponse`] — a policy, an error
//! status, a wrong content type, a redirect, an oversize body, a slow or never-answering server
//! — and per host name a certificate of its own ([`PolicyServer::set_certificate`]: untrusted or
//! for another name, the "bad TLS" fault), chosen by SNI. Other paths can be given responses
//! too ([`PolicyServer::set_path`]), so it also stands in for a TLS-RPT `rua=https:` report
//! collector (RFC 8460 §5.4): every request is recorded with its method, `Content-Type` and
//! body.
//!
//! The server runs on its own thread with its own tokio runtime, so both synchronous tests (that
//! run a CLI) and `#[tokio::test]`s can use it. Readiness is the bound listener: the port accepts
//! connections as soon as [`PolicyServer::start`] returns. Dropping the server stops it (the
//! runtime and every open connection go with it).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::sync::oneshot;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::pki::{CertKey, TestCa};

/// The path an MTA-STS policy is served at (RFC 8461 §3.3).
pub const WELL_KNOWN_PATH: &str = "/.well-known/mta-sts.txt";

/// What the server answers for one policy host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyResponse {
    /// The HTTP status code.
    pub status: u16,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// The response body.
    pub body: Vec<u8>,
    /// A `Location` header (for redirects).
    pub location: Option<String>,
    /// Wait this long before answering.
    pub delay: Option<Duration>,
    /// Accept the connection and the TLS handshake, then never answer.
    pub never_answer: bool,
}

impl PolicyResponse {
    /// `200`, `text/plain`, the policy file `text`.
    pub fn policy(text: &str) -> Self {
        Self {
            status: 200,
            content_type: Some("text/plain".to_owned()),
            body: text.as_bytes().to_vec(),
            location: None,
            delay: None,
            never_answer: false,
        }
    }

    /// A valid `enforce` policy for the MX patterns `mx`, with `max_age` seconds.
    pub fn enforce(mx: &[&str], max_age: u64) -> Self {
        Self::policy(&policy_text("enforce", mx, max_age))
    }

    /// A status code with a short `text/plain` body.
    pub fn status(code: u16) -> Self {
        Self {
            status: code,
            ..Self::policy("error\n")
        }
    }

    /// A `301` redirect to `location`.
    pub fn redirect(location: &str) -> Self {
        Self {
            location: Some(location.to_owned()),
            ..Self::status(301)
        }
    }

    /// A `200` `text/plain` body of `len` bytes that starts like a policy (oversize tests).
    pub fn oversize(len: usize) -> Self {
        let mut body = b"version: STSv1\nmode: enforce\nmax_age: 86400\nmx: a.example\n".to_vec();
        body.resize(len.max(body.len()), b'#');
        Self {
            body,
            ..Self::policy("")
        }
    }

    /// A server that completes the TLS handshake and then never answers.
    pub fn never_answer() -> Self {
        Self {
            never_answer: true,
            ..Self::status(200)
        }
    }

    /// This response with `Content-Type` `ct` (`None`: no header).
    pub fn with_content_type(mut self, ct: Option<&str>) -> Self {
        self.content_type = ct.map(str::to_owned);
        self
    }

    /// This response, sent after `delay`.
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }
}

/// A policy file: `version: STSv1`, `mode`, one `mx:` line per pattern, `max_age`, CRLF.
pub fn policy_text(mode: &str, mx: &[&str], max_age: u64) -> String {
    let mut s = format!("version: STSv1\r\nmode: {mode}\r\n");
    for m in mx {
        s.push_str(&format!("mx: {m}\r\n"));
    }
    s.push_str(&format!("max_age: {max_age}\r\n"));
    s
}

/// One request the server saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeenRequest {
    /// The TLS SNI, if the client sent one.
    pub sni: Option<String>,
    /// The `Host` header without a port, lower case.
    pub host: Option<String>,
    /// The request path.
    pub path: String,
    /// The request method (`GET`, `POST`).
    pub method: String,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// The request body (at most [`MAX_BODY`] bytes are read).
    pub body: Vec<u8>,
}

/// The most bytes of a request body the server reads.
pub const MAX_BODY: usize = 1 << 20;

#[derive(Default)]
struct Shared {
    /// Keyed by policy host (`mta-sts.DOMAIN`, lower case, no trailing dot).
    responses: HashMap<String, PolicyResponse>,
    /// Keyed by (host, path): responses for paths other than the policy's.
    paths: HashMap<(String, String), PolicyResponse>,
    /// Per policy host, a certificate served instead of the server's own (by SNI).
    certs: HashMap<String, Arc<CertifiedKey>>,
    seen: Vec<SeenRequest>,
}

/// The certificate and key of `ck` for rustls (aws-lc-rs keys).
fn certified_key(ck: &CertKey) -> Arc<CertifiedKey> {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(ck.chain_pem.as_bytes())
            .collect::<Result<_, _>>()
            .expect("certificate chain PEM");
    let key = PrivateKeyDer::from_pem_slice(ck.key_pem.as_bytes()).expect("private key PEM");
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    Arc::new(CertifiedKey::from_der(chain, key, &provider).expect("certificate matches its key"))
}

/// Picks the certificate by SNI: a host's own (set by the test) or the server's.
struct PickCert {
    default: Arc<CertifiedKey>,
    shared: Arc<Mutex<Shared>>,
}

impl std::fmt::Debug for PickCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PickCert")
    }
}

impl ResolvesServerCert for PickCert {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let own = hello.server_name().and_then(|n| {
            let n = n.trim_end_matches('.').to_ascii_lowercase();
            let sh = self.shared.lock().unwrap_or_else(|e| e.into_inner());
            sh.certs.get(&n).cloned()
        });
        Some(own.unwrap_or_else(|| Arc::clone(&self.default)))
    }
}

/// A running loopback HTTPS policy server; stopped on drop.
pub struct PolicyServer {
    addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// `mta-sts.DOMAIN` for a policy domain (lower case, trailing dot removed).
pub fn policy_host(domain: &str) -> String {
    format!(
        "mta-sts.{}",
        domain.trim_end_matches('.').to_ascii_lowercase()
    )
}

impl PolicyServer {
    /// Serves the policy hosts `mta-sts.D` for each of `domains`, with a certificate from `ca`
    /// whose SANs are those host names. No responses are configured yet (every host → 404).
    pub fn start(ca: &TestCa, domains: &[&str]) -> Self {
        let names: Vec<String> = domains.iter().map(|d| policy_host(d)).collect();
        Self::start_with_cert(&ca.issue(&names))
    }

    /// Serves with the certificate `ck` (e.g. [`self_signed`](crate::pki::self_signed) for an untrusted one).
    pub fn start_with_cert(ck: &CertKey) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("bound address");
        let shared = Arc::new(Mutex::new(Shared::default()));
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(PickCert {
                default: certified_key(ck),
                shared: Arc::clone(&shared),
            }));
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let (stop, stopped) = oneshot::channel::<()>();
        let sh = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("policy-server".to_owned())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("tokio runtime");
                rt.block_on(serve(listener, acceptor, sh, stopped));
                // Dropping the runtime cancels every connection task.
            })
            .expect("spawn policy server thread");
        Self {
            addr,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The listening address (127.0.0.1).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The listening port (for `--policy-port` / a fetch setting's port).
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// What to answer for the policy domain `domain` (served at `mta-sts.DOMAIN`).
    pub fn set(&self, domain: &str, response: PolicyResponse) {
        self.lock().responses.insert(policy_host(domain), response);
    }

    /// The certificate served (by SNI) for the policy host of `domain`: `Some(ck)` instead of
    /// the server's own (e.g. [`pki::self_signed`](crate::pki::self_signed), or one the test CA
    /// issued for another name), `None` back to the server's.
    pub fn set_certificate(&self, domain: &str, ck: Option<&CertKey>) {
        let host = policy_host(domain);
        let mut sh = self.lock();
        match ck {
            Some(ck) => {
                sh.certs.insert(host, certified_key(ck));
            }
            None => {
                sh.certs.remove(&host);
            }
        }
    }

    /// What to answer at `path` of `host` (the host name itself, e.g. a TLS-RPT collector's
    /// `tlsrpt.example` and `/tlsrpt`), for any method.
    pub fn set_path(&self, host: &str, path: &str, response: PolicyResponse) {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.lock().paths.insert((host, path.to_owned()), response);
    }

    /// Forget the response for `domain` (its host then gets a 404).
    pub fn clear(&self, domain: &str) {
        self.lock().responses.remove(&policy_host(domain));
    }

    /// Every request seen so far, in order.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.lock().seen.clone()
    }

    /// How many requests named the policy host of `domain` (by `Host`, else SNI).
    pub fn hits(&self, domain: &str) -> usize {
        let host = policy_host(domain);
        self.lock()
            .seen
            .iter()
            .filter(|r| r.host.as_deref().or(r.sni.as_deref()) == Some(host.as_str()))
            .count()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for PolicyServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    shared: Arc<Mutex<Shared>>,
    mut stopped: oneshot::Receiver<()>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
    loop {
        tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else { continue };
                let acceptor = acceptor.clone();
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let sni = tls.get_ref().1.server_name().map(str::to_ascii_lowercase);
                    let svc = service_fn(move |req| {
                        respond(req, sni.clone(), Arc::clone(&shared))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        }
    }
}

async fn respond(
    req: Request<Incoming>,
    sni: Option<String>,
    shared: Arc<Mutex<Shared>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| {
            let h = h.rsplit_once(':').map_or(h, |(name, _)| name);
            h.trim_end_matches('.').to_ascii_lowercase()
        });
    let path = req.uri().path().to_owned();
    let method = req.method().as_str().to_owned();
    let content_type = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned);
    let body = http_body_util::Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let key = host.clone().or_else(|| sni.clone()).unwrap_or_default();
    let found = {
        let mut sh = shared.lock().unwrap_or_else(|e| e.into_inner());
        sh.seen.push(SeenRequest {
            sni,
            host,
            path: path.clone(),
            method,
            content_type,
            body,
        });
        if path == WELL_KNOWN_PATH {
            sh.responses.get(&key).cloned()
        } else {
            sh.paths.get(&(key, path)).cloned()
        }
    };
    let r = found.unwrap_or_else(|| PolicyResponse::status(404));
    if r.never_answer {
        std::future::pending::<()>().await;
    }
    if let Some(d) = r.delay {
        tokio::time::sleep(d).await;
    }
    let mut b = Response::builder().status(r.status);
    if let Some(ct) = &r.content_type {
        b = b.header(http::header::CONTENT_TYPE, ct);
    }
    if let Some(loc) = &r.location {
        b = b.header(http::header::LOCATION, loc);
    }
    Ok(b.body(Full::new(Bytes::from(r.body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()))))
}
