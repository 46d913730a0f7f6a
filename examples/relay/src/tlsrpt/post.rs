//! `rua=https:` (RFC 8460 §5.4): the gzipped report POSTed as `application/tlsrpt+gzip` over
//! rustls (hyper 1 `client::conn::http1`, as smtp-tls-policy's MTA-STS fetch), verified
//! against the relay's trust anchors, within one time limit.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Why a POST failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PostError {
    /// The URI is not an `https:` URI with a host.
    #[error("bad https URI {0:?}")]
    Uri(String),
    /// The host has no address.
    #[error("no address for {0}")]
    NoAddress(String),
    /// TCP or TLS failed.
    #[error("connection to {address}: {detail}")]
    Connect {
        /// The address tried last.
        address: SocketAddr,
        /// What failed.
        detail: String,
    },
    /// HTTP failed.
    #[error("HTTP: {0}")]
    Http(String),
    /// The receiver answered with a status other than 2xx.
    #[error("HTTP status {0}")]
    Status(u16),
    /// The time limit passed.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The receiver's response body was longer than [`MAX_RESPONSE_BODY`] (not read further:
    /// the receiver is chosen by the reported domain).
    #[error("HTTP status {status} with a response body over {MAX_RESPONSE_BODY} bytes")]
    ResponseTooLarge {
        /// The status it answered with.
        status: u16,
    },
}

/// The longest response body read from a report receiver (then discarded).
pub const MAX_RESPONSE_BODY: usize = 64 * 1024;

/// The time limit of the TCP connection and TLS handshake to one address (at most a quarter
/// of the POST's limit): an address that never answers leaves time for the next ones.
pub const CONNECT_LIMIT: Duration = Duration::from_secs(10);

/// POSTs `gzip` to `uri` at the first of `addresses` that connects (port from the URI, else
/// 443), within `limit`; each address within [`CONNECT_LIMIT`] or a quarter of `limit`.
///
/// # Errors
/// [`PostError`]: a bad URI, no connection, an HTTP failure or a non-2xx status.
pub async fn post_report(
    uri: &str,
    addresses: &[IpAddr],
    gzip: Vec<u8>,
    tls: Arc<rustls::ClientConfig>,
    limit: Duration,
) -> Result<u16, PostError> {
    let per_address = CONNECT_LIMIT.min(limit / 4);
    tokio::time::timeout(limit, post(uri, addresses, gzip, tls, per_address))
        .await
        .unwrap_or(Err(PostError::Timeout(limit)))
}

/// The host (without brackets) and port of an `https:` URI.
pub(crate) fn host_port(uri: &str) -> Result<(String, u16, http::Uri), PostError> {
    let bad = || PostError::Uri(uri.chars().take(80).collect());
    let parsed: http::Uri = uri.parse().map_err(|_| bad())?;
    if parsed.scheme_str() != Some("https") {
        return Err(bad());
    }
    let host = parsed.host().ok_or_else(bad)?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    if host.is_empty() {
        return Err(bad());
    }
    let port = parsed.port_u16().unwrap_or(443);
    Ok((host, port, parsed))
}

