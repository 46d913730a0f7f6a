//! The MTA-STS policy fetch (`mta_sts::fetch_policy`) against a real HTTPS server on loopback
//! that each test starts itself: hyper 1 + tokio-rustls, certificates from the test CA.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::{Body, Bytes, Frame};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use smtp_tls_policy::chain::TrustAnchors;
use smtp_tls_policy::mta_sts::{
    FetchError, FetchLimits, FetchResult, Mode, Policy, PolicyDomain, StsFailure, StsFailureKind,
    client_config, fetch_and_parse, fetch_policy,
};
use test_support::pki::{CertKey, TestCa, self_signed, server_config};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

const POLICY: &str =
    "version: STSv1\r\nmode: enforce\r\nmx: *.mail.example.com\r\nmax_age: 86400\r\n";
const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

type Reply = hyper::Response<BoxBody<Bytes, Infallible>>;

/// A loopback HTTPS server answering every request with `reply(path)`; stopped on drop.
struct Server {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(cert: &CertKey, reply: fn(&str) -> Reply) -> Server {
    let listener = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(server_config(cert));
    let task = tokio::spawn(async move {
        // Bounded: a test makes a handful of connections.
        for _ in 0..16 {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let path = req.uri().path().to_owned();
                    async move { Ok::<_, Infallible>(reply(&path)) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    Server { addr, task }
}

fn full(status: u16, content_type: Option<&str>, body: &'static str) -> Reply {
    let mut b = hyper::Response::builder().status(status);
    if let Some(ct) = content_type {
        b = b.header("content-type", ct);
    }
    b.body(Full::new(Bytes::from_static(body.as_bytes())).boxed())
        .unwrap()
}

/// A chunked body of `remaining` octets of `#` (no Content-Length).
struct Endless {
    remaining: usize,
}

impl Body for Endless {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let n = self.remaining.min(8192);
        self.remaining -= n;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'#'; n])))))
    }
}

struct Pki {
    ca: TestCa,
    anchors: TrustAnchors,
}

fn pki() -> Pki {
    let ca = TestCa::new("MTA-STS fetch test CA");
    let der = CertificateDer::from_pem_slice(ca.pem.as_bytes()).unwrap();
    let anchors = TrustAnchors::from_certificates([der]).unwrap();
    Pki { ca, anchors }
}

fn domain() -> PolicyDomain {
    PolicyDomain::parse("Example.COM.").unwrap()
}

fn limits() -> FetchLimits {
    FetchLimits::default()
        .with_connect_timeout(Duration::from_secs(5))
        .with_total_timeout(Duration::from_secs(10))
}

async fn fetch_from(
    pki: &Pki,
    server: &Server,
    limits: &FetchLimits,
) -> Result<smtp_tls_policy::mta_sts::FetchedPolicy, FetchError> {
    let tls = client_config(&pki.anchors).unwrap();
    fetch_policy(&domain(), &[LOCALHOST], server.addr.port(), tls, limits).await
}

fn good_cert(pki: &Pki) -> CertKey {
    pki.ca.issue(&["mta-sts.example.com".to_owned()])
}

#[tokio::test]
async fn ok_200_text_plain() {
    let pki = pki();
    let server = serve(&good_cert(&pki), |path| {
        if path == "/.well-known/mta-sts.txt" {
            full(200, Some("text/plain"), POLICY)
        } else {
            full(404, Some("text/plain"), "wrong path")
        }
    })
    .await;
    let fetched = fetch_from(&pki, &server, &limits()).await.unwrap();
    assert_eq!(fetched.body, POLICY.as_bytes());
    assert_eq!(
        fetched.url,
        "https://mta-sts.example.com/.well-known/mta-sts.txt"
    );
    assert_eq!(fetched.address, server.addr);
    let policy = Policy::parse(&fetched.body).unwrap();
    assert_eq!(policy.mode, Mode::Enforce);
}

#[tokio::test]
async fn content_type_parameters_and_case_ignored() {
    let pki = pki();
    let server = serve(&good_cert(&pki), |_| {
        full(200, Some("Text/Plain; charset=utf-8"), POLICY)
    })
    .await;
    assert!(fetch_from(&pki, &server, &limits()).await.is_ok());
}

