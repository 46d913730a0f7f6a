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
}

/// POSTs `gzip` to `uri` at the first of `addresses` that connects (port from the URI, else
/// 443), within `limit`.
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
    tokio::time::timeout(limit, post(uri, addresses, gzip, tls))
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
) -> Result<u16, PostError> {
    let (host, port, parsed) = host_port(uri)?;
    let name = ServerName::try_from(host.clone()).map_err(|_| PostError::Uri(host.clone()))?;
    let connector = TlsConnector::from(tls);
    let mut stream = None;
    let mut last = PostError::NoAddress(host.clone());
    for ip in addresses {
        let address = SocketAddr::new(*ip, port);
        let fail = |detail: String| PostError::Connect { address, detail };
        match TcpStream::connect(address).await {
            Err(e) => last = fail(e.to_string()),
            Ok(tcp) => match connector.connect(name.clone(), tcp).await {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                // a certificate refused is the receiver's answer: no other address
                Err(e) => return Err(fail(e.to_string())),
            },
        }
    }
    let stream = stream.ok_or(last)?;
    let http = |e: hyper::Error| PostError::Http(e.to_string());
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
        // read (and drop) the body so the exchange completes
        let _ = response.into_body().collect().await;
        Ok::<u16, PostError>(status)
    };
    tokio::pin!(connection);
    tokio::pin!(exchange);
    let status = tokio::select! {
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
    use super::host_port;

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