async fn post(
    uri: &str,
    addresses: &[IpAddr],
    gzip: Vec<u8>,
    tls: Arc<rustls::ClientConfig>,
    per_address: Duration,
) -> Result<u16, PostError> {
    let (host, port, parsed) = host_port(uri)?;
    let name = ServerName::try_from(host.clone()).map_err(|_| PostError::Uri(host.clone()))?;
    let connector = TlsConnector::from(tls);
    let mut stream = None;
    let mut last = PostError::NoAddress(host.clone());
    for ip in addresses {
        let address = SocketAddr::new(*ip, port);
        let fail = |detail: String| PostError::Connect { address, detail };
        // Err((detail, final)): a certificate refused is the receiver's answer, no other
        // address is tried
        let connected = tokio::time::timeout(per_address, async {
            let tcp = TcpStream::connect(address)
                .await
                .map_err(|e| (e.to_string(), false))?;
            connector
                .connect(name.clone(), tcp)
                .await
                .map_err(|e| (e.to_string(), true))
        })
        .await;
        match connected {
            Ok(Ok(s)) => {
                stream = Some(s);
                break;
            }
            Ok(Err((detail, true))) => return Err(fail(detail)),
            Ok(Err((detail, false))) => last = fail(detail),
            Err(_) => last = fail(format!("no connection within {per_address:?}")),
        }
    }
    let stream = stream.ok_or(last)?;
    let http = |e: hyper::Error| {
        let mut text = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        PostError::Http(text)
    };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(http)?;
    let authority = if port == 443 {
        host.clone()
    } else if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let path = parsed
        .path_and_query()
        .map_or("/", http::uri::PathAndQuery::as_str)
        .to_owned();
    let request = http::Request::post(path)
        .header(http::header::HOST, authority)
        .header(http::header::USER_AGENT, "relay-tlsrpt")
        .header(
            http::header::CONTENT_TYPE,
            smtp_tls_policy::tlsrpt::TLSRPT_GZIP,
        )
        .body(Full::new(Bytes::from(gzip)))
        .map_err(|e| PostError::Http(e.to_string()))?;
    let exchange = async {
        let response = sender.send_request(request).await.map_err(http)?;
        let status = response.status().as_u16();
        // read (and drop) the body so the exchange completes, up to a bound: hostile
        let body = http_body_util::Limited::new(response.into_body(), MAX_RESPONSE_BODY);
        if let Err(e) = body.collect().await
            && e.is::<http_body_util::LengthLimitError>()
        {
            return Err(PostError::ResponseTooLarge { status });
        }
        Ok::<u16, PostError>(status)
    };
    tokio::pin!(connection);
    tokio::pin!(exchange);
    let status = tokio::select! {
        biased;
        r = &mut exchange => r?,
        c = &mut connection => {
            c.map_err(http)?;
            exchange.await?
        }
    };
    if (200..300).contains(&status) {
        Ok(status)
    } else {
        Err(PostError::Status(status))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    use smtp_tls_policy::chain::TrustAnchors;
    use test_support::pki::{TestCa, server_config};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::{PostError, host_port, post_report};

    /// A TLS listener on loopback for `reports.example`, with the CA that issued its
    /// certificate.
    async fn tls_listener() -> (TestCa, tokio_rustls::TlsAcceptor, TcpListener, u16) {
        let ca = TestCa::new("tlsrpt post test CA");
        let cert = ca.issue(&["reports.example".to_owned()]);
        let acceptor = tokio_rustls::TlsAcceptor::from(server_config(&cert));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        (ca, acceptor, listener, port)
    }

    /// Reads into `buf` until the end of the request head; where the body starts.
    async fn read_head<S: AsyncReadExt + Unpin>(tls: &mut S, buf: &mut Vec<u8>) -> usize {
        let mut chunk = [0u8; 4096];
        loop {
            let n = tls.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed before the request head");
            buf.extend_from_slice(&chunk[..n]);
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        }
    }

    /// Posts `body` to `https://reports.example:{port}{path}` at `addresses`, trusting `ca`.
    async fn post(
        port: u16,
        path: &str,
        addresses: &[&str],
        body: &[u8],
        ca: &TestCa,
        limit: Duration,
    ) -> Result<u16, PostError> {
        let uri = format!("https://reports.example:{port}{path}");
        let addresses: Vec<std::net::IpAddr> =
            addresses.iter().map(|a| a.parse().unwrap()).collect();
        post_report(&uri, &addresses, body.to_vec(), client(ca), limit).await
    }

    /// Posts `x` to `https://reports.example:{port}/` at 127.0.0.1, trusting `ca`.
    async fn post_x(port: u16, ca: &TestCa, limit: Duration) -> Result<u16, PostError> {
        post(port, "/", &["127.0.0.1"], b"x", ca, limit).await
    }

    /// A one-request HTTPS receiver on loopback: answers `status`, hands back the request
    /// head and body.
    async fn receiver(status: u16) -> (u16, TestCa, tokio::task::JoinHandle<(String, Vec<u8>)>) {
        let (ca, acceptor, listener, port) = tls_listener().await;
        let task = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut tls = acceptor.accept(tcp).await.unwrap();
            let mut buf = Vec::new();
            let head_end = read_head(&mut tls, &mut buf).await;
            let mut chunk = [0u8; 4096];
            let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap();
            while buf.len() < head_end + length {
                let n = tls.read(&mut chunk).await.unwrap();
                assert!(n > 0, "closed before the body");
                buf.extend_from_slice(&chunk[..n]);
            }
            let reply = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n");
            tls.write_all(reply.as_bytes()).await.unwrap();
            tls.flush().await.unwrap();
            // close_notify, then the head and body the client sent
            let _ = tls.shutdown().await;
            (head, buf[head_end..head_end + length].to_vec())
        });
        (port, ca, task)
    }

    fn client(ca: &TestCa) -> Arc<rustls::ClientConfig> {
        let mut anchors = TrustAnchors::empty();
        let der = CertificateDer::from_pem_slice(ca.pem.as_bytes()).unwrap();
        anchors.add_certificate(der).unwrap();
        smtp_tls_policy::mta_sts::client_config(&anchors).unwrap()
    }

    #[tokio::test]
    async fn posts_the_gzip_body_over_verified_tls() {
        let (port, ca, task) = receiver(200).await;
        let status = post(
            port,
            "/v1/tlsrpt?x=1",
            &["127.0.0.1"],
            b"gzip-bytes",
            &ca,
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        assert_eq!(status, 200);
        let (head, body) = task.await.unwrap();
        assert!(
            head.starts_with("POST /v1/tlsrpt?x=1 HTTP/1.1\r\n"),
            "{head}"
        );
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: application/tlsrpt+gzip\r\n"),
            "{head}"
        );
        assert!(head.contains(&format!("reports.example:{port}")), "{head}");
        assert_eq!(body, b"gzip-bytes");
    }

    #[tokio::test]
    async fn a_refusing_receiver_and_an_untrusted_certificate_are_errors() {
        let (port, ca, _task) = receiver(503).await;
        let err = post_x(port, &ca, Duration::from_secs(10))
            .await
            .unwrap_err();
        assert!(matches!(err, PostError::Status(503)), "{err}");
        // another CA: the certificate is refused, nothing is posted
        let (port, _ca, _task) = receiver(200).await;
        let other = TestCa::new("someone else");
        let err = post_x(port, &other, Duration::from_secs(10))
            .await
            .unwrap_err();
        assert!(matches!(err, PostError::Connect { .. }), "{err}");
    }

    #[tokio::test]
    async fn a_receiver_that_never_answers_is_bounded_by_the_limit() {
        let (ca, acceptor, listener, port) = tls_listener().await;
        // completes the handshake, reads the request, never answers
        let _task = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut tls = acceptor.accept(tcp).await.unwrap();
            let mut chunk = [0u8; 4096];
            while matches!(tls.read(&mut chunk).await, Ok(n) if n > 0) {}
        });
        let started = std::time::Instant::now();
        let err = post_x(port, &ca, Duration::from_millis(500))
            .await
            .unwrap_err();
        assert!(matches!(err, PostError::Timeout(_)), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn an_endless_response_body_is_cut_at_the_bound() {
        let (ca, acceptor, listener, port) = tls_listener().await;
        // answers 200 with a chunked body that never ends; counts what it could write
        let task = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut tls = acceptor.accept(tcp).await.unwrap();
            read_head(&mut tls, &mut Vec::new()).await;
            tls.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                .await
                .unwrap();
            let piece = format!("10000\r\n{}\r\n", "x".repeat(0x10000));
            let mut written = 0_usize;
            // bounded: 64 GiB at most, ends when the client hangs up
            for _ in 0..1_000_000 {
                if tls.write_all(piece.as_bytes()).await.is_err() {
                    break;
                }
                written += piece.len();
            }
            written
        });
        let started = std::time::Instant::now();
        let err = post_x(port, &ca, Duration::from_secs(20))
            .await
            .unwrap_err();
        assert!(
            matches!(err, PostError::ResponseTooLarge { status: 200 }),
            "{err}"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
        // the client stopped reading at the bound: the receiver could write only that much
        // more than the sockets' buffers hold
        let written = task.await.unwrap();
        assert!(written < 64 * 1024 * 1024, "{written} bytes written");
    }

    #[tokio::test]
    async fn an_address_that_never_answers_leaves_time_for_the_next() {
        let (port, ca, task) = receiver(200).await;
        // the same port on another loopback address: takes the connection, never speaks TLS
        let silent = TcpListener::bind(("127.0.0.2", port)).await.unwrap();
        let _silent = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((tcp, _)) = silent.accept().await {
                held.push(tcp);
            }
        });
        let started = std::time::Instant::now();
        let status = post(
            port,
            "/",
            &["127.0.0.2", "127.0.0.1"],
            b"gzip-bytes",
            &ca,
            Duration::from_secs(4),
        )
        .await
        .unwrap();
        assert_eq!(status, 200);
        assert!(started.elapsed() < Duration::from_secs(3));
        assert_eq!(task.await.unwrap().1, b"gzip-bytes");
    }

    #[test]
    fn uris() {
        let (h, p, _) = host_port("https://r.example/tlsrpt").unwrap();
        assert_eq!((h.as_str(), p), ("r.example", 443));
        let (h, p, u) = host_port("https://[::1]:8443/x?y=1").unwrap();
        assert_eq!((h.as_str(), p), ("::1", 8443));
        assert_eq!(u.path_and_query().unwrap().as_str(), "/x?y=1");
        assert!(host_port("http://r.example/").is_err());
        assert!(host_port("mailto:a@b").is_err());
        assert!(host_port("https:///x").is_err());
    }
}