#[tokio::test]
async fn wrong_content_type() {
    let pki = pki();
    let server = serve(&good_cert(&pki), |_| full(200, Some("text/html"), POLICY)).await;
    let e = fetch_from(&pki, &server, &limits()).await.unwrap_err();
    assert_eq!(
        e,
        FetchError::ContentType {
            found: Some("text/html".into())
        }
    );
    assert_eq!(e.failure_kind(), StsFailureKind::StsPolicyFetchError);
    let server = serve(&good_cert(&pki), |_| full(200, None, POLICY)).await;
    let e = fetch_from(&pki, &server, &limits()).await.unwrap_err();
    assert_eq!(e, FetchError::ContentType { found: None });
}

#[tokio::test]
async fn not_found() {
    let pki = pki();
    let server = serve(&good_cert(&pki), |_| full(404, Some("text/plain"), "no")).await;
    let e = fetch_from(&pki, &server, &limits()).await.unwrap_err();
    assert_eq!(e, FetchError::Status { status: 404 });
}

#[tokio::test]
async fn redirect_not_followed() {
    let pki = pki();
    let server = serve(&good_cert(&pki), |_| {
        hyper::Response::builder()
            .status(301)
            .header("location", "https://evil.example/.well-known/mta-sts.txt")
            .header("content-type", "text/plain")
            .body(Full::new(Bytes::from_static(POLICY.as_bytes())).boxed())
            .unwrap()
    })
    .await;
    let e = fetch_from(&pki, &server, &limits()).await.unwrap_err();
    assert_eq!(
        e,
        FetchError::Redirect {
            status: 301,
            location: Some("https://evil.example/.well-known/mta-sts.txt".into())
        }
    );
}

#[tokio::test]
async fn oversize_body_declared() {
    let pki = pki();
    let server = serve(&good_cert(&pki), |_| {
        static BIG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let big = BIG.get_or_init(|| "#".repeat(64 * 1024 + 1));
        full(200, Some("text/plain"), big.as_str())
    })
    .await;
    let e = fetch_from(&pki, &server, &limits()).await.unwrap_err();
    assert_eq!(e, FetchError::TooLarge { limit: 64 * 1024 });
    assert_eq!(e.failure_kind(), StsFailureKind::StsPolicyInvalid);
}

#[tokio::test]
async fn oversize_body_chunked_stops_reading() {
    let pki = pki();
    // 1 GiB, chunked: the fetch must stop past 64 KiB rather than read it all.
    let server = serve(&good_cert(&pki), |_| {
        hyper::Response::builder()
            .header("content-type", "text/plain")
            .body(Endless { remaining: 1 << 30 }.boxed())
            .unwrap()
    })
    .await;
    let started = Instant::now();
    let e = fetch_from(&pki, &server, &limits()).await.unwrap_err();
    assert_eq!(e, FetchError::TooLarge { limit: 64 * 1024 });
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn untrusted_certificate() {
    let pki = pki();
    let server = serve(&self_signed(&["mta-sts.example.com".to_owned()]), |_| {
        full(200, Some("text/plain"), POLICY)
    })
    .await;
    let e = fetch_from(&pki, &server, &limits()).await.unwrap_err();
    assert!(matches!(e, FetchError::Certificate { .. }), "{e:?}");
    assert_eq!(e.failure_kind(), StsFailureKind::StsWebpkiInvalid);
    assert_eq!(
        StsFailure::from(&e).kind.result_type(),
        "sts-webpki-invalid"
    );
}

#[tokio::test]
async fn certificate_for_another_name() {
    let pki = pki();
    // Trusted CA, but the certificate names the domain, not the policy host.
    let server = serve(&pki.ca.issue(&["example.com".to_owned()]), |_| {
        full(200, Some("text/plain"), POLICY)
    })
    .await;
    let e = fetch_from(&pki, &server, &limits()).await.unwrap_err();
    assert!(
        matches!(&e, FetchError::Certificate { detail, .. } if detail.contains("NotValidForName")),
        "{e:?}"
    );
}

#[tokio::test]
async fn next_address_after_refused_connection() {
    let pki = pki();
    let server = serve(&good_cert(&pki), |_| full(200, Some("text/plain"), POLICY)).await;
    let tls = client_config(&pki.anchors).unwrap();
    // 127.0.0.2 is loopback too, but nothing listens there on this port.
    let refused = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let fetched = fetch_policy(
        &domain(),
        &[refused, LOCALHOST],
        server.addr.port(),
        tls.clone(),
        &limits(),
    )
    .await
    .unwrap();
    assert_eq!(fetched.address, server.addr);
    let e = fetch_policy(
        &domain(),
        &[refused],
        server.addr.port(),
        tls.clone(),
        &limits(),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, FetchError::Connect { .. }), "{e:?}");
    let e = fetch_policy(&domain(), &[], server.addr.port(), tls, &limits())
        .await
        .unwrap_err();
    assert_eq!(e, FetchError::NoAddresses);
}

#[tokio::test]
async fn silent_server_times_out() {
    let pki = pki();
    // Accepts TCP connections and never answers: the TLS handshake hangs.
    let listener = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        for _ in 0..4 {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            held.push(tcp);
        }
        std::future::pending::<()>().await;
    });
    let tls = client_config(&pki.anchors).unwrap();
    let short = FetchLimits::default()
        .with_connect_timeout(Duration::from_millis(300))
        .with_total_timeout(Duration::from_secs(5));
    let started = Instant::now();
    let e = fetch_policy(&domain(), &[LOCALHOST], port, tls.clone(), &short)
        .await
        .unwrap_err();
    assert!(
        matches!(e, FetchError::ConnectTimeout { millis: 300, .. }),
        "{e:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    // The total timeout bounds the whole fetch even when the connect timeout is longer.
    let total = FetchLimits::default()
        .with_connect_timeout(Duration::from_secs(30))
        .with_total_timeout(Duration::from_millis(400));
    let e = fetch_policy(&domain(), &[LOCALHOST], port, tls, &total)
        .await
        .unwrap_err();
    assert_eq!(e, FetchError::Timeout { millis: 400 });
    assert_eq!(e.failure_kind(), StsFailureKind::StsPolicyFetchError);
    holder.abort();
}

#[tokio::test]
async fn server_that_never_answers_http_times_out() {
    let pki = pki();
    let server = serve(&good_cert(&pki), |_| {
        hyper::Response::builder()
            .header("content-type", "text/plain")
            .body(Stall.boxed())
            .unwrap()
    })
    .await;
    let short = FetchLimits::default()
        .with_connect_timeout(Duration::from_secs(5))
        .with_total_timeout(Duration::from_millis(500));
    let e = fetch_from(&pki, &server, &short).await.unwrap_err();
    assert_eq!(e, FetchError::Timeout { millis: 500 });
}

/// A body that never yields a frame.
struct Stall;

impl Body for Stall {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Pending
    }
}

#[test]
fn client_config_trusts_the_given_anchors() {
    let pki = pki();
    let config: Arc<rustls::ClientConfig> = client_config(&pki.anchors).unwrap();
    assert_eq!(config.alpn_protocols, [b"http/1.1".to_vec()]);
}

#[tokio::test]
async fn fetch_and_parse_gives_the_cache_its_input() {
    let pki = pki();
    let server = serve(&good_cert(&pki), |path| match path {
        "/.well-known/mta-sts.txt" => full(
            200,
            Some("text/plain"),
            "version: STSv1\nmode: enforce\nnmx: mx.example.com\nmax_age: 86400\n",
        ),
        _ => full(404, None, ""),
    })
    .await;
    let tls = client_config(&pki.anchors).unwrap();
    let port = server.addr.port();
    match fetch_and_parse(&domain(), &[LOCALHOST], port, tls.clone(), &limits()).await {
        FetchResult::Failed { failure } => {
            assert_eq!(
                failure.kind,
                StsFailureKind::StsPolicyInvalid,
                "{failure:?}"
            );
            assert!(failure.detail.contains("mx"), "{}", failure.detail);
        }
        other => panic!("{other:?}"),
    }
    let good = serve(&good_cert(&pki), |_| full(200, Some("text/plain"), POLICY)).await;
    match fetch_and_parse(&domain(), &[LOCALHOST], good.addr.port(), tls, &limits()).await {
        FetchResult::Valid { policy, source } => {
            assert_eq!(policy.mode, Mode::Enforce);
            assert_eq!(source.address, Some(good.addr.to_string()));
        }
        other => panic!("{other:?}"),
    }
}
